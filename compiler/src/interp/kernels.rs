//! The reference kernels: one plain function per op family.
//!
//! Every kernel takes its operands as borrowed [`Tensor`]s plus the output shape the graph
//! declares for the node (already evaluated and size-checked by the caller), validates that
//! the operands are consistent with that shape *before* allocating anything, and returns the
//! result or a plain-text reason. The caller ([`super::eval`]) wraps the reason into an
//! `EvalError` carrying the op name and the node's span.
//!
//! These loops are the oracle every backend is tested against, so they favour obviously
//! correct index arithmetic over speed. The two hot spots (matmul and conv) still use the
//! i-k-j loop order over contiguous rows and accumulate in `f64`, which keeps them fast enough
//! for test models with around a billion multiply-adds.
//!
//! Invariant relied on for indexing: every tensor reaching a kernel has
//! `data.len() == product(shape)` (the evaluator checks inputs and parameters at the boundary,
//! and every kernel builds its outputs that way), so offsets derived from validated shapes and
//! strides are in bounds.

use super::tensor::{element_count, Tensor, TensorData};
use crate::ir::{BinaryOp, DType, Literal, PoolKind, ReduceOp, UnaryOp};
use std::ops::Range;

/// What a kernel returns: the result, or why the operands do not fit the op.
pub type KernelResult<T = Tensor> = Result<T, String>;

// ---------------------------------------------------------------------------------------------
// Element types.

/// The three element types, so that movement kernels are written once, generically.
pub trait Element: Copy + PartialOrd + 'static {
    /// The runtime dtype of this element type.
    const DTYPE: DType;
    /// The tensor's values, when it holds this element type.
    fn view(tensor: &Tensor) -> Option<&[Self]>;
    /// Mutable values, when the tensor holds this element type.
    fn view_mut(tensor: &mut Tensor) -> Option<&mut Vec<Self>>;
    /// Tensor data holding these values.
    fn wrap(values: Vec<Self>) -> TensorData;
    /// The zero of the type (`false` for bool), used to preallocate outputs.
    fn zero() -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn view(tensor: &Tensor) -> Option<&[f32]> {
        tensor.as_f32()
    }
    fn view_mut(tensor: &mut Tensor) -> Option<&mut Vec<f32>> {
        match &mut tensor.data {
            TensorData::F32(values) => Some(values),
            _ => None,
        }
    }
    fn wrap(values: Vec<f32>) -> TensorData {
        TensorData::F32(values)
    }
    fn zero() -> f32 {
        0.0
    }
}

impl Element for i64 {
    const DTYPE: DType = DType::I64;
    fn view(tensor: &Tensor) -> Option<&[i64]> {
        tensor.as_i64()
    }
    fn view_mut(tensor: &mut Tensor) -> Option<&mut Vec<i64>> {
        match &mut tensor.data {
            TensorData::I64(values) => Some(values),
            _ => None,
        }
    }
    fn wrap(values: Vec<i64>) -> TensorData {
        TensorData::I64(values)
    }
    fn zero() -> i64 {
        0
    }
}

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn view(tensor: &Tensor) -> Option<&[bool]> {
        tensor.as_bool()
    }
    fn view_mut(tensor: &mut Tensor) -> Option<&mut Vec<bool>> {
        match &mut tensor.data {
            TensorData::Bool(values) => Some(values),
            _ => None,
        }
    }
    fn wrap(values: Vec<bool>) -> TensorData {
        TensorData::Bool(values)
    }
    fn zero() -> bool {
        false
    }
}

/// Calls a generic function instantiated for the element type of a runtime dtype.
macro_rules! dispatch_dtype {
    ($dtype:expr, $function:ident ( $($argument:expr),* $(,)? )) => {
        match $dtype {
            DType::F32 => $function::<f32>($($argument),*),
            DType::I64 => $function::<i64>($($argument),*),
            DType::Bool => $function::<bool>($($argument),*),
        }
    };
}

/// The values of a tensor as element type `T`, or an error naming both dtypes.
fn values_of<T: Element>(tensor: &Tensor) -> KernelResult<&[T]> {
    T::view(tensor).ok_or_else(|| format!("expected a {} tensor, got {}", T::DTYPE, tensor.dtype()))
}

fn tensor_of<T: Element>(shape: &[usize], values: Vec<T>) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: T::wrap(values),
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes, strides and broadcasting.

/// `i64[2, 3]`-style text for a concrete shape, for error messages.
pub fn describe(tensor: &Tensor) -> String {
    format!("{}{}", tensor.dtype(), format_concrete_shape(&tensor.shape))
}

/// `[2, 3]`.
pub fn format_concrete_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Row-major strides, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut running = 1usize;
    for axis in (0..shape.len()).rev() {
        strides[axis] = running;
        // Cannot overflow for a shape whose element count fits in memory; saturate anyway so
        // that a zero-sized tensor with huge other dims does not trip debug overflow checks.
        running = running.saturating_mul(shape[axis]);
    }
    strides
}

/// Strides that read `input_shape` as if it were broadcast (NumPy rules) to `output_shape`:
/// one stride per output axis, zero along broadcast axes.
pub fn broadcast_strides(
    input_shape: &[usize],
    output_shape: &[usize],
) -> KernelResult<Vec<usize>> {
    let mismatch = || {
        format!(
            "shape {} does not broadcast to {}",
            format_concrete_shape(input_shape),
            format_concrete_shape(output_shape)
        )
    };
    if input_shape.len() > output_shape.len() {
        return Err(mismatch());
    }
    let input_strides = contiguous_strides(input_shape);
    let leading = output_shape.len() - input_shape.len();
    let mut strides = vec![0; output_shape.len()];
    for (input_axis, (&input_dim, &input_stride)) in
        input_shape.iter().zip(&input_strides).enumerate()
    {
        let output_axis = input_axis + leading;
        if input_dim == output_shape[output_axis] {
            // A size-1 axis never moves, so its stride is irrelevant; zero keeps it uniform.
            strides[output_axis] = if input_dim == 1 { 0 } else { input_stride };
        } else if input_dim == 1 {
            strides[output_axis] = 0;
        } else {
            return Err(mismatch());
        }
    }
    Ok(strides)
}

/// Visits every position of `output_shape` in row-major order and hands `visit` the matching
/// offset into each of `N` strided operands. The innermost axis runs as a tight loop; the outer
/// axes advance like an odometer, so no per-element division or allocation happens.
fn for_each_strided<const N: usize>(
    output_shape: &[usize],
    strides: [&[usize]; N],
    mut visit: impl FnMut([usize; N]),
) {
    if output_shape.contains(&0) {
        return;
    }
    let rank = output_shape.len();
    if rank == 0 {
        visit([0; N]);
        return;
    }
    let inner_length = output_shape[rank - 1];
    let inner_strides: [usize; N] = std::array::from_fn(|k| strides[k][rank - 1]);
    let mut outer_index = vec![0usize; rank - 1];
    let mut base = [0usize; N];
    loop {
        let mut offsets = base;
        for _ in 0..inner_length {
            visit(offsets);
            for k in 0..N {
                offsets[k] += inner_strides[k];
            }
        }
        // Advance the outer odometer; return once it wraps past the first axis.
        let mut axis = rank - 1;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            outer_index[axis] += 1;
            for k in 0..N {
                base[k] += strides[k][axis];
            }
            if outer_index[axis] < output_shape[axis] {
                break;
            }
            for k in 0..N {
                base[k] -= strides[k][axis] * output_shape[axis];
            }
            outer_index[axis] = 0;
        }
    }
}

fn map_one<A: Copy, U>(
    a: &[A],
    a_strides: &[usize],
    output_shape: &[usize],
    count: usize,
    function: impl Fn(A) -> U,
) -> Vec<U> {
    let mut out = Vec::with_capacity(count);
    for_each_strided(output_shape, [a_strides], |[i]| out.push(function(a[i])));
    out
}

fn map_two<A: Copy, B: Copy, U>(
    a: &[A],
    a_strides: &[usize],
    b: &[B],
    b_strides: &[usize],
    output_shape: &[usize],
    count: usize,
    function: impl Fn(A, B) -> U,
) -> Vec<U> {
    let mut out = Vec::with_capacity(count);
    for_each_strided(output_shape, [a_strides, b_strides], |[i, j]| {
        out.push(function(a[i], b[j]))
    });
    out
}

fn output_count(output_shape: &[usize]) -> KernelResult<usize> {
    element_count(output_shape).ok_or_else(|| "output element count overflows".to_string())
}

/// Product of a slice of dims (the caller knows it fits: it divides an existing count).
fn product(dims: &[usize]) -> usize {
    dims.iter().product()
}

fn check_axis(axis: usize, rank: usize) -> KernelResult<()> {
    if axis < rank {
        Ok(())
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

fn expect_shape(what: &str, actual: &[usize], expected: &[usize]) -> KernelResult<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "{what} has shape {} but the node declares {}",
            format_concrete_shape(actual),
            format_concrete_shape(expected)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Sources.

/// A tensor of `shape` filled with `value`, which must have the node's dtype.
pub fn fill(value: Literal, dtype: DType, output_shape: &[usize]) -> KernelResult {
    if value.dtype() != dtype {
        return Err(format!(
            "fill value {value} is {} but the node is {dtype}",
            value.dtype()
        ));
    }
    output_count(output_shape)?;
    Ok(Tensor::full(output_shape.to_vec(), value))
}

/// `0, 1, 2, ...` along `axis`, broadcast over the other axes; i64 or f32.
pub fn iota(axis: usize, dtype: DType, output_shape: &[usize]) -> KernelResult {
    check_axis(axis, output_shape.len())?;
    let count = output_count(output_shape)?;
    let axis_length = output_shape[axis];
    let inner = product(&output_shape[axis + 1..]);
    // Position along `axis` of the flat index `i` is `(i / inner) % axis_length`.
    let position = |flat: usize| (flat / inner.max(1)) % axis_length.max(1);
    let data = match dtype {
        DType::I64 => TensorData::I64((0..count).map(|i| position(i) as i64).collect()),
        DType::F32 => TensorData::F32((0..count).map(|i| position(i) as f32).collect()),
        DType::Bool => return Err("iota cannot produce bool".to_string()),
    };
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data,
    })
}

// ---------------------------------------------------------------------------------------------
// Elementwise.

