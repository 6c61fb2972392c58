//! Helpers shared by the integration tests.
#![allow(dead_code)]

use modelc_compiler::check::modules::{Loader, MemoryLoader};
use modelc_compiler::check::{check_file, select_model, CheckOptions, CheckResult};
use modelc_compiler::diag::render::render_all;
use modelc_compiler::interp::{evaluate, Tensor};
use modelc_compiler::ir::DType;
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
pub fn check_with_loader(name: &str, text: &str, loader: &(dyn Loader + Sync)) -> CheckResult {
    check_file(name, text, loader, CheckOptions::default())
}

/// Every example file (symlinks skipped: they repeat another example).
pub fn example_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in ["examples", "examples/peers"] {
        let dir = root().join(folder);
        for entry in std::fs::read_dir(&dir).expect("examples folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "model") && !path.is_symlink() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Sizes for the symbolic dims of example inputs: small, odd where possible.
fn symbol_value(name: &str) -> usize {
    match name {
        "B" => 3,
        "T" => 5,
        "H" => 4,
        _ => 2,
    }
}

/// A deterministic pseudo-random input of the input node's type (ids below 8, bools mixed).
pub fn random_input(ty: &modelc_compiler::ir::TensorType, seed: u64) -> Tensor {
    let bindings: HashMap<String, i64> = ["B", "T", "H"]
        .iter()
        .map(|n| (n.to_string(), symbol_value(n) as i64))
        .collect();
    let shape: Vec<usize> = ty
        .shape
        .iter()
        .map(|d| d.eval(&bindings).ok().flatten().expect("example dims bind") as usize)
        .collect();
    let count: usize = shape.iter().product();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    match ty.dtype {
        DType::F32 => Tensor::from_f32(
            shape,
            (0..count)
                .map(|_| next() as f32 / u32::MAX as f32 * 2.0 - 1.0)
                .collect(),
        ),
        DType::I64 => Tensor::from_i64(shape, (0..count).map(|_| i64::from(next() % 8)).collect()),
        DType::Bool => Tensor::from_bool(shape, (0..count).map(|i| i % 4 == 3).collect()),
    }
    .expect("consistent tensor")
}

/// Binds a fixture's params to the last model of `source` the way the CLI binds a weights
/// file: by name, shape and dtype, strictly (nothing missing, nothing extra).
pub fn bind_params_strictly(
    case: &str,
    source: &str,
    found: Vec<(String, Tensor)>,
) -> HashMap<String, Tensor> {
    let checked = check(source);
    assert!(
        checked.diagnostics.is_empty(),
        "{case}: the model does not check:\n{}",
        rendered(&checked)
    );
    let model = select_model(&checked, None).unwrap_or_else(|d| panic!("{case}: {}", d.message));
    let expected: Vec<modelc_runtime::weights::ExpectedParam> =
        modelc_runtime::session::declared_params(&model.graph)
            .unwrap_or_else(|d| panic!("{case}: {}", d.message))
            .into_iter()
            .map(|(param, _)| param)
            .collect();
    modelc_runtime::weights::bind_weights(&expected, found, case).unwrap_or_else(|diagnostics| {
        let messages: Vec<String> = diagnostics.iter().map(|d| d.message.clone()).collect();
        panic!(
            "{case}: the fixture's params do not bind to the model's:\n{}",
            messages.join("\n")
        )
    })
}
