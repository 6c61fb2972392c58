//! Tests of the analysis functions on texts, without a client.

use super::analysis::Analysis;
use super::completion::{completion, signature_help};
use super::definition::definition;
use super::diagnostics::diagnostics;
use super::hover::hover;
use super::symbols::document_symbols;
use lsp_types::{HoverContents, Position, Range, Uri};
use modelc_compiler::check::modules::NoFiles;
use std::str::FromStr;

const MLP: &str = "\
use std.nn.{Linear, Conv2d}

## Two linear layers.
layer Block(dim: int = 8) {
    fc = Linear(dim, dim)
    forward(x: f32[B, dim]) -> f32[B, dim] {
        let y = x |> fc |> relu
        y + x
    }
}

model Mlp(hidden: int = 16) {
    fc1 = Linear(784, hidden)
    block = Block(hidden)
    forward(x: f32[B, 784]) -> f32[B, hidden] {
        let h = x |> fc1
        block(h)
    }
}
";

fn uri() -> Uri {
    Uri::from_str("file:///tmp/modelc-lsp-test/mlp.model").expect("a valid URI")
}

fn analyse(text: &str) -> Analysis {
    Analysis::check("/tmp/modelc-lsp-test/mlp.model", text, &NoFiles, true)
}

/// The position of the `occurrence`th (0-based) match of `needle`, plus `shift` characters.
fn position_of(text: &str, needle: &str, occurrence: usize, shift: u32) -> Position {
    let offset = text
        .match_indices(needle)
        .nth(occurrence)
        .map(|(offset, _)| offset)
        .unwrap_or_else(|| panic!("`{needle}` occurs fewer than {} times", occurrence + 1));
    let line = text[..offset].matches('\n').count() as u32;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].encode_utf16().count() as u32;
    Position::new(line, column + shift)
}

fn hover_text(analysis: &Analysis, position: Position) -> String {
    match hover(analysis, position).map(|h| h.contents) {
        Some(HoverContents::Markup(markup)) => markup.value,
        other => panic!("expected a markdown hover, got {other:?}"),
    }
}

#[test]
fn a_clean_file_has_no_diagnostics() {
    let analysis = analyse(MLP);
    assert_eq!(diagnostics(&analysis, &uri()), Vec::new());
}

#[test]
fn an_unknown_name_is_reported_at_its_utf16_range() {
    let text = "## é😀 in a comment\nfn f(x) {\n    x + yy\n}\n";
    let analysis = analyse(text);
    let published = diagnostics(&analysis, &uri());
    assert_eq!(published.len(), 1, "{published:?}");
    let diagnostic = &published[0];
    assert_eq!(
        diagnostic.code,
        Some(lsp_types::NumberOrString::String("unknown-name".into()))
    );
    assert_eq!(diagnostic.message, "`yy` is not defined");
    assert_eq!(
        diagnostic.range,
        Range::new(Position::new(2, 8), Position::new(2, 10))
    );
}

#[test]
fn a_broken_item_leaves_the_rest_checked() {
    let text = MLP.replace("        block(h)\n", "        block(h\n");
    let analysis = analyse(&text);
    let published = diagnostics(&analysis, &uri());
    assert!(published
        .iter()
        .any(|d| d.code == Some(lsp_types::NumberOrString::String("syntax-error".into()))));
    // The layer above still checks, so its expressions still have types.
    let hover = hover_text(&analysis, position_of(&text, "y + x", 0, 0));
    assert!(hover.contains("f32[B, 8]"), "{hover}");
}

#[test]
fn hover_shows_the_smallest_expression_type() {
    let analysis = analyse(MLP);
    // `h` in `block(h)`: the fc1 output.
    let text = hover_text(&analysis, position_of(MLP, "block(h)", 0, 6));
    assert!(text.contains("f32[B, 16]"), "{text}");
    assert!(text.contains("let binding"), "{text}");
}

#[test]
fn hover_on_a_layer_name_shows_its_signature_and_doc() {
    let analysis = analyse(MLP);
    let text = hover_text(&analysis, position_of(MLP, "Linear(784", 0, 2));
    assert!(
        text.contains("layer Linear(inputs: int, outputs: int, bias: bool = true)"),
        "{text}"
    );
    assert!(text.contains("A fully connected layer"), "{text}");
    let text = hover_text(&analysis, position_of(MLP, "Block(hidden)", 0, 1));
    assert!(text.contains("Two linear layers."), "{text}");
}

#[test]
fn hover_on_a_builtin_shows_its_signature() {
    let text = "fn f(x) {\n    sum(x, axis = 0)\n}\n";
    let analysis = analyse(text);
    let hover = hover_text(&analysis, position_of(text, "sum", 0, 1));
    assert!(
        hover.contains("sum(x, axis = none, keepdims = false)"),
        "{hover}"
    );
}

#[test]
fn definition_of_a_let_binding_and_a_parameter() {
    let analysis = analyse(MLP);
    let location =
        definition(&analysis, position_of(MLP, "block(h)", 0, 6), &uri()).expect("a definition");
    assert_eq!(location.uri, uri());
    assert_eq!(location.range.start, position_of(MLP, "h = x", 0, 0));
    let location =
        definition(&analysis, position_of(MLP, "y + x", 0, 4), &uri()).expect("a definition");
    assert_eq!(
        location.range.start,
        position_of(MLP, "x: f32[B, dim]", 0, 0)
    );
    // A hyper-parameter used in a sub-layer's arguments.
    let location = definition(
        &analysis,
        position_of(MLP, "Linear(784, hidden)", 0, 12),
        &uri(),
    )
    .expect("a definition");
    assert_eq!(location.range.start, position_of(MLP, "hidden: int", 0, 0));
}

