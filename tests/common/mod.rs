//! Helpers shared by the integration tests.
#![allow(dead_code)]

use modelc_compiler::check::modules::{Loader, MemoryLoader};
use modelc_compiler::check::{check_file, select_model, CheckOptions, CheckResult};
use modelc_compiler::diag::render::render_all;
use modelc_compiler::interp::{evaluate, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Checks source text named `name`, with other files available by name.
pub fn check_with_files(name: &str, text: &str, files: &[(&str, &str)]) -> CheckResult {
    let loader = MemoryLoader(
        files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
    );
    check_file(name, text, &loader, CheckOptions::default())
}

/// Checks source text that uses only the stdlib.
pub fn check(text: &str) -> CheckResult {
    check_with_files("test.model", text, &[])
}

/// Checks a file from disk with the filesystem loader.
pub fn check_path(path: &Path) -> CheckResult {
    let text = std::fs::read_to_string(path).expect("readable file");
    check_file(
        &path.to_string_lossy(),
        &text,
        &modelc_runtime::loader::FsLoader,
        CheckOptions::default(),
    )
}

/// Renders a result's diagnostics without colour, as the CLI does when piped.
pub fn rendered(result: &CheckResult) -> String {
    render_all(&result.diagnostics, &result.program.sources, false)
}

/// Compiles the last model of `text` (panicking with the rendered diagnostics on errors) and
/// runs it through the reference interpreter.
pub fn run(text: &str, inputs: &[Tensor], params: &HashMap<String, Tensor>) -> Vec<Tensor> {
    let result = check(text);
    assert!(
        result.diagnostics.is_empty(),
        "does not check:\n{}",
        rendered(&result)
    );
    let model = select_model(&result, None).expect("a model");
    modelc_compiler::ir::verify::verify(&model.graph).expect("the lowered graph verifies");
    evaluate(&model.graph, inputs, params)
        .unwrap_or_else(|e| panic!("evaluation failed: {}", e.message))
}

/// Any loader, for tests that need their own.
pub fn check_with_loader(name: &str, text: &str, loader: &dyn Loader) -> CheckResult {
    check_file(name, text, loader, CheckOptions::default())
}
