//! The `modelc` binary: exit codes (0 success, 1 diagnostics, 2 usage; never a panic's 101),
//! the run-time diagnostics only the CLI produces (weights, inputs, `.npy` files, evaluation,
//! unreadable or non-UTF-8 sources, a file without a model), and `--help` of every subcommand.
//!
//! Each case of [`CASES`] runs in its own folder under the system temp dir, with that folder
//! as the working directory and relative paths as arguments. Its stderr is snapshotted (with the
//! folder, should it ever appear, replaced by `[TMP]`), and the codes it prints must be exactly
//! the case's `expect` list, in order. `tests/diagnostics.rs` reads the `expect` lists of this file
//! to check that every diagnostic code has a test.

use modelc_compiler::diag::codes::ALL;
use modelc_compiler::interp::Tensor;
use modelc_runtime::{npy, weights};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MODELC: &str = env!("CARGO_BIN_EXE_modelc");

/// A two-param model: `fc.weight` [3, 4] and `fc.bias` [3].
const TINY: &str = "use std.nn.Linear

model Tiny {
    fc = Linear(4, 3)

    forward(x: f32[B, 4]) -> f32[B, 3] {
        relu(fc(x))
    }
}
";

/// A model that gathers rows of a table by index, so a bad index fails at run time.
const LOOKUP: &str = "model Lookup {
    param table: f32[5, 2] = normal()

    forward(ids: i64[B]) -> f32[B, 2] {
        take(table, ids)
    }
}
";

const FUNCTIONS_ONLY: &str = "## No model here, only a function.
fn double(x) { x * 2.0 }
";

const TWO_ERRORS: &str = "use std.nn.Linear

model Broken {
    fc = Linear(4, 3)

    forward(x: f32[B, 5]) -> f32[B, 3] {
        sofmax(fc(x))
    }
}
";

/// A folder of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("modelc-cli-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("the temp dir is writable");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        fs::write(self.0.join(name), bytes).expect("the temp dir is writable");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `modelc` in `dir` without colour.
fn modelc(dir: &Path, args: &[String]) -> Output {
    Command::new(MODELC)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("the modelc binary runs")
}

fn exit_code(output: &Output) -> i32 {
    output
        .status
        .code()
        .expect("modelc exits with a code, not a signal")
}

/// The diagnostic codes in rendered output: a code is printed alone on its own line.
fn printed_codes(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(str::trim)
        .filter(|line| ALL.iter().any(|c| c.code == *line))
        .map(str::to_string)
        .collect()
}

/// The output with the case's folder replaced by `[TMP]`, stable across machines.
fn scrub(text: &str, dir: &Path) -> String {
    let mut text = text.replace(&dir.display().to_string(), "[TMP]");
    if let Ok(canonical) = dir.canonicalize() {
        text = text.replace(&canonical.display().to_string(), "[TMP]");
    }
    text
}

fn tensor_f32(shape: &[usize]) -> Tensor {
    let count = shape.iter().product();
    let values = (0..count).map(|i| i as f32 * 0.25 - 1.0).collect();
    Tensor::from_f32(shape.to_vec(), values).expect("consistent shape")
}

// ------------------------------------------------------------------------------ fixtures

