//! The stdlib v0 layers and functions, run by the reference interpreter, against numpy
//! references in `tests/fixtures/stdlib/<case>.safetensors`.
//!
//! `scripts/gen_stdlib_fixtures.py` writes the fixtures (rerun it with
//! `.venv/bin/python scripts/gen_stdlib_fixtures.py`): each holds the inputs (`input.x`), the
//! params under their model param names (`fc.weight`, `conv.bias`, ...) and the expected
//! `output`, computed in float64 from the float32 inputs and cast to float32. Convolution and
//! pooling references are plain loops, independent of the interpreter.
//!
//! Each test below compiles a small model that applies one layer or function, binds the
//! fixture's params strictly (every declared param present with its declared shape, nothing
//! extra, as the CLI does with a weights file), runs it, and checks the output's shape and
//! values.
//!
//! Tolerance: absolute 1e-5 on every element (NaN fails). The references are exact to float32
//! rounding and the sums involved are short (at most 75 products), so float32 evaluation
//! stays inside it: the largest difference observed is log_softmax's 7.6e-6, one float32 ulp
//! at its outputs' magnitude of about 100 (see that test); every other case is within 5e-7.

#[path = "common/mod.rs"]
mod common;

use modelc_compiler::interp::Tensor;
use modelc_runtime::weights::read_safetensors;
use std::path::PathBuf;

/// The largest absolute difference allowed between the interpreter and the numpy reference.
const TOLERANCE: f32 = 1e-5;

/// The names of the model inputs, in `forward` order; every case here takes one input `x`.
const INPUT_NAMES: &[&str] = &["x"];

fn fixture_dir() -> PathBuf {
    common::root().join("tests/fixtures/stdlib")
}

/// A fixture split into its parts.
struct Fixture {
    inputs: Vec<Tensor>,
    params: Vec<(String, Tensor)>,
    output: Tensor,
}

fn load_fixture(case: &str) -> Fixture {
    let path = fixture_dir().join(format!("{case}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{case}: cannot read {} ({e}); run `.venv/bin/python scripts/gen_stdlib_fixtures.py`",
            path.display()
        )
    });
    let tensors = read_safetensors(&bytes, &path.to_string_lossy())
        .unwrap_or_else(|d| panic!("{case}: fixture does not parse: {}", d.message));
    let mut inputs = Vec::new();
    let mut params = Vec::new();
    let mut output = None;
    for (name, tensor) in tensors {
        if name == "output" {
            output = Some(tensor);
        } else if let Some(input) = name.strip_prefix("input.") {
            inputs.push((input.to_string(), tensor));
        } else {
            params.push((name, tensor));
        }
    }
    let input_names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(input_names, INPUT_NAMES, "{case}: the fixture's inputs");
    Fixture {
        inputs: inputs.into_iter().map(|(_, t)| t).collect(),
        params,
        output: output.unwrap_or_else(|| panic!("{case}: the fixture has no `output`")),
    }
}

/// The largest absolute difference, or infinity if any element is NaN on either side (unlike
/// `Tensor::max_abs_diff`, whose `f32::max` fold would skip a NaN).
fn max_difference(case: &str, actual: &Tensor, expected: &Tensor) -> f32 {
    let actual = actual
        .as_f32()
        .unwrap_or_else(|| panic!("{case}: the output is not f32"));
    let expected = expected.as_f32().expect("fixture outputs are f32");
    actual.iter().zip(expected).fold(0.0f32, |worst, (a, e)| {
        let difference = (a - e).abs();
        if difference.is_nan() {
            f32::INFINITY
        } else {
            worst.max(difference)
        }
    })
}

/// Runs `source` (whose last model is the one checked) on the fixture `case` and asserts that
/// it reproduces the fixture's output; returns the largest absolute difference.
fn check_case(case: &str, source: &str) -> f32 {
    let fixture = load_fixture(case);

    let params = common::bind_params_strictly(case, source, fixture.params);

    let outputs = common::run(source, &fixture.inputs, &params);
    assert_eq!(outputs.len(), 1, "{case}: number of outputs");
    let actual = &outputs[0];
    assert_eq!(
        actual.shape, fixture.output.shape,
        "{case}: output shape (left: modelc, right: numpy)"
    );
    let difference = max_difference(case, actual, &fixture.output);
    eprintln!("{case}: max |modelc - numpy| = {difference:.3e}");
    assert!(
        difference <= TOLERANCE,
        "{case}: max abs difference {difference:e} > {TOLERANCE:e}\n  modelc: {:?}\n  numpy:  {:?}",
        actual.as_f32().map(|v| &v[..v.len().min(12)]),
        fixture.output.as_f32().map(|v| &v[..v.len().min(12)]),
    );
    difference
}

// ------------------------------------------------------------------------------------- Linear

