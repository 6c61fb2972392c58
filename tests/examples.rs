//! Every example checks, lowers to a graph that verifies, and runs through the reference
//! interpreter with initialized weights on random inputs, producing finite outputs of the
//! declared shape. The lowered graph of each example is snapshotted (`snapshots/`), with
//! source locations, so a change to lowering shows up in review.

mod common;

use modelc_compiler::check::select_model;
use modelc_compiler::interp::{evaluate, Tensor};
use modelc_compiler::ir::print::print_graph;
use modelc_compiler::ir::{DType, Op};
use modelc_runtime::session;
use std::collections::HashMap;
use std::path::PathBuf;

fn example_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in ["examples", "examples/peers"] {
        let dir = common::root().join(folder);
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
fn input_for(ty: &modelc_compiler::ir::TensorType, seed: u64) -> Tensor {
    let bindings: HashMap<String, i64> =
        ["B", "T", "H"].iter().map(|n| (n.to_string(), symbol_value(n) as i64)).collect();
    let shape: Vec<usize> = ty
        .shape
        .iter()
        .map(|d| d.eval(&bindings).ok().flatten().expect("example dims bind") as usize)
        .collect();
    let count: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    match ty.dtype {
        DType::F32 => Tensor::from_f32(shape, (0..count).map(|_| next() as f32 / u32::MAX as f32 * 2.0 - 1.0).collect()),
        DType::I64 => Tensor::from_i64(shape, (0..count).map(|_| i64::from(next() % 8)).collect()),
        DType::Bool => Tensor::from_bool(shape, (0..count).map(|i| i % 4 == 3).collect()),
    }
    .expect("consistent tensor")
}

#[test]
fn every_example_checks_lowers_and_runs() {
    let files = example_files();
    assert!(files.len() >= 12, "expected the example set, found {files:?}");
    for path in files {
        let name = path.strip_prefix(common::root()).expect("inside the repo").to_string_lossy().replace('\\', "/");
        let result = common::check_path(&path);
        assert!(result.diagnostics.is_empty(), "{name} does not check:\n{}", common::rendered(&result));
        let model = select_model(&result, None).expect("each example has a model");
        if let Err(errors) = modelc_compiler::ir::verify::verify(&model.graph) {
            panic!("{name}: the lowered graph does not verify: {errors:?}");
        }
        let graph = &model.graph;
        let inputs: Vec<Tensor> = graph
            .inputs
            .iter()
            .enumerate()
            .map(|(index, id)| input_for(&graph.node(*id).ty, index as u64 + 1))
            .collect();
        let params = session::load_params(graph, None, 0).expect("initializers run");
        let outputs = evaluate(graph, &inputs, &params).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        for (output, id) in outputs.iter().zip(&graph.outputs) {
            if let Some(values) = output.as_f32() {
                assert!(values.iter().all(|v| v.is_finite()), "{name}: non-finite output");
            }
            assert_eq!(output.shape.len(), graph.node(*id).ty.rank(), "{name}: output rank");
        }
        // The IR snapshot uses repository-relative file names.
        let text = print_graph(graph, Some(&result.program.sources)).replace(&format!("{}/", common::root().display()), "");
        let snapshot_name = name.replace(['/', '.'], "_");
        insta::assert_snapshot!(snapshot_name, text);
        // Inputs are named after the forward's parameters.
        for id in &graph.inputs {
            assert!(matches!(graph.node(*id).op, Op::Input { .. }));
        }
    }
}