/// A file a case needs, created in its folder before it runs.
enum Fixture {
    Text(&'static str, &'static str),
    Bytes(&'static str, &'static [u8]),
    Npy(&'static str, fn() -> Tensor),
    /// `modelc init <model> -o <name>`, then the tensors edited by the function.
    Weights {
        model: &'static str,
        name: &'static str,
        edit: fn(&mut Vec<(String, Tensor)>),
    },
    /// The first `keep` bytes of a file an earlier fixture made.
    Truncated {
        from: &'static str,
        name: &'static str,
        keep: usize,
    },
}

fn make(fixture: &Fixture, dir: &TempDir) {
    match fixture {
        Fixture::Text(name, text) => dir.write(name, text.as_bytes()),
        Fixture::Bytes(name, bytes) => dir.write(name, bytes),
        Fixture::Npy(name, tensor) => dir.write(name, &npy::write_npy(&tensor())),
        Fixture::Weights { model, name, edit } => {
            let output = modelc(
                dir.path(),
                &[
                    "init".into(),
                    model.to_string(),
                    "-o".into(),
                    name.to_string(),
                ],
            );
            assert_eq!(exit_code(&output), 0, "init: {output:?}");
            let bytes = fs::read(dir.path().join(name)).expect("init wrote the weights");
            let mut tensors = weights::read_safetensors(&bytes, name).expect("init's file reads");
            edit(&mut tensors);
            let bytes = weights::write_safetensors(&tensors, None).expect("the edit is writable");
            dir.write(name, &bytes);
        }
        Fixture::Truncated { from, name, keep } => {
            let bytes = fs::read(dir.path().join(from)).expect("the fixture to truncate exists");
            assert!(*keep < bytes.len(), "{from} is only {} bytes", bytes.len());
            dir.write(name, &bytes[..*keep]);
        }
    }
}

fn unchanged(_: &mut Vec<(String, Tensor)>) {}

fn without_bias(tensors: &mut Vec<(String, Tensor)>) {
    tensors.retain(|(name, _)| name != "fc.bias");
}

fn with_extra_tensor(tensors: &mut Vec<(String, Tensor)>) {
    tensors.push(("fc.scale".into(), tensor_f32(&[3])));
}

// Every edit has the signature of `Fixture::Weights::edit`, which some need to grow.
#[allow(clippy::ptr_arg)]
fn with_transposed_weight(tensors: &mut Vec<(String, Tensor)>) {
    for (name, tensor) in tensors.iter_mut() {
        if name == "fc.weight" {
            *tensor = tensor_f32(&[4, 3]);
        }
    }
}

// Every edit has the signature of `Fixture::Weights::edit`, which some need to grow.
#[allow(clippy::ptr_arg)]
fn with_integer_bias(tensors: &mut Vec<(String, Tensor)>) {
    for (name, tensor) in tensors.iter_mut() {
        if name == "fc.bias" {
            *tensor = Tensor::from_i64(vec![3], vec![1, 2, 3]).expect("consistent");
        }
    }
}

fn with_every_problem(tensors: &mut Vec<(String, Tensor)>) {
    without_bias(tensors);
    with_extra_tensor(tensors);
    with_transposed_weight(tensors);
}

fn x_2_by_4() -> Tensor {
    tensor_f32(&[2, 4])
}

fn x_2_by_5() -> Tensor {
    tensor_f32(&[2, 5])
}

fn x_rank_3() -> Tensor {
    tensor_f32(&[2, 1, 4])
}

fn x_integers() -> Tensor {
    Tensor::from_i64(vec![2, 4], (0..8).collect()).expect("consistent")
}

fn ids_out_of_range() -> Tensor {
    Tensor::from_i64(vec![3], vec![0, 4, 7]).expect("consistent")
}

// --------------------------------------------------------------------------------- cases

struct Case {
    name: &'static str,
    fixtures: &'static [Fixture],
    /// Arguments. Paths are relative to the case's folder (the working directory), so that
    /// no absolute path appears in the output or changes where miette wraps a message.
    args: &'static [&'static str],
    exit: i32,
    /// The diagnostic codes printed to stderr, in order.
    expect: &'static [&'static str],
}

const TINY_FILE: Fixture = Fixture::Text("tiny.model", TINY);
const TINY_WEIGHTS: Fixture = Fixture::Weights {
    model: "tiny.model",
    name: "tiny.safetensors",
    edit: unchanged,
};
const X: Fixture = Fixture::Npy("x.npy", x_2_by_4);

