//! The standard library's sources, embedded so that the compiler needs no files at run time.
//! The files live in `stdlib/` at the repository root, written in the language itself.

/// `(module path, display name, text)` of every stdlib module.
pub const MODULES: &[(&str, &str, &str)] = &[
    (
        "std.prelude",
        "stdlib/prelude.model",
        include_str!("../../stdlib/prelude.model"),
    ),
    (
        "std.nn",
        "stdlib/nn.model",
        include_str!("../../stdlib/nn.model"),
    ),
    (
        "std.rnn",
        "stdlib/rnn.model",
        include_str!("../../stdlib/rnn.model"),
    ),
    (
        "std.transformer",
        "stdlib/transformer.model",
        include_str!("../../stdlib/transformer.model"),
    ),
];

pub const PRELUDE: &str = "std.prelude";

pub fn find(module_path: &str) -> Option<(&'static str, &'static str)> {
    MODULES
        .iter()
        .find(|(path, _, _)| *path == module_path)
        .map(|(_, name, text)| (*name, *text))
}

pub fn module_paths() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|(path, _, _)| *path)
}
