//! Training: the step graph on the CPU backend against the interpreter, end-to-end training of
//! `examples/digits_mlp.model`, exact resuming from a checkpoint, and `modelc train`.
//!
//! Optimizer formulas are tested against f64 references and hand-derived values in the
//! compiler's unit tests (`compiler/src/train/tests.rs`).

use modelc_compiler::check::{check_file, select_model, CheckOptions, CheckResult};
use modelc_compiler::interp::{evaluate, Tensor};
use modelc_compiler::train::build_step_graph;
use modelc_runtime::cpu::CpuExecutable;
use modelc_runtime::loader::FsLoader;
use modelc_runtime::train::{read_checkpoint, train, train_configs, TrainOptions, TrainOutcome};
use modelc_runtime::{session, weights};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

const MODELC: &str = env!("CARGO_BIN_EXE_modelc");
const DIGITS_MLP: &str = "examples/digits_mlp.model";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn checked(path: &str) -> CheckResult {
    let full = root().join(path);
    let text = std::fs::read_to_string(&full).expect("the example exists");
    let result = check_file(
        &full.to_string_lossy(),
        &text,
        &FsLoader,
        CheckOptions::default(),
    );
    assert!(!result.has_errors(), "{:?}", result.diagnostics);
    result
}

/// A fresh folder under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modelc-training-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run_training(path: &str, options: &TrainOptions) -> TrainOutcome {
    let result = checked(path);
    let config = train_configs(&result)
        .into_iter()
        .next()
        .expect("a train block");
    let model = select_model(&result, Some(&config.model)).expect("the model");
    let base = root().join(path).parent().unwrap().to_path_buf();
    train(
        &model.graph,
        &model.name,
        &config,
        &base,
        options,
        &mut |_| {},
    )
    .unwrap_or_else(|d| panic!("{d:?}"))
}

/// One step of the digits MLP's step graph: the CPU backend agrees with the interpreter on the
/// loss, the correct count, every new param and every new Adam state within
/// `1e-4 + 1e-4 * |interpreter|` (f32 kernels with other summation orders).
#[test]
fn step_graph_runs_the_same_on_the_cpu_backend_and_the_interpreter() {
    let result = checked(DIGITS_MLP);
    let config = train_configs(&result).remove(0);
    let model = select_model(&result, Some(&config.model)).unwrap();
    let step = build_step_graph(&model.graph, &config).unwrap();
    let params = session::initialize_params(&model.graph, 3).unwrap();
    let batch = 5;
    let mut inputs = vec![
        Tensor::from_f32(
            vec![batch, 64],
            (0..batch * 64)
                .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
                .collect(),
        )
        .unwrap(),
        Tensor::from_i64(vec![batch], vec![0, 3, 9, 3, 7]).unwrap(),
    ];
    for p in &step.params {
        inputs.push(params.iter().find(|(n, _)| *n == p.name).unwrap().1.clone());
    }
    for slot in &step.state {
        let shape = inputs[step.param_input(slot.param)].shape.clone();
        let count = shape.iter().product();
        inputs.push(Tensor::from_f32(shape, vec![0.01; count]).unwrap());
    }
    inputs.push(Tensor::from_f32(vec![], vec![1e-2]).unwrap());
    inputs.push(Tensor::from_f32(vec![], vec![3.0]).unwrap());
    let reference = evaluate(&step.graph, &inputs, &HashMap::new()).unwrap();
    let executable = CpuExecutable::compile(&step.graph).unwrap();
    let empty = HashMap::new();
    let actual = executable.bind(&empty).unwrap().run(&inputs).unwrap();
    assert_eq!(reference.len(), actual.len());
    assert_eq!(reference.len(), 2 + step.params.len() + step.state.len());
    for (index, (r, a)) in reference.iter().zip(&actual).enumerate() {
        assert_eq!(r.shape, a.shape, "output {index}");
        for (x, y) in r.as_f32().unwrap().iter().zip(a.as_f32().unwrap()) {
            assert!(
                (x - y).abs() <= 1e-4 + 1e-4 * x.abs(),
                "output {index}: {x} vs {y}"
            );
        }
    }
}

const DIGITS_CNN: &str = "examples/digits_cnn.model";