#[test]
fn linear() {
    check_case(
        "linear",
        "use std.nn.Linear
model Case {
    fc = Linear(7, 5)
    forward(x: f32[B, 7]) { fc(x) }
}",
    );
}

#[test]
fn linear_no_bias() {
    check_case(
        "linear_no_bias",
        "use std.nn.Linear
model Case {
    fc = Linear(7, 5, bias = false)
    forward(x: f32[B, 7]) { fc(x) }
}",
    );
}

#[test]
fn linear_rank3() {
    check_case(
        "linear_rank3",
        "use std.nn.Linear
model Case {
    fc = Linear(7, 5)
    forward(x: f32[B, T, 7]) { fc(x) }
}",
    );
}

// ------------------------------------------------------------------------------------- Conv2d

#[test]
fn conv2d_basic() {
    check_case(
        "conv2d_basic",
        "use std.nn.Conv2d
model Case {
    conv = Conv2d(3, 4, kernel = 3)
    forward(x: f32[B, 3, 7, 5]) { conv(x) }
}",
    );
}

#[test]
fn conv2d_stride2_pad1() {
    check_case(
        "conv2d_stride2_pad1",
        "use std.nn.Conv2d
model Case {
    conv = Conv2d(3, 4, kernel = 3, stride = 2, padding = 1)
    forward(x: f32[B, 3, 7, 5]) { conv(x) }
}",
    );
}

#[test]
fn conv2d_1x1() {
    check_case(
        "conv2d_1x1",
        "use std.nn.Conv2d
model Case {
    conv = Conv2d(3, 5, kernel = 1)
    forward(x: f32[B, 3, 7, 5]) { conv(x) }
}",
    );
}

#[test]
fn conv2d_5x5_pad2() {
    check_case(
        "conv2d_5x5_pad2",
        "use std.nn.Conv2d
model Case {
    conv = Conv2d(3, 4, kernel = 5, padding = 2)
    forward(x: f32[B, 3, 7, 5]) { conv(x) }
}",
    );
}

#[test]
fn conv2d_groups2() {
    check_case(
        "conv2d_groups2",
        "use std.nn.Conv2d
model Case {
    conv = Conv2d(4, 6, kernel = 3, padding = 1, groups = 2)
    forward(x: f32[B, 4, 7, 5]) { conv(x) }
}",
    );
}

#[test]
fn conv2d_dilation2() {
    check_case(
        "conv2d_dilation2",
        "use std.nn.Conv2d
model Case {
    conv = Conv2d(3, 4, kernel = 3, padding = 1, dilation = 2)
    forward(x: f32[B, 3, 7, 9]) { conv(x) }
}",
    );
}

#[test]
fn conv2d_no_bias() {
    check_case(
        "conv2d_no_bias",
        "use std.nn.Conv2d
model Case {
    conv = Conv2d(3, 4, kernel = 3, padding = 1, bias = false)
    forward(x: f32[B, 3, 7, 5]) { conv(x) }
}",
    );
}

// ------------------------------------------------------------------------------------ pooling

#[test]
fn maxpool2d_k2() {
    check_case(
        "maxpool2d_k2",
        "use std.nn.MaxPool2d
model Case {
    pool = MaxPool2d(2)
    forward(x: f32[B, 3, 7, 5]) { pool(x) }
}",
    );
}

#[test]
fn max_pool2d_fn_k2() {
    check_case(
        "maxpool2d_k2",
        "model Case {
    forward(x: f32[B, 3, 7, 5]) { x |> max_pool2d(2) }
}",
    );
}

#[test]
fn maxpool2d_k3_s2_p1() {
    check_case(
        "maxpool2d_k3_s2_p1",
        "use std.nn.MaxPool2d
model Case {
    pool = MaxPool2d(3, stride = 2, padding = 1)
    forward(x: f32[B, 3, 7, 5]) { pool(x) }
}",
    );
}

#[test]
fn avgpool2d_k2() {
    check_case(
        "avgpool2d_k2",
        "use std.nn.AvgPool2d
model Case {
    pool = AvgPool2d(2)
    forward(x: f32[B, 3, 7, 5]) { pool(x) }
}",
    );
}

#[test]
fn avgpool2d_k3_s1_p1() {
    check_case(
        "avgpool2d_k3_s1_p1",
        "use std.nn.AvgPool2d
model Case {
    pool = AvgPool2d(3, stride = 1, padding = 1)
    forward(x: f32[B, 3, 7, 5]) { pool(x) }
}",
    );
}

#[test]
fn avg_pool2d_fn_k3_s1_p1() {
    check_case(
        "avgpool2d_k3_s1_p1",
        "model Case {
    forward(x: f32[B, 3, 7, 5]) { avg_pool2d(x, 3, stride = 1, padding = 1) }
}",
    );
}

