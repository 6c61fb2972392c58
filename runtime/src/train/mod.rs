//! The training loop of a `train` block.
//!
//! 1. The data is loaded (paths relative to the `.model` file), cast to the model input's
//!    dtype and split with the seed ([`Dataset::split`]). f32 features are standardized per
//!    feature with a [`Standardizer`] fitted on the training split and applied to both splits
//!    (pixels included: the statistics are returned so that callers can apply them at
//!    inference).
//! 2. The step graph ([`build_step_graph`]) and the evaluation graph ([`build_eval_graph`]) are
//!    compiled once each with the CPU backend. Each epoch runs the step graph on the seeded
//!    batches of [`Dataset::epoch_batches`] (seed, epoch), feeding the params and the optimizer
//!    state back, with the learning rate of [`learning_rate`] computed here per step; then the
//!    evaluation graph runs over the validation split.
//! 3. After each epoch a checkpoint is written atomically (when asked): the params by name, the
//!    optimizer state under [`STATE_PREFIX`], and as metadata the completed epochs, the step
//!    count, the seed and the metrics so far. The data order is a pure function of (seed,
//!    epoch), so the completed epoch count is the whole RNG position, and resuming from a
//!    checkpoint gives the same params as an uninterrupted run with the same seed and epochs
//!    (the CPU backend is deterministic run to run).
//!
//! Dropout is active during training: each step's masks are drawn from the `seed` input of
//! the step graph, [`step_seed`]`(seed, step)`, so they too are a pure function of the run's
//! seed and the step count, and a resumed or repeated run draws the same masks. Batch-norm
//! running statistics (buffers) come back from each step with the params and are written to
//! checkpoints and the trained weights like them.

mod checkpoint;
pub mod sweep;

pub use checkpoint::{read_checkpoint, write_checkpoint, Checkpoint, STATE_PREFIX};

use crate::cpu::CpuExecutable;
use crate::data::{self, Dataset, LabelKind, LoadOptions, SequenceLayout, Standardizer};
use crate::session;
use modelc_compiler::check::settings::{
    check_settings, DataSource, DataSpec, ScheduleSpec, SettingsConfig, SettingsKind, TrainConfig,
};
use modelc_compiler::check::CheckResult;
use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::Tensor;
use modelc_compiler::ir::Graph;
use modelc_compiler::syntax::ast::Item;
use modelc_compiler::train::{
    build_eval_graph, build_step_graph, step_seed, takes_classes, TrainGraph, IGNORE_INDEX,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The diagnostic code of a train block that cannot be run as written (no `data`).
pub const TRAIN_INVALID: &str = "invalid-setting";
/// The diagnostic code of a model with other than one input (the data set feeds one).
pub const TRAIN_INPUTS: &str = "input-mismatch";
/// The diagnostic code of a checkpoint of another model, or resumed with another seed.
pub const RESUME_MISMATCH: &str = "resume-mismatch";
/// The diagnostic code of a loss that is no longer finite.
pub const TRAIN_DIVERGED: &str = "train-diverged";

/// What the command line adds to a `train` block.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Overrides the block's `seed` (default 0 when neither is given).
    pub seed: Option<u64>,
    /// Overrides the block's `epochs`: the total number of epochs, resumed ones included.
    pub epochs: Option<usize>,
    /// Where to write a checkpoint after each epoch (`epoch-0001.safetensors`, ...).
    pub checkpoint_dir: Option<PathBuf>,
    /// A checkpoint to continue from.
    pub resume: Option<PathBuf>,
}

/// What [`train`] reports as it goes: each step, and each finished epoch.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// A training step finished: the running means of the epoch so far.
    Step(StepProgress),
    /// An epoch finished, validation included.
    Epoch(&'a EpochMetrics),
}

/// The state of the epoch in progress after a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepProgress {
    /// 1-based epoch.
    pub epoch: usize,
    /// Batches done in this epoch, and in all.
    pub batch: usize,
    pub batches: usize,
    /// Mean loss and accuracy of the epoch's batches so far.
    pub loss: f64,
    pub accuracy: Option<f64>,
    /// Examples per second since the epoch started.
    pub samples_per_second: f64,
}

/// The metrics of one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Optimizer steps so far.
    pub step: u64,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    pub train_loss: f64,
    /// `None` for losses without an accuracy (`mse`).
    pub train_accuracy: Option<f64>,
    /// `None` without validation examples.
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// Training examples per second of the epoch's steps.
    pub samples_per_second: f64,
}

