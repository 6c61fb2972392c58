//! A linear pre-scan of the raw text, before the grammar runs.
//!
//! It finds what a PEG parser reports badly or not at all: unterminated strings and block
//! comments, brackets nested so deep that a recursive parser would exhaust its stack, and
//! runaway chains of right-recursive constructs. It also splits the file into top-level
//! chunks (one per item) so that a syntax error in one item does not hide errors in the others.

use crate::diag::Diagnostic;

/// Deepest bracket nesting the parser accepts.
pub const MAX_NESTING: usize = 64;
/// Most right-recursive constructs (`if`, `scan`, lambdas, `**`) in one item.
pub const MAX_RECURSIVE_CONSTRUCTS: usize = 1000;

pub struct Prescan {
    /// File-relative byte ranges of the top-level chunks.
    pub chunks: Vec<(usize, usize)>,
    /// File-relative byte ranges with their diagnostics (spans are made by the caller).
    pub errors: Vec<(usize, usize, Diagnostic)>,
}

const ITEM_KEYWORDS: &[&str] = &["use", "layer", "model", "fn", "train", "compress"];

fn starts_item(text: &str, at: usize) -> bool {
    let rest = &text[at..];
    ITEM_KEYWORDS.iter().any(|keyword| {
        rest.starts_with(keyword)
            && rest[keyword.len()..]
                .chars()
                .next()
                .is_some_and(|c| c == ' ' || c == '\t' || c == '\n' || c == '\r')
    })
}

pub fn prescan(text: &str) -> Prescan {
    let bytes = text.as_bytes();
    let mut errors = Vec::new();
    let mut chunk_starts = vec![0usize];
    let mut depth = 0usize;
    let mut reported_depth = false;
    let mut recursive_constructs = 0usize;
    let mut reported_recursion = false;
    let mut index = 0;
    let mut at_line_start = true;
    while index < bytes.len() {
        let byte = bytes[index];
        if at_line_start && depth == 0 && index > 0 && starts_item(text, index) {
            chunk_starts.push(index);
            recursive_constructs = 0;
        }
        at_line_start = false;
        match byte {
            b'\n' => {
                at_line_start = true;
                index += 1;
            }
            b'#' if bytes.get(index + 1) == Some(&b'=') => match text[index + 2..].find("=#") {
                Some(end) => index = index + 2 + end + 2,
                None => {
                    errors.push((
                        index,
                        index + 2,
                        Diagnostic::error("unterminated-comment", "block comment is never closed")
                            .with_help("close the comment with `=#`"),
                    ));
                    index = bytes.len();
                }
            },
            b'#' => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b'"' => {
                let start = index;
                index += 1;
                let mut closed = false;
                while index < bytes.len() {
                    match bytes[index] {
                        b'\\' => index += 2,
                        b'"' => {
                            index += 1;
                            closed = true;
                            break;
                        }
                        b'\n' => break,
                        _ => index += 1,
                    }
                }
                if !closed {
                    let end = index.min(bytes.len());
                    errors.push((
                        start,
                        end.max(start + 1).min(bytes.len()),
                        Diagnostic::error("unterminated-string", "string literal is never closed")
                            .with_help("strings end with `\"` on the same line"),
                    ));
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING && !reported_depth {
                    reported_depth = true;
                    errors.push((
                        index,
                        index + 1,
                        Diagnostic::error(
                            "nesting-too-deep",
                            format!("brackets are nested more than {MAX_NESTING} deep"),
                        )
                        .with_help("split the expression with `let` bindings"),
                    ));
                }
                index += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                index += 1;
            }
            b'*' if bytes.get(index + 1) == Some(&b'*') => {
                recursive_constructs += 1;
                index += 2;
            }
            b'|' if bytes.get(index + 1) != Some(&b'>') => {
                recursive_constructs += 1;
                index += 1;
            }
            b'i' | b's'
                if is_word_start(bytes, index)
                    && (word_at(text, index, "if") || word_at(text, index, "scan")) =>
            {
                recursive_constructs += 1;
                index += 1;
            }
            _ => index += 1,
        }
        if recursive_constructs > MAX_RECURSIVE_CONSTRUCTS && !reported_recursion {
            reported_recursion = true;
            errors.push((
                index.saturating_sub(1),
                index,
                Diagnostic::error(
                    "expression-too-long",
                    format!("more than {MAX_RECURSIVE_CONSTRUCTS} nested `if`, `scan`, lambda or `**` constructs in one item"),
                )
                .with_help("split the item into smaller functions"),
            ));
        }
    }
    chunk_starts.push(bytes.len());
    let chunks = chunk_starts.windows(2).map(|w| (w[0], w[1])).collect();
    Prescan { chunks, errors }
}

fn is_word_start(bytes: &[u8], index: usize) -> bool {
    index == 0 || !(bytes[index - 1].is_ascii_alphanumeric() || bytes[index - 1] == b'_')
}

fn word_at(text: &str, index: usize, word: &str) -> bool {
    text[index..].starts_with(word)
        && !text[index + word.len()..]
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}
