//! Gradient checks for `modelc_compiler::autodiff::differentiate`.
//!
//! Each case compiles a small `.model` (through the checker, so the stdlib functions and
//! layers are differentiated through the rules of the primitives they lower to), appends a
//! random projection `loss = sum(f(x) * r)` with `r` a fresh input, differentiates `loss` with
//! respect to every f32 input and param, verifies the extended graph, evaluates it in the
//! interpreter and compares each gradient element with a central finite difference of the
//! loss, `(loss(x + h) - loss(x - h)) / 2h`.
//!
//! **Step and tolerance.** The interpreter stores f32 (it accumulates in f64 but rounds each
//! node's result), so the loss carries a relative rounding error of about 1e-7 per node; with
//! `h = 1e-2` that is an absolute error of about 1e-5 in the difference quotient, and the
//! truncation error `h^2 f''' / 6` is about 2e-5 for the smooth functions used here. An element
//! passes when `|analytic - numeric| <= 1e-2 + 1e-2 * |numeric|` (larger models use the looser
//! [`LOOSE`] tolerance, 3e-2 + 3e-2 * |numeric|, since their losses are sums of many more
//! rounded terms). Inputs are kept at least 5h away from kinks: `abs`, `relu`/`maximum`,
//! `minimum`, `max`/`min` reductions and max pooling get values whose competitors differ by at
//! least 0.05, `floor` and int casts get values at least 0.1 from integers.
//!
//! Shapes are random (proptest), with size-1 axes and broadcast axes, and a symbolic batch
//! `B` bound to a random size, so the gradient graphs are checked to stay valid for any
//! binding; the verifier runs on every extended graph.

use modelc_compiler::autodiff::differentiate;
use modelc_compiler::check::check_file_here;
use modelc_compiler::check::modules::MemoryLoader;
use modelc_compiler::check::CheckOptions;
use modelc_compiler::interp::{evaluate, Tensor};
use modelc_compiler::ir::verify::verify;
use modelc_compiler::ir::{DType, Graph, NodeId, Op, ReduceOp, TensorType};
use modelc_compiler::train::modes;
use proptest::prelude::*;
use std::collections::HashMap;

const STEP: f32 = 1e-2;

#[derive(Clone, Copy)]
struct Tolerance {
    absolute: f32,
    relative: f32,
}

const TIGHT: Tolerance = Tolerance {
    absolute: 1e-2,
    relative: 1e-2,
};
const LOOSE: Tolerance = Tolerance {
    absolute: 3e-2,
    relative: 3e-2,
};

/// xorshift64*: deterministic per proptest seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [low, high).
    fn uniform(&mut self, low: f32, high: f32) -> f32 {
        let unit = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        low + (high - low) * unit
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How the values of an f32 input or param are drawn.
#[derive(Clone, Copy, Debug)]
enum Dist {
    /// Uniform in [low, high).
    Uniform(f32, f32),
    /// Magnitude in [0.2, 1), random sign: away from 0 (abs, relu, division).
    AwayFromZero,
    /// Distinct values at least 0.05 apart in random order (max/min reductions, max pooling).
    Distinct,
    /// Alternating grids {-0.9, -0.5, ...} + noise: two inputs drawn with `Grid(0)` and
    /// `Grid(1)` differ by at least 0.16 everywhere (maximum, minimum).
    Grid(u8),
    /// An integer plus a fraction in [0.1, 0.9) (floor).
    OffInteger,
    /// i64 values below the bound.
    Index(i64),
}

fn draw(dist: Dist, count: usize, rng: &mut Rng) -> Vec<f32> {
    match dist {
        Dist::Uniform(low, high) => (0..count).map(|_| rng.uniform(low, high)).collect(),
        Dist::AwayFromZero => (0..count)
            .map(|_| {
                let magnitude = rng.uniform(0.2, 1.0);
                if rng.below(2) == 0 {
                    magnitude
                } else {
                    -magnitude
                }
            })
            .collect(),
        Dist::Distinct => {
            let mut order: Vec<usize> = (0..count).collect();
            for i in (1..count).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let scale = 2.0 / count.max(1) as f32;
            order
                .into_iter()
                .map(|k| -1.0 + scale.max(0.05) * k as f32 + rng.uniform(0.0, 0.01))
                .collect()
        }
        Dist::Grid(which) => (0..count)
            .map(|_| {
                let k = rng.below(5) as f32;
                let base = if which == 0 { -0.9 } else { -0.7 };
                base + 0.4 * k + rng.uniform(-0.02, 0.02)
            })
            .collect(),
        Dist::OffInteger => (0..count)
            .map(|_| rng.below(5) as f32 - 2.0 + rng.uniform(0.1, 0.9))
            .collect(),
        Dist::Index(_) => unreachable!("indices are drawn as i64"),
    }
}

fn compile(source: &str) -> Graph {
    let loader = MemoryLoader(HashMap::new());
    let result = check_file_here("main.model", source, &loader, CheckOptions::default());
    assert!(
        result.diagnostics.is_empty(),
        "{source}\n{:#?}",
        result
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect::<Vec<_>>()
    );
    assert_eq!(result.models.len(), 1, "{source}");
    result.models.into_iter().next().unwrap().graph
}

fn concrete(ty: &TensorType, bindings: &HashMap<String, i64>) -> Vec<usize> {
    ty.shape
        .iter()
        .map(|dim| dim.eval(bindings).unwrap().unwrap() as usize)
        .collect()
}

/// A model to check: source, symbol bindings and a distribution per input or param name (the
/// default is uniform in [-1, 1)).
struct Case<'a> {
    source: String,
    bindings: &'a [(&'a str, i64)],
    dists: &'a [(&'a str, Dist)],
    tolerance: Tolerance,
    /// At most this many elements of each tensor are checked by finite differences.
    samples: usize,
    /// Applied to the model's graph before the loss is appended (training-mode rewrites).
    transform: fn(&mut Graph),
}