const CASES: &[Case] = &[
    // Source files.
    Case {
        name: "io-error_missing_source",
        fixtures: &[],
        args: &["check", "missing.model"],
        exit: 1,
        expect: &["io-error"],
    },
    Case {
        name: "io-error_source_is_a_folder",
        fixtures: &[Fixture::Text("folder.model/keep", "")],
        args: &["check", "folder.model"],
        exit: 1,
        expect: &["io-error"],
    },
    Case {
        name: "invalid-utf8",
        fixtures: &[Fixture::Bytes(
            "latin1.model",
            b"## Caf\xe9 in Latin-1.\nfn f(x) { x }\n",
        )],
        args: &["check", "latin1.model"],
        exit: 1,
        expect: &["invalid-utf8"],
    },
    Case {
        name: "check_with_two_errors",
        fixtures: &[Fixture::Text("broken.model", TWO_ERRORS)],
        args: &["check", "broken.model"],
        exit: 1,
        expect: &["unknown-name", "shape-mismatch"],
    },
    Case {
        name: "no-model",
        fixtures: &[Fixture::Text("functions.model", FUNCTIONS_ONLY)],
        args: &["run", "functions.model"],
        exit: 1,
        expect: &["no-model"],
    },
    Case {
        name: "no-model_named",
        fixtures: &[TINY_FILE, X],
        args: &["run", "tiny.model", "--model", "Tinny", "--input", "x.npy"],
        exit: 1,
        expect: &["no-model"],
    },
    Case {
        name: "no-model_build",
        fixtures: &[Fixture::Text("functions.model", FUNCTIONS_ONLY)],
        args: &["build", "functions.model"],
        exit: 1,
        expect: &["no-model"],
    },
    // Weights.
    Case {
        name: "weights-missing",
        fixtures: &[
            TINY_FILE,
            X,
            Fixture::Weights {
                model: "tiny.model",
                name: "w.safetensors",
                edit: without_bias,
            },
        ],
        args: &[
            "run",
            "tiny.model",
            "--weights",
            "w.safetensors",
            "--input",
            "x.npy",
        ],
        exit: 1,
        expect: &["weights-missing"],
    },
    Case {
        name: "weights-unexpected",
        fixtures: &[
            TINY_FILE,
            X,
            Fixture::Weights {
                model: "tiny.model",
                name: "w.safetensors",
                edit: with_extra_tensor,
            },
        ],
        args: &[
            "run",
            "tiny.model",
            "--weights",
            "w.safetensors",
            "--input",
            "x.npy",
        ],
        exit: 1,
        expect: &["weights-unexpected"],
    },
    Case {
        name: "weights-shape",
        fixtures: &[
            TINY_FILE,
            X,
            Fixture::Weights {
                model: "tiny.model",
                name: "w.safetensors",
                edit: with_transposed_weight,
            },
        ],
        args: &[
            "run",
            "tiny.model",
            "--weights",
            "w.safetensors",
            "--input",
            "x.npy",
        ],
        exit: 1,
        expect: &["weights-shape"],
    },
    Case {
        name: "weights-dtype",
        fixtures: &[
            TINY_FILE,
            X,
            Fixture::Weights {
                model: "tiny.model",
                name: "w.safetensors",
                edit: with_integer_bias,
            },
        ],
        args: &[
            "run",
            "tiny.model",
            "--weights",
            "w.safetensors",
            "--input",
            "x.npy",
        ],
        exit: 1,
        expect: &["weights-dtype"],
    },
    Case {
        name: "weights_every_problem_at_once",
        fixtures: &[
            TINY_FILE,
            X,
            Fixture::Weights {
                model: "tiny.model",
                name: "w.safetensors",
                edit: with_every_problem,
            },
        ],
        args: &[
            "run",
            "tiny.model",
            "--weights",
            "w.safetensors",
            "--input",
            "x.npy",
        ],
        exit: 1,
        expect: &["weights-shape", "weights-missing", "weights-unexpected"],
    },
    Case {
        name: "weights-corrupt_truncated",
        fixtures: &[
            TINY_FILE,
            X,
            TINY_WEIGHTS,
            Fixture::Truncated {
                from: "tiny.safetensors",
                name: "cut.safetensors",
                keep: 60,
            },
        ],
        args: &[
            "run",
            "tiny.model",
            "--weights",
            "cut.safetensors",
            "--input",
            "x.npy",
        ],
        exit: 1,
        expect: &["weights-corrupt"],
    },
    Case {
        name: "weights-corrupt_not_safetensors",
        fixtures: &[
            TINY_FILE,
            X,
            Fixture::Text("w.safetensors", "not a weights file\n"),
        ],
        args: &[
            "run",
            "tiny.model",
            "--weights",
            "w.safetensors",
            "--input",
            "x.npy",
        ],
        exit: 1,
        expect: &["weights-corrupt"],
    },
    Case {
        name: "io-error_missing_weights",
        fixtures: &[TINY_FILE, X],
        args: &[
            "run",
            "tiny.model",
            "--weights",
            "none.safetensors",
            "--input",
            "x.npy",
        ],
        exit: 1,
        expect: &["io-error"],
    },
    // Inputs.
    Case {
        name: "input-mismatch_shape",
        fixtures: &[TINY_FILE, Fixture::Npy("x.npy", x_2_by_5)],
        args: &["run", "tiny.model", "--input", "x.npy"],
        exit: 1,
        expect: &["input-mismatch"],
    },
    Case {
        name: "input-mismatch_bench_shape",
        fixtures: &[TINY_FILE, Fixture::Npy("x.npy", x_2_by_5)],
        args: &["bench", "tiny.model", "--input", "x.npy", "--min-time", "0"],
        exit: 1,
        expect: &["input-mismatch"],
    },
    Case {
        name: "input-mismatch_rank",
        fixtures: &[TINY_FILE, Fixture::Npy("x.npy", x_rank_3)],
        args: &["run", "tiny.model", "--input", "x.npy"],
        exit: 1,
        expect: &["input-mismatch"],
    },
    Case {
        name: "input-mismatch_dtype",
        fixtures: &[TINY_FILE, Fixture::Npy("x.npy", x_integers)],
        args: &["run", "tiny.model", "--input", "x.npy"],
        exit: 1,
        expect: &["input-mismatch"],
    },
    Case {
        name: "input-mismatch_missing",
        fixtures: &[TINY_FILE],
        args: &["run", "tiny.model"],
        exit: 1,
        expect: &["input-mismatch"],
    },
    Case {
        name: "input-mismatch_too_many",
        fixtures: &[TINY_FILE, X],
        args: &["run", "tiny.model", "--input", "x.npy", "--input", "x.npy"],
        exit: 1,
        expect: &["input-mismatch"],
    },
    Case {
        name: "input-mismatch_unknown_name",
        fixtures: &[TINY_FILE, X],
        args: &["run", "tiny.model", "--input", "y=x.npy"],
        exit: 1,
        expect: &["input-mismatch"],
    },
    Case {
        name: "input-mismatch_no_such_output",
        fixtures: &[TINY_FILE, X],
        args: &[
            "run",
            "tiny.model",
            "--input",
            "x.npy",
            "--output",
            "3=y.npy",
        ],
        exit: 1,
        expect: &["input-mismatch"],
    },
    Case {
        name: "npy-invalid_truncated",
        fixtures: &[
            TINY_FILE,
            X,
            Fixture::Truncated {
                from: "x.npy",
                name: "cut.npy",
                keep: 100,
            },
        ],
        args: &["run", "tiny.model", "--input", "cut.npy"],
        exit: 1,
        expect: &["npy-invalid"],
    },
    Case {
        name: "npy-invalid_not_npy",
        fixtures: &[TINY_FILE, Fixture::Text("x.npy", "1,2,3,4\n5,6,7,8\n")],
        args: &["run", "tiny.model", "--input", "x.npy"],
        exit: 1,
        expect: &["npy-invalid"],
    },
    Case {
        name: "io-error_missing_input",
        fixtures: &[TINY_FILE],
        args: &["run", "tiny.model", "--input", "missing.npy"],
        exit: 1,
        expect: &["io-error"],
    },
    Case {
        name: "io-error_output_folder_missing",
        fixtures: &[TINY_FILE, X],
        args: &[
            "run",
            "tiny.model",
            "--input",
            "x.npy",
            "--output",
            "no/such/folder/y.npy",
        ],
        exit: 1,
        expect: &["io-error"],
    },
    // Evaluation.
    Case {
        name: "runtime-error_index_out_of_range",
        fixtures: &[
            Fixture::Text("lookup.model", LOOKUP),
            Fixture::Npy("ids.npy", ids_out_of_range),
        ],
        args: &["run", "lookup.model", "--input", "ids.npy"],
        exit: 1,
        expect: &["runtime-error"],
    },
    // Usage errors: clap's messages, exit 2, no diagnostic codes.
    Case {
        name: "usage_unknown_flag",
        fixtures: &[TINY_FILE],
        args: &["run", "tiny.model", "--bogus"],
        exit: 2,
        expect: &[],
    },
    Case {
        name: "usage_missing_file_argument",
        fixtures: &[],
        args: &["check"],
        exit: 2,
        expect: &[],
    },
    Case {
        name: "usage_unknown_subcommand",
        fixtures: &[],
        args: &["frobnicate", "tiny.model"],
        exit: 2,
        expect: &[],
    },
    Case {
        name: "usage_bad_emit_value",
        fixtures: &[TINY_FILE],
        args: &["build", "tiny.model", "--emit", "assembly"],
        exit: 2,
        expect: &[],
    },
    Case {
        name: "usage_output_named_not_by_index",
        fixtures: &[TINY_FILE, X],
        args: &[
            "run",
            "tiny.model",
            "--input",
            "x.npy",
            "--output",
            "y=y.npy",
        ],
        exit: 2,
        expect: &[],
    },
    Case {
        name: "usage_no_subcommand",
        fixtures: &[],
        args: &[],
        exit: 2,
        expect: &[],
    },
];

