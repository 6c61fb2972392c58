//! Weights files in the safetensors format, and binding their tensors to the parameters a
//! model declares.
//!
//! Reading converts every supported element type to one of the runtime's three (f32, i64,
//! bool). Binding is strict, like PyTorch's `load_state_dict(strict=True)`: a missing
//! parameter, an extra tensor, or a shape or dtype that differs from the declaration is an
//! error, and every such problem is reported at once so a user fixes a file in one pass.

use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::{Tensor, TensorData};
use modelc_compiler::ir::DType;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Reads every tensor of a safetensors file held in memory, sorted by name.
///
/// F32 is kept as is; F64, F16 and BF16 become f32; I64 is kept and I32 becomes i64; BOOL is
/// kept. Other element types are a `weights-dtype` diagnostic naming the tensor. A truncated or
/// malformed file is a `weights-corrupt` diagnostic naming `file_name` and the parser's reason.
pub fn read_safetensors(
    bytes: &[u8],
    file_name: &str,
) -> Result<Vec<(String, Tensor)>, Diagnostic> {
    // The crate checks the header length against the buffer and every tensor's offsets against
    // its shape and dtype before handing out views, so the views below are backed by real bytes.
    let file = SafeTensors::deserialize(bytes).map_err(|error| {
        Diagnostic::error("weights-corrupt", format!("`{file_name}` is not a valid safetensors file: {error}"))
            .with_help("the file may be truncated (an interrupted download or copy) or in another format; re-export it")
    })?;
    let mut tensors = file.tensors();
    tensors.sort_by(|(left, _), (right, _)| left.cmp(right));
    tensors
        .into_iter()
        .map(|(name, view)| convert_view(&name, &view, file_name).map(|tensor| (name, tensor)))
        .collect()
}