/// One step of the digits CNN's step graph (two 3x3 padded convolutions, two 2x2 max pools,
/// AdamW), at batch 1, 5 (odd) and 64 (the block's, which takes the parallel kernel paths):
/// the CPU backend runs the convolution and pooling gradients and the bias gradients' sums
/// natively (no interpreter fallback for them) and agrees with the interpreter on the loss, the correct count, every
/// new param and every new AdamW state within `1e-4 + 1e-4 * |interpreter|` (f32 kernels
/// with other summation orders against f64 accumulation).
#[test]
fn cnn_step_graph_runs_natively_and_the_same_on_the_cpu_backend_and_the_interpreter() {
    let result = checked(DIGITS_CNN);
    let config = train_configs(&result).remove(0);
    let model = select_model(&result, Some(&config.model)).unwrap();
    let step = build_step_graph(&model.graph, &config).unwrap();
    let params = session::initialize_params(&model.graph, 3).unwrap();
    let executable = CpuExecutable::compile(&step.graph).unwrap();
    let plan = executable.plan();
    for kernel in [
        "conv2d_backward_input",
        "conv2d_backward_weight",
        "pool2d_backward",
    ] {
        assert!(
            plan.contains(&format!("= {kernel}(")),
            "no native {kernel}:\n{plan}"
        );
        assert!(
            !plan.contains(&format!("interpret {kernel}")),
            "{kernel} falls back to the interpreter:\n{plan}"
        );
    }
    // The bias gradients (sums over the batch, and over batch and positions) too.
    assert!(
        !plan.contains("interpret reduce_"),
        "a reduction falls back to the interpreter:\n{plan}"
    );
    let empty = HashMap::new();
    let bound = executable.bind(&empty).unwrap();
    for batch in [1, 5, 64] {
        let mut inputs = vec![
            Tensor::from_f32(
                vec![batch, 1, 8, 8],
                (0..batch * 64)
                    .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
                    .collect(),
            )
            .unwrap(),
            Tensor::from_i64(
                vec![batch],
                (0..batch as i64).map(|i| (i * 7) % 10).collect(),
            )
            .unwrap(),
        ];
        for p in &step.params {
            inputs.push(params.iter().find(|(n, _)| *n == p.name).unwrap().1.clone());
        }
        for slot in &step.state {
            let shape = inputs[step.param_input(slot.param)].shape.clone();
            let count = shape.iter().product();
            inputs.push(Tensor::from_f32(shape, vec![0.01; count]).unwrap());
        }
        inputs.push(Tensor::from_f32(vec![], vec![1e-2]).unwrap());
        inputs.push(Tensor::from_f32(vec![], vec![3.0]).unwrap());
        let reference = evaluate(&step.graph, &inputs, &HashMap::new()).unwrap();
        let actual = bound.run(&inputs).unwrap();
        assert_eq!(reference.len(), actual.len());
        assert_eq!(reference.len(), 2 + step.params.len() + step.state.len());
        for (index, (r, a)) in reference.iter().zip(&actual).enumerate() {
            assert_eq!(r.shape, a.shape, "batch {batch}, output {index}");
            for (x, y) in r.as_f32().unwrap().iter().zip(a.as_f32().unwrap()) {
                assert!(
                    (x - y).abs() <= 1e-4 + 1e-4 * x.abs(),
                    "batch {batch}, output {index}: {x} vs {y}"
                );
            }
        }
    }
}

