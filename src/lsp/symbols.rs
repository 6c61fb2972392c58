//! Document symbols: the outline of a file. Layers and models with their hyper-parameters,
//! params, members and forward; functions; `train` and `compress` blocks.

use super::analysis::Analysis;
use super::signatures::{collapse_whitespace, param_text, span_text};
use lsp_types::{DocumentSymbol, Range, SymbolKind};
use modelc_compiler::source::Span;
use modelc_compiler::syntax::ast::{Item, LayerKind, Member};

/// The outline of the analysed document. Items with syntax errors are missing from it, as they
/// are from the syntax tree.
pub fn document_symbols(analysis: &Analysis) -> Vec<DocumentSymbol> {
    let Some(program) = analysis.program() else {
        return Vec::new();
    };
    let root = &program.modules[program.root];
    let range = |span: Span| -> Range {
        match program.sources.relative(span) {
            Some((_, start, end)) => analysis.line_index.range(&analysis.text, start, end),
            None => Range::default(),
        }
    };
    let mut symbols = Vec::new();
    for item in &root.ast.items {
        match item {
            Item::Use(_) => {}
            Item::Layer(layer) => {
                let mut children = Vec::new();
                for hparam in &layer.hparams {
                    children.push(symbol(
                        &hparam.name.name,
                        Some(param_text(program, hparam)),
                        SymbolKind::TYPE_PARAMETER,
                        range(hparam.span),
                        range(hparam.name.span),
                        Vec::new(),
                    ));
                }
                for member in &layer.members {
                    match member {
                        Member::Param(param) => children.push(symbol(
                            &param.name.name,
                            Some(span_text(program, param.ty.span)),
                            SymbolKind::FIELD,
                            range(param.span),
                            range(param.name.span),
                            Vec::new(),
                        )),
                        Member::SubLayer(sub) => children.push(symbol(
                            &sub.name.name,
                            Some(span_text(program, sub.value.span)),
                            SymbolKind::PROPERTY,
                            range(sub.span),
                            range(sub.name.span),
                            Vec::new(),
                        )),
                        Member::Forward(forward) => {
                            let parameters: Vec<DocumentSymbol> = forward
                                .params
                                .iter()
                                .map(|param| {
                                    symbol(
                                        &param.name.name,
                                        Some(param_text(program, param)),
                                        SymbolKind::VARIABLE,
                                        range(param.span),
                                        range(param.name.span),
                                        Vec::new(),
                                    )
                                })
                                .collect();
                            let header = Span::new(forward.span.start, forward.body.span.start);
                            let start = range(Span::new(forward.span.start, forward.span.start));
                            children.push(symbol(
                                "forward",
                                Some(collapse_whitespace(&span_text(program, header))),
                                SymbolKind::METHOD,
                                range(forward.span),
                                Range::new(
                                    start.start,
                                    lsp_types::Position::new(
                                        start.start.line,
                                        start.start.character + "forward".len() as u32,
                                    ),
                                ),
                                parameters,
                            ));
                        }
                    }
                }
                let (kind, detail) = match layer.kind {
                    LayerKind::Model => (SymbolKind::MODULE, "model"),
                    LayerKind::Layer => (SymbolKind::CLASS, "layer"),
                };
                symbols.push(symbol(
                    &layer.name.name,
                    Some(detail.to_string()),
                    kind,
                    range(layer.span),
                    range(layer.name.span),
                    children,
                ));
            }
            Item::Fn(function) => {
                let header = Span::new(function.span.start, function.body.span.start);
                symbols.push(symbol(
                    &function.name.name,
                    Some(span_text(program, header)),
                    SymbolKind::FUNCTION,
                    range(function.span),
                    range(function.name.span),
                    Vec::new(),
                ));
            }
            Item::Train(settings) | Item::Compress(settings) => {
                let word = if matches!(item, Item::Train(_)) {
                    "train"
                } else {
                    "compress"
                };
                symbols.push(symbol(
                    &format!("{word} {}", settings.target.name),
                    None,
                    SymbolKind::NAMESPACE,
                    range(settings.span),
                    range(settings.target.span),
                    Vec::new(),
                ));
            }
        }
    }
    symbols
}

fn symbol(
    name: &str,
    detail: Option<String>,
    kind: SymbolKind,
    range: Range,
    selection_range: Range,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    // A client rejects a selection range outside the symbol's range.
    let selection_range = if contains(range, selection_range) {
        selection_range
    } else {
        range
    };
    #[allow(deprecated)]
    DocumentSymbol {
        // An empty name is invalid in LSP; a name never is empty, but the client must not fail.
        name: if name.is_empty() {
            "?".into()
        } else {
            name.into()
        },
        detail: detail.filter(|d| !d.is_empty()),
        kind,
        tags: None,
        deprecated: None,
        range,
        selection_range,
        children: if children.is_empty() {
            None
        } else {
            Some(children)
        },
    }
}

fn contains(outer: Range, inner: Range) -> bool {
    let before = |a: lsp_types::Position, b: lsp_types::Position| {
        (a.line, a.character) <= (b.line, b.character)
    };
    before(outer.start, inner.start) && before(inner.end, outer.end)
}