#[test]
fn cli_cases() {
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "case names are unique");
    for case in CASES {
        let dir = TempDir::new(case.name);
        for fixture in case.fixtures {
            if let Fixture::Text(name, _) = fixture {
                if let Some(parent) = Path::new(name).parent() {
                    fs::create_dir_all(dir.path().join(parent)).expect("writable");
                }
            }
            make(fixture, &dir);
        }
        let args: Vec<String> = case.args.iter().map(|a| a.to_string()).collect();
        let output = modelc(dir.path(), &args);
        let code = exit_code(&output);
        let stdout = scrub(&String::from_utf8_lossy(&output.stdout), dir.path());
        let stderr = scrub(&String::from_utf8_lossy(&output.stderr), dir.path());
        assert_ne!(code, 101, "{}: modelc panicked:\n{stderr}", case.name);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("internal compiler error"),
            "{}: {stderr}",
            case.name
        );
        assert_eq!(
            code, case.exit,
            "{}: exit code; stderr:\n{stderr}",
            case.name
        );
        assert_eq!(
            printed_codes(&stderr),
            case.expect,
            "{}: codes printed; stderr:\n{stderr}",
            case.name
        );
        let mut snapshot = format!("$ modelc {}\nexit code: {code}\n", args.join(" "));
        if !stdout.is_empty() {
            snapshot.push_str(&format!("--- stdout ---\n{stdout}"));
        }
        snapshot.push_str(&format!("--- stderr ---\n{stderr}"));
        insta::assert_snapshot!(format!("cli_{}", case.name), snapshot);
    }
}