/// A unary op, broadcasting its operand to the output shape. f32 math runs in f64 and rounds
/// once, so the oracle is as accurate as an f32 result can be.
pub fn unary(op: UnaryOp, x: &Tensor, output_shape: &[usize]) -> KernelResult {
    let strides = broadcast_strides(&x.shape, output_shape)?;
    let count = output_count(output_shape)?;
    let unsupported = || Err(format!("{op:?} is not defined on {}", x.dtype()));
    let data = match &x.data {
        TensorData::F32(values) => {
            let function: fn(f64) -> f64 = match op {
                UnaryOp::Neg => |v| -v,
                UnaryOp::Abs => f64::abs,
                UnaryOp::Exp => f64::exp,
                UnaryOp::Log => f64::ln,
                UnaryOp::Sqrt => f64::sqrt,
                UnaryOp::Rsqrt => |v| 1.0 / v.sqrt(),
                UnaryOp::Tanh => f64::tanh,
                UnaryOp::Sigmoid => |v| 1.0 / (1.0 + (-v).exp()),
                UnaryOp::Erf => libm::erf,
                UnaryOp::Sin => f64::sin,
                UnaryOp::Cos => f64::cos,
                UnaryOp::Floor => f64::floor,
                UnaryOp::Not => return unsupported(),
            };
            TensorData::F32(map_one(values, &strides, output_shape, count, |v| {
                function(f64::from(v)) as f32
            }))
        }
        TensorData::I64(values) => match op {
            // Wrapping, like NumPy: `-i64::MIN` is `i64::MIN`, never a panic.
            UnaryOp::Neg => TensorData::I64(map_one(
                values,
                &strides,
                output_shape,
                count,
                i64::wrapping_neg,
            )),
            UnaryOp::Abs => TensorData::I64(map_one(
                values,
                &strides,
                output_shape,
                count,
                i64::wrapping_abs,
            )),
            _ => return unsupported(),
        },
        TensorData::Bool(values) => match op {
            UnaryOp::Not => {
                TensorData::Bool(map_one(values, &strides, output_shape, count, |v| !v))
            }
            _ => return unsupported(),
        },
    };
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data,
    })
}

/// Python's `%` on floats: the remainder takes the sign of the divisor.
fn python_remainder_f64(a: f64, b: f64) -> f64 {
    let remainder = a % b;
    if remainder != 0.0 && ((remainder < 0.0) != (b < 0.0)) {
        remainder + b
    } else {
        remainder
    }
}

/// Floor division on integers (Python's `//`); the caller has ruled out a zero divisor.
fn floor_divide_i64(a: i64, b: i64) -> i64 {
    // Wrapping only matters for `i64::MIN / -1`, which wraps like NumPy instead of panicking.
    let quotient = a.wrapping_div(b);
    if a.wrapping_rem(b) != 0 && ((a < 0) != (b < 0)) {
        quotient - 1
    } else {
        quotient
    }
}

/// Python's `%` on integers; the caller has ruled out a zero divisor.
fn python_remainder_i64(a: i64, b: i64) -> i64 {
    let remainder = a.wrapping_rem(b);
    if remainder != 0 && ((remainder < 0) != (b < 0)) {
        remainder + b
    } else {
        remainder
    }
}

/// Integer power by squaring, wrapping on overflow; the caller has ruled out negative exponents.
fn power_i64(base: i64, exponent: i64) -> i64 {
    let mut result: i64 = 1;
    let mut square = base;
    let mut remaining = exponent as u64;
    while remaining > 0 {
        if remaining & 1 == 1 {
            result = result.wrapping_mul(square);
        }
        remaining >>= 1;
        if remaining > 0 {
            square = square.wrapping_mul(square);
        }
    }
    result
}

/// NumPy's `maximum`/`minimum`: a NaN in either operand gives NaN.
fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a >= b {
        a
    } else {
        b
    }
}

fn nan_min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a <= b {
        a
    } else {
        b
    }
}

/// A binary op with NumPy broadcasting of both operands to the output shape. Comparisons give
/// bool; arithmetic keeps the operand dtype; `And`/`Or` are on bool.
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor, output_shape: &[usize]) -> KernelResult {
    let a_strides = broadcast_strides(&a.shape, output_shape)?;
    let b_strides = broadcast_strides(&b.shape, output_shape)?;
    let count = output_count(output_shape)?;
    let unsupported = || Err(format!("{op:?} is not defined on {}", a.dtype()));

    // Each arm instantiates `map_two` with its own closure so the element loop is inlined.
    macro_rules! apply {
        ($x:expr, $y:expr, $wrap:path, $function:expr) => {
            $wrap(map_two(
                $x,
                &a_strides,
                $y,
                &b_strides,
                output_shape,
                count,
                $function,
            ))
        };
    }

    let data = match (&a.data, &b.data) {
        (TensorData::F32(x), TensorData::F32(y)) => match op {
            // IEEE f32 add/sub/mul/div are correctly rounded, so they equal "f64 then round".
            BinaryOp::Add => apply!(x, y, TensorData::F32, |p: f32, q: f32| p + q),
            BinaryOp::Sub => apply!(x, y, TensorData::F32, |p: f32, q: f32| p - q),
            BinaryOp::Mul => apply!(x, y, TensorData::F32, |p: f32, q: f32| p * q),
            BinaryOp::Div => apply!(x, y, TensorData::F32, |p: f32, q: f32| p / q),
            BinaryOp::Rem => apply!(x, y, TensorData::F32, |p: f32, q: f32| {
                python_remainder_f64(f64::from(p), f64::from(q)) as f32
            }),
            BinaryOp::Pow => apply!(x, y, TensorData::F32, |p: f32, q: f32| f64::from(p)
                .powf(f64::from(q))
                as f32),
            BinaryOp::Max => apply!(x, y, TensorData::F32, nan_max),
            BinaryOp::Min => apply!(x, y, TensorData::F32, nan_min),
            BinaryOp::Eq => apply!(x, y, TensorData::Bool, |p: f32, q: f32| p == q),
            BinaryOp::Ne => apply!(x, y, TensorData::Bool, |p: f32, q: f32| p != q),
            BinaryOp::Lt => apply!(x, y, TensorData::Bool, |p: f32, q: f32| p < q),
            BinaryOp::Le => apply!(x, y, TensorData::Bool, |p: f32, q: f32| p <= q),
            BinaryOp::Gt => apply!(x, y, TensorData::Bool, |p: f32, q: f32| p > q),
            BinaryOp::Ge => apply!(x, y, TensorData::Bool, |p: f32, q: f32| p >= q),
            BinaryOp::And | BinaryOp::Or => return unsupported(),
        },
        (TensorData::I64(x), TensorData::I64(y)) => {
            // A zero divisor is an error, not a wrap; every divisor element is used unless the
            // output is empty, so checking the operand up front is exact.
            if matches!(op, BinaryOp::Div | BinaryOp::Rem) && count > 0 {
                if let Some(position) = y.iter().position(|&v| v == 0) {
                    return Err(format!(
                        "integer division by zero (divisor element {position} is 0)"
                    ));
                }
            }
            if op == BinaryOp::Pow && count > 0 {
                if let Some(&negative) = y.iter().find(|&&v| v < 0) {
                    return Err(format!("integer power with negative exponent {negative}"));
                }
            }
            match op {
                // Wrapping like NumPy's int64, never a debug-build overflow panic.
                BinaryOp::Add => apply!(x, y, TensorData::I64, i64::wrapping_add),
                BinaryOp::Sub => apply!(x, y, TensorData::I64, i64::wrapping_sub),
                BinaryOp::Mul => apply!(x, y, TensorData::I64, i64::wrapping_mul),
                BinaryOp::Div => apply!(x, y, TensorData::I64, floor_divide_i64),
                BinaryOp::Rem => apply!(x, y, TensorData::I64, python_remainder_i64),
                BinaryOp::Pow => apply!(x, y, TensorData::I64, power_i64),
                BinaryOp::Max => apply!(x, y, TensorData::I64, |p: i64, q: i64| p.max(q)),
                BinaryOp::Min => apply!(x, y, TensorData::I64, |p: i64, q: i64| p.min(q)),
                BinaryOp::Eq => apply!(x, y, TensorData::Bool, |p: i64, q: i64| p == q),
                BinaryOp::Ne => apply!(x, y, TensorData::Bool, |p: i64, q: i64| p != q),
                BinaryOp::Lt => apply!(x, y, TensorData::Bool, |p: i64, q: i64| p < q),
                BinaryOp::Le => apply!(x, y, TensorData::Bool, |p: i64, q: i64| p <= q),
                BinaryOp::Gt => apply!(x, y, TensorData::Bool, |p: i64, q: i64| p > q),
                BinaryOp::Ge => apply!(x, y, TensorData::Bool, |p: i64, q: i64| p >= q),
                BinaryOp::And | BinaryOp::Or => return unsupported(),
            }
        }
        (TensorData::Bool(x), TensorData::Bool(y)) => match op {
            BinaryOp::And => apply!(x, y, TensorData::Bool, |p: bool, q: bool| p && q),
            BinaryOp::Or => apply!(x, y, TensorData::Bool, |p: bool, q: bool| p || q),
            BinaryOp::Eq => apply!(x, y, TensorData::Bool, |p: bool, q: bool| p == q),
            BinaryOp::Ne => apply!(x, y, TensorData::Bool, |p: bool, q: bool| p != q),
            _ => return unsupported(),
        },
        _ => {
            return Err(format!(
                "operand dtypes differ: {} and {}",
                a.dtype(),
                b.dtype()
            ))
        }
    };
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data,
    })
}

