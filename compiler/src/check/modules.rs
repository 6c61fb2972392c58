//! Loading a program: the root file, the modules it `use`s (relative files and the stdlib),
//! and each module's scope of item names.
//!
//! File access goes through the [`Loader`] trait, so the compiler core stays free of I/O.

use crate::diag::Diagnostic;
use crate::source::{FileId, SourceMap, Span};
use crate::stdlib;
use crate::syntax::ast::{self, Item, UseNames};
use crate::syntax::parse_file;
use std::collections::HashMap;

/// Reads the text of a module that is a file.
pub trait Loader {
    /// Resolves `relative` (like `blocks.model` or `models/blocks.model`) against the folder of
    /// the already-loaded file `from`, returning the new file's display name and text.
    fn load_relative(&self, from: &str, relative: &str) -> Result<(String, String), String>;
}

/// A loader that knows no files: for sources that only use the stdlib.
pub struct NoFiles;

impl Loader for NoFiles {
    fn load_relative(&self, _from: &str, relative: &str) -> Result<(String, String), String> {
        Err(format!(
            "no file `{relative}` (this compilation reads no files)"
        ))
    }
}

/// An in-memory loader for tests: display name → text. Paths are joined without normalization.
pub struct MemoryLoader(pub HashMap<String, String>);

impl Loader for MemoryLoader {
    fn load_relative(&self, from: &str, relative: &str) -> Result<(String, String), String> {
        let folder = match from.rfind('/') {
            Some(index) => &from[..=index],
            None => "",
        };
        let name = format!("{folder}{relative}");
        match self.0.get(&name) {
            Some(text) => Ok((name, text.clone())),
            None => Err(format!("no file `{name}`")),
        }
    }
}

/// An item of some module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ItemRef {
    pub module: usize,
    pub item: usize,
}

#[derive(Debug)]
pub struct LoadedModule {
    /// `std.nn` for the stdlib; the file's display name otherwise.
    pub key: String,
    pub file: FileId,
    pub ast: ast::Module,
    /// Names visible at the module's top level: its own items and its imports.
    pub scope: HashMap<String, ItemRef>,
    pub is_stdlib: bool,
}

#[derive(Debug)]
pub struct Program {
    pub sources: SourceMap,
    pub modules: Vec<LoadedModule>,
    /// The module that was asked for.
    pub root: usize,
    /// The prelude module, whose items every module sees after its own scope.
    pub prelude: Option<usize>,
}

impl Program {
    pub fn item(&self, item: ItemRef) -> &Item {
        &self.modules[item.module].ast.items[item.item]
    }

    pub fn layer(&self, item: ItemRef) -> Option<&ast::LayerDecl> {
        match self.item(item) {
            Item::Layer(layer) => Some(layer),
            _ => None,
        }
    }

    pub fn function(&self, item: ItemRef) -> Option<&ast::FnDecl> {
        match self.item(item) {
            Item::Fn(function) => Some(function),
            _ => None,
        }
    }

    /// Looks a top-level name up from inside `module`: its scope, then the prelude.
    pub fn lookup(&self, module: usize, name: &str) -> Option<ItemRef> {
        if let Some(item) = self.modules[module].scope.get(name) {
            return Some(*item);
        }
        let prelude = self.prelude?;
        let prelude_module = &self.modules[prelude];
        prelude_module
            .scope
            .get(name)
            .copied()
            .filter(|item| item.module == prelude)
    }

    /// Every top-level name visible from `module`, for suggestions.
    pub fn visible_names(&self, module: usize) -> Vec<String> {
        let mut names: Vec<String> = self.modules[module].scope.keys().cloned().collect();
        if let Some(prelude) = self.prelude {
            names.extend(self.modules[prelude].scope.keys().cloned());
        }
        names
    }

    pub fn module_of_file(&self, file: FileId) -> Option<usize> {
        self.modules.iter().position(|m| m.file == file)
    }
}