impl<'a> Case<'a> {
    fn new(source: String) -> Case<'a> {
        Case {
            source,
            bindings: &[],
            dists: &[],
            tolerance: TIGHT,
            samples: 24,
            transform: |_| {},
        }
    }
}

/// The loss graph: the model's first output projected onto a new input `r` and summed.
fn with_loss(mut graph: Graph) -> (Graph, NodeId) {
    let output = graph.outputs[0];
    let ty = graph.node(output).ty.clone();
    assert_eq!(ty.dtype, DType::F32);
    let span = graph.node(output).span;
    let index = graph.inputs.len();
    let r = graph.add(
        Op::Input {
            index,
            name: "projection".into(),
        },
        ty.clone(),
        span,
        &[],
    );
    graph.inputs.push(r);
    let product = graph.add(
        Op::Binary(modelc_compiler::ir::BinaryOp::Mul),
        ty.clone(),
        span,
        &[output, r],
    );
    let loss = graph.add(
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: (0..ty.rank()).collect(),
            keep_dims: false,
        },
        TensorType::scalar(DType::F32),
        span,
        &[product],
    );
    graph.outputs = vec![loss];
    (graph, loss)
}

fn check_case(case: &Case, seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut graph = compile(&case.source);
    (case.transform)(&mut graph);
    let bindings: HashMap<String, i64> = case
        .bindings
        .iter()
        .map(|(name, value)| (name.to_string(), *value))
        .collect();
    let dist_of = |name: &str| {
        case.dists
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
            .unwrap_or(Dist::Uniform(-1.0, 1.0))
    };
    let make = |ty: &TensorType, name: &str, rng: &mut Rng| -> Tensor {
        let shape = concrete(ty, &bindings);
        let count: usize = shape.iter().product();
        match (ty.dtype, dist_of(name)) {
            (DType::I64, Dist::Index(bound)) => Tensor::from_i64(
                shape,
                (0..count).map(|_| rng.below(bound as u64) as i64).collect(),
            )
            .unwrap(),
            (DType::F32, dist) => Tensor::from_f32(shape, draw(dist, count, rng)).unwrap(),
            // Counters such as `num_batches_tracked`.
            (DType::I64, _) => Tensor::from_i64(shape, vec![0; count]).unwrap(),
            (dtype, dist) => panic!("no values for {name}: {dtype} with {dist:?}"),
        }
    };
    let mut inputs: Vec<Tensor> = graph
        .inputs
        .iter()
        .map(|&id| {
            let node = graph.node(id);
            let Op::Input { name, .. } = &node.op else {
                unreachable!()
            };
            make(&node.ty, name, &mut rng)
        })
        .collect();
    let params: HashMap<String, Tensor> = graph
        .params()
        .into_iter()
        .map(|(id, name)| {
            (
                name.to_string(),
                make(&graph.node(id).ty.clone(), name, &mut rng),
            )
        })
        .collect();

    // The projection, shaped like the output.
    let forward = evaluate(&graph, &inputs, &params).map_err(|e| e.to_string())?;
    let out_shape = forward[0].shape.clone();
    let count: usize = out_shape.iter().product();
    inputs.push(
        Tensor::from_f32(out_shape, draw(Dist::Uniform(-1.0, 1.0), count, &mut rng)).unwrap(),
    );
    let (loss_graph, loss) = with_loss(graph);

    // What to differentiate with respect to: f32 inputs (not the projection) and f32 params.
    let mut wrt: Vec<(NodeId, Option<usize>, Option<String>)> = Vec::new();
    for (position, &id) in loss_graph.inputs.iter().enumerate() {
        if position + 1 < loss_graph.inputs.len() && loss_graph.node(id).ty.dtype == DType::F32 {
            wrt.push((id, Some(position), None));
        }
    }
    for (id, name) in loss_graph.params() {
        if loss_graph.node(id).ty.dtype == DType::F32 {
            wrt.push((id, None, Some(name.to_string())));
        }
    }
    let mut gradient_graph = loss_graph.clone();
    let ids: Vec<NodeId> = wrt.iter().map(|(id, _, _)| *id).collect();
    let gradients = differentiate(&mut gradient_graph, loss, &ids).map_err(|diagnostics| {
        diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    for (&gradient, &id) in gradients.iter().zip(&ids) {
        assert_eq!(gradient_graph.node(gradient).ty, loss_graph.node(id).ty);
    }
    gradient_graph.outputs = gradients;
    verify(&gradient_graph).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let analytic = evaluate(&gradient_graph, &inputs, &params).map_err(|e| e.to_string())?;

    let loss_at = |inputs: &[Tensor], params: &HashMap<String, Tensor>| -> Result<f64, String> {
        let out = evaluate(&loss_graph, inputs, params).map_err(|e| e.to_string())?;
        Ok(f64::from(out[0].as_f32().unwrap()[0]))
    };
    for ((_, position, name), gradient) in wrt.iter().zip(&analytic) {
        let values = gradient.as_f32().unwrap().to_vec();
        let total = values.len();
        let mut elements: Vec<usize> = (0..total).collect();
        if total > case.samples {
            for i in 0..case.samples {
                elements.swap(i, i + rng.below((total - i) as u64) as usize);
            }
            elements.truncate(case.samples);
        }
        for element in elements {
            let shifted = |delta: f32| -> Result<f64, String> {
                let mut inputs = inputs.clone();
                let mut params = params.clone();
                let tensor = match (position, name) {
                    (Some(p), _) => &mut inputs[*p],
                    (None, Some(n)) => params.get_mut(n).unwrap(),
                    _ => unreachable!(),
                };
                let modelc_compiler::interp::TensorData::F32(data) = &mut tensor.data else {
                    unreachable!()
                };
                data[element] += delta;
                loss_at(&inputs, &params)
            };
            let numeric = ((shifted(STEP)? - shifted(-STEP)?) / (2.0 * f64::from(STEP))) as f32;
            let exact = values[element];
            let allowed = case.tolerance.absolute + case.tolerance.relative * numeric.abs();
            if (exact - numeric).abs() > allowed || exact.is_nan() || numeric.is_nan() {
                let what = name
                    .clone()
                    .unwrap_or_else(|| format!("input {}", position.unwrap()));
                return Err(format!(
                    "{what}[{element}]: autodiff {exact}, finite difference {numeric}\n{}",
                    case.source
                ));
            }
        }
    }
    Ok(())
}

fn run(case: Case, seed: u64) -> Result<(), TestCaseError> {
    check_case(&case, seed).map_err(TestCaseError::fail)
}

fn shape_text(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A shape of rank 1 to 3 with sizes 1 to 3, and two operand shapes that broadcast to it: each
/// axis may be 1 in either, and the second may drop leading axes.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (
        prop::collection::vec((1usize..4, any::<bool>(), any::<bool>()), 1..4),
        0usize..3,
    )
        .prop_map(|(axes, drop)| {
            let a: Vec<usize> = axes
                .iter()
                .map(|&(d, one, _)| if one { 1 } else { d })
                .collect();
            let b: Vec<usize> = axes
                .iter()
                .map(|&(d, one_a, one_b)| if one_b && !one_a { 1 } else { d })
                .collect();
            let drop = drop.min(b.len() - 1);
            (a, b[drop..].to_vec())
        })
}

const UNARY: &[(&str, Dist)] = &[
    ("-x", Dist::Uniform(-1.0, 1.0)),
    ("abs(x)", Dist::AwayFromZero),
    ("exp(x)", Dist::Uniform(-1.0, 1.0)),
    ("log(x)", Dist::Uniform(0.5, 2.0)),
    ("sqrt(x)", Dist::Uniform(0.5, 2.0)),
    ("rsqrt(x)", Dist::Uniform(0.5, 2.0)),
    ("tanh(x)", Dist::Uniform(-1.5, 1.5)),
    ("sigmoid(x)", Dist::Uniform(-2.0, 2.0)),
    ("erf(x)", Dist::Uniform(-1.5, 1.5)),
    ("sin(x)", Dist::Uniform(-2.0, 2.0)),
    ("cos(x)", Dist::Uniform(-2.0, 2.0)),
    ("floor(x) * x", Dist::OffInteger),
    ("relu(x)", Dist::AwayFromZero),
    ("gelu(x)", Dist::Uniform(-2.0, 2.0)),
    ("gelu(x, approximate = \"tanh\")", Dist::Uniform(-2.0, 2.0)),
    ("x * cast(cast(x, i64), f32)", Dist::OffInteger),
    ("cast(x, f32) * 2.0", Dist::Uniform(-1.0, 1.0)),
    ("dropout(x, 0.3)", Dist::Uniform(-1.0, 1.0)),
];

const BINARY: &[(&str, Dist, Dist)] = &[
    ("a + b", Dist::Uniform(-1.0, 1.0), Dist::Uniform(-1.0, 1.0)),
    ("a - b", Dist::Uniform(-1.0, 1.0), Dist::Uniform(-1.0, 1.0)),
    ("a * b", Dist::Uniform(-1.0, 1.0), Dist::Uniform(-1.0, 1.0)),
    ("a / b", Dist::Uniform(-1.0, 1.0), Dist::Uniform(0.5, 1.5)),
    ("a ** b", Dist::Uniform(0.5, 2.0), Dist::Uniform(-1.0, 2.0)),
    ("a % b", Dist::AwayFromZero, Dist::Uniform(1.0, 1.5)),
    ("maximum(a, b)", Dist::Grid(0), Dist::Grid(1)),
    ("minimum(a, b)", Dist::Grid(0), Dist::Grid(1)),
    ("where(a > b, a * b, a - b)", Dist::Grid(0), Dist::Grid(1)),
    (
        "where(b > 0.0, a, 2.0 * b)",
        Dist::Uniform(-1.0, 1.0),
        Dist::AwayFromZero,
    ),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn unary_functions(batch in 1i64..4, width in 1usize..4, seed in any::<u64>()) {
        for &(expression, dist) in UNARY {
            let source = format!("model M {{\n    forward(x: f32[B, {width}]) {{ {expression} }}\n}}\n");
            let dists = [("x", dist)];
            let bindings = [("B", batch)];
            run(Case { bindings: &bindings, dists: &dists, ..Case::new(source) }, seed)?;
        }
    }

    #[test]
    fn binary_ops_broadcast((a, b) in broadcast_pair(), seed in any::<u64>()) {
        for &(expression, dist_a, dist_b) in BINARY {
            let source = format!(
                "model M {{\n    forward(a: f32[{}], b: f32[{}]) {{ {expression} }}\n}}\n",
                shape_text(&a), shape_text(&b)
            );
            let dists = [("a", dist_a), ("b", dist_b)];
            run(Case { dists: &dists, ..Case::new(source) }, seed)?;
        }
    }

    #[test]
    fn reductions(
        batch in 1i64..4,
        dims in prop::collection::vec(1usize..4, 1..3),
        axis_mask in 0u8..16,
        keep in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Axis 0 is the symbolic batch.
        let rank = dims.len() + 1;
        let mut axes: Vec<usize> = (0..rank).filter(|a| axis_mask & (1 << a) != 0).collect();
        if axes.is_empty() {
            axes.push(rank - 1);
        }
        let axes_text = format!("[{}]", axes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "));
        for (function, dist) in [("sum", Dist::Uniform(-1.0, 1.0)), ("mean", Dist::Uniform(-1.0, 1.0)), ("max", Dist::Distinct), ("min", Dist::Distinct)] {
            let source = format!(
                "model M {{\n    forward(x: f32[B, {}]) {{ {function}(x, axis = {axes_text}, keepdims = {keep}) * 1.5 }}\n}}\n",
                shape_text(&dims)
            );
            let dists = [("x", dist)];
            let bindings = [("B", batch)];
            run(Case { bindings: &bindings, dists: &dists, ..Case::new(source) }, seed)?;
        }
    }

    #[test]
    fn movement(batch in 1i64..4, n in 1usize..5, m in 2usize..5, seed in any::<u64>()) {
        let expressions = [
            format!("reshape(x, B, {n} * {m})"),
            "permute(x, 2, 0, 1)".to_string(),
            "x.T * 1.0".to_string(),
            format!("expand(unsqueeze(x, 1), B, 3, {n}, {m})"),
            "x[:, :, 1:]".to_string(),
            "x[:, :, ::2]".to_string(),
            "x[:, :, ::-1] * x".to_string(),
            "x[:, 0]".to_string(),
            "x[..., -1]".to_string(),
            "concat([x, x * x, x[:, :, :1]], axis = -1)".to_string(),
            "concat([x, 2.0 * x], axis = 0)".to_string(),
            "split(x, [1, m - 1], axis = -1)[1] * 3.0".replace("m - 1", &(m - 1).to_string()),
            "squeeze(unsqueeze(x, 0), 0) + flatten(x, 1).reshape(B, n, m)".replace("n, m", &format!("{n}, {m}")),
        ];
        for expression in expressions {
            let source = format!("model M {{\n    forward(x: f32[B, {n}, {m}]) {{ {expression} }}\n}}\n");
            let bindings = [("B", batch)];
            run(Case { bindings: &bindings, ..Case::new(source) }, seed)?;
        }
    }

    #[test]
    fn matmul_batched_and_broadcast(
        batch in 1i64..3, m in 1usize..4, k in 1usize..4, n in 1usize..4, extra in 1usize..3, seed in any::<u64>(),
    ) {
        let cases = [
            (format!("a: f32[B, {m}, {k}], w: f32[{k}, {n}]"), "a @ w"),
            (format!("a: f32[{m}, {k}], w: f32[B, {k}, {n}]"), "a @ w"),
            (format!("a: f32[{extra}, 1, {m}, {k}], w: f32[B, {k}, {n}]"), "a @ w"),
            (format!("a: f32[B, {m}, {k}], w: f32[B, {n}, {k}]"), "matmul(a, w.T)"),
        ];
        for (signature, expression) in cases {
            let source = format!("model M {{\n    forward({signature}) {{ {expression} }}\n}}\n");
            let bindings = [("B", batch)];
            run(Case { bindings: &bindings, ..Case::new(source) }, seed)?;
        }
    }

    #[test]
    fn conv2d_input_weight_and_bias(
        batch in 1i64..3,
        group_channels in 1usize..3,
        groups in 1usize..3,
        per_group_out in 1usize..3,
        kernel in 1usize..4,
        stride in 1usize..3,
        padding in 0usize..2,
        dilation in 1usize..3,
        size in 5usize..8,
        bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let channels = group_channels * groups;
        let out = per_group_out * groups;
        let bias_param = if bias { format!("    param b: f32[{out}] = normal()\n") } else { String::new() };
        let bias_argument = if bias { "b" } else { "none" };
        let source = format!(
            "model M {{\n    param w: f32[{out}, {group_channels}, {kernel}, {kernel}] = normal()\n{bias_param}    \
             forward(x: f32[B, {channels}, {size}, {size}]) {{ conv2d(x, w, {bias_argument}, stride = {stride}, \
             padding = {padding}, dilation = {dilation}, groups = {groups}) }}\n}}\n"
        );
        let bindings = [("B", batch)];
        run(Case { bindings: &bindings, ..Case::new(source) }, seed)?;
    }

    #[test]
    fn depthwise_conv2d(batch in 1i64..3, channels in 1usize..4, seed in any::<u64>()) {
        let source = format!(
            "model M {{\n    param w: f32[{channels}, 1, 3, 3] = normal()\n    \
             forward(x: f32[B, {channels}, 5, 5]) {{ conv2d(x, w, padding = 1, groups = {channels}) }}\n}}\n"
        );
        let bindings = [("B", batch)];
        run(Case { bindings: &bindings, ..Case::new(source) }, seed)?;
    }

    #[test]
    fn pooling(
        batch in 1i64..3, channels in 1usize..3, kernel in 1usize..4, stride in 1usize..3,
        padding in 0usize..2, size in 4usize..7, seed in any::<u64>(),
    ) {
        let padding = padding.min(kernel / 2);
        for (kind, dist) in [("max", Dist::Distinct), ("avg", Dist::Uniform(-1.0, 1.0))] {
            let source = format!(
                "model M {{\n    forward(x: f32[B, {channels}, {size}, {size}]) {{ \
                 pool2d(x, \"{kind}\", kernel = {kernel}, stride = {stride}, padding = {padding}) }}\n}}\n"
            );
            let dists = [("x", dist)];
            let bindings = [("B", batch)];
            run(Case { bindings: &bindings, dists: &dists, ..Case::new(source) }, seed)?;
        }
    }

    #[test]
    fn gather_scatters_back(batch in 1i64..3, count in 1usize..5, dim in 1usize..4, length in 1usize..5, seed in any::<u64>()) {
        // Few rows and many ids: repeated ids must accumulate.
        let source = format!(
            "model M {{\n    param table: f32[{count}, {dim}] = normal()\n    \
             forward(ids: i64[B, {length}], x: f32[{dim}, {count}]) {{ table[ids] * 2.0 + take(x, ids, axis = 1).permute(1, 2, 0) }}\n}}\n"
        );
        let dists = [("ids", Dist::Index(count as i64))];
        let bindings = [("B", batch)];
        run(Case { bindings: &bindings, dists: &dists, ..Case::new(source) }, seed)?;
    }

    #[test]
    fn scans_forward_and_reverse(batch in 1i64..3, length in 1usize..4, width in 1usize..4, reverse in any::<bool>(), seed in any::<u64>()) {
        let reverse = if reverse { "reverse " } else { "" };
        // A captured param, a carried state, a yielded output and the final state.
        let stacked = format!(
            "model M {{\n    param w: f32[{width}, {width}] = normal()\n    \
             forward(xs: f32[B, {length}, {width}], h0: f32[B, {width}]) {{\n        \
             scan x in xs along 1 {reverse}with (h = h0) {{\n            h = tanh(x + h @ w)\n            yield h * x\n        }}\n    }}\n}}\n"
        );
        let final_state = format!(
            "model M {{\n    param w: f32[{width}] = normal()\n    \
             forward(xs: f32[B, {length}, {width}]) {{\n        \
             let (h, s) = scan x in xs along 1 {reverse}with (h = zeros(B, {width}), s = zeros(B)) {{\n            h = sigmoid(x * w + h)\n            s = s + sum(h * x, axis = -1)\n        }}\n        s * 2.0 + sum(h * h, axis = -1)\n    }}\n}}\n"
        );
        let bindings = [("B", batch)];
        run(Case { bindings: &bindings, ..Case::new(stacked) }, seed)?;
        run(Case { bindings: &bindings, ..Case::new(final_state) }, seed)?;
    }
}

#[test]
fn softmax_log_softmax_layer_norm_batch_norm() {
    let source = "use std.nn.{LayerNorm, BatchNorm2d}\n\
        model M {\n    norm = LayerNorm(4)\n    bn = BatchNorm2d(3)\n    \
        forward(x: f32[B, 3, 4], y: f32[B, 3, 2, 2]) {\n        \
        softmax(x, axis = -1) * 3.0 + log_softmax(x, axis = 1) + norm(x) + layer_norm(x, x[0, 0], x[1, 1]) + \
        sum(bn(y), axis = [2, 3]).reshape(B, 3, 1)\n    }\n}\n";
    let dists = [("bn.running_var", Dist::Uniform(0.5, 1.5))];
    check_case(
        &Case {
            bindings: &[("B", 2)],
            dists: &dists,
            ..Case::new(source.to_string())
        },
        7,
    )
    .unwrap();
}

/// Training-mode dropout (the step graph's rewrite, with a seed input): the gradient flows
/// through the fixed mask, scaled by `1 / (1 - rate)`, and is zero where an element is dropped.
#[test]
fn training_mode_dropout() {
    let source = "use std.nn.{Linear}\n\
        model M {\n    fc = Linear(6, 5)\n    \
        forward(x: f32[B, 6]) { dropout(tanh(fc(dropout(x, 0.5))), 0.3) }\n}\n";
    let with_seed = |graph: &mut Graph| {
        let index = graph.inputs.len();
        let seed = graph.add(
            Op::Input {
                index,
                name: "seed".into(),
            },
            TensorType::scalar(DType::I64),
            modelc_compiler::source::Span::DUMMY,
            &[],
        );
        graph.inputs.push(seed);
        assert_eq!(modes::activate_dropout(graph, seed), 2);
    };
    let dists = [("seed", Dist::Index(1 << 40))];
    for seed in 0..3 {
        check_case(
            &Case {
                bindings: &[("B", 4)],
                dists: &dists,
                transform: with_seed,
                ..Case::new(source.to_string())
            },
            seed,
        )
        .unwrap();
    }
}

/// Training-mode batch norm (batch statistics, the step graph's rewrite) over NCHW and [B, C]
/// inputs: the gradient flows through the batch mean and variance.
#[test]
fn training_mode_batch_norm() {
    let source = "use std.nn.{BatchNorm1d, BatchNorm2d}\n\
        model M {\n    bn = BatchNorm2d(3)\n    bn1 = BatchNorm1d(3)\n    \
        forward(x: f32[B, 3, 2, 2], z: f32[B, 3]) {\n        \
        tanh(bn(x * 2.0)) + bn1(z).reshape(B, 3, 1, 1)\n    }\n}\n";
    let training = |graph: &mut Graph| {
        let updates = modes::use_batch_statistics(graph);
        // Two running means, two running variances, two counters.
        assert_eq!(updates.len(), 6);
    };
    let dists = [
        ("bn.weight", Dist::Uniform(0.5, 1.5)),
        ("bn1.weight", Dist::Uniform(0.5, 1.5)),
    ];
    for seed in 0..2 {
        check_case(
            &Case {
                bindings: &[("B", 4)],
                dists: &dists,
                transform: training,
                ..Case::new(source.to_string())
            },
            seed,
        )
        .unwrap();
    }
}

#[test]
fn mlp_with_softmax_cross_entropy() {
    let source = "use std.nn.{Linear}\n\
        model Mlp {\n    fc1 = Linear(5, 8)\n    fc2 = Linear(8, 3)\n    \
        forward(x: f32[B, 5], onehot: f32[B, 3]) {\n        \
        let logits = fc2(relu(fc1(x)))\n        \
        mean(sum(onehot * log_softmax(logits), axis = -1)) * -1.0\n    }\n}\n";
    for seed in 0..2 {
        check_case(
            &Case {
                bindings: &[("B", 4)],
                tolerance: LOOSE,
                ..Case::new(source.to_string())
            },
            seed,
        )
        .unwrap();
    }
}

#[test]
fn small_cnn() {
    let source = "use std.nn.{Conv2d, Linear, MaxPool2d, AvgPool2d}\n\
        model Cnn {\n    conv = Conv2d(2, 3, 3, padding = 1)\n    pool = MaxPool2d(2)\n    \
        conv2 = Conv2d(3, 3, 3, padding = 1, groups = 3)\n    avg = AvgPool2d(2)\n    fc = Linear(3, 2)\n    \
        forward(x: f32[B, 2, 4, 4]) {\n        \
        let h = avg(tanh(conv2(pool(tanh(conv(x))))))\n        fc(flatten(h, 1))\n    }\n}\n";
    check_case(
        &Case {
            bindings: &[("B", 2)],
            tolerance: LOOSE,
            samples: 16,
            ..Case::new(source.to_string())
        },
        3,
    )
    .unwrap();
}

#[test]
fn layer_norm_attention_block() {
    let source = "use std.transformer.{TransformerEncoderLayer, TransformerDecoderBlock}\n\
        model Block {\n    enc = TransformerEncoderLayer(4, 2, 6)\n    dec = TransformerDecoderBlock(4, 2, 6)\n    \
        forward(x: f32[B, T, 4]) { dec(enc(x)) }\n}\n";
    check_case(
        &Case {
            bindings: &[("B", 2), ("T", 3)],
            tolerance: LOOSE,
            samples: 8,
            ..Case::new(source.to_string())
        },
        11,
    )
    .unwrap();
}

#[test]
fn lstm_over_a_few_steps() {
    let source = "use std.rnn.{LSTM, GRU}\n\
        model Seq {\n    lstm = LSTM(3, 4)\n    gru = GRU(4, 2, bidirectional = true)\n    \
        forward(x: f32[B, T, 3]) {\n        let (hs, (h, c)) = lstm(x)\n        \
        let (gs, g) = gru(hs)\n        sum(gs, axis = 1)[:, 1:3] + sum(g, axis = 0)[:, :1] + h[:, :2] * c[:, 1:3]\n    }\n}\n";
    check_case(
        &Case {
            bindings: &[("B", 2), ("T", 3)],
            tolerance: LOOSE,
            samples: 8,
            ..Case::new(source.to_string())
        },
        5,
    )
    .unwrap();
}

/// A gradient graph built for symbolic `B` runs for several bindings.
#[test]
fn gradient_graph_is_valid_for_any_batch() {
    let source = "use std.nn.{Linear}\nmodel M {\n    fc = Linear(3, 2)\n    \
        forward(x: f32[B, 3]) { mean(softmax(fc(x)) * x[:, :2]) }\n}\n";
    let graph = compile(source);
    let loss = graph.outputs[0];
    let mut gradient_graph = graph.clone();
    let params: Vec<NodeId> = graph.params().into_iter().map(|(id, _)| id).collect();
    let wrt: Vec<NodeId> = params.iter().copied().chain([graph.inputs[0]]).collect();
    let gradients = differentiate(&mut gradient_graph, loss, &wrt).unwrap();
    gradient_graph.outputs = gradients;
    verify(&gradient_graph).unwrap();
    let mut rng = Rng::new(1);
    let values: HashMap<String, Tensor> = graph
        .params()
        .into_iter()
        .map(|(id, name)| {
            let shape = concrete(&graph.node(id).ty, &HashMap::new());
            let count = shape.iter().product();
            (
                name.to_string(),
                Tensor::from_f32(shape, draw(Dist::Uniform(-1.0, 1.0), count, &mut rng)).unwrap(),
            )
        })
        .collect();
    for batch in [1usize, 5] {
        let x = Tensor::from_f32(
            vec![batch, 3],
            draw(Dist::Uniform(-1.0, 1.0), batch * 3, &mut rng),
        )
        .unwrap();
        let out = evaluate(&gradient_graph, &[x], &values).unwrap();
        assert_eq!(out[2].shape, vec![batch, 3]);
    }
}

/// Second derivatives through a convolution have no rule yet: a `no-gradient` diagnostic,
/// never a silent zero. A non-scalar loss is one too.
#[test]
fn missing_rules_are_diagnostics() {
    let source = "model M {\n    param w: f32[2, 1, 3, 3] = normal()\n    \
        forward(x: f32[B, 1, 4, 4]) { sum(conv2d(x, w, padding = 1) ** 2.0) }\n}\n";
    let graph = compile(source);
    let loss = graph.outputs[0];
    let w = graph.params()[0].0;
    let mut once = graph.clone();
    let gradient = differentiate(&mut once, loss, &[w]).unwrap()[0];
    // d/dw of sum(dL/dw): through conv2d_backward_weight.
    let span = once.node(gradient).span;
    let ty = TensorType::scalar(DType::F32);
    let total = once.add(
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![0, 1, 2, 3],
            keep_dims: false,
        },
        ty,
        span,
        &[gradient],
    );
    let diagnostics = differentiate(&mut once, total, &[w]).unwrap_err();
    assert!(
        diagnostics.iter().all(|d| d.code == "no-gradient"),
        "{diagnostics:?}"
    );
    assert!(
        diagnostics[0].message.contains("conv2d_backward"),
        "{}",
        diagnostics[0].message
    );

    let mut graph = graph;
    let x = graph.inputs[0];
    let diagnostics = differentiate(&mut graph, x, &[w]).unwrap_err();
    assert_eq!(diagnostics[0].code, "no-gradient");
}
