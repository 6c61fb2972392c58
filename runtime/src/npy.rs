//! NumPy `.npy` files: reading format versions 1.0, 2.0 and 3.0, writing version 1.0.
//!
//! The format is a magic string, a version, a little-endian header length, a header that is a
//! Python dict literal (`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`), and
//! then the raw elements. The header is parsed by hand with a small, depth-limited parser
//! rather than evaluated, and the declared shape is checked against the bytes actually present
//! before any buffer is allocated from it.

use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::tensor::element_count;
use modelc_compiler::interp::{Tensor, TensorData};

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// NumPy aligns the start of the data to this many bytes (so that it can be memory-mapped).
const ARRAY_ALIGNMENT: usize = 64;

/// NumPy leaves room after the dict for the growing axis to reach this many digits, so that an
/// appending writer can rewrite the header in place. Matching it makes our files byte-identical
/// to `numpy.save`'s.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// Deep enough for any real header (a structured dtype nests a few levels); shallow enough that
/// a header of ten thousand `(` cannot overflow the stack.
const MAXIMUM_NESTING_DEPTH: usize = 32;

/// Reads a `.npy` file from memory.
///
/// Supported element types, in either byte order: `f4`, `f8` and `f2` (as f32); `i1`, `i2`,
/// `i4`, `i8`, `u1`, `u2`, `u4` (as i64); `b1` (as bool). Fortran-ordered arrays are
/// transposed to row-major. `name_for_errors` is how the file is named in diagnostics (usually
/// its path). Every problem is an `npy-invalid` diagnostic; no input panics.
pub fn read_npy(bytes: &[u8], name_for_errors: &str) -> Result<Tensor, Diagnostic> {
    let invalid = |reason: String| {
        Diagnostic::error(
            "npy-invalid",
            format!("`{name_for_errors}` is not a valid .npy file: {reason}"),
        )
    };

    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(invalid("it does not start with the .npy magic bytes `\\x93NUMPY`".into())
            .with_help("the file may be in another format (.npz archives, text or pickles are not supported); save it with `numpy.save`"));
    }
    let (Some(&major), Some(&minor)) = (bytes.get(6), bytes.get(7)) else {
        return Err(invalid("the file ends inside the format version".into()));
    };
    let length_field_size = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(
                invalid(format!("format version {major}.{minor} is not supported"))
                    .with_note("supported versions are 1.0, 2.0 and 3.0"),
            )
        }
    };
    let header_start = 8 + length_field_size;
    let Some(length_field) = bytes.get(8..header_start) else {
        return Err(invalid("the file ends inside the header length".into()));
    };
    let header_length = length_field
        .iter()
        .rev()
        .fold(0usize, |acc, &byte| (acc << 8) | usize::from(byte));
    let header_end = header_start.checked_add(header_length);
    let Some(header_bytes) = header_end.and_then(|end| bytes.get(header_start..end)) else {
        return Err(invalid(format!(
            "the header is declared as {header_length} bytes but the file has only {} after the prefix (truncated?)",
            bytes.len() - header_start
        )));
    };
    let header_end = header_start + header_length;

    // Versions 1.0 and 2.0 store the header in Latin-1, whose bytes are exactly the first 256
    // code points; 3.0 stores UTF-8.
    let header_text: String = if major == 3 {
        match std::str::from_utf8(header_bytes) {
            Ok(text) => text.to_owned(),
            Err(error) => {
                return Err(invalid(format!(
                    "the version 3.0 header is not valid UTF-8: {error}"
                )))
            }
        }
    } else {
        header_bytes.iter().map(|&byte| char::from(byte)).collect()
    };

    let header = parse_header(&header_text)
        .map_err(|reason| invalid(format!("malformed header: {reason}")))?;
    let element_type = ElementType::from_descr(&header.descr).ok_or_else(|| {
        Diagnostic::error(
            "npy-invalid",
            format!(
                "`{name_for_errors}` has element type `{}`, which is not supported",
                header.descr
            ),
        )
        .with_help(
            "save as float32 or int64 (e.g. `numpy.save(path, array.astype(numpy.float32))`)",
        )
        .with_note("supported: float16/32/64, int8/16/32/64, uint8/16/32 and bool")
    })?;

    let count = element_count(&header.shape).ok_or_else(|| {
        invalid(format!(
            "the shape {:?} has more elements than can be addressed",
            header.shape
        ))
    })?;
    let data = &bytes[header_end..];
    let expected_length = count.checked_mul(element_type.size).ok_or_else(|| {
        invalid(format!(
            "the shape {:?} of `{}` is larger than can be addressed",
            header.shape, header.descr
        ))
    })?;
    if data.len() != expected_length {
        let problem = if data.len() < expected_length {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(invalid(format!(
            "the data is {} bytes but shape {:?} of `{}` needs {expected_length} ({problem})",
            data.len(),
            header.shape,
            header.descr
        )));
    }

    // Only now is `count` known to be backed by real bytes, so allocating for it is safe.
    let tensor_data = element_type.decode(data);
    let tensor_data = if header.fortran_order {
        fortran_to_row_major(tensor_data, &header.shape)
    } else {
        tensor_data
    };
    Tensor::new(header.shape, tensor_data)
        .ok_or_else(|| invalid("internal inconsistency between shape and decoded data".into()))
}

