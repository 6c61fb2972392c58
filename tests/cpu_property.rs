//! Property tests: the CPU backend (`CpuExecutable`) against the reference interpreter
//! (`interp::evaluate`) on randomly generated models.
//!
//! Each case is `.model` source text built from a stream of random choices (so that proptest
//! shrinks a failing program by dropping and lowering choices), checked by the real checker
//! (a generated program that does not check clean is a generator bug and fails the test with
//! the diagnostics), compiled once by the CPU backend and run on random inputs, once per
//! binding of its symbolic dims, each run compared with the interpreter on the same inputs.
//!
//! Strategies (case counts at the default scale):
//!
//! - `elementwise` (400 cases): DAGs of 1–32 `let` bindings over 1–3 inputs of rank 0–4 whose
//!   shapes are the output's shape with any dims set to 1 and any leading dims dropped
//!   (broadcasting on every axis), with dims of 1, odd sizes and multiples of 4/8/16, some
//!   symbolic (`B`, `S`, run at two bindings), and now and then large (up to 2^17 elements, so
//!   kernels split across threads). Ops: every unary builtin and prelude activation,
//!   `+ - * / ** %`, `pow`, `maximum`/`minimum`, `where` over comparisons (with `and`, `or`,
//!   `not`), `cast`, `floor`, constants (`full`, `ones`, `arange`), params (static values),
//!   `expand`; long chains that fuse, values used several times (so some fusions are refused),
//!   outputs that are also consumed or are inputs, several outputs, bool and i64 outputs
//!   (comparisons, integer `%`, `argmax` with ties).
//! - `symbolic_batch` (150 cases): the same DAGs with a symbolic leading `B`, compiled once and
//!   run at `B = 1`, an odd `B` and `B = 8` or `16` through one bound program.
//! - `nan` (150 cases): the same DAGs with unguarded `log`, `sqrt`, `rsqrt`, `** 1.5` and
//!   division on inputs, so that NaNs and infinities arise and propagate through `maximum`,
//!   `where`, activations and arithmetic; their positions must match exactly.
//! - `structured` (400 cases): elementwise ops mixed with reductions (`sum`/`mean`/`max`/`min`
//!   over one axis, a list of axes or all, `keepdims`), `softmax` over any axis, `layer_norm`,
//!   `@` with random (m, k, n) incl. rank-1 operands, batched and broadcast batch dims, weight
//!   params and transposed params, `transpose`/`.T`/`permute`, `reshape`/`flatten`, slicing with
//!   steps and integer indices, `concat`, `unsqueeze`/`squeeze`/`expand`, `take`/indexing with
//!   computed ids, `conv2d` (stride, padding, dilation, groups, bias) and `pool2d`, and `scan`
//!   (forward or reverse, yielding or not), over inputs with an optional symbolic leading `B`
//!   (run at two batch sizes), now and then large.
//!
//! Every case runs through one bound program (`CpuExecutable::bind`) per binding, and its first
//! binding also through `CpuExecutable::run`.
//!
//! Inputs are uniform in [-3, 3] (in half the cases multiples of 0.25, so that comparisons
//! and `argmax` tie); params uniform in [-1, 1]. Outside the `nan` strategy the generator keeps
//! `log`, `sqrt`, `rsqrt`, division and `pow` on valid arguments (`log(abs(v) + 1.0)`,
//! `v / (abs(w) + 0.5)`) and bounds every intermediate value, squashing or rescaling by a power
//! of two any whose bound exceeds 16. Comparisons, `floor`, `%`, steep functions and gather ids
//! only read inputs, params and exact transforms of them, because a computed value with a few
//! ulp of difference could flip them; recurrences contract, so they do not amplify rounding.
//!
//! Tolerance, for each f32 output, with `scale` the largest finite magnitude the interpreter
//! gives: NaN positions and infinities (with sign) must match exactly; finite values must be
//! within `abs + rel * scale`, where (abs, rel) is (1e-5, 1e-5) for the elementwise strategies
//! (transcendental functions may be polynomial approximations with a few ulp of error, and
//! errors of intermediates up to 16 carry into the result) and (1e-4, 1e-4) for `structured`
//! (matmul, convolution and reductions sum in another order, in f32, where the interpreter sums
//! in f64). Shapes must match exactly; bool and i64 outputs exactly.
//!
//! A failure prints the minimal program's source, the input shapes, seed and (when small)
//! values, and the first element out of tolerance. `MODELC_FUZZ_SCALE=20` multiplies the case
//! counts; `PROPTEST_RNG_SEED=n` fixes the seed. With `--nocapture` each property prints the
//! largest error it saw as a fraction of the tolerance; `MODELC_PROPTEST_SHOW=1` also prints
//! every program with its error and how many of its kernels were compiled to native code.

mod common;

use modelc_compiler::check::select_model;
use modelc_compiler::interp::{evaluate, Tensor};
use modelc_runtime::cpu::CpuExecutable;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

// ---------------------------------------------------------------------------------------------
// Choices

/// A stream of random choices; past its end every choice is 0, the simplest option.
struct Choices<'a> {
    data: &'a [u32],
    at: usize,
}

impl Choices<'_> {
    fn below(&mut self, n: usize) -> usize {
        let value = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        if n <= 1 {
            0
        } else {
            value as usize % n
        }
    }

    /// True with about `percent` % probability; false for the choice 0.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) >= 100 - percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dim {
    N(usize),
    /// A symbolic dim: `SYMBOLS[i]`.
    Sym(usize),
}

const SYMBOLS: [&str; 2] = ["B", "S"];
/// The largest value a symbol is bound to (for size and bound estimates).
const SYMBOL_MAX: usize = 16;

type Shape = Vec<Dim>;

fn dim_text(dim: Dim) -> String {
    match dim {
        Dim::N(n) => n.to_string(),
        Dim::Sym(s) => SYMBOLS[s].to_string(),
    }
}

fn dims_text(shape: &[Dim]) -> String {
    shape
        .iter()
        .map(|d| dim_text(*d))
        .collect::<Vec<_>>()
        .join(", ")
}

#[allow(dead_code)]
fn type_text(shape: &[Dim]) -> String {
    format!("f32[{}]", dims_text(shape))
}

fn var_type(var: &Var) -> String {
    format!("{}[{}]", var.dtype, dims_text(&var.shape))
}

/// NumPy broadcasting of two static shapes (a symbol matches itself or 1).
fn broadcast(a: &[Dim], b: &[Dim]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let x = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            Dim::N(1)
        };
        let y = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            Dim::N(1)
        };
        out.push(match (x, y) {
            _ if x == y => x,
            (Dim::N(1), _) => y,
            (_, Dim::N(1)) => x,
            _ => return None,
        });
    }
    Some(out)
}

fn concrete(shape: &[Dim], symbols: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .map(|d| match d {
            Dim::N(n) => *n,
            Dim::Sym(s) => symbols[*s],
        })
        .collect()
}

/// The most elements a shape can have over the symbol values used.
fn max_count(shape: &[Dim]) -> usize {
    shape
        .iter()
        .map(|d| match d {
            Dim::N(n) => *n,
            Dim::Sym(_) => SYMBOL_MAX,
        })
        .product()
}

/// `shape` with symbolic dims replaced by 1 (for constants and params, which need sizes).
fn fixed(shape: &[Dim]) -> Vec<usize> {
    shape
        .iter()
        .map(|d| match d {
            Dim::N(n) => *n,
            Dim::Sym(_) => 1,
        })
        .collect()
}

fn has_symbol(shape: &[Dim]) -> bool {
    shape.iter().any(|d| matches!(d, Dim::Sym(_)))
}

/// Sizes for dims: 1, odd sizes, sizes that are and are not multiples of 4.
const SIZES: [usize; 15] = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 6, 13, 31, 32, 33];

/// Sizes for large cases.
const LARGE_SIZES: [usize; 12] = [1, 2, 3, 5, 64, 65, 127, 128, 257, 1000, 4099, 65537];

/// Shrinks `shape` until it has at most `limit` elements at the largest symbol values: halves
/// its largest fixed dim, or makes a symbolic dim 1 when none is left.
fn cap(shape: &mut Shape, limit: usize) {
    while max_count(shape) > limit {
        let largest = (0..shape.len())
            .filter(|&i| matches!(shape[i], Dim::N(n) if n > 1))
            .max_by_key(|&i| fixed(shape)[i]);
        match largest {
            Some(axis) => {
                if let Dim::N(n) = &mut shape[axis] {
                    *n /= 2;
                }
            }
            None => {
                let axis = (0..shape.len())
                    .rev()
                    .find(|&i| matches!(shape[i], Dim::Sym(_)))
                    .expect("too many elements need a dim above 1");
                shape[axis] = Dim::N(1);
            }
        }
    }
}

/// A number as a literal (negative ones parenthesized).
fn lit(value: f64) -> String {
    if value < 0.0 {
        format!("(-{:?})", -value)
    } else {
        format!("{value:?}")
    }
}

// ---------------------------------------------------------------------------------------------
// Programs

