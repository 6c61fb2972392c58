//! Generated sequence tasks: `synthetic("copy" | "reverse" | "sort", length = L, vocab = V,
//! samples = N, layout = "causal" | "aligned")`, for training RNNs and Transformers without a
//! download.
//!
//! Each example draws `x`, `L` tokens uniform in `0..V`, and its answer `y = f(x)`:
//!
//! | task | `y` |
//! | --- | --- |
//! | `copy` | `x` |
//! | `reverse` | `x` backwards: `y[i] = x[L - 1 - i]` |
//! | `sort` | `x` in ascending order (repeats kept) |
//!
//! Features are i64 token ids, labels i64 class indices (one per position), laid out as the
//! [`SequenceLayout`] (the `layout` argument) says:
//!
//! - [`SequenceLayout::Aligned`]: input `x` (shape `[L]`), target `y` (shape `[L]`); token
//!   ids and classes `0..V`. For models that see the whole input at every position.
//! - [`SequenceLayout::Causal`] (the default): the sequence `x ++ [SEP] ++ y` with
//!   `SEP = V`, shifted by one as in language modelling: input `x ++ [SEP] ++ y[..L-1]`
//!   (shape `[2L]`), target `[IGNORE_INDEX; L] ++ y` (shape `[2L]`): position `L + i` reads
//!   `SEP` or `y[i - 1]` and must predict `y[i]`, and the prompt positions are ignored. Input
//!   ids are `0..=V` (an embedding needs `V + 1` rows); classes are `0..V`.
//!
//! For `reverse` with `L = 3`, `V = 10` and `x = [4, 1, 7]`: aligned input `[4, 1, 7]`, target
//! `[7, 1, 4]`; causal input `[4, 1, 7, 10, 7, 1]`, target `[-100, -100, -100, 7, 1, 4]`.
//!
//! The tokens come from a ChaCha8 generator seeded with `seed` on [`SYNTHETIC_STREAM`],
//! example after example, `L` draws each, uniform below `V` (see [`order`](super::order)); so
//! a seed gives the same examples in either layout.

use super::order::{below, generator};
use super::{Dataset, Features, LabelKind, Labels, SequenceLayout, DATA_INVALID, IGNORE_INDEX};
use modelc_compiler::check::settings::SyntheticTask;
use modelc_compiler::diag::Diagnostic;

/// The stream of the synthetic examples.
pub const SYNTHETIC_STREAM: u64 = 2;

/// The most elements the inputs of a synthetic task may have (`samples * length`, doubled in
/// the causal layout): 2^28, 2 GiB of i64.
pub const MAXIMUM_SYNTHETIC_ELEMENTS: usize = 1 << 28;

/// The answer to `x` for `task`.
pub fn answer(task: SyntheticTask, x: &[i64]) -> Vec<i64> {
    let mut y = x.to_vec();
    match task {
        SyntheticTask::Copy => {}
        SyntheticTask::Reverse => y.reverse(),
        SyntheticTask::Sort => y.sort_unstable(),
    }
    y
}

/// Generates `samples` examples of `task`. `labels` must ask for classes: the labels are
/// token ids, and a class count below `vocab` is an out-of-range label.
pub fn generate(
    task: SyntheticTask,
    length: usize,
    vocab: usize,
    samples: usize,
    seed: u64,
    layout: SequenceLayout,
    labels: LabelKind,
) -> Result<Dataset, Diagnostic> {
    let source = format!("synthetic(\"{}\")", task.name());
    let classes = match labels {
        LabelKind::Classes { classes } => classes,
        LabelKind::Targets => {
            return Err(Diagnostic::error(
                DATA_INVALID,
                format!("`{source}` has token ids as labels, which need a classification loss"),
            )
            .with_help("use `loss = cross_entropy()` or `loss = nll()`"))
        }
    };
    for (value, setting) in [(length, "length"), (vocab, "vocab"), (samples, "samples")] {
        if value == 0 {
            return Err(Diagnostic::error(
                DATA_INVALID,
                format!("`{source}` needs a positive `{setting}`"),
            ));
        }
    }
    // Ids and the separator `vocab` must be i64.
    let Ok(separator) = i64::try_from(vocab) else {
        return Err(Diagnostic::error(
            DATA_INVALID,
            format!("`{source}`: `vocab = {vocab}` is too large for i64 token ids"),
        ));
    };
    if let Some(classes) = classes.filter(|&classes| classes < vocab) {
        return Err(Diagnostic::error(
            DATA_INVALID,
            format!(
                "`{source}` has labels 0 to {}, but the model has {classes} classes",
                vocab - 1
            ),
        )
        .with_help(format!(
            "give the model at least {vocab} outputs per position, or lower `vocab`"
        )));
    }
    let width = match layout {
        SequenceLayout::Aligned => length,
        SequenceLayout::Causal => length.saturating_mul(2),
    };
    let total = samples
        .checked_mul(width)
        .filter(|&total| total <= MAXIMUM_SYNTHETIC_ELEMENTS);
    let Some(total) = total else {
        return Err(Diagnostic::error(
            "tensor-too-large",
            format!(
                "`{source}` with {samples} samples of {width} tokens has more than {MAXIMUM_SYNTHETIC_ELEMENTS} elements"
            ),
        )
        .with_help("lower `samples` or `length`"));
    };

    let mut rng = generator(seed, SYNTHETIC_STREAM);
    let mut inputs = Vec::with_capacity(total);
    let mut targets = Vec::with_capacity(total);
    let mut x = vec![0i64; length];
    for _ in 0..samples {
        for token in x.iter_mut() {
            // Below `vocab`, which fits in i64.
            *token = below(&mut rng, vocab as u64) as i64;
        }
        let y = answer(task, &x);
        match layout {
            SequenceLayout::Aligned => {
                inputs.extend_from_slice(&x);
                targets.extend_from_slice(&y);
            }
            SequenceLayout::Causal => {
                inputs.extend_from_slice(&x);
                inputs.push(separator);
                inputs.extend_from_slice(&y[..length - 1]);
                targets.extend(std::iter::repeat_n(IGNORE_INDEX, length));
                targets.extend_from_slice(&y);
            }
        }
    }
    Ok(Dataset {
        features: Features::I64(inputs),
        feature_shape: vec![width],
        labels: Labels::Classes(targets),
        label_shape: vec![width],
    })
}
