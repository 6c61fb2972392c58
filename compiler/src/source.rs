//! Source files and spans.
//!
//! Every file the compiler reads gets a contiguous range of a global byte-offset space, the way
//! rustc's `SourceMap` does it. A [`Span`] is then two `u32`s, and the file it belongs to is
//! found by a binary search. This keeps spans small enough to copy onto every IR node.

use std::fmt;

/// A byte range in the global offset space of a [`SourceMap`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub const DUMMY: Span = Span { start: 0, end: 0 };

    pub fn new(start: u32, end: u32) -> Span {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    pub fn len(self) -> u32 {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// One source file: its display name, its text and where it starts in the global space.
#[derive(Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    pub base: u32,
    /// Byte offsets (relative to the file) of each line start.
    line_starts: Vec<u32>,
}

impl SourceFile {
    /// 1-based line and column (in characters) of a file-relative byte offset.
    pub fn line_col(&self, offset: u32) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next - 1,
        };
        let line_start = self.line_starts[line] as usize;
        let end = (offset as usize).min(self.text.len());
        let column = self
            .text
            .get(line_start..end)
            .map(|s| s.chars().count())
            .unwrap_or(end - line_start);
        (line + 1, column + 1)
    }
}

/// All files of one compilation. Offsets 0 is never a file byte, so `Span::DUMMY` is distinct.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

/// Files larger than this are refused before parsing: spans are `u32`.
pub const MAX_TOTAL_SOURCE_BYTES: usize = 1 << 30;

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file. Returns `None` when the global offset space would overflow.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> Option<FileId> {
        let text = text.into();
        let base = match self.files.last() {
            Some(last) => last.base as usize + last.text.len() + 1,
            None => 1,
        };
        if base + text.len() + 1 > MAX_TOTAL_SOURCE_BYTES {
            return None;
        }
        let mut line_starts = vec![0u32];
        for (index, byte) in text.bytes().enumerate() {
            if byte == b'\n' {
                line_starts.push(index as u32 + 1);
            }
        }
        let id = FileId(self.files.len() as u32);
        self.files.push(SourceFile {
            name: name.into(),
            text,
            base: base as u32,
            line_starts,
        });
        Some(id)
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(index, file)| (FileId(index as u32), file))
    }

    pub fn find_by_name(&self, name: &str) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.name == name)
            .map(|i| FileId(i as u32))
    }

    /// The file that contains a global offset.
    pub fn file_of(&self, offset: u32) -> Option<FileId> {
        if self.files.is_empty() {
            return None;
        }
        let index = match self.files.binary_search_by_key(&offset, |f| f.base) {
            Ok(index) => index,
            Err(0) => return None,
            Err(next) => next - 1,
        };
        let file = &self.files[index];
        if offset as usize <= file.base as usize + file.text.len() {
            Some(FileId(index as u32))
        } else {
            None
        }
    }

    /// A span for a file-relative byte range.
    pub fn span(&self, id: FileId, start: usize, end: usize) -> Span {
        let base = self.file(id).base;
        Span::new(base + start as u32, base + end as u32)
    }

    /// The text a span covers, if it lies within one file.
    pub fn snippet(&self, span: Span) -> Option<&str> {
        let file = self.file(self.file_of(span.start)?);
        let start = (span.start - file.base) as usize;
        let end = (span.end - file.base) as usize;
        file.text.get(start..end)
    }

    /// `name:line:col` for the start of a span, for IR dumps and runtime errors.
    pub fn location(&self, span: Span) -> String {
        match self.file_of(span.start) {
            Some(id) => {
                let file = self.file(id);
                let (line, col) = file.line_col(span.start - file.base);
                format!("{}:{}:{}", file.name, line, col)
            }
            None => "<unknown>".to_string(),
        }
    }

    /// File-relative byte range of a span, with its file.
    pub fn relative(&self, span: Span) -> Option<(FileId, usize, usize)> {
        let id = self.file_of(span.start)?;
        let base = self.file(id).base;
        Some((
            id,
            (span.start - base) as usize,
            (span.end.max(span.start) - base) as usize,
        ))
    }
}
