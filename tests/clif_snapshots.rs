//! The Cranelift IR of a few small fused kernels, snapshotted so a change in code generation
//! shows up in review, and the fusion plan of the same models.

mod common;

use modelc_compiler::check::select_model;
use modelc_compiler::schedule::print_schedule;
use modelc_runtime::cpu::CpuExecutable;

fn compiled(text: &str) -> (String, String) {
    let result = common::check(text);
    assert!(
        result.diagnostics.is_empty(),
        "{}",
        common::rendered(&result)
    );
    let model = select_model(&result, None).expect("a model");
    let executable = CpuExecutable::compile(&model.graph).expect("compiles");
    let plan = print_schedule(executable.graph(), executable.schedule(), None);
    (executable.clif(), plan)
}

#[test]
fn bias_and_relu_fuse_into_one_vector_loop() {
    let (clif, plan) =
        compiled("model M { param b: f32[7] = zeros()\n forward(x: f32[B, 7]) { relu(x + b) } }");
    insta::assert_snapshot!("bias_relu_clif", clif);
    insta::assert_snapshot!("bias_relu_plan", plan);
}

#[test]
fn a_row_broadcast_reads_one_value_per_row() {
    let (clif, plan) =
        compiled("model M { forward(x: f32[B, 5]) { x - mean(x, axis = -1, keepdims = true) } }");
    insta::assert_snapshot!("row_broadcast_clif", clif);
    insta::assert_snapshot!("row_broadcast_plan", plan);
}

#[test]
fn relu_is_one_compare_and_select_per_vector() {
    // `maximum(x, 0.0)` with a constant right operand: `(x < 0) ? 0 : x`, no NaN fix-up
    // (x86-64 lowers it to one `maxps`), instead of Cranelift's NaN-exact `fmax` sequence.
    let (clif, plan) = compiled("model M { forward(x: f32[B, 8]) { relu(x) } }");
    insta::assert_snapshot!("relu_clif", clif);
    insta::assert_snapshot!("relu_plan", plan);
}

#[test]
fn tanh_gelu_inlines_its_polynomials() {
    // `0.5 * x * (1 + tanh(c * (x + 0.044715 * x ** 3)))`, written out: the cube as two
    // multiplies, tanh (with its exp) inline, no calls.
    let (clif, plan) = compiled(
        "model M { forward(x: f32[B, 16]) {\n\
         0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))\n} }",
    );
    assert!(!clif.contains("call"), "no calls in the kernel:\n{clif}");
    insta::assert_snapshot!("gelu_tanh_clif", clif);
    insta::assert_snapshot!("gelu_tanh_plan", plan);
}

#[test]
fn the_gelu_builtin_s_tanh_form_is_x_times_a_sigmoid() {
    // `gelu(x, approximate = "tanh")` as the prelude writes it, `x * sigmoid(2u)`: one exp and
    // one division per lane, no tanh polynomial.
    let (clif, plan) =
        compiled("model M { forward(x: f32[B, 16]) { gelu(x, approximate = \"tanh\") } }");
    assert!(!clif.contains("call"), "no calls in the kernel:\n{clif}");
    insta::assert_snapshot!("gelu_builtin_tanh_form_clif", clif);
    insta::assert_snapshot!("gelu_builtin_tanh_form_plan", plan);
}

#[test]
fn where_over_a_comparison_and_a_bool_input_selects_with_masks() {
    // A bool input read as bytes and widened to lane masks, a comparison, `and`, `where`, and
    // a comparison cast to f32, all in one kernel with an f32 result.
    let (clif, plan) = compiled(
        "model M { forward(x: f32[B, 6], keep: bool[B, 6]) {\n\
         where(keep and x > 0.0, x, 0.01 * x) + cast(x >= 1.0, f32)\n} }",
    );
    insta::assert_snapshot!("where_compare_clif", clif);
    insta::assert_snapshot!("where_compare_plan", plan);
}
