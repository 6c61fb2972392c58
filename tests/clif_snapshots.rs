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