fn convert_view(name: &str, view: &TensorView<'_>, file_name: &str) -> Result<Tensor, Diagnostic> {
    let bytes = view.data();
    let data = match view.dtype() {
        Dtype::F32 => TensorData::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::F64 => TensorData::F32(
            bytes
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
        ),
        Dtype::F16 => TensorData::F32(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        Dtype::BF16 => TensorData::F32(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        Dtype::I64 => TensorData::I64(
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        Dtype::I32 => TensorData::I64(
            bytes
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        Dtype::BOOL => TensorData::Bool(bytes.iter().map(|&byte| byte != 0).collect()),
        other => {
            return Err(Diagnostic::error(
                "weights-dtype",
                format!(
                "tensor `{name}` in `{file_name}` has element type {other}, which is not supported"
            ),
            )
            .with_help("save it as F32 (or F16/BF16/F64, converted on load), I64/I32 or BOOL"))
        }
    };
    Tensor::new(view.shape().to_vec(), data).ok_or_else(|| {
        Diagnostic::error(
            "weights-corrupt",
            format!(
                "tensor `{name}` in `{file_name}` has {} bytes, which does not fit its shape {:?}",
                bytes.len(),
                view.shape()
            ),
        )
    })
}

/// A tensor borrowed in the form `safetensors::serialize` wants: raw little-endian bytes.
struct SerializableTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &SerializableTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The string metadata in a safetensors file's header (empty when it has none). A malformed
/// header is a `weights-corrupt` diagnostic naming `file_name`.
pub fn read_metadata(bytes: &[u8], file_name: &str) -> Result<HashMap<String, String>, Diagnostic> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|error| {
        Diagnostic::error(
            "weights-corrupt",
            format!("`{file_name}` is not a valid safetensors file: {error}"),
        )
    })?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// Encodes tensors as a safetensors file (f32 as F32, i64 as I64, bool as BOOL), with optional
/// string metadata in the header's `__metadata__`.
///
/// Fails with `weights-corrupt` when the file would be malformed: two tensors with one name, or
/// a tensor named `__metadata__` (the key the format reserves for metadata).
pub fn write_safetensors(
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, Diagnostic> {
    // Checked here because the crate does not: duplicate names corrupt its index and panic.
    let mut seen = HashSet::new();
    for (name, _) in tensors {
        if name == "__metadata__" {
            return Err(Diagnostic::error(
                "weights-corrupt",
                "a tensor cannot be named `__metadata__`",
            )
            .with_note("safetensors reserves that key for the file's metadata"));
        }
        if !seen.insert(name.as_str()) {
            return Err(Diagnostic::error(
                "weights-corrupt",
                format!("two tensors are named `{name}`"),
            )
            .with_help("each tensor in a weights file needs a unique name"));
        }
    }
    let encoded: Vec<(&str, SerializableTensor)> = tensors
        .iter()
        .map(|(name, tensor)| {
            let (dtype, bytes) = match &tensor.data {
                TensorData::F32(values) => (
                    Dtype::F32,
                    values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
                TensorData::I64(values) => (
                    Dtype::I64,
                    values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
                TensorData::Bool(values) => {
                    (Dtype::BOOL, values.iter().map(|&v| u8::from(v)).collect())
                }
            };
            (
                name.as_str(),
                SerializableTensor {
                    dtype,
                    shape: tensor.shape.clone(),
                    bytes,
                },
            )
        })
        .collect();
    safetensors::serialize(
        encoded.iter().map(|(name, tensor)| (*name, tensor)),
        metadata,
    )
    .map_err(|error| {
        Diagnostic::error(
            "weights-corrupt",
            format!("could not encode the tensors as safetensors: {error}"),
        )
    })
}

/// A parameter as the model declares it, which a weights file must supply exactly.
#[derive(Clone, PartialEq, Debug)]
pub struct ExpectedParam {
    /// The param's dotted path in the layer tree, e.g. `fc1.weight`.
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Matches the tensors found in a weights file to the params a model declares, strictly.
///
/// On success every declared param is in the map, with its declared shape and dtype. Otherwise
/// all problems come back together, in a stable order: for each declared param in declaration
/// order, `weights-missing` or its `weights-shape` and `weights-dtype` mismatches; then a
/// `weights-corrupt` for each name the file repeats; then a `weights-unexpected` for each
/// tensor the model does not declare, in the file's order. A missing param's help names the closest
/// unused tensor in the file when one is a near miss (a typo or a renamed layer).
pub fn bind_weights(
    expected: &[ExpectedParam],
    found: Vec<(String, Tensor)>,
    file_name: &str,
) -> Result<HashMap<String, Tensor>, Vec<Diagnostic>> {
    let mut duplicate_diagnostics = Vec::new();
    let expected_names: HashSet<&str> = expected.iter().map(|param| param.name.as_str()).collect();

    let mut found_by_name: HashMap<String, Tensor> = HashMap::with_capacity(found.len());
    let mut unexpected_names: Vec<String> = Vec::new();
    for (name, tensor) in found {
        if found_by_name.contains_key(&name) || unexpected_names.contains(&name) {
            duplicate_diagnostics.push(Diagnostic::error(
                "weights-corrupt",
                format!("`{file_name}` has two tensors named `{name}`"),
            ));
            continue;
        }
        if expected_names.contains(name.as_str()) {
            found_by_name.insert(name, tensor);
        } else {
            unexpected_names.push(name);
        }
    }
    let missing_names: Vec<&str> = expected
        .iter()
        .map(|param| param.name.as_str())
        .filter(|name| !found_by_name.contains_key(*name))
        .collect();

    let mut diagnostics = Vec::new();
    for param in expected {
        let Some(tensor) = found_by_name.get(&param.name) else {
            let mut diagnostic = Diagnostic::error(
                "weights-missing",
                format!(
                    "`{file_name}` has no tensor for the parameter `{}`",
                    param.name
                ),
            )
            .with_note(format!(
                "the model declares `{}` as {}{:?}",
                param.name, param.dtype, param.shape
            ));
            // Only unused tensors are worth suggesting: a tensor that already matched a param
            // cannot also be this one.
            if let Some(near) =
                closest_name(&param.name, unexpected_names.iter().map(String::as_str))
            {
                diagnostic =
                    diagnostic.with_help(format!("the file has `{near}`; did you mean that?"));
            }
            diagnostics.push(diagnostic);
            continue;
        };
        if tensor.shape != param.shape {
            diagnostics.push(
                Diagnostic::error(
                    "weights-shape",
                    format!(
                        "`{}` has shape {:?} in the file, the model declares {:?}",
                        param.name, tensor.shape, param.shape
                    ),
                )
                .with_note(format!("in `{file_name}`")),
            );
        }
        if tensor.dtype() != param.dtype {
            diagnostics.push(
                Diagnostic::error(
                    "weights-dtype",
                    format!(
                        "`{}` has element type {} in the file, the model declares {}",
                        param.name,
                        tensor.dtype(),
                        param.dtype
                    ),
                )
                .with_note(format!("in `{file_name}`")),
            );
        }
    }
    diagnostics.extend(duplicate_diagnostics);

    for name in &unexpected_names {
        let mut candidates = missing_names.clone();
        candidates.sort_by_key(|candidate| (levenshtein_distance(name, candidate), *candidate));
        let note = if candidates.is_empty() {
            "every parameter the model declares is already present in the file".to_string()
        } else {
            let listed: Vec<String> = candidates
                .iter()
                .take(5)
                .map(|candidate| format!("`{candidate}`"))
                .collect();
            let more = candidates.len().saturating_sub(5);
            let suffix = if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            };
            format!(
                "the model's parameters missing from the file: {}{suffix}",
                listed.join(", ")
            )
        };
        diagnostics.push(
            Diagnostic::error(
                "weights-unexpected",
                format!("`{file_name}` has a tensor `{name}` that the model does not declare"),
            )
            .with_note(note)
            .with_help("loading is strict: rename or remove the tensor, or declare the parameter in the model"),
        );
    }

    if diagnostics.is_empty() {
        Ok(found_by_name)
    } else {
        Err(diagnostics)
    }
}

/// The candidate nearest to `name` by edit distance, if it is near enough to be a plausible
/// typo or rename: at most a third of the name's length, and at least 1 edit allowed.
fn closest_name<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .map(|candidate| (levenshtein_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| candidate)
}

/// The number of single-character insertions, deletions and substitutions that turn `left`
/// into `right`, over Unicode scalar values, in O(len) memory.
fn levenshtein_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous_row: Vec<usize> = (0..=right.len()).collect();
    let mut current_row = vec![0usize; right.len() + 1];
    for (i, left_char) in left.chars().enumerate() {
        current_row[0] = i + 1;
        for (j, &right_char) in right.iter().enumerate() {
            let substitution = previous_row[j] + usize::from(left_char != right_char);
            current_row[j + 1] = substitution
                .min(previous_row[j + 1] + 1)
                .min(current_row[j] + 1);
        }
        std::mem::swap(&mut previous_row, &mut current_row);
    }
    previous_row[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_tensors() -> Vec<(String, Tensor)> {
        vec![
            (
                "b.bias".to_string(),
                Tensor::from_f32(vec![3], vec![0.5, -0.5, 1e-8]).unwrap(),
            ),
            (
                "a.weight".to_string(),
                Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
            ),
            (
                "counter".to_string(),
                Tensor::from_i64(vec![], vec![i64::MIN]).unwrap(),
            ),
            (
                "mask".to_string(),
                Tensor::from_bool(vec![2, 2], vec![true, false, false, true]).unwrap(),
            ),
            (
                "empty".to_string(),
                Tensor::from_f32(vec![0, 4], vec![]).unwrap(),
            ),
        ]
    }

    fn codes(diagnostics: &[Diagnostic]) -> Vec<&'static str> {
        diagnostics
            .iter()
            .map(|diagnostic| diagnostic.code)
            .collect()
    }

    #[test]
    fn round_trip_sorts_by_name_and_keeps_values() {
        let tensors = sample_tensors();
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = write_safetensors(&tensors, Some(metadata)).expect("encode");
        let read_back = read_safetensors(&bytes, "sample.safetensors").expect("decode");
        let mut expected = tensors;
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(read_back, expected);
        // The metadata really is in the header, where other tools look for it.
        let header = SafeTensors::read_metadata(&bytes).expect("header").1;
        assert_eq!(
            header
                .metadata()
                .as_ref()
                .and_then(|m| m.get("format"))
                .map(String::as_str),
            Some("pt")
        );
    }

    #[test]
    fn other_float_and_integer_types_are_converted() {
        let f64_bytes: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f16_bytes: Vec<u8> = [0.25f32, -3.0]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let bf16_bytes: Vec<u8> = [0.25f32, -3.0]
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect();
        let i32_bytes: Vec<u8> = [-7i32, 70000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let views = vec![
            (
                "d",
                TensorView::new(Dtype::F64, vec![2], &f64_bytes).unwrap(),
            ),
            (
                "h",
                TensorView::new(Dtype::F16, vec![2], &f16_bytes).unwrap(),
            ),
            (
                "b",
                TensorView::new(Dtype::BF16, vec![2], &bf16_bytes).unwrap(),
            ),
            (
                "i",
                TensorView::new(Dtype::I32, vec![2], &i32_bytes).unwrap(),
            ),
        ];
        let bytes = safetensors::serialize(views, None).expect("encode with the crate");
        let read_back = read_safetensors(&bytes, "mixed.safetensors").expect("decode");
        assert_eq!(
            read_back,
            vec![
                (
                    "b".to_string(),
                    Tensor::from_f32(vec![2], vec![0.25, -3.0]).unwrap()
                ),
                (
                    "d".to_string(),
                    Tensor::from_f32(vec![2], vec![1.5, -2.0]).unwrap()
                ),
                (
                    "h".to_string(),
                    Tensor::from_f32(vec![2], vec![0.25, -3.0]).unwrap()
                ),
                (
                    "i".to_string(),
                    Tensor::from_i64(vec![2], vec![-7, 70000]).unwrap()
                ),
            ]
        );
    }

    #[test]
    fn unsupported_element_type_names_tensor_and_type() {
        let data = [1u8, 2, 3, 4];
        let bytes = safetensors::serialize(
            [(
                "quantized",
                TensorView::new(Dtype::U16, vec![2], &data).unwrap(),
            )],
            None,
        )
        .expect("encode");
        let error = read_safetensors(&bytes, "q.safetensors").expect_err("U16 is not supported");
        assert_eq!(error.code, "weights-dtype");
        assert!(
            error.message.contains("quantized") && error.message.contains("U16"),
            "{}",
            error.message
        );
    }

    #[test]
    fn truncated_and_corrupted_files_are_weights_corrupt() {
        let bytes = write_safetensors(&sample_tensors(), None).expect("encode");
        for cut in [0, 5, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            let error = read_safetensors(&bytes[..cut], "cut.safetensors").expect_err("truncated");
            assert_eq!(error.code, "weights-corrupt", "cut at {cut}");
            assert!(
                error.message.contains("cut.safetensors"),
                "{}",
                error.message
            );
        }
        let header_length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        // Flip bytes inside the JSON header: each breaks the JSON, the dtypes or the offsets.
        for position in [8, 9, 8 + header_length / 2, 8 + header_length - 2] {
            let mut corrupted = bytes.clone();
            corrupted[position] ^= 0xff;
            let error =
                read_safetensors(&corrupted, "flipped.safetensors").expect_err("corrupted header");
            assert_eq!(error.code, "weights-corrupt", "flip at {position}");
        }
        // A header length pointing far past the end of the file.
        let mut lying = bytes.clone();
        lying[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert_eq!(
            read_safetensors(&lying, "lying.safetensors")
                .expect_err("lying length")
                .code,
            "weights-corrupt"
        );
        // Offsets that claim a huge tensor with tiny data.
        let header =
            br#"{"x":{"dtype":"F32","shape":[1000000000000,1000000000000],"data_offsets":[0,8]}}"#;
        let mut absurd = (header.len() as u64).to_le_bytes().to_vec();
        absurd.extend_from_slice(header);
        absurd.extend_from_slice(&[0; 8]);
        assert_eq!(
            read_safetensors(&absurd, "absurd.safetensors")
                .expect_err("absurd shape")
                .code,
            "weights-corrupt"
        );
    }

    #[test]
    fn writing_duplicate_or_reserved_names_is_refused_instead_of_panicking() {
        let tensor = Tensor::from_f32(vec![1], vec![1.0]).unwrap();
        let duplicate = vec![
            ("w".to_string(), tensor.clone()),
            ("w".to_string(), tensor.clone()),
        ];
        assert_eq!(
            write_safetensors(&duplicate, None)
                .expect_err("duplicate")
                .code,
            "weights-corrupt"
        );
        let reserved = vec![("__metadata__".to_string(), tensor)];
        assert_eq!(
            write_safetensors(&reserved, None)
                .expect_err("reserved")
                .code,
            "weights-corrupt"
        );
    }

    fn param(name: &str, dtype: DType, shape: &[usize]) -> ExpectedParam {
        ExpectedParam {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn bind_weights_accepts_an_exact_match() {
        let expected = [
            param("a.weight", DType::F32, &[2, 3]),
            param("counter", DType::I64, &[]),
        ];
        let found = vec![
            (
                "counter".to_string(),
                Tensor::from_i64(vec![], vec![3]).unwrap(),
            ),
            (
                "a.weight".to_string(),
                Tensor::from_f32(vec![2, 3], vec![0.0; 6]).unwrap(),
            ),
        ];
        let bound = bind_weights(&expected, found, "ok.safetensors").expect("exact match binds");
        assert_eq!(bound.len(), 2);
        assert_eq!(bound["counter"].as_i64(), Some(&[3i64][..]));
    }

    #[test]
    fn bind_weights_reports_every_problem_at_once() {
        let expected = [
            param("fc1.weight", DType::F32, &[512, 784]),
            param("fc1.bias", DType::F32, &[512]),
            param("fc2.weight", DType::F32, &[10, 512]),
            param("fc2.bias", DType::F32, &[10]),
            param("steps", DType::I64, &[]),
        ];
        let found = vec![
            (
                "fc1.weights".to_string(),
                Tensor::from_f32(vec![1], vec![0.0]).unwrap(),
            ),
            (
                "fc1.bias".to_string(),
                Tensor::from_f32(vec![700], vec![0.0; 700]).unwrap(),
            ),
            (
                "fc2.weight".to_string(),
                Tensor::from_f32(vec![10, 512], vec![0.0; 5120]).unwrap(),
            ),
            (
                "fc2.bias".to_string(),
                Tensor::from_f32(vec![10], vec![0.0; 10]).unwrap(),
            ),
            (
                "steps".to_string(),
                Tensor::from_f32(vec![], vec![1.0]).unwrap(),
            ),
            (
                "optimizer.momentum".to_string(),
                Tensor::from_f32(vec![1], vec![0.0]).unwrap(),
            ),
        ];
        let diagnostics =
            bind_weights(&expected, found, "mlp.safetensors").expect_err("several problems");
        assert_eq!(
            codes(&diagnostics),
            vec![
                "weights-missing",
                "weights-shape",
                "weights-dtype",
                "weights-unexpected",
                "weights-unexpected"
            ]
        );

        let missing = &diagnostics[0];
        assert!(
            missing.message.contains("`fc1.weight`"),
            "{}",
            missing.message
        );
        assert_eq!(
            missing.help.as_deref(),
            Some("the file has `fc1.weights`; did you mean that?")
        );
        assert_eq!(
            diagnostics[1].message,
            "`fc1.bias` has shape [700] in the file, the model declares [512]"
        );
        assert!(diagnostics[2].message.contains("f32") && diagnostics[2].message.contains("i64"));
        assert!(diagnostics[3].message.contains("`fc1.weights`"));
        assert!(
            diagnostics[3]
                .notes
                .iter()
                .any(|note| note.contains("`fc1.weight`")),
            "{:?}",
            diagnostics[3].notes
        );
        assert!(diagnostics[4].message.contains("`optimizer.momentum`"));
    }

    #[test]
    fn bind_weights_shape_message_matches_the_documented_wording() {
        let expected = [param("fc1.weight", DType::F32, &[512, 784])];
        let found = vec![(
            "fc1.weight".to_string(),
            Tensor::from_f32(vec![512, 700], vec![0.0; 512 * 700]).unwrap(),
        )];
        let diagnostics = bind_weights(&expected, found, "m.safetensors").expect_err("shape");
        assert_eq!(codes(&diagnostics), vec!["weights-shape"]);
        assert_eq!(
            diagnostics[0].message,
            "`fc1.weight` has shape [512, 700] in the file, the model declares [512, 784]"
        );
    }

    #[test]
    fn bind_weights_does_not_suggest_distant_names_and_lists_at_most_five_candidates() {
        let expected: Vec<ExpectedParam> = (0..7)
            .map(|i| param(&format!("layer{i}.weight"), DType::F32, &[1]))
            .collect();
        let found = vec![(
            "zzz".to_string(),
            Tensor::from_f32(vec![1], vec![0.0]).unwrap(),
        )];
        let diagnostics =
            bind_weights(&expected, found, "far.safetensors").expect_err("all missing");
        assert_eq!(codes(&diagnostics)[..7], ["weights-missing"; 7]);
        assert!(
            diagnostics[..7].iter().all(|d| d.help.is_none()),
            "`zzz` is no near miss"
        );
        let unexpected = &diagnostics[7];
        assert_eq!(unexpected.code, "weights-unexpected");
        let note = &unexpected.notes[0];
        assert_eq!(note.matches(".weight`").count(), 5, "{note}");
        assert!(note.contains("(and 2 more)"), "{note}");
    }

    #[test]
    fn bind_weights_reports_a_duplicated_tensor_name() {
        let expected = [param("w", DType::F32, &[1])];
        let tensor = Tensor::from_f32(vec![1], vec![0.0]).unwrap();
        let found = vec![("w".to_string(), tensor.clone()), ("w".to_string(), tensor)];
        let diagnostics = bind_weights(&expected, found, "dup.safetensors").expect_err("duplicate");
        assert_eq!(codes(&diagnostics), vec!["weights-corrupt"]);
    }

    proptest::proptest! {
        #[test]
        fn random_truncations_and_byte_changes_never_panic(
            cut in 0usize..400,
            changes in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..4),
            random in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let valid = write_safetensors(&sample_tensors(), None).expect("encode");
            let cut = cut.min(valid.len());
            let truncated = read_safetensors(&valid[..cut], "cut.safetensors");
            if cut < valid.len() {
                proptest::prop_assert_eq!(truncated.expect_err("truncated").code, "weights-corrupt");
            }
            let mut changed = valid.clone();
            for (position, value) in changes {
                let position = position % changed.len();
                changed[position] = value;
            }
            let _ = read_safetensors(&changed, "changed.safetensors");
            let _ = read_safetensors(&random, "random.safetensors");
        }
    }

    #[test]
    fn levenshtein_distance_examples() {
        assert_eq!(levenshtein_distance("", ""), 0);
        assert_eq!(levenshtein_distance("abc", ""), 3);
        assert_eq!(levenshtein_distance("", "abc"), 3);
        assert_eq!(levenshtein_distance("kitten", "sitting"), 3);
        assert_eq!(levenshtein_distance("fc1.weight", "fc1.weights"), 1);
        assert_eq!(levenshtein_distance("flaw", "lawn"), 2);
        assert_eq!(levenshtein_distance("żółw", "zolw"), 3);
    }
}
