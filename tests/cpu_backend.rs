//! The CPU backend against the reference interpreter: every example, same inputs and
//! initialized weights. Tolerance: absolute 1e-4 plus 1e-4 relative to the output's largest
//! magnitude, because the GEMM library sums in a different order than the interpreter's f64
//! accumulation.

mod common;

use modelc_compiler::check::select_model;
use modelc_compiler::interp::{evaluate, Tensor};
use modelc_runtime::cpu::CpuExecutable;
use modelc_runtime::session;

#[test]
fn cpu_backend_matches_the_interpreter_on_every_example() {
    for path in common::example_files() {
        let name = path
            .strip_prefix(common::root())
            .expect("inside the repo")
            .to_string_lossy()
            .replace('\\', "/");
        let result = common::check_path(&path);
        let model = select_model(&result, None).expect("a model");
        let graph = &model.graph;
        let inputs: Vec<Tensor> = graph
            .inputs
            .iter()
            .enumerate()
            .map(|(index, id)| common::random_input(&graph.node(*id).ty, index as u64 + 1))
            .collect();
        let params = session::load_params(graph, None, 0).expect("initializers run");
        let expected = evaluate(graph, &inputs, &params).expect("the interpreter runs");
        let executable = CpuExecutable::compile(graph).unwrap_or_else(|e| panic!("{name}: {e}"));
        let actual = executable
            .run(&inputs, &params)
            .unwrap_or_else(|e| panic!("{name}: {}", e.message));
        for (e, a) in expected.iter().zip(&actual) {
            assert_eq!(e.shape, a.shape, "{name}: shape");
            if let Some(values) = e.as_f32() {
                let scale = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let difference = e.max_abs_diff(a).expect("same shape");
                assert!(
                    difference <= 1e-4 + 1e-4 * scale,
                    "{name}: max abs difference {difference} (scale {scale})"
                );
            } else {
                assert_eq!(e, a, "{name}");
            }
        }
    }
}
