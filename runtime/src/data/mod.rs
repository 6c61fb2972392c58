//! The data side of training: loading a `train` block's `data` into a [`Dataset`], seeded
//! shuffling, the train/validation split, batching, and generated sequence tasks.
//!
//! # The data set
//!
//! A [`Dataset`] holds `n` examples. Example `i`'s features are the `i`-th block of
//! [`Dataset::feature_shape`]'s element count in [`Dataset::features`] (row-major, so the whole
//! buffer is a tensor of shape `[n, feature_shape...]`), and its label is the `i`-th block of
//! [`Dataset::label_shape`]'s element count in [`Dataset::labels`] (`[n, label_shape...]`):
//!
//! | source | features | feature shape | labels | label shape |
//! | --- | --- | --- | --- | --- |
//! | `csv(...)` | f32 | `shape`, or `[columns]` | one per row | `[]` |
//! | `npy(x, y)`, `safetensors(...)` | f32 (floats, bool) or i64 (integers) | `x`'s shape after the first axis | from `y` | `y`'s shape after the first axis |
//! | `synthetic(...)` | i64 token ids | `[length]` or `[2 * length]` | class labels per position | same as the features |
//!
//! Features are kept as f32 or i64 ([`Features`]), so that token ids stay exact; a model input
//! of the other dtype is fed after [`Dataset::cast_features`]. Labels are class indices
//! ([`Labels::Classes`], for `cross_entropy` and `nll`) or real-valued targets
//! ([`Labels::Targets`], for `mse` and `bce_with_logits`); which one a loader produces is the
//! caller's choice ([`LabelKind`], usually [`LabelKind::for_loss`]). Class labels with a
//! non-empty label shape (one label per token) may hold [`IGNORE_INDEX`] at positions that have
//! no target; the loss and the accuracy skip them.
//!
//! # Reproducibility
//!
//! Every random choice (the split, each epoch's order, the synthetic examples) comes from a
//! [`rand_chacha::ChaCha8Rng`] seeded with `seed_from_u64` and set to a stream of its own
//! ([`order::SPLIT_STREAM`], [`order::EPOCH_STREAM`], [`synthetic::SYNTHETIC_STREAM`]), and
//! the conversion from random bits to indices is written here, so the results are the same bit
//! for bit on every platform and across `rand` upgrades.
//!
//! # Errors
//!
//! Every problem is a diagnostic; no input panics. A file that cannot be read is an `io-error`,
//! an `.npy` file that is not one an `npy-invalid`, a safetensors file that is not one a
//! `weights-corrupt`, a synthetic task too large to generate a `tensor-too-large`, and anything
//! wrong with the data itself (a ragged or non-numeric CSV row, a bad label, mismatched counts,
//! a bad gzip stream) a `data-invalid` naming the file, the line and the column where known.

mod arrays;
mod csv;
pub mod order;
pub mod synthetic;

#[cfg(test)]
mod tests;

pub use arrays::{dataset_from_tensors, read_npy_dataset, read_safetensors_dataset};
pub use csv::{parse_csv, read_csv, MAXIMUM_DECOMPRESSED_BYTES};
/// How a synthetic sequence task is laid out (the `layout` argument of `synthetic(...)`); see
/// [`synthetic`](mod@synthetic) for the exact format.
pub use modelc_compiler::check::settings::SequenceLayout;
pub use order::{epoch_order, permutation, split_indices, train_count, Split};
pub use synthetic::{generate as synthetic, MAXIMUM_SYNTHETIC_ELEMENTS};

use modelc_compiler::check::settings::{DataSource, DataSpec, LossSpec};
use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::{Tensor, TensorData};
use modelc_compiler::ir::DType;
use modelc_compiler::source::Span;
use std::collections::HashMap;
use std::path::Path;

/// The diagnostic code of data that cannot be used: malformed, or not fitting the task.
pub const DATA_INVALID: &str = "data-invalid";

/// The class label of a position that has no target (the prompt half of a
/// [`SequenceLayout::Causal`] example). PyTorch's `ignore_index` default: the loss and the
/// accuracy skip positions holding it. Only allowed in per-position labels (a non-empty
/// [`Dataset::label_shape`]).
pub const IGNORE_INDEX: i64 = -100;

