//! The recurrent, attention and Transformer layers of the stdlib (and Embedding, BatchNorm2d,
//! the position layers, PatchEmbedding and GlobalAvgPool2d), run by the reference interpreter,
//! against independent numpy references in `tests/fixtures/layers/<case>.safetensors`.
//!
//! `scripts/gen_layer_fixtures.py` writes the fixtures (rerun it with
//! `.venv/bin/python scripts/gen_layer_fixtures.py`). Each holds the inputs (`input.<name>`,
//! named after the `forward` parameters below), the params under their model param names and
//! the expected outputs `output.0`, `output.1`, ... (a model that returns a tuple has several),
//! computed in float64 from the float32 inputs and params and cast to float32. The references
//! are written from the PyTorch / textbook definitions, not translated from the `.model` code:
//! the recurrences step through time one at a time, attention loops over batch, head and
//! query with `-inf` for ignored keys.
//!
//! Each test compiles a tiny model that applies one stdlib layer, binds the fixture's params
//! strictly (every declared param present with its declared shape and dtype, nothing extra, as
//! the CLI binds a weights file), runs it and checks every output's shape and values.
//!
//! Tolerance: absolute 1e-5 on every element (a NaN fails). The references are exact to
//! float32 rounding, the sizes are tiny (dot products of at most 20 terms, 5 recurrent steps)
//! and the values are small, so float32 evaluation stays far inside it: the largest difference
//! observed is BatchNorm2d's 9.5e-7 (outputs up to 13, so about one float32 ulp), then the
//! encoder layer's 4.8e-7; the recurrent layers and attention are within 1.2e-7 (each test
//! prints its differences with `--nocapture`).
//!
//! The last tests check that three diagnostics come out with their code at the right span.

#[path = "common/mod.rs"]
mod common;

use modelc_compiler::check::CheckResult;
use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::Tensor;
use modelc_runtime::weights::read_safetensors;
use std::path::PathBuf;

/// The largest absolute difference allowed between the interpreter and the numpy reference.
const TOLERANCE: f32 = 1e-5;

fn fixture_dir() -> PathBuf {
    common::root().join("tests/fixtures/layers")
}

/// A fixture split into its parts.
struct Fixture {
    inputs: Vec<Tensor>,
    params: Vec<(String, Tensor)>,
    outputs: Vec<Tensor>,
}

/// Loads `case`, returning its inputs in the order of `input_names` (the model's `forward`
/// order) and its outputs by index.
fn load_fixture(case: &str, input_names: &[&str]) -> Fixture {
    let path = fixture_dir().join(format!("{case}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{case}: cannot read {} ({e}); run `.venv/bin/python scripts/gen_layer_fixtures.py`",
            path.display()
        )
    });
    let tensors = read_safetensors(&bytes, &path.to_string_lossy())
        .unwrap_or_else(|d| panic!("{case}: the fixture does not parse: {}", d.message));
    let mut inputs = Vec::new();
    let mut params = Vec::new();
    let mut outputs = Vec::new();
    for (name, tensor) in tensors {
        if let Some(index) = name.strip_prefix("output.") {
            let index: usize = index
                .parse()
                .unwrap_or_else(|_| panic!("{case}: bad output name `{name}`"));
            outputs.push((index, tensor));
        } else if let Some(input) = name.strip_prefix("input.") {
            inputs.push((input.to_string(), tensor));
        } else {
            params.push((name, tensor));
        }
    }
    let mut found: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    let mut wanted = input_names.to_vec();
    found.sort_unstable();
    wanted.sort_unstable();
    assert_eq!(found, wanted, "{case}: the fixture's inputs");
    let inputs = input_names
        .iter()
        .map(|want| {
            let position = inputs.iter().position(|(n, _)| n == want).expect("found");
            inputs.swap_remove(position).1
        })
        .collect();
    outputs.sort_by_key(|(index, _)| *index);
    assert!(
        outputs
            .iter()
            .enumerate()
            .all(|(i, (index, _))| i == *index),
        "{case}: outputs are numbered 0, 1, ..."
    );
    Fixture {
        inputs,
        params,
        outputs: outputs.into_iter().map(|(_, t)| t).collect(),
    }
}

