//! `modelc sweep`: the hyper-parameter search of a `train` block's `sweep { ... }`.
//!
//! The trials come from [`modelc_runtime::train::sweep::Searcher`] (grid, random or TPE) and
//! are trained one after the other with the CPU backend, each with the same seed (the sweep's,
//! which also seeds the search), so that trials differ only in their hyper-parameters. A line
//! per finished trial goes to standard output (standard error with `--json`), then a table of
//! the trials sorted by objective, best first, and the best configuration. A trial whose
//! training diverges (status `diverged`) or meets another `runtime-error` (`failed`) is
//! recorded with the worst objective and the sweep goes on; any other error (the data cannot
//! be read, ...) stops it with the diagnostics and exit code 1, as does a sweep whose every
//! trial failed.

use crate::commands::{load_and_check_timed, print_diagnostics};
use modelc_compiler::check::settings::{SearchMethod, SweepTarget, TrainConfig};
use modelc_compiler::diag::Diagnostic;
use modelc_runtime::fsio;
use modelc_runtime::train::sweep::{apply, Objective, Observation, Searcher, Trial};
use modelc_runtime::train::{self as training, TrainOptions, TRAIN_DIVERGED};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

const EXIT_OK: u8 = 0;
const EXIT_DIAGNOSTICS: u8 = 1;

pub struct SweepRequest<'a> {
    pub file: &'a Path,
    pub model: Option<&'a str>,
    pub seed: Option<u64>,
    pub trials: Option<usize>,
    pub epochs: Option<usize>,
    pub csv: Option<&'a Path>,
    pub json: bool,
}

/// How a trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    /// The loss stopped being finite, or the objective is missing or not finite.
    Diverged,
    /// Another run-time error of the trial's training (`runtime-error`, e.g. a size limit
    /// reached with the trial's batch size).
    Failed,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }
}

/// One finished trial.
struct Record {
    /// 1-based.
    number: usize,
    trial: Trial,
    objective: Option<f64>,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    seconds: f64,
    status: Status,
    /// Why it failed, for the line printed.
    reason: Option<String>,
}