/// The features of every example, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum Features {
    /// Real values: CSV cells, float and bool arrays.
    F32(Vec<f32>),
    /// Whole numbers: token ids of sequence tasks, integer arrays.
    I64(Vec<i64>),
}

impl Features {
    pub fn len(&self) -> usize {
        match self {
            Features::F32(values) => values.len(),
            Features::I64(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        match self {
            Features::F32(_) => DType::F32,
            Features::I64(_) => DType::I64,
        }
    }
}

/// The labels of every example, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// Class indices `0..classes` (or [`IGNORE_INDEX`] in per-position labels), for
    /// `cross_entropy` and `nll`. Fed as an i64 tensor.
    Classes(Vec<i64>),
    /// Real-valued targets, for `mse` and `bce_with_logits` (0/1 targets). Fed as f32.
    Targets(Vec<f32>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Classes(values) => values.len(),
            Labels::Targets(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        match self {
            Labels::Classes(_) => DType::I64,
            Labels::Targets(_) => DType::F32,
        }
    }
}

/// A loaded data set. The loaders guarantee `n >= 1`, non-empty per-example features and
/// labels (`feature_shape` and `label_shape` hold no zero), `features.len() == n *
/// product(feature_shape)` and `labels.len() == n * product(label_shape)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub features: Features,
    /// The shape of one example's features (`[1, 8, 8]` for a digit image).
    pub feature_shape: Vec<usize>,
    pub labels: Labels,
    /// The shape of one example's label: `[]` for one label per example, `[T]` for one per
    /// token.
    pub label_shape: Vec<usize>,
}

/// One batch, ready to feed: `inputs` is `[b, feature_shape...]` (f32 or i64), `labels` is
/// `[b, label_shape...]` (i64 class indices or f32 targets).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub inputs: Tensor,
    pub labels: Tensor,
}

/// What the labels of a data set are, which decides how a label is read and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelKind {
    /// Class indices: whole numbers (`3` or `3.0`) from 0, below `classes` when it is known
    /// (the width of the model's output).
    Classes { classes: Option<usize> },
    /// Any finite real number.
    Targets,
}

impl LabelKind {
    /// Class indices for `cross_entropy` and `nll`; real-valued targets for `mse` and
    /// `bce_with_logits` (which takes 0/1 targets as floats, as in PyTorch).
    pub fn for_loss(loss: LossSpec, classes: Option<usize>) -> LabelKind {
        match loss {
            LossSpec::CrossEntropy { .. } | LossSpec::Nll => LabelKind::Classes { classes },
            LossSpec::Mse | LossSpec::BceWithLogits => LabelKind::Targets,
        }
    }
}

/// Everything a loader needs besides the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    pub labels: LabelKind,
    /// Seeds synthetic tasks (the train block's `seed`).
    pub seed: u64,
}

/// Loads a train block's data. Relative paths are resolved against `base_dir`, the directory
/// of the `.model` file. A diagnostic without a label gets one at the `data` setting (unless
/// its span is [`Span::DUMMY`]).
pub fn load(
    spec: &DataSpec,
    base_dir: &Path,
    options: &LoadOptions,
) -> Result<Dataset, Diagnostic> {
    let result = match &spec.source {
        DataSource::Csv(csv) => read_csv(&base_dir.join(&csv.path), csv, options.labels),
        DataSource::Npy { features, label } => read_npy_dataset(
            &base_dir.join(features),
            &base_dir.join(label),
            options.labels,
        ),
        DataSource::Safetensors {
            path,
            features,
            label,
        } => read_safetensors_dataset(&base_dir.join(path), features, label, options.labels),
        DataSource::Synthetic {
            task,
            length,
            vocab,
            samples,
            layout,
        } => synthetic(
            *task,
            *length,
            *vocab,
            *samples,
            options.seed,
            *layout,
            options.labels,
        ),
    };
    result.map_err(|diagnostic| {
        if diagnostic.labels.is_empty() && spec.span != Span::DUMMY {
            diagnostic.with_label(spec.span, "the data set given here")
        } else {
            diagnostic
        }
    })
}

