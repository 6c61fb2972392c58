//! The examples of the documentation are tested.
//!
//! Every fenced block of `docs/language.md` and `docs/diagnostics.md` whose info string starts
//! with `model` is checked as a whole file named `docs.model` (stdlib imports only):
//!
//! - ```` ```model ```` must check without a diagnostic;
//! - ```` ```model-error <code> [<code>...] ```` must produce at least one diagnostic, and the
//!   codes it produces must be exactly the listed ones (each at least once, nothing else);
//! - ```` ```model-fragment ```` is not checked (for snippets that cannot stand alone, such as
//!   a `use` of a relative file).
//!
//! A failure names the document and the line of the block's opening fence. Besides, every code
//! of `modelc_compiler::diag::codes::ALL` must have a row in the table of `docs/diagnostics.md`
//! with its summary, and a `### <code>` section with either a `model-error` example of that
//! code or, for codes only the CLI produces, a `text` block showing the command.

use modelc_compiler::check::modules::NoFiles;
use modelc_compiler::check::{check_file, CheckOptions};
use modelc_compiler::diag::codes::ALL;
use modelc_compiler::diag::render::render_all;
use std::path::PathBuf;

const DOCUMENTS: &[&str] = &["docs/language.md", "docs/diagnostics.md"];

/// A fenced code block: its info string, its text and the line of its opening fence.
struct Block {
    info: String,
    text: String,
    line: usize,
}

fn read(document: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(document);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {document}: {error}"))
}

/// The fenced blocks of a Markdown text, in order. Fences are lines starting with three
/// backticks; an unclosed block is an error.
fn blocks(document: &str, markdown: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in markdown.lines().enumerate() {
        let line_number = index + 1;
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    text: String::new(),
                    line: line_number,
                });
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                found.extend(open.take());
            }
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    if let Some(block) = open {
        panic!("{document}:{}: a code block is never closed", block.line);
    }
    found
}

/// What a block's info string asks for.
enum Expectation {
    Clean,
    Codes(Vec<String>),
    Unchecked,
}

fn expectation(info: &str) -> Option<Result<Expectation, String>> {
    let mut words = info.split_whitespace();
    let tag = words.next()?;
    let rest: Vec<String> = words.map(str::to_string).collect();
    match tag {
        "model" if rest.is_empty() => Some(Ok(Expectation::Clean)),
        "model-fragment" if rest.is_empty() => Some(Ok(Expectation::Unchecked)),
        "model-error" if !rest.is_empty() => {
            let unknown: Vec<&String> = rest
                .iter()
                .filter(|code| !ALL.iter().any(|info| info.code == code.as_str()))
                .collect();
            if unknown.is_empty() {
                Some(Ok(Expectation::Codes(rest)))
            } else {
                Some(Err(format!("unknown diagnostic code(s) {unknown:?}")))
            }
        }
        tag if tag.starts_with("model") => Some(Err(format!(
            "unknown block tag `{info}`: use `model`, `model-error <code>` or `model-fragment`"
        ))),
        _ => None,
    }
}

/// Checks every `model` block of a document; returns one message per failing block.
fn check_document(document: &str) -> (usize, Vec<String>) {
    let markdown = read(document);
    let mut failures = Vec::new();
    let mut checked = 0;
    for block in blocks(document, &markdown) {
        let Some(expectation) = expectation(&block.info) else {
            continue;
        };
        let location = format!("{document}:{}", block.line);
        let expectation = match expectation {
            Ok(expectation) => expectation,
            Err(message) => {
                failures.push(format!("{location}: {message}"));
                continue;
            }
        };
        if matches!(expectation, Expectation::Unchecked) {
            continue;
        }
        checked += 1;
        let result = check_file("docs.model", &block.text, &NoFiles, CheckOptions::default());
        let produced: Vec<&str> = result.diagnostics.iter().map(|d| d.code).collect();
        let problem = match &expectation {
            Expectation::Clean if produced.is_empty() => None,
            Expectation::Clean => Some("expected no diagnostic".to_string()),
            Expectation::Codes(codes) => {
                let missing: Vec<&String> = codes
                    .iter()
                    .filter(|code| !produced.contains(&code.as_str()))
                    .collect();
                let extra: Vec<&&str> = produced
                    .iter()
                    .filter(|code| !codes.iter().any(|c| c == *code))
                    .collect();
                if missing.is_empty() && extra.is_empty() {
                    None
                } else {
                    Some(format!(
                        "expected the code(s) {codes:?}, found {produced:?}"
                    ))
                }
            }
            Expectation::Unchecked => None,
        };
        if let Some(problem) = problem {
            let rendered = render_all(&result.diagnostics, &result.program.sources, false);
            failures.push(format!(
                "{location}: {problem}\n--- block ---\n{}--- diagnostics ---\n{rendered}",
                block.text
            ));
        }
    }
    (checked, failures)
}

#[test]
fn documented_examples_check_as_documented() {
    let mut failures = Vec::new();
    for document in DOCUMENTS {
        let (checked, mut document_failures) = check_document(document);
        assert!(checked > 0, "{document} has no checked `model` block");
        failures.append(&mut document_failures);
    }
    assert!(
        failures.is_empty(),
        "{} documentation example(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The `### ` sections of a Markdown text: heading text → body up to the next heading of level
/// 3 or less.
fn sections(markdown: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence {
            if let Some(heading) = line.strip_prefix("### ") {
                found.push((heading.trim().trim_matches('`').to_string(), String::new()));
                continue;
            }
            if line.starts_with("# ") || line.starts_with("## ") {
                found.push((String::new(), String::new()));
                continue;
            }
        }
        if let Some((_, body)) = found.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    found.retain(|(heading, _)| !heading.is_empty());
    found
}

#[test]
fn every_diagnostic_code_is_documented() {
    let document = "docs/diagnostics.md";
    let markdown = read(document);
    let sections = sections(&markdown);
    let mut problems = Vec::new();
    for info in ALL {
        let code = info.code;
        let Some((_, body)) = sections.iter().find(|(heading, _)| heading == code) else {
            problems.push(format!("`{code}` has no `### {code}` section"));
            continue;
        };
        let has_example = blocks(document, body).iter().any(|block| {
            let mut words = block.info.split_whitespace();
            match words.next() {
                Some("model-error") => words.any(|word| word == code),
                Some("text") => true,
                _ => false,
            }
        });
        if !has_example {
            problems.push(format!(
                "the `{code}` section has neither a `model-error {code}` example nor a `text` block"
            ));
        }
        let table_row = format!(
            "| [`{code}`](#{code}) | {} |",
            info.summary.replace('|', "\\|")
        );
        if !markdown.lines().any(|line| line.trim() == table_row) {
            problems.push(format!(
                "`{code}` has no table row `{table_row}` (with the summary from codes.rs)"
            ));
        }
    }
    for (heading, _) in &sections {
        if !ALL.iter().any(|info| info.code == heading) {
            problems.push(format!("`### {heading}` is not a diagnostic code"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
