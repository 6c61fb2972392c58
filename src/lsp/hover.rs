//! Hover: the inferred type of the expression under the cursor, what a name refers to (a
//! layer's or function's signature and doc comment, a builtin's signature, a local's
//! declaration), and the parameter a named argument fills.

use super::analysis::Analysis;
use super::names::{BindingKind, Target};
use super::signatures::{
    builtin_signature, call_parameters, item_doc, item_kind, item_signature, param_text, span_text,
};
use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind, Position};
use modelc_compiler::check::modules::Program;
use modelc_compiler::source::Span;

/// The hover for a position, or `None` where there is nothing to say.
pub fn hover(analysis: &Analysis, position: Position) -> Option<Hover> {
    let checked = analysis.checked.as_ref()?;
    let program = &checked.result.program;
    let names = &checked.names;
    let offset = analysis.global_offset(analysis.offset_of(position))?;
    let mut sections: Vec<String> = Vec::new();
    let mut range: Option<Span> = None;

    if let Some((span, types)) = expression_types_at(analysis, offset) {
        sections.push(describe_types(&types));
        range = Some(span);
    }
    if let Some(argument) = names.named_argument_at(offset) {
        if let Some(text) = describe_named_argument(analysis, argument) {
            sections.push(text);
            range = Some(argument.span);
        }
    } else if let Some(path) = names.module_path_at(offset) {
        if let Some(module) = path.module {
            let loaded = &program.modules[module];
            let file = &program.sources.file(loaded.file).name;
            sections.push(format!("module `{}` ({file})", loaded.key));
            range = Some(path.span);
        }
    } else if let Some(name_use) = names.use_at(offset) {
        if let Some(text) = describe_target(analysis, program, name_use.target) {
            sections.push(text);
            // The name's own span when it is smaller than the expression's.
            if range.is_none_or(|r| name_use.span.len() <= r.len()) {
                range = Some(name_use.span);
            }
        }
    }
    if sections.is_empty() {
        return None;
    }
    let range = range.and_then(|span| {
        let (_, start, end) = program.sources.relative(span)?;
        Some(analysis.line_index.range(&analysis.text, start, end))
    });
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: sections.join("\n\n---\n\n"),
        }),
        range,
    })
}

/// The types recorded for the smallest checked expression of the document containing the
/// offset. One expression can have several: a function body or a layer is checked once per
/// use, with the caller's shapes.
pub fn expression_types_at(analysis: &Analysis, offset: u32) -> Option<(Span, Vec<String>)> {
    let checked = analysis.checked.as_ref()?;
    let root = analysis.root_file()?;
    let sources = &checked.result.program.sources;
    let mut best: Option<Span> = None;
    for (span, description) in &checked.result.expression_types {
        let contains = span.start <= offset && offset < span.end;
        if !contains || !is_informative(description) {
            continue;
        }
        if sources.file_of(span.start) != Some(root) {
            continue;
        }
        if best.is_none_or(|b| span.len() < b.len()) {
            best = Some(*span);
        }
    }
    let best = best?;
    let mut types: Vec<String> = Vec::new();
    for (span, description) in &checked.result.expression_types {
        if *span == best && is_informative(description) && !types.contains(description) {
            types.push(description.clone());
        }
    }
    Some((best, types))
}

/// Whether a recorded type says more than the name's own hover does. A layer, function or
/// builtin is described by its signature instead; skipping them makes a pipeline stage
/// (`x |> conv1 |> relu`) show the type of the pipeline up to it, the stage's output.
fn is_informative(description: &str) -> bool {
    !(description.starts_with("a layer")
        || description.starts_with("the builtin")
        || description == "a lambda"
        || description == "an initializer")
}

fn describe_types(types: &[String]) -> String {
    let mut text = String::from("```model\n");
    text.push_str(&types.join("\n"));
    text.push_str("\n```");
    if types.len() > 1 {
        text.push_str("\n\nchecked once per use, with each caller's shapes");
    }
    text
}

fn code_block(code: &str) -> String {
    format!("```model\n{code}\n```")
}

fn describe_item(program: &Program, item: modelc_compiler::check::modules::ItemRef) -> String {
    let mut text = code_block(&item_signature(program, item));
    if let Some(doc) = item_doc(program, item) {
        text.push_str("\n\n");
        text.push_str(doc.trim());
    }
    let module = &program.modules[item.module];
    if item.module != program.root {
        text.push_str(&format!(
            "\n\n*{} from `{}`*",
            item_kind(program, item),
            module.key
        ));
    }
    text
}

fn describe_target(analysis: &Analysis, program: &Program, target: Target) -> Option<String> {
    match target {
        Target::Item(item) => Some(describe_item(program, item)),
        Target::Builtin(name) => {
            let signature = builtin_signature(name)?;
            Some(format!(
                "{}\n\n*builtin operation*",
                code_block(&signature.to_text())
            ))
        }
        Target::Binding(index) => {
            let binding = analysis.names()?.bindings.get(index)?;
            let declaration = match binding.kind {
                // A dim's declaration is the type that binds it; show the name alone.
                BindingKind::DimSymbol => binding.name.clone(),
                _ => shorten(&span_text(program, binding.declaration)),
            };
            let mut text = format!(
                "{}\n\n*{}*",
                code_block(&declaration),
                binding.kind.describe()
            );
            if let Some(layer) = binding.layer {
                text.push_str("\n\n");
                text.push_str(&describe_item(program, layer));
            }
            Some(text)
        }
        Target::Constant | Target::Unknown => None,
    }
}

fn describe_named_argument(
    analysis: &Analysis,
    argument: &super::names::NamedArgument,
) -> Option<String> {
    let program = analysis.program()?;
    let item = match argument.callee {
        Target::Item(item) => item,
        Target::Binding(index) => analysis.names()?.bindings.get(index)?.layer?,
        Target::Builtin(name) => {
            let signature = builtin_signature(name)?;
            return Some(format!(
                "argument `{}` of\n\n{}",
                argument.name,
                code_block(&signature.to_text())
            ));
        }
        Target::Constant | Target::Unknown => return None,
    };
    let applies = argument.applies_member;
    let param = call_parameters(program, item, applies)
        .iter()
        .find(|p| p.name.name == argument.name)?;
    Some(format!(
        "{}\n\n*parameter of `{}`*",
        code_block(&param_text(program, param)),
        program
            .item(item)
            .defined_name()
            .map(|n| n.name.as_str())
            .unwrap_or("?")
    ))
}

/// Long declarations (a `let` of a long expression) are cut short.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 160;
    if text.chars().count() <= LIMIT {
        return text.to_string();
    }
    let cut: String = text.chars().take(LIMIT).collect();
    format!("{cut} …")
}