impl Dataset {
    /// The number of examples.
    pub fn len(&self) -> usize {
        self.features.len() / self.feature_size().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements of one example's features.
    pub fn feature_size(&self) -> usize {
        self.feature_shape.iter().product()
    }

    /// Elements of one example's label.
    pub fn label_size(&self) -> usize {
        self.label_shape.iter().product()
    }

    /// The examples at `indices`, in that order (repeats allowed).
    ///
    /// # Panics
    /// When an index is not below [`Dataset::len`] (indices come from [`permutation`] and
    /// friends, never from input), or when the fields break the invariants above.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: match &self.features {
                Features::F32(values) => {
                    Features::F32(gather(values, self.feature_size(), indices))
                }
                Features::I64(values) => {
                    Features::I64(gather(values, self.feature_size(), indices))
                }
            },
            feature_shape: self.feature_shape.clone(),
            labels: match &self.labels {
                Labels::Classes(values) => {
                    Labels::Classes(gather(values, self.label_size(), indices))
                }
                Labels::Targets(values) => {
                    Labels::Targets(gather(values, self.label_size(), indices))
                }
            },
            label_shape: self.label_shape.clone(),
        }
    }

    /// The examples at `indices` as tensors `[b, feature_shape...]` and `[b, label_shape...]`.
    ///
    /// # Panics
    /// As [`Dataset::subset`].
    pub fn batch(&self, indices: &[usize]) -> Batch {
        let subset = self.subset(indices);
        let mut input_shape = vec![indices.len()];
        input_shape.extend_from_slice(&self.feature_shape);
        let mut label_shape = vec![indices.len()];
        label_shape.extend_from_slice(&self.label_shape);
        let inputs = match subset.features {
            Features::F32(values) => Tensor::from_f32(input_shape, values),
            Features::I64(values) => Tensor::from_i64(input_shape, values),
        };
        let labels = match subset.labels {
            Labels::Classes(values) => Tensor::from_i64(label_shape, values),
            Labels::Targets(values) => Tensor::from_f32(label_shape, values),
        };
        // The lengths are products of the same shapes by construction.
        Batch {
            inputs: inputs.expect("batch features match their shape"),
            labels: labels.expect("batch labels match their shape"),
        }
    }

    /// Splits into a training set of [`train_count`] examples and a validation set of the
    /// rest: the examples are shuffled once with `seed` ([`split_indices`]) and the first part
    /// trains. Both keep the shuffled order.
    pub fn split(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let split = split_indices(self.len(), fraction, seed);
        (self.subset(&split.train), self.subset(&split.validation))
    }

    /// The batches of one training epoch: all examples in the order [`epoch_order`] gives for
    /// (`seed`, `epoch`), cut into batches of `batch_size` (at least 1); the last batch holds
    /// the remainder and is kept even when smaller.
    pub fn epoch_batches(
        &self,
        batch_size: usize,
        seed: u64,
        epoch: u64,
    ) -> impl Iterator<Item = Batch> + '_ {
        let order = epoch_order(self.len(), seed, epoch);
        let batches: Vec<Vec<usize>> = order
            .chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect();
        batches.into_iter().map(move |indices| self.batch(&indices))
    }

    /// The examples in their stored order, in batches of `batch_size` (at least 1), the last
    /// one possibly smaller: for validation and evaluation.
    pub fn ordered_batches(&self, batch_size: usize) -> impl Iterator<Item = Batch> + '_ {
        let size = batch_size.max(1);
        (0..self.len()).step_by(size).map(move |start| {
            let indices: Vec<usize> = (start..(start + size).min(self.len())).collect();
            self.batch(&indices)
        })
    }

    /// Converts the features to the dtype of the model's input. i64 to f32 is always allowed
    /// (exact below 2^24); f32 to i64 only when every value is a whole number in the i64
    /// range, or it is a `data-invalid` naming the first example that is not. Bool inputs
    /// are not fed from data sets (`dtype-mismatch`).
    pub fn cast_features(&mut self, dtype: DType) -> Result<(), Diagnostic> {
        let cast = match (&self.features, dtype) {
            (Features::F32(_), DType::F32) | (Features::I64(_), DType::I64) => return Ok(()),
            (Features::I64(values), DType::F32) => {
                Features::F32(values.iter().map(|&value| value as f32).collect())
            }
            (Features::F32(values), DType::I64) => {
                let size = self.feature_size().max(1);
                let mut ids = Vec::with_capacity(values.len());
                for (flat, &value) in values.iter().enumerate() {
                    match whole_number(f64::from(value)) {
                        Some(id) => ids.push(id),
                        None => {
                            return Err(Diagnostic::error(
                                DATA_INVALID,
                                format!(
                                    "the model takes i64 inputs, but feature {} of example {} is {value}, not a whole number",
                                    flat % size,
                                    flat / size
                                ),
                            ))
                        }
                    }
                }
                Features::I64(ids)
            }
            (_, DType::Bool) => {
                return Err(Diagnostic::error(
                    "dtype-mismatch",
                    "the model takes a bool input, which a data set cannot feed",
                )
                .with_help("declare the input as f32 or i64"))
            }
        };
        self.features = cast;
        Ok(())
    }

    /// Checks that every class label is below `classes` (the width of the model's output).
    /// Targets pass. [`IGNORE_INDEX`] passes in per-position labels. `source` names the data
    /// in the message (a file name, or `synthetic("sort")`).
    pub fn check_classes(&self, classes: usize, source: &str) -> Result<(), Diagnostic> {
        let Labels::Classes(values) = &self.labels else {
            return Ok(());
        };
        let size = self.label_size().max(1);
        let per_position = !self.label_shape.is_empty();
        for (flat, &label) in values.iter().enumerate() {
            if per_position && label == IGNORE_INDEX {
                continue;
            }
            if let Err(problem) = check_class(label, Some(classes)) {
                let at = example_position(flat, size, per_position);
                return Err(Diagnostic::error(
                    DATA_INVALID,
                    format!("`{source}`, {at}: {problem}"),
                ));
            }
        }
        Ok(())
    }
}