/// One step of the char GPT's step graph (embedding, learned positions sliced to the sequence
/// length, 4 decoder blocks, AdamW) at batch 2, length 8: the embedding's gradient (a
/// scatter-add) and the positions' (a slice scatter) run natively, and the CPU backend agrees
/// with the interpreter on every output within `1e-4 + 1e-4 * |interpreter|`.
#[test]
fn transformer_step_graph_scatters_natively_and_agrees_with_the_interpreter() {
    let result = checked("examples/char_gpt.model");
    let config = train_configs(&result).remove(0);
    let model = select_model(&result, Some(&config.model)).unwrap();
    let step = build_step_graph(&model.graph, &config).unwrap();
    let params = session::initialize_params(&model.graph, 3).unwrap();
    let executable = CpuExecutable::compile(&step.graph).unwrap();
    let plan = executable.plan();
    for kernel in ["scatter_add", "slice_scatter"] {
        assert!(
            plan.contains(&format!("= {kernel}(")),
            "no native {kernel}:\n{plan}"
        );
        assert!(
            !plan.contains(&format!("interpret {kernel}")),
            "{kernel} falls back to the interpreter:\n{plan}"
        );
    }
    let (batch, length) = (2, 8);
    let mut inputs = vec![
        Tensor::from_i64(
            vec![batch, length],
            (0..batch * length).map(|i| ((i * 7) % 10) as i64).collect(),
        )
        .unwrap(),
        // Repeated labels and ids, so scattered rows accumulate.
        Tensor::from_i64(
            vec![batch, length],
            (0..batch * length).map(|i| ((i * 3) % 10) as i64).collect(),
        )
        .unwrap(),
    ];
    for p in &step.params {
        inputs.push(params.iter().find(|(n, _)| *n == p.name).unwrap().1.clone());
    }
    for slot in &step.state {
        let shape = inputs[step.param_input(slot.param)].shape.clone();
        let count = shape.iter().product();
        inputs.push(Tensor::from_f32(shape, vec![0.01; count]).unwrap());
    }
    inputs.push(Tensor::from_f32(vec![], vec![1e-2]).unwrap());
    inputs.push(Tensor::from_f32(vec![], vec![3.0]).unwrap());
    let reference = evaluate(&step.graph, &inputs, &HashMap::new()).unwrap();
    let empty = HashMap::new();
    let actual = executable.bind(&empty).unwrap().run(&inputs).unwrap();
    assert_eq!(reference.len(), actual.len());
    for (index, (r, a)) in reference.iter().zip(&actual).enumerate() {
        assert_eq!(r.shape, a.shape, "output {index}");
        for (x, y) in r.as_f32().unwrap().iter().zip(a.as_f32().unwrap()) {
            assert!(
                (x - y).abs() <= 1e-4 + 1e-4 * x.abs(),
                "output {index}: {x} vs {y}"
            );
        }
    }
}

/// The digits MLP (64-64-10, Adam 3e-3, batch 32, seed 0, split 0.8: 1438 training and 359
/// validation images) reaches at least 95% validation accuracy in its 10 epochs.
#[test]
fn digits_mlp_reaches_95_percent_validation_accuracy() {
    let outcome = run_training(DIGITS_MLP, &TrainOptions::default());
    assert_eq!(outcome.train_examples, 1438);
    assert_eq!(outcome.validation_examples, 359);
    assert_eq!(outcome.history.len(), 10);
    let last = outcome.history.last().unwrap();
    let accuracy = last.val_accuracy.unwrap();
    assert!(accuracy >= 0.95, "validation accuracy {accuracy}");
    assert!(last.train_loss < outcome.history[0].train_loss);
    assert_eq!(last.step, 10 * 45);
}