#[derive(Clone, Debug)]
struct Var {
    name: String,
    shape: Shape,
    /// An upper bound of the value's magnitude (not enforced for the `nan` flavor).
    bound: f64,
    /// Computed identically by any correct engine (an input or an exact transform of one), so
    /// safe to compare or floor.
    exact: bool,
    uses: usize,
    input: bool,
    /// Squashed, or not f32: not an operand from then on.
    hidden: bool,
    /// A param (read in place, like an input, but not in the signature).
    param: bool,
    dtype: &'static str,
}

/// Intermediate values whose bound exceeds this are squashed or rescaled.
const LIMIT: f64 = 16.0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavor {
    Elementwise,
    Symbolic,
    Nan,
    Structured,
}

#[derive(Clone, Copy, Debug)]
struct Tolerance {
    abs: f32,
    rel: f32,
}

const ELEMENTWISE_TOLERANCE: Tolerance = Tolerance {
    abs: 1e-5,
    rel: 1e-5,
};
const STRUCTURED_TOLERANCE: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-4,
};

/// A generated model and how to run it.
struct Case {
    source: String,
    /// Each input's shape and dtype.
    input_shapes: Vec<(Shape, &'static str)>,
    params: Vec<(String, Vec<usize>)>,
    /// The symbols' values, one list per run.
    runs: Vec<Vec<usize>>,
    quantized: bool,
    seed: u64,
    tolerance: Tolerance,
}

#[derive(Clone)]
struct Builder {
    flavor: Flavor,
    lines: Vec<String>,
    vars: Vec<Var>,
    params: Vec<(String, Vec<usize>)>,
    counter: usize,
}

impl Builder {
    fn new(flavor: Flavor) -> Builder {
        Builder {
            flavor,
            lines: Vec::new(),
            vars: Vec::new(),
            params: Vec::new(),
            counter: 0,
        }
    }

    /// A `bool` or `i64` input: not an f32 operand, but conditions read bool ones and gathers
    /// i64 ones (whose values are below 8).
    fn typed_input(&mut self, shape: Shape, dtype: &'static str) -> usize {
        let index = self.input(shape);
        self.vars[index].dtype = dtype;
        self.vars[index].hidden = true;
        self.vars[index].exact = false;
        index
    }

    fn input(&mut self, shape: Shape) -> usize {
        let name = format!("x{}", self.vars.len());
        self.vars.push(Var {
            name,
            shape,
            bound: 3.0,
            exact: true,
            uses: 0,
            input: true,
            hidden: false,
            param: false,
            dtype: "f32",
        });
        self.vars.len() - 1
    }

    /// Binds `expr` to a new `let`; squashes it when its bound is too large.
    fn add(&mut self, c: &mut Choices, expr: String, shape: Shape, bound: f64) -> usize {
        let index = self.add_exact(expr, shape, bound, false);
        if bound > LIMIT {
            self.squash(c, index)
        } else {
            index
        }
    }

    fn add_exact(&mut self, expr: String, shape: Shape, bound: f64, exact: bool) -> usize {
        let name = format!("v{}", self.counter);
        self.counter += 1;
        self.lines.push(format!("let {name} = {expr}"));
        self.vars.push(Var {
            name,
            shape,
            bound,
            exact,
            uses: 0,
            input: false,
            hidden: false,
            param: false,
            dtype: "f32",
        });
        self.vars.len() - 1
    }

    fn squash(&mut self, c: &mut Choices, index: usize) -> usize {
        let bound = self.vars[index].bound;
        let shape = self.vars[index].shape.clone();
        let a = self.use_var(index);
        self.vars[index].hidden = true;
        let (expr, bound) = match c.below(4) {
            0 if bound.is_finite() => {
                let mut factor = 1.0;
                let mut scaled = bound;
                while scaled > LIMIT {
                    factor *= 0.5;
                    scaled *= 0.5;
                }
                (format!("{a} * {}", lit(factor)), scaled)
            }
            1 => (format!("tanh({a})"), 1.0),
            2 => (format!("{a} / (abs({a}) + 1.0)"), 1.0),
            _ => (format!("sigmoid({a}) * 4.0"), 4.0),
        };
        self.add_exact(expr, shape, bound, false)
    }

    /// A bool or i64 value: an output, never an operand.
    fn add_typed(&mut self, expr: String, shape: Shape, dtype: &'static str) -> usize {
        let index = self.add_exact(expr, shape, 0.0, false);
        self.vars[index].hidden = true;
        self.vars[index].dtype = dtype;
        index
    }

    /// A param as an operand (an exact value, read in place).
    fn param_var(&mut self, shape: Vec<usize>) -> usize {
        let name = self.param(shape.clone());
        self.vars.push(Var {
            name,
            shape: shape.into_iter().map(Dim::N).collect(),
            bound: 1.0,
            exact: true,
            uses: 0,
            input: false,
            hidden: false,
            param: true,
            dtype: "f32",
        });
        self.vars.len() - 1
    }

    fn use_var(&mut self, index: usize) -> String {
        self.vars[index].uses += 1;
        self.vars[index].name.clone()
    }

    fn param(&mut self, shape: Vec<usize>) -> String {
        let name = format!("w{}", self.params.len());
        self.params.push((name.clone(), shape));
        name
    }

    /// A var to operate on: usually the latest (long chains), else any (reuse).
    fn pick(&self, c: &mut Choices) -> usize {
        if c.chance(40) {
            self.any(c)
        } else {
            self.visible().last().expect("an input")
        }
    }

    /// The vars that may be operands: all but those replaced by their squashed version.
    fn visible(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.vars.len()).filter(|&i| !self.vars[i].hidden)
    }

    fn any(&self, c: &mut Choices) -> usize {
        let visible: Vec<usize> = self.visible().collect();
        visible[c.below(visible.len())]
    }

    fn exact_vars(&self) -> Vec<usize> {
        (0..self.vars.len())
            .filter(|&i| self.vars[i].exact)
            .collect()
    }

    /// A bool condition over exact values: comparisons, maybe combined. Returns its text and
    /// shape.
    fn condition(&mut self, c: &mut Choices, compatible_with: &[Dim]) -> Option<(String, Shape)> {
        let exact: Vec<usize> = self
            .exact_vars()
            .into_iter()
            .filter(|&i| broadcast(&self.vars[i].shape, compatible_with).is_some())
            .collect();
        if exact.is_empty() {
            return None;
        }
        let masks: Vec<usize> = (0..self.vars.len())
            .filter(|&i| {
                self.vars[i].input
                    && self.vars[i].dtype == "bool"
                    && broadcast(&self.vars[i].shape, compatible_with).is_some()
            })
            .collect();
        let comparison = |b: &mut Builder, c: &mut Choices| -> (String, Shape) {
            if !masks.is_empty() && c.chance(30) {
                let mask = masks[c.below(masks.len())];
                let shape = b.vars[mask].shape.clone();
                return (b.use_var(mask), shape);
            }
            let left = exact[c.below(exact.len())];
            let op = c.pick(&[">", "<", ">=", "<=", "==", "!="]);
            let left_shape = b.vars[left].shape.clone();
            let left_name = b.use_var(left);
            let right = exact[c.below(exact.len())];
            if c.chance(40)
                && broadcast(&b.vars[right].shape, &left_shape)
                    .is_some_and(|s| broadcast(&s, compatible_with).is_some())
            {
                let shape = broadcast(&b.vars[right].shape, &left_shape).expect("checked");
                let right_name = b.use_var(right);
                (format!("{left_name} {op} {right_name}"), shape)
            } else {
                let value = c.pick(&[0.0, 0.5, -1.0, 1.25, -0.25]);
                (format!("{left_name} {op} {}", lit(value)), left_shape)
            }
        };
        let (mut text, mut shape) = comparison(self, c);
        if c.chance(25) {
            let (other, other_shape) = comparison(self, c);
            if let Some(joined) = broadcast(&shape, &other_shape) {
                let op = c.pick(&["and", "or"]);
                text = format!("({text}) {op} ({other})");
                shape = joined;
            }
        }
        if c.chance(15) {
            text = format!("not ({text})");
        }
        Some((text, shape))
    }

    /// The vars nothing uses.
    fn sinks(&self) -> Vec<usize> {
        (0..self.vars.len())
            .filter(|&i| !self.vars[i].input && !self.vars[i].param && self.vars[i].uses == 0)
            .collect()
    }
}

/// A sub-shape of `target`: some leading dims dropped, some dims set to 1.
fn sub_shape(c: &mut Choices, target: &[Dim]) -> Shape {
    if !c.chance(50) {
        return target.to_vec();
    }
    let keep = target.len() - c.below(target.len() + 1);
    target[target.len() - keep..]
        .iter()
        .map(|d| if c.chance(35) { Dim::N(1) } else { *d })
        .collect()
}