pub fn sweep(request: SweepRequest, color: bool) -> u8 {
    let (result, _, _) = match load_and_check_timed(request.file, color) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    let sources = &result.program.sources;
    let fail = |diagnostics: Vec<Diagnostic>| {
        print_diagnostics(&diagnostics, sources, color);
        EXIT_DIAGNOSTICS
    };
    let (checked, ref config) = match crate::train::train_block(
        &result,
        request.file,
        request.model,
        "add `train Model { data = csv(...) sweep { ... } }` to the file",
    ) {
        Ok(found) => found,
        Err(diagnostic) => return fail(vec![diagnostic]),
    };
    let model_name = config.model.clone();
    let Some(spec) = &config.sweep else {
        return fail(vec![Diagnostic::error(
            "invalid-setting",
            format!("the train block of `{model_name}` has no `sweep` block"),
        )
        .with_label(config.span, "this train block searches nothing")
        .with_help(
            "add e.g. `sweep { lr in log_uniform(1e-4, 1e-2)  method = random(trials = 8) }` to the block",
        )]);
    };
    let seed = request.seed.or(config.seed).unwrap_or(0);
    let mut searcher = match Searcher::new(spec, seed, request.trials) {
        Ok(searcher) => searcher,
        Err(message) => {
            return fail(vec![
                Diagnostic::error("invalid-setting", message).with_label(spec.span, "this sweep")
            ])
        }
    };
    let objective = Objective::for_config(config);
    let base_dir = request
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let options = TrainOptions {
        seed: Some(seed),
        epochs: request.epochs,
        checkpoint_dir: None,
        resume: None,
    };
    let method = match spec.method {
        SearchMethod::Grid => "grid",
        SearchMethod::Random { .. } => "random",
        SearchMethod::Bayesian { .. } => "bayesian (TPE)",
    };
    let total = searcher.trials();
    let progress = |line: &str| {
        if request.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    progress(&format!(
        "sweep `{model_name}`: {method} search, {total} trials, objective {}, seed {seed}",
        objective.describe()
    ));

    let mut records: Vec<Record> = Vec::new();
    let mut observations: Vec<Observation> = Vec::new();
    let mut last_failure: Option<Vec<Diagnostic>> = None;
    while let Some(trial) = searcher.next_trial(&observations) {
        let trial_config: TrainConfig = apply(config, &trial);
        let started = Instant::now();
        let outcome = training::train(
            &checked.graph,
            &model_name,
            &trial_config,
            &base_dir,
            &options,
            &mut |_| {},
        );
        let seconds = started.elapsed().as_secs_f64();
        let number = records.len() + 1;
        let record = match outcome {
            Ok(outcome) => {
                let last = outcome.history.last();
                let value = objective.of(&outcome.history);
                Record {
                    number,
                    trial: trial.clone(),
                    objective: value,
                    val_loss: last.and_then(|m| m.val_loss),
                    val_accuracy: last.and_then(|m| m.val_accuracy),
                    seconds,
                    status: if value.is_some() {
                        Status::Ok
                    } else {
                        Status::Diverged
                    },
                    reason: value
                        .is_none()
                        .then(|| format!("no finite {}", objective.column())),
                }
            }
            Err(diagnostics) if diagnostics.iter().any(|d| d.code == TRAIN_DIVERGED) => {
                let reason = diagnostics
                    .iter()
                    .find(|d| d.code == TRAIN_DIVERGED)
                    .map(|d| d.message.clone());
                // The training loop's divergence message; other run-time errors share the code.
                let status = if reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("the loss became"))
                {
                    Status::Diverged
                } else {
                    Status::Failed
                };
                last_failure = Some(diagnostics);
                Record {
                    number,
                    trial: trial.clone(),
                    objective: None,
                    val_loss: None,
                    val_accuracy: None,
                    seconds,
                    status,
                    reason,
                }
            }
            // The data, the model or the file system is wrong: every trial would fail alike.
            Err(diagnostics) => return fail(diagnostics),
        };
        progress(&trial_line(&record, total, objective));
        observations.push(Observation {
            trial,
            loss: record.objective.map(|v| objective.minimized(v)),
        });
        records.push(record);
    }

    if let Some(path) = request.csv {
        if let Err(diagnostic) =
            fsio::write_atomic(path, csv(&records, spec_targets(&searcher)).as_bytes())
        {
            return fail(vec![diagnostic]);
        }
    }
    let ranked = ranked(&records, objective);
    let best = ranked.first().copied().filter(|r| r.status == Status::Ok);
    if request.json {
        println!(
            "{}",
            json(&model_name, method, seed, objective, &records, best)
        );
    } else {
        print!("{}", table(&ranked, spec_targets(&searcher), objective));
        if let Some(best) = best {
            println!(
                "best: {} ({} {}, trial {})",
                assignments(&best.trial),
                objective.column(),
                show_objective(objective, best.objective),
                best.number
            );
        }
    }
    match best {
        Some(_) => EXIT_OK,
        None => {
            let mut diagnostics = last_failure.unwrap_or_default();
            diagnostics.push(
                Diagnostic::error(
                    TRAIN_DIVERGED,
                    format!(
                        "every trial of the sweep failed ({0} of {0})",
                        records.len()
                    ),
                )
                .with_label(spec.span, "this sweep")
                .with_help("narrow the ranges, e.g. lower learning rates"),
            );
            fail(diagnostics)
        }
    }
}

fn spec_targets(searcher: &Searcher) -> Vec<SweepTarget> {
    searcher.axes().iter().map(|axis| axis.target).collect()
}

/// The finished trials, best first; failed ones last, in trial order. Equal accuracies (common
/// on a small validation split) are ranked by validation loss, then by trial order.
fn ranked(records: &[Record], objective: Objective) -> Vec<&Record> {
    let mut ranked: Vec<&Record> = records.iter().collect();
    let key = |r: &Record| {
        (
            r.objective
                .map_or(f64::INFINITY, |v| objective.minimized(v)),
            r.val_loss.unwrap_or(f64::INFINITY),
        )
    };
    ranked.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
    });
    ranked
}