impl EpochMetrics {
    pub const CSV_HEADER: &'static str =
        "epoch,step,lr,train_loss,train_accuracy,val_loss,val_accuracy,samples_per_second";

    /// One CSV row (empty cells for absent values), in [`EpochMetrics::CSV_HEADER`] order.
    pub fn csv_row(&self) -> String {
        let optional = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v}"));
        format!(
            "{},{},{},{},{},{},{},{}",
            self.epoch,
            self.step,
            self.lr,
            self.train_loss,
            optional(self.train_accuracy),
            optional(self.val_loss),
            optional(self.val_accuracy),
            self.samples_per_second
        )
    }

    /// Parses a row of [`EpochMetrics::csv_row`].
    pub fn from_csv_row(row: &str) -> Option<EpochMetrics> {
        let cells: Vec<&str> = row.split(',').collect();
        if cells.len() != 8 {
            return None;
        }
        let optional = |cell: &str| -> Option<Option<f64>> {
            if cell.is_empty() {
                Some(None)
            } else {
                cell.parse().ok().map(Some)
            }
        };
        Some(EpochMetrics {
            epoch: cells[0].parse().ok()?,
            step: cells[1].parse().ok()?,
            lr: cells[2].parse().ok()?,
            train_loss: cells[3].parse().ok()?,
            train_accuracy: optional(cells[4])?,
            val_loss: optional(cells[5])?,
            val_accuracy: optional(cells[6])?,
            samples_per_second: cells[7].parse().ok()?,
        })
    }
}

/// The result of a training run.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The trained params by name, in declaration order: what `modelc run --weights` loads.
    pub params: Vec<(String, Tensor)>,
    /// One entry per completed epoch, resumed ones included.
    pub history: Vec<EpochMetrics>,
    /// The statistics the features were standardized with, when they were.
    pub standardizer: Option<Standardizer>,
    pub train_examples: usize,
    pub validation_examples: usize,
    pub seed: u64,
}

/// The checked `train` blocks of a checked file's root module, in source order (blocks with
/// errors are left out; their diagnostics are already in `result`).
pub fn train_configs(result: &CheckResult) -> Vec<TrainConfig> {
    let program = &result.program;
    let mut model_names: Vec<String> = result.models.iter().map(|m| m.name.clone()).collect();
    model_names.extend(program.modules[program.root].scope.keys().cloned());
    let mut configs = Vec::new();
    for item in &program.modules[program.root].ast.items {
        if let Item::Train(decl) = item {
            let mut diagnostics = Vec::new();
            if let Some(SettingsConfig::Train(config)) =
                check_settings(SettingsKind::Train, decl, &model_names, &mut diagnostics)
            {
                configs.push(config);
            }
        }
    }
    configs
}