/// `where(condition, if_true, if_false)` with all three broadcast to the output shape.
pub fn select(
    condition: &Tensor,
    if_true: &Tensor,
    if_false: &Tensor,
    output_shape: &[usize],
) -> KernelResult {
    let condition_values = values_of::<bool>(condition).map_err(|e| format!("condition: {e}"))?;
    if if_true.dtype() != if_false.dtype() {
        return Err(format!(
            "branch dtypes differ: {} and {}",
            if_true.dtype(),
            if_false.dtype()
        ));
    }
    let condition_strides = broadcast_strides(&condition.shape, output_shape)?;
    let true_strides = broadcast_strides(&if_true.shape, output_shape)?;
    let false_strides = broadcast_strides(&if_false.shape, output_shape)?;
    let count = output_count(output_shape)?;
    fn select_typed<T: Element>(
        condition: &[bool],
        strides: [&[usize]; 3],
        if_true: &Tensor,
        if_false: &Tensor,
        output_shape: &[usize],
        count: usize,
    ) -> KernelResult<TensorData> {
        let (true_values, false_values) = (values_of::<T>(if_true)?, values_of::<T>(if_false)?);
        let mut out = Vec::with_capacity(count);
        for_each_strided(output_shape, strides, |[c, t, f]| {
            out.push(if condition[c] {
                true_values[t]
            } else {
                false_values[f]
            })
        });
        Ok(T::wrap(out))
    }
    let strides = [
        condition_strides.as_slice(),
        true_strides.as_slice(),
        false_strides.as_slice(),
    ];
    let data = dispatch_dtype!(
        if_true.dtype(),
        select_typed(
            condition_values,
            strides,
            if_true,
            if_false,
            output_shape,
            count
        )
    )?;
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data,
    })
}

/// Converts to `dtype`: f32 to i64 truncates toward zero (NaN gives 0, out-of-range values
/// saturate, as Rust's `as` does); to bool is "nonzero" (NaN is true, as in NumPy); from bool
/// is 1 or 0.
pub fn cast(x: &Tensor, dtype: DType, output_shape: &[usize]) -> KernelResult {
    let strides = broadcast_strides(&x.shape, output_shape)?;
    let count = output_count(output_shape)?;
    let data = match (&x.data, dtype) {
        (TensorData::F32(v), DType::F32) => {
            TensorData::F32(map_one(v, &strides, output_shape, count, |a| a))
        }
        (TensorData::F32(v), DType::I64) => {
            TensorData::I64(map_one(v, &strides, output_shape, count, |a| a as i64))
        }
        (TensorData::F32(v), DType::Bool) => {
            TensorData::Bool(map_one(v, &strides, output_shape, count, |a| a != 0.0))
        }
        (TensorData::I64(v), DType::F32) => {
            TensorData::F32(map_one(v, &strides, output_shape, count, |a| a as f32))
        }
        (TensorData::I64(v), DType::I64) => {
            TensorData::I64(map_one(v, &strides, output_shape, count, |a| a))
        }
        (TensorData::I64(v), DType::Bool) => {
            TensorData::Bool(map_one(v, &strides, output_shape, count, |a| a != 0))
        }
        (TensorData::Bool(v), DType::F32) => {
            TensorData::F32(map_one(v, &strides, output_shape, count, |a| {
                if a {
                    1.0
                } else {
                    0.0
                }
            }))
        }
        (TensorData::Bool(v), DType::I64) => {
            TensorData::I64(map_one(v, &strides, output_shape, count, i64::from))
        }
        (TensorData::Bool(v), DType::Bool) => {
            TensorData::Bool(map_one(v, &strides, output_shape, count, |a| a))
        }
    };
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data,
    })
}

// ---------------------------------------------------------------------------------------------
// Reductions.

/// The shape a reduction over `axes` produces.
fn reduced_shape(shape: &[usize], reduced: &[bool], keep_dims: bool) -> Vec<usize> {
    shape
        .iter()
        .zip(reduced)
        .filter_map(|(&dim, &is_reduced)| match (is_reduced, keep_dims) {
            (false, _) => Some(dim),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// Marks the reduced axes, rejecting out-of-range and repeated ones.
fn reduced_axes(axes: &[usize], rank: usize) -> KernelResult<Vec<bool>> {
    let mut reduced = vec![false; rank];
    for &axis in axes {
        check_axis(axis, rank)?;
        if reduced[axis] {
            return Err(format!("axis {axis} is reduced twice"));
        }
        reduced[axis] = true;
    }
    Ok(reduced)
}

/// Sum, mean, max or min over `axes`. f32 accumulates in f64. Max and min propagate NaN (like
/// NumPy's `max`) and fail on an empty reduction, which has no identity.
pub fn reduce(
    op: ReduceOp,
    x: &Tensor,
    axes: &[usize],
    keep_dims: bool,
    output_shape: &[usize],
) -> KernelResult {
    let reduced = reduced_axes(axes, x.shape.len())?;
    expect_shape(
        "the reduction result",
        &reduced_shape(&x.shape, &reduced, keep_dims),
        output_shape,
    )?;
    let output_length = output_count(output_shape)?;
    let reduced_count: usize = x
        .shape
        .iter()
        .zip(&reduced)
        .filter(|(_, &r)| r)
        .map(|(&d, _)| d)
        .product();
    if reduced_count == 0 && output_length > 0 && matches!(op, ReduceOp::Max | ReduceOp::Min) {
        return Err(format!("{op:?} over an empty axis has no identity"));
    }
    // Walk the input in order; the accumulator for each element is found through strides that
    // are zero along reduced axes (the result "broadcast back" to the input's shape).
    let kept_shape = reduced_shape(&x.shape, &reduced, true);
    let accumulator_strides = broadcast_strides(&kept_shape, &x.shape)?;
    let input_strides = contiguous_strides(&x.shape);
    let strides = [input_strides.as_slice(), accumulator_strides.as_slice()];
    let data = match &x.data {
        TensorData::F32(values) => {
            let initial = match op {
                ReduceOp::Sum | ReduceOp::Mean => 0.0,
                ReduceOp::Max => f64::NEG_INFINITY,
                ReduceOp::Min => f64::INFINITY,
            };
            let mut accumulators = vec![initial; output_length];
            match op {
                ReduceOp::Sum | ReduceOp::Mean => for_each_strided(&x.shape, strides, |[i, o]| {
                    accumulators[o] += f64::from(values[i]);
                }),
                ReduceOp::Max => for_each_strided(&x.shape, strides, |[i, o]| {
                    let v = f64::from(values[i]);
                    if v.is_nan() || v > accumulators[o] {
                        accumulators[o] = v;
                    }
                }),
                ReduceOp::Min => for_each_strided(&x.shape, strides, |[i, o]| {
                    let v = f64::from(values[i]);
                    if v.is_nan() || v < accumulators[o] {
                        accumulators[o] = v;
                    }
                }),
            }
            if op == ReduceOp::Mean {
                // An empty mean is 0/0 = NaN, as in NumPy.
                let divisor = reduced_count as f64;
                TensorData::F32(accumulators.iter().map(|&s| (s / divisor) as f32).collect())
            } else {
                TensorData::F32(accumulators.iter().map(|&s| s as f32).collect())
            }
        }
        TensorData::I64(values) => {
            let (initial, combine): (i64, fn(i64, i64) -> i64) = match op {
                ReduceOp::Sum => (0, i64::wrapping_add),
                ReduceOp::Max => (i64::MIN, i64::max),
                ReduceOp::Min => (i64::MAX, i64::min),
                ReduceOp::Mean => {
                    return Err("mean is not defined on i64 (cast to f32 first)".to_string())
                }
            };
            let mut accumulators = vec![initial; output_length];
            for_each_strided(&x.shape, strides, |[i, o]| {
                accumulators[o] = combine(accumulators[o], values[i])
            });
            TensorData::I64(accumulators)
        }
        TensorData::Bool(values) => {
            // Max is "any", min is "all"; sums and means of bools need a cast first.
            let (initial, combine): (bool, fn(bool, bool) -> bool) = match op {
                ReduceOp::Max => (false, |a, b| a || b),
                ReduceOp::Min => (true, |a, b| a && b),
                ReduceOp::Sum | ReduceOp::Mean => {
                    return Err(format!("{op:?} is not defined on bool"))
                }
            };
            let mut accumulators = vec![initial; output_length];
            for_each_strided(&x.shape, strides, |[i, o]| {
                accumulators[o] = combine(accumulators[o], values[i])
            });
            TensorData::Bool(accumulators)
        }
    };
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data,
    })
}

/// The index of the first maximum along `axis`, as i64. A NaN counts as the maximum (NumPy's
/// `argmax`), so the first NaN wins.
pub fn arg_max(x: &Tensor, axis: usize, keep_dims: bool, output_shape: &[usize]) -> KernelResult {
    let rank = x.shape.len();
    check_axis(axis, rank)?;
    let mut reduced = vec![false; rank];
    reduced[axis] = true;
    expect_shape(
        "the argmax result",
        &reduced_shape(&x.shape, &reduced, keep_dims),
        output_shape,
    )?;
    let output_length = output_count(output_shape)?;
    let axis_length = x.shape[axis];
    if axis_length == 0 && output_length > 0 {
        return Err("argmax over an empty axis".to_string());
    }
    let outer = product(&x.shape[..axis]);
    let inner = product(&x.shape[axis + 1..]);

    fn arg_max_typed<T: Element>(
        values: &[T],
        outer: usize,
        axis_length: usize,
        inner: usize,
        is_nan: impl Fn(T) -> bool,
    ) -> Vec<i64> {
        let mut result = vec![0i64; outer * inner];
        for o in 0..outer {
            for i in 0..inner {
                let base = o * axis_length * inner + i;
                let mut best_index = 0usize;
                let mut best = values[base];
                if !is_nan(best) {
                    for k in 1..axis_length {
                        let v = values[base + k * inner];
                        if is_nan(v) {
                            best_index = k;
                            break;
                        }
                        if v > best {
                            best = v;
                            best_index = k;
                        }
                    }
                }
                result[o * inner + i] = best_index as i64;
            }
        }
        result
    }

    let indices = if output_length == 0 {
        Vec::new()
    } else {
        match &x.data {
            TensorData::F32(v) => arg_max_typed(v, outer, axis_length, inner, f32::is_nan),
            TensorData::I64(v) => arg_max_typed(v, outer, axis_length, inner, |_| false),
            TensorData::Bool(v) => arg_max_typed(v, outer, axis_length, inner, |_| false),
        }
    };
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data: TensorData::I64(indices),
    })
}

// ---------------------------------------------------------------------------------------------
// Movement.

/// Row-major reinterpretation; the element counts must match.
pub fn reshape(x: &Tensor, output_shape: &[usize]) -> KernelResult {
    reshape_owned(x.clone(), output_shape)
}

/// [`reshape`] without copying the data, for an operand the caller no longer needs.
pub fn reshape_owned(x: Tensor, output_shape: &[usize]) -> KernelResult {
    if output_count(output_shape)? != x.len() {
        return Err(format!(
            "cannot reshape {} ({} elements) to {}",
            describe(&x),
            x.len(),
            format_concrete_shape(output_shape)
        ));
    }
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data: x.data,
    })
}