#[test]
fn definition_of_a_stdlib_layer_is_in_the_stdlib_file() {
    let analysis = analyse(MLP);
    let location =
        definition(&analysis, position_of(MLP, "Linear(784", 0, 0), &uri()).expect("a definition");
    let path = super::uri::path_of_uri(&location.uri).expect("a file URI");
    assert!(path.ends_with("stdlib/nn.model"), "{path:?}");
    let text = std::fs::read_to_string(&path).expect("the stdlib file exists");
    let line = text
        .lines()
        .nth(location.range.start.line as usize)
        .unwrap_or("");
    assert!(line.starts_with("layer Linear("), "{line}");
    // `relu` comes from the prelude.
    let location =
        definition(&analysis, position_of(MLP, "relu", 0, 0), &uri()).expect("a definition");
    assert!(location.uri.as_str().ends_with("stdlib/prelude.model"));
}

#[test]
fn definition_of_a_named_argument_is_the_parameter() {
    let text = "use std.nn.Conv2d\n\nmodel M {\n    c = Conv2d(1, 2, kernel = 3)\n    forward(x: f32[B, 1, 8, 8]) { c(x) }\n}\n";
    let analysis = analyse(text);
    let location =
        definition(&analysis, position_of(text, "kernel", 0, 1), &uri()).expect("a definition");
    let path = super::uri::path_of_uri(&location.uri).expect("a file URI");
    let source = std::fs::read_to_string(path).expect("the stdlib file exists");
    let line = source
        .lines()
        .nth(location.range.start.line as usize)
        .unwrap_or("");
    let start = location.range.start.character as usize;
    assert_eq!(line.get(start..start + 6), Some("kernel"), "{line}");
}

#[test]
fn completion_inside_a_call_offers_its_keyword_arguments() {
    // The model is being written: its item does not parse.
    let text = "use std.nn.Conv2d\n\nmodel M {\n    c = Conv2d(1, 2, kernel = 3, \n";
    let analysis = analyse(text);
    let position = position_of(text, "3, ", 0, 3);
    let items = completion(&analysis, position);
    let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
    for expected in ["stride", "padding", "dilation", "groups", "bias"] {
        assert!(
            labels.contains(&expected),
            "{expected} missing from {labels:?}"
        );
    }
    assert!(!labels.contains(&"kernel"), "given already: {labels:?}");
    // `inputs` and `outputs` are given by position.
    assert!(
        !labels.contains(&"inputs") && !labels.contains(&"outputs"),
        "{labels:?}"
    );
    let stride = items.iter().find(|i| i.label == "stride").expect("stride");
    assert_eq!(stride.insert_text.as_deref(), Some("stride = "));
    // Builtins and prelude functions are offered too.
    assert!(labels.contains(&"relu") && labels.contains(&"reshape"));
}

#[test]
fn completion_of_a_builtin_call_and_a_member_call() {
    let text = "use std.nn.Linear\n\nmodel M {\n    fc = Linear(4, 4)\n    forward(x: f32[B, 4]) {\n        let y = sum(x, \n";
    let analysis = analyse(text);
    let items = completion(&analysis, position_of(text, "sum(x, ", 0, 7));
    let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
    assert!(
        labels.contains(&"axis") && labels.contains(&"keepdims"),
        "{labels:?}"
    );
    // Locals of the item being written come from its text.
    assert!(
        labels.contains(&"x") && labels.contains(&"fc"),
        "{labels:?}"
    );
    let help = signature_help(&analysis, position_of(text, "sum(x, ", 0, 7)).expect("help");
    assert_eq!(help.active_parameter, Some(1));
}

#[test]
fn completion_offers_the_locals_of_a_parsed_item() {
    let analysis = analyse(MLP);
    let items = completion(&analysis, position_of(MLP, "y + x", 0, 0));
    let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
    for expected in ["y", "x", "fc", "dim", "B", "Block", "Mlp", "Linear", "relu"] {
        assert!(
            labels.contains(&expected),
            "{expected} missing from {labels:?}"
        );
    }
}

#[test]
fn completion_on_a_use_line_lists_modules_and_items() {
    let text = "use std.\n";
    let analysis = analyse(text);
    let labels: Vec<String> = completion(&analysis, Position::new(0, 8))
        .into_iter()
        .map(|i| i.label)
        .collect();
    assert!(labels.contains(&"nn".to_string()), "{labels:?}");
    let text = "use std.nn.{\n";
    let analysis = analyse(text);
    let labels: Vec<String> = completion(&analysis, Position::new(0, 12))
        .into_iter()
        .map(|i| i.label)
        .collect();
    assert!(labels.contains(&"Conv2d".to_string()), "{labels:?}");
}

#[test]
fn no_completion_inside_a_comment_or_string() {
    let text = "fn f(x) {\n    x # sum(\n}\n";
    let analysis = analyse(text);
    assert!(completion(&analysis, position_of(text, "sum(", 0, 4)).is_empty());
}

#[test]
fn document_symbols_outline_the_file() {
    let analysis = analyse(MLP);
    let symbols = document_symbols(&analysis);
    let names: Vec<&str> = symbols.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Block", "Mlp"]);
    let children: Vec<&str> = symbols[1]
        .children
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(children, ["hidden", "fc1", "block", "forward"]);
}

#[test]
fn analysis_of_deeply_nested_input_does_not_crash() {
    let text = format!(
        "fn f(x) {{\n    {}x{}\n}}\n",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let analysis = analyse(&text);
    assert!(!diagnostics(&analysis, &uri()).is_empty());
    let _ = hover(&analysis, Position::new(1, 2500));
    let _ = completion(&analysis, Position::new(1, 2500));
}