/// Loads `root_text` (displayed as `root_name`) and everything it imports. Never stops at the
/// first error: a missing module leaves its names unresolved, which later checks skip quietly.
pub fn load_program(
    root_name: &str,
    root_text: &str,
    loader: &dyn Loader,
) -> (Program, Vec<Diagnostic>) {
    let mut state = LoadState {
        program: Program {
            sources: SourceMap::new(),
            modules: Vec::new(),
            root: 0,
            prelude: None,
        },
        loader,
        diagnostics: Vec::new(),
        loading: Vec::new(),
    };
    if let Some(prelude) = state.load_stdlib(stdlib::PRELUDE) {
        state.program.prelude = Some(prelude);
    }
    match state.add_module(
        root_name.to_string(),
        root_name.to_string(),
        root_text.to_string(),
        false,
    ) {
        Some(root) => state.program.root = root,
        None => {
            state.diagnostics.push(Diagnostic::error(
                "io-error",
                format!("`{root_name}` is too large to compile"),
            ));
        }
    }
    (state.program, state.diagnostics)
}

struct LoadState<'a> {
    program: Program,
    loader: &'a dyn Loader,
    diagnostics: Vec<Diagnostic>,
    /// Modules being loaded, innermost last, for cycle detection.
    loading: Vec<String>,
}

