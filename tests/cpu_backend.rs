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

/// Softmax and layer norm run as row groups (`rows[...]` in the plan: the reductions with the
/// elementwise kernels around them, tile by tile over rows). Checked against the interpreter at
/// row counts of 1, 2 (below the thread count), 3 and 37, and row lengths of 1 (no group), 5
/// (not a multiple of the vector width) and 3001 (longer than a tile, so one row per tile),
/// tolerance 1e-5 absolute plus 1e-5 relative to the largest magnitude.
#[test]
fn row_groups_match_the_interpreter() {
    for length in [1usize, 5, 3001] {
        let source = format!(
            "model Rows {{\n\
             \x20   param gamma: f32[{length}] = normal(1.0, 0.5)\n\
             \x20   param beta: f32[{length}] = normal(0.0, 0.5)\n\
             \x20   forward(x: f32[B, 2, {length}], r: f32[B, 2, {length}]) -> f32[B, 2, {length}] {{\n\
             \x20       let h = layer_norm(x + r, gamma, beta, eps = 1e-5)\n\
             \x20       softmax(h * 3.0, axis = -1) + h\n\
             \x20   }}\n\
             }}\n"
        );
        let result = common::check(&source);
        let model =
            select_model(&result, None).unwrap_or_else(|_| panic!("{}", common::rendered(&result)));
        let graph = &model.graph;
        let executable = CpuExecutable::compile(graph).expect("compiles");
        let plan = executable.plan();
        assert_eq!(
            plan.contains("rows["),
            length > 1,
            "length {length}:\n{plan}"
        );
        let params = session::load_params(graph, None, 7).expect("initializers run");
        for batch in [1usize, 2, 3, 37] {
            let ty = |seed: u64| {
                let mut t = graph.node(graph.inputs[0]).ty.clone();
                t.shape[0] = modelc_compiler::ir::Dim::constant(batch as i64);
                common::random_input(&t, seed)
            };
            let inputs = vec![ty(batch as u64), ty(batch as u64 + 100)];
            let (difference, bound) =
                first_output_difference(graph, &executable, &inputs, &params, 1e-5);
            assert!(
                difference <= bound,
                "length {length}, batch {batch}: max abs difference {difference}"
            );
        }
    }
}

/// The largest absolute difference between the interpreter's and the backend's first output,
/// and the bound it must stay within: `tolerance` absolute plus `tolerance` relative to the
/// output's largest magnitude.
fn first_output_difference(
    graph: &modelc_compiler::ir::Graph,
    executable: &CpuExecutable,
    inputs: &[Tensor],
    params: &std::collections::HashMap<String, Tensor>,
    tolerance: f32,
) -> (f32, f32) {
    let expected = evaluate(graph, inputs, params).expect("the interpreter runs");
    let actual = executable.run(inputs, params).expect("the backend runs");
    let values = expected[0].as_f32().expect("f32");
    let scale = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let difference = expected[0].max_abs_diff(&actual[0]).expect("same shape");
    (difference, tolerance + tolerance * scale)
}

/// Contraction epilogues (an elementwise kernel that reads a convolution's or matrix product's
/// result runs inside it): a residual add and relu after a convolution on the register-tile
/// path (batch 1: bands split over threads; batch 3: images in parallel), a per-column vector
/// (`Inner` access: ranges cut at row ends) after a convolution, an activation after a
/// small-image convolution on the im2col path, and a per-row input (`Outer` access) after a
/// matrix product. Each plan must show the fusion (`+fused`), so the test cannot pass
/// without exercising it. Tolerance as the module's.
#[test]
fn contraction_epilogues_match_the_interpreter() {
    let cases = [
        (
            "x: f32[B, 16, 40, 40]",
            "param w: f32[16, 16, 3, 3] = normal(0.0, 0.1)\n param b: f32[16] = normal(0.0, 0.5)",
            "relu(x + conv2d(x, w, b, stride = 1, padding = 1, dilation = 1, groups = 1))",
            "f32[B, 16, 40, 40]",
        ),
        (
            "x: f32[B, 3, 18, 20]",
            "param w: f32[5, 3, 3, 3] = normal(0.0, 0.3)\n param v: f32[20] = normal(0.0, 1.0)",
            "tanh(conv2d(x, w, none, stride = 1, padding = 1, dilation = 1, groups = 1) * 0.5 + v)",
            "f32[B, 5, 18, 20]",
        ),
        (
            "x: f32[B, 3, 7, 7]",
            "param w: f32[4, 3, 3, 3] = normal(0.0, 0.3)",
            "sigmoid(conv2d(x, w, none, stride = 2, padding = 1, dilation = 1, groups = 1))",
            "f32[B, 4, 4, 4]",
        ),
        (
            "h: f32[B, 6, 20], g: f32[B, 6, 1]",
            "param m: f32[20, 9] = normal(0.0, 0.3)",
            "gelu(h @ m) * g",
            "f32[B, 6, 9]",
        ),
    ];
    check_epilogue_cases(&cases, true);
}

/// A contraction whose result is also read through an alias (a reshape) by another
/// instruction keeps its result: no epilogue, same values. (A reshape is not an instruction;
/// counting only instructions' direct reads once fused this and read freed memory.)
#[test]
fn a_result_also_read_through_a_reshape_is_not_absorbed() {
    let cases = [
        (
            "h: f32[B, 6, 20]",
            "param m: f32[20, 9] = normal(0.0, 0.3)",
            "let y = h @ m\n tanh(y) * sum(flatten(y, 1), axis = 1, keepdims = true).reshape(-1, 1, 1)",
            "f32[B, 6, 9]",
        ),
        (
            "x: f32[B, 3, 18, 20]",
            "param w: f32[5, 3, 3, 3] = normal(0.0, 0.3)",
            "let c = conv2d(x, w, none, stride = 1, padding = 1, dilation = 1, groups = 1)\n \
             relu(c) + mean(flatten(c, 1), axis = 1, keepdims = true).reshape(-1, 1, 1, 1)",
            "f32[B, 5, 18, 20]",
        ),
    ];
    check_epilogue_cases(&cases, false);
}

/// Each case's model through the backend against the interpreter at batches 1 and 3; the
/// plan must show an epilogue (`+fused`) exactly when `fused`.
fn check_epilogue_cases(cases: &[(&str, &str, &str, &str)], fused: bool) {
    for &(inputs, params, body, result_type) in cases {
        let source = format!(
            "model Epilogue {{\n {params}\n forward({inputs}) -> {result_type} {{\n {body}\n }}\n}}\n"
        );
        let result = common::check(&source);
        let model =
            select_model(&result, None).unwrap_or_else(|_| panic!("{}", common::rendered(&result)));
        let graph = &model.graph;
        let executable = CpuExecutable::compile(graph).expect("compiles");
        let plan = executable.plan();
        assert_eq!(plan.contains("+fused"), fused, "{body}: epilogue?\n{plan}");
        let params = session::load_params(graph, None, 11).expect("initializers run");
        for batch in [1usize, 3] {
            let inputs: Vec<Tensor> = graph
                .inputs
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let mut t = graph.node(*id).ty.clone();
                    t.shape[0] = modelc_compiler::ir::Dim::constant(batch as i64);
                    common::random_input(&t, 40 + i as u64)
                })
                .collect();
            let (difference, bound) =
                first_output_difference(graph, &executable, &inputs, &params, 1e-4);
            assert!(
                difference <= bound,
                "{body}, batch {batch}: max abs difference {difference}\n{plan}"
            );
        }
    }
}
