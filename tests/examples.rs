//! Every example checks, lowers to a graph that verifies, and runs through the reference
//! interpreter with initialized weights on random inputs, producing finite outputs of the
//! declared shape. The lowered graph of each example is snapshotted (`snapshots/`), with
//! source locations, so a change to lowering shows up in review.

mod common;

use modelc_compiler::check::select_model;
use modelc_compiler::interp::{evaluate, Tensor};
use modelc_compiler::ir::print::print_graph;
use modelc_compiler::ir::Op;
use modelc_runtime::session;

#[test]
fn every_example_checks_lowers_and_runs() {
    let files = common::example_files();
    assert!(
        files.len() >= 12,
        "expected the example set, found {files:?}"
    );
    for path in files {
        let name = path
            .strip_prefix(common::root())
            .expect("inside the repo")
            .to_string_lossy()
            .replace('\\', "/");
        let result = common::check_path(&path);
        assert!(
            result.diagnostics.is_empty(),
            "{name} does not check:\n{}",
            common::rendered(&result)
        );
        let model = select_model(&result, None).expect("each example has a model");
        if let Err(errors) = modelc_compiler::ir::verify::verify(&model.graph) {
            panic!("{name}: the lowered graph does not verify: {errors:?}");
        }
        let graph = &model.graph;
        let inputs: Vec<Tensor> = graph
            .inputs
            .iter()
            .enumerate()
            .map(|(index, id)| common::random_input(&graph.node(*id).ty, index as u64 + 1))
            .collect();
        let params = session::load_params(graph, None, 0).expect("initializers run");
        let outputs =
            evaluate(graph, &inputs, &params).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        for (output, id) in outputs.iter().zip(&graph.outputs) {
            if let Some(values) = output.as_f32() {
                assert!(
                    values.iter().all(|v| v.is_finite()),
                    "{name}: non-finite output"
                );
            }
            assert_eq!(
                output.shape.len(),
                graph.node(*id).ty.rank(),
                "{name}: output rank"
            );
        }
        // The IR snapshot uses repository-relative file names.
        let text = print_graph(graph, Some(&result.program.sources))
            .replace(&format!("{}/", common::root().display()), "");
        let snapshot_name = name.replace(['/', '.'], "_");
        insta::assert_snapshot!(snapshot_name, text);
        // Inputs are named after the forward's parameters.
        for id in &graph.inputs {
            assert!(matches!(graph.node(*id).op, Op::Input { .. }));
        }
    }
}