/// Training 2 epochs, and training 1 epoch then resuming from its checkpoint for the second,
/// give bit-identical weights (same seed: the data order depends only on seed and epoch, and
/// the optimizer state travels in the checkpoint).
#[test]
fn resuming_from_a_checkpoint_matches_an_uninterrupted_run() {
    let dir = scratch("resume");
    let whole = run_training(
        DIGITS_MLP,
        &TrainOptions {
            epochs: Some(2),
            ..TrainOptions::default()
        },
    );
    let first = run_training(
        DIGITS_MLP,
        &TrainOptions {
            epochs: Some(1),
            checkpoint_dir: Some(dir.clone()),
            ..TrainOptions::default()
        },
    );
    assert_eq!(first.history.len(), 1);
    let checkpoint_path = dir.join("epoch-0001.safetensors");
    let checkpoint = read_checkpoint(&checkpoint_path).unwrap();
    assert_eq!(
        (checkpoint.epoch, checkpoint.step, checkpoint.seed),
        (1, 45, 0)
    );
    assert_eq!(checkpoint.history.len(), 1);
    // Params plus Adam's two moments per param.
    assert_eq!(checkpoint.tensors.len(), 3 * whole.params.len());
    let resumed = run_training(
        DIGITS_MLP,
        &TrainOptions {
            epochs: Some(2),
            resume: Some(checkpoint_path),
            ..TrainOptions::default()
        },
    );
    assert_eq!(resumed.history.len(), 2);
    assert_eq!(whole.params, resumed.params);
    for (a, b) in whole.history.iter().zip(&resumed.history) {
        assert_eq!(
            (a.train_loss, a.val_loss, a.val_accuracy),
            (b.train_loss, b.val_loss, b.val_accuracy)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `modelc train` end to end: progress lines, weights that `modelc run --weights` binds
/// strictly, a metrics CSV and an SVG of the curves.
#[test]
fn modelc_train_writes_weights_metrics_and_curves() {
    let dir = scratch("cli");
    let weights_path = dir.join("digits.safetensors");
    let metrics_path = dir.join("metrics.csv");
    let output = Command::new(MODELC)
        .arg("train")
        .arg(root().join(DIGITS_MLP))
        .args(["--epochs", "2", "--seed", "1"])
        .arg("--output")
        .arg(&weights_path)
        .arg("--metrics")
        .arg(&metrics_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("epoch ")).count(),
        2,
        "{stderr}"
    );
    assert!(stderr.contains("val_acc"), "{stderr}");
    let csv = std::fs::read_to_string(&metrics_path).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("epoch,step,lr,train_loss"));
    let svg = std::fs::read_to_string(metrics_path.with_extension("svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    let model = checked(DIGITS_MLP);
    let graph = &model.models[0].graph;
    let bound = session::load_params(graph, Some(weights_path.as_path()), 0).unwrap();
    assert_eq!(bound.len(), 4);

    // The weights run through `modelc run`.
    let x = Tensor::from_f32(vec![2, 64], vec![0.0; 128]).unwrap();
    let x_path = dir.join("x.npy");
    std::fs::write(&x_path, modelc_runtime::npy::write_npy(&x)).unwrap();
    let run = Command::new(MODELC)
        .arg("run")
        .arg(root().join(DIGITS_MLP))
        .arg("--weights")
        .arg(&weights_path)
        .arg("-i")
        .arg(&x_path)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let _ = weights::read_safetensors(&std::fs::read(&weights_path).unwrap(), "w").unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Bad input is a diagnostic with a code and exit code 1: a file without a train block, data
/// that does not exist, a resume file that is not a checkpoint.
#[test]
fn modelc_train_reports_bad_input_as_diagnostics() {
    let dir = scratch("bad");
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let model = "use std.nn.Linear\n\nmodel M {\n    fc = Linear(4, 2)\n    forward(x: f32[B, 4]) -> f32[B, 2] { fc(x) }\n}\n";
    let cases: Vec<(PathBuf, Vec<String>, &str)> = vec![
        (write("none.model", model), vec![], "no-model"),
        (
            write(
                "missing.model",
                &format!("{model}\ntrain M {{\n    data = csv(\"nowhere.csv\")\n}}\n"),
            ),
            vec![],
            "io-error",
        ),
        (
            write(
                "nodata.model",
                &format!("{model}\ntrain M {{\n    epochs = 1\n}}\n"),
            ),
            vec![],
            "invalid-setting",
        ),
        (
            write(
                "shape.model",
                &format!("{model}\ntrain M {{\n    data = csv(\"d.csv\")\n}}\n"),
            ),
            vec![],
            "data-invalid",
        ),
        (
            write(
                "resume.model",
                &format!("{model}\ntrain M {{\n    data = csv(\"d.csv\")\n}}\n"),
            ),
            vec![
                "--resume".into(),
                dir.join("d.csv").to_string_lossy().into_owned(),
            ],
            "weights-corrupt",
        ),
    ];
    // Three feature columns, but the model takes four.
    write("d.csv", "1,2,3,0\n4,5,6,1\n7,8,9,0\n1,1,1,1\n");
    for (file, extra, code) in cases {
        let output = Command::new(MODELC)
            .arg("train")
            .arg(&file)
            .args(&extra)
            .arg("--output")
            .arg(dir.join("out.safetensors"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}: {stderr}",
            file.display()
        );
        assert!(
            stderr.contains(code),
            "{}: expected {code}: {stderr}",
            file.display()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
