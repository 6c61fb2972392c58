//! Indexing: `t[i]` on tuples; `x[:, 0:4]`, `x[..., -1]`, `x[::2]` (slices) and `table[ids]`
//! (gather) on tensors. Slices follow Python's rules.

use super::elaborate::Elaborator;
use super::scope::Scope;
use super::value::{TensorValue, Value};
use crate::diag::Diagnostic;
use crate::ir::{Dim, Op, TensorType};
use crate::source::Span;
use crate::syntax::ast::IndexItem;

pub fn index(
    el: &mut Elaborator,
    scope: &mut Scope,
    target: Value,
    items: &[IndexItem],
    span: Span,
) -> Value {
    match target {
        Value::Error => Value::Error,
        Value::Tuple(elements) => {
            let [IndexItem::Single(expr)] = items else {
                return el_error(
                    el,
                    span,
                    "type-mismatch",
                    "a tuple is indexed with one int: `t[0]`",
                );
            };
            match el.eval(scope, expr) {
                Value::Int(i) => {
                    let len = elements.len() as i64;
                    let position = if i < 0 { i + len } else { i };
                    match usize::try_from(position).ok().and_then(|p| elements.get(p)) {
                        Some(value) => value.clone(),
                        None => el_error(
                            el,
                            expr.span,
                            "invalid-axis",
                            &format!("index {i} is out of range for a tuple of {len}"),
                        ),
                    }
                }
                Value::Error => Value::Error,
                other => el_error(
                    el,
                    expr.span,
                    "type-mismatch",
                    &format!("a tuple index must be an int, found {}", other.describe()),
                ),
            }
        }
        Value::Tensor(tensor) => index_tensor(el, scope, tensor, items, span),
        other => el_error(
            el,
            span,
            "type-mismatch",
            &format!("{} cannot be indexed", other.describe()),
        ),
    }
}

fn el_error(el: &mut Elaborator, span: Span, code: &'static str, message: &str) -> Value {
    el.report(Diagnostic::error(code, message.to_string()).with_label(span, "here"));
    Value::Error
}

/// What one index item does to one axis.
enum AxisIndex {
    Keep,
    Select(Value, Span),
    Slice {
        start: Option<Value>,
        end: Option<Value>,
        step: Option<Value>,
        span: Span,
    },
}

fn index_tensor(
    el: &mut Elaborator,
    scope: &mut Scope,
    tensor: TensorValue,
    items: &[IndexItem],
    span: Span,
) -> Value {
    // `table[ids]` with an integer tensor gathers along axis 0.
    if let [IndexItem::Single(expr)] = items {
        let value = el.eval(scope, expr);
        if let Value::Tensor(indices) = &value {
            return super::builtins::gather(el, tensor, indices.clone(), 0, span, expr.span);
        }
        return index_axes(el, tensor, vec![AxisIndex::Select(value, expr.span)], span);
    }
    let rank = tensor.ty.rank();
    let ellipses = items
        .iter()
        .filter(|i| matches!(i, IndexItem::Ellipsis(_)))
        .count();
    let explicit = items.len() - ellipses;
    if ellipses > 1 || explicit > rank {
        return el_error(
            el,
            span,
            "invalid-axis",
            &format!(
                "{} index items for a tensor with {rank} dims ({})",
                explicit, tensor.ty
            ),
        );
    }
    let mut per_axis = Vec::new();
    for item in items {
        match item {
            IndexItem::Ellipsis(_) => {
                per_axis.extend((0..rank - explicit).map(|_| AxisIndex::Keep))
            }
            IndexItem::Single(expr) => {
                let value = el.eval(scope, expr);
                per_axis.push(AxisIndex::Select(value, expr.span));
            }
            IndexItem::Slice {
                start,
                end,
                step,
                span,
            } => {
                let start = start.as_ref().map(|e| el.eval(scope, e));
                let end = end.as_ref().map(|e| el.eval(scope, e));
                let step = step.as_ref().map(|e| el.eval(scope, e));
                per_axis.push(AxisIndex::Slice {
                    start,
                    end,
                    step,
                    span: *span,
                });
            }
        }
    }
    index_axes(el, tensor, per_axis, span)
}