/// Writes a tensor as a version 1.0 `.npy` file (`<f4`, `<i8` or `|b1`, C order), byte for byte
/// as `numpy.save` writes the same array. Falls back to version 2.0, as NumPy does, only if the
/// header does not fit in 65535 bytes (a tensor of rank in the thousands).
pub fn write_npy(tensor: &Tensor) -> Vec<u8> {
    let descr = match tensor.data {
        TensorData::F32(_) => "<f4",
        TensorData::I64(_) => "<i8",
        TensorData::Bool(_) => "|b1",
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}",
        python_tuple(&tensor.shape)
    );
    if let Some(first_dimension) = tensor.shape.first() {
        let digits = first_dimension.to_string().len();
        header.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }

    let wrap = |length_field_size: usize| {
        // The prefix, the header and its final newline together fill whole 64-byte blocks; like
        // NumPy, a header that already fits exactly still gets a full block of padding.
        let unpadded = MAGIC.len() + 2 + length_field_size + header.len() + 1;
        let padding = ARRAY_ALIGNMENT - unpadded % ARRAY_ALIGNMENT;
        header.len() + padding + 1
    };
    let (version, header_length) = match wrap(2) {
        length if length <= usize::from(u16::MAX) => (1u8, length),
        _ => (2u8, wrap(4)),
    };

    let mut bytes =
        Vec::with_capacity(16 + header_length + tensor.len() * tensor.dtype().size_in_bytes());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[version, 0]);
    if version == 1 {
        // Fits: checked against u16::MAX just above.
        bytes.extend_from_slice(&(header_length as u16).to_le_bytes());
    } else {
        bytes.extend_from_slice(&(header_length as u32).to_le_bytes());
    }
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + header_length - header.len() - 1, b' ');
    bytes.push(b'\n');

    match &tensor.data {
        TensorData::F32(values) => values
            .iter()
            .for_each(|value| bytes.extend_from_slice(&value.to_le_bytes())),
        TensorData::I64(values) => values
            .iter()
            .for_each(|value| bytes.extend_from_slice(&value.to_le_bytes())),
        TensorData::Bool(values) => bytes.extend(values.iter().map(|&value| u8::from(value))),
    }
    bytes
}

