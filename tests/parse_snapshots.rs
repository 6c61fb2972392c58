//! Parser snapshots: every file under `tests/parse/ok` parses without diagnostics and its AST
//! dump is snapshotted; every file under `tests/parse/err` produces at least one diagnostic, and
//! its rendered diagnostics (followed by the AST of what still parsed) are snapshotted.
//!
//! Files are named in the source map by their path relative to the repository root, so the
//! snapshots never contain an absolute path.

use modelc_compiler::diag::render::render_all;
use modelc_compiler::diag::Diagnostic;
use modelc_compiler::source::SourceMap;
use modelc_compiler::syntax::ast::{Item, Module};
use modelc_compiler::syntax::parse_file;
use modelc_compiler::syntax::print::print_module;
use std::path::Path;

/// The path of a fixture relative to the repository root, with `/` separators.
fn relative_name(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

struct Parsed {
    sources: SourceMap,
    module: Module,
    diagnostics: Vec<Diagnostic>,
}

fn parse_text(name: &str, text: &str) -> Parsed {
    let mut sources = SourceMap::new();
    let id = sources
        .add(name, text)
        .expect("the fixture fits in the source map");
    let (module, diagnostics) = parse_file(&sources, id);
    Parsed {
        sources,
        module,
        diagnostics,
    }
}

fn parse_path(path: &Path) -> (String, Parsed) {
    let name = relative_name(path);
    let text = std::fs::read_to_string(path).expect("fixtures are UTF-8 text");
    let parsed = parse_text(&name, &text);
    (name, parsed)
}

fn rendered(parsed: &Parsed) -> String {
    render_all(&parsed.diagnostics, &parsed.sources, false)
}

/// The names of the items that parsed, in order (`use` items as their module path).
fn item_names(module: &Module) -> Vec<String> {
    module
        .items
        .iter()
        .map(|item| match item {
            Item::Use(decl) => {
                let path: Vec<&str> = decl.module.iter().map(|i| i.name.as_str()).collect();
                format!("use {}", path.join("."))
            }
            Item::Layer(layer) => layer.name.name.clone(),
            Item::Fn(function) => function.name.name.clone(),
            Item::Train(decl) => format!("train {}", decl.target.name),
            Item::Compress(decl) => format!("compress {}", decl.target.name),
        })
        .collect()
}

#[test]
fn ok_files_parse_without_diagnostics() {
    let mut failures = Vec::new();
    insta::glob!("parse/ok/*.model", |path| {
        let (name, parsed) = parse_path(path);
        if !parsed.diagnostics.is_empty() {
            failures.push(format!(
                "{name} should parse cleanly, but got:\n{}",
                rendered(&parsed)
            ));
        }
        insta::assert_snapshot!(print_module(&parsed.module));
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn err_files_report_diagnostics() {
    let mut failures = Vec::new();
    insta::glob!("parse/err/*.model", |path| {
        let (name, parsed) = parse_path(path);
        if parsed.diagnostics.is_empty() {
            failures.push(format!("{name} should not parse cleanly"));
        }
        for diagnostic in &parsed.diagnostics {
            if diagnostic.primary_span().is_none() {
                failures.push(format!(
                    "{name}: a diagnostic without a span: {diagnostic:?}"
                ));
            }
        }
        let snapshot = format!(
            "{}\n--- what still parsed ---\n{}",
            rendered(&parsed),
            print_module(&parsed.module)
        );
        insta::assert_snapshot!(snapshot);
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn there_are_enough_fixtures() {
    let count = |folder: &str| {
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(folder))
            .expect("fixture folder")
            .filter(|entry| {
                entry
                    .as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "model"))
            })
            .count()
    };
    assert!(count("tests/parse/ok") >= 15);
    assert!(count("tests/parse/err") >= 10);
}

#[test]
fn a_broken_item_does_not_hide_the_good_items_after_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/parse/err/008_error_then_good_item.model");
    let (_, parsed) = parse_path(&path);
    assert_eq!(parsed.diagnostics.len(), 1, "{}", rendered(&parsed));
    assert_eq!(item_names(&parsed.module), ["good", "AlsoGood"]);
    let Item::Fn(good) = &parsed.module.items[0] else {
        panic!("`good` is a function")
    };
    assert_eq!(
        good.doc.as_deref(),
        Some("The good item after the broken one still parses, with its doc.")
    );

    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/parse/err/014_several_broken_items.model");
    let (_, parsed) = parse_path(&path);
    assert_eq!(parsed.diagnostics.len(), 3, "{}", rendered(&parsed));
    assert_eq!(item_names(&parsed.module), ["two", "Four"]);
}

#[test]
fn each_lexical_error_is_reported_once_and_other_items_survive() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parse/err/004_unterminated_string.model");
    let (_, parsed) = parse_path(&path);
    let codes: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["unterminated-string"]);
    assert_eq!(item_names(&parsed.module), ["after"]);

    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parse/err/006_nested_parens_100.model");
    let (_, parsed) = parse_path(&path);
    let codes: Vec<&str> = parsed.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["nesting-too-deep"]);
    assert_eq!(item_names(&parsed.module), ["shallow"]);
}

/// Precedence, checked structurally rather than through the snapshot alone.
#[test]
fn precedence_of_unary_minus_power_and_matmul() {
    let parsed = parse_text(
        "precedence.model",
        "fn f(a, b, c, d, x) {\n    let p = -x ** 2\n    let q = a + b * c @ d\n    p\n}\n",
    );
    assert!(parsed.diagnostics.is_empty(), "{}", rendered(&parsed));
    let dump = print_module(&parsed.module);
    assert!(dump.contains("(let p (neg (** x 2)))"), "{dump}");
    assert!(dump.contains("(let q (+ a (@ (* b c) d)))"), "{dump}");
}

/// The parser never panics on truncated input: every prefix of every ok fixture parses to a
/// module and some diagnostics.
#[test]
fn every_prefix_of_the_ok_fixtures_parses_without_panicking() {
    insta::glob!("parse/ok/*.model", |path| {
        let text = std::fs::read_to_string(path).expect("fixtures are UTF-8 text");
        for (end, _) in text.char_indices().step_by(7) {
            let _ = parse_text("prefix.model", &text[..end]);
        }
    });
}
