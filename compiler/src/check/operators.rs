//! Arithmetic, comparison and logic on compile-time values: constant folding for scalars and
//! sizes, graph nodes (with NumPy broadcasting) for tensors.

use super::elaborate::Elaborator;
use super::shapes::broadcast;
use super::value::{dim_value, TensorValue, Value};
use crate::diag::Diagnostic;
use crate::ir::dim::format_shape;
use crate::ir::{BinaryOp, DType, Literal, Op, TensorType, UnaryOp};
use crate::source::Span;
use crate::syntax::ast::{BinaryOperator, UnaryOperator};

pub fn unary(elaborator: &mut Elaborator, op: UnaryOperator, value: Value, span: Span) -> Value {
    match (op, value) {
        (_, Value::Error) => Value::Error,
        (UnaryOperator::Neg, Value::Int(v)) => match v.checked_neg() {
            Some(n) => Value::Int(n),
            None => elaborator.dim_error(crate::ir::DimError::Overflow, span),
        },
        (UnaryOperator::Neg, Value::Float(v)) => Value::Float(-v),
        (UnaryOperator::Neg, Value::Dim(d)) => match d.neg() {
            Ok(d) => dim_value(d),
            Err(e) => elaborator.dim_error(e, span),
        },
        (UnaryOperator::Neg, Value::Tensor(t)) if t.ty.dtype != DType::Bool => {
            let ty = t.ty.clone();
            elaborator.emit(Op::Unary(UnaryOp::Neg), ty, span, &[&t])
        }
        (UnaryOperator::Not, Value::Bool(b)) => Value::Bool(!b),
        (UnaryOperator::Not, Value::Tensor(t)) if t.ty.dtype == DType::Bool => {
            let ty = t.ty.clone();
            elaborator.emit(Op::Unary(UnaryOp::Not), ty, span, &[&t])
        }
        (op, other) => {
            let what = if op == UnaryOperator::Neg {
                "negate"
            } else {
                "apply `not` to"
            };
            let description = other.describe();
            elaborator.report(
                Diagnostic::error("type-mismatch", format!("cannot {what} {description}"))
                    .with_label(span, "unsupported operand"),
            );
            Value::Error
        }
    }
}

fn ir_op(op: BinaryOperator) -> BinaryOp {
    match op {
        BinaryOperator::Add => BinaryOp::Add,
        BinaryOperator::Sub => BinaryOp::Sub,
        BinaryOperator::Mul => BinaryOp::Mul,
        BinaryOperator::Div => BinaryOp::Div,
        BinaryOperator::Rem => BinaryOp::Rem,
        BinaryOperator::Pow => BinaryOp::Pow,
        BinaryOperator::Eq => BinaryOp::Eq,
        BinaryOperator::Ne => BinaryOp::Ne,
        BinaryOperator::Lt => BinaryOp::Lt,
        BinaryOperator::Le => BinaryOp::Le,
        BinaryOperator::Gt => BinaryOp::Gt,
        BinaryOperator::Ge => BinaryOp::Ge,
        BinaryOperator::And => BinaryOp::And,
        BinaryOperator::Or => BinaryOp::Or,
        BinaryOperator::MatMul => BinaryOp::Mul,
    }
}

pub fn binary(
    elaborator: &mut Elaborator,
    op: BinaryOperator,
    left: Value,
    right: Value,
    span: Span,
    left_span: Span,
    right_span: Span,
) -> Value {
    if left.is_error() || right.is_error() {
        return Value::Error;
    }
    // `x == none` and `x != none` are compile-time tests for an absent optional value.
    if matches!(op, BinaryOperator::Eq | BinaryOperator::Ne)
        && (matches!(left, Value::None) || matches!(right, Value::None))
    {
        let both_none = matches!(left, Value::None) && matches!(right, Value::None);
        return Value::Bool((op == BinaryOperator::Eq) == both_none);
    }
    if op == BinaryOperator::MatMul {
        return match (left, right) {
            (Value::Tensor(a), Value::Tensor(b)) => {
                super::builtins::matmul(elaborator, a, b, span, left_span, right_span)
            }
            (l, r) => {
                let (l, r) = (l.describe(), r.describe());
                elaborator.report(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`@` multiplies tensors, found {l} and {r}"),
                    )
                    .with_label(span, "not two tensors"),
                );
                Value::Error
            }
        };
    }
    match (&left, &right) {
        (Value::Tensor(_), _) | (_, Value::Tensor(_)) => {
            tensor_binary(elaborator, op, left, right, span, left_span, right_span)
        }
        _ => scalar_binary(elaborator, op, left, right, span),
    }
}