impl LoadState<'_> {
    fn load_stdlib(&mut self, key: &str) -> Option<usize> {
        if let Some(index) = self.program.modules.iter().position(|m| m.key == key) {
            return Some(index);
        }
        let (name, text) = stdlib::find(key)?;
        self.add_module(key.to_string(), name.to_string(), text.to_string(), true)
    }

    /// Parses a module, loads its imports, and builds its scope.
    fn add_module(
        &mut self,
        key: String,
        name: String,
        text: String,
        is_stdlib: bool,
    ) -> Option<usize> {
        let file = self.program.sources.add(name.clone(), text)?;
        let (module_ast, parse_diagnostics) = parse_file(&self.program.sources, file);
        self.diagnostics.extend(parse_diagnostics);
        let index = self.program.modules.len();
        self.program.modules.push(LoadedModule {
            key: key.clone(),
            file,
            ast: module_ast,
            scope: HashMap::new(),
            is_stdlib,
        });
        self.loading.push(key);
        self.build_scope(index, &name);
        self.loading.pop();
        Some(index)
    }

    fn build_scope(&mut self, index: usize, file_name: &str) {
        let mut scope: HashMap<String, ItemRef> = HashMap::new();
        let mut first_definition: HashMap<String, Span> = HashMap::new();
        let items = self.program.modules[index].ast.items.clone();
        for (item_index, item) in items.iter().enumerate() {
            if let Some(name) = item.defined_name() {
                if let Some(first) = first_definition.get(&name.name) {
                    self.diagnostics
                        .push(duplicate(&name.name, name.span, *first));
                    continue;
                }
                first_definition.insert(name.name.clone(), name.span);
                scope.insert(
                    name.name.clone(),
                    ItemRef {
                        module: index,
                        item: item_index,
                    },
                );
            }
        }
        for item in &items {
            let Item::Use(use_decl) = item else { continue };
            let Some(target) = self.resolve_module(use_decl, file_name) else {
                continue;
            };
            let target_items: Vec<(String, ItemRef)> = self.program.modules[target]
                .ast
                .items
                .iter()
                .enumerate()
                .filter_map(|(item_index, item)| {
                    item.defined_name().map(|n| {
                        (
                            n.name.clone(),
                            ItemRef {
                                module: target,
                                item: item_index,
                            },
                        )
                    })
                })
                .collect();
            let imported: Vec<(String, Span, Option<ItemRef>)> = match &use_decl.names {
                UseNames::Glob(span) => target_items
                    .iter()
                    .map(|(n, r)| (n.clone(), *span, Some(*r)))
                    .collect(),
                UseNames::List(names) => names
                    .iter()
                    .map(|name| {
                        let found = target_items
                            .iter()
                            .find(|(n, _)| *n == name.name)
                            .map(|(_, r)| *r);
                        (name.name.clone(), name.span, found)
                    })
                    .collect(),
            };
            for (name, span, found) in imported {
                let Some(item_ref) = found else {
                    let candidates: Vec<String> =
                        target_items.iter().map(|(n, _)| n.clone()).collect();
                    let module_name = self.program.modules[target].key.clone();
                    let mut diagnostic = Diagnostic::error(
                        "unknown-import",
                        format!("`{module_name}` has no item `{name}`"),
                    )
                    .with_label(span, "not defined there");
                    if let Some(suggestion) =
                        crate::check::suggest::closest(&name, candidates.iter())
                    {
                        diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
                    }
                    self.diagnostics.push(diagnostic);
                    continue;
                };
                if let Some(first) = first_definition.get(&name) {
                    if scope.get(&name) != Some(&item_ref) {
                        self.diagnostics.push(duplicate(&name, span, *first));
                    }
                    continue;
                }
                first_definition.insert(name.clone(), span);
                scope.insert(name, item_ref);
            }
        }
        self.program.modules[index].scope = scope;
    }

    fn resolve_module(&mut self, use_decl: &ast::UseDecl, file_name: &str) -> Option<usize> {
        let segments: Vec<&str> = use_decl.module.iter().map(|s| s.name.as_str()).collect();
        let path_span = match (use_decl.module.first(), use_decl.module.last()) {
            (Some(first), Some(last)) => first.span.to(last.span),
            _ => use_decl.span,
        };
        if segments.is_empty() {
            self.diagnostics.push(
                Diagnostic::error("unknown-module", "`use` needs a module path")
                    .with_label(use_decl.span, "no module named")
                    .with_help("write `use std.nn.{Linear}` or `use blocks.{Block}`"),
            );
            return None;
        }
        let key = segments.join(".");
        if self.loading.contains(&key)
            || (segments[0] != "std" && self.loading.contains(&relative_key(file_name, &segments)))
        {
            let cycle_key = if segments[0] == "std" {
                key.clone()
            } else {
                relative_key(file_name, &segments)
            };
            let start = self
                .loading
                .iter()
                .position(|k| *k == cycle_key)
                .unwrap_or(0);
            let mut cycle: Vec<String> = self.loading[start..].to_vec();
            cycle.push(cycle_key);
            self.diagnostics.push(
                Diagnostic::error(
                    "import-cycle",
                    format!("importing `{key}` here creates a cycle"),
                )
                .with_label(path_span, "this import closes the cycle")
                .with_note(format!("the cycle: {}", cycle.join(" -> ")))
                .with_help("move the shared items into a module that both can import"),
            );
            return None;
        }
        if segments[0] == "std" {
            if let Some(index) = self.load_stdlib(&key) {
                return Some(index);
            }
            let known: Vec<&str> = stdlib::module_paths().collect();
            let mut diagnostic = Diagnostic::error(
                "unknown-module",
                format!("there is no stdlib module `{key}`"),
            )
            .with_label(path_span, "not in the stdlib")
            .with_note(format!("stdlib modules: {}", known.join(", ")));
            if let Some(suggestion) = crate::check::suggest::closest(
                &key,
                known
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .iter(),
            ) {
                diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
            }
            self.diagnostics.push(diagnostic);
            return None;
        }
        let relative = format!("{}.model", segments.join("/"));
        let key = relative_key(file_name, &segments);
        if let Some(index) = self.program.modules.iter().position(|m| m.key == key) {
            return Some(index);
        }
        match self.loader.load_relative(file_name, &relative) {
            Ok((name, text)) => {
                let added = self.add_module(key, name, text, false);
                if added.is_none() {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "io-error",
                            format!("`{relative}` is too large to compile"),
                        )
                        .with_label(path_span, "imported here"),
                    );
                }
                added
            }
            Err(reason) => {
                self.diagnostics.push(
                    Diagnostic::error("unknown-module", format!("cannot load module `{}`", segments.join(".")))
                        .with_label(path_span, format!("looked for `{relative}`"))
                        .with_note(reason)
                        .with_help("stdlib modules start with `std.`; other modules are `.model` files next to this one"),
                );
                None
            }
        }
    }
}

/// The module key of a relative import: the imported file's path as the loader would name it.
fn relative_key(from: &str, segments: &[&str]) -> String {
    let folder = match from.rfind('/') {
        Some(index) => &from[..=index],
        None => "",
    };
    format!("{folder}{}.model", segments.join("/"))
}

fn duplicate(name: &str, span: Span, first: Span) -> Diagnostic {
    Diagnostic::error(
        "duplicate-definition",
        format!("`{name}` is defined more than once"),
    )
    .with_label(span, "defined again here")
    .with_label(first, "first defined here")
    .with_help("rename one of them")
}