/// One elementwise op on the var `index`; returns the new var.
fn unary_step(b: &mut Builder, c: &mut Choices, index: usize) -> usize {
    let bound = b.vars[index].bound;
    let exact = b.vars[index].exact;
    let shape = b.vars[index].shape.clone();
    let nan = b.flavor == Flavor::Nan;
    let a = b.use_var(index);
    let count = if nan { 30 } else { 26 };
    let (expr, new_bound, new_exact) = match c.below(count) {
        0 => (format!("-{a}"), bound, exact),
        1 => (format!("abs({a})"), bound, exact),
        2 => (format!("relu({a})"), bound, false),
        3 => (format!("tanh({a})"), 1.0, false),
        4 => (format!("sigmoid({a})"), 1.0, false),
        5 if bound <= 2.5 => (format!("exp({a})"), bound.exp(), false),
        5 => (format!("exp(minimum({a}, 2.0))"), 2f64.exp(), false),
        6 => (format!("exp(-abs({a}))"), 1.0, false),
        7 => (format!("log(abs({a}) + 1.0)"), (bound + 1.0).ln(), false),
        8 => (
            format!("log({a} * {a} + 0.5)"),
            (bound * bound + 0.5).ln().max(0.7),
            false,
        ),
        // `sqrt` is steep near 0, where it would amplify a computed argument's rounding.
        9 if exact => (format!("sqrt(abs({a}))"), bound.sqrt(), false),
        9 => (
            format!("sqrt(abs({a}) + 0.0625)"),
            (bound + 0.0625).sqrt(),
            false,
        ),
        10 => (format!("rsqrt(abs({a}) + 0.25)"), 2.0, false),
        11 => (format!("erf({a})"), 1.0, false),
        12 => (format!("sin({a})"), 1.0, false),
        13 => (format!("cos({a})"), 1.0, false),
        14 => (format!("gelu({a})"), bound, false),
        15 => (format!("gelu({a}, approximate = \"tanh\")"), bound, false),
        16 => (format!("{a} ** 2"), bound * bound, false),
        17 => (
            format!("(abs({a}) + 0.5) ** 1.5"),
            (bound + 0.5).powf(1.5),
            false,
        ),
        // Steep: they amplify their argument's error, so only on exact values.
        18 if exact => (format!("tanh({a} * 24.0)"), 1.0, false),
        19 if exact => (format!("sigmoid({a} * (-24.0))"), 1.0, false),
        20 if exact => (format!("erf({a} * 8.0)"), 1.0, false),
        18..=20 => (format!("tanh({a} * 0.5)"), 1.0, false),
        21 => match c.below(6) {
            0 => (format!("{a} * 0.75"), bound * 0.75, false),
            1 => (format!("{a} + 1.25"), bound + 1.25, false),
            2 => (format!("{a} / 3.0"), bound / 3.0, false),
            3 => (format!("2.0 - {a}"), bound + 2.0, false),
            4 => (format!("maximum({a}, 0.5)"), bound.max(0.5), false),
            _ => (format!("minimum({a}, -0.25)"), bound.max(0.25), false),
        },
        22 => (format!("{a} / (abs({a}) + 1.0)"), 1.0, false),
        23 if exact => (format!("floor({a} * 4.0)"), bound * 4.0 + 1.0, true),
        23 => (format!("{a} * 0.5"), bound * 0.5, false),
        24 if exact => (format!("{a} % 1.5"), 1.5, false),
        24 => (format!("{a} ** 3"), bound.powi(3), false),
        25 => (format!("sigmoid({a}) * {a}"), bound, false),
        // The `nan` flavor: unguarded domains, on exact values only (NaN where an input is
        // negative), since a computed value near 0 could have either sign.
        26 if exact => (format!("log({a})"), f64::INFINITY, false),
        27 if exact => (format!("sqrt({a})"), bound.sqrt(), false),
        28 if exact => (format!("rsqrt({a})"), f64::INFINITY, false),
        29 if exact => (format!("{a} ** 1.5"), bound.powf(1.5), false),
        _ => (
            format!("log(abs({a}) + 1.0) * {a}"),
            bound * (bound + 1.0).ln(),
            false,
        ),
    };
    if new_exact {
        b.add_exact(expr, shape, new_bound, true)
    } else {
        b.add(c, expr, shape, new_bound)
    }
}

/// A binary op of `a` and `other` (which broadcast), with its bound; an unguarded division
/// only when `raw_division`.
fn binary_text(
    c: &mut Choices,
    a: &str,
    bound_a: f64,
    other: &str,
    bound_b: f64,
    raw_division: bool,
) -> (String, f64) {
    match c.below(if raw_division { 9 } else { 8 }) {
        0 => (format!("{a} + {other}"), bound_a + bound_b),
        1 => (format!("{a} - {other}"), bound_a + bound_b),
        2 => (format!("{a} * {other}"), bound_a * bound_b),
        3 => (format!("{a} / (abs({other}) + 0.5)"), bound_a * 2.0),
        4 => (format!("maximum({a}, {other})"), bound_a.max(bound_b)),
        5 => (format!("minimum({a}, {other})"), bound_a.max(bound_b)),
        6 if bound_b <= 8.0 => (
            format!("pow(abs({a}) + 0.5, {other} * 0.25)"),
            (bound_a + 0.5)
                .powf(bound_b * 0.25)
                .max(2f64.powf(bound_b * 0.25)),
        ),
        6 => (format!("{a} - {other} * 0.5"), bound_a + bound_b),
        7 => (format!("{a} * {other} + {a}"), bound_a * bound_b + bound_a),
        _ => (format!("{a} / {other}"), f64::INFINITY),
    }
}

/// A constant of a sub-shape of `target`.
fn constant(c: &mut Choices, target: &[Dim]) -> (String, Shape, f64) {
    let shape: Vec<usize> = fixed(&sub_shape(c, target));
    let dims = shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let as_shape: Shape = shape.iter().map(|&d| Dim::N(d)).collect();
    if shape.is_empty() {
        let value = c.pick(&[0.5, -1.5, 2.0, 0.125]);
        return (format!("full({})", lit(value)), as_shape, 2.0);
    }
    match c.below(4) {
        0 => {
            let value = c.pick(&[0.5, -1.5, 2.0, 0.125]);
            (format!("full({}, {dims})", lit(value)), as_shape, 2.0)
        }
        1 => (format!("ones({dims})"), as_shape, 1.0),
        2 => {
            let n = *shape.last().expect("rank >= 1");
            (
                format!("(arange({n}, dtype = f32) * 0.125 - 1.0)"),
                vec![Dim::N(n)],
                n as f64 * 0.125 + 1.0,
            )
        }
        _ => (
            format!(
                "(cast(arange({}), f32) * (-0.5))",
                shape.last().expect("rank >= 1")
            ),
            vec![Dim::N(*shape.last().expect("rank >= 1"))],
            *shape.last().expect("rank >= 1") as f64 * 0.5,
        ),
    }
}

/// One step of the elementwise DAG.
fn elementwise_step(b: &mut Builder, c: &mut Choices, target: &[Dim]) {
    let nan = b.flavor == Flavor::Nan;
    match c.below(11) {
        10 => {
            // A param and an op on it: a static value, computed when params are bound.
            let shape = fixed(&sub_shape(c, target));
            let p = b.param_var(shape);
            unary_step(b, c, p);
        }
        0..=3 => {
            let index = b.pick(c);
            unary_step(b, c, index);
        }
        4..=6 => {
            let index = b.pick(c);
            let other = b.any(c);
            let shape = broadcast(&b.vars[index].shape, &b.vars[other].shape)
                .expect("elementwise shapes all fit the target");
            let (bound_a, bound_b) = (b.vars[index].bound, b.vars[other].bound);
            // Unguarded division only of exact values by an input or param (continuous, so never
            // 0 in the `nan` flavor): a computed numerator over a small divisor would amplify
            // its rounding.
            let raw_division =
                nan && b.vars[index].exact && (b.vars[other].input || b.vars[other].param);
            let a = b.use_var(index);
            let o = b.use_var(other);
            let (expr, bound) = binary_text(c, &a, bound_a, &o, bound_b, raw_division);
            b.add(c, expr, shape, bound);
        }
        7 => {
            // where over comparisons of exact values.
            let Some((condition, condition_shape)) = b.condition(c, target) else {
                return;
            };
            let index = b.pick(c);
            let mut shape = broadcast(&condition_shape, &b.vars[index].shape).expect("fits");
            let mut bound = b.vars[index].bound;
            let a = b.use_var(index);
            let other = match c.below(3) {
                0 => "0.0".to_string(),
                1 => {
                    let other = b.any(c);
                    shape = broadcast(&shape, &b.vars[other].shape).expect("fits");
                    bound = bound.max(b.vars[other].bound);
                    b.use_var(other)
                }
                _ => {
                    bound = bound.max(1.5);
                    lit(-1.5)
                }
            };
            let expr = if c.chance(50) {
                format!("where({condition}, {a}, {other})")
            } else {
                format!("where({condition}, {other}, {a})")
            };
            b.add(c, expr, shape, bound);
        }
        8 => {
            // Leaves: a constant combined with a var, or a bool cast.
            let index = b.pick(c);
            if c.chance(30) {
                if let Some((condition, shape)) = b.condition(c, target) {
                    let expr = match c.below(2) {
                        0 => format!("cast({condition}, f32)"),
                        _ => format!("where({condition}, 1.0, -2.0)"),
                    };
                    b.add(c, expr, shape, 2.0);
                    return;
                }
            }
            let (constant, constant_shape, constant_bound) = constant(c, target);
            let shape = broadcast(&b.vars[index].shape, &constant_shape).expect("fits");
            let bound_a = b.vars[index].bound;
            let a = b.use_var(index);
            let (expr, bound) = binary_text(c, &a, bound_a, &constant, constant_bound, false);
            b.add(c, expr, shape, bound);
        }
        _ => {
            // expand to the whole target.
            let index = b.pick(c);
            let bound = b.vars[index].bound;
            let a = b.use_var(index);
            if target.is_empty() {
                b.add(c, format!("{a} + 0.5"), Vec::new(), bound + 0.5);
            } else {
                b.add(
                    c,
                    format!("expand({a}, {})", dims_text(target)),
                    target.to_vec(),
                    bound,
                );
            }
        }
    }
}