/// Python's `repr` of a tuple of ints: `()`, `(3,)`, `(2, 3)`.
fn python_tuple(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_string(),
        [only] => format!("({only},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The three keys of a `.npy` header that matter.
#[derive(Debug, PartialEq)]
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum ElementKind {
    Float,
    SignedInteger,
    UnsignedInteger,
    Bool,
}

/// One element's encoding in the file.
#[derive(Clone, Copy, PartialEq, Debug)]
struct ElementType {
    kind: ElementKind,
    size: usize,
    big_endian: bool,
}

impl ElementType {
    /// Parses a NumPy type string such as `<f4`, `>i8` or `|b1`; `None` for anything this
    /// runtime cannot represent (strings, objects, complex, uint64, datetimes, ...).
    fn from_descr(descr: &str) -> Option<ElementType> {
        let (big_endian, rest) = match descr.as_bytes().first()? {
            b'<' => (false, &descr[1..]),
            b'>' => (true, &descr[1..]),
            // `|` means byte order does not apply; `=` means the writer's native order, which
            // NumPy never writes to files, so reading it as this machine's order is the best guess.
            b'|' | b'=' => (cfg!(target_endian = "big"), &descr[1..]),
            _ => (cfg!(target_endian = "big"), descr),
        };
        let (kind, size) = match rest {
            "f2" => (ElementKind::Float, 2),
            "f4" => (ElementKind::Float, 4),
            "f8" => (ElementKind::Float, 8),
            "i1" => (ElementKind::SignedInteger, 1),
            "i2" => (ElementKind::SignedInteger, 2),
            "i4" => (ElementKind::SignedInteger, 4),
            "i8" => (ElementKind::SignedInteger, 8),
            "u1" => (ElementKind::UnsignedInteger, 1),
            "u2" => (ElementKind::UnsignedInteger, 2),
            "u4" => (ElementKind::UnsignedInteger, 4),
            "b1" => (ElementKind::Bool, 1),
            _ => return None,
        };
        Some(ElementType {
            kind,
            size,
            big_endian,
        })
    }

    /// Decodes `data`, whose length the caller has checked is a multiple of the element size.
    fn decode(self, data: &[u8]) -> TensorData {
        let elements = data.chunks_exact(self.size);
        // Widen every element to 8 bytes in little-endian order, sign-extending signed integers,
        // so each kind needs one conversion instead of one per size and byte order.
        let widened = move |chunk: &[u8]| -> [u8; 8] {
            let mut little_endian = [0u8; 8];
            for (index, &byte) in chunk.iter().enumerate() {
                let position = if self.big_endian {
                    chunk.len() - 1 - index
                } else {
                    index
                };
                little_endian[position] = byte;
            }
            if self.kind == ElementKind::SignedInteger && little_endian[chunk.len() - 1] & 0x80 != 0
            {
                little_endian[chunk.len()..].fill(0xff);
            }
            little_endian
        };
        match self.kind {
            ElementKind::Float => TensorData::F32(
                elements
                    .map(|chunk| {
                        let bytes = widened(chunk);
                        match self.size {
                            2 => half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
                            4 => f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                            _ => f64::from_le_bytes(bytes) as f32,
                        }
                    })
                    .collect(),
            ),
            ElementKind::SignedInteger | ElementKind::UnsignedInteger => TensorData::I64(
                elements
                    .map(|chunk| i64::from_le_bytes(widened(chunk)))
                    .collect(),
            ),
            ElementKind::Bool => TensorData::Bool(data.iter().map(|&byte| byte != 0).collect()),
        }
    }
}

/// Reorders column-major (first axis fastest) data into row-major order.
fn fortran_to_row_major(data: TensorData, shape: &[usize]) -> TensorData {
    if shape.len() < 2 {
        return data;
    }
    fn reorder<T: Copy>(values: Vec<T>, shape: &[usize]) -> Vec<T> {
        let Some(&first) = values.first() else {
            return values;
        };
        let mut row_major_strides = vec![1usize; shape.len()];
        for axis in (0..shape.len() - 1).rev() {
            row_major_strides[axis] = row_major_strides[axis + 1] * shape[axis + 1];
        }
        let mut output = vec![first; values.len()];
        // Walk the input in file order with an odometer whose first axis turns fastest.
        let mut index = vec![0usize; shape.len()];
        let mut output_offset = 0usize;
        for &value in &values {
            output[output_offset] = value;
            for axis in 0..shape.len() {
                index[axis] += 1;
                output_offset += row_major_strides[axis];
                if index[axis] < shape[axis] {
                    break;
                }
                output_offset -= row_major_strides[axis] * shape[axis];
                index[axis] = 0;
            }
        }
        output
    }
    match data {
        TensorData::F32(values) => TensorData::F32(reorder(values, shape)),
        TensorData::I64(values) => TensorData::I64(reorder(values, shape)),
        TensorData::Bool(values) => TensorData::Bool(reorder(values, shape)),
    }
}

/// The subset of Python literals that can appear in a `.npy` header.
#[derive(Clone, PartialEq, Debug)]
enum PythonValue {
    String(String),
    Bool(bool),
    None,
    Integer(i64),
    Tuple(Vec<PythonValue>),
    List(Vec<PythonValue>),
    Dict(Vec<(PythonValue, PythonValue)>),
}

impl PythonValue {
    fn describe(&self) -> &'static str {
        match self {
            PythonValue::String(_) => "a string",
            PythonValue::Bool(_) => "a bool",
            PythonValue::None => "None",
            PythonValue::Integer(_) => "an integer",
            PythonValue::Tuple(_) => "a tuple",
            PythonValue::List(_) => "a list",
            PythonValue::Dict(_) => "a dict",
        }
    }
}

/// Parses the header dict and picks out `descr`, `fortran_order` and `shape`.
fn parse_header(text: &str) -> Result<NpyHeader, String> {
    let mut parser = LiteralParser {
        characters: text.chars().collect(),
        position: 0,
        depth: 0,
    };
    let value = parser.parse_value()?;
    parser.skip_whitespace();
    if parser.position != parser.characters.len() {
        return Err(format!(
            "unexpected text after the header dict at character {}",
            parser.position
        ));
    }
    let PythonValue::Dict(entries) = value else {
        return Err(format!("the header is {}, not a dict", value.describe()));
    };
    // Python keeps the last value of a repeated key, and so do we.
    let lookup = |key: &str| {
        entries
            .iter()
            .rev()
            .find(|(entry_key, _)| *entry_key == PythonValue::String(key.to_string()))
            .map(|(_, v)| v)
    };

    let descr = match lookup("descr") {
        Some(PythonValue::String(descr)) => descr.clone(),
        // A list of fields is a structured (record) dtype; name it so the user knows why.
        Some(PythonValue::List(_)) => "structured (record) dtype".to_string(),
        Some(other) => {
            return Err(format!(
                "'descr' is {}, expected a string",
                other.describe()
            ))
        }
        None => return Err("the header has no 'descr' key".into()),
    };
    let fortran_order = match lookup("fortran_order") {
        Some(PythonValue::Bool(value)) => *value,
        Some(other) => {
            return Err(format!(
                "'fortran_order' is {}, expected True or False",
                other.describe()
            ))
        }
        None => return Err("the header has no 'fortran_order' key".into()),
    };
    let shape = match lookup("shape") {
        Some(PythonValue::Tuple(dims)) | Some(PythonValue::List(dims)) => dims
            .iter()
            .map(|dim| match dim {
                PythonValue::Integer(value) => usize::try_from(*value)
                    .map_err(|_| format!("the shape has a negative or too large dim {value}")),
                other => Err(format!(
                    "a dim of the shape is {}, expected an integer",
                    other.describe()
                )),
            })
            .collect::<Result<Vec<usize>, String>>()?,
        Some(other) => {
            return Err(format!(
                "'shape' is {}, expected a tuple of integers",
                other.describe()
            ))
        }
        None => return Err("the header has no 'shape' key".into()),
    };
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
    })
}