/// Folds an operation on compile-time scalars, strings and sizes.
fn scalar_binary(
    elaborator: &mut Elaborator,
    op: BinaryOperator,
    left: Value,
    right: Value,
    span: Span,
) -> Value {
    use BinaryOperator::*;
    let overflow = |e: &mut Elaborator| e.dim_error(crate::ir::DimError::Overflow, span);
    match (&left, &right) {
        (Value::Int(a), Value::Int(b)) => {
            let (a, b) = (*a, *b);
            match op {
                Add => a
                    .checked_add(b)
                    .map(Value::Int)
                    .unwrap_or_else(|| overflow(elaborator)),
                Sub => a
                    .checked_sub(b)
                    .map(Value::Int)
                    .unwrap_or_else(|| overflow(elaborator)),
                Mul => a
                    .checked_mul(b)
                    .map(Value::Int)
                    .unwrap_or_else(|| overflow(elaborator)),
                Div | Rem if b == 0 => {
                    elaborator.report(
                        Diagnostic::error("invalid-dim", "division by zero")
                            .with_label(span, "divides by zero"),
                    );
                    Value::Error
                }
                // An exact division stays an int (so `dim / heads` is a size); otherwise it is a float.
                Div => match (a.checked_rem(b), a.checked_div(b)) {
                    (Some(0), Some(quotient)) => Value::Int(quotient),
                    (Some(_), _) => Value::Float(a as f64 / b as f64),
                    _ => overflow(elaborator),
                },
                Rem => python_remainder(a, b)
                    .map(Value::Int)
                    .unwrap_or_else(|| overflow(elaborator)),
                Pow if (0..=62).contains(&b) => a
                    .checked_pow(b as u32)
                    .map(Value::Int)
                    .unwrap_or_else(|| overflow(elaborator)),
                Pow => Value::Float((a as f64).powf(b as f64)),
                Eq => Value::Bool(a == b),
                Ne => Value::Bool(a != b),
                Lt => Value::Bool(a < b),
                Le => Value::Bool(a <= b),
                Gt => Value::Bool(a > b),
                Ge => Value::Bool(a >= b),
                And | Or | MatMul => mismatch(elaborator, op, &left, &right, span),
            }
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (a, b) = (left.as_f64().unwrap_or(0.0), right.as_f64().unwrap_or(0.0));
            match op {
                Add => Value::Float(a + b),
                Sub => Value::Float(a - b),
                Mul => Value::Float(a * b),
                Div => Value::Float(a / b),
                Rem => Value::Float(a - b * (a / b).floor()),
                Pow => Value::Float(a.powf(b)),
                Eq => Value::Bool(a == b),
                Ne => Value::Bool(a != b),
                Lt => Value::Bool(a < b),
                Le => Value::Bool(a <= b),
                Gt => Value::Bool(a > b),
                Ge => Value::Bool(a >= b),
                And | Or | MatMul => mismatch(elaborator, op, &left, &right, span),
            }
        }
        (Value::Dim(_), Value::Int(_) | Value::Dim(_)) | (Value::Int(_), Value::Dim(_)) => {
            let (Some(a), Some(b)) = (left.as_dim(), right.as_dim()) else {
                return Value::Error;
            };
            let result = match op {
                Add => a.add(&b),
                Sub => a.sub(&b),
                Mul => a.mul(&b),
                Div => a.div_dim(&b),
                Eq => return Value::Bool(a == b),
                Ne => return Value::Bool(a != b),
                _ => {
                    let message = format!(
                        "`{}` is not defined on the symbolic size {a} and {b}",
                        op.symbol()
                    );
                    elaborator.report(
                        Diagnostic::error("type-mismatch", message)
                            .with_label(span, "unsupported on symbolic sizes")
                            .with_help("symbolic sizes support +, -, * and exact /"),
                    );
                    return Value::Error;
                }
            };
            match result {
                Ok(dim) => dim_value(dim),
                Err(error) => elaborator.dim_error(error, span),
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            And => Value::Bool(*a && *b),
            Or => Value::Bool(*a || *b),
            Eq => Value::Bool(a == b),
            Ne => Value::Bool(a != b),
            _ => mismatch(elaborator, op, &left, &right, span),
        },
        (Value::Str(a), Value::Str(b)) => match op {
            Eq => Value::Bool(a == b),
            Ne => Value::Bool(a != b),
            Add => Value::Str(format!("{a}{b}").into()),
            _ => mismatch(elaborator, op, &left, &right, span),
        },
        _ => mismatch(elaborator, op, &left, &right, span),
    }
}

/// Python's `%`: the result takes the sign of the divisor, as the interpreter's i64 `%` does.
pub fn python_remainder(a: i64, b: i64) -> Option<i64> {
    let remainder = a.checked_rem(b)?;
    if remainder != 0 && (remainder < 0) != (b < 0) {
        remainder.checked_add(b)
    } else {
        Some(remainder)
    }
}

fn mismatch(
    elaborator: &mut Elaborator,
    op: BinaryOperator,
    left: &Value,
    right: &Value,
    span: Span,
) -> Value {
    let message = format!(
        "`{}` is not defined on {} and {}",
        op.symbol(),
        left.describe(),
        right.describe()
    );
    elaborator.report(
        Diagnostic::error("type-mismatch", message).with_label(span, "unsupported operands"),
    );
    Value::Error
}

/// Converts a scalar operand of a tensor operation into a rank-0 tensor of a fitting dtype.
/// Python numbers are weakly typed, as in JAX: `x * 2` keeps `x`'s dtype.
pub fn scalar_operand(
    elaborator: &mut Elaborator,
    value: &Value,
    other_dtype: DType,
    span: Span,
) -> Option<TensorValue> {
    let literal = match (value, other_dtype) {
        (Value::Tensor(t), _) => return Some(t.clone()),
        (Value::Int(v), DType::F32) => Literal::F32(*v as f32),
        (Value::Float(v), DType::F32) => Literal::F32(*v as f32),
        (Value::Int(v), DType::I64) => Literal::I64(*v),
        (Value::Bool(v), DType::Bool) => Literal::Bool(*v),
        (Value::Float(_), DType::I64) => {
            elaborator.report(
                Diagnostic::error("dtype-mismatch", "a float combined with an i64 tensor")
                    .with_label(span, "a float")
                    .with_help("cast the tensor first: `cast(x, f32)`"),
            );
            return None;
        }
        (Value::Dim(d), _) => {
            elaborator.report(
                Diagnostic::error("type-mismatch", format!("the symbolic size {d} cannot be used as a tensor value"))
                    .with_label(span, "symbolic size")
                    .with_help("sizes that are only known at run time cannot appear in arithmetic on tensors yet"),
            );
            return None;
        }
        (other, dtype) => {
            let description = other.describe();
            elaborator.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!("{description} cannot be combined with a {dtype} tensor"),
                )
                .with_label(span, "unsupported operand"),
            );
            return None;
        }
    };
    Some(elaborator.scalar(literal, span))
}