/// The learning rate of the step with 0-based index `step` in 0-based `epoch`, of
/// `total_steps` in the run:
///
/// - `constant`: `lr`;
/// - `step(every, gamma)`: `lr * gamma^floor(epoch / every)`;
/// - `cosine(warmup)`: `lr * (step + 1) / warmup` during the warm-up, then
///   `lr * (1 + cos(pi * p)) / 2` with `p = (step - warmup) / (total_steps - warmup)`;
/// - `linear(warmup)`: the same warm-up, then `lr * (1 - p)`.
pub fn learning_rate(
    schedule: ScheduleSpec,
    lr: f64,
    step: u64,
    epoch: usize,
    total_steps: u64,
) -> f64 {
    let decay = |warmup: usize, shape: &dyn Fn(f64) -> f64| {
        let warmup = warmup as u64;
        if step < warmup {
            lr * (step + 1) as f64 / warmup as f64
        } else {
            let span = total_steps.saturating_sub(warmup).max(1) as f64;
            let progress = ((step - warmup) as f64 / span).min(1.0);
            lr * shape(progress)
        }
    };
    match schedule {
        ScheduleSpec::Constant => lr,
        ScheduleSpec::Step { every, gamma } => {
            lr * gamma.powi((epoch / every.max(1)).min(i32::MAX as usize) as i32)
        }
        ScheduleSpec::Cosine { warmup } => {
            decay(warmup, &|p| 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
        }
        ScheduleSpec::Linear { warmup } => decay(warmup, &|p| 1.0 - p),
    }
}

/// Trains `forward` (the graph of `model_name`) as `config` says; `on_progress` is called after
/// each step and each epoch (for progress bars and lines). Relative data paths are resolved against `base_dir`.
pub fn train(
    forward: &Graph,
    model_name: &str,
    config: &TrainConfig,
    base_dir: &Path,
    options: &TrainOptions,
    on_progress: &mut dyn FnMut(Progress<'_>),
) -> Result<TrainOutcome, Vec<Diagnostic>> {
    let one = |d: Diagnostic| vec![d];
    if forward.inputs.len() != 1 {
        return Err(vec![Diagnostic::error(
            TRAIN_INPUTS,
            format!(
                "training feeds one input from the data set, but `{model_name}` takes {}",
                forward.inputs.len()
            ),
        )
        .with_label(config.span, "this train block")]);
    }
    let resume = match &options.resume {
        Some(path) => Some(read_checkpoint(path).map_err(one)?),
        None => None,
    };
    if let Some(checkpoint) = &resume {
        if checkpoint.model != model_name {
            return Err(vec![Diagnostic::error(
                RESUME_MISMATCH,
                format!(
                    "the checkpoint is of model `{}`, not `{model_name}`",
                    checkpoint.model
                ),
            )]);
        }
        if options.seed.is_some_and(|seed| seed != checkpoint.seed) {
            return Err(vec![Diagnostic::error(
                RESUME_MISMATCH,
                format!(
                    "the checkpoint was trained with seed {}, not {}",
                    checkpoint.seed,
                    options.seed.unwrap_or_default()
                ),
            )
            .with_help("resume without --seed, or with the checkpoint's seed")]);
        }
    }
    let seed = resume
        .as_ref()
        .map(|c| c.seed)
        .or(options.seed)
        .or(config.seed)
        .unwrap_or(0);
    let epochs = options.epochs.unwrap_or(config.epochs);

    // The graphs.
    let step_graph = build_step_graph(forward, config)?;
    let eval_graph = build_eval_graph(forward, config.loss)?;

    // The data.
    let Some(spec) = &config.data else {
        return Err(vec![Diagnostic::error(
            TRAIN_INVALID,
            format!("the train block of `{model_name}` says no `data`"),
        )
        .with_label(config.span, "this train block")
        .with_help(
            "add e.g. `data = csv(\"data.csv\", label = 4)` to the block",
        )]);
    };
    let output_ty = &forward.node(forward.outputs[0]).ty;
    let classes = output_ty
        .shape
        .last()
        .and_then(|dim| dim.as_const())
        .and_then(|c| usize::try_from(c).ok())
        .filter(|_| takes_classes(config.loss));
    let load_options = LoadOptions {
        labels: LabelKind::for_loss(config.loss, classes),
        seed,
    };
    let mut dataset = data::load(spec, base_dir, &load_options).map_err(one)?;
    let input_ty = forward.node(forward.inputs[0]).ty.clone();
    dataset.cast_features(input_ty.dtype).map_err(one)?;
    check_feature_shape(&dataset, &input_ty.shape, spec)?;
    let (mut train_set, mut validation_set) = dataset.split(config.split, seed);
    if train_set.is_empty() {
        return Err(vec![Diagnostic::error(
            data::DATA_INVALID,
            format!(
                "the split {} leaves no training examples out of {}",
                config.split,
                dataset.len()
            ),
        )
        .with_label(config.span, "this train block")]);
    }
    let standardizer = Standardizer::fit(&train_set);
    if let Some(standardizer) = &standardizer {
        standardizer.apply(&mut train_set);
        standardizer.apply(&mut validation_set);
    }
    let label_tail: Option<Vec<usize>> = step_graph.labels.shape[1.min(step_graph.labels.rank())..]
        .iter()
        .map(|dim| dim.as_const().and_then(|c| usize::try_from(c).ok()))
        .collect();

    // The executables.
    let compile = |graph: &Graph| {
        CpuExecutable::compile(graph).map_err(|message| {
            vec![Diagnostic::error(
                "internal-error",
                format!("the training graph did not compile: {message}"),
            )]
        })
    };
    let step_executable = compile(&step_graph.graph)?;
    let eval_executable = compile(&eval_graph.graph)?;
    let no_params = HashMap::new();
    let step_bound = step_executable
        .bind(&no_params)
        .map_err(|e| vec![e.to_diagnostic()])?;
    let eval_bound = eval_executable
        .bind(&no_params)
        .map_err(|e| vec![e.to_diagnostic()])?;

    // Params and optimizer state: initialized or resumed.
    let mut params: Vec<Tensor>;
    let mut state: Vec<Tensor>;
    let mut history = Vec::new();
    let mut step: u64 = 0;
    let mut start_epoch = 0;
    let initial: HashMap<String, Tensor> = session::initialize_params(forward, seed)
        .map_err(one)?
        .into_iter()
        .collect();
    match resume {
        Some(checkpoint) => {
            params = take_named(&step_graph, &checkpoint.tensors, false)?;
            state = take_named(&step_graph, &checkpoint.tensors, true)?;
            history = checkpoint.history;
            step = checkpoint.step;
            start_epoch = checkpoint.epoch;
        }
        None => {
            params = step_graph
                .params
                .iter()
                .map(|p| initial[&p.name].clone())
                .collect();
            state = step_graph
                .state
                .iter()
                .map(|slot| zeros_like(&params[slot.param]))
                .collect();
        }
    }

    let batch_size = config.batch.max(1);
    let batches_per_epoch = train_set.len().div_ceil(batch_size) as u64;
    let total_steps = batches_per_epoch * epochs as u64;
    let base_lr = config.optimizer.lr();
    for epoch in start_epoch..epochs {
        let started = Instant::now();
        let mut loss_sum = 0.0f64;
        let mut weight_sum = 0.0f64;
        let mut correct_sum = 0.0f64;
        let mut lr = base_lr;
        let mut examples = 0usize;
        for (index, batch) in train_set
            .epoch_batches(batch_size, seed, epoch as u64)
            .enumerate()
        {
            examples += batch.inputs.shape.first().copied().unwrap_or(0);
            lr = learning_rate(config.schedule, base_lr, step, epoch, total_steps);
            step += 1;
            let labels = shape_labels(batch.labels, label_tail.as_deref())?;
            let weight = label_weight(&labels);
            let mut inputs = Vec::with_capacity(4 + params.len() + state.len());
            inputs.push(batch.inputs);
            inputs.push(labels);
            inputs.append(&mut params);
            inputs.append(&mut state);
            inputs.push(scalar(lr as f32));
            inputs.push(scalar(step as f32));
            inputs.push(Tensor::full(
                Vec::new(),
                modelc_compiler::ir::Literal::I64(step_seed(seed, step)),
            ));
            let outputs = step_bound
                .run(&inputs)
                .map_err(|e| vec![separator_hint(e.to_diagnostic(), spec)])?;
            let mut outputs = outputs.into_iter();
            let loss = first_f32(outputs.next());
            let correct = first_f32(outputs.next());
            params = outputs.by_ref().take(step_graph.params.len()).collect();
            state = outputs.collect();
            if !loss.is_finite() {
                return Err(vec![Diagnostic::error(
                    TRAIN_DIVERGED,
                    format!(
                        "the loss became {loss} at step {step} (epoch {})",
                        epoch + 1
                    ),
                )
                .with_label(config.span, "trained with these settings")
                .with_help(
                    "lower the learning rate, or check the data for huge values",
                )]);
            }
            loss_sum += f64::from(loss) * weight;
            weight_sum += weight;
            correct_sum += f64::from(correct);
            on_progress(Progress::Step(StepProgress {
                epoch: epoch + 1,
                batch: index + 1,
                batches: batches_per_epoch as usize,
                loss: loss_sum / weight_sum.max(1.0),
                accuracy: step_graph
                    .has_accuracy
                    .then(|| correct_sum / weight_sum.max(1.0)),
                samples_per_second: examples as f64 / started.elapsed().as_secs_f64().max(1e-9),
            }));
        }
        let seconds = started.elapsed().as_secs_f64();
        let (val_loss, val_accuracy) = if validation_set.is_empty() {
            (None, None)
        } else {
            let (loss, accuracy) = evaluate_split(
                &eval_bound,
                &validation_set,
                &params,
                batch_size.max(256),
                label_tail.as_deref(),
            )?;
            (Some(loss), accuracy.filter(|_| eval_graph.has_accuracy))
        };
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            step,
            lr,
            train_loss: loss_sum / weight_sum.max(1.0),
            train_accuracy: step_graph
                .has_accuracy
                .then(|| correct_sum / weight_sum.max(1.0)),
            val_loss,
            val_accuracy,
            samples_per_second: train_set.len() as f64 / seconds.max(1e-9),
        };
        on_progress(Progress::Epoch(&metrics));
        history.push(metrics);
        if let Some(dir) = &options.checkpoint_dir {
            std::fs::create_dir_all(dir).map_err(|error| {
                vec![Diagnostic::error(
                    "io-error",
                    format!("cannot create `{}`: {error}", dir.display()),
                )]
            })?;
            let checkpoint = Checkpoint {
                model: model_name.to_string(),
                epoch: epoch + 1,
                step,
                seed,
                history: history.clone(),
                tensors: named(&step_graph, &params, &state),
            };
            let path = dir.join(format!("epoch-{:04}.safetensors", epoch + 1));
            write_checkpoint(&path, &checkpoint).map_err(one)?;
        }
    }
    Ok(TrainOutcome {
        params: step_graph
            .params
            .iter()
            .map(|p| p.name.clone())
            .zip(params)
            .collect(),
        history,
        standardizer,
        train_examples: train_set.len(),
        validation_examples: validation_set.len(),
        seed,
    })
}

/// The mean loss and the accuracy of the params over a data set, through the evaluation graph.
fn evaluate_split(
    bound: &crate::cpu::Bound<'_>,
    dataset: &Dataset,
    params: &[Tensor],
    batch_size: usize,
    label_tail: Option<&[usize]>,
) -> Result<(f64, Option<f64>), Vec<Diagnostic>> {
    let mut loss_sum = 0.0;
    let mut correct_sum = 0.0;
    let mut weight_sum = 0.0;
    for batch in dataset.ordered_batches(batch_size) {
        let labels = shape_labels(batch.labels, label_tail)?;
        let weight = label_weight(&labels);
        let mut inputs = Vec::with_capacity(2 + params.len());
        inputs.push(batch.inputs);
        inputs.push(labels);
        inputs.extend(params.iter().cloned());
        let outputs = bound.run(&inputs).map_err(|e| vec![e.to_diagnostic()])?;
        let mut outputs = outputs.into_iter();
        loss_sum += f64::from(first_f32(outputs.next())) * weight;
        correct_sum += f64::from(first_f32(outputs.next()));
        weight_sum += weight;
    }
    Ok((
        loss_sum / weight_sum.max(1.0),
        Some(correct_sum / weight_sum.max(1.0)),
    ))
}

/// Adds a help to the error of a model that cannot embed the separator of a causal synthetic
/// task (token id `vocab`, which an embedding of `vocab` rows rejects).
fn separator_hint(diagnostic: Diagnostic, spec: &DataSpec) -> Diagnostic {
    match spec.source {
        DataSource::Synthetic {
            vocab,
            layout: SequenceLayout::Causal,
            ..
        } if diagnostic.help.is_none()
            && diagnostic
                .message
                .contains(&format!("index {vocab} is out of range 0..{vocab} ")) =>
        {
            diagnostic.with_help(format!(
                "the causal layout separates prompt and answer with token id {vocab}: an embedding needs {} rows",
                vocab + 1
            ))
        }
        _ => diagnostic,
    }
}

/// The features of one example must have the model input's shape after the batch axis.
fn check_feature_shape(
    dataset: &Dataset,
    input_shape: &[modelc_compiler::ir::Dim],
    spec: &DataSpec,
) -> Result<(), Vec<Diagnostic>> {
    let tail = &input_shape[1.min(input_shape.len())..];
    let fits = tail.len() == dataset.feature_shape.len()
        && tail
            .iter()
            .zip(&dataset.feature_shape)
            .all(|(dim, &size)| dim.as_const().is_none_or(|c| c == size as i64));
    if fits {
        Ok(())
    } else {
        let shape: Vec<String> = tail.iter().map(|d| d.to_string()).collect();
        let help = match &spec.source {
            DataSource::Synthetic { length, layout, .. } => {
                let (other, width) = match layout {
                    SequenceLayout::Aligned => ("causal", 2 * length),
                    SequenceLayout::Causal => ("aligned", *length),
                };
                format!(
                    "the {} layout gives {} tokens per example; `layout = \"{other}\"` gives {width}",
                    layout.name(),
                    dataset.feature_shape.first().copied().unwrap_or(0)
                )
            }
            _ => "give the CSV a `shape = [...]` matching the model input, or select other feature columns".to_string(),
        };
        Err(vec![Diagnostic::error(
            data::DATA_INVALID,
            format!(
                "each example has features of shape {:?}, but the model takes [{}] after the batch axis",
                dataset.feature_shape,
                shape.join(", ")
            ),
        )
        .with_label(spec.span, "the data set given here")
        .with_help(help)])
    }
}

/// Reshapes a batch's labels `[b, ...]` to `[b, tail...]` (the step graph's label shape).
fn shape_labels(labels: Tensor, tail: Option<&[usize]>) -> Result<Tensor, Vec<Diagnostic>> {
    let Some(tail) = tail else {
        return Ok(labels);
    };
    let rows = labels.shape.first().copied().unwrap_or(1);
    let mut shape = vec![rows];
    shape.extend_from_slice(tail);
    if shape == labels.shape {
        return Ok(labels);
    }
    let count: usize = shape.iter().product();
    if count != labels.len() {
        return Err(vec![Diagnostic::error(
            data::DATA_INVALID,
            format!(
                "the labels have shape {:?}, but the loss needs {:?} for this model's output",
                labels.shape, shape
            ),
        )]);
    }
    Ok(Tensor {
        shape,
        data: labels.data,
    })
}

/// How many positions of a label tensor count: class labels other than [`IGNORE_INDEX`], every
/// target element.
fn label_weight(labels: &Tensor) -> f64 {
    match labels.as_i64() {
        Some(values) => values.iter().filter(|&&v| v != IGNORE_INDEX).count() as f64,
        None => labels.len() as f64,
    }
}

fn scalar(value: f32) -> Tensor {
    Tensor::from_f32(Vec::new(), vec![value]).expect("a scalar has one element")
}

fn first_f32(tensor: Option<Tensor>) -> f32 {
    tensor
        .as_ref()
        .and_then(|t| t.as_f32().and_then(|v| v.first().copied()))
        .unwrap_or(f32::NAN)
}

fn zeros_like(tensor: &Tensor) -> Tensor {
    Tensor::from_f32(tensor.shape.clone(), vec![0.0; tensor.len()])
        .expect("same shape, same length")
}

/// Params by name, then the state under [`STATE_PREFIX`].
fn named(graph: &TrainGraph, params: &[Tensor], state: &[Tensor]) -> Vec<(String, Tensor)> {
    let mut out: Vec<(String, Tensor)> = graph
        .params
        .iter()
        .map(|p| p.name.clone())
        .zip(params.iter().cloned())
        .collect();
    out.extend(
        graph
            .state
            .iter()
            .map(|slot| format!("{STATE_PREFIX}{}", slot.name))
            .zip(state.iter().cloned()),
    );
    out
}

/// The params (or, with `state`, the optimizer state) of a checkpoint, in the graph's order,
/// each checked against its type.
fn take_named(
    graph: &TrainGraph,
    tensors: &[(String, Tensor)],
    state: bool,
) -> Result<Vec<Tensor>, Vec<Diagnostic>> {
    let wanted: Vec<(String, &modelc_compiler::ir::TensorType)> = if state {
        graph
            .state
            .iter()
            .map(|slot| {
                (
                    format!("{STATE_PREFIX}{}", slot.name),
                    &graph.params[slot.param].ty,
                )
            })
            .collect()
    } else {
        graph
            .params
            .iter()
            .map(|p| (p.name.clone(), &p.ty))
            .collect()
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (name, ty) in wanted {
        let shape: Vec<usize> = ty
            .shape
            .iter()
            .map(|d| d.as_const().unwrap_or(-1) as usize)
            .collect();
        match tensors.iter().find(|(n, _)| *n == name) {
            Some((_, tensor)) if tensor.shape == shape && tensor.dtype() == ty.dtype => {
                out.push(tensor.clone())
            }
            Some((_, tensor)) => problems.push(Diagnostic::error(
                "weights-shape",
                format!(
                    "the checkpoint's `{name}` has shape {:?}, but the model needs {ty}",
                    tensor.shape
                ),
            )),
            None => problems.push(
                Diagnostic::error(
                    "weights-missing",
                    format!("the checkpoint has no tensor `{name}`"),
                )
                .with_help("was it written for another model or optimizer?"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
