//! Parity with the peer benchmark: the six peer models in `examples/peers/`, run by the reference
//! interpreter with `../shared/peers/models/<model>.safetensors`, reproduce ONNX Runtime's
//! outputs in `<model>.io.safetensors` at every batch size the peers use.
//!
//! Tolerance: absolute 1e-4 (the bound; the peers agree with each other to 5e-6).
//! The peer files live outside this repository: when `../shared/peers` is absent the tests say
//! so and pass without checking, while the repository's own numpy fixtures keep the suite
//! meaningful.

use modelc_compiler::check::{check_file, select_model, CheckOptions};
use modelc_compiler::interp::evaluate;
use modelc_runtime::cpu::CpuExecutable;
use modelc_runtime::loader::FsLoader;
use modelc_runtime::{fsio, session, weights};
use std::path::{Path, PathBuf};

const TOLERANCE: f32 = 1e-4;

fn peers_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/models");
    dir.is_dir().then_some(dir)
}

/// Runs `examples/<example>` against the peer model `model`; returns the largest absolute
/// difference at each batch size.
fn max_differences(example: &str, model: &str) -> Option<Vec<(usize, f32)>> {
    let Some(dir) = peers_dir() else {
        eprintln!("skipping peer parity for {model}: ../shared/peers is absent");
        return None;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/peers")
        .join(example);
    let text = std::fs::read_to_string(&path).expect("example exists");
    let result = check_file(
        &path.to_string_lossy(),
        &text,
        &FsLoader,
        CheckOptions::default(),
    );
    assert!(
        result.diagnostics.is_empty(),
        "{example} does not check: {:?}",
        result.diagnostics
    );
    let checked = select_model(&result, None).expect("one model");
    let params = session::load_params(
        &checked.graph,
        Some(&dir.join(format!("{model}.safetensors"))),
        0,
    )
    .expect("peer weights bind to the example's params by name and shape");
    let io_bytes = fsio::read_file(&dir.join(format!("{model}.io.safetensors"))).expect("io file");
    let io = weights::read_safetensors(&io_bytes, "io").expect("io file parses");
    let executable = CpuExecutable::compile(&checked.graph).expect("the CPU backend compiles");
    let mut differences = Vec::new();
    for (name, input) in &io {
        let Some(batch) = name.strip_prefix("input.b") else {
            continue;
        };
        let expected = &io
            .iter()
            .find(|(n, _)| *n == format!("output.b{batch}"))
            .expect("output for each input")
            .1;
        let outputs = evaluate(&checked.graph, std::slice::from_ref(input), &params)
            .expect("evaluation succeeds");
        let difference = outputs[0]
            .max_abs_diff(expected)
            .expect("same shape and dtype");
        // The same model through the CPU backend (JIT-compiled fused kernels, GEMM).
        let cpu_outputs = executable
            .run(std::slice::from_ref(input), &params)
            .expect("the CPU backend runs");
        let cpu_difference = cpu_outputs[0]
            .max_abs_diff(expected)
            .expect("same shape and dtype");
        differences.push((
            batch.parse().expect("batch number"),
            difference.max(cpu_difference),
        ));
        eprintln!("{model} b{batch}: interpreter {difference:.3e}, cpu {cpu_difference:.3e}");
    }
    differences.sort_by_key(|(batch, _)| *batch);
    Some(differences)
}

fn check_parity(example: &str, model: &str, batches: &[usize]) {
    let Some(differences) = max_differences(example, model) else {
        return;
    };
    let seen: Vec<usize> = differences.iter().map(|(b, _)| *b).collect();
    assert_eq!(seen, batches, "batch sizes in the peer io file");
    for (batch, difference) in differences {
        eprintln!("{model} b{batch}: max |modelc - onnxruntime| = {difference:.3e}");
        assert!(
            difference <= TOLERANCE,
            "{model} b{batch}: max abs difference {difference} > {TOLERANCE}"
        );
    }
}

#[test]
fn mlp_matches_onnxruntime() {
    check_parity("mlp.model", "mlp", &[1, 64]);
}

#[test]
fn lenet_matches_onnxruntime() {
    check_parity("lenet.model", "lenet", &[1, 64]);
}

#[test]
fn convnet_matches_onnxruntime() {
    check_parity("convnet.model", "convnet", &[1, 16]);
}

#[test]
fn lstm_matches_onnxruntime() {
    check_parity("lstm.model", "lstm", &[1, 16]);
}

#[test]
fn encoder_matches_onnxruntime() {
    check_parity("encoder.model", "encoder", &[1, 8]);
}

#[test]
fn gpt_matches_onnxruntime() {
    check_parity("gpt.model", "gpt", &[1]);
}
