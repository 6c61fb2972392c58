//! `modelc train`: trains a model as its `train` block says, with the CPU backend.
//!
//! Prints one progress line per epoch on stderr, writes the trained weights (safetensors,
//! atomically, in the names `modelc run --weights` loads), and optionally a checkpoint per
//! epoch, the metrics as CSV and the loss and accuracy curves as SVG (next to the CSV).

use crate::commands::{load_and_check_timed, print_diagnostics};
use modelc_compiler::check::settings::TrainConfig;
use modelc_compiler::check::{select_model, CheckResult, CheckedModel};
use modelc_compiler::diag::Diagnostic;
use modelc_runtime::train::{self as training, EpochMetrics, Progress, StepProgress, TrainOptions};
use modelc_runtime::{fsio, weights};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

const EXIT_OK: u8 = 0;
const EXIT_DIAGNOSTICS: u8 = 1;

pub struct TrainRequest<'a> {
    pub file: &'a Path,
    pub seed: Option<u64>,
    pub epochs: Option<usize>,
    pub output: Option<&'a Path>,
    pub checkpoint: Option<&'a Path>,
    pub resume: Option<&'a Path>,
    pub metrics: Option<&'a Path>,
    pub model: Option<&'a str>,
}

pub fn train(request: TrainRequest, color: bool) -> u8 {
    let (result, _, _) = match load_and_check_timed(request.file, color) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    let sources = &result.program.sources;
    let fail = |diagnostics: Vec<Diagnostic>| {
        print_diagnostics(&diagnostics, sources, color);
        EXIT_DIAGNOSTICS
    };
    let (checked, ref config) = match train_block(
        &result,
        request.file,
        request.model,
        "add `train Model { data = csv(...) ... }` to the file",
    ) {
        Ok(found) => found,
        Err(diagnostic) => return fail(vec![diagnostic]),
    };
    let model_name = config.model.clone();
    let base_dir = request
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let options = TrainOptions {
        seed: request.seed,
        epochs: request.epochs,
        checkpoint_dir: request.checkpoint.map(Path::to_path_buf),
        resume: request.resume.map(Path::to_path_buf),
    };
    let total_epochs = request.epochs.unwrap_or(config.epochs);
    // On a terminal, a bar redrawn in place during each epoch (at most ten times a second);
    // every finished epoch gets its own line either way.
    let terminal = std::io::stderr().is_terminal();
    let mut last_draw: Option<Instant> = None;
    let mut progress = |event: Progress<'_>| match event {
        Progress::Step(step) if terminal => {
            if last_draw.is_none_or(|at| at.elapsed().as_millis() >= 100)
                || step.batch == step.batches
            {
                last_draw = Some(Instant::now());
                eprint!("\r{}\x1b[K", step_bar(&step, total_epochs));
            }
        }
        Progress::Step(_) => {}
        Progress::Epoch(metrics) => {
            if terminal {
                eprint!("\r\x1b[K");
            }
            eprintln!("{}", progress_line(metrics, total_epochs));
        }
    };
    let outcome = match training::train(
        &checked.graph,
        &model_name,
        config,
        &base_dir,
        &options,
        &mut progress,
    ) {
        Ok(outcome) => outcome,
        Err(diagnostics) => return fail(diagnostics),
    };

    let output: PathBuf = match request.output {
        Some(path) => path.to_path_buf(),
        None => request.file.with_extension("safetensors"),
    };
    let mut metadata = HashMap::from([
        ("model".to_string(), model_name.clone()),
        ("seed".to_string(), outcome.seed.to_string()),
        ("epochs".to_string(), outcome.history.len().to_string()),
        ("producer".to_string(), "modelc train".to_string()),
    ]);
    if let Some(standardizer) = &outcome.standardizer {
        metadata.extend(standardizer.to_metadata());
    }
    let written = weights::write_safetensors(&outcome.params, Some(metadata))
        .and_then(|bytes| fsio::write_atomic(&output, &bytes));
    if let Err(diagnostic) = written {
        return fail(vec![diagnostic]);
    }
    if let Some(path) = request.metrics {
        let mut csv = String::from(EpochMetrics::CSV_HEADER);
        csv.push('\n');
        for metrics in &outcome.history {
            csv.push_str(&metrics.csv_row());
            csv.push('\n');
        }
        if let Err(diagnostic) = fsio::write_atomic(path, csv.as_bytes()) {
            return fail(vec![diagnostic]);
        }
        let svg_path = path.with_extension("svg");
        if let Err(diagnostic) =
            fsio::write_atomic(&svg_path, curves_svg(&outcome.history).as_bytes())
        {
            return fail(vec![diagnostic]);
        }
    }
    let last = outcome.history.last();
    let accuracy = last
        .and_then(|m| m.val_accuracy)
        .map(|a| format!(", validation accuracy {:.2}%", a * 100.0))
        .unwrap_or_default();
    println!(
        "trained `{model_name}` for {} epochs ({} training, {} validation examples, seed {}){accuracy}; wrote {} params to {}",
        outcome.history.len(),
        outcome.train_examples,
        outcome.validation_examples,
        outcome.seed,
        outcome.params.len(),
        output.display()
    );
    EXIT_OK
}