/// A recursive-descent parser for Python literals (strings, ints, True/False/None, tuples,
/// lists, dicts). Errors are plain reasons; the caller wraps them in a diagnostic.
struct LiteralParser {
    characters: Vec<char>,
    position: usize,
    depth: usize,
}

impl LiteralParser {
    fn peek(&self) -> Option<char> {
        self.characters.get(self.position).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.position += 1;
        }
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        self.skip_whitespace();
        match self.peek() {
            Some(found) if found == wanted => {
                self.position += 1;
                Ok(())
            }
            Some(found) => Err(format!(
                "expected `{wanted}` at character {}, found `{found}`",
                self.position
            )),
            None => Err(format!("expected `{wanted}` but the header ended")),
        }
    }

    fn parse_value(&mut self) -> Result<PythonValue, String> {
        self.skip_whitespace();
        let Some(first) = self.peek() else {
            return Err("expected a value but the header ended".into());
        };
        match first {
            '{' | '(' | '[' => {
                if self.depth >= MAXIMUM_NESTING_DEPTH {
                    return Err(format!(
                        "brackets are nested deeper than {MAXIMUM_NESTING_DEPTH} levels"
                    ));
                }
                self.depth += 1;
                let result = match first {
                    '{' => self.parse_dict(),
                    '(' => self.parse_sequence(')').map(PythonValue::Tuple),
                    _ => self.parse_sequence(']').map(PythonValue::List),
                };
                self.depth -= 1;
                result
            }
            '\'' | '"' => self.parse_string(first),
            '-' | '+' | '0'..='9' => self.parse_integer(),
            _ if first.is_alphabetic() || first == '_' => {
                let start = self.position;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.position += 1;
                }
                let word: String = self.characters[start..self.position].iter().collect();
                match word.as_str() {
                    "True" => Ok(PythonValue::Bool(true)),
                    "False" => Ok(PythonValue::Bool(false)),
                    "None" => Ok(PythonValue::None),
                    _ => Err(format!("unexpected name `{word}` at character {start}")),
                }
            }
            other => Err(format!(
                "unexpected `{other}` at character {}",
                self.position
            )),
        }
    }

    /// Items separated by commas, an optional trailing comma, then `close`. The opening bracket
    /// is the current character.
    fn parse_sequence(&mut self, close: char) -> Result<Vec<PythonValue>, String> {
        self.position += 1;
        let mut items = Vec::new();
        loop {
            self.skip_whitespace();
            if self.peek() == Some(close) {
                self.position += 1;
                return Ok(items);
            }
            items.push(self.parse_value()?);
            self.skip_whitespace();
            match self.peek() {
                Some(',') => self.position += 1,
                Some(found) if found == close => {}
                Some(found) => {
                    return Err(format!(
                        "expected `,` or `{close}` at character {}, found `{found}`",
                        self.position
                    ))
                }
                None => return Err(format!("expected `{close}` but the header ended")),
            }
        }
    }

    fn parse_dict(&mut self) -> Result<PythonValue, String> {
        self.position += 1;
        let mut entries = Vec::new();
        loop {
            self.skip_whitespace();
            if self.peek() == Some('}') {
                self.position += 1;
                return Ok(PythonValue::Dict(entries));
            }
            let key = self.parse_value()?;
            self.expect(':')?;
            let value = self.parse_value()?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(',') => self.position += 1,
                Some('}') => {}
                Some(found) => {
                    return Err(format!(
                        "expected `,` or `}}` at character {}, found `{found}`",
                        self.position
                    ))
                }
                None => return Err("expected `}` but the header ended".into()),
            }
        }
    }

    fn parse_string(&mut self, quote: char) -> Result<PythonValue, String> {
        let start = self.position;
        self.position += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(format!(
                        "the string starting at character {start} is not closed"
                    ))
                }
                Some(c) if c == quote => {
                    self.position += 1;
                    return Ok(PythonValue::String(text));
                }
                // Escapes only matter for quotes and backslashes in field names; keeping the
                // escaped character literally is enough for everything NumPy writes.
                Some('\\') => {
                    self.position += 1;
                    match self.peek() {
                        Some(escaped) => text.push(escaped),
                        None => {
                            return Err(format!(
                                "the string starting at character {start} is not closed"
                            ))
                        }
                    }
                    self.position += 1;
                }
                Some(c) => {
                    text.push(c);
                    self.position += 1;
                }
            }
        }
    }

    fn parse_integer(&mut self) -> Result<PythonValue, String> {
        let start = self.position;
        let negative = match self.peek() {
            Some('-') => {
                self.position += 1;
                true
            }
            Some('+') => {
                self.position += 1;
                false
            }
            _ => false,
        };
        let mut magnitude: i64 = 0;
        let mut digits = 0usize;
        while let Some(digit) = self.peek().and_then(|c| c.to_digit(10)) {
            magnitude = magnitude
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(digit)))
                .ok_or_else(|| format!("the integer at character {start} is too large"))?;
            digits += 1;
            self.position += 1;
        }
        if digits == 0 {
            return Err(format!("expected digits at character {}", self.position));
        }
        // Headers written by NumPy under Python 2 spell dims as longs: `(3L, 4L)`.
        if matches!(self.peek(), Some('L') | Some('l')) {
            self.position += 1;
        }
        Ok(PythonValue::Integer(if negative {
            -magnitude
        } else {
            magnitude
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A header exactly as `numpy.save(path, numpy.zeros((2, 3), numpy.float32))` writes it:
    /// the dict, 20 spaces of growth room, padding to 128 bytes, then a newline.
    fn numpy_header_v1(dict: &str) -> Vec<u8> {
        let mut header = dict.to_string();
        let total_without_padding = 10 + header.len() + 1;
        let padding = 64 - total_without_padding % 64;
        header.push_str(&" ".repeat(padding));
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes
    }

    fn float_bytes_little_endian(values: &[f32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect()
    }

    fn round_trip(tensor: &Tensor) -> Tensor {
        let bytes = write_npy(tensor);
        assert_eq!(
            (bytes.len() - tensor.len() * tensor.dtype().size_in_bytes()) % 64,
            0,
            "data starts 64-aligned"
        );
        read_npy(&bytes, "round-trip.npy").expect("read back what was written")
    }

    #[test]
    fn round_trip_every_dtype_and_edge_shape() {
        let tensors = [
            Tensor::from_f32(
                vec![2, 3],
                vec![0.0, -1.5, 2.25, f32::MAX, f32::MIN_POSITIVE, -0.0],
            )
            .unwrap(),
            Tensor::from_f32(vec![], vec![3.5]).unwrap(),
            Tensor::from_f32(vec![0], vec![]).unwrap(),
            Tensor::from_f32(vec![3, 0, 2], vec![]).unwrap(),
            Tensor::from_i64(vec![4], vec![i64::MIN, -1, 0, i64::MAX]).unwrap(),
            Tensor::from_i64(vec![], vec![-7]).unwrap(),
            Tensor::from_i64(vec![1, 1, 1, 2], vec![5, 6]).unwrap(),
            Tensor::from_bool(vec![3], vec![true, false, true]).unwrap(),
            Tensor::from_bool(vec![], vec![false]).unwrap(),
            Tensor::from_bool(vec![2, 0], vec![]).unwrap(),
        ];
        for tensor in &tensors {
            assert_eq!(&round_trip(tensor), tensor);
        }
        // NaN breaks `==`, so compare its bits.
        let not_a_number = Tensor::from_f32(vec![1], vec![f32::NAN]).unwrap();
        let read_back = round_trip(&not_a_number);
        assert_eq!(read_back.as_f32().unwrap()[0].to_bits(), f32::NAN.to_bits());
    }

    #[test]
    fn write_npy_matches_numpy_byte_for_byte() {
        let tensor = Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let mut expected =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
                .to_vec();
        expected.extend_from_slice(&[b' '; 20 + 38]);
        expected.push(b'\n');
        assert_eq!(expected.len(), 128);
        expected.extend(float_bytes_little_endian(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        assert_eq!(write_npy(&tensor), expected);

        // 0-d: no growth room, `()` shape.
        let scalar = write_npy(&Tensor::from_i64(vec![], vec![1]).unwrap());
        let header_length = u16::from_le_bytes([scalar[8], scalar[9]]) as usize;
        let header = std::str::from_utf8(&scalar[10..10 + header_length]).unwrap();
        assert_eq!(
            header.trim_end(),
            "{'descr': '<i8', 'fortran_order': False, 'shape': (), }"
        );
        assert_eq!(10 + header_length, 128);
        assert!(header.ends_with('\n'));

        // 1-d: Python's one-element tuple has a trailing comma.
        let vector = write_npy(&Tensor::from_bool(vec![3], vec![true, false, true]).unwrap());
        let text = String::from_utf8_lossy(&vector[10..]).into_owned();
        assert!(
            text.starts_with("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }"),
            "{text}"
        );
    }

    #[test]
    fn hand_made_numpy_header_parses() {
        let mut bytes =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
                .to_vec();
        bytes.resize(127, b' ');
        bytes.push(b'\n');
        bytes.extend(float_bytes_little_endian(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let tensor = read_npy(&bytes, "hand.npy").expect("numpy's own layout");
        assert_eq!(
            tensor,
            Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap()
        );
    }

    #[test]
    fn versions_two_and_three_parse() {
        for (major, header) in [
            (
                2u8,
                "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
            ),
            (
                3,
                "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), 'note': 'ünïcode'}",
            ),
        ] {
            let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
            bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&(-3i32).to_le_bytes());
            bytes.extend_from_slice(&(40000i32).to_le_bytes());
            let tensor = read_npy(&bytes, "v.npy")
                .unwrap_or_else(|error| panic!("version {major}: {error:?}"));
            assert_eq!(tensor, Tensor::from_i64(vec![2], vec![-3, 40000]).unwrap());
        }
    }

    #[test]
    fn every_supported_descr_converts() {
        let cases: Vec<(&str, Vec<u8>, TensorData)> = vec![
            (
                "<f4",
                1.5f32.to_le_bytes().to_vec(),
                TensorData::F32(vec![1.5]),
            ),
            (
                ">f4",
                1.5f32.to_be_bytes().to_vec(),
                TensorData::F32(vec![1.5]),
            ),
            (
                "<f8",
                (-2.25f64).to_le_bytes().to_vec(),
                TensorData::F32(vec![-2.25]),
            ),
            (
                ">f8",
                (-2.25f64).to_be_bytes().to_vec(),
                TensorData::F32(vec![-2.25]),
            ),
            (
                "<f2",
                half::f16::from_f32(0.5).to_le_bytes().to_vec(),
                TensorData::F32(vec![0.5]),
            ),
            (
                "<i8",
                (-5i64).to_le_bytes().to_vec(),
                TensorData::I64(vec![-5]),
            ),
            (
                ">i8",
                (-5i64).to_be_bytes().to_vec(),
                TensorData::I64(vec![-5]),
            ),
            (
                "<i4",
                (-70000i32).to_le_bytes().to_vec(),
                TensorData::I64(vec![-70000]),
            ),
            (
                ">i4",
                (-70000i32).to_be_bytes().to_vec(),
                TensorData::I64(vec![-70000]),
            ),
            (
                "<i2",
                (-300i16).to_le_bytes().to_vec(),
                TensorData::I64(vec![-300]),
            ),
            ("|i1", vec![0xff], TensorData::I64(vec![-1])),
            ("|u1", vec![0xff], TensorData::I64(vec![255])),
            (
                ">u2",
                65535u16.to_be_bytes().to_vec(),
                TensorData::I64(vec![65535]),
            ),
            (
                "<u4",
                u32::MAX.to_le_bytes().to_vec(),
                TensorData::I64(vec![u32::MAX as i64]),
            ),
            ("|b1", vec![1], TensorData::Bool(vec![true])),
        ];
        for (descr, data, expected) in cases {
            let mut bytes = numpy_header_v1(&format!(
                "{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}"
            ));
            bytes.extend(data);
            let tensor = read_npy(&bytes, "element.npy")
                .unwrap_or_else(|error| panic!("{descr}: {error:?}"));
            assert_eq!(tensor.data, expected, "{descr}");
            assert_eq!(tensor.shape, vec![1], "{descr}");
        }
    }

    #[test]
    fn fortran_order_is_transposed_to_row_major() {
        // The 2x3 matrix [[1, 2, 3], [4, 5, 6]] stored column by column.
        let mut bytes =
            numpy_header_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }");
        bytes.extend(float_bytes_little_endian(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
        let tensor = read_npy(&bytes, "fortran.npy").expect("fortran order");
        assert_eq!(
            tensor,
            Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap()
        );

        // Rank 3, shape (2, 2, 2): element (i, j, k) = 100i + 10j + k, stored first axis fastest.
        let mut bytes =
            numpy_header_v1("{'descr': '<i8', 'fortran_order': True, 'shape': (2, 2, 2), }");
        for k in 0..2i64 {
            for j in 0..2i64 {
                for i in 0..2i64 {
                    bytes.extend_from_slice(&(100 * i + 10 * j + k).to_le_bytes());
                }
            }
        }
        let tensor = read_npy(&bytes, "fortran3.npy").expect("fortran order rank 3");
        assert_eq!(
            tensor.as_i64().unwrap(),
            &[0, 1, 10, 11, 100, 101, 110, 111]
        );
    }

    #[test]
    fn python_two_long_dims_and_double_quotes_parse() {
        let mut bytes =
            numpy_header_v1("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1L, 2L)}");
        bytes.extend(float_bytes_little_endian(&[7.0, 8.0]));
        assert_eq!(
            read_npy(&bytes, "py2.npy").unwrap(),
            Tensor::from_f32(vec![1, 2], vec![7.0, 8.0]).unwrap()
        );
    }

    fn expect_invalid(bytes: &[u8], message_fragment: &str) -> Diagnostic {
        let error = read_npy(bytes, "broken.npy").expect_err("must be rejected");
        assert_eq!(error.code, "npy-invalid");
        assert!(
            error.message.contains("broken.npy"),
            "names the file: {}",
            error.message
        );
        assert!(
            error.message.contains(message_fragment),
            "`{}` should mention `{message_fragment}`",
            error.message
        );
        error
    }

    #[test]
    fn malformed_files_are_rejected_with_clear_reasons() {
        let valid = write_npy(&Tensor::from_f32(vec![2, 3], vec![0.0; 6]).unwrap());

        expect_invalid(b"", "magic");
        expect_invalid(b"PK\x03\x04 this is a zip", "magic");
        expect_invalid(&valid[..7], "version");
        expect_invalid(&valid[..9], "header length");
        expect_invalid(&valid[..40], "truncated");
        expect_invalid(&valid[..valid.len() - 1], "truncated");
        let mut trailing = valid.clone();
        trailing.push(0);
        expect_invalid(&trailing, "trailing bytes");
        let mut future_version = valid.clone();
        future_version[6] = 9;
        expect_invalid(&future_version, "version 9.0");

        let unsupported = {
            let mut bytes =
                numpy_header_v1("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }");
            bytes.extend([0u8; 16]);
            bytes
        };
        let error = expect_invalid(&unsupported, "<c16");
        assert_eq!(
            error
                .help
                .as_deref()
                .map(|help| help.contains("save as float32 or int64")),
            Some(true)
        );

        let structured = numpy_header_v1(
            "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }",
        );
        expect_invalid(&structured, "structured");

        for (header, fragment) in [
            ("{'descr': '<f4', 'shape': (1,), }", "fortran_order"),
            ("{'descr': '<f4', 'fortran_order': False, }", "'shape'"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                "negative",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
                "too large",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
                "fortran_order",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,) ",
                "header ended",
            ),
            ("['descr']", "not a dict"),
            (
                "{'descr': '<f4', 'fortran_order': Flase, 'shape': (1,), }",
                "Flase",
            ),
        ] {
            let mut bytes = numpy_header_v1(header);
            bytes.extend([0u8; 4]);
            expect_invalid(&bytes, fragment);
        }

        let deeply_nested = numpy_header_v1(&format!("{}{}", "(".repeat(5000), ")".repeat(5000)));
        expect_invalid(&deeply_nested, "nested");
    }

    #[test]
    fn absurd_shapes_with_tiny_data_are_rejected_without_allocating() {
        let mut overflowing = numpy_header_v1(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 1000000000000), }",
        );
        overflowing.extend([0u8; 16]);
        expect_invalid(&overflowing, "addressed");

        // Addressable but far larger than the file: must fail on the length check, not on an
        // allocation of 8 TB.
        let mut huge = numpy_header_v1(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }",
        );
        huge.extend([0u8; 16]);
        expect_invalid(&huge, "truncated");

        // A header length far beyond the file.
        let mut lying_length = b"\x93NUMPY\x02\x00".to_vec();
        lying_length.extend_from_slice(&u32::MAX.to_le_bytes());
        lying_length.extend_from_slice(b"{}");
        expect_invalid(&lying_length, "truncated");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_npy(&bytes, "random.npy");
            let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = read_npy(&with_magic, "random.npy");
        }

        #[test]
        fn truncations_and_corruptions_of_a_valid_file_never_panic(
            cut in 0usize..200,
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
        ) {
            let valid = write_npy(&Tensor::from_f32(vec![2, 3, 2], (0..12).map(|i| i as f32).collect()).unwrap());
            let cut = cut.min(valid.len());
            let truncated = &valid[..cut];
            let result = read_npy(truncated, "cut.npy");
            if cut < valid.len() {
                prop_assert!(result.is_err());
            }
            let mut corrupted = valid.clone();
            for (position, value) in flips {
                let position = position % corrupted.len();
                corrupted[position] = value;
            }
            let _ = read_npy(&corrupted, "flipped.npy");
        }

        #[test]
        fn random_tensors_round_trip(
            shape in proptest::collection::vec(0usize..4, 0..4),
            seed in any::<u32>(),
            fortran in any::<bool>(),
        ) {
            let count: usize = shape.iter().product();
            let values: Vec<i64> = (0..count as i64).map(|i| i * 31 + i64::from(seed)).collect();
            let tensor = Tensor::from_i64(shape.clone(), values.clone()).unwrap();
            prop_assert_eq!(read_npy(&write_npy(&tensor), "t.npy").unwrap(), tensor);

            // The same array written in Fortran order by hand reads back as the same tensor.
            if fortran {
                let mut bytes = numpy_header_v1(&format!(
                    "{{'descr': '<i8', 'fortran_order': True, 'shape': {}, }}",
                    python_tuple(&shape)
                ));
                let mut row_major_strides = vec![1usize; shape.len()];
                for axis in (0..shape.len().saturating_sub(1)).rev() {
                    row_major_strides[axis] = row_major_strides[axis + 1] * shape[axis + 1];
                }
                // Enumerate multi-indices with the first axis fastest.
                let mut index = vec![0usize; shape.len()];
                for _ in 0..count {
                    let offset: usize = index.iter().zip(&row_major_strides).map(|(i, s)| i * s).sum();
                    bytes.extend_from_slice(&values[offset].to_le_bytes());
                    for axis in 0..shape.len() {
                        index[axis] += 1;
                        if index[axis] < shape[axis] { break; }
                        index[axis] = 0;
                    }
                }
                prop_assert_eq!(read_npy(&bytes, "f.npy").unwrap(), Tensor::from_i64(shape, values).unwrap());
            }
        }
    }
}
