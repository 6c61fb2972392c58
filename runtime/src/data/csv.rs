//! CSV data: `csv("path", features = 0..64, label = 64, shape = [1, 8, 8], header = true)`.
//!
//! The format is plain comma-separated numbers, one example per line:
//!
//! - a path ending in `.gz` (any case) is gunzipped first (concatenated gzip members are read
//!   as one stream, as `gzip -d` does), up to [`MAXIMUM_DECOMPRESSED_BYTES`];
//! - a UTF-8 byte order mark at the start is dropped; with `header = true` the first line is
//!   skipped whatever it holds; blank lines are skipped anywhere; a line may end in `\r\n`;
//! - cells are split at every `,` (quoted commas are not supported), trimmed of spaces and
//!   tabs, and a cell wrapped in double quotes is unwrapped;
//! - every data line has the number of cells of the first; `features` (zero-based columns, in
//!   the order given) defaults to every column but the label's, `label` to the last column;
//! - a feature is a finite number in f32 range (`1`, `-2.5`, `3e-4`; not empty, `NaN` or
//!   `inf`); a class label is a whole number (`3` or `3.0`) from 0 and below the class count
//!   when one is given; a target is any finite number;
//! - each row's features are reshaped to `shape`, whose element count must equal the number
//!   of feature columns.
//!
//! Messages say `` `file`, line L, column C: ... `` with lines counted from 1 (as editors do)
//! and columns from 0 (as `features` and `label` do).

use super::{check_class, whole_number, Dataset, Features, LabelKind, Labels, DATA_INVALID};
use crate::fsio::read_file;
use modelc_compiler::check::settings::CsvData;
use modelc_compiler::diag::Diagnostic;
use std::io::Read;
use std::path::Path;

/// The most bytes a `.gz` file may decompress to (1 GiB): a bound against gzip bombs.
pub const MAXIMUM_DECOMPRESSED_BYTES: u64 = 1 << 30;

const NUMBERING_NOTE: &str =
    "lines count from 1; columns count from 0, as in `features` and `label`";

/// Reads a CSV file (gunzipping a `.gz` one) and parses it with [`parse_csv`]; the path names
/// the file in messages.
pub fn read_csv(path: &Path, csv: &CsvData, labels: LabelKind) -> Result<Dataset, Diagnostic> {
    let name = path.display().to_string();
    let bytes = read_file(path)?;
    if bytes.is_empty() {
        return Err(Diagnostic::error(
            DATA_INVALID,
            format!("`{name}` is empty"),
        ));
    }
    let gzipped = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("gz"));
    let text = if gzipped {
        gunzip(&bytes, &name)?
    } else {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(Diagnostic::error(
                DATA_INVALID,
                format!("`{name}` is gzip-compressed, but its name does not end in `.gz`"),
            )
            .with_help("rename it to end in `.gz`, or decompress it"));
        }
        bytes
    };
    parse_csv(&text, &name, csv, labels)
}

fn gunzip(bytes: &[u8], name: &str) -> Result<Vec<u8>, Diagnostic> {
    gunzip_at_most(bytes, name, MAXIMUM_DECOMPRESSED_BYTES)
}

fn gunzip_at_most(bytes: &[u8], name: &str, limit: u64) -> Result<Vec<u8>, Diagnostic> {
    let mut text = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    decoder
        .take(limit + 1)
        .read_to_end(&mut text)
        .map_err(|error| {
            Diagnostic::error(
                DATA_INVALID,
                format!("`{name}` is not a valid gzip file: {error}"),
            )
            .with_help("the file may be truncated or not compressed; a plain CSV file must not end in `.gz`")
        })?;
    if text.len() as u64 > limit {
        return Err(Diagnostic::error(
            DATA_INVALID,
            format!(
                "`{name}` decompresses to more than {limit} bytes, the most a CSV file may hold"
            ),
        ));
    }
    Ok(text)
}

/// The layout fixed by the first data row.
struct Columns {
    count: usize,
    features: Vec<usize>,
    label: usize,
}

