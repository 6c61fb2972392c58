//! The checker: module loading, name resolution, and elaboration of models into graphs.
//!
//! Entry points: [`check_file`] checks everything in a file and reports every diagnostic;
//! [`compile_model`] returns one model's graph.

pub mod builtins;
pub mod elaborate;
pub mod indexing;
pub mod modules;
pub mod operators;
pub mod resolve;
pub mod scan;
pub mod scope;
pub mod settings;
pub mod shapes;
pub mod suggest;
pub mod value;

use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::Graph;
use crate::syntax::ast::{Item, LayerKind};
use elaborate::Elaborator;
use modules::{ItemRef, Loader, Program};

/// One model of a file, lowered to a graph.
#[derive(Debug)]
pub struct CheckedModel {
    pub name: String,
    pub item: ItemRef,
    pub graph: Graph,
}

#[derive(Debug)]
pub struct CheckResult {
    pub program: Program,
    /// Models that checked without errors.
    pub models: Vec<CheckedModel>,
    /// Every diagnostic, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// Each checked expression's span with its inferred type, when requested.
    pub expression_types: Vec<(crate::source::Span, String)>,
}

impl CheckResult {
    pub fn has_errors(&self) -> bool {
        !self.diagnostics.is_empty()
    }
}

#[derive(Default, Clone, Copy)]
pub struct CheckOptions {
    pub record_types: bool,
}

/// Checks a file and everything it uses: parses, loads imports, elaborates every model, checks
/// layers that no model uses (when their hyper-parameters all have defaults) and the `train`
/// and `compress` blocks. Never stops at the first error.
pub fn check_file(
    name: &str,
    text: &str,
    loader: &(dyn Loader + Sync),
    options: CheckOptions,
) -> CheckResult {
    // Parsing and elaboration recurse as deep as the source nests (within the parser's
    // limits); a thread with a large stack makes that safe whatever stack the caller has.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("modelc-check".into())
            .stack_size(CHECK_STACK_BYTES)
            .spawn_scoped(scope, || check_file_here(name, text, loader, options))
            .ok()
            .and_then(|handle| handle.join().ok())
    })
    .unwrap_or_else(|| check_file_here(name, text, loader, options))
}

/// Stack for the checking thread: the address space is reserved, not committed.
pub const CHECK_STACK_BYTES: usize = 256 << 20;

/// [`check_file`] on the calling thread.
pub fn check_file_here(
    name: &str,
    text: &str,
    loader: &(dyn Loader + Sync),
    options: CheckOptions,
) -> CheckResult {
    let (program, load_diagnostics) = modules::load_program(name, text, loader);
    let mut diagnostics = Diagnostics::new();
    diagnostics.extend(load_diagnostics);
    resolve::resolve_module(&program, program.root, &mut diagnostics);
    let mut models = Vec::new();
    let mut expression_types = Vec::new();
    let root = program.root;
    let items = &program.modules[root].ast.items;
    let mut used_layers = std::collections::HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let Item::Layer(layer) = item else { continue };
        if layer.kind != LayerKind::Model {
            continue;
        }
        let item_ref = ItemRef {
            module: root,
            item: index,
        };
        let mut elaborator = Elaborator::new(&program);
        elaborator.record_types = options.record_types;
        let before = elaborator.diagnostics.len();
        let ok = elaborator.elaborate_model(item_ref, &[]).is_some();
        let clean = elaborator.diagnostics.len() == before;
        used_layers.extend(elaborator.layers.iter().map(|l| l.item));
        expression_types.append(&mut elaborator.expression_types);
        let (graph, model_diagnostics) = elaborator.into_graph();
        diagnostics.extend(model_diagnostics.into_sorted());
        if ok && clean {
            // The graph invariants hold for every lowered model; a failure is a compiler bug,
            // reported rather than passed on to a backend.
            if let Err(errors) = crate::ir::verify::verify(&graph) {
                let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
                diagnostics.push(
                    Diagnostic::error(
                        "internal-error",
                        format!(
                            "the lowered graph of `{}` fails verification: {first}",
                            layer.name.name
                        ),
                    )
                    .with_label(layer.name.span, "while lowering this model")
                    .with_help("this is a bug in modelc; please report it with this file"),
                );
                continue;
            }
            models.push(CheckedModel {
                name: layer.name.name.clone(),
                item: item_ref,
                graph,
            });
        }
    }
    for (index, item) in items.iter().enumerate() {
        let Item::Layer(layer) = item else { continue };
        let item_ref = ItemRef {
            module: root,
            item: index,
        };
        if layer.kind == LayerKind::Model || used_layers.contains(&item_ref) {
            continue;
        }
        let mut elaborator = Elaborator::new(&program);
        elaborator.record_types = options.record_types;
        elaborator.check_standalone_layer(item_ref);
        expression_types.append(&mut elaborator.expression_types);
        diagnostics.extend(elaborator.diagnostics.into_sorted());
    }
    // Models a train or compress block can name: those defined in or imported into the file.
    let mut model_names: Vec<String> = Vec::new();
    for (name, item_ref) in &program.modules[root].scope {
        if program
            .layer(*item_ref)
            .is_some_and(|layer| layer.kind == LayerKind::Model)
        {
            model_names.push(name.clone());
        }
    }
    model_names.sort();
    for item in items {
        let mut settings_diagnostics = Vec::new();
        match item {
            Item::Train(decl) => {
                settings::check_settings(
                    settings::SettingsKind::Train,
                    decl,
                    &model_names,
                    &mut settings_diagnostics,
                );
            }
            Item::Compress(decl) => {
                settings::check_settings(
                    settings::SettingsKind::Compress,
                    decl,
                    &model_names,
                    &mut settings_diagnostics,
                );
            }
            _ => {}
        }
        diagnostics.extend(settings_diagnostics);
    }
    CheckResult {
        program,
        models,
        diagnostics: diagnostics.into_sorted(),
        expression_types,
    }
}

/// Picks the model to compile: the one named, or the file's only (or last) model.
pub fn select_model<'a>(
    result: &'a CheckResult,
    name: Option<&str>,
) -> Result<&'a CheckedModel, Diagnostic> {
    let root = &result.program.modules[result.program.root];
    let declared: Vec<String> = root
        .ast
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Layer(layer) if layer.kind == LayerKind::Model => Some(layer.name.name.clone()),
            _ => None,
        })
        .collect();
    match name {
        Some(name) => {
            if !declared.iter().any(|d| d == name) {
                let mut diagnostic =
                    Diagnostic::error("no-model", format!("the file defines no model `{name}`"));
                diagnostic = match suggest::closest(name, declared.iter()) {
                    Some(s) => diagnostic.with_help(format!("did you mean `{s}`?")),
                    None => diagnostic
                        .with_help(format!("models in this file: {}", list_or_none(&declared))),
                };
                return Err(diagnostic);
            }
            result
                .models
                .iter()
                .find(|m| m.name == name)
                .ok_or_else(|| Diagnostic::error("no-model", format!("model `{name}` has errors")))
        }
        None => match declared.last() {
            None => Err(
                Diagnostic::error("no-model", "the file defines no model").with_help(
                    "declare one with `model Name { ... forward(x: f32[B, ...]) { ... } }`",
                ),
            ),
            Some(last) => result
                .models
                .iter()
                .find(|m| &m.name == last)
                .ok_or_else(|| Diagnostic::error("no-model", format!("model `{last}` has errors"))),
        },
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
