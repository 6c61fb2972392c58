//! Array data: `npy("x.npy", "y.npy")` and `safetensors("file", features = "x", label = "y")`.
//!
//! The first axis of both arrays counts the examples, and the two counts must agree. The
//! features keep their element type: floats (and bool, as 0/1) become f32 features, integers
//! i64 features (token ids). Float features must be finite. Labels follow the [`LabelKind`]:
//! class labels may be stored as integers or as whole-valued floats; targets as floats,
//! integers or bool.

use super::{
    check_class, example_position, whole_number, Dataset, Features, LabelKind, Labels,
    DATA_INVALID, IGNORE_INDEX,
};
use crate::fsio::read_file;
use crate::npy::read_npy;
use crate::weights::read_safetensors;
use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::{Tensor, TensorData};
use std::path::Path;

/// Reads features and labels from two `.npy` files.
pub fn read_npy_dataset(
    features: &Path,
    labels: &Path,
    kind: LabelKind,
) -> Result<Dataset, Diagnostic> {
    let features_name = features.display().to_string();
    let labels_name = labels.display().to_string();
    let feature_tensor = read_npy(&read_file(features)?, &features_name)?;
    let label_tensor = read_npy(&read_file(labels)?, &labels_name)?;
    dataset_from_tensors(
        feature_tensor,
        &format!("`{features_name}`"),
        label_tensor,
        &format!("`{labels_name}`"),
        kind,
    )
}

/// Reads the tensors `features` and `label` of one safetensors file.
pub fn read_safetensors_dataset(
    path: &Path,
    features: &str,
    label: &str,
    kind: LabelKind,
) -> Result<Dataset, Diagnostic> {
    let name = path.display().to_string();
    let mut tensors = read_safetensors(&read_file(path)?, &name)?;
    let names: Vec<String> = tensors
        .iter()
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    let mut take =
        |wanted: &str, setting: &str| match tensors.iter().position(|(name, _)| name == wanted) {
            Some(index) => Ok(tensors.swap_remove(index).1),
            None => {
                let has = if names.is_empty() {
                    "it holds no tensor".to_string()
                } else {
                    format!("it holds {}", names.join(", "))
                };
                Err(Diagnostic::error(
                    DATA_INVALID,
                    format!("`{name}` has no tensor `{wanted}` for the {setting}; {has}"),
                )
                .with_help(format!(
                "name the tensor with `safetensors(\"{}\", features = \"...\", label = \"...\")`",
                path.display()
            )))
            }
        };
    let feature_tensor = take(features, "features")?;
    let label_tensor = take(label, "labels")?;
    dataset_from_tensors(
        feature_tensor,
        &format!("tensor `{features}` of `{name}`"),
        label_tensor,
        &format!("tensor `{label}` of `{name}`"),
        kind,
    )
}

/// Builds a data set from a features tensor `[n, ...]` and a labels tensor `[n, ...]`.
/// `features_name` and `labels_name` name them in messages (`` `x.npy` ``).
pub fn dataset_from_tensors(
    features: Tensor,
    features_name: &str,
    labels: Tensor,
    labels_name: &str,
    kind: LabelKind,
) -> Result<Dataset, Diagnostic> {
    let invalid = |message: String| Diagnostic::error(DATA_INVALID, message);
    let (count, feature_shape) = examples(&features.shape, features_name, "features")?;
    let (label_count, label_shape) = examples(&labels.shape, labels_name, "labels")?;
    if count != label_count {
        return Err(invalid(format!(
            "{features_name} has {count} examples but {labels_name} has {label_count}"
        ))
        .with_note("the first axis counts the examples in both"));
    }
    let feature_size: usize = feature_shape.iter().product();
    let label_size: usize = label_shape.iter().product();
    let per_position = !label_shape.is_empty();

    let features = match features.data {
        TensorData::F32(values) => {
            if let Some(flat) = values.iter().position(|value| !value.is_finite()) {
                return Err(invalid(format!(
                    "{features_name}, example {}: feature {} is {}",
                    flat / feature_size,
                    flat % feature_size,
                    values[flat]
                ))
                .with_help("features must be finite; fill in or drop missing values"));
            }
            Features::F32(values)
        }
        TensorData::I64(values) => Features::I64(values),
        TensorData::Bool(values) => Features::F32(
            values
                .into_iter()
                .map(|value| f32::from(u8::from(value)))
                .collect(),
        ),
    };

    let labels = match kind {
        LabelKind::Classes { classes } => {
            let values: Vec<i64> = match labels.data {
                TensorData::I64(values) => values,
                TensorData::Bool(values) => values.into_iter().map(i64::from).collect(),
                TensorData::F32(values) => {
                    let mut converted = Vec::with_capacity(values.len());
                    for (flat, &value) in values.iter().enumerate() {
                        let class = whole_number(f64::from(value)).ok_or_else(|| {
                            invalid(format!(
                                "{labels_name}, {}: label {value} is not a class index (a whole number)",
                                example_position(flat, label_size, per_position)
                            ))
                            .with_help("real-valued targets need a regression loss such as `mse`")
                        })?;
                        converted.push(class);
                    }
                    converted
                }
            };
            for (flat, &label) in values.iter().enumerate() {
                if per_position && label == IGNORE_INDEX {
                    continue;
                }
                check_class(label, classes).map_err(|problem| {
                    invalid(format!(
                        "{labels_name}, {}: {problem}",
                        example_position(flat, label_size, per_position)
                    ))
                })?;
            }
            Labels::Classes(values)
        }
        LabelKind::Targets => {
            let values: Vec<f32> = match labels.data {
                TensorData::F32(values) => values,
                TensorData::I64(values) => values.into_iter().map(|value| value as f32).collect(),
                TensorData::Bool(values) => values
                    .into_iter()
                    .map(|value| f32::from(u8::from(value)))
                    .collect(),
            };
            if let Some(flat) = values.iter().position(|value| !value.is_finite()) {
                return Err(invalid(format!(
                    "{labels_name}, {}: the target is {}",
                    example_position(flat, label_size, per_position),
                    values[flat]
                ))
                .with_help("targets must be finite"));
            }
            Labels::Targets(values)
        }
    };
    Ok(Dataset {
        features,
        feature_shape,
        labels,
        label_shape,
    })
}

/// The example count and the per-example shape of an array, or why it holds no examples.
fn examples(shape: &[usize], name: &str, role: &str) -> Result<(usize, Vec<usize>), Diagnostic> {
    let invalid = |message: String| Diagnostic::error(DATA_INVALID, message);
    let Some((&count, rest)) = shape.split_first() else {
        return Err(invalid(format!(
            "{name} holds a single value, but the {role} need a first axis that counts the examples"
        ))
        .with_help("save an array of shape [examples, ...]"));
    };
    if count == 0 {
        return Err(invalid(format!("{name} has no examples (shape {shape:?})")));
    }
    if rest.contains(&0) {
        return Err(invalid(format!(
            "{name} has shape {shape:?}: each example's {role} are empty"
        )));
    }
    Ok((count, rest.to_vec()))
}