/// `out.shape[i] = in.shape[perm[i]]`.
pub fn permute(x: &Tensor, perm: &[usize], output_shape: &[usize]) -> KernelResult {
    let rank = x.shape.len();
    let mut seen = vec![false; rank];
    if perm.len() != rank {
        return Err(format!("permutation {perm:?} does not match rank {rank}"));
    }
    for &axis in perm {
        if axis >= rank || seen[axis] {
            return Err(format!("{perm:?} is not a permutation of 0..{rank}"));
        }
        seen[axis] = true;
    }
    let permuted_shape: Vec<usize> = perm.iter().map(|&axis| x.shape[axis]).collect();
    expect_shape("the permuted operand", &permuted_shape, output_shape)?;
    let input_strides = contiguous_strides(&x.shape);
    let strides: Vec<usize> = perm.iter().map(|&axis| input_strides[axis]).collect();
    gather_strided(x, &strides, output_shape)
}

/// Broadcast (NumPy rules) to the output shape.
pub fn expand(x: &Tensor, output_shape: &[usize]) -> KernelResult {
    let strides = broadcast_strides(&x.shape, output_shape)?;
    gather_strided(x, &strides, output_shape)
}

/// Reads `x` through per-output-axis strides into a fresh contiguous tensor.
fn gather_strided(x: &Tensor, strides: &[usize], output_shape: &[usize]) -> KernelResult {
    let count = output_count(output_shape)?;
    fn copy_typed<T: Element>(
        x: &Tensor,
        strides: &[usize],
        output_shape: &[usize],
        count: usize,
    ) -> KernelResult {
        let values = values_of::<T>(x)?;
        Ok(tensor_of(
            output_shape,
            map_one(values, strides, output_shape, count, |v| v),
        ))
    }
    dispatch_dtype!(x.dtype(), copy_typed(x, strides, output_shape, count))
}

/// Elements `start, start + step, ...` along `axis`; the count is `output_shape[axis]`. Every
/// index must lie in `0..len`; there is no Python-style wrapping of negative indices.
pub fn slice(
    x: &Tensor,
    axis: usize,
    start: i64,
    step: i64,
    output_shape: &[usize],
) -> KernelResult {
    let rank = x.shape.len();
    check_axis(axis, rank)?;
    if output_shape.len() != rank {
        return Err(format!(
            "slice result rank {} differs from operand rank {rank}",
            output_shape.len()
        ));
    }
    for other in (0..rank).filter(|&a| a != axis) {
        if x.shape[other] != output_shape[other] {
            return Err(format!(
                "slice of {} along axis {axis} cannot give {}",
                describe(x),
                format_concrete_shape(output_shape)
            ));
        }
    }
    if step == 0 {
        return Err("slice step is 0".to_string());
    }
    let count = output_shape[axis];
    let axis_length = x.shape[axis];
    if count > 0 {
        // Indices are monotone in k, so checking the first and last covers all of them; i128
        // cannot overflow for any i64 start/step and usize count.
        let last = i128::from(start) + (count as i128 - 1) * i128::from(step);
        for index in [i128::from(start), last] {
            if index < 0 || index >= axis_length as i128 {
                return Err(format!(
                    "slice index {index} (start {start}, step {step}, count {count}) is out of range \
                     0..{axis_length} for axis {axis}"
                ));
            }
        }
    }
    output_count(output_shape)?;
    let outer = product(&x.shape[..axis]);
    let inner = product(&x.shape[axis + 1..]);
    fn slice_typed<T: Element>(
        x: &Tensor,
        (outer, axis_length, inner, count): (usize, usize, usize, usize),
        (start, step): (i64, i64),
        output_shape: &[usize],
    ) -> KernelResult {
        let values = values_of::<T>(x)?;
        let mut out = Vec::with_capacity(outer * count * inner);
        for o in 0..outer {
            for k in 0..count {
                // In range: checked by the caller.
                let index = (i128::from(start) + k as i128 * i128::from(step)) as usize;
                let begin = (o * axis_length + index) * inner;
                out.extend_from_slice(&values[begin..begin + inner]);
            }
        }
        Ok(tensor_of(output_shape, out))
    }
    dispatch_dtype!(
        x.dtype(),
        slice_typed(
            x,
            (outer, axis_length, inner, count),
            (start, step),
            output_shape
        )
    )
}

/// Joins operands along `axis`; all other dims and the dtype must agree.
pub fn concat(parts: &[&Tensor], axis: usize, output_shape: &[usize]) -> KernelResult {
    let Some(first) = parts.first() else {
        return Err("concat needs at least one operand".to_string());
    };
    let rank = output_shape.len();
    check_axis(axis, rank)?;
    let mut total = 0usize;
    for part in parts {
        if part.dtype() != first.dtype() {
            return Err(format!(
                "operand dtypes differ: {} and {}",
                first.dtype(),
                part.dtype()
            ));
        }
        let fits = part.shape.len() == rank
            && (0..rank).all(|a| a == axis || part.shape[a] == output_shape[a]);
        if !fits {
            return Err(format!(
                "operand {} does not fit result {} along axis {axis}",
                describe(part),
                format_concrete_shape(output_shape)
            ));
        }
        total = total
            .checked_add(part.shape[axis])
            .ok_or("concat length overflows")?;
    }
    if total != output_shape[axis] {
        return Err(format!(
            "operands add up to {total} along axis {axis}, the node declares {}",
            output_shape[axis]
        ));
    }
    let count = output_count(output_shape)?;
    let outer = product(&output_shape[..axis]);
    let inner = product(&output_shape[axis + 1..]);
    fn concat_typed<T: Element>(
        parts: &[&Tensor],
        axis: usize,
        (outer, inner, count): (usize, usize, usize),
        output_shape: &[usize],
    ) -> KernelResult {
        let views: Vec<&[T]> = parts
            .iter()
            .map(|part| values_of::<T>(part))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(count);
        for o in 0..outer {
            for (part, values) in parts.iter().zip(&views) {
                let block = part.shape[axis] * inner;
                out.extend_from_slice(&values[o * block..(o + 1) * block]);
            }
        }
        Ok(tensor_of(output_shape, out))
    }
    dispatch_dtype!(
        first.dtype(),
        concat_typed(parts, axis, (outer, inner, count), output_shape)
    )
}

// ---------------------------------------------------------------------------------------------
// Contractions.

/// NumPy `matmul` for operands of rank >= 2: `[..., m, k] x [..., k, n] -> [..., m, n]`, batch
/// dims broadcast. f32 only; each output row accumulates in f64 in i-k-j order.
pub fn mat_mul(a: &Tensor, b: &Tensor, output_shape: &[usize]) -> KernelResult {
    let (a_values, b_values) = (values_of::<f32>(a)?, values_of::<f32>(b)?);
    let (a_rank, b_rank, out_rank) = (a.shape.len(), b.shape.len(), output_shape.len());
    if a_rank < 2 || b_rank < 2 || out_rank < 2 {
        return Err(format!(
            "matmul needs rank >= 2 operands, got {} and {}",
            describe(a),
            describe(b)
        ));
    }
    let (m, k) = (a.shape[a_rank - 2], a.shape[a_rank - 1]);
    let (k_of_b, n) = (b.shape[b_rank - 2], b.shape[b_rank - 1]);
    if k != k_of_b {
        return Err(format!(
            "contracted dims differ: {} x {}",
            describe(a),
            describe(b)
        ));
    }
    if output_shape[out_rank - 2] != m || output_shape[out_rank - 1] != n {
        return Err(format!(
            "{} x {} gives [..., {m}, {n}], the node declares {}",
            describe(a),
            describe(b),
            format_concrete_shape(output_shape)
        ));
    }
    let batch_shape = &output_shape[..out_rank - 2];
    // Batch strides in units of whole matrices, then scaled to elements.
    let a_batch_strides = broadcast_strides(&a.shape[..a_rank - 2], batch_shape)?;
    let b_batch_strides = broadcast_strides(&b.shape[..b_rank - 2], batch_shape)?;
    let a_batch_strides: Vec<usize> = a_batch_strides.iter().map(|s| s * m * k).collect();
    let b_batch_strides: Vec<usize> = b_batch_strides.iter().map(|s| s * k * n).collect();
    let count = output_count(output_shape)?;
    let mut out = vec![0f32; count];
    let mut row_accumulator = vec![0f64; n];
    let mut batch = 0usize;
    // With an empty contraction (k == 0) every sum is empty and the zeros above are the result.
    if m > 0 && n > 0 && k > 0 {
        for_each_strided(
            batch_shape,
            [&a_batch_strides, &b_batch_strides],
            |[a_offset, b_offset]| {
                let a_matrix = &a_values[a_offset..a_offset + m * k];
                let b_matrix = &b_values[b_offset..b_offset + k * n];
                let out_matrix = &mut out[batch * m * n..(batch + 1) * m * n];
                for (a_row, out_row) in a_matrix.chunks_exact(k).zip(out_matrix.chunks_exact_mut(n))
                {
                    row_accumulator.fill(0.0);
                    // i-k-j order: row k of B is scaled by A[i, k] and added to output row i.
                    for (&a_value, b_row) in a_row.iter().zip(b_matrix.chunks_exact(n)) {
                        let a_value = f64::from(a_value);
                        for (accumulator, &b_value) in row_accumulator.iter_mut().zip(b_row) {
                            *accumulator += a_value * f64::from(b_value);
                        }
                    }
                    for (destination, &sum) in out_row.iter_mut().zip(&row_accumulator) {
                        *destination = sum as f32;
                    }
                }
                batch += 1;
            },
        );
    }
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data: TensorData::F32(out),
    })
}

/// The attributes of a 2-D convolution (PyTorch's `conv2d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dAttributes {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

/// Output length of a window sweep, PyTorch's floor formula:
/// `(input + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1`. `None` when the
/// (dilated) window does not fit the padded input or an attribute is zero.
pub fn window_output_length(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let padded = padding.checked_mul(2)?.checked_add(input)?;
    let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let room = padded.checked_sub(span)?;
    Some(room / stride + 1)
}

