//! The JIT's inline math (`runtime/src/cpu/jit_math.rs`) and elementwise ops against exact
//! references, through the public `modelc_runtime::cpu::jit` API.
//!
//! Transcendental functions: one-step kernels over about a million f32 values (every 4093rd bit
//! pattern, both signs, so every binade and the subnormals) plus the special values (±0, ±inf,
//! NaN, the smallest and largest subnormals, `MIN_POSITIVE`, `MAX`, and the inputs around each
//! function's overflow and underflow thresholds). Each input runs through the eight-lane loop,
//! the four-lane block and the scalar tail; the three must agree bit for bit, and each result
//! must be within the function's documented bound of the exact value (f64 math as the
//! interpreter uses; a series and continued fraction in f64 for erf). Tolerance, in ulp of the
//! exact result (the subnormal spacing 2^-149 below `MIN_POSITIVE`; an infinite result counts as
//! 2^128): exp 1.5, log 1.5, tanh 2, sigmoid 3, erf 2 — the measured maxima over all 2^32 inputs
//! are 0.990, 0.835, 1.271, 2.402 and 1.337 (`exhaustive_error_report`, ignored by default,
//! measures them again). Where the exact value is NaN or infinite the result must be exactly that.
//!
//! Other ops must match the interpreter's kernels exactly (max/min with NaN and signed zeros,
//! comparisons, select, bool operands, casts, the constant powers), except `x ** 3`, computed
//! as `x * x * x` with two roundings, which must be within 1.5 ulp of the exact cube.

use modelc_compiler::interp::kernels;
use modelc_compiler::interp::Tensor;
use modelc_compiler::ir::{BinaryOp, UnaryOp};
use modelc_runtime::cpu::jit::{Access, Jit, KernelFn, Step};

/// A compiled kernel with the JIT memory it lives in.
struct Compiled {
    _jit: Jit,
    function: KernelFn,
}

fn compile(steps: &[Step], accesses: &[Access]) -> Compiled {
    let mut jit = Jit::new().expect("a JIT for the host");
    let (function, _clif) = jit.compile(steps, accesses).expect("compiles");
    Compiled {
        _jit: jit,
        function,
    }
}

impl Compiled {
    /// Runs over an output viewed as `[outer, inner]`; `operands` are raw pointers to data laid
    /// out as each operand's access pattern reads it.
    fn run_raw(&self, operands: &[*const u8], outer: usize, inner: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; outer * inner];
        let pointers: Vec<*const f32> = operands.iter().map(|p| *p as *const f32).collect();
        // SAFETY: callers pass pointers covering what each access pattern reads for this
        // `[outer, inner]` view, and `out` holds `outer * inner` elements.
        unsafe {
            (self.function)(
                pointers.as_ptr(),
                out.as_mut_ptr(),
                outer as u64,
                inner as u64,
            )
        };
        out
    }

    /// Runs with every operand an f32 slice of the output's length (`Full` access).
    fn run(&self, operands: &[&[f32]], outer: usize, inner: usize) -> Vec<f32> {
        for operand in operands {
            assert_eq!(operand.len(), outer * inner);
        }
        let pointers: Vec<*const u8> = operands.iter().map(|o| o.as_ptr() as *const u8).collect();
        self.run_raw(&pointers, outer, inner)
    }

    /// Runs one full-access operand through the eight-lane loop (one row), the four-lane block
    /// (rows of four) and the scalar tail (rows of one); asserts the three agree bit for bit
    /// (any NaN equal to any NaN) and returns the result. `x.len()` is a multiple of 8.
    fn run_all_paths(&self, x: &[f32]) -> Vec<f32> {
        assert_eq!(x.len() % 8, 0);
        let wide = self.run(&[x], 1, x.len());
        let four = self.run(&[x], x.len() / 4, 4);
        let scalar = self.run(&[x], x.len(), 1);
        for (i, &input) in x.iter().enumerate() {
            for (path, other) in [("four-lane", four[i]), ("scalar", scalar[i])] {
                assert!(
                    same(wide[i], other),
                    "input {input:e} ({:#010x}): eight-lane loop gives {:e}, {path} path {:e}",
                    input.to_bits(),
                    wide[i],
                    other
                );
            }
        }
        wide
    }
}

