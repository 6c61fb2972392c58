//! `modelc sweep` end to end, on a small copy of the digits MLP (16 hidden units, one or two
//! epochs per trial, so that each trial takes a fraction of a second): a grid sweep's CSV and
//! best line, the reproducibility of random and Bayesian sweeps per seed, `--json`, a trial
//! that diverges, and bad input.
//!
//! The search logic itself (grid order, bounds, TPE against random search) is unit-tested in
//! `runtime/src/train/sweep.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MODELC: &str = env!("CARGO_BIN_EXE_modelc");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh folder under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modelc-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The small digits MLP with `train` settings and a sweep block, written to `dir/name`. The
/// data path is absolute, so the file may live anywhere.
fn write_model(dir: &Path, name: &str, settings: &str, sweep: &str) -> PathBuf {
    let data = root().join("examples/data/digits.csv.gz");
    let sweep = if sweep.is_empty() {
        String::new()
    } else {
        format!("    sweep {{\n{sweep}\n    }}\n")
    };
    let text = format!(
        "use std.nn.Linear\n\n\
         model Tiny(hidden: int = 16, classes: int = 10) {{\n\
         \x20   fc1 = Linear(64, hidden)\n\
         \x20   fc2 = Linear(hidden, classes)\n\n\
         \x20   forward(x: f32[B, 64]) -> f32[B, classes] {{\n\
         \x20       x |> fc1 |> relu |> fc2\n\
         \x20   }}\n\
         }}\n\n\
         train Tiny {{\n\
         \x20   data    = csv(\"{}\", features = 0..64, label = 64)\n\
         \x20   metrics = [accuracy]\n\
         \x20   seed    = 0\n\
         {settings}\n\
         {sweep}}}\n",
        data.display()
    );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the model");
    path
}