/// The largest absolute difference, or infinity if any element is NaN on either side (unlike
/// `Tensor::max_abs_diff`, whose `f32::max` fold would skip a NaN).
fn max_difference(what: &str, actual: &Tensor, expected: &Tensor) -> f32 {
    let actual = actual
        .as_f32()
        .unwrap_or_else(|| panic!("{what}: the output is not f32"));
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

/// Runs `source` (whose last model is the one checked) on the fixture `case`, whose inputs
/// are passed in the order `input_names`, and asserts that every output matches the fixture's;
/// returns the largest absolute difference of each output.
fn check_case(case: &str, input_names: &[&str], source: &str) -> Vec<f32> {
    let fixture = load_fixture(case, input_names);

    let params = common::bind_params_strictly(case, source, fixture.params);

    let outputs = common::run(source, &fixture.inputs, &params);
    assert_eq!(
        outputs.len(),
        fixture.outputs.len(),
        "{case}: number of outputs (left: modelc, right: numpy)"
    );
    let mut differences = Vec::new();
    for (index, (actual, expected)) in outputs.iter().zip(&fixture.outputs).enumerate() {
        let what = format!("{case} output {index}");
        assert_eq!(
            actual.shape, expected.shape,
            "{what}: shape (left: modelc, right: numpy)"
        );
        let difference = max_difference(&what, actual, expected);
        eprintln!("{what}: max |modelc - numpy| = {difference:.3e}");
        assert!(
            difference <= TOLERANCE,
            "{what}: max abs difference {difference:e} > {TOLERANCE:e}\n  modelc: {:?}\n  numpy:  {:?}",
            actual.as_f32().map(|v| &v[..v.len().min(12)]),
            expected.as_f32().map(|v| &v[..v.len().min(12)]),
        );
        differences.push(difference);
    }
    differences
}

// ---------------------------------------------------------------------------------------- RNN

#[test]
fn rnn_tanh() {
    check_case(
        "rnn_tanh",
        &["x"],
        "use std.rnn.RNN
model Case {
    rnn = RNN(4, 6)
    forward(x: f32[B, T, 4]) {
        let (hs, h) = rnn(x)
        (hs, h)
    }
}",
    );
}

#[test]
fn rnn_relu_with_initial_state() {
    check_case(
        "rnn_relu",
        &["x", "h0"],
        "use std.rnn.RNN
model Case {
    rnn = RNN(4, 6, nonlinearity = \"relu\")
    forward(x: f32[B, T, 4], h0: f32[B, 6]) {
        let (hs, h) = rnn(x, h0)
        (hs, h)
    }
}",
    );
}

// --------------------------------------------------------------------------------------- LSTM

#[test]
fn lstm_zero_state() {
    check_case(
        "lstm_zero_state",
        &["x"],
        "use std.rnn.LSTM
model Case {
    lstm = LSTM(4, 6)
    forward(x: f32[B, T, 4]) {
        let (hs, (h, c)) = lstm(x)
        (hs, h, c)
    }
}",
    );
}

#[test]
fn lstm_initial_state() {
    check_case(
        "lstm_initial_state",
        &["x", "h0", "c0"],
        "use std.rnn.LSTM
model Case {
    lstm = LSTM(4, 6)
    forward(x: f32[B, T, 4], h0: f32[B, 6], c0: f32[B, 6]) {
        let (hs, (h, c)) = lstm(x, (h0, c0))
        (hs, h, c)
    }
}",
    );
}

#[test]
fn lstm_bidirectional() {
    check_case(
        "lstm_bidirectional",
        &["x"],
        "use std.rnn.LSTM
model Case {
    lstm = LSTM(4, 6, bidirectional = true)
    forward(x: f32[B, T, 4]) {
        let (hs, (h_n, c_n)) = lstm(x)
        (hs, h_n, c_n)
    }
}",
    );
}

#[test]
fn lstm_bidirectional_initial_state() {
    check_case(
        "lstm_bidirectional_initial_state",
        &["x", "h0", "c0"],
        "use std.rnn.LSTM
model Case {
    lstm = LSTM(4, 6, bidirectional = true)
    forward(x: f32[B, T, 4], h0: f32[2, B, 6], c0: f32[2, B, 6]) {
        let (hs, (h_n, c_n)) = lstm(x, (h0, c0))
        (hs, h_n, c_n)
    }
}",
    );
}

// ---------------------------------------------------------------------------------------- GRU

#[test]
fn gru_initial_state() {
    check_case(
        "gru_initial_state",
        &["x", "h0"],
        "use std.rnn.GRU
model Case {
    gru = GRU(4, 7)
    forward(x: f32[B, T, 4], h0: f32[B, 7]) {
        let (hs, h) = gru(x, h0)
        (hs, h)
    }
}",
    );
}

#[test]
fn gru_bidirectional() {
    check_case(
        "gru_bidirectional",
        &["x"],
        "use std.rnn.GRU
model Case {
    gru = GRU(4, 7, bidirectional = true)
    forward(x: f32[B, T, 4]) {
        let (hs, h_n) = gru(x)
        (hs, h_n)
    }
}",
    );
}

#[test]
fn gru_bidirectional_initial_state() {
    check_case(
        "gru_bidirectional_initial_state",
        &["x", "h0"],
        "use std.rnn.GRU
model Case {
    gru = GRU(4, 7, bidirectional = true)
    forward(x: f32[B, T, 4], h0: f32[2, B, 7]) {
        let (hs, h_n) = gru(x, h0)
        (hs, h_n)
    }
}",
    );
}

// ------------------------------------------------------------------------- MultiHeadAttention

#[test]
fn mha_plain() {
    check_case(
        "mha_plain",
        &["x"],
        "use std.transformer.MultiHeadAttention
model Case {
    attn = MultiHeadAttention(12, 3)
    forward(x: f32[B, T, 12]) { attn(x) }
}",
    );
}

#[test]
fn mha_causal() {
    check_case(
        "mha_causal",
        &["x"],
        "use std.transformer.MultiHeadAttention
model Case {
    attn = MultiHeadAttention(12, 3, causal = true)
    forward(x: f32[B, T, 12]) { attn(x) }
}",
    );
}

#[test]
fn mha_key_padding_mask() {
    check_case(
        "mha_mask",
        &["x", "mask"],
        "use std.transformer.MultiHeadAttention
model Case {
    attn = MultiHeadAttention(12, 3)
    forward(x: f32[B, T, 12], mask: bool[B, T]) { attn(x, mask) }
}",
    );
}

#[test]
fn mha_causal_with_key_padding_mask() {
    check_case(
        "mha_causal_mask",
        &["x", "mask"],
        "use std.transformer.MultiHeadAttention
model Case {
    attn = MultiHeadAttention(12, 3, causal = true)
    forward(x: f32[B, T, 12], mask: bool[B, T]) { attn(x, mask) }
}",
    );
}

// ------------------------------------------------------------------------ Transformer blocks

#[test]
fn transformer_encoder_layer_with_mask() {
    check_case(
        "encoder_layer_mask",
        &["x", "mask"],
        "use std.transformer.TransformerEncoderLayer
model Case {
    encoder = TransformerEncoderLayer(12, 3, 20)
    forward(x: f32[B, T, 12], mask: bool[B, T]) { encoder(x, mask) }
}",
    );
}

#[test]
fn transformer_decoder_block() {
    check_case(
        "decoder_block",
        &["x"],
        "use std.transformer.TransformerDecoderBlock
model Case {
    block = TransformerDecoderBlock(12, 3, 20)
    forward(x: f32[B, T, 12]) { block(x) }
}",
    );
}

// ------------------------------------------------------------------------------ other layers

#[test]
fn embedding() {
    check_case(
        "embedding",
        &["ids"],
        "use std.nn.Embedding
model Case {
    emb = Embedding(9, 5)
    forward(ids: i64[B, T]) { emb(ids) }
}",
    );
}

#[test]
fn batchnorm2d_running_stats() {
    check_case(
        "batchnorm2d",
        &["x"],
        "use std.nn.BatchNorm2d
model Case {
    bn = BatchNorm2d(3)
    forward(x: f32[B, 3, H, W]) { bn(x) }
}",
    );
}

#[test]
fn learned_positions_shorter_than_table() {
    check_case(
        "learned_positions",
        &["x"],
        "use std.transformer.LearnedPositions
model Case {
    pos = LearnedPositions(7, 6)
    forward(x: f32[B, T, 6]) { pos(x) }
}",
    );
}

#[test]
fn sinusoidal_positions() {
    check_case(
        "sinusoidal_positions",
        &["x"],
        "use std.transformer.SinusoidalPositions
model Case {
    pos = SinusoidalPositions(10)
    forward(x: f32[B, T, 10]) { pos(x) }
}",
    );
}

#[test]
fn patch_embedding() {
    check_case(
        "patch_embedding",
        &["x"],
        "use std.transformer.PatchEmbedding
model Case {
    patches = PatchEmbedding(3, 5, 2)
    forward(x: f32[B, 3, H, W]) { patches(x) }
}",
    );
}

#[test]
fn global_avg_pool2d() {
    check_case(
        "global_avg_pool2d",
        &["x"],
        "use std.nn.GlobalAvgPool2d
model Case {
    pool = GlobalAvgPool2d()
    forward(x: f32[B, C, H, W]) { pool(x) }
}",
    );
}

// ------------------------------------------------------------------------------- diagnostics

/// Asserts that `result` reports exactly one diagnostic, with `code`, and returns it with the
/// source text under each of its labels, primary first.
fn only_diagnostic<'r>(result: &'r CheckResult, code: &str) -> (&'r Diagnostic, Vec<&'r str>) {
    let codes: Vec<&str> = result.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, [code], "{}", common::rendered(result));
    let diagnostic = &result.diagnostics[0];
    let primary = diagnostic.primary_span().expect("a primary span");
    assert_eq!(Some(primary), diagnostic.labels.first().map(|l| l.span));
    let snippets = diagnostic
        .labels
        .iter()
        .map(|label| {
            result
                .program
                .sources
                .snippet(label.span)
                .expect("every label's span is inside a source file")
        })
        .collect();
    (diagnostic, snippets)
}