/// Per-feature standardization, `(x - mean) / std`, with statistics taken from the training
/// set and applied to every set. A feature with no spread (a pixel that is always 0) is only
/// centred.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// One per feature element (a position in `feature_shape`).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardizer {
    /// The mean and the population standard deviation of each feature over `data`; `None` when
    /// the features are i64 (token ids are not standardized) or there are no examples.
    pub fn fit(data: &Dataset) -> Option<Standardizer> {
        let Features::F32(values) = &data.features else {
            return None;
        };
        let size = data.feature_size();
        let count = data.len();
        if count == 0 || size == 0 {
            return None;
        }
        let mut sum = vec![0f64; size];
        let mut squares = vec![0f64; size];
        for row in values.chunks_exact(size) {
            for (index, &value) in row.iter().enumerate() {
                sum[index] += f64::from(value);
            }
        }
        let mean: Vec<f64> = sum.iter().map(|total| total / count as f64).collect();
        for row in values.chunks_exact(size) {
            for (index, &value) in row.iter().enumerate() {
                let deviation = f64::from(value) - mean[index];
                squares[index] += deviation * deviation;
            }
        }
        let std = squares
            .iter()
            .map(|total| {
                let std = (total / count as f64).sqrt();
                if std > 1e-12 {
                    std as f32
                } else {
                    1.0
                }
            })
            .collect();
        Some(Standardizer {
            mean: mean.into_iter().map(|value| value as f32).collect(),
            std,
        })
    }

    /// The metadata `modelc train` writes into trained weights: the mean and standard deviation
    /// of each feature, comma-separated, under [`Standardizer::MEAN_KEY`] and
    /// [`Standardizer::STD_KEY`].
    pub fn to_metadata(&self) -> [(String, String); 2] {
        let join = |values: &[f32]| {
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        [
            (Self::MEAN_KEY.to_string(), join(&self.mean)),
            (Self::STD_KEY.to_string(), join(&self.std)),
        ]
    }

    pub const MEAN_KEY: &'static str = "standardize_mean";
    pub const STD_KEY: &'static str = "standardize_std";

    /// The standardization recorded in weights' metadata: `Ok(None)` when there is none, an
    /// error message when it is malformed (unparsable numbers, lengths that differ, a standard
    /// deviation that is not a positive finite number).
    pub fn from_metadata(
        metadata: &HashMap<String, String>,
    ) -> Result<Option<Standardizer>, String> {
        let (Some(mean), Some(std)) = (metadata.get(Self::MEAN_KEY), metadata.get(Self::STD_KEY))
        else {
            return Ok(None);
        };
        let parse = |text: &str, key: &str| -> Result<Vec<f32>, String> {
            text.split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f32>()
                        .map_err(|_| format!("`{key}` holds `{v}`, not a number"))
                })
                .collect()
        };
        let mean = parse(mean, Self::MEAN_KEY)?;
        let std = parse(std, Self::STD_KEY)?;
        if mean.len() != std.len() {
            return Err(format!(
                "`{}` has {} values but `{}` has {}",
                Self::MEAN_KEY,
                mean.len(),
                Self::STD_KEY,
                std.len()
            ));
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!(
                "`{}` must be finite and `{}` positive and finite",
                Self::MEAN_KEY,
                Self::STD_KEY
            ));
        }
        Ok(Some(Standardizer { mean, std }))
    }

    /// Standardizes a batch `[B, ...]` of f32 examples in place, as [`apply`](Self::apply)
    /// does a data set's features. Errs (with a message) when an example's size differs from
    /// the fitted one or the tensor is not f32.
    pub fn apply_to_batch(&self, tensor: &mut Tensor) -> Result<(), String> {
        let size: usize = tensor.shape.iter().skip(1).product();
        if size != self.mean.len() || tensor.shape.is_empty() {
            return Err(format!(
                "standardization was fitted on examples of {} values, but this input's examples \
                 have {size} (shape {:?})",
                self.mean.len(),
                tensor.shape
            ));
        }
        let TensorData::F32(values) = &mut tensor.data else {
            return Err("only f32 inputs are standardized".into());
        };
        for row in values.chunks_exact_mut(size.max(1)) {
            for (index, value) in row.iter_mut().enumerate() {
                *value = (*value - self.mean[index]) / self.std[index];
            }
        }
        Ok(())
    }

    /// Standardizes `data`'s features in place; does nothing to i64 features or to a data set
    /// whose feature size differs from the one fitted.
    pub fn apply(&self, data: &mut Dataset) {
        let size = data.feature_size();
        if size != self.mean.len() || size == 0 {
            return;
        }
        if let Features::F32(values) = &mut data.features {
            for row in values.chunks_exact_mut(size) {
                for (index, value) in row.iter_mut().enumerate() {
                    *value = (*value - self.mean[index]) / self.std[index];
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------ helpers

fn gather<T: Copy>(values: &[T], size: usize, indices: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(indices.len() * size);
    for &index in indices {
        out.extend_from_slice(&values[index * size..(index + 1) * size]);
    }
    out
}

/// `value` as an i64 when it is a finite whole number in range.
fn whole_number(value: f64) -> Option<i64> {
    // 2^63 is exactly representable; every f64 below it in magnitude converts exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (value.is_finite() && value.fract() == 0.0 && (-LIMIT..LIMIT).contains(&value))
        .then_some(value as i64)
}

/// Why `label` is not a valid class index, if it is not.
fn check_class(label: i64, classes: Option<usize>) -> Result<(), String> {
    if label < 0 {
        return Err(format!(
            "label {label} is negative; class indices count from 0"
        ));
    }
    if let Some(classes) = classes {
        if u64::try_from(label).is_ok_and(|label| label >= classes as u64) {
            let expected = match classes {
                0 => "the model has no classes".to_string(),
                1 => "expected 0".to_string(),
                _ => format!("expected 0 to {}", classes - 1),
            };
            let plural = if classes == 1 { "" } else { "es" };
            return Err(format!(
                "label {label} is out of range for {classes} class{plural} ({expected})"
            ));
        }
    }
    Ok(())
}

/// `example 17` or `example 17, position 3`.
fn example_position(flat: usize, size: usize, per_position: bool) -> String {
    if per_position {
        format!("example {}, position {}", flat / size, flat % size)
    } else {
        format!("example {}", flat / size.max(1))
    }
}