/// The model to train and its train block: `model` by name, or the model of the file's first
/// train block. `no_block_help` is the help of the diagnostic for a file without one.
pub fn train_block<'r>(
    result: &'r CheckResult,
    file: &Path,
    model: Option<&str>,
    no_block_help: &str,
) -> Result<(&'r CheckedModel, TrainConfig), Diagnostic> {
    let configs = training::train_configs(result);
    let model_name = match model {
        Some(name) => name.to_string(),
        None => match configs.first() {
            Some(config) => config.model.clone(),
            None => {
                return Err(Diagnostic::error(
                    "no-model",
                    format!("`{}` has no train block", file.display()),
                )
                .with_help(no_block_help))
            }
        },
    };
    let checked = select_model(result, Some(&model_name))?;
    let Some(config) = configs.into_iter().find(|c| c.model == model_name) else {
        return Err(Diagnostic::error(
            "no-model",
            format!("the file has no train block for `{model_name}`"),
        )
        .with_help(format!("add `train {model_name} {{ ... }}` to the file")));
    };
    Ok((checked, config))
}

/// `epoch 3/10 [=========>          ] 45/90  loss 0.3120  acc 91.20%  2301 samples/s`
fn step_bar(step: &StepProgress, total: usize) -> String {
    const WIDTH: usize = 24;
    let done = WIDTH * step.batch / step.batches.max(1);
    let bar: String = (0..WIDTH)
        .map(|i| match i.cmp(&done) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        })
        .collect();
    let mut line = format!(
        "epoch {}/{total} [{bar}] {}/{}  loss {:.4}",
        step.epoch, step.batch, step.batches, step.loss
    );
    if let Some(accuracy) = step.accuracy {
        let _ = write!(line, "  acc {:.2}%", accuracy * 100.0);
    }
    let _ = write!(line, "  {:.0} samples/s", step.samples_per_second);
    line
}

fn progress_line(m: &EpochMetrics, total: usize) -> String {
    let mut line = format!("epoch {}/{total}  loss {:.4}", m.epoch, m.train_loss);
    if let Some(accuracy) = m.train_accuracy {
        let _ = write!(line, "  acc {:.2}%", accuracy * 100.0);
    }
    let _ = write!(line, "  {:.0} samples/s", m.samples_per_second);
    if let Some(loss) = m.val_loss {
        let _ = write!(line, "  val_loss {loss:.4}");
    }
    if let Some(accuracy) = m.val_accuracy {
        let _ = write!(line, "  val_acc {:.2}%", accuracy * 100.0);
    }
    let _ = write!(line, "  lr {:.3e}", m.lr);
    line
}

/// A curve: its name, its colour and one value per epoch.
type Series<'a> = (&'a str, &'a str, Vec<Option<f64>>);

/// Two panels side by side: the training and validation loss, and the accuracies, per epoch,
/// as polylines over axes labelled with their ranges.
fn curves_svg(history: &[EpochMetrics]) -> String {
    const WIDTH: f64 = 360.0;
    const HEIGHT: f64 = 240.0;
    const MARGIN: f64 = 40.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n",
        2.0 * WIDTH,
        HEIGHT
    );
    let panels: [(&str, [Series; 2]); 2] = [
        (
            "loss",
            [
                (
                    "train",
                    "#1f77b4",
                    history.iter().map(|m| Some(m.train_loss)).collect(),
                ),
                (
                    "validation",
                    "#ff7f0e",
                    history.iter().map(|m| m.val_loss).collect(),
                ),
            ],
        ),
        (
            "accuracy",
            [
                (
                    "train",
                    "#1f77b4",
                    history.iter().map(|m| m.train_accuracy).collect(),
                ),
                (
                    "validation",
                    "#ff7f0e",
                    history.iter().map(|m| m.val_accuracy).collect(),
                ),
            ],
        ),
    ];
    for (panel, (title, series)) in panels.iter().enumerate() {
        let left = panel as f64 * WIDTH + MARGIN;
        let right = (panel + 1) as f64 * WIDTH - 10.0;
        let top = 20.0;
        let bottom = HEIGHT - MARGIN;
        let values: Vec<f64> = series
            .iter()
            .flat_map(|(_, _, v)| v.iter().flatten().copied())
            .filter(|v| v.is_finite())
            .collect();
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (low, high) = if values.is_empty() {
            (0.0, 1.0)
        } else if high - low < 1e-12 {
            (low - 0.5, high + 0.5)
        } else {
            (low, high)
        };
        let _ = writeln!(
            svg,
            "<text x=\"{left}\" y=\"14\">{title} (epochs 1..{})</text>",
            history.len()
        );
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"#888\" points=\"{left},{top} {left},{bottom} {right},{bottom}\"/>"
        );
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{high:.3}</text>\n<text x=\"{}\" y=\"{bottom}\" text-anchor=\"end\">{low:.3}</text>",
            left - 3.0,
            top + 4.0,
            left - 3.0
        );
        let count = history.len().max(2) - 1;
        for (index, (name, colour, values)) in series.iter().enumerate() {
            let points: Vec<String> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let v = (*v)?;
                    v.is_finite().then(|| {
                        let x = left + (right - left) * i as f64 / count as f64;
                        let y = bottom - (bottom - top) * (v - low) / (high - low);
                        format!("{x:.1},{y:.1}")
                    })
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
                points.join(" ")
            );
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>",
                right - 70.0,
                top + 12.0 + 14.0 * index as f64
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_bar_shows_the_epochs_progress_and_running_means() {
        let step = StepProgress {
            epoch: 3,
            batch: 45,
            batches: 90,
            loss: 0.312,
            accuracy: Some(0.912),
            samples_per_second: 2301.4,
        };
        assert_eq!(
            step_bar(&step, 10),
            "epoch 3/10 [============>           ] 45/90  loss 0.3120  acc 91.20%  2301 samples/s"
        );
        let last = StepProgress {
            batch: 90,
            accuracy: None,
            ..step
        };
        assert!(step_bar(&last, 10).contains("[========================] 90/90  loss"));
    }
}
