//! Renders diagnostics with miette: source snippets with labelled spans, across files.

use super::Diagnostic;
use crate::source::SourceMap;
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteSpanContents, SourceCode,
    SourceSpan, SpanContents,
};
use std::fmt;

/// The whole source map as one miette source: spans are global offsets, so labels in several
/// files of one diagnostic each find their file.
struct MapSource<'a>(&'a SourceMap);

impl SourceCode for MapSource<'_> {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, miette::MietteError> {
        let offset = span.offset() as u32;
        let file_id = self
            .0
            .file_of(offset)
            .ok_or(miette::MietteError::OutOfBounds)?;
        let file = self.0.file(file_id);
        let relative = SourceSpan::new(((offset - file.base) as usize).into(), span.len());
        let contents =
            file.text
                .as_str()
                .read_span(&relative, context_lines_before, context_lines_after)?;
        let shifted = SourceSpan::new(
            (contents.span().offset() + file.base as usize).into(),
            contents.span().len(),
        );
        Ok(Box::new(MietteSpanContents::new_named(
            file.name.clone(),
            contents.data(),
            shifted,
            contents.line(),
            contents.column(),
            contents.line_count(),
        )))
    }
}

struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: MapSource<'a>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.diagnostic.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.diagnostic.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        if self.diagnostic.labels.is_empty() {
            None
        } else {
            Some(&self.source)
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let sources = self.source.0;
        let labels = self
            .diagnostic
            .labels
            .iter()
            .enumerate()
            .filter_map(move |(index, label)| {
                // A label must lie in a file; dummy spans are dropped rather than mis-rendered.
                sources.file_of(label.span.start)?;
                let span = SourceSpan::new(
                    (label.span.start as usize).into(),
                    label.span.len() as usize,
                );
                Some(if index == 0 {
                    LabeledSpan::new_primary_with_span(Some(label.message.clone()), span)
                } else {
                    LabeledSpan::new_with_span(Some(label.message.clone()), span)
                })
            });
        Some(Box::new(labels))
    }
}

/// Renders one diagnostic. Without colour the output is stable, for snapshots and pipes.
pub fn render(diagnostic: &Diagnostic, sources: &SourceMap, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let report = Report {
        diagnostic,
        source: MapSource(sources),
    };
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = format!("error[{}]: {}\n", diagnostic.code, diagnostic.message);
    }
    for note in &diagnostic.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}

/// Renders diagnostics one after another, with a blank line between them.
pub fn render_all(diagnostics: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    diagnostics
        .iter()
        .map(|d| render(d, sources, color))
        .collect::<Vec<_>>()
        .join("\n")
}
