//! Snapshots of the CPU backend's plan (`modelc build --emit plan`) for three peer models: which
//! ops run as native kernels, which fuse, which transposes fold into matrix products, which
//! bias additions become GEMM epilogues, and what is computed once at bind time. A change here
//! is a change in what the backend runs; review it like code.

mod common;

use modelc_compiler::check::select_model;
use modelc_runtime::cpu::CpuExecutable;

fn plan_of(relative: &str) -> String {
    let result = common::check_path(&common::root().join(relative));
    let model = select_model(&result, None).expect("a model");
    CpuExecutable::compile(&model.graph)
        .expect("the CPU backend compiles")
        .plan()
}

#[test]
fn mlp_plan_folds_weight_transposes_and_the_last_bias() {
    let plan = plan_of("examples/peers/mlp.model");
    assert!(
        plan.contains("matmul rhs.T") && plan.contains(" +bias("),
        "{plan}"
    );
    insta::assert_snapshot!("plan_mlp", plan);
}

#[test]
fn lenet_plan_runs_convolutions_and_pooling_natively() {
    let plan = plan_of("examples/peers/lenet.model");
    assert!(
        !plan.contains("interpret conv2d") && plan.contains("conv2d"),
        "{plan}"
    );
    insta::assert_snapshot!("plan_lenet", plan);
}

#[test]
fn lstm_plan_has_a_scan_with_its_body() {
    let plan = plan_of("examples/peers/lstm.model");
    assert!(plan.contains("scan("), "{plan}");
    insta::assert_snapshot!("plan_lstm", plan);
}

#[test]
fn encoder_plan_groups_softmax_and_layer_norm_rows() {
    let plan = plan_of("examples/peers/encoder.model");
    assert!(
        plan.contains("rows[fused, reduce max, fused, reduce sum, fused]"),
        "{plan}"
    );
    insta::assert_snapshot!("plan_encoder", plan);
}
