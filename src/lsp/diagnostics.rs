//! The compiler's diagnostics as LSP diagnostics: the same codes and messages as the CLI,
//! ranges in UTF-16 positions. Secondary labels, notes and help travel as related
//! information, so that the message itself stays the CLI's.

use super::analysis::Analysis;
use super::locations::location_of_span;
use lsp_types::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Range,
    Uri,
};
use modelc_compiler::source::Span;

/// The `source` of every diagnostic the server publishes.
pub const SOURCE: &str = "modelc";

/// The diagnostics to publish for the analysed document.
pub fn diagnostics(analysis: &Analysis, document_uri: &Uri) -> Vec<Diagnostic> {
    let Some(checked) = analysis.checked.as_ref() else {
        return vec![lsp_diagnostic(
            "internal-error",
            "internal compiler error while checking this file (this is a bug in modelc; please report it with the input)".into(),
            Range::default(),
            Vec::new(),
        )];
    };
    let program = &checked.result.program;
    let root = analysis.root_file();
    let mut published = Vec::new();
    for diagnostic in &checked.result.diagnostics {
        let mut related = Vec::new();
        let primary = diagnostic.labels.first();
        let primary_location =
            primary.and_then(|label| location_of_span(analysis, label.span, document_uri));
        let in_document = primary
            .and_then(|label| program.sources.file_of(label.span.start))
            .is_some_and(|file| Some(file) == root);
        let range = match (primary, in_document) {
            (Some(label), true) => document_range(analysis, label.span),
            // A problem inside an imported file is shown on the `use` that imports it.
            (Some(label), false) => import_range(analysis, label.span),
            (None, _) => Range::default(),
        };
        if let (Some(label), Some(location)) = (primary, &primary_location) {
            if !label.message.is_empty() || !in_document {
                related.push(DiagnosticRelatedInformation {
                    location: location.clone(),
                    message: if label.message.is_empty() {
                        "here".into()
                    } else {
                        label.message.clone()
                    },
                });
            }
        }
        for label in diagnostic.labels.iter().skip(1) {
            if let Some(location) = location_of_span(analysis, label.span, document_uri) {
                related.push(DiagnosticRelatedInformation {
                    location,
                    message: label.message.clone(),
                });
            }
        }
        let anchor = primary_location
            .clone()
            .unwrap_or_else(|| Location::new(document_uri.clone(), range));
        for note in &diagnostic.notes {
            related.push(DiagnosticRelatedInformation {
                location: anchor.clone(),
                message: format!("note: {note}"),
            });
        }
        if let Some(help) = &diagnostic.help {
            related.push(DiagnosticRelatedInformation {
                location: anchor.clone(),
                message: format!("help: {help}"),
            });
        }
        published.push(lsp_diagnostic(
            diagnostic.code,
            diagnostic.message.clone(),
            range,
            related,
        ));
    }
    published
}

fn lsp_diagnostic(
    code: &str,
    message: String,
    range: Range,
    related: Vec<DiagnosticRelatedInformation>,
) -> Diagnostic {
    Diagnostic {
        range,
        severity: Some(DiagnosticSeverity::ERROR),
        code: Some(NumberOrString::String(code.to_string())),
        code_description: None,
        source: Some(SOURCE.to_string()),
        message,
        related_information: if related.is_empty() {
            None
        } else {
            Some(related)
        },
        tags: None,
        data: None,
    }
}

fn document_range(analysis: &Analysis, span: Span) -> Range {
    match analysis.program().and_then(|p| p.sources.relative(span)) {
        Some((_, start, end)) => analysis.line_index.range(&analysis.text, start, end),
        None => Range::default(),
    }
}

/// The range of the `use` path that leads to the file of a span: the import of that file, or
/// for a file imported indirectly, the first import of a file of the project.
fn import_range(analysis: &Analysis, span: Span) -> Range {
    let (Some(program), Some(names)) = (analysis.program(), analysis.names()) else {
        return Range::default();
    };
    let module = program
        .sources
        .file_of(span.start)
        .and_then(|file| program.module_of_file(file));
    let direct = names
        .module_paths
        .iter()
        .find(|path| path.module.is_some() && path.module == module);
    let indirect = names
        .module_paths
        .iter()
        .find(|path| path.module.is_some_and(|m| !program.modules[m].is_stdlib));
    match direct.or(indirect) {
        Some(path) => document_range(analysis, path.span),
        None => Range::default(),
    }
}
