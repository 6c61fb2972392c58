//! Reads weights files that other parts of the project produce (exported from PyTorch), when
//! they are present in the shared folder, to check the reader against real-world files.

use modelc_compiler::ir::DType;
use modelc_runtime::fsio::read_file;
use modelc_runtime::weights::{bind_weights, read_safetensors, ExpectedParam};
use std::path::Path;

const MLP_WEIGHTS: &str = "/work/shared/peers/models/mlp.safetensors";

#[test]
fn the_shared_mlp_weights_have_the_declared_first_layer() {
    let path = Path::new(MLP_WEIGHTS);
    if !path.exists() {
        eprintln!("skipping: {MLP_WEIGHTS} is not present on this machine");
        return;
    }
    let bytes = read_file(path).expect("read the shared weights file");
    let tensors = read_safetensors(&bytes, MLP_WEIGHTS).expect("a valid safetensors file");
    let names: Vec<&str> = tensors.iter().map(|(name, _)| name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "tensors come back sorted by name");

    let (_, first_layer) = tensors
        .iter()
        .find(|(name, _)| name == "fc1.weight")
        .expect("`fc1.weight` is in the file");
    assert_eq!(first_layer.shape, vec![512, 784]);
    assert_eq!(first_layer.dtype(), DType::F32);
    let values = first_layer.as_f32().expect("f32 values");
    assert!(
        values.iter().all(|value| value.is_finite()),
        "trained weights are finite"
    );
    assert!(
        values.iter().any(|&value| value != 0.0),
        "trained weights are not all zero"
    );

    // Binding against exactly what the file holds succeeds; dropping one declaration makes
    // that tensor unexpected.
    let expected: Vec<ExpectedParam> = tensors
        .iter()
        .map(|(name, tensor)| ExpectedParam {
            name: name.clone(),
            dtype: tensor.dtype(),
            shape: tensor.shape.clone(),
        })
        .collect();
    let bound =
        bind_weights(&expected, tensors.clone(), MLP_WEIGHTS).expect("binds to its own layout");
    assert_eq!(bound.len(), tensors.len());
    let without_first: Vec<ExpectedParam> = expected
        .into_iter()
        .filter(|param| param.name != "fc1.weight")
        .collect();
    let diagnostics =
        bind_weights(&without_first, tensors, MLP_WEIGHTS).expect_err("fc1.weight is now extra");
    assert_eq!(
        diagnostics.iter().map(|d| d.code).collect::<Vec<_>>(),
        vec!["weights-unexpected"]
    );
}