/// The output positions `o` in `0..output_length` whose input position
/// `o * stride + offset` lies in `0..input_length` (a contiguous range).
fn valid_output_range(
    output_length: usize,
    input_length: usize,
    stride: usize,
    offset: i128,
) -> Range<usize> {
    let stride = stride as i128;
    // Smallest o with o * stride + offset >= 0.
    let low = if offset >= 0 {
        0
    } else {
        (-offset + stride - 1) / stride
    };
    // Largest o with o * stride + offset <= input_length - 1, plus one.
    let last_input = input_length as i128 - 1 - offset;
    let high = if last_input < 0 {
        0
    } else {
        last_input / stride + 1
    };
    let high = high.min(output_length as i128);
    let low = low.min(high);
    low as usize..high as usize
}

/// PyTorch `conv2d`: NCHW input, OIHW weight (`I = C / groups`), optional bias `[O]`.
/// Accumulates each output plane in f64, looping kernel taps outside the output row so the
/// inner loop walks contiguous memory.
pub fn conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    attributes: Conv2dAttributes,
    output_shape: &[usize],
) -> KernelResult {
    let input_values = values_of::<f32>(input).map_err(|e| format!("input: {e}"))?;
    let weight_values = values_of::<f32>(weight).map_err(|e| format!("weight: {e}"))?;
    let bias_values = match bias {
        Some(bias) => Some(values_of::<f32>(bias).map_err(|e| format!("bias: {e}"))?),
        None => None,
    };
    let Conv2dAttributes {
        stride,
        padding,
        dilation,
        groups,
    } = attributes;
    let [batch, channels, height, width] = input.shape[..] else {
        return Err(format!(
            "input must be NCHW (rank 4), got {}",
            describe(input)
        ));
    };
    let [out_channels, group_channels, kernel_height, kernel_width] = weight.shape[..] else {
        return Err(format!(
            "weight must be OIHW (rank 4), got {}",
            describe(weight)
        ));
    };
    if groups == 0
        || channels % groups != 0
        || out_channels % groups != 0
        || channels / groups != group_channels
    {
        return Err(format!(
            "groups={groups} does not fit input {} and weight {}",
            describe(input),
            describe(weight)
        ));
    }
    if let Some(bias) = bias {
        if bias.shape != [out_channels] {
            return Err(format!(
                "bias must be [{out_channels}], got {}",
                describe(bias)
            ));
        }
    }
    let out_height =
        window_output_length(height, kernel_height, stride[0], padding[0], dilation[0]);
    let out_width = window_output_length(width, kernel_width, stride[1], padding[1], dilation[1]);
    let (Some(out_height), Some(out_width)) = (out_height, out_width) else {
        return Err(format!(
            "kernel {kernel_height}x{kernel_width} (stride {stride:?}, padding {padding:?}, dilation {dilation:?}) \
             does not fit input {}",
            describe(input)
        ));
    };
    expect_shape(
        "the convolution result",
        &[batch, out_channels, out_height, out_width],
        output_shape,
    )?;
    let count = output_count(output_shape)?;
    let mut out = vec![0f32; count];
    if count == 0 {
        return Ok(Tensor {
            shape: output_shape.to_vec(),
            data: TensorData::F32(out),
        });
    }
    let out_channels_per_group = out_channels / groups;
    let input_plane = height * width;
    // One output row at a time, so the f64 accumulator row stays in L1 while every input
    // channel and kernel tap adds into it (a whole accumulator plane would spill to L2 and
    // be re-read once per tap).
    let mut accumulator_row = vec![0f64; out_width];
    // The valid output ranges depend only on the kernel tap, so compute them once.
    let row_ranges: Vec<Range<usize>> = (0..kernel_height)
        .map(|kh| {
            valid_output_range(
                out_height,
                height,
                stride[0],
                (kh * dilation[0]) as i128 - padding[0] as i128,
            )
        })
        .collect();
    let column_ranges: Vec<Range<usize>> = (0..kernel_width)
        .map(|kw| {
            valid_output_range(
                out_width,
                width,
                stride[1],
                (kw * dilation[1]) as i128 - padding[1] as i128,
            )
        })
        .collect();
    for n in 0..batch {
        for oc in 0..out_channels {
            let group = oc / out_channels_per_group;
            let bias_value = bias_values.map_or(0.0, |b| f64::from(b[oc]));
            for oh in 0..out_height {
                accumulator_row.fill(bias_value);
                for icg in 0..group_channels {
                    let ic = group * group_channels + icg;
                    let input_start = (n * channels + ic) * input_plane;
                    let input_channel = &input_values[input_start..input_start + input_plane];
                    for (kh, rows) in row_ranges.iter().enumerate() {
                        if !rows.contains(&oh) {
                            // This tap's input row is padding for this output row.
                            continue;
                        }
                        // In range by construction of `rows`.
                        let ih = oh * stride[0] + kh * dilation[0] - padding[0];
                        let input_row = &input_channel[ih * width..(ih + 1) * width];
                        for (kw, columns) in column_ranges.iter().enumerate() {
                            if columns.is_empty() {
                                continue;
                            }
                            let weight_index = ((oc * group_channels + icg) * kernel_height + kh)
                                * kernel_width
                                + kw;
                            let w = f64::from(weight_values[weight_index]);
                            // In range by construction of `columns`.
                            let first_iw =
                                columns.start * stride[1] + kw * dilation[1] - padding[1];
                            let sums = &mut accumulator_row[columns.clone()];
                            let inputs = &input_row[first_iw..];
                            if stride[1] == 1 {
                                // The common case, kept separate (with equal-length slices) so
                                // the compiler unrolls it like the matmul row loop.
                                let inputs = &inputs[..sums.len()];
                                for (sum, &x) in sums.iter_mut().zip(inputs) {
                                    *sum += w * f64::from(x);
                                }
                            } else {
                                for (sum, &x) in
                                    sums.iter_mut().zip(inputs.iter().step_by(stride[1]))
                                {
                                    *sum += w * f64::from(x);
                                }
                            }
                        }
                    }
                }
                let out_start = ((n * out_channels + oc) * out_height + oh) * out_width;
                for (destination, &sum) in out[out_start..out_start + out_width]
                    .iter_mut()
                    .zip(&accumulator_row)
                {
                    *destination = sum as f32;
                }
            }
        }
    }
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data: TensorData::F32(out),
    })
}

/// Max or average pooling over NCHW, PyTorch floor output size. Max treats padding as `-inf`
/// (and propagates NaN); average divides by the full window, padding included
/// (`count_include_pad=True`).
pub fn pool2d(
    kind: PoolKind,
    input: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    output_shape: &[usize],
) -> KernelResult {
    let values = values_of::<f32>(input)?;
    let [batch, channels, height, width] = input.shape[..] else {
        return Err(format!(
            "input must be NCHW (rank 4), got {}",
            describe(input)
        ));
    };
    let out_height = window_output_length(height, kernel[0], stride[0], padding[0], 1);
    let out_width = window_output_length(width, kernel[1], stride[1], padding[1], 1);
    let (Some(out_height), Some(out_width)) = (out_height, out_width) else {
        return Err(format!(
            "window {kernel:?} (stride {stride:?}, padding {padding:?}) does not fit input {}",
            describe(input)
        ));
    };
    expect_shape(
        "the pooling result",
        &[batch, channels, out_height, out_width],
        output_shape,
    )?;
    let count = output_count(output_shape)?;
    let mut out = Vec::with_capacity(count);
    // The whole window counts in the average; with floor output sizes the window never
    // reaches past the padded input, so this is exactly PyTorch's divisor.
    let window_size = (kernel[0] as f64) * (kernel[1] as f64);
    for plane in 0..batch * channels {
        let input_plane = &values[plane * height * width..(plane + 1) * height * width];
        for oh in 0..out_height {
            let rows = window_input_range(oh, stride[0], padding[0], kernel[0], height);
            for ow in 0..out_width {
                let columns = window_input_range(ow, stride[1], padding[1], kernel[1], width);
                let value = match kind {
                    PoolKind::Max => {
                        let mut best = f64::NEG_INFINITY;
                        for ih in rows.clone() {
                            for &x in
                                &input_plane[ih * width + columns.start..ih * width + columns.end]
                            {
                                let x = f64::from(x);
                                // Once best is NaN, `x > best` is false, so NaN sticks.
                                if x.is_nan() || x > best {
                                    best = x;
                                }
                            }
                        }
                        best
                    }
                    PoolKind::Avg => {
                        let mut sum = 0.0f64;
                        for ih in rows.clone() {
                            for &x in
                                &input_plane[ih * width + columns.start..ih * width + columns.end]
                            {
                                sum += f64::from(x);
                            }
                        }
                        sum / window_size
                    }
                };
                out.push(value as f32);
            }
        }
    }
    Ok(Tensor {
        shape: output_shape.to_vec(),
        data: TensorData::F32(out),
    })
}

/// The input positions of window `o`, `o * stride - padding .. + kernel`, clipped to the input.
fn window_input_range(
    o: usize,
    stride: usize,
    padding: usize,
    kernel: usize,
    input_length: usize,
) -> Range<usize> {
    let start = (o as i128) * (stride as i128) - padding as i128;
    let end = start + kernel as i128;
    let clipped_start = start.clamp(0, input_length as i128) as usize;
    let clipped_end = end.clamp(0, input_length as i128) as usize;
    clipped_start..clipped_end.max(clipped_start)
}

// ---------------------------------------------------------------------------------------------
// Indexing.