/// Equal bit patterns, or both NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The error of `got` in ulp of the exact value `exact`: the f32 spacing at `|exact|`
/// (2^-149 below `MIN_POSITIVE`). An infinite `got` counts as ±2^128. A NaN exact value, or
/// one of magnitude 2^128 or more, must be matched exactly by NaN or the infinity of its sign
/// (error 0, else infinity).
fn ulp_error(got: f32, exact: f64) -> f64 {
    if exact.is_nan() || got.is_nan() {
        return if exact.is_nan() && got.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if exact.abs() >= 2f64.powi(128) {
        // Beyond every f32 (and its rounding boundary): only infinity is right.
        return if got.is_infinite() && (got > 0.0) == (exact > 0.0) {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let got = if got.is_infinite() {
        2f64.powi(128).copysign(f64::from(got))
    } else {
        f64::from(got)
    };
    let exponent = if exact == 0.0 {
        -126
    } else {
        (((exact.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(-126)
    };
    (got - exact).abs() / 2f64.powi(exponent - 23)
}

/// About a million f32 values: every 4093rd bit pattern (both signs, all binades, subnormals,
/// infinities' neighbourhood and some NaNs), the special values and each function's
/// thresholds, padded to a multiple of 8.
fn inputs(thresholds: &[f32]) -> Vec<f32> {
    let mut values: Vec<f32> = (0..=u32::MAX).step_by(4093).map(f32::from_bits).collect();
    let specials = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(1),
        -f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        -f32::from_bits(0x007f_ffff),
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        1.0,
        -1.0,
        0.5,
        2.0,
    ];
    values.extend(specials);
    for &threshold in thresholds {
        // The threshold and its eight neighbours on each side.
        let mut below = threshold;
        let mut above = threshold;
        values.push(threshold);
        for _ in 0..8 {
            below = neighbour(below, -1);
            above = neighbour(above, 1);
            values.push(below);
            values.push(above);
        }
    }
    values.resize(values.len().next_multiple_of(8), 1.5);
    values
}

/// The next f32 up (`direction` 1) or down (-1) from a finite nonzero `x`.
fn neighbour(x: f32, direction: i32) -> f32 {
    let away_from_zero = (x > 0.0) == (direction > 0);
    let bits = x.to_bits();
    f32::from_bits(if away_from_zero { bits + 1 } else { bits - 1 })
}

/// `erf` in f64 to about 1e-15: the Taylor series below 2 (terms at most e^4, so cancellation
/// costs under two digits), `1 - erfc` by its continued fraction from 2 to 6, and ±1 beyond
/// (erfc(6) is 2e-17).
fn erf_reference(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let value = if a < 2.0 {
        // erf(a) = 2/sqrt(pi) * sum (-1)^n a^(2n+1) / (n! (2n+1)).
        let mut term = a; // (-1)^n a^(2n+1) / n!
        let mut sum = a;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -a * a / n;
            let contribution = term / (2.0 * n + 1.0);
            sum += contribution;
            if contribution.abs() <= 1e-18 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if a < 6.0 {
        // erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / (a + ...)))).
        let mut fraction = a;
        for k in (1..=200).rev() {
            fraction = a + f64::from(k) / 2.0 / fraction;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / fraction
    } else {
        1.0
    };
    value.copysign(x)
}

struct Function {
    op: UnaryOp,
    exact: fn(f64) -> f64,
    /// The bound the test asserts, in ulp (see the module documentation).
    bound: f64,
    /// Inputs around which the result overflows, underflows or changes regime.
    thresholds: &'static [f32],
}

fn functions() -> [Function; 5] {
    [
        Function {
            op: UnaryOp::Exp,
            exact: f64::exp,
            bound: 1.5,
            // Overflow to inf, the last normal result, underflow to 0, the clamps.
            thresholds: &[88.722_84, -87.336_55, -103.972_08, 89.0, -104.0],
        },
        Function {
            op: UnaryOp::Log,
            exact: f64::ln,
            bound: 1.5,
            thresholds: &[
                1.0,
                std::f32::consts::SQRT_2,
                std::f32::consts::FRAC_1_SQRT_2,
            ],
        },
        Function {
            op: UnaryOp::Tanh,
            exact: f64::tanh,
            bound: 2.0,
            // The polynomial's end, and where tanh rounds to 1.
            thresholds: &[1.0, -1.0, 9.011_049, 44.4],
        },
        Function {
            op: UnaryOp::Sigmoid,
            exact: |v| 1.0 / (1.0 + (-v).exp()),
            bound: 3.0,
            // Where exp(-|x|) becomes subnormal, underflows, and where sigmoid rounds to 1.
            thresholds: &[-87.336_55, -103.972_08, 16.635_532, 88.722_84],
        },
        Function {
            op: UnaryOp::Erf,
            exact: erf_reference,
            bound: 2.0,
            // The polynomial's end, the clamp, where erf rounds to 1.
            thresholds: &[1.0, -1.0, 4.0, 3.919_206_3],
        },
    ]
}

fn unary_kernel(op: UnaryOp) -> Compiled {
    compile(&[Step::Load(0), Step::Unary(op, 0)], &[Access::Full])
}

#[test]
fn transcendental_functions_are_within_their_bounds_on_every_path() {
    for function in functions() {
        let x = inputs(function.thresholds);
        let kernel = unary_kernel(function.op);
        let got = kernel.run_all_paths(&x);
        let mut worst = (0.0f64, 0.0f32);
        for (&input, &result) in x.iter().zip(&got) {
            let error = ulp_error(result, (function.exact)(f64::from(input)));
            assert!(
                error <= function.bound,
                "{:?}({input:e}) = {result:e}, exact {:e}: {error} ulp, over the bound {}",
                function.op,
                (function.exact)(f64::from(input)),
                function.bound
            );
            if error > worst.0 {
                worst = (error, input);
            }
        }
        println!(
            "{:?}: max {:.3} ulp at {:e} over {} inputs",
            function.op,
            worst.0,
            worst.1,
            x.len()
        );
    }
}

#[test]
fn the_erf_reference_agrees_with_the_interpreter() {
    // The interpreter rounds libm's erf once; the test's series must round to within an ulp.
    let x: Vec<f32> = inputs(&[]).into_iter().filter(|v| v.is_finite()).collect();
    let tensor = Tensor::from_f32(vec![x.len()], x.clone()).expect("shape fits");
    let interpreted = kernels::unary(UnaryOp::Erf, &tensor, &[x.len()]).expect("runs");
    for (&input, &want) in x.iter().zip(interpreted.as_f32().expect("f32")) {
        let error = ulp_error(want, erf_reference(f64::from(input)));
        assert!(error <= 0.5 + 1e-6, "erf({input:e}): {error} ulp");
    }
}

#[test]
fn special_values_match_the_interpreter() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let denormal = f32::from_bits(1);
    let cases: &[(UnaryOp, f32, f32)] = &[
        (UnaryOp::Exp, -inf, 0.0),
        (UnaryOp::Exp, inf, inf),
        (UnaryOp::Exp, 0.0, 1.0),
        (UnaryOp::Exp, -0.0, 1.0),
        (UnaryOp::Exp, 89.0, inf),
        (UnaryOp::Exp, -110.0, 0.0),
        (UnaryOp::Log, 0.0, -inf),
        (UnaryOp::Log, -0.0, -inf),
        (UnaryOp::Log, -1.0, nan),
        (UnaryOp::Log, -denormal, nan),
        (UnaryOp::Log, -inf, nan),
        (UnaryOp::Log, inf, inf),
        (UnaryOp::Log, 1.0, 0.0),
        (UnaryOp::Tanh, inf, 1.0),
        (UnaryOp::Tanh, -inf, -1.0),
        (UnaryOp::Tanh, 0.0, 0.0),
        (UnaryOp::Tanh, -0.0, -0.0),
        (UnaryOp::Tanh, 20.0, 1.0),
        (UnaryOp::Tanh, -denormal, -denormal),
        (UnaryOp::Sigmoid, -inf, 0.0),
        (UnaryOp::Sigmoid, inf, 1.0),
        (UnaryOp::Sigmoid, 0.0, 0.5),
        (UnaryOp::Sigmoid, -0.0, 0.5),
        (UnaryOp::Erf, inf, 1.0),
        (UnaryOp::Erf, -inf, -1.0),
        (UnaryOp::Erf, 0.0, 0.0),
        (UnaryOp::Erf, -0.0, -0.0),
        (UnaryOp::Erf, 5.0, 1.0),
    ];
    let ops = [
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Erf,
    ];
    for op in ops {
        let mut x: Vec<f32> = cases
            .iter()
            .filter(|(o, _, _)| *o == op)
            .map(|(_, input, _)| *input)
            .collect();
        x.extend([nan, -nan]);
        x.resize(x.len().next_multiple_of(8), nan);
        let got = unary_kernel(op).run_all_paths(&x);
        let tensor = Tensor::from_f32(vec![x.len()], x.clone()).expect("shape fits");
        let interpreted = kernels::unary(op, &tensor, &[x.len()]).expect("runs");
        let interpreted = interpreted.as_f32().expect("f32");
        for (i, &input) in x.iter().enumerate() {
            let expected = cases
                .iter()
                .find(|(o, v, _)| *o == op && v.to_bits() == input.to_bits())
                .map_or(nan, |(_, _, e)| *e);
            assert!(
                same(got[i], expected),
                "{op:?}({input:e}) = {:e}, expected {expected:e}",
                got[i]
            );
            assert!(
                same(got[i], interpreted[i]),
                "{op:?}({input:e}) = {:e}, the interpreter gives {:e}",
                got[i],
                interpreted[i]
            );
        }
    }
}

/// Every pair of a set of values with NaNs, infinities and both zeros, as two operands.
fn pairs() -> (Vec<f32>, Vec<f32>) {
    let values = [
        f32::NAN,
        -f32::NAN,
        f32::NEG_INFINITY,
        -1.5,
        -1.0,
        -0.0,
        0.0,
        f32::from_bits(1),
        1.0,
        2.5,
        f32::MAX,
        f32::INFINITY,
    ];
    let mut a = Vec::new();
    let mut b = Vec::new();
    for x in values {
        for y in values {
            a.push(x);
            b.push(y);
        }
    }
    a.resize(a.len().next_multiple_of(8), 0.0);
    b.resize(b.len().next_multiple_of(8), -0.0);
    (a, b)
}

/// The interpreter's result of a binary op on two equally long f32 vectors.
fn interpret_binary(op: BinaryOp, a: &[f32], b: &[f32]) -> Tensor {
    let shape = vec![a.len()];
    let a = Tensor::from_f32(shape.clone(), a.to_vec()).expect("shape fits");
    let b = Tensor::from_f32(shape.clone(), b.to_vec()).expect("shape fits");
    kernels::binary(op, &a, &b, &shape).expect("runs")
}

/// Runs a two-operand kernel on every path (eight lanes, four, scalar) and checks the paths
/// agree; returns the result.
fn run_two(kernel: &Compiled, a: &[f32], b: &[f32]) -> Vec<f32> {
    let n = a.len();
    let wide = kernel.run(&[a, b], 1, n);
    let four = kernel.run(&[a, b], n / 4, 4);
    let scalar = kernel.run(&[a, b], n, 1);
    for i in 0..n {
        assert!(
            same(wide[i], four[i]) && same(wide[i], scalar[i]),
            "element {i}"
        );
    }
    wide
}

#[test]
fn max_and_min_propagate_nan_and_order_signed_zeros_as_the_interpreter() {
    let (a, b) = pairs();
    for op in [BinaryOp::Max, BinaryOp::Min] {
        let expected = interpret_binary(op, &a, &b);
        let expected = expected.as_f32().expect("f32");
        // Both operands loaded: the general compare, select and NaN fix-up.
        let kernel = compile(
            &[Step::Load(0), Step::Load(1), Step::Binary(op, 0, 1)],
            &[Access::Full, Access::Full],
        );
        let got = run_two(&kernel, &a, &b);
        for i in 0..a.len() {
            assert!(
                same(got[i], expected[i]),
                "{op:?}({:e}, {:e}) = {:e}, the interpreter gives {:e}",
                a[i],
                b[i],
                got[i],
                expected[i]
            );
        }
        // A constant operand on either side (relu is `maximum(x, 0.0)`): the shorter forms.
        for constant in [0.0f32, -0.0, 1.0, f32::NEG_INFINITY, f32::NAN] {
            let c = vec![constant; a.len()];
            let right = compile(
                &[
                    Step::Load(0),
                    Step::Constant(constant),
                    Step::Binary(op, 0, 1),
                ],
                &[Access::Full],
            );
            let left = compile(
                &[
                    Step::Constant(constant),
                    Step::Load(0),
                    Step::Binary(op, 0, 1),
                ],
                &[Access::Full],
            );
            let expected_right = interpret_binary(op, &a, &c);
            let expected_left = interpret_binary(op, &c, &a);
            let got_right = right.run_all_paths(&a);
            let got_left = left.run_all_paths(&a);
            for i in 0..a.len() {
                let (want_right, want_left) = (
                    expected_right.as_f32().expect("f32")[i],
                    expected_left.as_f32().expect("f32")[i],
                );
                assert!(
                    same(got_right[i], want_right),
                    "{op:?}({:e}, constant {constant:e}) = {:e}, expected {want_right:e}",
                    a[i],
                    got_right[i]
                );
                assert!(
                    same(got_left[i], want_left),
                    "{op:?}(constant {constant:e}, {:e}) = {:e}, expected {want_left:e}",
                    a[i],
                    got_left[i]
                );
            }
        }
    }
}

#[test]
fn comparisons_match_the_interpreter_including_nan() {
    let (a, b) = pairs();
    for op in [
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ] {
        // where(a op b, 1.0, 0.0) through a cast of the comparison to f32.
        let kernel = compile(
            &[
                Step::Load(0),
                Step::Load(1),
                Step::Binary(op, 0, 1),
                Step::BoolToF32(2),
            ],
            &[Access::Full, Access::Full],
        );
        let got = run_two(&kernel, &a, &b);
        let expected = interpret_binary(op, &a, &b);
        let expected = expected.as_bool().expect("bool");
        for i in 0..a.len() {
            let want = if expected[i] { 1.0 } else { 0.0 };
            assert!(
                same(got[i], want),
                "{op:?}({:e}, {:e}) gives {:e}",
                a[i],
                b[i],
                got[i]
            );
        }
    }
}

#[test]
fn select_logic_and_casts_on_bool_operands_of_every_access() {
    // where(not((x < y) and c) or x != x, x, y) * cast(c, f32)
    //     + cast((cast(x, bool) == true) != c, f32)
    // with c a bool operand, read with each access pattern.
    let steps = [
        Step::Load(0),                       // 0: x
        Step::Load(1),                       // 1: y
        Step::LoadBool(2),                   // 2: c
        Step::Binary(BinaryOp::Lt, 0, 1),    // 3: x < y
        Step::Binary(BinaryOp::And, 3, 2),   // 4
        Step::Unary(UnaryOp::Not, 4),        // 5
        Step::Binary(BinaryOp::Ne, 0, 0),    // 6: x is NaN
        Step::Binary(BinaryOp::Or, 5, 6),    // 7
        Step::Select(7, 0, 1),               // 8
        Step::BoolToF32(2),                  // 9: cast(c, f32)
        Step::Binary(BinaryOp::Mul, 8, 9),   // 10
        Step::F32ToBool(0),                  // 11: cast(x, bool)
        Step::BoolConstant(true),            // 12
        Step::Binary(BinaryOp::Eq, 11, 12),  // 13: cast(x, bool) == true
        Step::Binary(BinaryOp::Ne, 13, 2),   // 14: ... != c
        Step::BoolToF32(14),                 // 15
        Step::Binary(BinaryOp::Add, 10, 15), // 16
    ];
    let expected_element = |x: f32, y: f32, c: bool| -> f32 {
        let condition = !((x < y) && c) || x.is_nan();
        let selected = if condition { x } else { y };
        let cast_c = if c { 1.0 } else { 0.0 };
        let flag = (x != 0.0) != c;
        selected * cast_c + if flag { 1.0 } else { 0.0 }
    };
    let (outer, inner) = (7, 13); // Rows of 13: one eight-lane iteration, one four, one scalar.
    let n = outer * inner;
    let values = [f32::NAN, -2.0, -0.0, 0.0, 0.5, 1.0, 3.0, f32::INFINITY];
    let x: Vec<f32> = (0..n).map(|i| values[i % values.len()]).collect();
    let y: Vec<f32> = (0..n).map(|i| values[(i * 3 + 1) % values.len()]).collect();
    for access in [Access::Full, Access::Inner, Access::Outer, Access::Scalar] {
        let c_len = match access {
            Access::Full => n,
            Access::Inner => inner,
            Access::Outer => outer,
            Access::Scalar => 1,
        };
        let c: Vec<bool> = (0..c_len).map(|i| (i * 7 + 2) % 3 != 0).collect();
        let c_of = |row: usize, column: usize| match access {
            Access::Full => c[row * inner + column],
            Access::Inner => c[column],
            Access::Outer => c[row],
            Access::Scalar => c[0],
        };
        let kernel = compile(&steps, &[Access::Full, Access::Full, access]);
        let got = kernel.run_raw(
            &[
                x.as_ptr() as *const u8,
                y.as_ptr() as *const u8,
                c.as_ptr() as *const u8,
            ],
            outer,
            inner,
        );
        for row in 0..outer {
            for column in 0..inner {
                let i = row * inner + column;
                let want = expected_element(x[i], y[i], c_of(row, column));
                assert!(
                    same(got[i], want),
                    "{access:?} ({row}, {column}): x {:e}, y {:e}, c {}: got {:e}, want {want:e}",
                    x[i],
                    y[i],
                    c_of(row, column),
                    got[i]
                );
            }
        }
    }
}

#[test]
fn constant_powers_match_the_interpreter() {
    let mut x = inputs(&[]);
    x.extend([-8.0, -0.25, 4.0, 1e-20, 1e20, 1e13, -1e13]);
    x.resize(x.len().next_multiple_of(8), -8.0);
    for exponent in [2.0f32, 3.0, 0.5, 1.0, -1.0] {
        let kernel = compile(&[Step::Load(0), Step::Power(0, exponent)], &[Access::Full]);
        let got = kernel.run_all_paths(&x);
        let expected = interpret_binary(BinaryOp::Pow, &x, &vec![exponent; x.len()]);
        let expected = expected.as_f32().expect("f32");
        for (i, &input) in x.iter().enumerate() {
            let (g, e) = (got[i], expected[i]);
            let ok = if exponent == 3.0 {
                // Two roundings instead of one: within 1.5 ulp of the exact cube (the
                // interpreter is within 0.5), NaN where it gives NaN.
                same(g, e) || ulp_error(g, f64::from(input).powi(3)) <= 1.5
            } else {
                same(g, e)
            };
            assert!(
                ok,
                "{input:e} ** {exponent} = {g:e}, the interpreter gives {e:e}"
            );
        }
    }
}

#[test]
fn kernels_whose_result_is_bool_are_refused() {
    let mut jit = Jit::new().expect("a JIT");
    let result = jit.compile(
        &[
            Step::Load(0),
            Step::Load(1),
            Step::Binary(BinaryOp::Lt, 0, 1),
        ],
        &[Access::Full, Access::Full],
    );
    assert!(result.is_err());
    let result = jit.compile(
        &[Step::Load(0), Step::Unary(UnaryOp::Not, 0)],
        &[Access::Full],
    );
    assert!(result.is_err(), "not on an f32 value");
}

/// Re-measures the table in `jit_math.rs` over all 2^32 inputs (half an hour in the test
/// profile on a busy two-core machine, the erf reference being the slowest). Run with
/// `cargo test --release --test jit_math -- --ignored --nocapture`.
#[test]
#[ignore = "exhaustive over 2^32 inputs: about 30 minutes; run with --ignored"]
fn exhaustive_error_report() {
    const CHUNK: u64 = 1 << 22;
    for function in functions() {
        let kernel = unary_kernel(function.op);
        let mut worst = (0.0f64, 0.0f32);
        let mut start: u64 = 0;
        while start < 1 << 32 {
            let x: Vec<f32> = (start..start + CHUNK)
                .map(|bits| f32::from_bits(bits as u32))
                .collect();
            let got = kernel.run(&[&x], 1, x.len());
            for (&input, &result) in x.iter().zip(&got) {
                let error = ulp_error(result, (function.exact)(f64::from(input)));
                if error > worst.0 {
                    worst = (error, input);
                }
            }
            start += CHUNK;
        }
        println!(
            "{:?}: max {:.4} ulp at {:e} ({:#010x}), bound {}",
            function.op,
            worst.0,
            worst.1,
            worst.1.to_bits(),
            function.bound
        );
        assert!(worst.0 <= function.bound);
    }
}