fn elementwise_case(c: &mut Choices, flavor: Flavor, seed: u64) -> Case {
    let rank = if flavor == Flavor::Symbolic {
        1 + c.below(4)
    } else {
        c.below(5)
    };
    // Now and then large, so that kernels split across threads (from 65536 elements).
    let large = c.chance(8);
    let sizes: &[usize] = if large { &LARGE_SIZES } else { &SIZES };
    let mut target: Shape = (0..rank).map(|_| Dim::N(c.pick(sizes))).collect();
    for (axis, dim) in target.iter_mut().enumerate() {
        if flavor == Flavor::Symbolic && axis == 0 {
            *dim = Dim::Sym(0);
        } else if c.chance(12) {
            *dim = Dim::Sym(c.below(2));
        }
    }
    cap(&mut target, if large { 1 << 17 } else { 4096 });
    let mut b = Builder::new(flavor);
    let inputs = 1 + c.below(3);
    for i in 0..inputs {
        let shape = if flavor == Flavor::Symbolic && i == 0 {
            target.clone()
        } else {
            sub_shape(c, &target)
        };
        b.input(shape);
    }
    if c.chance(25) {
        let shape = sub_shape(c, &target);
        b.typed_input(shape, "bool");
    }
    // A symbol no input binds is not a name in the forward: make it 1.
    for dim in target.iter_mut() {
        if matches!(dim, Dim::Sym(_)) && !b.vars.iter().any(|v| v.shape.contains(dim)) {
            *dim = Dim::N(1);
        }
    }
    let longest = if c.chance(30) { 32 } else { 12 };
    let steps = 1 + c.below(longest);
    for _ in 0..steps {
        elementwise_step(&mut b, c, &target);
    }
    // Outputs: the sinks, summed or as a tuple, sometimes with a value that is also consumed
    // (or an input) among them.
    let sinks = b.sinks();
    let mut outputs: Vec<usize> = Vec::new();
    if sinks.len() > 1 && c.chance(50) {
        let mut shape = b.vars[sinks[0]].shape.clone();
        let mut names = Vec::new();
        let mut bound = 0.0;
        for &s in &sinks {
            shape = broadcast(&shape, &b.vars[s].shape).expect("fits");
            bound += b.vars[s].bound;
            names.push(b.use_var(s));
        }
        outputs.push(b.add_exact(names.join(" + "), shape, bound, false));
    } else {
        outputs.extend(sinks);
    }
    if c.chance(25) {
        outputs.push(b.any(c));
    }
    if c.chance(25) {
        outputs.push(typed_output(&mut b, c, &target));
    }
    let runs = symbol_runs(c, flavor, &b.vars);
    finish(b, outputs, runs, c, seed, ELEMENTWISE_TOLERANCE)
}

/// A bool or i64 output computed from exact values: a condition, an integer remainder or an
/// `argmax` (whose ties, frequent on quantized inputs, must go to the first position).
fn typed_output(b: &mut Builder, c: &mut Choices, target: &[Dim]) -> usize {
    let exact: Vec<usize> = b
        .exact_vars()
        .into_iter()
        .filter(|&i| broadcast(&b.vars[i].shape, target).is_some())
        .collect();
    let x = exact[c.below(exact.len())];
    let shape = b.vars[x].shape.clone();
    let rank = shape.len();
    match c.below(3) {
        1 => {
            let name = b.use_var(x);
            b.add_typed(format!("cast(floor({name} * 4.0), i64) % 3"), shape, "i64")
        }
        2 if rank > 0 => {
            let axis = c.below(rank);
            let keepdims = c.chance(30);
            let mut result = shape.clone();
            if keepdims {
                result[axis] = Dim::N(1);
            } else {
                result.remove(axis);
            }
            let name = b.use_var(x);
            let axis = axis_text(c, axis, rank);
            let keep = if keepdims { ", keepdims = true" } else { "" };
            b.add_typed(
                format!("argmax({name}, axis = {axis}{keep})"),
                result,
                "i64",
            )
        }
        _ => {
            let (condition, shape) = b.condition(c, target).expect("an exact value exists");
            b.add_typed(condition, shape, "bool")
        }
    }
}

/// The symbol values of each run: one run without symbols; otherwise two (three for the
/// `symbolic_batch` flavor: B = 1, odd, 8 or 16).
fn symbol_runs(c: &mut Choices, flavor: Flavor, vars: &[Var]) -> Vec<Vec<usize>> {
    let used = vars.iter().any(|v| v.input && has_symbol(&v.shape));
    if flavor == Flavor::Symbolic {
        let odd = c.pick(&[3, 5, 7, 9]);
        let even = c.pick(&[8, 16]);
        let s = c.pick(&[1, 3, 4]);
        return vec![vec![1, s], vec![odd, s], vec![even, 1]];
    }
    if !used {
        return vec![vec![1, 1]];
    }
    let values = [1, 2, 3, 5, 7, 8, 9, 16];
    vec![
        vec![c.pick(&values), c.pick(&values)],
        vec![c.pick(&values), c.pick(&values)],
    ]
}