/// A value as printed: whole numbers for integer axes, else four significant digits.
fn short(target: SweepTarget, value: f64) -> String {
    if target.is_integer() {
        return format!("{}", value.round() as i64);
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs();
    if (1e-2..1e4).contains(&magnitude) {
        let digits = (3 - magnitude.log10().floor() as i32).max(0) as usize;
        let text = format!("{value:.digits$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    } else {
        let text = format!("{value:.3e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) if mantissa.contains('.') => format!(
                "{}e{exponent}",
                mantissa.trim_end_matches('0').trim_end_matches('.')
            ),
            _ => text,
        }
    }
}

/// `lr = 3.162e-3, batch = 64`
fn assignments(trial: &Trial) -> String {
    trial
        .values
        .iter()
        .map(|&(target, value)| format!("{} = {}", target.name(), short(target, value)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn show_objective(objective: Objective, value: Option<f64>) -> String {
    match (objective, value) {
        (_, None) => "-".to_string(),
        (Objective::ValAccuracy, Some(v)) => format!("{:.2}%", v * 100.0),
        (Objective::ValLoss, Some(v)) => format!("{v:.4}"),
    }
}

fn trial_line(record: &Record, total: usize, objective: Objective) -> String {
    let width = total.to_string().len();
    let mut line = format!(
        "trial {:>width$}/{total}  {}  ",
        record.number,
        assignments(&record.trial)
    );
    match record.status {
        Status::Ok => {
            let _ = write!(
                line,
                "{} {}",
                objective.column(),
                show_objective(objective, record.objective)
            );
        }
        Status::Diverged | Status::Failed => {
            let _ = write!(
                line,
                "failed: {}",
                record.reason.as_deref().unwrap_or("diverged")
            );
        }
    }
    let _ = write!(line, "  {:.1}s", record.seconds);
    line
}

/// The trials sorted by objective, as an aligned text table.
fn table(ranked: &[&Record], targets: Vec<SweepTarget>, objective: Objective) -> String {
    let mut header: Vec<String> = vec!["rank".into(), "trial".into()];
    header.extend(targets.iter().map(|t| t.name().to_string()));
    header.push(objective.column().to_string());
    // With accuracy as the objective, the loss too; with the loss, it would repeat it.
    let with_loss = objective == Objective::ValAccuracy;
    if with_loss {
        header.push("val_loss".into());
    }
    header.extend(["seconds".into(), "status".into()]);
    let mut rows = vec![header];
    for (rank, record) in ranked.iter().enumerate() {
        let mut row = vec![(rank + 1).to_string(), record.number.to_string()];
        row.extend(
            record
                .trial
                .values
                .iter()
                .map(|&(target, value)| short(target, value)),
        );
        row.push(show_objective(objective, record.objective));
        if with_loss {
            row.push(record.val_loss.map_or("-".into(), |v| format!("{v:.4}")));
        }
        row.push(format!("{:.1}", record.seconds));
        row.push(record.status.name().to_string());
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::from("\n");
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:>width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `trial,<axis...>,objective,val_loss,val_accuracy,seconds,status`, one row per trial in trial
/// order, full precision, empty cells for absent values.
fn csv(records: &[Record], targets: Vec<SweepTarget>) -> String {
    let optional = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v}"));
    let mut out = String::from("trial");
    for target in &targets {
        out.push(',');
        out.push_str(target.name());
    }
    out.push_str(",objective,val_loss,val_accuracy,seconds,status\n");
    for record in records {
        let _ = write!(out, "{}", record.number);
        for &(target, value) in &record.trial.values {
            if target.is_integer() {
                let _ = write!(out, ",{}", value.round() as i64);
            } else {
                let _ = write!(out, ",{value}");
            }
        }
        let _ = writeln!(
            out,
            ",{},{},{},{:.3},{}",
            optional(record.objective),
            optional(record.val_loss),
            optional(record.val_accuracy),
            record.seconds,
            record.status.name()
        );
    }
    out
}

fn json(
    model: &str,
    method: &str,
    seed: u64,
    objective: Objective,
    records: &[Record],
    best: Option<&Record>,
) -> String {
    use serde_json::{json, Map, Value};
    let number = |value: Option<f64>| value.map_or(Value::Null, |v| json!(v));
    let trial = |record: &Record| {
        let mut values = Map::new();
        for &(target, value) in &record.trial.values {
            let value = if target.is_integer() {
                json!(value.round() as i64)
            } else {
                json!(value)
            };
            values.insert(target.name().to_string(), value);
        }
        json!({
            "trial": record.number,
            "values": values,
            "objective": number(record.objective),
            "val_loss": number(record.val_loss),
            "val_accuracy": number(record.val_accuracy),
            "seconds": record.seconds,
            "status": record.status.name(),
        })
    };
    json!({
        "model": model,
        "method": method,
        "seed": seed,
        "objective": objective.column(),
        "maximize": objective.maximize(),
        "trials": records.iter().map(trial).collect::<Vec<_>>(),
        "best": best.map_or(Value::Null, trial),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::short;
    use modelc_compiler::check::settings::SweepTarget;

    #[test]
    fn values_print_short() {
        assert_eq!(short(SweepTarget::Batch, 64.0), "64");
        assert_eq!(short(SweepTarget::Lr, 0.0031622776601683794), "3.162e-3");
        assert_eq!(short(SweepTarget::Lr, 1e-3), "1e-3");
        assert_eq!(short(SweepTarget::Momentum, 0.9), "0.9");
        assert_eq!(short(SweepTarget::Momentum, 0.912345), "0.9123");
        assert_eq!(short(SweepTarget::L2, 0.0), "0");
    }
}