/// `numpy.take(table, indices, axis)`: the result shape is
/// `table.shape[:axis] + indices.shape + table.shape[axis+1:]`. Negative or out-of-range
/// indices are errors (no wrapping).
pub fn gather(
    table: &Tensor,
    indices: &Tensor,
    axis: usize,
    output_shape: &[usize],
) -> KernelResult {
    let index_values = values_of::<i64>(indices).map_err(|e| format!("indices: {e}"))?;
    check_axis(axis, table.shape.len())?;
    let mut expected = table.shape[..axis].to_vec();
    expected.extend_from_slice(&indices.shape);
    expected.extend_from_slice(&table.shape[axis + 1..]);
    expect_shape("the gather result", &expected, output_shape)?;
    let axis_length = table.shape[axis];
    if let Some(&bad) = index_values
        .iter()
        .find(|&&index| index < 0 || index as u64 >= axis_length as u64)
    {
        return Err(format!(
            "index {bad} is out of range 0..{axis_length} for axis {axis} of the table"
        ));
    }
    let count = output_count(output_shape)?;
    let outer = product(&table.shape[..axis]);
    let inner = product(&table.shape[axis + 1..]);
    fn gather_typed<T: Element>(
        table: &Tensor,
        indices: &[i64],
        (outer, axis_length, inner, count): (usize, usize, usize, usize),
        output_shape: &[usize],
    ) -> KernelResult {
        let values = values_of::<T>(table)?;
        let mut out = Vec::with_capacity(count);
        for o in 0..outer {
            for &index in indices {
                let begin = (o * axis_length + index as usize) * inner;
                out.extend_from_slice(&values[begin..begin + inner]);
            }
        }
        Ok(tensor_of(output_shape, out))
    }
    dispatch_dtype!(
        table.dtype(),
        gather_typed(
            table,
            index_values,
            (outer, axis_length, inner, count),
            output_shape
        )
    )
}

// ---------------------------------------------------------------------------------------------
// Scan helpers.

/// Position `index` along `axis`, with the axis removed (one step's slice of a scan sequence).
pub fn index_along_axis(sequence: &Tensor, axis: usize, index: usize) -> KernelResult {
    check_axis(axis, sequence.shape.len())?;
    let axis_length = sequence.shape[axis];
    if index >= axis_length {
        return Err(format!(
            "step {index} is out of range 0..{axis_length} for axis {axis}"
        ));
    }
    let mut shape = sequence.shape.clone();
    shape.remove(axis);
    let start = i64::try_from(index).map_err(|_| "index too large".to_string())?;
    let mut kept = sequence.shape.clone();
    kept[axis] = 1;
    let sliced = slice(sequence, axis, start, 1, &kept)?;
    reshape_owned(sliced, &shape)
}

/// Writes one step's output into position `index` along `axis` of the stacked result.
pub fn write_along_axis(
    stacked: &mut Tensor,
    step_value: &Tensor,
    axis: usize,
    index: usize,
) -> KernelResult<()> {
    check_axis(axis, stacked.shape.len())?;
    let mut step_shape = stacked.shape.clone();
    let axis_length = step_shape.remove(axis);
    if step_value.shape != step_shape || step_value.dtype() != stacked.dtype() {
        return Err(format!(
            "step output is {} but the stacked result {} expects {}{} per step",
            describe(step_value),
            describe(stacked),
            stacked.dtype(),
            format_concrete_shape(&step_shape)
        ));
    }
    if index >= axis_length {
        return Err(format!(
            "step {index} is out of range 0..{axis_length} for axis {axis}"
        ));
    }
    let outer = product(&stacked.shape[..axis]);
    let inner = product(&stacked.shape[axis + 1..]);
    fn write_typed<T: Element>(
        stacked: &mut Tensor,
        step_value: &Tensor,
        (outer, axis_length, inner, index): (usize, usize, usize, usize),
    ) -> KernelResult<()> {
        let source = values_of::<T>(step_value)?;
        let destination = T::view_mut(stacked).ok_or("stacked result dtype changed")?;
        for o in 0..outer {
            let begin = (o * axis_length + index) * inner;
            destination[begin..begin + inner].copy_from_slice(&source[o * inner..(o + 1) * inner]);
        }
        Ok(())
    }
    dispatch_dtype!(
        stacked.dtype(),
        write_typed(stacked, step_value, (outer, axis_length, inner, index))
    )
}

/// A zero tensor of a dtype and shape (the caller has checked the size).
pub fn zeros(dtype: DType, shape: &[usize]) -> Tensor {
    fn zeros_typed<T: Element>(shape: &[usize]) -> Tensor {
        tensor_of(shape, vec![T::zero(); product(shape)])
    }
    dispatch_dtype!(dtype, zeros_typed(shape))
}

// ---------------------------------------------------------------------------------------------
// Randomness.

/// The golden-ratio increment of SplitMix64.
const SPLITMIX_INCREMENT: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mix with full avalanche.
fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64 random bits for element `index` of stream `stream` under `seed`: the `index + 1`-th
/// output of a SplitMix64 generator whose state starts at a key mixed from (seed, stream).
/// Stateless and counter-based, so any backend can draw any element independently and get
/// the same bits.
pub fn random_bits(seed: i64, stream: u64, index: u64) -> u64 {
    let key =
        splitmix64_mix((seed as u64) ^ splitmix64_mix(stream.wrapping_add(SPLITMIX_INCREMENT)));
    splitmix64_mix(key.wrapping_add(index.wrapping_add(1).wrapping_mul(SPLITMIX_INCREMENT)))
}

/// The value of element `index` of a `RandomUniform` node: the top 24 bits of
/// [`random_bits`] scaled to `[0, 1)`, so every value is an exact f32 multiple of `2^-24`.
pub fn random_uniform_value(seed: i64, stream: u64, index: u64) -> f32 {
    (random_bits(seed, stream, index) >> 40) as f32 * (1.0 / 16_777_216.0)
}

/// `RandomUniform`: values of [`random_uniform_value`] in row-major order; `seed` is an i64
/// scalar.
pub fn random_uniform(seed: &Tensor, stream: u64, output_shape: &[usize]) -> KernelResult {
    let seed = match seed.as_i64() {
        Some([value]) if seed.shape.is_empty() => *value,
        _ => {
            return Err(format!(
                "the seed must be an i64 scalar, got {}",
                describe(seed)
            ))
        }
    };
    let count = output_count(output_shape)?;
    let values = (0..count as u64)
        .map(|index| random_uniform_value(seed, stream, index))
        .collect();
    Ok(tensor_of(output_shape, values))
}

// ---------------------------------------------------------------------------------------------
// Normalization.

/// `BatchNorm` at inference over axis 1 of `x` (rank >= 2): per channel `c`,
/// `scale = weight * rsqrt(running_var + eps)`, `shift = bias - running_mean * weight *
/// rsqrt(running_var + eps)`, `y = x * scale + shift`, each step rounded to f32 in that order
/// (the order of the primitives `crate::passes::lower_batch_norm` emits, so the two agree bit
/// for bit).
pub fn batch_norm_inference(
    x: &Tensor,
    per_channel: [&Tensor; 4],
    eps: f64,
    output_shape: &[usize],
) -> KernelResult {
    let values = values_of::<f32>(x)?;
    expect_shape("the input", &x.shape, output_shape)?;
    if x.shape.len() < 2 {
        return Err(format!(
            "batch norm needs an input of rank 2 or more, got {}",
            describe(x)
        ));
    }
    let channels = x.shape[1];
    let mut vectors = Vec::with_capacity(4);
    for (what, tensor) in ["weight", "bias", "running_mean", "running_var"]
        .into_iter()
        .zip(per_channel)
    {
        expect_shape(what, &tensor.shape, &[channels])?;
        vectors.push(values_of::<f32>(tensor)?);
    }
    let [weight, bias, mean, variance] = [vectors[0], vectors[1], vectors[2], vectors[3]];
    let eps = eps as f32;
    let inverse_std = |c: usize| (1.0 / f64::from(variance[c] + eps).sqrt()) as f32;
    let scale: Vec<f32> = (0..channels).map(|c| weight[c] * inverse_std(c)).collect();
    let shift: Vec<f32> = (0..channels)
        .map(|c| bias[c] - mean[c] * weight[c] * inverse_std(c))
        .collect();
    let inner = product(&x.shape[2..]);
    let out = values
        .iter()
        .enumerate()
        .map(|(flat, &v)| {
            let c = (flat / inner.max(1)) % channels.max(1);
            v * scale[c] + shift[c]
        })
        .collect();
    Ok(tensor_of(output_shape, out))
}

// ---------------------------------------------------------------------------------------------
// Gradients: the adjoints of slice, gather, conv2d and pool2d (see `crate::autodiff`).

/// The adjoint of [`slice`]: `x` placed at `start, start + step, ...` along `axis` of a zero
/// tensor of `output_shape` (positions no step reaches stay zero).
pub fn slice_scatter(
    x: &Tensor,
    axis: usize,
    start: i64,
    step: i64,
    output_shape: &[usize],
) -> KernelResult {
    let values = values_of::<f32>(x)?;
    let rank = x.shape.len();
    check_axis(axis, rank)?;
    if output_shape.len() != rank
        || (0..rank).any(|other| other != axis && x.shape[other] != output_shape[other])
    {
        return Err(format!(
            "cannot scatter {} along axis {axis} into {}",
            describe(x),
            format_concrete_shape(output_shape)
        ));
    }
    if step == 0 {
        return Err("slice step is 0".to_string());
    }
    let count = x.shape[axis];
    let axis_length = output_shape[axis];
    if count > 0 {
        let last = i128::from(start) + (count as i128 - 1) * i128::from(step);
        for index in [i128::from(start), last] {
            if index < 0 || index >= axis_length as i128 {
                return Err(format!(
                    "scatter index {index} (start {start}, step {step}, count {count}) is out of range \
                     0..{axis_length} for axis {axis}"
                ));
            }
        }
    }
    let total = output_count(output_shape)?;
    let outer = product(&output_shape[..axis]);
    let inner = product(&output_shape[axis + 1..]);
    let mut out = vec![0f32; total];
    for o in 0..outer {
        for k in 0..count {
            // In range: checked above.
            let index = (i128::from(start) + k as i128 * i128::from(step)) as usize;
            let source = (o * count + k) * inner;
            let destination = (o * axis_length + index) * inner;
            out[destination..destination + inner].copy_from_slice(&values[source..source + inner]);
        }
    }
    Ok(tensor_of(output_shape, out))
}

