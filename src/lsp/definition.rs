//! Go to definition: locals (`let`, parameters, hyper-parameters, members, dims), items of
//! the file, imported items (into other files and the stdlib), the parameter a named argument
//! fills, and the file a `use` path names.

use super::analysis::Analysis;
use super::locations::location_of_span;
use super::names::Target;
use super::signatures::call_parameters;
use lsp_types::{Location, Position, Uri};
use modelc_compiler::source::Span;

/// Where the name under a position is defined. Builtins and constants have no source.
pub fn definition(analysis: &Analysis, position: Position, document_uri: &Uri) -> Option<Location> {
    let span = definition_span(analysis, position)?;
    location_of_span(analysis, span, document_uri)
}

/// The compiler span of the definition of the name under a position.
pub fn definition_span(analysis: &Analysis, position: Position) -> Option<Span> {
    let checked = analysis.checked.as_ref()?;
    let program = &checked.result.program;
    let names = &checked.names;
    let offset = analysis.global_offset(analysis.offset_of(position))?;
    if let Some(argument) = names.named_argument_at(offset) {
        let item = match argument.callee {
            Target::Item(item) => item,
            Target::Binding(index) => names.bindings.get(index)?.layer?,
            _ => return None,
        };
        let param = call_parameters(program, item, argument.applies_member)
            .iter()
            .find(|p| p.name.name == argument.name)?;
        return Some(param.name.span);
    }
    if let Some(path) = names.module_path_at(offset) {
        let file = program.sources.file(program.modules[path.module?].file);
        return Some(Span::new(file.base, file.base));
    }
    let name_use = names.use_at(offset)?;
    match name_use.target {
        Target::Binding(index) => Some(names.bindings.get(index)?.span),
        Target::Item(item) => Some(program.item(item).defined_name()?.span),
        Target::Builtin(_) | Target::Constant | Target::Unknown => None,
    }
}