/// The subcommands the top-level help lists under `Commands:` (without `help`).
fn listed_subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// `modelc bench --json` prints one object with every documented field, on both backends; the
/// figures themselves are not checked (speed is never asserted in a test).
#[test]
fn bench_prints_a_json_report() {
    let dir = TempDir::new("bench-json");
    for fixture in [TINY_FILE, TINY_WEIGHTS, X] {
        make(&fixture, &dir);
    }
    for backend in ["cpu", "interp"] {
        let args: Vec<String> = [
            "bench",
            "tiny.model",
            "--weights",
            "tiny.safetensors",
            "--input",
            "x.npy",
            "--min-time",
            "0",
            "--json",
            "--backend",
            backend,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let output = modelc(dir.path(), &args);
        assert_eq!(exit_code(&output), 0, "{backend}: {output:?}");
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("one JSON object");
        for key in [
            "file",
            "model",
            "backend",
            "threads",
            "batch",
            "compile_ms",
            "latency_ms",
            "iterations",
            "throughput_per_s",
            "arena_bytes",
            "peak_rss_bytes",
        ] {
            assert!(
                report.get(key).is_some(),
                "{backend}: no `{key}` in {report}"
            );
        }
        for phase in ["parse", "check", "passes", "codegen", "total"] {
            assert!(report["compile_ms"][phase].as_f64().is_some(), "{phase}");
        }
        for quantile in ["median", "p10", "p90", "min"] {
            assert!(
                report["latency_ms"][quantile].as_f64().is_some(),
                "{quantile}"
            );
        }
        assert_eq!(report["batch"], 2);
        assert_eq!(report["backend"], backend);
        assert!(report["iterations"].as_u64().unwrap_or(0) >= 10);
    }
    let zero_threads: Vec<String> = ["bench", "tiny.model", "--input", "x.npy", "--threads", "0"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(exit_code(&modelc(dir.path(), &zero_threads)), 2);
}

#[test]
fn help_of_every_subcommand_exits_0() {
    let dir = TempDir::new("help");
    let output = modelc(dir.path(), &["--help".to_string()]);
    assert_eq!(exit_code(&output), 0, "modelc --help: {output:?}");
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let subcommands = listed_subcommands(&help);
    for expected in ["check", "build", "run", "init"] {
        assert!(
            subcommands.iter().any(|s| s == expected),
            "the help lists `{expected}`:\n{help}"
        );
    }
    let mut invocations: Vec<Vec<String>> = [
        &["-h"][..],
        &["help"],
        &["--version"],
        &["-V"],
        &["help", "run"],
    ]
    .iter()
    .map(|args| args.iter().map(|a| a.to_string()).collect())
    .collect();
    // Every subcommand the help lists, so that a new one is covered without editing this test.
    for subcommand in &subcommands {
        invocations.push(vec![subcommand.clone(), "--help".to_string()]);
        invocations.push(vec![subcommand.clone(), "-h".to_string()]);
    }
    for args in invocations {
        let output = modelc(dir.path(), &args);
        assert_eq!(exit_code(&output), 0, "modelc {args:?}: {output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !stdout.trim().is_empty(),
            "modelc {args:?} prints to stdout"
        );
        if !args[0].starts_with("--version") && args[0] != "-V" {
            assert!(
                stdout.contains("Usage: modelc"),
                "modelc {args:?}:\n{stdout}"
            );
        }
    }
    insta::assert_snapshot!("cli_help", help);
}

#[test]
fn check_build_init_and_run_succeed_on_a_good_model() {
    let dir = TempDir::new("success");
    make(&TINY_FILE, &dir);
    make(&X, &dir);
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let output = modelc(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(exit_code(&output), 0, "modelc {args:?}:\n{stderr}");
        assert!(
            stderr.is_empty(),
            "modelc {args:?} writes nothing to stderr:\n{stderr}"
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    assert_eq!(run(&["check", "tiny.model"]), "tiny.model: ok (Tiny)\n");
    assert!(run(&["build", "tiny.model", "--emit", "ast"]).contains("(model Tiny"));
    assert!(!run(&["build", "tiny.model"]).is_empty());
    assert!(run(&["build", "tiny.model", "--emit", "dot"]).contains("digraph"));
    run(&["build", "tiny.model", "--output", "graph.txt"]);
    assert!(dir.path().join("graph.txt").is_file());

    let wrote = run(&["init", "tiny.model", "-o", "w.safetensors", "--seed", "7"]);
    assert!(wrote.contains("2 params"), "{wrote}");
    let bytes = fs::read(dir.path().join("w.safetensors")).expect("init wrote weights");
    let tensors = weights::read_safetensors(&bytes, "w.safetensors").expect("valid weights");
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["fc.bias", "fc.weight"]);

    let summary = run(&[
        "run",
        "tiny.model",
        "--weights",
        "w.safetensors",
        "--input",
        "x.npy",
    ]);
    assert!(summary.starts_with("output 0: f32[2, 3]"), "{summary}");

    run(&[
        "run",
        "tiny.model",
        "--weights",
        "w.safetensors",
        "--input",
        "x=x.npy",
        "--output",
        "0=y.npy",
    ]);
    let bytes = fs::read(dir.path().join("y.npy")).expect("run wrote y.npy");
    let y = npy::read_npy(&bytes, "y.npy").expect("a valid .npy file");
    assert_eq!(y.shape, [2, 3]);
    assert!(
        y.as_f32().expect("f32").iter().all(|v| *v >= 0.0),
        "relu output"
    );

    // Without weights, params come from the initializers, deterministically per seed.
    run(&[
        "run",
        "tiny.model",
        "--input",
        "x.npy",
        "--seed",
        "3",
        "-o",
        "a.npy",
    ]);
    run(&[
        "run",
        "tiny.model",
        "--input",
        "x.npy",
        "--seed",
        "3",
        "-o",
        "b.npy",
    ]);
    assert_eq!(
        fs::read(dir.path().join("a.npy")).expect("a.npy"),
        fs::read(dir.path().join("b.npy")).expect("b.npy")
    );
}

/// Every example checks with the CLI.
#[test]
fn examples_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for example in ["examples/mlp.model", "examples/lenet.model"] {
        let output = modelc(root, &["check".to_string(), example.to_string()]);
        assert_eq!(exit_code(&output), 0, "{example}: {output:?}");
    }
}