fn index_axes(
    el: &mut Elaborator,
    tensor: TensorValue,
    per_axis: Vec<AxisIndex>,
    span: Span,
) -> Value {
    let mut current = tensor;
    let mut dropped = Vec::new();
    for (axis, index) in per_axis.into_iter().enumerate() {
        if axis >= current.ty.rank() {
            return el_error(
                el,
                span,
                "invalid-axis",
                &format!("too many indices for {}", current.ty),
            );
        }
        let size = current.ty.shape[axis].clone();
        let (start, count, step) = match index {
            AxisIndex::Keep => continue,
            AxisIndex::Select(value, item_span) => {
                let Value::Int(i) = value else {
                    if value.is_error() {
                        return Value::Error;
                    }
                    return el_error(
                        el,
                        item_span,
                        "type-mismatch",
                        &format!("an index must be an int, found {}", value.describe()),
                    );
                };
                let Some(start) = position(&size, i) else {
                    return el_error(
                        el,
                        item_span,
                        "invalid-axis",
                        &format!("index {i} is out of range for a dim of size {size}"),
                    );
                };
                dropped.push(axis);
                (start, Dim::constant(1), 1)
            }
            AxisIndex::Slice {
                start,
                end,
                step,
                span: item_span,
            } => {
                let step = match step {
                    None => 1,
                    Some(Value::Int(s)) if s != 0 => s,
                    Some(Value::Error) => return Value::Error,
                    Some(_) => {
                        return el_error(
                            el,
                            item_span,
                            "invalid-argument",
                            "a slice step must be a non-zero int",
                        )
                    }
                };
                match slice_bounds(&size, start, end, step) {
                    Ok(Some(bounds)) => (bounds.0, bounds.1, step),
                    Ok(None) => continue,
                    Err(message) => return el_error(el, item_span, "invalid-argument", &message),
                }
            }
        };
        let mut shape = current.ty.shape.clone();
        shape[axis] = count;
        let ty = TensorType::new(current.ty.dtype, shape);
        current = match el.emit(Op::Slice { axis, start, step }, ty, span, &[&current]) {
            Value::Tensor(t) => t,
            other => return other,
        };
    }
    if dropped.is_empty() {
        return Value::Tensor(current);
    }
    let shape: Vec<Dim> = current
        .ty
        .shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, d)| d.clone())
        .collect();
    let ty = TensorType::new(current.ty.dtype, shape);
    el.emit(Op::Reshape, ty, span, &[&current])
}

/// A single index as a start position; negative indices count from the end.
fn position(size: &Dim, index: i64) -> Option<Dim> {
    match size.as_const() {
        Some(n) => {
            let p = if index < 0 { index + n } else { index };
            (0..n).contains(&p).then(|| Dim::constant(p))
        }
        // Symbolic sizes: trust non-negative indices and count negative ones from the end.
        None if index >= 0 => Some(Dim::constant(index)),
        None => size.add(&Dim::constant(index)).ok(),
    }
}

/// Python slice semantics: `(start, count)`, or `None` for the whole axis unchanged.
fn slice_bounds(
    size: &Dim,
    start: Option<Value>,
    end: Option<Value>,
    step: i64,
) -> Result<Option<(Dim, Dim)>, String> {
    let as_int = |value: &Option<Value>| -> Result<Option<i64>, String> {
        match value {
            None | Some(Value::None) => Ok(None),
            Some(Value::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(format!(
                "slice bounds must be ints, found {}",
                other.describe()
            )),
        }
    };
    // `x[:T]` with a symbolic end: the count is `T - start`; the interpreter checks at run time
    // that it fits the axis.
    if let Some(Value::Dim(symbolic_end)) = &end {
        let first = match as_int(&start)? {
            None => 0,
            Some(s) if s >= 0 => s,
            Some(_) => {
                return Err("a slice with a symbolic end needs a non-negative start".to_string())
            }
        };
        if step != 1 {
            return Err("a slice with a symbolic end must have step 1".to_string());
        }
        let count = symbolic_end
            .sub(&Dim::constant(first))
            .map_err(|_| "slice bound overflows".to_string())?;
        if count == *size && first == 0 {
            return Ok(None);
        }
        return Ok(Some((Dim::constant(first), count)));
    }
    let (start, end) = (as_int(&start)?, as_int(&end)?);
    if start.is_none() && end.is_none() && step == 1 {
        return Ok(None);
    }
    if let Some(n) = size.as_const() {
        // Python's slice.indices(n).
        let clamp = |bound: Option<i64>, default: i64, low: i64, high: i64| -> i64 {
            match bound {
                None => default,
                Some(b) if b < 0 => (b + n).max(low),
                Some(b) => b.min(high),
            }
        };
        let (first, last) = if step > 0 {
            (clamp(start, 0, 0, n), clamp(end, n, 0, n))
        } else {
            (clamp(start, n - 1, -1, n - 1), clamp(end, -1, -1, n - 1))
        };
        // In i128: steps near i64's limits must not overflow.
        let (first_wide, last_wide, step_wide) =
            (i128::from(first), i128::from(last), i128::from(step));
        let count = if step_wide > 0 {
            if last_wide > first_wide {
                (last_wide - first_wide + step_wide - 1) / step_wide
            } else {
                0
            }
        } else if first_wide > last_wide {
            (first_wide - last_wide - step_wide - 1) / (-step_wide)
        } else {
            0
        };
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        if count == 0 {
            return Err("this slice selects no elements".to_string());
        }
        return Ok(Some((Dim::constant(first), Dim::constant(count))));
    }
    // Symbolic sizes: bounds are constants from the start, or negative constants from the end.
    if step != 1 {
        return Err(format!(
            "slices of the symbolic size {size} must have step 1"
        ));
    }
    let resolve = |bound: i64| -> Result<Dim, String> {
        if bound >= 0 {
            Ok(Dim::constant(bound))
        } else {
            size.add(&Dim::constant(bound))
                .map_err(|_| "slice bound overflows".to_string())
        }
    };
    let first = resolve(start.unwrap_or(0))?;
    let last = match end {
        None => size.clone(),
        Some(e) => resolve(e)?,
    };
    let count = last
        .sub(&first)
        .map_err(|_| "slice bound overflows".to_string())?;
    if count.as_const().is_some_and(|c| c <= 0) {
        return Err("this slice selects no elements".to_string());
    }
    Ok(Some((first, count)))
}

#[allow(dead_code)]
fn _unused(_: TensorValue) {}