/// The adjoint of [`gather`]: a zero tensor of `output_shape` (the table's) with each slice of
/// `updates` added at its index along `axis`; repeated indices accumulate (in f64).
pub fn scatter_add(
    updates: &Tensor,
    indices: &Tensor,
    axis: usize,
    output_shape: &[usize],
) -> KernelResult {
    let update_values = values_of::<f32>(updates).map_err(|e| format!("updates: {e}"))?;
    let index_values = values_of::<i64>(indices).map_err(|e| format!("indices: {e}"))?;
    check_axis(axis, output_shape.len())?;
    let mut expected = output_shape[..axis].to_vec();
    expected.extend_from_slice(&indices.shape);
    expected.extend_from_slice(&output_shape[axis + 1..]);
    expect_shape("the updates", &updates.shape, &expected)?;
    let axis_length = output_shape[axis];
    if let Some(&bad) = index_values
        .iter()
        .find(|&&index| index < 0 || index as u64 >= axis_length as u64)
    {
        return Err(format!(
            "index {bad} is out of range 0..{axis_length} for axis {axis} of the result"
        ));
    }
    let total = output_count(output_shape)?;
    let outer = product(&output_shape[..axis]);
    let inner = product(&output_shape[axis + 1..]);
    let mut sums = vec![0f64; total];
    let mut source = 0;
    for o in 0..outer {
        for &index in index_values {
            let destination = (o * axis_length + index as usize) * inner;
            for (sum, &value) in sums[destination..destination + inner]
                .iter_mut()
                .zip(&update_values[source..source + inner])
            {
                *sum += f64::from(value);
            }
            source += inner;
        }
    }
    Ok(tensor_of(
        output_shape,
        sums.into_iter().map(|s| s as f32).collect::<Vec<f32>>(),
    ))
}

/// The shapes a convolution's gradient kernels work with, checked against each other.
struct ConvShapes {
    input: [usize; 4],
    weight: [usize; 4],
    output: [usize; 4],
}

fn conv_shapes(
    input: &[usize],
    weight: &[usize],
    output: &[usize],
    attributes: Conv2dAttributes,
) -> KernelResult<ConvShapes> {
    let (Ok(input), Ok(weight), Ok(output)) = (
        <[usize; 4]>::try_from(input),
        <[usize; 4]>::try_from(weight),
        <[usize; 4]>::try_from(output),
    ) else {
        return Err("input, weight and output gradient must all have rank 4".to_string());
    };
    let Conv2dAttributes {
        stride,
        padding,
        dilation,
        groups,
    } = attributes;
    if groups == 0
        || input[1] % groups != 0
        || weight[0] % groups != 0
        || input[1] / groups != weight[1]
    {
        return Err(format!(
            "groups={groups} does not fit input {} and weight {}",
            format_concrete_shape(&input),
            format_concrete_shape(&weight)
        ));
    }
    let height = window_output_length(input[2], weight[2], stride[0], padding[0], dilation[0]);
    let width = window_output_length(input[3], weight[3], stride[1], padding[1], dilation[1]);
    let (Some(height), Some(width)) = (height, width) else {
        return Err(format!(
            "kernel {}x{} does not fit input {}",
            weight[2],
            weight[3],
            format_concrete_shape(&input)
        ));
    };
    expect_shape(
        "the output gradient",
        &output,
        &[input[0], weight[0], height, width],
    )?;
    Ok(ConvShapes {
        input,
        weight,
        output,
    })
}

/// Calls `visit(input_index, weight_index, output_index)` for every multiply-add of the
/// convolution (taps that fall on padding are skipped).
fn for_each_conv_tap(
    shapes: &ConvShapes,
    attributes: Conv2dAttributes,
    mut visit: impl FnMut(usize, usize, usize),
) {
    let [batch, channels, height, width] = shapes.input;
    let [out_channels, group_channels, kernel_height, kernel_width] = shapes.weight;
    let [_, _, out_height, out_width] = shapes.output;
    let Conv2dAttributes {
        stride,
        padding,
        dilation,
        groups,
    } = attributes;
    let out_channels_per_group = out_channels / groups;
    for n in 0..batch {
        for oc in 0..out_channels {
            let group = oc / out_channels_per_group;
            for icg in 0..group_channels {
                let ic = group * group_channels + icg;
                for kh in 0..kernel_height {
                    for kw in 0..kernel_width {
                        let weight_index =
                            ((oc * group_channels + icg) * kernel_height + kh) * kernel_width + kw;
                        for oh in 0..out_height {
                            let ih =
                                (oh * stride[0] + kh * dilation[0]) as i128 - padding[0] as i128;
                            if ih < 0 || ih >= height as i128 {
                                continue;
                            }
                            for ow in 0..out_width {
                                let iw = (ow * stride[1] + kw * dilation[1]) as i128
                                    - padding[1] as i128;
                                if iw < 0 || iw >= width as i128 {
                                    continue;
                                }
                                let input_index = ((n * channels + ic) * height + ih as usize)
                                    * width
                                    + iw as usize;
                                let output_index =
                                    ((n * out_channels + oc) * out_height + oh) * out_width + ow;
                                visit(input_index, weight_index, output_index);
                            }
                        }
                    }
                }
            }
        }
    }
    let _ = channels;
}

/// The gradient of [`conv2d`] with respect to its input, of `output_shape` (the input's).
pub fn conv2d_backward_input(
    output_gradient: &Tensor,
    weight: &Tensor,
    attributes: Conv2dAttributes,
    output_shape: &[usize],
) -> KernelResult {
    let gradient = values_of::<f32>(output_gradient).map_err(|e| format!("gradient: {e}"))?;
    let weights = values_of::<f32>(weight).map_err(|e| format!("weight: {e}"))?;
    let shapes = conv_shapes(
        output_shape,
        &weight.shape,
        &output_gradient.shape,
        attributes,
    )?;
    let mut sums = vec![0f64; output_count(output_shape)?];
    for_each_conv_tap(&shapes, attributes, |i, w, o| {
        sums[i] += f64::from(weights[w]) * f64::from(gradient[o]);
    });
    Ok(tensor_of(
        output_shape,
        sums.into_iter().map(|s| s as f32).collect::<Vec<f32>>(),
    ))
}

/// The gradient of [`conv2d`] with respect to its weight, of `output_shape` (the weight's).
pub fn conv2d_backward_weight(
    input: &Tensor,
    output_gradient: &Tensor,
    attributes: Conv2dAttributes,
    output_shape: &[usize],
) -> KernelResult {
    let inputs = values_of::<f32>(input).map_err(|e| format!("input: {e}"))?;
    let gradient = values_of::<f32>(output_gradient).map_err(|e| format!("gradient: {e}"))?;
    let shapes = conv_shapes(
        &input.shape,
        output_shape,
        &output_gradient.shape,
        attributes,
    )?;
    let mut sums = vec![0f64; output_count(output_shape)?];
    for_each_conv_tap(&shapes, attributes, |i, w, o| {
        sums[w] += f64::from(inputs[i]) * f64::from(gradient[o]);
    });
    Ok(tensor_of(
        output_shape,
        sums.into_iter().map(|s| s as f32).collect::<Vec<f32>>(),
    ))
}