/// A scan whose carried state changes shape in the body: the primary label is the state's
/// initial value, the second one the assignment that changes it.
#[test]
fn scan_state_that_changes_shape_is_reported() {
    let result = common::check(
        "model M {
    param grow: f32[6, 7] = normal()
    forward(xs: f32[B, T, 6]) {
        scan x in xs along 1 with (h = zeros(B, 6)) {
            h = (h + x) @ grow
            yield h
        }
    }
}",
    );
    let (diagnostic, snippets) = only_diagnostic(&result, "scan-state-shape");
    assert_eq!(snippets, ["zeros(B, 6)", "h = (h + x) @ grow"]);
    assert!(
        diagnostic.message.contains("f32[B, 6]") && diagnostic.message.contains("f32[B, 7]"),
        "{}",
        diagnostic.message
    );
}

/// A MultiHeadAttention whose head count does not divide the width fails the layer's
/// `require`: the message names both numbers and the primary label is the user's call (the
/// `require` inside the stdlib comes second).
#[test]
fn attention_heads_that_do_not_divide_the_width_are_reported_at_the_call() {
    let result = common::check(
        "use std.transformer.MultiHeadAttention
model M {
    attn = MultiHeadAttention(10, 4)
    forward(x: f32[B, T, 10]) { attn(x) }
}",
    );
    let (diagnostic, snippets) = only_diagnostic(&result, "invalid-argument");
    assert_eq!(snippets[0], "attn(x)");
    assert!(
        snippets[1..].iter().any(|s| s.starts_with("require(")),
        "{snippets:?}"
    );
    assert!(
        diagnostic.message.contains("10") && diagnostic.message.contains('4'),
        "{}",
        diagnostic.message
    );
    let primary = diagnostic.primary_span().expect("a primary span");
    assert!(
        result
            .program
            .sources
            .location(primary)
            .starts_with("test.model:"),
        "the primary label is in the user's file"
    );
}

/// An Embedding fed f32 instead of i64 ids: `dtype-mismatch` at the argument.
#[test]
fn embedding_fed_f32_is_a_dtype_mismatch() {
    let result = common::check(
        "use std.nn.Embedding
model M {
    emb = Embedding(9, 5)
    forward(x: f32[B, T]) { emb(x) }
}",
    );
    let (diagnostic, snippets) = only_diagnostic(&result, "dtype-mismatch");
    assert_eq!(snippets, ["x"]);
    assert!(
        diagnostic.message.contains("i64") && diagnostic.message.contains("f32"),
        "{}",
        diagnostic.message
    );
}
