//! The optimization passes preserve semantics: every example, run by the reference
//! interpreter on the same inputs and weights before and after `passes::optimize`, gives
//! bit-identical outputs (tolerance 0: the passes only apply exact identities and remove dead
//! code). The optimized graph of each example is snapshotted.

mod common;

use modelc_compiler::check::select_model;
use modelc_compiler::interp::{evaluate, Tensor};
use modelc_compiler::ir::print::print_graph;
use modelc_compiler::passes::optimize;
use modelc_runtime::session;

#[test]
fn optimization_preserves_every_example() {
    for path in common::example_files() {
        let name = path
            .strip_prefix(common::root())
            .expect("inside the repo")
            .to_string_lossy()
            .replace('\\', "/");
        let result = common::check_path(&path);
        let model = select_model(&result, None).expect("each example has a model");
        let graph = &model.graph;
        let inputs: Vec<Tensor> = graph
            .inputs
            .iter()
            .enumerate()
            .map(|(index, id)| common::random_input(&graph.node(*id).ty, index as u64 + 1))
            .collect();
        let params = session::load_params(graph, None, 0).expect("initializers run");
        let before = evaluate(graph, &inputs, &params).expect("the lowered graph runs");
        let mut optimized = graph.clone();
        let reports = optimize(&mut optimized)
            .unwrap_or_else(|(pass, errors)| panic!("{name}: {pass} broke the graph: {errors:?}"));
        assert!(
            optimized.node_count() <= graph.node_count(),
            "{name}: optimization added nodes"
        );
        let after = evaluate(&optimized, &inputs, &params).expect("the optimized graph runs");
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.shape, a.shape, "{name}: output shape changed");
            if b.as_f32().is_some() {
                assert_eq!(b.max_abs_diff(a), Some(0.0), "{name}: outputs changed");
            } else {
                assert_eq!(b, a, "{name}: outputs changed");
            }
        }
        let mut text = print_graph(&optimized, Some(&result.program.sources))
            .replace(&format!("{}/", common::root().display()), "");
        for report in reports {
            text.push_str(&format!(
                "# {}: {} -> {} nodes, {} changes\n",
                report.name, report.nodes_before, report.nodes_after, report.changes
            ));
        }
        insta::assert_snapshot!(format!("optimized_{}", name.replace(['/', '.'], "_")), text);
    }
}