fn tensor_binary(
    elaborator: &mut Elaborator,
    op: BinaryOperator,
    left: Value,
    right: Value,
    span: Span,
    left_span: Span,
    right_span: Span,
) -> Value {
    let reference_dtype = match (&left, &right) {
        (Value::Tensor(t), _) | (_, Value::Tensor(t)) => t.ty.dtype,
        _ => return Value::Error,
    };
    let Some(a) = scalar_operand(elaborator, &left, reference_dtype, left_span) else {
        return Value::Error;
    };
    let Some(b) = scalar_operand(elaborator, &right, reference_dtype, right_span) else {
        return Value::Error;
    };
    elementwise_binary(elaborator, ir_op(op), a, b, span, left_span, right_span)
}

/// A broadcasting binary node, with dtype and shape checks.
pub fn elementwise_binary(
    elaborator: &mut Elaborator,
    op: BinaryOp,
    a: TensorValue,
    b: TensorValue,
    span: Span,
    left_span: Span,
    right_span: Span,
) -> Value {
    if a.ty.dtype != b.ty.dtype {
        elaborator.report(
            Diagnostic::error(
                "dtype-mismatch",
                format!(
                    "operands have different element types: {} and {}",
                    a.ty, b.ty
                ),
            )
            .with_label(left_span, format!("{}", a.ty.dtype))
            .with_label(right_span, format!("{}", b.ty.dtype))
            .with_help("convert one side with `cast(x, f32)`"),
        );
        return Value::Error;
    }
    let dtype = a.ty.dtype;
    let allowed = if op.is_logical() {
        dtype == DType::Bool
    } else if op.is_comparison() {
        true
    } else {
        dtype != DType::Bool
    };
    if !allowed {
        elaborator.report(
            Diagnostic::error(
                "dtype-mismatch",
                format!("`{op:?}` is not defined on {dtype} tensors").to_lowercase(),
            )
            .with_label(span, format!("{dtype} operands")),
        );
        return Value::Error;
    }
    let shape = match broadcast(&a.ty.shape, &b.ty.shape) {
        Ok(shape) => shape,
        Err((left_dim, right_dim)) => {
            elaborator.report(
                Diagnostic::error(
                    "broadcast-mismatch",
                    format!("shapes {} and {} do not broadcast", format_shape(&a.ty.shape), format_shape(&b.ty.shape)),
                )
                .with_label(left_span, format!("{}", a.ty))
                .with_label(right_span, format!("{}", b.ty))
                .with_note(format!("aligned from the right, the dims {left_dim} and {right_dim} differ and neither is 1")),
            );
            return Value::Error;
        }
    };
    let result_dtype = if op.is_comparison() {
        DType::Bool
    } else {
        dtype
    };
    elaborator.emit(
        Op::Binary(op),
        TensorType::new(result_dtype, shape),
        span,
        &[&a, &b],
    )
}