#[test]
fn global_avg_pool2d() {
    check_case(
        "global_avg_pool2d",
        "model Case {
    forward(x: f32[B, 3, 7, 5]) { global_avg_pool2d(x) }
}",
    );
}

// ---------------------------------------------------------------------------------- reshaping

#[test]
fn flatten_fn() {
    check_case(
        "flatten",
        "model Case {
    forward(x: f32[B, 3, 7, 5]) { flatten(x, 1) }
}",
    );
}

#[test]
fn flatten_layer() {
    check_case(
        "flatten",
        "use std.nn.Flatten
model Case {
    flat = Flatten(start = 1)
    forward(x: f32[B, 3, 7, 5]) { flat(x) }
}",
    );
}

// -------------------------------------------------------------------------------- activations

#[test]
fn relu() {
    check_case(
        "relu",
        "model Case {
    forward(x: f32[B, 7, 5]) { relu(x) }
}",
    );
}

#[test]
fn gelu() {
    check_case(
        "gelu",
        "model Case {
    forward(x: f32[B, 7, 5]) { gelu(x) }
}",
    );
}

#[test]
fn gelu_tanh() {
    check_case(
        "gelu_tanh",
        "model Case {
    forward(x: f32[B, 7, 5]) { gelu(x, approximate = \"tanh\") }
}",
    );
}

#[test]
fn sigmoid() {
    check_case(
        "sigmoid",
        "model Case {
    forward(x: f32[B, 7, 5]) { sigmoid(x) }
}",
    );
}

#[test]
fn tanh() {
    check_case(
        "tanh",
        "model Case {
    forward(x: f32[B, 7, 5]) { tanh(x) }
}",
    );
}

// ---------------------------------------------------------------------------------- softmaxes

#[test]
fn softmax_last() {
    check_case(
        "softmax_last",
        "model Case {
    forward(x: f32[B, 5, 7]) { softmax(x) }
}",
    );
}

#[test]
fn softmax_axis_minus1_explicit() {
    check_case(
        "softmax_last",
        "model Case {
    forward(x: f32[B, 5, 7]) { softmax(x, axis = -1) }
}",
    );
}

#[test]
fn softmax_axis1() {
    check_case(
        "softmax_axis1",
        "model Case {
    forward(x: f32[B, 5, 7]) { softmax(x, axis = 1) }
}",
    );
}

#[test]
fn softmax_overflow() {
    check_case(
        "softmax_overflow",
        "model Case {
    forward(x: f32[B, 7]) { softmax(x) }
}",
    );
}

/// The outputs reach about -100, where one float32 ulp is 7.6e-6: the observed difference is
/// that one ulp (the interpreter rounds `x - max` and then `- log(sum)`, the reference once), so
/// this case sits closest to `TOLERANCE` but needs no more for this fixture.
#[test]
fn log_softmax() {
    check_case(
        "log_softmax",
        "model Case {
    forward(x: f32[B, 5, 7]) { log_softmax(x) }
}",
    );
}

// ------------------------------------------------------------------------------ normalization

#[test]
fn layer_norm_fn() {
    check_case(
        "layer_norm_fn",
        "model Case {
    param weight: f32[7] = ones()
    param bias: f32[7] = zeros()
    forward(x: f32[B, 3, 7]) { layer_norm(x, weight, bias, eps = 1e-5) }
}",
    );
}

#[test]
fn layer_norm_layer() {
    check_case(
        "layer_norm_layer",
        "use std.nn.LayerNorm
model Case {
    norm = LayerNorm(7)
    forward(x: f32[B, 3, 7]) { norm(x) }
}",
    );
}

// ------------------------------------------------------------------------------------ dropout

#[test]
fn dropout_layer() {
    check_case(
        "dropout",
        "use std.nn.Dropout
model Case {
    drop = Dropout(0.5)
    forward(x: f32[B, 7, 5]) { drop(x) }
}",
    );
}

#[test]
fn dropout_fn() {
    check_case(
        "dropout",
        "model Case {
    forward(x: f32[B, 7, 5]) { dropout(x, 0.5) }
}",
    );
}

// ----------------------------------------------------------------------------------- coverage

/// Every fixture the script writes is exercised by a test above (a new case in the script
/// without a test here fails this).
#[test]
fn every_fixture_has_a_test() {
    let source = std::fs::read_to_string(common::root().join("tests/stdlib_fixtures.rs"))
        .expect("this file");
    let mut fixtures: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("tests/fixtures/stdlib exists")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".safetensors").map(str::to_string)
        })
        .collect();
    fixtures.sort();
    assert!(
        fixtures.len() >= 28,
        "expected at least 28 fixtures, found {}",
        fixtures.len()
    );
    let untested: Vec<&String> = fixtures
        .iter()
        .filter(|case| !source.contains(&format!("check_case(\n        \"{case}\"")))
        .collect();
    assert!(untested.is_empty(), "fixtures without a test: {untested:?}");
}