fn sweep(file: &Path, args: &[&str]) -> Output {
    Command::new(MODELC)
        .arg("sweep")
        .arg(file)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("modelc runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The CSV as a header and rows of cells.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let csv = std::fs::read_to_string(path).expect("the CSV was written");
    let mut lines = csv.lines();
    let header = lines
        .next()
        .expect("a header")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|line| line.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// The trial number of the best row: the highest accuracy (column 3), then the lowest
/// validation loss (column 4), then the first.
fn best_in_csv(rows: &[Vec<String>]) -> usize {
    let mut best: Option<(f64, f64, usize)> = None;
    for row in rows {
        let (Ok(accuracy), Ok(loss)) = (row[3].parse::<f64>(), row[4].parse::<f64>()) else {
            continue;
        };
        if best
            .is_none_or(|(top, top_loss, _)| accuracy > top || (accuracy == top && loss < top_loss))
        {
            best = Some((accuracy, loss, row[0].parse().unwrap()));
        }
    }
    best.expect("a finished trial").2
}

/// The trial number in the `best: ... (..., trial N)` line.
fn best_printed(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("best: "))
        .unwrap_or_else(|| panic!("no best line:\n{stdout}"));
    line.rsplit("trial ")
        .next()
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no trial number in {line:?}"))
}

/// A grid over lr in [1e-3, 3e-3] and batch in [32, 64]: four trials in the written order, each
/// a CSV row with every column, the objective being the validation accuracy; the best line
/// names the CSV's best trial.
#[test]
fn grid_sweep_runs_every_combination_and_reports_the_best() {
    let dir = scratch("grid");
    let file = write_model(
        &dir,
        "grid.model",
        "    epochs  = 2",
        "        lr    in [1e-3, 3e-3]\n        batch in [32, 64]",
    );
    let csv = dir.join("trials.csv");
    let output = sweep(&file, &["--csv", csv.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("trial ")).count(),
        4,
        "{stdout}"
    );
    assert!(stdout.contains("grid search, 4 trials"), "{stdout}");
    assert!(
        stdout.contains("validation accuracy (maximized)"),
        "{stdout}"
    );
    let (header, rows) = read_csv(&csv);
    assert_eq!(
        header,
        [
            "trial",
            "lr",
            "batch",
            "objective",
            "val_loss",
            "val_accuracy",
            "seconds",
            "status"
        ]
    );
    assert_eq!(rows.len(), 4);
    let combinations: Vec<(String, String)> = rows
        .iter()
        .map(|row| (row[1].clone(), row[2].clone()))
        .collect();
    assert_eq!(
        combinations,
        [
            ("0.001", "32"),
            ("0.001", "64"),
            ("0.003", "32"),
            ("0.003", "64")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert_eq!(row[0], (index + 1).to_string());
        assert_eq!(row[7], "ok");
        // The objective is the validation accuracy.
        assert_eq!(row[3], row[5]);
        let accuracy: f64 = row[5].parse().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{row:?}");
        assert!(row[4].parse::<f64>().unwrap() > 0.0);
    }
    assert_eq!(best_printed(&stdout), best_in_csv(&rows), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Random and Bayesian sweeps (`--trials`, `--epochs 1`) propose the same trials and reach the
/// same objectives when rerun with the same seed, and other trials with another seed.
/// Bayesian search with 6 trials runs 5 at random, then one TPE proposal.
#[test]
fn random_and_bayesian_sweeps_are_reproducible_per_seed() {
    let dir = scratch("seeded");
    for (name, method, trials) in [
        ("random.model", "random(trials = 20)", "4"),
        ("bayesian.model", "bayesian(trials = 20)", "6"),
    ] {
        let file = write_model(
            &dir,
            name,
            "    epochs  = 3",
            &format!(
                "        lr    in log_uniform(1e-3, 1e-2)\n        batch in [32, 64]\n        method = {method}"
            ),
        );
        let run = |seed: &str, csv: &str| -> Vec<Vec<String>> {
            let csv = dir.join(csv);
            let output = sweep(
                &file,
                &[
                    "--seed",
                    seed,
                    "--trials",
                    trials,
                    "--epochs",
                    "1",
                    "--csv",
                    csv.to_str().unwrap(),
                ],
            );
            assert_eq!(
                output.status.code(),
                Some(0),
                "{name}: {}{}",
                text(&output.stdout),
                text(&output.stderr)
            );
            let stdout = text(&output.stdout);
            let (header, rows) = read_csv(&csv);
            assert_eq!(rows.len(), trials.parse::<usize>().unwrap(), "{name}");
            assert_eq!(best_printed(&stdout), best_in_csv(&rows), "{stdout}");
            assert_eq!(&header[1..3], ["lr", "batch"]);
            for row in &rows {
                let lr: f64 = row[1].parse().unwrap();
                assert!((1e-3..1e-2).contains(&lr), "{name}: {row:?}");
                assert!(row[2] == "32" || row[2] == "64", "{name}: {row:?}");
            }
            // Everything but the seconds.
            rows.into_iter()
                .map(|mut row| {
                    row.remove(6);
                    row
                })
                .collect()
        };
        let first = run("5", "a.csv");
        assert_eq!(
            first,
            run("5", "b.csv"),
            "{name}: a rerun with the same seed"
        );
        let other = run("6", "c.csv");
        assert_ne!(
            first.iter().map(|r| &r[1]).collect::<Vec<_>>(),
            other.iter().map(|r| &r[1]).collect::<Vec<_>>(),
            "{name}: another seed"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `--json` prints one object: the trials with their values by axis name, and the best; the
/// trial lines go to stderr. A trial whose loss diverges (SGD with lr = 1e12) is recorded as
/// failed and the sweep goes on; the objective without `metrics = [accuracy]` is the
/// validation loss.
#[test]
fn json_output_and_a_diverging_trial() {
    let dir = scratch("json");
    let file = write_model(
        &dir,
        "diverge.model",
        "    optimizer = sgd(lr = 0.1)\n    epochs  = 1",
        "        lr in [0.05, 1e12]",
    );
    let output = sweep(&file, &["--json"]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("trial ")).count(),
        2,
        "{stderr}"
    );
    assert!(stderr.contains("failed: the loss became"), "{stderr}");
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(value["method"], "grid");
    assert_eq!(value["objective"], "val_accuracy");
    let trials = value["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    assert_eq!(trials[0]["status"], "ok");
    assert_eq!(trials[1]["status"], "diverged");
    assert!(trials[1]["objective"].is_null());
    assert_eq!(trials[1]["values"]["lr"], 1e12);
    assert_eq!(value["best"]["trial"], 1);
    assert_eq!(value["best"]["values"]["lr"], 0.05);

    // Without `metrics = [accuracy]` the validation loss is minimized.
    let loss_file = dir.join("loss.model");
    let source = std::fs::read_to_string(&file)
        .unwrap()
        .replace("    metrics = [accuracy]\n", "")
        .replace("[0.05, 1e12]", "[0.05, 0.1]");
    std::fs::write(&loss_file, source).unwrap();
    let output = sweep(&loss_file, &["--json"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(value["objective"], "val_loss");
    assert_eq!(value["maximize"], false);
    let losses: Vec<f64> = value["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["objective"].as_f64().unwrap())
        .collect();
    let best = value["best"]["objective"].as_f64().unwrap();
    assert_eq!(best, losses.iter().copied().fold(f64::INFINITY, f64::min));
    let _ = std::fs::remove_dir_all(dir);
}

/// A train block without a sweep is `invalid-setting` (exit 1); a sweep whose every trial
/// diverges exits 1 with the diagnostics; `--trials 0` and `--epochs 0` are usage errors
/// (exit 2).
#[test]
fn sweep_reports_bad_input() {
    let dir = scratch("bad");
    let plain = write_model(&dir, "plain.model", "    epochs  = 1", "");
    let output = sweep(&plain, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid-setting"), "{stderr}");
    assert!(stderr.contains("has no `sweep` block"), "{stderr}");

    let diverging = write_model(
        &dir,
        "diverging.model",
        "    optimizer = sgd(lr = 0.1)\n    epochs  = 1",
        "        lr in [1e12]",
    );
    let output = sweep(&diverging, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("every trial of the sweep failed (1 of 1)"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let good = write_model(
        &dir,
        "good.model",
        "    epochs  = 1",
        "        lr in [1e-3]",
    );
    for args in [["--trials", "0"], ["--epochs", "0"]] {
        let output = sweep(&good, &args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
