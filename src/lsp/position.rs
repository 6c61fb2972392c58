//! Conversions between LSP positions (line and UTF-16 column) and byte offsets in UTF-8 text.
//!
//! The compiler counts in bytes; LSP clients count UTF-16 code units. Every position a client
//! sends is untrusted: a line past the end, a column past the end of its line, or a column in
//! the middle of a surrogate pair (an emoji) is clamped to the nearest character boundary at or
//! before it, so that every conversion yields a valid slice index and never panics.

use lsp_types::{Position, Range};

/// Where each line of a text starts, for converting positions in both directions.
#[derive(Clone, Debug)]
pub struct LineIndex {
    /// Byte offset of the first byte of each line; the first entry is 0.
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        for (index, byte) in text.bytes().enumerate() {
            // Only `\n` ends a line, as in the compiler's own line table; a `\r` before it is
            // part of the line's text and so is counted in columns, which keeps both sides in
            // agreement for files with CRLF endings.
            if byte == b'\n' {
                line_starts.push(index + 1);
            }
        }
        LineIndex { line_starts }
    }

    /// The byte range of a line without its `\n`, clamped to the text.
    fn line_bounds(&self, text: &str, line: usize) -> (usize, usize) {
        let start = self.line_starts[line].min(text.len());
        let end = match self.line_starts.get(line + 1) {
            Some(next) => next.saturating_sub(1).min(text.len()),
            None => text.len(),
        };
        (start, end.max(start))
    }

    /// The byte offset of a client position. A line past the end is the end of the text; a
    /// column past the end of its line is the end of that line; a column inside a character
    /// (the second half of a surrogate pair) is the start of that character.
    pub fn offset(&self, text: &str, position: Position) -> usize {
        let line = position.line as usize;
        if line >= self.line_starts.len() {
            return text.len();
        }
        let (start, end) = self.line_bounds(text, line);
        let Some(line_text) = text.get(start..end) else {
            return floor_char_boundary(text, start);
        };
        let wanted = position.character as usize;
        let mut units = 0usize;
        for (byte_index, character) in line_text.char_indices() {
            let width = character.len_utf16();
            if units + width > wanted {
                return start + byte_index;
            }
            units += width;
            if units == wanted {
                return start + byte_index + character.len_utf8();
            }
        }
        end
    }

    /// The client position of a byte offset. An offset past the end is the end of the text; an
    /// offset inside a character is moved back to the start of that character.
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = match self.line_starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next.saturating_sub(1),
        };
        let start = self.line_starts[line].min(offset);
        let column: usize = text
            .get(start..offset)
            .map(|slice| slice.encode_utf16().count())
            .unwrap_or(0);
        Position::new(line as u32, column as u32)
    }

    /// The client range of a byte range.
    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range::new(
            self.position(text, start),
            self.position(text, end.max(start)),
        )
    }
}

/// The largest character boundary at or before `offset`.
pub fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Applies one `didChange` content change to a text: a range replacement, or the whole text
/// when the change has no range. Positions are clamped as in [`LineIndex::offset`], and a
/// reversed range is read in order, so any change a client sends leaves valid UTF-8.
pub fn apply_change(text: &mut String, range: Option<Range>, new_text: &str) {
    let Some(range) = range else {
        *text = new_text.to_string();
        return;
    };
    let index = LineIndex::new(text);
    let first = index.offset(text, range.start);
    let second = index.offset(text, range.end);
    let (start, end) = if first <= second {
        (first, second)
    } else {
        (second, first)
    };
    text.replace_range(start..end, new_text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_positions_round_trip() {
        let text = "ab\ncd\n";
        let index = LineIndex::new(text);
        assert_eq!(index.offset(text, Position::new(1, 1)), 4);
        assert_eq!(index.position(text, 4), Position::new(1, 1));
        assert_eq!(index.position(text, 6), Position::new(2, 0));
    }

    #[test]
    fn multi_byte_characters_count_in_utf16_units() {
        // `é` is two bytes and one UTF-16 unit; `😀` is four bytes and two units.
        let text = "é😀x";
        let index = LineIndex::new(text);
        assert_eq!(index.offset(text, Position::new(0, 1)), 2);
        assert_eq!(index.offset(text, Position::new(0, 3)), 6);
        assert_eq!(index.position(text, 6), Position::new(0, 3));
        assert_eq!(index.position(text, 7), Position::new(0, 4));
    }

    #[test]
    fn a_column_inside_a_surrogate_pair_snaps_to_the_character_start() {
        let text = "a😀b";
        let index = LineIndex::new(text);
        assert_eq!(index.offset(text, Position::new(0, 2)), 1);
        // A byte offset inside the emoji moves back to its start.
        assert_eq!(index.position(text, 3), Position::new(0, 1));
    }

    #[test]
    fn positions_past_the_end_are_clamped() {
        let text = "ab\ncd";
        let index = LineIndex::new(text);
        assert_eq!(index.offset(text, Position::new(0, 99)), 2);
        assert_eq!(index.offset(text, Position::new(9, 0)), 5);
        assert_eq!(index.position(text, 99), Position::new(1, 2));
    }

    #[test]
    fn changes_apply_in_utf16_positions() {
        let mut text = String::from("x = é\ny");
        apply_change(
            &mut text,
            Some(Range::new(Position::new(0, 4), Position::new(0, 5))),
            "😀",
        );
        assert_eq!(text, "x = 😀\ny");
        // A reversed range splitting the emoji deletes whole characters only.
        apply_change(
            &mut text,
            Some(Range::new(Position::new(1, 0), Position::new(0, 5))),
            "",
        );
        assert_eq!(text, "x = y");
        apply_change(&mut text, None, "new");
        assert_eq!(text, "new");
    }
}