fn finish(
    b: Builder,
    outputs: Vec<usize>,
    runs: Vec<Vec<usize>>,
    c: &mut Choices,
    seed: u64,
    tolerance: Tolerance,
) -> Case {
    let inputs: Vec<&Var> = b.vars.iter().filter(|v| v.input).collect();
    let mut source = String::from("model M {\n");
    for (name, shape) in &b.params {
        let dims = shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        source.push_str(&format!("    param {name}: f32[{dims}]\n"));
    }
    let signature = inputs
        .iter()
        .map(|v| format!("{}: {}", v.name, var_type(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let (result_type, result) = if outputs.len() == 1 {
        let v = &b.vars[outputs[0]];
        (var_type(v), v.name.clone())
    } else {
        (
            format!(
                "({})",
                outputs
                    .iter()
                    .map(|&o| var_type(&b.vars[o]))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "({})",
                outputs
                    .iter()
                    .map(|&o| b.vars[o].name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    source.push_str(&format!("    forward({signature}) -> {result_type} {{\n"));
    for line in &b.lines {
        source.push_str(&format!("        {line}\n"));
    }
    source.push_str(&format!("        {result}\n    }}\n}}\n"));
    Case {
        source,
        input_shapes: inputs.iter().map(|v| (v.shape.clone(), v.dtype)).collect(),
        params: b.params.clone(),
        runs,
        quantized: b.flavor != Flavor::Nan && c.chance(50),
        seed,
        tolerance,
    }
}

// ---------------------------------------------------------------------------------------------
// The structured strategy

/// NumPy `matmul` shapes.
fn matmul_shape(a: &[Dim], b: &[Dim]) -> Option<Shape> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let left: Shape = if a.len() == 1 {
        vec![Dim::N(1), a[0]]
    } else {
        a.to_vec()
    };
    let right: Shape = if b.len() == 1 {
        vec![b[0], Dim::N(1)]
    } else {
        b.to_vec()
    };
    let (m, k) = (left[left.len() - 2], left[left.len() - 1]);
    let (k2, n) = (right[right.len() - 2], right[right.len() - 1]);
    if k != k2 {
        return None;
    }
    let mut shape = broadcast(&left[..left.len() - 2], &right[..right.len() - 2])?;
    if a.len() > 1 {
        shape.push(m);
    }
    if b.len() > 1 {
        shape.push(n);
    }
    Some(shape)
}

/// Python's slice length for `start:end:step` on `n` elements.
fn slice_length(n: i64, start: Option<i64>, end: Option<i64>, step: i64) -> i64 {
    let adjust = |v: i64, low: i64, high: i64| {
        let v = if v < 0 { v + n } else { v };
        v.clamp(low, high)
    };
    if step > 0 {
        let s = start.map_or(0, |v| adjust(v, 0, n));
        let e = end.map_or(n, |v| adjust(v, 0, n));
        if e > s {
            (e - s + step - 1) / step
        } else {
            0
        }
    } else {
        let s = start.map_or(n - 1, |v| adjust(v, -1, n - 1));
        let e = end.map_or(-1, |v| adjust(v, -1, n - 1));
        if s > e {
            (s - e + (-step) - 1) / (-step)
        } else {
            0
        }
    }
}

/// An axis written as is or counted from the end.
fn axis_text(c: &mut Choices, axis: usize, rank: usize) -> String {
    if c.chance(30) {
        format!("-{}", rank - axis)
    } else {
        axis.to_string()
    }
}

fn structured_step(b: &mut Builder, c: &mut Choices) {
    let index = b.pick(c);
    let shape = b.vars[index].shape.clone();
    let bound = b.vars[index].bound;
    let rank = shape.len();
    match c.below(17) {
        0 | 1 => {
            unary_step(b, c, index);
        }
        13 if shape.iter().any(|d| matches!(d, Dim::N(_))) => gather_step(b, c, index),
        14 | 16 if rank == 4 && !has_symbol(&shape[1..]) => window_step(b, c, index),
        15 if rank >= 2 => scan_step(b, c, index),
        2 => {
            // Binary with a partner that broadcasts, or one made to.
            let partners: Vec<usize> = b
                .visible()
                .filter(|&i| broadcast(&b.vars[i].shape, &shape).is_some())
                .collect();
            let (other, other_shape, other_bound) = if c.chance(50) && partners.len() > 1 {
                let p = partners[c.below(partners.len())];
                let s = b.vars[p].shape.clone();
                let bd = b.vars[p].bound;
                (b.use_var(p), s, bd)
            } else {
                match c.below(3) {
                    0 if rank > 0 => {
                        let axis = c.below(rank);
                        let op = c.pick(&["mean", "max", "sum"]);
                        let mut s = shape.clone();
                        let factor = match s[axis] {
                            Dim::N(n) => n,
                            Dim::Sym(_) => SYMBOL_MAX,
                        } as f64;
                        s[axis] = Dim::N(1);
                        let a = b.use_var(index);
                        let bd = if op == "sum" { bound * factor } else { bound };
                        (
                            format!(
                                "{op}({a}, axis = {}, keepdims = true)",
                                axis_text(c, axis, rank)
                            ),
                            s,
                            bd,
                        )
                    }
                    1 => {
                        let s: Vec<usize> = fixed(&sub_shape(c, &shape));
                        let name = b.param(s.clone());
                        (name, s.into_iter().map(Dim::N).collect(), 1.0)
                    }
                    _ => constant(c, &shape),
                }
            };
            let result = broadcast(&shape, &other_shape).expect("partners broadcast");
            let a = b.use_var(index);
            let (expr, bd) = binary_text(c, &a, bound, &other, other_bound, false);
            b.add(c, expr, result, bd);
        }
        3 if rank > 0 => {
            // Reductions.
            let op = c.pick(&["sum", "mean", "max", "min"]);
            let keepdims = c.chance(40);
            let mut axes: Vec<usize> = Vec::new();
            let axis_arg = match c.below(3) {
                0 => {
                    let axis = c.below(rank);
                    axes.push(axis);
                    format!(", axis = {}", axis_text(c, axis, rank))
                }
                1 => {
                    let mut pool: Vec<usize> = (0..rank).collect();
                    let count = 1 + c.below(rank);
                    let mut texts = Vec::new();
                    for _ in 0..count {
                        let axis = pool.remove(c.below(pool.len()));
                        texts.push(axis_text(c, axis, rank));
                        axes.push(axis);
                    }
                    format!(", axis = [{}]", texts.join(", "))
                }
                _ => {
                    axes.extend(0..rank);
                    String::new()
                }
            };
            let mut result = Vec::new();
            let mut reduced = 1usize;
            for (axis, dim) in shape.iter().enumerate() {
                if axes.contains(&axis) {
                    reduced *= match dim {
                        Dim::N(n) => *n,
                        Dim::Sym(_) => SYMBOL_MAX,
                    };
                    if keepdims {
                        result.push(Dim::N(1));
                    }
                } else {
                    result.push(*dim);
                }
            }
            let keep = if keepdims { ", keepdims = true" } else { "" };
            let a = b.use_var(index);
            let expr = if c.chance(30) {
                let args = format!("{axis_arg}{keep}");
                format!("{a}.{op}({})", args.trim_start_matches(", "))
            } else {
                format!("{op}({a}{axis_arg}{keep})")
            };
            let bd = if op == "sum" {
                bound * reduced as f64
            } else {
                bound
            };
            b.add(c, expr, result, bd);
        }
        4 if rank > 0 => {
            let axis = c.below(rank);
            let a = b.use_var(index);
            let expr = if axis == rank - 1 && c.chance(50) {
                format!("softmax({a})")
            } else {
                format!("softmax({a}, axis = {})", axis_text(c, axis, rank))
            };
            b.add(c, expr, shape, 1.0);
        }
        5 if rank > 0 => {
            let last = shape[rank - 1];
            let (weight, bias, scale) = match (last, c.below(3)) {
                (Dim::N(n), 0) => {
                    let w = b.param(vec![n]);
                    let bias = b.param(vec![n]);
                    (w, bias, 2.0)
                }
                (Dim::N(n), 1) => (format!("full(0.5, {n})"), "1.0".to_string(), 1.5),
                _ => ("1.0".to_string(), "0.0".to_string(), 1.0),
            };
            // The default eps (1e-5) on inputs only: a computed row can be nearly constant
            // (saturated), and 1 / sqrt(variance + eps) would amplify its rounding 300-fold.
            let eps = if b.vars[index].exact && c.chance(50) {
                ""
            } else {
                c.pick(&[", eps = 1e-3", ", eps = 1e-2"])
            };
            let a = b.use_var(index);
            let n = match last {
                Dim::N(n) => n,
                Dim::Sym(_) => SYMBOL_MAX,
            } as f64;
            b.add(
                c,
                format!("layer_norm({a}, {weight}, {bias}{eps})"),
                shape,
                n.sqrt() * scale + 1.0,
            );
        }
        6 if rank > 0 => matmul_step(b, c, index),
        7 if rank >= 2 => {
            let a = b.use_var(index);
            let mut result = shape.clone();
            let expr = match c.below(3) {
                0 => {
                    result.swap(rank - 1, rank - 2);
                    format!("{a}.T")
                }
                1 => {
                    let i = c.below(rank);
                    let j = (i + 1 + c.below(rank - 1)) % rank;
                    result.swap(i, j);
                    format!(
                        "transpose({a}, {}, {})",
                        axis_text(c, i, rank),
                        axis_text(c, j, rank)
                    )
                }
                _ => {
                    let mut pool: Vec<usize> = (0..rank).collect();
                    let mut perm = Vec::new();
                    while !pool.is_empty() {
                        perm.push(pool.remove(c.below(pool.len())));
                    }
                    result = perm.iter().map(|&p| shape[p]).collect();
                    let texts: Vec<String> = perm.iter().map(|p| p.to_string()).collect();
                    format!("permute({a}, {})", texts.join(", "))
                }
            };
            b.add(c, expr, result, bound);
        }
        8 if rank > 0 => reshape_step(b, c, index),
        9 if shape.iter().any(|d| matches!(d, Dim::N(_))) => slice_step(b, c, index),
        10 if rank > 0 => concat_step(b, c, index),
        11 => {
            let a = b.use_var(index);
            let options = if shape.contains(&Dim::N(1)) { 3 } else { 2 };
            match c.below(options) {
                0 if rank < 5 => {
                    let axis = c.below(rank + 1);
                    let mut result = shape.clone();
                    result.insert(axis, Dim::N(1));
                    b.add(c, format!("unsqueeze({a}, {axis})"), result, bound);
                }
                2 => {
                    let ones: Vec<usize> = (0..rank).filter(|&i| shape[i] == Dim::N(1)).collect();
                    let axis = ones[c.below(ones.len())];
                    let mut result = shape.clone();
                    result.remove(axis);
                    let axis = axis_text(c, axis, rank);
                    b.add(c, format!("squeeze({a}, {axis})"), result, bound);
                }
                _ => {
                    let mut result: Shape = shape
                        .iter()
                        .map(|d| {
                            if *d == Dim::N(1) && c.chance(50) {
                                Dim::N(c.pick(&[2, 3, 4, 5]))
                            } else {
                                *d
                            }
                        })
                        .collect();
                    if rank < 4 && c.chance(40) {
                        result.insert(0, Dim::N(c.pick(&[1, 2, 3])));
                    }
                    if max_count(&result) > 8192 {
                        result = shape.clone();
                    }
                    if result.is_empty() {
                        b.add(c, format!("{a} * 1.5"), result, bound * 1.5);
                    } else {
                        b.add(
                            c,
                            format!("expand({a}, {})", dims_text(&result)),
                            result,
                            bound,
                        );
                    }
                }
            }
        }
        12 => {
            // where over comparisons of inputs that broadcast with the var.
            let Some((condition, condition_shape)) = b.condition(c, &shape) else {
                unary_step(b, c, index);
                return;
            };
            let result = broadcast(&condition_shape, &shape).expect("condition fits");
            let a = b.use_var(index);
            let other = c.pick(&["0.0", "1.0", "(-2.5)"]);
            b.add(
                c,
                format!("where({condition}, {a}, {other})"),
                result,
                bound.max(2.5),
            );
        }
        _ => {
            unary_step(b, c, index);
        }
    }
}

/// `take` along an axis with ids computed from an input (`floor(abs(x) * 2) % n`).
fn gather_step(b: &mut Builder, c: &mut Choices, index: usize) {
    let shape = b.vars[index].shape.clone();
    let bound = b.vars[index].bound;
    let rank = shape.len();
    let axes: Vec<usize> = (0..rank)
        .filter(|&i| matches!(shape[i], Dim::N(_)))
        .collect();
    let axis = axes[c.below(axes.len())];
    let Dim::N(n) = shape[axis] else {
        unreachable!()
    };
    // Ids from an i64 input, or computed from an f32 one.
    let inputs: Vec<usize> = (0..b.vars.len())
        .filter(|&i| b.vars[i].input && b.vars[i].dtype != "bool")
        .collect();
    let x = inputs[c.below(inputs.len())];
    let ids_shape = b.vars[x].shape.clone();
    let mut result = shape[..axis].to_vec();
    result.extend(&ids_shape);
    result.extend(&shape[axis + 1..]);
    if result.len() > 5 || max_count(&result) > 8192 {
        unary_step(b, c, index);
        return;
    }
    let ids_name = b.use_var(x);
    let ids = if b.vars[x].dtype == "i64" {
        format!("{ids_name} % {n}")
    } else {
        format!("cast(floor(abs({ids_name}) * 2.0), i64) % {n}")
    };
    let a = b.use_var(index);
    let expr = if axis == 0 && c.chance(50) {
        format!("{a}[{ids}]")
    } else {
        let axis = axis_text(c, axis, rank);
        format!("take({a}, {ids}, axis = {axis})")
    };
    b.add(c, expr, result, bound);
}

/// A window size, written as an int or a pair.
fn pair_text(values: (usize, usize)) -> String {
    if values.0 == values.1 {
        values.0.to_string()
    } else {
        format!("({}, {})", values.0, values.1)
    }
}

/// `conv2d` with a weight param, or `pool2d`, on an NCHW value.
fn window_step(b: &mut Builder, c: &mut Choices, index: usize) {
    let shape = b.vars[index].shape.clone();
    let bound = b.vars[index].bound;
    let sizes = fixed(&shape);
    let (channels, height, width) = (sizes[1], sizes[2], sizes[3]);
    let pair = |c: &mut Choices, choices: &[usize]| {
        let first = c.pick(choices);
        if c.chance(30) {
            (first, c.pick(choices))
        } else {
            (first, first)
        }
    };
    if c.chance(50) {
        let groups = c.pick(&[1, 1, 2, 3, channels]);
        let groups = if channels.is_multiple_of(groups) {
            groups
        } else {
            1
        };
        let outputs = groups * c.pick(&[1, 2, 3, 4]);
        let kernel = pair(c, &[1, 2, 3]);
        let stride = pair(c, &[1, 2]);
        let padding = pair(c, &[0, 1]);
        let dilation = pair(c, &[1, 2]);
        let out = |size: usize, k: usize, s: usize, p: usize, d: usize| {
            let span = d * (k - 1) + 1;
            (size + 2 * p >= span).then(|| (size + 2 * p - span) / s + 1)
        };
        let (Some(oh), Some(ow)) = (
            out(height, kernel.0, stride.0, padding.0, dilation.0),
            out(width, kernel.1, stride.1, padding.1, dilation.1),
        ) else {
            unary_step(b, c, index);
            return;
        };
        let weight = b.param(vec![outputs, channels / groups, kernel.0, kernel.1]);
        let bias = if c.chance(50) {
            b.param(vec![outputs])
        } else {
            "none".to_string()
        };
        let a = b.use_var(index);
        let result = vec![shape[0], Dim::N(outputs), Dim::N(oh), Dim::N(ow)];
        let terms = (channels / groups * kernel.0 * kernel.1) as f64;
        b.add(
            c,
            format!(
                "conv2d({a}, {weight}, {bias}, stride = {}, padding = {}, dilation = {}, groups = {groups})",
                pair_text(stride),
                pair_text(padding),
                pair_text(dilation)
            ),
            result,
            bound * terms + 1.0,
        );
    } else {
        let kernel = pair(c, &[1, 2, 3]);
        let stride = if c.chance(50) {
            kernel
        } else {
            pair(c, &[1, 2])
        };
        let padding = (c.below(kernel.0 / 2 + 1), c.below(kernel.1 / 2 + 1));
        let out = |size: usize, k: usize, s: usize, p: usize| {
            (size + 2 * p >= k).then(|| (size + 2 * p - k) / s + 1)
        };
        let (Some(oh), Some(ow)) = (
            out(height, kernel.0, stride.0, padding.0),
            out(width, kernel.1, stride.1, padding.1),
        ) else {
            unary_step(b, c, index);
            return;
        };
        let kind = c.pick(&["max", "avg"]);
        let a = b.use_var(index);
        let result = vec![shape[0], Dim::N(channels), Dim::N(oh), Dim::N(ow)];
        b.add(
            c,
            format!(
                "pool2d({a}, \"{kind}\", {}, stride = {}, padding = {})",
                pair_text(kernel),
                pair_text(stride),
                pair_text(padding)
            ),
            result,
            bound,
        );
    }
}

/// A `scan` along an axis: a recurrence that yields every step or only gives the final state.
fn scan_step(b: &mut Builder, c: &mut Choices, index: usize) {
    let shape = b.vars[index].shape.clone();
    let bound = b.vars[index].bound;
    let rank = shape.len();
    let axis = c.below(rank);
    let mut state = shape.clone();
    state.remove(axis);
    let reverse = if c.chance(30) { " reverse" } else { "" };
    let along = axis_text(c, axis, rank);
    let update = match (state.last(), c.below(3)) {
        (Some(Dim::N(n)), 0) => {
            // Scaled so that the recurrence contracts: a chaotic one would amplify rounding.
            let w = b.param(vec![*n, *n]);
            let mut scale = 0.5;
            while scale * *n as f64 > 0.5 {
                scale *= 0.5;
            }
            format!("h = tanh(t * 0.5 + (h @ {w}) * {})", lit(scale))
        }
        (_, 1) => "h = maximum(h * 0.5, t)".to_string(),
        _ => "h = tanh(t + h * 0.5)".to_string(),
    };
    let yields = c.chance(60);
    let a = b.use_var(index);
    let (result, body) = if yields {
        (shape.clone(), format!("{update}\n            yield h"))
    } else {
        (state.clone(), update)
    };
    let initial = if state.is_empty() {
        "full(0.25)".to_string()
    } else {
        format!("full(0.25, {})", dims_text(&state))
    };
    b.add(
        c,
        format!(
            "scan t in {a} along {along}{reverse} with (h = {initial}) {{\n            {body}\n        }}"
        ),
        result,
        bound.max(1.0),
    );
}

fn matmul_step(b: &mut Builder, c: &mut Choices, index: usize) {
    let shape = b.vars[index].shape.clone();
    let bound = b.vars[index].bound;
    let rank = shape.len();
    let k = shape[rank - 1];
    let k_size = match k {
        Dim::N(n) => n,
        Dim::Sym(_) => SYMBOL_MAX,
    } as f64;
    let form = c.below(6);
    let (expr, result, other_bound) = match (form, k) {
        (0, Dim::N(k)) | (1, Dim::N(k)) | (2, Dim::N(k)) => {
            let n = c.pick(&[1, 3, 4, 5, 8, 16, 17, 2, 7, 64, 129]);
            let a = b.use_var(index);
            match form {
                0 => {
                    let w = b.param(vec![k, n]);
                    let result = matmul_shape(&shape, &[Dim::N(k), Dim::N(n)]).expect("fits");
                    let text = match c.below(3) {
                        0 => format!("{a} @ {w}"),
                        1 => format!("matmul({a}, {w})"),
                        _ => format!("{a}.matmul({w})"),
                    };
                    (text, result, 1.0)
                }
                1 => {
                    let w = b.param(vec![n, k]);
                    let result = matmul_shape(&shape, &[Dim::N(k), Dim::N(n)]).expect("fits");
                    let text = if c.chance(50) {
                        format!("{a} @ {w}.T")
                    } else {
                        format!("{a} @ transpose({w}, 0, 1)")
                    };
                    (text, result, 1.0)
                }
                _ => {
                    if rank >= 3 && c.chance(50) {
                        // A batched weight, broadcast or matching the batch dim before it.
                        let batch = match shape[rank - 3] {
                            Dim::N(d) if c.chance(50) => d,
                            _ => 1,
                        };
                        let w = b.param(vec![batch, k, n]);
                        let result = matmul_shape(&shape, &[Dim::N(batch), Dim::N(k), Dim::N(n)])
                            .expect("fits");
                        (format!("{a} @ {w}"), result, 1.0)
                    } else {
                        let w = b.param(vec![k]);
                        let result = matmul_shape(&shape, &[Dim::N(k)]).expect("fits");
                        (format!("{a} @ {w}"), result, 1.0)
                    }
                }
            }
        }
        (3, _) if rank >= 2 => {
            let a = b.use_var(index);
            let result = matmul_shape(&shape, &{
                let mut t = shape.clone();
                t.swap(rank - 1, rank - 2);
                t
            })
            .expect("fits");
            (format!("{a} @ {a}.T"), result, bound)
        }
        (4, _) if rank >= 2 => {
            let a = b.use_var(index);
            let mut t = shape.clone();
            t.swap(rank - 1, rank - 2);
            let result = matmul_shape(&t, &shape).expect("fits");
            let m = match shape[rank - 2] {
                Dim::N(n) => n,
                Dim::Sym(_) => SYMBOL_MAX,
            } as f64;
            let text = format!("transpose({a}, -1, -2) @ {a}");
            let bd = bound * bound * m;
            b.add(c, text, result, bd);
            return;
        }
        _ => {
            // Any var whose shape fits as the right operand, else a transposed self product.
            let partners: Vec<usize> = b
                .visible()
                .filter(|&i| matmul_shape(&shape, &b.vars[i].shape).is_some())
                .collect();
            if partners.is_empty() {
                unary_step(b, c, index);
                return;
            }
            let p = partners[c.below(partners.len())];
            let result = matmul_shape(&shape, &b.vars[p].shape).expect("fits");
            let other_bound = b.vars[p].bound;
            let a = b.use_var(index);
            let o = b.use_var(p);
            (format!("{a} @ {o}"), result, other_bound)
        }
    };
    b.add(c, expr, result, bound * other_bound * k_size);
}

fn reshape_step(b: &mut Builder, c: &mut Choices, index: usize) {
    let shape = b.vars[index].shape.clone();
    let bound = b.vars[index].bound;
    let rank = shape.len();
    let symbols: Vec<Dim> = shape
        .iter()
        .copied()
        .filter(|d| matches!(d, Dim::Sym(_)))
        .collect();
    let mut product: usize = fixed(&shape).iter().product();
    if c.chance(30) && rank >= 2 {
        // flatten from `start` to the end, when no symbol is merged.
        let start = c.below(rank - 1);
        if shape[start..].iter().all(|d| matches!(d, Dim::N(_))) {
            let merged: usize = fixed(&shape[start..]).iter().product();
            let mut result = shape[..start].to_vec();
            result.push(Dim::N(merged));
            let a = b.use_var(index);
            let expr = if start == 1 && c.chance(50) {
                format!("flatten({a})")
            } else {
                format!("flatten({a}, {start})")
            };
            b.add(c, expr, result, bound);
            return;
        }
    }
    // A random factorization of the fixed elements, with the symbols placed anywhere.
    let mut factors: Vec<usize> = Vec::new();
    let parts = 1 + c.below(4);
    for _ in 1..parts {
        let divisors: Vec<usize> = (1..=product)
            .filter(|d| product.is_multiple_of(*d))
            .collect();
        let d = divisors[c.below(divisors.len())];
        factors.push(d);
        product /= d;
    }
    factors.push(product);
    let mut result: Shape = factors.into_iter().map(Dim::N).collect();
    for symbol in symbols {
        let at = c.below(result.len() + 1);
        result.insert(at, symbol);
    }
    let mut texts: Vec<String> = result.iter().map(|d| dim_text(*d)).collect();
    if !has_symbol(&result) && c.chance(30) {
        let at = c.below(texts.len());
        texts[at] = "-1".to_string();
    }
    let a = b.use_var(index);
    let expr = if c.chance(50) {
        format!("reshape({a}, {})", texts.join(", "))
    } else {
        format!("{a}.reshape({})", texts.join(", "))
    };
    b.add(c, expr, result, bound);
}

fn slice_step(b: &mut Builder, c: &mut Choices, index: usize) {
    let shape = b.vars[index].shape.clone();
    let bound = b.vars[index].bound;
    let rank = shape.len();
    let axes: Vec<usize> = (0..rank)
        .filter(|&i| matches!(shape[i], Dim::N(_)))
        .collect();
    let axis = axes[c.below(axes.len())];
    let Dim::N(n) = shape[axis] else {
        unreachable!()
    };
    let n = n as i64;
    let mut result = shape.clone();
    let item = if c.chance(25) {
        let i = c.below(2 * n as usize) as i64 - n;
        result.remove(axis);
        i.to_string()
    } else {
        let step = c.pick(&[1, 2, -1, 3, -2]);
        let bound_of = |c: &mut Choices| -> Option<i64> {
            if c.chance(50) {
                Some(c.below(2 * n as usize + 3) as i64 - n - 1)
            } else {
                None
            }
        };
        let mut start = bound_of(c);
        let mut end = bound_of(c);
        if slice_length(n, start, end, step) == 0 {
            start = None;
            end = None;
        }
        result[axis] = Dim::N(slice_length(n, start, end, step) as usize);
        let show = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
        if step == 1 && c.chance(50) {
            format!("{}:{}", show(start), show(end))
        } else {
            format!("{}:{}:{step}", show(start), show(end))
        }
    };
    let a = b.use_var(index);
    let expr = if axis == rank - 1 && axis > 0 && c.chance(50) {
        format!("{a}[..., {item}]")
    } else {
        let mut items: Vec<String> = vec![":".to_string(); axis];
        items.push(item);
        format!("{a}[{}]", items.join(", "))
    };
    b.add(c, expr, result, bound);
}

fn concat_step(b: &mut Builder, c: &mut Choices, index: usize) {
    let shape = b.vars[index].shape.clone();
    let bound = b.vars[index].bound;
    let rank = shape.len();
    let axes: Vec<usize> = (0..rank)
        .filter(|&i| matches!(shape[i], Dim::N(_)))
        .collect();
    if axes.is_empty() {
        unary_step(b, c, index);
        return;
    }
    let axis = axes[c.below(axes.len())];
    let Dim::N(mut total) = shape[axis] else {
        unreachable!()
    };
    let a = b.use_var(index);
    let mut parts = vec![a.clone()];
    let mut part_bound = bound;
    for _ in 0..1 + c.below(2) {
        let fits = |s: &[Dim]| {
            s.len() == rank
                && matches!(s[axis], Dim::N(_))
                && (0..rank).all(|i| i == axis || s[i] == shape[i])
        };
        let candidates: Vec<usize> = b.visible().filter(|&i| fits(&b.vars[i].shape)).collect();
        match c.below(3) {
            0 => {
                parts.push(format!("tanh({a})"));
                total += match shape[axis] {
                    Dim::N(n) => n,
                    Dim::Sym(_) => unreachable!(),
                };
                part_bound = part_bound.max(1.0);
            }
            1 if !candidates.is_empty() => {
                let p = candidates[c.below(candidates.len())];
                let Dim::N(n) = b.vars[p].shape[axis] else {
                    unreachable!()
                };
                total += n;
                part_bound = part_bound.max(b.vars[p].bound);
                parts.push(b.use_var(p));
            }
            _ if !has_symbol(&shape) => {
                let m = c.pick(&[1, 2, 3, 5, 8]);
                let mut s = fixed(&shape);
                s[axis] = m;
                total += m;
                part_bound = part_bound.max(1.0);
                parts.push(b.param(s));
            }
            _ => {
                parts.push(format!("{a} * 0.5"));
                total += match shape[axis] {
                    Dim::N(n) => n,
                    Dim::Sym(_) => unreachable!(),
                };
            }
        }
    }
    let mut result = shape.clone();
    result[axis] = Dim::N(total);
    let axis = axis_text(c, axis, rank);
    b.add(
        c,
        format!("concat([{}], axis = {axis})", parts.join(", ")),
        result,
        part_bound,
    );
}

fn structured_case(c: &mut Choices, seed: u64) -> Case {
    let mut b = Builder::new(Flavor::Structured);
    let batched = c.chance(50);
    let inputs = 1 + c.below(3);
    let images = c.chance(25);
    let large = c.chance(8);
    let sizes: &[usize] = if large {
        &[1, 3, 64, 65, 128, 129, 256]
    } else {
        &[1, 2, 3, 4, 5, 7, 8, 16, 6, 9, 17]
    };
    for i in 0..inputs {
        let rank = 1 + c.below(4);
        let mut shape: Shape = (0..rank).map(|_| Dim::N(c.pick(sizes))).collect();
        if images && i == 0 {
            // An NCHW image for convolution and pooling.
            shape = vec![
                Dim::N(c.pick(&[1, 2, 3])),
                Dim::N(c.pick(&[1, 2, 3, 4, 6])),
                Dim::N(c.pick(&[4, 5, 7, 8, 9, 12])),
                // Widths from 12 on reach the register-tile convolution (full and partial
                // 16-column tiles).
                Dim::N(c.pick(&[4, 5, 7, 8, 9, 12, 16, 17, 21])),
            ];
        }
        if batched && c.chance(70) {
            shape[0] = Dim::Sym(0);
        }
        cap(&mut shape, if large { 1 << 16 } else { 2048 });
        b.input(shape);
    }
    for dtype in ["bool", "i64"] {
        if c.chance(20) {
            let rank = 1 + c.below(2);
            let mut shape: Shape = (0..rank)
                .map(|_| Dim::N(c.pick(&[1, 2, 3, 5, 8])))
                .collect();
            if batched && c.chance(50) {
                shape[0] = Dim::Sym(0);
            }
            b.typed_input(shape, dtype);
        }
    }
    let steps = 1 + c.below(10);
    for _ in 0..steps {
        // A step whose result would be too large (broadcasting can multiply sizes) is undone.
        let before = b.clone();
        structured_step(&mut b, c);
        if b.vars[before.vars.len()..]
            .iter()
            .any(|v| max_count(&v.shape) > 1 << 17)
        {
            b = before;
        }
    }
    let mut outputs = b.sinks();
    if outputs.len() > 4 {
        outputs.truncate(4);
        // The rest stay unused lets, which the checker allows.
    }
    if c.chance(20) {
        outputs.push(b.any(c));
    }
    let runs = symbol_runs(c, Flavor::Structured, &b.vars);
    finish(b, outputs, runs, c, seed, STRUCTURED_TOLERANCE)
}

// ---------------------------------------------------------------------------------------------
// Running and comparing

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self, low: f32, high: f32) -> f32 {
        let unit = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        low + (high - low) * unit
    }
}

fn input_tensors(case: &Case, run: usize) -> Vec<Tensor> {
    let mut rng = Rng(case.seed ^ (run as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    case.input_shapes
        .iter()
        .map(|(shape, dtype)| {
            let shape = concrete(shape, &case.runs[run]);
            let count: usize = shape.iter().product();
            match *dtype {
                "bool" => Tensor::from_bool(
                    shape,
                    (0..count).map(|_| rng.next().is_multiple_of(2)).collect(),
                ),
                "i64" => {
                    Tensor::from_i64(shape, (0..count).map(|_| (rng.next() % 8) as i64).collect())
                }
                _ => {
                    let values = (0..count)
                        .map(|_| {
                            if case.quantized {
                                (rng.next() % 25) as f32 * 0.25 - 3.0
                            } else {
                                rng.uniform(-3.0, 3.0)
                            }
                        })
                        .collect();
                    Tensor::from_f32(shape, values)
                }
            }
            .expect("consistent")
        })
        .collect()
}

fn param_tensors(case: &Case) -> HashMap<String, Tensor> {
    let mut rng = Rng(case.seed.rotate_left(17) ^ 0x5851_F42D_4C95_7F2D);
    case.params
        .iter()
        .map(|(name, shape)| {
            let count: usize = shape.iter().product();
            let values = (0..count).map(|_| rng.uniform(-1.0, 1.0)).collect();
            (
                name.clone(),
                Tensor::from_f32(shape.clone(), values).expect("consistent"),
            )
        })
        .collect()
}

/// Compares one output; returns the error as a fraction of the tolerance, or why it fails.
fn compare(expected: &Tensor, actual: &Tensor, tolerance: Tolerance) -> Result<f64, String> {
    if expected.shape != actual.shape {
        return Err(format!(
            "shape: interpreter {:?}, cpu {:?}",
            expected.shape, actual.shape
        ));
    }
    let (Some(e), Some(a)) = (expected.as_f32(), actual.as_f32()) else {
        return if expected == actual {
            Ok(0.0)
        } else {
            Err(format!(
                "non-f32 values differ: interpreter {:?}, cpu {:?}",
                expected.data, actual.data
            ))
        };
    };
    let scale = e
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let allowed = tolerance.abs + tolerance.rel * scale;
    let mut worst = 0.0f64;
    for (i, (x, y)) in e.iter().zip(a).enumerate() {
        let bad = if x.is_nan() || y.is_nan() || x.is_infinite() || y.is_infinite() {
            !(x.is_nan() && y.is_nan() || x == y)
        } else {
            let ratio = f64::from((x - y).abs()) / f64::from(allowed);
            worst = worst.max(ratio);
            ratio > 1.0
        };
        if bad {
            return Err(format!(
                "element {i} (of shape {:?}): interpreter {x:?}, cpu {y:?} (tolerance {allowed:e}, scale {scale})",
                expected.shape
            ));
        }
    }
    Ok(worst)
}

fn fail(case: &Case, message: String) -> TestCaseError {
    TestCaseError::fail(format!(
        "{message}\n--- source ---\n{}--- inputs {:?}, symbol values per run {:?}, seed {}, quantized {} ---",
        case.source, case.input_shapes, case.runs, case.seed, case.quantized
    ))
}

/// Runs a case: checks, compiles once, runs each binding on both engines and compares.
/// Returns the largest error as a fraction of the tolerance.
fn run_case(case: &Case) -> Result<f64, TestCaseError> {
    let result = common::check(&case.source);
    if !result.diagnostics.is_empty() {
        return Err(fail(
            case,
            format!(
                "GENERATOR BUG: the generated program does not check:\n{}",
                common::rendered(&result)
            ),
        ));
    }
    let model = select_model(&result, None).map_err(|d| fail(case, d.message))?;
    let graph = &model.graph;
    modelc_compiler::ir::verify::verify(graph)
        .map_err(|e| fail(case, format!("the lowered graph does not verify: {e:?}")))?;
    let params = param_tensors(case);
    let executable = CpuExecutable::compile(graph)
        .map_err(|e| fail(case, format!("the CPU backend does not compile it: {e}")))?;
    if std::env::var_os("MODELC_PROPTEST_SHOW").is_some() {
        eprintln!(
            "{} kernels, {} compiled to native code",
            executable.schedule().kernels.len(),
            executable.clif().matches("; kernel").count()
        );
    }
    // Every run goes through one bound program (static values computed once, the arena laid
    // out again per batch size); the first also through `run`, which binds afresh.
    let bound = executable.bind(&params).map_err(|e| {
        fail(
            case,
            format!("the CPU backend cannot bind the params: {}", e.message),
        )
    })?;
    let mut worst = 0.0f64;
    for run in 0..case.runs.len() {
        let inputs = input_tensors(case, run);
        let expected = evaluate(graph, &inputs, &params).map_err(|e| {
            fail(
                case,
                format!("run {run}: the interpreter fails: {}", e.message),
            )
        })?;
        let mut results = vec![("bound", bound.run(&inputs))];
        if run == 0 {
            results.push(("run", executable.run(&inputs, &params)));
        }
        for (how, actual) in results {
            let context = format!("run {run} ({how}, symbols {:?})", case.runs[run]);
            let actual = actual.map_err(|e| {
                fail(
                    case,
                    format!("{context}: the CPU backend fails: {}", e.message),
                )
            })?;
            if expected.len() != actual.len() {
                return Err(fail(
                    case,
                    format!(
                        "{context}: {} outputs from the interpreter, {} from the cpu",
                        expected.len(),
                        actual.len()
                    ),
                ));
            }
            for (output, (e, a)) in expected.iter().zip(&actual).enumerate() {
                match compare(e, a, case.tolerance) {
                    Ok(ratio) => worst = worst.max(ratio),
                    Err(message) => {
                        let values = if inputs.iter().all(|t| t.len() <= 64) {
                            let values: Vec<&[f32]> =
                                inputs.iter().map(|t| t.as_f32().unwrap_or(&[])).collect();
                            format!("\ninput values: {values:?}")
                        } else {
                            String::new()
                        };
                        return Err(fail(
                            case,
                            format!("{context}, output {output}: {message}{values}"),
                        ));
                    }
                }
            }
        }
    }
    Ok(worst)
}

fn generate(flavor: Flavor, choices: &[u32], seed: u64) -> Case {
    let mut c = Choices {
        data: choices,
        at: 0,
    };
    match flavor {
        Flavor::Structured => structured_case(&mut c, seed),
        _ => elementwise_case(&mut c, flavor, seed),
    }
}

fn run_property(name: &str, flavor: Flavor, cases: u32) {
    let scale = std::env::var("MODELC_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1);
    let config = Config {
        cases: cases.saturating_mul(scale),
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let worst = AtomicU64::new(0);
    let show = std::env::var_os("MODELC_PROPTEST_SHOW").is_some();
    let mut runner = TestRunner::new(config);
    let strategy = (
        proptest::collection::vec(any::<u32>(), 0..400),
        any::<u64>(),
    );
    let result = runner.run(&strategy, |(choices, seed)| {
        let case = generate(flavor, &choices, seed);
        if show {
            eprintln!("--- {name} ---\n{}", case.source);
        }
        let ratio = run_case(&case)?;
        if show {
            eprintln!("error {ratio:.3} of the tolerance");
        }
        worst.fetch_max(ratio.to_bits(), Ordering::Relaxed);
        Ok(())
    });
    eprintln!(
        "{name}: largest error {:.3} of the tolerance",
        f64::from_bits(worst.load(Ordering::Relaxed))
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, (choices, seed))) => {
            let source = std::panic::catch_unwind(|| generate(flavor, &choices, seed).source)
                .unwrap_or_else(|_| format!("(the generator panics on choices {choices:?})"));
            panic!("{name}: {reason}\n\nminimal program:\n{source}")
        }
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}

#[test]
fn elementwise_dags_match_the_interpreter() {
    run_property("elementwise", Flavor::Elementwise, 400);
}

#[test]
fn symbolic_batch_runs_at_several_sizes() {
    run_property("symbolic_batch", Flavor::Symbolic, 150);
}

#[test]
fn nan_positions_match_the_interpreter() {
    run_property("nan", Flavor::Nan, 150);
}

#[test]
fn structured_models_match_the_interpreter() {
    run_property("structured", Flavor::Structured, 400);
}
