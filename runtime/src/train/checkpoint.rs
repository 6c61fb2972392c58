//! Training checkpoints: one safetensors file, written atomically.
//!
//! Tensors: every param under its dotted name (as in a weights file), and every optimizer state
//! tensor under [`STATE_PREFIX`] followed by its name (`optimizer/fc1.weight.exp_avg`). The
//! header's metadata holds `format` (`modelc-checkpoint-1`), `model`, `epoch` (completed
//! epochs), `step` (optimizer steps so far), `seed`, and `metrics`, the CSV rows of the epochs
//! so far (the data order is a function of the seed and the epoch, so these are the whole
//! position of the run).

use super::EpochMetrics;
use crate::fsio;
use crate::weights::{read_safetensors, write_safetensors};
use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::Tensor;
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

/// The prefix of optimizer state tensors in a checkpoint; `/` never occurs in a param name.
pub const STATE_PREFIX: &str = "optimizer/";

const FORMAT: &str = "modelc-checkpoint-1";

/// The diagnostic code of a file that is not a usable checkpoint (a safetensors file without
/// the checkpoint metadata, or with malformed metadata).
pub const CHECKPOINT_INVALID: &str = "weights-corrupt";

#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub model: String,
    /// Completed epochs.
    pub epoch: usize,
    pub step: u64,
    pub seed: u64,
    pub history: Vec<EpochMetrics>,
    /// Params by name, then optimizer state under [`STATE_PREFIX`].
    pub tensors: Vec<(String, Tensor)>,
}

pub fn write_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<(), Diagnostic> {
    let metrics: Vec<String> = checkpoint
        .history
        .iter()
        .map(EpochMetrics::csv_row)
        .collect();
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("model".to_string(), checkpoint.model.clone()),
        ("epoch".to_string(), checkpoint.epoch.to_string()),
        ("step".to_string(), checkpoint.step.to_string()),
        ("seed".to_string(), checkpoint.seed.to_string()),
        ("metrics".to_string(), metrics.join("\n")),
    ]);
    let bytes = write_safetensors(&checkpoint.tensors, Some(metadata))?;
    fsio::write_atomic(path, &bytes)
}

pub fn read_checkpoint(path: &Path) -> Result<Checkpoint, Diagnostic> {
    let file_name = path.to_string_lossy().into_owned();
    let bytes = fsio::read_file(path)?;
    let tensors = read_safetensors(&bytes, &file_name)?;
    let invalid = |what: &str| {
        Diagnostic::error(
            CHECKPOINT_INVALID,
            format!("`{file_name}` is not a modelc training checkpoint: {what}"),
        )
        .with_help("resume from a file that `modelc train --checkpoint DIR` wrote")
    };
    let metadata = SafeTensors::read_metadata(&bytes)
        .map_err(|error| invalid(&error.to_string()))?
        .1
        .metadata()
        .clone()
        .unwrap_or_default();
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(invalid("its metadata has no `format` of a checkpoint"));
    }
    let field = |name: &str| {
        metadata
            .get(name)
            .ok_or_else(|| invalid(&format!("the metadata has no `{name}`")))
    };
    let number = |name: &str| -> Result<u64, Diagnostic> {
        field(name)?
            .parse::<u64>()
            .map_err(|_| invalid(&format!("`{name}` is not a whole number")))
    };
    let mut history = Vec::new();
    for row in field("metrics")?.lines().filter(|l| !l.is_empty()) {
        history.push(
            EpochMetrics::from_csv_row(row).ok_or_else(|| invalid("a metrics row is malformed"))?,
        );
    }
    let epoch = usize::try_from(number("epoch")?).map_err(|_| invalid("`epoch` is too large"))?;
    Ok(Checkpoint {
        model: field("model")?.clone(),
        epoch,
        step: number("step")?,
        seed: number("seed")?,
        history,
        tensors,
    })
}