/// The gradient of [`pool2d`] with respect to its input, of the input's shape. Max pooling
/// routes each window's gradient to the element the forward kernel picks (the first maximum,
/// or the first NaN); average pooling spreads it over the window, padding counted.
pub fn pool2d_backward(
    kind: PoolKind,
    input: &Tensor,
    output_gradient: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    output_shape: &[usize],
) -> KernelResult {
    let values = values_of::<f32>(input).map_err(|e| format!("input: {e}"))?;
    let gradient = values_of::<f32>(output_gradient).map_err(|e| format!("gradient: {e}"))?;
    expect_shape("the result", output_shape, &input.shape)?;
    let [batch, channels, height, width] = input.shape[..] else {
        return Err(format!(
            "input must be NCHW (rank 4), got {}",
            describe(input)
        ));
    };
    let out_height = window_output_length(height, kernel[0], stride[0], padding[0], 1);
    let out_width = window_output_length(width, kernel[1], stride[1], padding[1], 1);
    let (Some(out_height), Some(out_width)) = (out_height, out_width) else {
        return Err(format!(
            "window {kernel:?} (stride {stride:?}, padding {padding:?}) does not fit input {}",
            describe(input)
        ));
    };
    expect_shape(
        "the output gradient",
        &output_gradient.shape,
        &[batch, channels, out_height, out_width],
    )?;
    let mut sums = vec![0f64; output_count(output_shape)?];
    let window_size = (kernel[0] as f64) * (kernel[1] as f64);
    for plane in 0..batch * channels {
        let base = plane * height * width;
        for oh in 0..out_height {
            let rows = window_input_range(oh, stride[0], padding[0], kernel[0], height);
            for ow in 0..out_width {
                let columns = window_input_range(ow, stride[1], padding[1], kernel[1], width);
                let g = f64::from(gradient[(plane * out_height + oh) * out_width + ow]);
                match kind {
                    PoolKind::Max => {
                        let mut best: Option<(usize, f64)> = None;
                        for ih in rows.clone() {
                            for iw in columns.clone() {
                                let index = base + ih * width + iw;
                                let x = f64::from(values[index]);
                                let better = match best {
                                    None => true,
                                    Some((_, b)) => !b.is_nan() && (x.is_nan() || x > b),
                                };
                                if better {
                                    best = Some((index, x));
                                }
                            }
                        }
                        if let Some((index, _)) = best {
                            sums[index] += g;
                        }
                    }
                    PoolKind::Avg => {
                        for ih in rows.clone() {
                            for iw in columns.clone() {
                                sums[base + ih * width + iw] += g / window_size;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(tensor_of(
        output_shape,
        sums.into_iter().map(|s| s as f32).collect::<Vec<f32>>(),
    ))
}

#[cfg(test)]
mod tests {
    //! Each optimised loop is compared with a naive loop that follows the definition literally
    //! (one multiply per output element and tap, bounds checked per element).

    use super::*;

    /// Deterministic pseudo-random values in [-1, 1), small-integer-ish so sums are exact-ish.
    fn pseudo_random(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn f32_tensor(shape: &[usize], seed: u64) -> Tensor {
        Tensor::from_f32(shape.to_vec(), pseudo_random(product(shape), seed)).unwrap()
    }

    fn assert_close(actual: &[f32], expected: &[f32]) {
        assert_eq!(actual.len(), expected.len());
        for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "element {index}: {a} vs {e}"
            );
        }
    }

    fn naive_conv2d(
        input: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        attributes: Conv2dAttributes,
    ) -> Tensor {
        let [batch, channels, height, width] = input.shape[..] else {
            panic!()
        };
        let [out_channels, group_channels, kernel_height, kernel_width] = weight.shape[..] else {
            panic!()
        };
        let Conv2dAttributes {
            stride,
            padding,
            dilation,
            groups,
        } = attributes;
        let out_height =
            (height + 2 * padding[0] - dilation[0] * (kernel_height - 1) - 1) / stride[0] + 1;
        let out_width =
            (width + 2 * padding[1] - dilation[1] * (kernel_width - 1) - 1) / stride[1] + 1;
        let x = input.as_f32().unwrap();
        let w = weight.as_f32().unwrap();
        let mut out = Vec::new();
        for n in 0..batch {
            for oc in 0..out_channels {
                let group = oc / (out_channels / groups);
                for oh in 0..out_height {
                    for ow in 0..out_width {
                        let mut sum = bias.map_or(0.0, |b| f64::from(b.as_f32().unwrap()[oc]));
                        for icg in 0..group_channels {
                            let ic = group * group_channels + icg;
                            for kh in 0..kernel_height {
                                for kw in 0..kernel_width {
                                    let ih = (oh * stride[0] + kh * dilation[0]) as i64
                                        - padding[0] as i64;
                                    let iw = (ow * stride[1] + kw * dilation[1]) as i64
                                        - padding[1] as i64;
                                    if ih < 0 || iw < 0 || ih >= height as i64 || iw >= width as i64
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * channels + ic) * height + ih as usize)
                                        * width
                                        + iw as usize];
                                    let wv = w[((oc * group_channels + icg) * kernel_height + kh)
                                        * kernel_width
                                        + kw];
                                    sum += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        out.push(sum as f32);
                    }
                }
            }
        }
        Tensor::from_f32(vec![batch, out_channels, out_height, out_width], out).unwrap()
    }

    #[test]
    fn conv2d_matches_the_definition_across_attributes() {
        let mut seed = 0;
        for &(channels, out_channels, groups) in &[(1, 1, 1), (3, 4, 1), (4, 6, 2), (4, 4, 4)] {
            for &stride in &[[1, 1], [2, 2], [3, 1]] {
                for &padding in &[[0, 0], [1, 2], [3, 3]] {
                    for &dilation in &[[1, 1], [2, 1]] {
                        for &(kernel_height, kernel_width) in &[(1, 1), (3, 3), (2, 3)] {
                            for with_bias in [false, true] {
                                seed += 1;
                                let input = f32_tensor(&[2, channels, 7, 6], seed);
                                let weight = f32_tensor(
                                    &[out_channels, channels / groups, kernel_height, kernel_width],
                                    seed + 1000,
                                );
                                let bias = f32_tensor(&[out_channels], seed + 2000);
                                let bias = with_bias.then_some(&bias);
                                let attributes = Conv2dAttributes {
                                    stride,
                                    padding,
                                    dilation,
                                    groups,
                                };
                                let expected = naive_conv2d(&input, &weight, bias, attributes);
                                let actual =
                                    conv2d(&input, &weight, bias, attributes, &expected.shape)
                                        .unwrap();
                                assert_eq!(actual.shape, expected.shape);
                                assert_close(actual.as_f32().unwrap(), expected.as_f32().unwrap());
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn conv2d_rejects_bad_attributes_without_panicking() {
        let input = f32_tensor(&[1, 4, 5, 5], 1);
        let weight = f32_tensor(&[2, 4, 3, 3], 2);
        let fine = Conv2dAttributes {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        };
        assert!(conv2d(&input, &weight, None, fine, &[1, 2, 3, 3]).is_ok());
        assert!(conv2d(&input, &weight, None, fine, &[1, 2, 4, 4]).is_err());
        for attributes in [
            Conv2dAttributes { groups: 0, ..fine },
            Conv2dAttributes { groups: 3, ..fine },
            Conv2dAttributes {
                stride: [0, 1],
                ..fine
            },
            Conv2dAttributes {
                dilation: [0, 1],
                ..fine
            },
            Conv2dAttributes {
                dilation: [usize::MAX, 1],
                ..fine
            },
            Conv2dAttributes {
                padding: [usize::MAX, 0],
                ..fine
            },
        ] {
            assert!(
                conv2d(&input, &weight, None, attributes, &[1, 2, 3, 3]).is_err(),
                "{attributes:?}"
            );
        }
        let wrong_bias = f32_tensor(&[3], 3);
        assert!(conv2d(&input, &weight, Some(&wrong_bias), fine, &[1, 2, 3, 3]).is_err());
    }

    fn naive_mat_mul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for i in 0..m {
            for j in 0..n {
                let sum: f64 = (0..k)
                    .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                    .sum();
                out.push(sum as f32);
            }
        }
        out
    }

    #[test]
    fn mat_mul_matches_the_definition_with_batch_broadcast() {
        // a: [2, 1, 3, 5], b: [4, 5, 7] -> [2, 4, 3, 7]; a's batch dim 1 and b's missing leading
        // dim both broadcast.
        let a = f32_tensor(&[2, 1, 3, 5], 11);
        let b = f32_tensor(&[4, 5, 7], 12);
        let out = mat_mul(&a, &b, &[2, 4, 3, 7]).unwrap();
        let (a_values, b_values, out_values) = (
            a.as_f32().unwrap(),
            b.as_f32().unwrap(),
            out.as_f32().unwrap(),
        );
        for i in 0..2 {
            for j in 0..4 {
                let expected = naive_mat_mul(
                    &a_values[i * 15..(i + 1) * 15],
                    &b_values[j * 35..(j + 1) * 35],
                    3,
                    5,
                    7,
                );
                let start = (i * 4 + j) * 21;
                assert_close(&out_values[start..start + 21], &expected);
            }
        }
        // Empty contraction: all zeros.
        let a = Tensor::from_f32(vec![2, 0], vec![]).unwrap();
        let b = Tensor::from_f32(vec![0, 3], vec![]).unwrap();
        assert_eq!(
            mat_mul(&a, &b, &[2, 3]).unwrap().as_f32().unwrap(),
            &[0.0; 6]
        );
        // Mismatches are errors.
        assert!(mat_mul(&f32_tensor(&[2, 3], 1), &f32_tensor(&[4, 2], 2), &[2, 2]).is_err());
        assert!(mat_mul(&f32_tensor(&[3], 1), &f32_tensor(&[3, 2], 2), &[2]).is_err());
        assert!(mat_mul(
            &f32_tensor(&[2, 2, 3], 1),
            &f32_tensor(&[3, 3, 2], 2),
            &[3, 2, 2]
        )
        .is_err());
    }

    #[test]
    fn pooling_matches_the_definition() {
        let input = f32_tensor(&[2, 3, 7, 6], 5);
        let values = input.as_f32().unwrap();
        for &kernel in &[[2, 2], [3, 3], [3, 2]] {
            for &stride in &[[1, 1], [2, 2], [3, 2]] {
                for &padding in &[[0, 0], [1, 1], [1, 0]] {
                    let out_height = (7 + 2 * padding[0] - kernel[0]) / stride[0] + 1;
                    let out_width = (6 + 2 * padding[1] - kernel[1]) / stride[1] + 1;
                    let shape = [2, 3, out_height, out_width];
                    let max =
                        pool2d(PoolKind::Max, &input, kernel, stride, padding, &shape).unwrap();
                    let avg =
                        pool2d(PoolKind::Avg, &input, kernel, stride, padding, &shape).unwrap();
                    let (mut expected_max, mut expected_avg) = (Vec::new(), Vec::new());
                    for plane in 0..6 {
                        for oh in 0..out_height {
                            for ow in 0..out_width {
                                let (mut best, mut sum) = (f32::NEG_INFINITY, 0.0f64);
                                for kh in 0..kernel[0] {
                                    for kw in 0..kernel[1] {
                                        let ih = (oh * stride[0] + kh) as i64 - padding[0] as i64;
                                        let iw = (ow * stride[1] + kw) as i64 - padding[1] as i64;
                                        if ih >= 0 && iw >= 0 && ih < 7 && iw < 6 {
                                            let x =
                                                values[plane * 42 + ih as usize * 6 + iw as usize];
                                            best = best.max(x);
                                            sum += f64::from(x);
                                        }
                                    }
                                }
                                expected_max.push(best);
                                expected_avg.push((sum / (kernel[0] * kernel[1]) as f64) as f32);
                            }
                        }
                    }
                    assert_close(max.as_f32().unwrap(), &expected_max);
                    assert_close(avg.as_f32().unwrap(), &expected_avg);
                }
            }
        }
    }

    #[test]
    fn strided_walk_handles_rank_zero_and_empty_shapes() {
        let mut visited = Vec::new();
        for_each_strided(&[], [&[][..]], |[i]| visited.push(i));
        assert_eq!(visited, vec![0]);
        visited.clear();
        for_each_strided(&[3, 0, 2], [&[0, 0, 1][..]], |[i]| visited.push(i));
        assert!(visited.is_empty());
        // A [2, 3] operand read transposed as [3, 2].
        for_each_strided(&[3, 2], [&[1, 3][..]], |[i]| visited.push(i));
        assert_eq!(visited, vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn broadcast_strides_follow_numpy_rules() {
        assert_eq!(
            broadcast_strides(&[3, 1], &[2, 3, 4]).unwrap(),
            vec![0, 1, 0]
        );
        assert_eq!(
            broadcast_strides(&[2, 3, 4], &[2, 3, 4]).unwrap(),
            vec![12, 4, 1]
        );
        assert_eq!(broadcast_strides(&[], &[5]).unwrap(), vec![0]);
        assert!(broadcast_strides(&[3], &[4]).is_err());
        assert!(broadcast_strides(&[2, 3], &[3]).is_err());
    }

    #[test]
    fn scan_helpers_slice_and_stack_along_an_axis() {
        let sequence = Tensor::from_i64(vec![2, 3], vec![0, 1, 2, 10, 11, 12]).unwrap();
        let column = index_along_axis(&sequence, 1, 2).unwrap();
        assert_eq!(column, Tensor::from_i64(vec![2], vec![2, 12]).unwrap());
        assert!(index_along_axis(&sequence, 1, 3).is_err());
        assert!(index_along_axis(&sequence, 2, 0).is_err());
        let mut stacked = zeros(DType::I64, &[2, 3]);
        write_along_axis(&mut stacked, &column, 1, 0).unwrap();
        assert_eq!(stacked.as_i64().unwrap(), &[2, 0, 0, 12, 0, 0]);
        assert!(write_along_axis(&mut stacked, &column, 1, 3).is_err());
        assert!(write_along_axis(&mut stacked, &sequence, 1, 0).is_err());
    }
}