/// Parses CSV text (already decompressed). `name` names the file in messages.
pub fn parse_csv(
    text: &[u8],
    name: &str,
    csv: &CsvData,
    labels: LabelKind,
) -> Result<Dataset, Diagnostic> {
    let error = |line: usize, column: Option<usize>, message: String| {
        let at = match column {
            Some(column) => format!("`{name}`, line {line}, column {column}"),
            None => format!("`{name}`, line {line}"),
        };
        Diagnostic::error(DATA_INVALID, format!("{at}: {message}")).with_note(NUMBERING_NOTE)
    };
    let text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(Diagnostic::error(
            DATA_INVALID,
            format!("`{name}` is empty"),
        ));
    }

    let mut columns: Option<(Columns, usize)> = None;
    let mut features: Vec<f32> = Vec::new();
    let mut classes: Vec<i64> = Vec::new();
    let mut targets: Vec<f32> = Vec::new();
    for (index, line) in text.split(|&byte| byte == b'\n').enumerate() {
        let number = index + 1;
        if csv.header && index == 0 {
            continue;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let cells: Vec<&[u8]> = line.split(|&byte| byte == b',').collect();
        if columns.is_none() {
            let layout = first_row_columns(csv, cells.len())
                .map_err(|message| error(number, None, message))?;
            columns = Some((layout, number));
        }
        let Some((layout, first_line)) = &columns else {
            continue;
        };
        if cells.len() != layout.count {
            return Err(error(
                number,
                None,
                format!(
                    "expected {} columns, as on line {first_line}, found {}",
                    layout.count,
                    cells.len()
                ),
            ));
        }
        let first_row = number == *first_line;
        let header_hint = |diagnostic: Diagnostic| {
            if first_row && !csv.header {
                diagnostic.with_help("if the first line holds column names, add `header = true`")
            } else {
                diagnostic
            }
        };
        for &column in &layout.features {
            let value = parse_number(cells[column], "")
                .map_err(|problem| header_hint(error(number, Some(column), problem)))?;
            let value = value as f32;
            if !value.is_finite() {
                return Err(error(
                    number,
                    Some(column),
                    format!("{} is out of the f32 range", show(cells[column])),
                ));
            }
            features.push(value);
        }
        let cell = cells[layout.label];
        let label = parse_number(cell, "label ")
            .map_err(|problem| header_hint(error(number, Some(layout.label), problem)))?;
        match labels {
            LabelKind::Classes { classes: count } => {
                let class = whole_number(label).ok_or_else(|| {
                    error(
                        number,
                        Some(layout.label),
                        format!(
                            "label {} is not a class index (a whole number)",
                            show(cell)
                        ),
                    )
                    .with_help(
                        "real-valued targets need a regression loss such as `mse`; check `label` names the class column",
                    )
                })?;
                check_class(class, count)
                    .map_err(|problem| error(number, Some(layout.label), problem))?;
                classes.push(class);
            }
            LabelKind::Targets => {
                let target = label as f32;
                if !target.is_finite() {
                    return Err(error(
                        number,
                        Some(layout.label),
                        format!("label {} is out of the f32 range", show(cell)),
                    ));
                }
                targets.push(target);
            }
        }
    }

    let Some((layout, _)) = columns else {
        return Err(Diagnostic::error(
            DATA_INVALID,
            format!("`{name}` has no data rows, only a header line"),
        )
        .with_help("`header = true` skips the first line; drop it if the file has no header"));
    };
    Ok(Dataset {
        features: Features::F32(features),
        feature_shape: csv
            .shape
            .clone()
            .unwrap_or_else(|| vec![layout.features.len()]),
        labels: match labels {
            LabelKind::Classes { .. } => Labels::Classes(classes),
            LabelKind::Targets => Labels::Targets(targets),
        },
        label_shape: Vec::new(),
    })
}

/// The feature and label columns for rows of `count` cells, or why they do not fit.
fn first_row_columns(csv: &CsvData, count: usize) -> Result<Columns, String> {
    let range = if count == 1 {
        "column 0".to_string()
    } else {
        format!("columns 0 to {}", count - 1)
    };
    let label = match csv.label {
        Some(label) if label >= count => {
            return Err(format!(
                "the row has {count} column{} ({range}), so `label = {label}` does not exist",
                plural(count)
            ))
        }
        Some(label) => label,
        None => count - 1,
    };
    let features = match &csv.features {
        Some(features) => {
            if let Some(missing) = features.iter().find(|&&column| column >= count) {
                return Err(format!(
                    "the row has {count} column{} ({range}), so column {missing} selected by `features` does not exist",
                    plural(count)
                ));
            }
            features.clone()
        }
        None => (0..count).filter(|&column| column != label).collect(),
    };
    if features.is_empty() {
        return Err(format!(
            "the row has {count} column{} and no feature column besides the label",
            plural(count)
        ));
    }
    if let Some(shape) = &csv.shape {
        let elements = shape
            .iter()
            .try_fold(1usize, |product, &dim| product.checked_mul(dim));
        if elements != Some(features.len()) {
            let holds = match elements {
                Some(elements) => format!("holds {elements} values"),
                None => "is too large".to_string(),
            };
            return Err(format!(
                "`shape = {shape:?}` {holds}, but the row has {} feature columns",
                features.len()
            ));
        }
    }
    Ok(Columns {
        count,
        features,
        label,
    })
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// A cell as a finite number, or what is wrong with it (`` `abc` is not a number ``); `what`
/// prefixes the cell in the message (`"label "`).
fn parse_number(cell: &[u8], what: &str) -> Result<f64, String> {
    let trimmed = trim(cell);
    let unquoted = match trimmed {
        [b'"', inner @ .., b'"'] => trim(inner),
        _ => trimmed,
    };
    if unquoted.is_empty() {
        return Err(format!("the {what}cell is empty"));
    }
    let value = std::str::from_utf8(unquoted)
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .ok_or_else(|| format!("{what}{} is not a number", show(cell)))?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("{what}{} is not a finite number", show(cell)))
    }
}

fn trim(cell: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = cell
        .iter()
        .position(|byte| !is_space(byte))
        .unwrap_or(cell.len());
    let end = cell
        .iter()
        .rposition(|byte| !is_space(byte))
        .map_or(start, |end| end + 1);
    &cell[start..end.max(start)]
}

/// A cell for a message: trimmed, in backticks, lossily decoded, at most 40 characters.
fn show(cell: &[u8]) -> String {
    let text = String::from_utf8_lossy(trim(cell));
    let mut shown: String = text.chars().take(40).collect();
    if text.chars().count() > 40 {
        shown.push('…');
    }
    format!("`{shown}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompression_stops_at_the_limit() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, &[b'0'; 10_000]).expect("compress");
        let bytes = encoder.finish().expect("finish");
        assert_eq!(
            gunzip_at_most(&bytes, "z.gz", 10_000).expect("fits").len(),
            10_000
        );
        let error = gunzip_at_most(&bytes, "z.gz", 9_999).expect_err("too large");
        assert_eq!(
            error.message,
            "`z.gz` decompresses to more than 9999 bytes, the most a CSV file may hold"
        );
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let csv = CsvData {
            path: "b.csv".to_string(),
            features: None,
            label: None,
            shape: None,
            header: false,
        };
        let text = "\u{feff}1.5,2\n".as_bytes();
        let data = parse_csv(text, "b.csv", &csv, LabelKind::Targets).expect("parses");
        assert_eq!(data.features, Features::F32(vec![1.5]));
    }
}
