//! Builtin operations: the primitives the stdlib is written with. Each checks its operands'
//! types and shapes and emits graph nodes; on compile-time scalars, the math ones fold.
//!
//! The table [`BUILTINS`] is the single list of names; `docs/language.md` documents each.

use super::elaborate::{Args, Elaborator};
use super::operators::{elementwise_binary, scalar_operand};
use super::shapes::{broadcast, normalize_axis, product, window_output};
use super::value::{dim_value, TensorValue, Value};
use crate::diag::Diagnostic;
use crate::ir::dim::format_shape;
use crate::ir::{BinaryOp, DType, Dim, Literal, Op, PoolKind, ReduceOp, TensorType, UnaryOp};
use crate::source::Span;
use std::rc::Rc;

pub const BUILTINS: &[&str] = &[
    // Elementwise.
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "tanh",
    "sigmoid",
    "erf",
    "abs",
    "sin",
    "cos",
    "floor",
    "maximum",
    "minimum",
    "pow",
    "where",
    "cast",
    // Reductions.
    "sum",
    "mean",
    "max",
    "min",
    "argmax",
    // Movement.
    "reshape",
    "flatten",
    "permute",
    "transpose",
    "unsqueeze",
    "squeeze",
    "expand",
    "concat",
    "split",
    // Contractions and windows.
    "matmul",
    "conv2d",
    "pool2d",
    // Indexing.
    "take",
    // Creation.
    "zeros",
    "ones",
    "full",
    "arange",
    // Normalization.
    "batch_norm",
    // Randomness.
    "dropout",
    // Compile-time scalars and checks.
    "int",
    "float",
    "len",
    "require",
];

pub fn lookup(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|b| **b == name).copied()
}

pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().copied().chain(["none", "pi", "f32", "i64"])
}

/// Named constants: `none`, `pi`, and the dtypes as values (`cast(x, f32)`).
pub fn constant(name: &str) -> Option<Value> {
    match name {
        "none" => Some(Value::None),
        "pi" => Some(Value::Float(std::f64::consts::PI)),
        "f32" => Some(Value::DType(DType::F32)),
        "i64" => Some(Value::DType(DType::I64)),
        _ => None,
    }
}

/// Arguments bound to a builtin's parameters.
struct Bound {
    values: Vec<(Value, Span)>,
    /// Positional arguments past the named parameters, for variadic builtins.
    rest: Vec<(Value, Span)>,
}

/// A builtin parameter: its name and default (`None` = required).
type ParamSpec = (&'static str, Option<Value>);

fn bind(
    el: &mut Elaborator,
    callee: &str,
    spec: &[ParamSpec],
    variadic: bool,
    args: Args,
    span: Span,
) -> Option<Bound> {
    let mut values: Vec<Option<(Value, Span)>> = vec![None; spec.len()];
    let mut rest = Vec::new();
    let mut ok = true;
    for (index, (value, arg_span)) in args.positional.into_iter().enumerate() {
        if index < spec.len() {
            values[index] = Some((value, arg_span));
        } else if variadic {
            rest.push((value, arg_span));
        } else {
            el.report(
                Diagnostic::error(
                    "too-many-arguments",
                    format!(
                        "`{callee}` takes at most {} argument{}",
                        spec.len(),
                        if spec.len() == 1 { "" } else { "s" }
                    ),
                )
                .with_label(arg_span, "extra argument")
                .with_help(signature(callee, spec, variadic)),
            );
            ok = false;
        }
    }
    for (name, value) in args.named {
        let Some(index) = spec.iter().position(|(n, _)| *n == name.name) else {
            let names: Vec<String> = spec.iter().map(|(n, _)| n.to_string()).collect();
            let mut diagnostic = Diagnostic::error(
                "unknown-argument",
                format!("`{callee}` has no parameter `{}`", name.name),
            )
            .with_label(name.span, "unknown parameter");
            diagnostic = match super::suggest::closest(&name.name, names.iter()) {
                Some(s) => diagnostic.with_help(format!("did you mean `{s}`?")),
                None => diagnostic.with_help(signature(callee, spec, variadic)),
            };
            el.report(diagnostic);
            ok = false;
            continue;
        };
        if let Some((_, first)) = &values[index] {
            el.report(
                Diagnostic::error(
                    "duplicate-argument",
                    format!("`{}` is given twice", name.name),
                )
                .with_label(name.span, "given again here")
                .with_label(*first, "first given here"),
            );
            ok = false;
            continue;
        }
        values[index] = Some((value, name.span));
    }
    let mut out = Vec::new();
    for ((name, default), value) in spec.iter().zip(values) {
        match (value, default) {
            (Some(value), _) => out.push(value),
            (None, Some(default)) => out.push((default.clone(), span)),
            (None, None) => {
                el.report(
                    Diagnostic::error(
                        "missing-argument",
                        format!("`{callee}` needs the argument `{name}`"),
                    )
                    .with_label(span, format!("`{name}` is missing"))
                    .with_help(signature(callee, spec, variadic)),
                );
                ok = false;
            }
        }
    }
    if !ok || out.iter().chain(rest.iter()).any(|(v, _)| v.is_error()) {
        return None;
    }
    Some(Bound { values: out, rest })
}

fn signature(callee: &str, spec: &[ParamSpec], variadic: bool) -> String {
    let mut parts: Vec<String> = spec
        .iter()
        .map(|(name, default)| match default {
            Some(Value::None) => format!("{name} = none"),
            Some(Value::Int(v)) => format!("{name} = {v}"),
            Some(Value::Float(v)) => format!("{name} = {v}"),
            Some(Value::Bool(v)) => format!("{name} = {v}"),
            Some(_) => format!("{name} = ..."),
            None => name.to_string(),
        })
        .collect();
    if variadic {
        parts.push("...".into());
    }
    format!("the signature is `{callee}({})`", parts.join(", "))
}

fn expect_tensor(
    el: &mut Elaborator,
    callee: &str,
    (value, span): &(Value, Span),
) -> Option<TensorValue> {
    match value {
        Value::Tensor(t) => Some(t.clone()),
        Value::Error => None,
        other => {
            let description = other.describe();
            el.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{callee}` expects a tensor, found {description}"),
                )
                .with_label(*span, "not a tensor"),
            );
            None
        }
    }
}

fn expect_f32(el: &mut Elaborator, callee: &str, tensor: &TensorValue, span: Span) -> Option<()> {
    if tensor.ty.dtype == DType::F32 {
        return Some(());
    }
    el.report(
        Diagnostic::error(
            "dtype-mismatch",
            format!("`{callee}` needs an f32 tensor, found {}", tensor.ty),
        )
        .with_label(span, format!("{}", tensor.ty.dtype))
        .with_help("convert with `cast(x, f32)`"),
    );
    None
}

fn expect_int(
    el: &mut Elaborator,
    callee: &str,
    what: &str,
    (value, span): &(Value, Span),
) -> Option<i64> {
    match value {
        Value::Int(v) => Some(*v),
        Value::Error => None,
        other => {
            let description = other.describe();
            el.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{callee}`'s {what} must be an int, found {description}"),
                )
                .with_label(*span, "not an int"),
            );
            None
        }
    }
}

fn expect_dim(el: &mut Elaborator, callee: &str, (value, span): &(Value, Span)) -> Option<Dim> {
    match value {
        Value::Int(v) if *v >= 0 => Some(Dim::constant(*v)),
        Value::Int(v) => {
            el.report(
                Diagnostic::error(
                    "invalid-dim",
                    format!("`{callee}` got the size {v}; sizes cannot be negative"),
                )
                .with_label(*span, "negative size"),
            );
            None
        }
        Value::Dim(d) => Some(d.clone()),
        Value::Error => None,
        other => {
            let description = other.describe();
            el.report(
                Diagnostic::error(
                    "invalid-dim",
                    format!("`{callee}` expects sizes, found {description}"),
                )
                .with_label(*span, "not a size"),
            );
            None
        }
    }
}

/// Sizes given either as several arguments or as one tuple.
fn dims_argument(
    el: &mut Elaborator,
    callee: &str,
    args: &[(Value, Span)],
) -> Option<Vec<(Value, Span)>> {
    if let [(Value::Tuple(items), span)] = args {
        return Some(items.iter().map(|v| (v.clone(), *span)).collect());
    }
    let _ = (el, callee);
    Some(args.to_vec())
}

fn axis(
    el: &mut Elaborator,
    callee: &str,
    (value, span): &(Value, Span),
    rank: usize,
) -> Option<usize> {
    let raw = expect_int(el, callee, "axis", &(value.clone(), *span))?;
    match normalize_axis(raw, rank) {
        Some(axis) => Some(axis),
        None => {
            el.report(
                Diagnostic::error(
                    "invalid-axis",
                    format!("axis {raw} is out of range for a tensor with {rank} dims"),
                )
                .with_label(
                    *span,
                    format!("valid axes are {} to {}", -(rank as i64), rank as i64 - 1),
                ),
            );
            None
        }
    }
}

/// A size pair from an int or a 2-tuple: `stride = 2` or `stride = (2, 1)`.
fn pair(
    el: &mut Elaborator,
    callee: &str,
    what: &str,
    (value, span): &(Value, Span),
    minimum: i64,
) -> Option<[usize; 2]> {
    let values = match value {
        Value::Int(v) => [*v, *v],
        Value::Tuple(items) if items.len() == 2 => match (&items[0], &items[1]) {
            (Value::Int(a), Value::Int(b)) => [*a, *b],
            _ => {
                el.report(
                    Diagnostic::error("type-mismatch", format!("`{callee}`'s {what} must be ints"))
                        .with_label(*span, "not ints"),
                );
                return None;
            }
        },
        Value::Error => return None,
        other => {
            let description = other.describe();
            el.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!(
                        "`{callee}`'s {what} must be an int or a pair of ints, found {description}"
                    ),
                )
                .with_label(*span, "not an int"),
            );
            return None;
        }
    };
    if values.iter().any(|v| *v < minimum || *v > 1 << 20) {
        el.report(
            Diagnostic::error(
                "invalid-argument",
                format!("`{callee}`'s {what} must be at least {minimum}, found {values:?}"),
            )
            .with_label(*span, "out of range"),
        );
        return None;
    }
    Some([values[0] as usize, values[1] as usize])
}

pub fn call(el: &mut Elaborator, name: &'static str, args: Args, span: Span) -> Value {
    call_inner(el, name, args, span).unwrap_or(Value::Error)
}

fn call_inner(el: &mut Elaborator, name: &'static str, args: Args, span: Span) -> Option<Value> {
    match name {
        "exp" | "log" | "sqrt" | "rsqrt" | "tanh" | "sigmoid" | "erf" | "abs" | "sin" | "cos"
        | "floor" => {
            let bound = bind(el, name, &[("x", None)], false, args, span)?;
            unary(el, name, &bound.values[0], span)
        }
        "maximum" | "minimum" | "pow" => {
            let bound = bind(el, name, &[("a", None), ("b", None)], false, args, span)?;
            let [(a, a_span), (b, b_span)] = [bound.values[0].clone(), bound.values[1].clone()];
            if let (Value::Int(x), Value::Int(y)) = (&a, &b) {
                // Sizes stay sizes: `maximum(2, 3)` is the int 3.
                match name {
                    "maximum" => return Some(Value::Int(*x.max(y))),
                    "minimum" => return Some(Value::Int(*x.min(y))),
                    _ => {}
                }
            }
            if !matches!(a, Value::Tensor(_)) && !matches!(b, Value::Tensor(_)) {
                let (x, y) = (
                    scalar_number(el, name, &(a, a_span))?,
                    scalar_number(el, name, &(b, b_span))?,
                );
                return Some(match name {
                    "maximum" => Value::Float(x.max(y)),
                    "minimum" => Value::Float(x.min(y)),
                    _ => Value::Float(x.powf(y)),
                });
            }
            let dtype = match (&a, &b) {
                (Value::Tensor(t), _) | (_, Value::Tensor(t)) => t.ty.dtype,
                _ => DType::F32,
            };
            let left = scalar_operand(el, &a, dtype, a_span)?;
            let right = scalar_operand(el, &b, dtype, b_span)?;
            let op = match name {
                "maximum" => BinaryOp::Max,
                "minimum" => BinaryOp::Min,
                _ => BinaryOp::Pow,
            };
            Some(elementwise_binary(
                el, op, left, right, span, a_span, b_span,
            ))
        }
        "where" => {
            let bound = bind(
                el,
                name,
                &[("condition", None), ("a", None), ("b", None)],
                false,
                args,
                span,
            )?;
            let condition = expect_tensor(el, name, &bound.values[0])?;
            if condition.ty.dtype != DType::Bool {
                el.report(
                    Diagnostic::error(
                        "dtype-mismatch",
                        format!("`where` needs a bool condition, found {}", condition.ty),
                    )
                    .with_label(bound.values[0].1, "not bool")
                    .with_help("compare to get a bool tensor, e.g. `where(x > 0, x, 0.0)`"),
                );
                return None;
            }
            let dtype = match (&bound.values[1].0, &bound.values[2].0) {
                (Value::Tensor(t), _) | (_, Value::Tensor(t)) => t.ty.dtype,
                (Value::Int(_), Value::Int(_)) => DType::I64,
                _ => DType::F32,
            };
            let a = scalar_operand(el, &bound.values[1].0, dtype, bound.values[1].1)?;
            let b = scalar_operand(el, &bound.values[2].0, dtype, bound.values[2].1)?;
            if a.ty.dtype != b.ty.dtype {
                el.report(
                    Diagnostic::error(
                        "dtype-mismatch",
                        format!("`where` branches differ: {} and {}", a.ty, b.ty),
                    )
                    .with_label(bound.values[1].1, format!("{}", a.ty.dtype))
                    .with_label(bound.values[2].1, format!("{}", b.ty.dtype)),
                );
                return None;
            }
            let shape = broadcast_all(el, &[&condition, &a, &b], span)?;
            Some(el.emit(
                Op::Select,
                TensorType::new(a.ty.dtype, shape),
                span,
                &[&condition, &a, &b],
            ))
        }
        "cast" => {
            let bound = bind(el, name, &[("x", None), ("dtype", None)], false, args, span)?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let Value::DType(dtype) = bound.values[1].0 else {
                el.report(
                    Diagnostic::error(
                        "type-mismatch",
                        "`cast`'s second argument is a dtype: f32 or i64",
                    )
                    .with_label(bound.values[1].1, "not a dtype"),
                );
                return None;
            };
            if tensor.ty.dtype == dtype {
                return Some(Value::Tensor(tensor));
            }
            Some(el.emit(
                Op::Cast,
                TensorType::new(dtype, tensor.ty.shape.clone()),
                span,
                &[&tensor],
            ))
        }
        "sum" | "mean" | "max" | "min" => {
            // `max(a, b)` on plain numbers folds; on tensors, `maximum` is elementwise.
            if args.positional.len() >= 2
                && args
                    .positional
                    .iter()
                    .all(|(v, _)| matches!(v, Value::Int(_) | Value::Float(_)))
                && matches!(name, "max" | "min")
            {
                let numbers: Vec<&Value> = args.positional.iter().map(|(v, _)| v).collect();
                if numbers.iter().all(|v| matches!(v, Value::Int(_))) {
                    let ints = numbers.iter().filter_map(|v| {
                        if let Value::Int(i) = v {
                            Some(*i)
                        } else {
                            None
                        }
                    });
                    return if name == "max" {
                        ints.max().map(Value::Int)
                    } else {
                        ints.min().map(Value::Int)
                    };
                }
                let floats = numbers.iter().filter_map(|v| v.as_f64());
                return Some(Value::Float(if name == "max" {
                    floats.fold(f64::NEG_INFINITY, f64::max)
                } else {
                    floats.fold(f64::INFINITY, f64::min)
                }));
            }
            if matches!(name, "max" | "min")
                && matches!(args.positional.get(1), Some((Value::Tensor(_), _)))
            {
                let other_span = args.positional[1].1;
                el.report(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`{name}` reduces one tensor; its second argument is the axis"),
                    )
                    .with_label(other_span, "a tensor, not an axis")
                    .with_help(format!(
                        "for the elementwise {name} of two tensors use `{}imum(a, b)`",
                        name
                    )),
                );
                return None;
            }
            let bound = bind(
                el,
                name,
                &[
                    ("x", None),
                    ("axis", Some(Value::None)),
                    ("keepdims", Some(Value::Bool(false))),
                ],
                false,
                args,
                span,
            )?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            reduce(el, name, tensor, &bound.values[1], &bound.values[2], span)
        }
        "argmax" => {
            let bound = bind(
                el,
                name,
                &[
                    ("x", None),
                    ("axis", Some(Value::Int(-1))),
                    ("keepdims", Some(Value::Bool(false))),
                ],
                false,
                args,
                span,
            )?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let axis = axis(el, name, &bound.values[1], tensor.ty.rank())?;
            let keep_dims = matches!(bound.values[2].0, Value::Bool(true));
            let mut shape = tensor.ty.shape.clone();
            if keep_dims {
                shape[axis] = Dim::constant(1);
            } else {
                shape.remove(axis);
            }
            Some(el.emit(
                Op::ArgMax { axis, keep_dims },
                TensorType::new(DType::I64, shape),
                span,
                &[&tensor],
            ))
        }
        "reshape" => {
            let bound = bind(el, name, &[("x", None)], true, args, span)?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let sizes = dims_argument(el, name, &bound.rest)?;
            reshape_to(el, tensor, &sizes, span)
        }
        "flatten" => {
            let bound = bind(
                el,
                name,
                &[
                    ("x", None),
                    ("start", Some(Value::Int(1))),
                    ("end", Some(Value::Int(-1))),
                ],
                false,
                args,
                span,
            )?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let rank = tensor.ty.rank().max(1);
            let start = axis(el, name, &bound.values[1], rank)?;
            let end = axis(el, name, &bound.values[2], rank)?;
            if tensor.ty.rank() == 0 || start > end {
                if start > end {
                    el.report(
                        Diagnostic::error("invalid-axis", "`flatten`'s start is after its end")
                            .with_label(bound.values[1].1, "start"),
                    );
                    return None;
                }
                return Some(reshape_exact(el, tensor, vec![Dim::constant(1)], span));
            }
            let merged = match product(&tensor.ty.shape[start..=end]) {
                Ok(d) => d,
                Err(e) => return Some(el.dim_error(e, span)),
            };
            let mut shape = tensor.ty.shape[..start].to_vec();
            shape.push(merged);
            shape.extend_from_slice(&tensor.ty.shape[end + 1..]);
            Some(reshape_exact(el, tensor, shape, span))
        }
        "permute" => {
            let bound = bind(el, name, &[("x", None)], true, args, span)?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let axes = dims_argument(el, name, &bound.rest)?;
            let rank = tensor.ty.rank();
            if axes.len() != rank {
                el.report(
                    Diagnostic::error(
                        "invalid-axis",
                        format!(
                            "`permute` needs {rank} axes for {}, found {}",
                            tensor.ty,
                            axes.len()
                        ),
                    )
                    .with_label(span, "wrong number of axes"),
                );
                return None;
            }
            let mut perm = Vec::new();
            for axis_arg in &axes {
                perm.push(axis(el, name, axis_arg, rank)?);
            }
            let mut seen = perm.clone();
            seen.sort();
            seen.dedup();
            if seen.len() != rank {
                el.report(
                    Diagnostic::error(
                        "invalid-axis",
                        format!("`permute` axes {perm:?} repeat an axis"),
                    )
                    .with_label(span, "not a permutation"),
                );
                return None;
            }
            Some(permute(el, tensor, perm, span))
        }
        "transpose" => {
            let bound = bind(
                el,
                name,
                &[
                    ("x", None),
                    ("a", Some(Value::Int(-2))),
                    ("b", Some(Value::Int(-1))),
                ],
                false,
                args,
                span,
            )?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let rank = tensor.ty.rank();
            let a = axis(el, name, &bound.values[1], rank)?;
            let b = axis(el, name, &bound.values[2], rank)?;
            let mut perm: Vec<usize> = (0..rank).collect();
            perm.swap(a, b);
            Some(permute(el, tensor, perm, span))
        }
        "unsqueeze" => {
            let bound = bind(el, name, &[("x", None), ("axis", None)], false, args, span)?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let axis = axis(el, name, &bound.values[1], tensor.ty.rank() + 1)?;
            let mut shape = tensor.ty.shape.clone();
            shape.insert(axis, Dim::constant(1));
            Some(reshape_exact(el, tensor, shape, span))
        }
        "squeeze" => {
            let bound = bind(el, name, &[("x", None), ("axis", None)], false, args, span)?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let axis = axis(el, name, &bound.values[1], tensor.ty.rank())?;
            if tensor.ty.shape[axis] != Dim::constant(1) {
                el.report(
                    Diagnostic::error(
                        "shape-mismatch",
                        format!(
                            "`squeeze` removes a dim of size 1, but dim {axis} of {} is {}",
                            tensor.ty, tensor.ty.shape[axis]
                        ),
                    )
                    .with_label(bound.values[1].1, "not of size 1"),
                );
                return None;
            }
            let mut shape = tensor.ty.shape.clone();
            shape.remove(axis);
            Some(reshape_exact(el, tensor, shape, span))
        }
        "expand" => {
            let bound = bind(el, name, &[("x", None)], true, args, span)?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let sizes = dims_argument(el, name, &bound.rest)?;
            let mut shape = Vec::new();
            for size in &sizes {
                shape.push(expect_dim(el, name, size)?);
            }
            match broadcast(&tensor.ty.shape, &shape) {
                Ok(result) if result == shape => {}
                _ => {
                    el.report(
                        Diagnostic::error(
                            "broadcast-mismatch",
                            format!(
                                "{} cannot be expanded to {}",
                                tensor.ty,
                                format_shape(&shape)
                            ),
                        )
                        .with_label(span, "only dims of size 1 can grow"),
                    );
                    return None;
                }
            }
            Some(el.emit(
                Op::Expand,
                TensorType::new(tensor.ty.dtype, shape),
                span,
                &[&tensor],
            ))
        }
        "concat" => {
            let bound = bind(
                el,
                name,
                &[("tensors", None), ("axis", Some(Value::Int(0)))],
                false,
                args,
                span,
            )?;
            let Value::Tuple(items) = &bound.values[0].0 else {
                el.report(
                    Diagnostic::error(
                        "type-mismatch",
                        "`concat` takes a list of tensors: `concat([a, b], axis = 1)`",
                    )
                    .with_label(bound.values[0].1, "not a list"),
                );
                return None;
            };
            let mut tensors = Vec::new();
            for item in items.iter() {
                tensors.push(expect_tensor(el, name, &(item.clone(), bound.values[0].1))?);
            }
            concat(el, tensors, &bound.values[1], span)
        }
        "split" => {
            let bound = bind(
                el,
                name,
                &[
                    ("x", None),
                    ("sections", None),
                    ("axis", Some(Value::Int(-1))),
                ],
                false,
                args,
                span,
            )?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let axis = axis(el, name, &bound.values[2], tensor.ty.rank())?;
            split(el, tensor, &bound.values[1], axis, span)
        }
        "matmul" => {
            let bound = bind(el, name, &[("a", None), ("b", None)], false, args, span)?;
            let a = expect_tensor(el, name, &bound.values[0])?;
            let b = expect_tensor(el, name, &bound.values[1])?;
            Some(matmul(el, a, b, span, bound.values[0].1, bound.values[1].1))
        }
        "conv2d" => {
            let spec: &[ParamSpec] = &[
                ("x", None),
                ("weight", None),
                ("bias", Some(Value::None)),
                ("stride", Some(Value::Int(1))),
                ("padding", Some(Value::Int(0))),
                ("dilation", Some(Value::Int(1))),
                ("groups", Some(Value::Int(1))),
            ];
            let bound = bind(el, name, spec, false, args, span)?;
            conv2d(el, &bound, span)
        }
        "pool2d" => {
            let spec: &[ParamSpec] = &[
                ("x", None),
                ("kind", None),
                ("kernel", None),
                ("stride", Some(Value::None)),
                ("padding", Some(Value::Int(0))),
            ];
            let bound = bind(el, name, spec, false, args, span)?;
            pool2d(el, &bound, span)
        }
        "take" => {
            let bound = bind(
                el,
                name,
                &[
                    ("table", None),
                    ("indices", None),
                    ("axis", Some(Value::Int(0))),
                ],
                false,
                args,
                span,
            )?;
            let table = expect_tensor(el, name, &bound.values[0])?;
            let indices = expect_tensor(el, name, &bound.values[1])?;
            let axis = axis(el, name, &bound.values[2], table.ty.rank())?;
            Some(gather(el, table, indices, axis, span, bound.values[1].1))
        }
        "zeros" | "ones" | "full" => {
            let spec: &[ParamSpec] = if name == "full" {
                &[("value", None)]
            } else {
                &[]
            };
            let dtype_default = Value::DType(DType::F32);
            let mut args = args;
            let dtype_value = match args.named.iter().position(|(n, _)| n.name == "dtype") {
                Some(index) => args.named.remove(index).1,
                None => dtype_default,
            };
            let bound = bind(el, name, spec, true, args, span)?;
            let Value::DType(dtype) = dtype_value else {
                el.report(
                    Diagnostic::error(
                        "type-mismatch",
                        format!("`{name}`'s dtype must be f32 or i64"),
                    )
                    .with_label(span, "not a dtype"),
                );
                return None;
            };
            let sizes = dims_argument(el, name, &bound.rest)?;
            let mut shape = Vec::new();
            for size in &sizes {
                shape.push(expect_dim(el, name, size)?);
            }
            let literal = match (name, dtype) {
                ("zeros", DType::F32) => Literal::F32(0.0),
                ("ones", DType::F32) => Literal::F32(1.0),
                ("zeros", DType::I64) => Literal::I64(0),
                ("ones", DType::I64) => Literal::I64(1),
                ("zeros", DType::Bool) => Literal::Bool(false),
                ("ones", DType::Bool) => Literal::Bool(true),
                (_, DType::F32) => Literal::F32(scalar_number(el, name, &bound.values[0])? as f32),
                (_, DType::I64) => Literal::I64(expect_int(el, name, "value", &bound.values[0])?),
                (_, DType::Bool) => match bound.values[0].0 {
                    Value::Bool(b) => Literal::Bool(b),
                    _ => {
                        el.report(
                            Diagnostic::error(
                                "type-mismatch",
                                "a bool tensor is filled with a bool",
                            )
                            .with_label(bound.values[0].1, "not a bool"),
                        );
                        return None;
                    }
                },
            };
            Some(el.emit(Op::Fill(literal), TensorType::new(dtype, shape), span, &[]))
        }
        "arange" => {
            let mut args = args;
            let dtype_value = match args.named.iter().position(|(n, _)| n.name == "dtype") {
                Some(index) => args.named.remove(index).1,
                None => Value::DType(DType::I64),
            };
            let bound = bind(el, name, &[("n", None)], false, args, span)?;
            let size = expect_dim(el, name, &bound.values[0])?;
            let Value::DType(dtype @ (DType::F32 | DType::I64)) = dtype_value else {
                el.report(
                    Diagnostic::error("type-mismatch", "`arange`'s dtype must be f32 or i64")
                        .with_label(span, "not f32 or i64"),
                );
                return None;
            };
            Some(el.emit(
                Op::Iota { axis: 0 },
                TensorType::new(dtype, vec![size]),
                span,
                &[],
            ))
        }
        "batch_norm" => {
            let spec: &[ParamSpec] = &[
                ("x", None),
                ("weight", None),
                ("bias", None),
                ("running_mean", None),
                ("running_var", None),
                ("num_batches_tracked", Some(Value::None)),
                ("eps", Some(Value::Float(1e-5))),
                ("momentum", Some(Value::Float(0.1))),
            ];
            let bound = bind(el, name, spec, false, args, span)?;
            batch_norm(el, &bound, span)
        }
        "dropout" => {
            let bound = bind(
                el,
                name,
                &[("x", None), ("rate", Some(Value::Float(0.5)))],
                false,
                args,
                span,
            )?;
            let tensor = expect_tensor(el, name, &bound.values[0])?;
            let rate = scalar_number(el, name, &bound.values[1])?;
            if !(0.0..1.0).contains(&rate) {
                el.report(
                    Diagnostic::error(
                        "invalid-argument",
                        format!("a dropout rate must be in [0, 1), found {rate}"),
                    )
                    .with_label(bound.values[1].1, "out of range"),
                );
                return None;
            }
            expect_f32(el, name, &tensor, bound.values[0].1)?;
            let ty = tensor.ty.clone();
            Some(el.emit(Op::Dropout { rate }, ty, span, &[&tensor]))
        }
        "int" => {
            let bound = bind(el, name, &[("x", None)], false, args, span)?;
            match &bound.values[0].0 {
                Value::Int(v) => Some(Value::Int(*v)),
                Value::Float(v) if v.is_finite() && v.abs() < 9.0e18 => {
                    Some(Value::Int(v.trunc() as i64))
                }
                Value::Bool(b) => Some(Value::Int(i64::from(*b))),
                Value::Dim(d) => Some(Value::Dim(d.clone())),
                other => {
                    let description = other.describe();
                    el.report(
                        Diagnostic::error(
                            "type-mismatch",
                            format!("`int` converts numbers, found {description}"),
                        )
                        .with_label(bound.values[0].1, "not a number"),
                    );
                    None
                }
            }
        }
        "float" => {
            let bound = bind(el, name, &[("x", None)], false, args, span)?;
            Some(Value::Float(scalar_number(el, name, &bound.values[0])?))
        }
        "require" => {
            // `require(condition, "message with {} holes", values...)`: a compile-time check
            // that a layer states about its hyper-parameters.
            let bound = bind(
                el,
                name,
                &[("condition", None), ("message", None)],
                true,
                args,
                span,
            )?;
            let Value::Str(template) = &bound.values[1].0 else {
                el.report(
                    Diagnostic::error("type-mismatch", "`require`'s message must be a string")
                        .with_label(bound.values[1].1, "not a string"),
                );
                return None;
            };
            match &bound.values[0].0 {
                Value::Bool(true) => Some(Value::None),
                Value::Bool(false) => {
                    let mut message = String::new();
                    let mut values = bound.rest.iter();
                    let mut pieces = template.split("{}").peekable();
                    while let Some(piece) = pieces.next() {
                        message.push_str(piece);
                        if pieces.peek().is_some() {
                            match values.next() {
                                Some((value, _)) => message.push_str(&display_value(value)),
                                None => message.push_str("{}"),
                            }
                        }
                    }
                    el.report(
                        Diagnostic::error("invalid-argument", message)
                            .with_label(span, "requirement not met"),
                    );
                    el.fail_requirement();
                    None
                }
                other => {
                    let description = other.describe();
                    el.report(
                        Diagnostic::error(
                            "non-constant-condition",
                            format!("`require` needs a compile-time bool, found {description}"),
                        )
                        .with_label(bound.values[0].1, "not a compile-time bool"),
                    );
                    None
                }
            }
        }
        "len" => {
            let bound = bind(el, name, &[("x", None)], false, args, span)?;
            match &bound.values[0].0 {
                Value::Tuple(items) => Some(Value::Int(items.len() as i64)),
                Value::Tensor(t) if !t.ty.shape.is_empty() => {
                    Some(dim_value(t.ty.shape[0].clone()))
                }
                other => {
                    let description = other.describe();
                    el.report(
                        Diagnostic::error(
                            "type-mismatch",
                            format!("`len` takes a tuple or a tensor, found {description}"),
                        )
                        .with_label(bound.values[0].1, "no length"),
                    );
                    None
                }
            }
        }
        _ => None,
    }
}

/// A compile-time value as a user would write it: `3`, `0.5`, `B`, `"tanh"`.
fn display_value(value: &Value) -> String {
    match value {
        Value::Int(v) => v.to_string(),
        Value::Float(v) => v.to_string(),
        Value::Bool(v) => v.to_string(),
        Value::Str(s) => s.to_string(),
        Value::Dim(d) => d.to_string(),
        other => other.describe(),
    }
}

fn scalar_number(el: &mut Elaborator, callee: &str, (value, span): &(Value, Span)) -> Option<f64> {
    match value.as_f64() {
        Some(v) => Some(v),
        None if value.is_error() => None,
        None => {
            let description = value.describe();
            el.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{callee}` expects a number here, found {description}"),
                )
                .with_label(*span, "not a number"),
            );
            None
        }
    }
}

fn unary(
    el: &mut Elaborator,
    name: &str,
    (value, value_span): &(Value, Span),
    span: Span,
) -> Option<Value> {
    let op = match name {
        "exp" => UnaryOp::Exp,
        "log" => UnaryOp::Log,
        "sqrt" => UnaryOp::Sqrt,
        "rsqrt" => UnaryOp::Rsqrt,
        "tanh" => UnaryOp::Tanh,
        "sigmoid" => UnaryOp::Sigmoid,
        "erf" => UnaryOp::Erf,
        "abs" => UnaryOp::Abs,
        "sin" => UnaryOp::Sin,
        "cos" => UnaryOp::Cos,
        _ => UnaryOp::Floor,
    };
    if let Value::Tensor(tensor) = value {
        let allowed =
            tensor.ty.dtype == DType::F32 || (op == UnaryOp::Abs && tensor.ty.dtype == DType::I64);
        if !allowed {
            expect_f32(el, name, tensor, *value_span)?;
        }
        let ty = tensor.ty.clone();
        return Some(el.emit(Op::Unary(op), ty, span, &[tensor]));
    }
    let x = scalar_number(el, name, &(value.clone(), *value_span))?;
    let result = match op {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Floor => x.floor(),
        _ => {
            el.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{name}` is only defined on tensors"),
                )
                .with_label(*value_span, "not a tensor"),
            );
            return None;
        }
    };
    Some(Value::Float(result))
}

fn broadcast_all(el: &mut Elaborator, tensors: &[&TensorValue], span: Span) -> Option<Vec<Dim>> {
    let mut shape = Vec::new();
    for tensor in tensors {
        match broadcast(&shape, &tensor.ty.shape) {
            Ok(s) => shape = s,
            Err((a, b)) => {
                let shapes: Vec<String> =
                    tensors.iter().map(|t| format_shape(&t.ty.shape)).collect();
                el.report(
                    Diagnostic::error(
                        "broadcast-mismatch",
                        format!("shapes {} do not broadcast", shapes.join(", ")),
                    )
                    .with_label(span, "here")
                    .with_note(format!("the dims {a} and {b} differ and neither is 1")),
                );
                return None;
            }
        }
    }
    Some(shape)
}

fn reduce(
    el: &mut Elaborator,
    name: &str,
    tensor: TensorValue,
    axis_arg: &(Value, Span),
    keep: &(Value, Span),
    span: Span,
) -> Option<Value> {
    let rank = tensor.ty.rank();
    let mut axes: Vec<usize> = match &axis_arg.0 {
        Value::None => (0..rank).collect(),
        Value::Tuple(items) => {
            let mut axes = Vec::new();
            for item in items.iter() {
                axes.push(axis(el, name, &(item.clone(), axis_arg.1), rank)?);
            }
            axes
        }
        _ => vec![axis(el, name, axis_arg, rank)?],
    };
    let count = axes.len();
    axes.sort();
    axes.dedup();
    if axes.len() != count {
        el.report(
            Diagnostic::error("invalid-axis", format!("`{name}` lists an axis twice"))
                .with_label(axis_arg.1, "repeated axis"),
        );
        return None;
    }
    let keep_dims = match keep.0 {
        Value::Bool(b) => b,
        _ => {
            el.report(
                Diagnostic::error("type-mismatch", "`keepdims` must be a bool")
                    .with_label(keep.1, "not a bool"),
            );
            return None;
        }
    };
    let op = match name {
        "sum" => ReduceOp::Sum,
        "mean" => ReduceOp::Mean,
        "max" => ReduceOp::Max,
        _ => ReduceOp::Min,
    };
    if tensor.ty.dtype == DType::Bool || (op == ReduceOp::Mean && tensor.ty.dtype != DType::F32) {
        expect_f32(el, name, &tensor, span)?;
    }
    let mut shape = Vec::new();
    for (index, dim) in tensor.ty.shape.iter().enumerate() {
        if axes.contains(&index) {
            if keep_dims {
                shape.push(Dim::constant(1));
            }
        } else {
            shape.push(dim.clone());
        }
    }
    Some(el.emit(
        Op::Reduce {
            op,
            axes,
            keep_dims,
        },
        TensorType::new(tensor.ty.dtype, shape),
        span,
        &[&tensor],
    ))
}

pub fn permute(el: &mut Elaborator, tensor: TensorValue, perm: Vec<usize>, span: Span) -> Value {
    if perm.iter().enumerate().all(|(i, p)| i == *p) {
        return Value::Tensor(tensor);
    }
    let shape = perm.iter().map(|&p| tensor.ty.shape[p].clone()).collect();
    el.emit(
        Op::Permute { perm },
        TensorType::new(tensor.ty.dtype, shape),
        span,
        &[&tensor],
    )
}

/// A reshape whose element count is known to be preserved.
fn reshape_exact(el: &mut Elaborator, tensor: TensorValue, shape: Vec<Dim>, span: Span) -> Value {
    if tensor.ty.shape == shape {
        return Value::Tensor(tensor);
    }
    el.emit(
        Op::Reshape,
        TensorType::new(tensor.ty.dtype, shape),
        span,
        &[&tensor],
    )
}

fn reshape_to(
    el: &mut Elaborator,
    tensor: TensorValue,
    sizes: &[(Value, Span)],
    span: Span,
) -> Option<Value> {
    let mut shape: Vec<Option<Dim>> = Vec::new();
    let mut inferred = None;
    for (index, size) in sizes.iter().enumerate() {
        if matches!(size.0, Value::Int(-1)) {
            if inferred.is_some() {
                el.report(
                    Diagnostic::error("invalid-reshape", "only one size can be -1")
                        .with_label(size.1, "second -1"),
                );
                return None;
            }
            inferred = Some(index);
            shape.push(None);
            continue;
        }
        shape.push(Some(expect_dim(el, "reshape", size)?));
    }
    let total = match product(&tensor.ty.shape) {
        Ok(t) => t,
        Err(e) => return Some(el.dim_error(e, span)),
    };
    let known: Vec<Dim> = shape.iter().flatten().cloned().collect();
    let known_product = match product(&known) {
        Ok(p) => p,
        Err(e) => return Some(el.dim_error(e, span)),
    };
    let target_text = || {
        let parts: Vec<String> = shape
            .iter()
            .map(|d| d.as_ref().map(|d| d.to_string()).unwrap_or("-1".into()))
            .collect();
        format!("[{}]", parts.join(", "))
    };
    if let Some(index) = inferred {
        match total.div_dim(&known_product) {
            Ok(missing) => shape[index] = Some(missing),
            Err(_) => {
                let message = format!(
                    "cannot reshape {} ({total} elements) to {}",
                    tensor.ty,
                    target_text()
                );
                el.report(Diagnostic::error("invalid-reshape", message).with_label(
                    span,
                    format!("{total} is not a multiple of {known_product}"),
                ));
                return None;
            }
        }
    } else if known_product != total {
        let message = format!(
            "cannot reshape {} ({total} elements) to {} ({known_product} elements)",
            tensor.ty,
            target_text()
        );
        el.report(
            Diagnostic::error("invalid-reshape", message).with_label(span, "element counts differ"),
        );
        return None;
    }
    let shape: Vec<Dim> = shape.into_iter().flatten().collect();
    Some(reshape_exact(el, tensor, shape, span))
}

fn concat(
    el: &mut Elaborator,
    tensors: Vec<TensorValue>,
    axis_arg: &(Value, Span),
    span: Span,
) -> Option<Value> {
    let Some(first) = tensors.first().cloned() else {
        el.report(
            Diagnostic::error("invalid-argument", "`concat` needs at least one tensor")
                .with_label(span, "empty list"),
        );
        return None;
    };
    let rank = first.ty.rank();
    let axis = axis(el, "concat", axis_arg, rank)?;
    let mut total = Dim::constant(0);
    for tensor in &tensors {
        let same = tensor.ty.dtype == first.ty.dtype
            && tensor.ty.rank() == rank
            && tensor
                .ty
                .shape
                .iter()
                .zip(&first.ty.shape)
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !same {
            el.report(
                Diagnostic::error(
                    "shape-mismatch",
                    format!(
                        "`concat` along axis {axis} needs equal other dims: {} and {}",
                        first.ty, tensor.ty
                    ),
                )
                .with_label(span, "mismatched operands"),
            );
            return None;
        }
        total = match total.add(&tensor.ty.shape[axis]) {
            Ok(t) => t,
            Err(e) => return Some(el.dim_error(e, span)),
        };
    }
    if tensors.len() == 1 {
        return Some(Value::Tensor(first));
    }
    let mut shape = first.ty.shape.clone();
    shape[axis] = total;
    let operands: Vec<&TensorValue> = tensors.iter().collect();
    Some(el.emit(
        Op::Concat { axis },
        TensorType::new(first.ty.dtype, shape),
        span,
        &operands,
    ))
}

fn split(
    el: &mut Elaborator,
    tensor: TensorValue,
    sections: &(Value, Span),
    axis: usize,
    span: Span,
) -> Option<Value> {
    let size = tensor.ty.shape[axis].clone();
    let sizes: Vec<Dim> = match &sections.0 {
        Value::Int(count) if *count > 0 => {
            match size.div_exact(*count) {
                Ok(part) => vec![part; *count as usize],
                Err(_) => {
                    el.report(
                    Diagnostic::error("dim-not-divisible", format!("`split` into {count} parts along axis {axis}, but that dim is {size}"))
                        .with_label(sections.1, format!("{size} is not divisible by {count}")),
                );
                    return None;
                }
            }
        }
        Value::Tuple(items) => {
            let mut sizes = Vec::new();
            for item in items.iter() {
                sizes.push(expect_dim(el, "split", &(item.clone(), sections.1))?);
            }
            let sum = match sizes.iter().try_fold(Dim::constant(0), |acc, d| acc.add(d)) {
                Ok(s) => s,
                Err(e) => return Some(el.dim_error(e, span)),
            };
            if sum != size {
                el.report(
                    Diagnostic::error(
                        "shape-mismatch",
                        format!("`split` sizes add up to {sum}, but the dim is {size}"),
                    )
                    .with_label(sections.1, "sizes do not cover the axis"),
                );
                return None;
            }
            sizes
        }
        _ => {
            el.report(
                Diagnostic::error(
                    "invalid-argument",
                    "`split` takes a positive count or a list of sizes",
                )
                .with_label(sections.1, "not a count"),
            );
            return None;
        }
    };
    let mut parts = Vec::new();
    let mut start = Dim::constant(0);
    for part in sizes {
        let mut shape = tensor.ty.shape.clone();
        shape[axis] = part.clone();
        parts.push(el.emit(
            Op::Slice {
                axis,
                start: start.clone(),
                step: 1,
            },
            TensorType::new(tensor.ty.dtype, shape),
            span,
            &[&tensor],
        ));
        start = match start.add(&part) {
            Ok(s) => s,
            Err(e) => return Some(el.dim_error(e, span)),
        };
    }
    Some(Value::Tuple(Rc::new(parts)))
}

/// NumPy matmul: rank-1 operands are promoted and the added axis removed again; batch dims
/// broadcast.
pub fn matmul(
    el: &mut Elaborator,
    a: TensorValue,
    b: TensorValue,
    span: Span,
    a_span: Span,
    b_span: Span,
) -> Value {
    if a.ty.dtype != DType::F32 || b.ty.dtype != DType::F32 {
        el.report(
            Diagnostic::error(
                "dtype-mismatch",
                format!("`@` multiplies f32 tensors, found {} and {}", a.ty, b.ty),
            )
            .with_label(span, "not f32")
            .with_help("convert with `cast(x, f32)`"),
        );
        return Value::Error;
    }
    if a.ty.rank() == 0 || b.ty.rank() == 0 {
        el.report(
            Diagnostic::error(
                "rank-mismatch",
                "`@` needs tensors with at least one dim; use `*` for scalars",
            )
            .with_label(if a.ty.rank() == 0 { a_span } else { b_span }, "a scalar"),
        );
        return Value::Error;
    }
    let a_vector = a.ty.rank() == 1;
    let b_vector = b.ty.rank() == 1;
    let a2 = if a_vector {
        match reshape_exact(
            el,
            a.clone(),
            vec![Dim::constant(1), a.ty.shape[0].clone()],
            span,
        ) {
            Value::Tensor(t) => t,
            _ => return Value::Error,
        }
    } else {
        a.clone()
    };
    let b2 = if b_vector {
        match reshape_exact(
            el,
            b.clone(),
            vec![b.ty.shape[0].clone(), Dim::constant(1)],
            span,
        ) {
            Value::Tensor(t) => t,
            _ => return Value::Error,
        }
    } else {
        b.clone()
    };
    let (a_rank, b_rank) = (a2.ty.rank(), b2.ty.rank());
    let k_left = &a2.ty.shape[a_rank - 1];
    let k_right = &b2.ty.shape[b_rank - 2];
    if k_left != k_right {
        el.report(
            Diagnostic::error(
                "matmul-mismatch",
                format!("cannot multiply {} by {}", a.ty, b.ty),
            )
            .with_label(a_span, format!("has {k_left} columns"))
            .with_label(b_span, format!("has {k_right} rows"))
            .with_note("in `a @ b`, the last dim of `a` must equal the second-to-last dim of `b`"),
        );
        return Value::Error;
    }
    let batch = match broadcast(&a2.ty.shape[..a_rank - 2], &b2.ty.shape[..b_rank - 2]) {
        Ok(batch) => batch,
        Err((x, y)) => {
            el.report(
                Diagnostic::error(
                    "broadcast-mismatch",
                    format!("the batch dims of {} and {} do not broadcast", a.ty, b.ty),
                )
                .with_label(span, "batch dims differ")
                .with_note(format!("the dims {x} and {y} differ and neither is 1")),
            );
            return Value::Error;
        }
    };
    let mut shape = batch.clone();
    shape.push(a2.ty.shape[a_rank - 2].clone());
    shape.push(b2.ty.shape[b_rank - 1].clone());
    let product = el.emit(
        Op::MatMul,
        TensorType::new(DType::F32, shape.clone()),
        span,
        &[&a2, &b2],
    );
    let Value::Tensor(product) = product else {
        return Value::Error;
    };
    let mut final_shape = batch;
    if !a_vector {
        final_shape.push(a2.ty.shape[a_rank - 2].clone());
    }
    if !b_vector {
        final_shape.push(b2.ty.shape[b_rank - 1].clone());
    }
    reshape_exact(el, product, final_shape, span)
}

/// `batch_norm(x, weight, bias, running_mean, running_var, num_batches_tracked = none,
/// eps = 1e-5, momentum = 0.1)`: x is f32 `[N, C, ...]`, the four vectors f32 `[C]`, the
/// counter (when given) an i64 scalar.
fn batch_norm(el: &mut Elaborator, bound: &Bound, span: Span) -> Option<Value> {
    const NAME: &str = "batch_norm";
    let x = expect_tensor(el, NAME, &bound.values[0])?;
    expect_f32(el, NAME, &x, bound.values[0].1)?;
    if x.ty.rank() < 2 {
        el.report(
            Diagnostic::error(
                "rank-mismatch",
                format!(
                    "batch_norm's input must be [N, C, ...] with at least 2 dims, found {}",
                    x.ty
                ),
            )
            .with_label(bound.values[0].1, format!("{} dims", x.ty.rank())),
        );
        return None;
    }
    let channels = x.ty.shape[1].clone();
    let mut vectors = Vec::new();
    for (index, what) in ["weight", "bias", "running_mean", "running_var"]
        .into_iter()
        .enumerate()
    {
        let argument = &bound.values[index + 1];
        let vector = expect_tensor(el, NAME, argument)?;
        if vector.ty.dtype != DType::F32 || vector.ty.shape != [channels.clone()] {
            el.report(
                Diagnostic::error(
                    "shape-mismatch",
                    format!(
                        "batch_norm's {what} must be f32[{channels}] (one value per channel of {}), found {}",
                        x.ty, vector.ty
                    ),
                )
                .with_label(argument.1, format!("{}", vector.ty))
                .with_label(bound.values[0].1, format!("{channels} channels")),
            );
            return None;
        }
        vectors.push(vector);
    }
    let counter = match &bound.values[5].0 {
        Value::None => None,
        Value::Tensor(counter) if counter.ty.dtype == DType::I64 && counter.ty.rank() == 0 => {
            Some(counter.clone())
        }
        Value::Error => return None,
        other => {
            let description = other.describe();
            el.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!("batch_norm's num_batches_tracked must be an i64 scalar tensor, found {description}"),
                )
                .with_label(bound.values[5].1, "not an i64[]"),
            );
            return None;
        }
    };
    let eps = scalar_number(el, NAME, &bound.values[6])?;
    let momentum = scalar_number(el, NAME, &bound.values[7])?;
    for (value, what, argument, valid) in [
        (eps, "eps", &bound.values[6], eps.is_finite() && eps >= 0.0),
        (
            momentum,
            "momentum",
            &bound.values[7],
            (0.0..=1.0).contains(&momentum),
        ),
    ] {
        if !valid {
            el.report(
                Diagnostic::error(
                    "invalid-argument",
                    format!(
                        "batch_norm's {what} must be {}, found {value}",
                        if what == "eps" {
                            "a finite number >= 0"
                        } else {
                            "in [0, 1]"
                        }
                    ),
                )
                .with_label(argument.1, "out of range"),
            );
            return None;
        }
    }
    let mut operands: Vec<&TensorValue> = vec![&x];
    operands.extend(vectors.iter());
    if let Some(counter) = &counter {
        operands.push(counter);
    }
    let ty = x.ty.clone();
    Some(el.emit(Op::BatchNorm { eps, momentum }, ty, span, &operands))
}

fn conv2d(el: &mut Elaborator, bound: &Bound, span: Span) -> Option<Value> {
    let x = expect_tensor(el, "conv2d", &bound.values[0])?;
    let weight = expect_tensor(el, "conv2d", &bound.values[1])?;
    expect_f32(el, "conv2d", &x, bound.values[0].1)?;
    expect_f32(el, "conv2d", &weight, bound.values[1].1)?;
    for (tensor, arg_span, what) in [
        (&x, bound.values[0].1, "input [N, C, H, W]"),
        (&weight, bound.values[1].1, "weight [O, I, kh, kw]"),
    ] {
        if tensor.ty.rank() != 4 {
            el.report(
                Diagnostic::error(
                    "rank-mismatch",
                    format!("conv2d's {what} must have 4 dims, found {}", tensor.ty),
                )
                .with_label(arg_span, format!("{} dims", tensor.ty.rank())),
            );
            return None;
        }
    }
    let stride = pair(el, "conv2d", "stride", &bound.values[3], 1)?;
    let padding = pair(el, "conv2d", "padding", &bound.values[4], 0)?;
    let dilation = pair(el, "conv2d", "dilation", &bound.values[5], 1)?;
    let groups = expect_int(el, "conv2d", "groups", &bound.values[6])?;
    if groups < 1 {
        el.report(
            Diagnostic::error("invalid-argument", "conv2d's groups must be at least 1")
                .with_label(bound.values[6].1, "out of range"),
        );
        return None;
    }
    let channels = &x.ty.shape[1];
    let expected_channels = match weight.ty.shape[1].mul(&Dim::constant(groups)) {
        Ok(c) => c,
        Err(e) => return Some(el.dim_error(e, span)),
    };
    if *channels != expected_channels {
        el.report(
            Diagnostic::error("shape-mismatch", format!("conv2d's input has {channels} channels, but its weight {} expects {expected_channels}", weight.ty))
                .with_label(bound.values[0].1, format!("{channels} channels ({})", x.ty))
                .with_label(bound.values[1].1, format!("expects {expected_channels}")),
        );
        return None;
    }
    let (Some(kernel_h), Some(kernel_w)) =
        (weight.ty.shape[2].as_const(), weight.ty.shape[3].as_const())
    else {
        el.report(
            Diagnostic::error(
                "invalid-dim",
                "conv2d's kernel size must be known at compile time",
            )
            .with_label(bound.values[1].1, "symbolic kernel"),
        );
        return None;
    };
    let out_h = window_output(
        &x.ty.shape[2],
        kernel_h,
        stride[0] as i64,
        padding[0] as i64,
        dilation[0] as i64,
    );
    let out_w = window_output(
        &x.ty.shape[3],
        kernel_w,
        stride[1] as i64,
        padding[1] as i64,
        dilation[1] as i64,
    );
    let (out_h, out_w) = match (out_h, out_w) {
        (Ok(h), Ok(w)) => (h, w),
        (Err(e), _) | (_, Err(e)) => return Some(el.dim_error(e, span)),
    };
    if out_h.as_const().is_some_and(|v| v < 1) || out_w.as_const().is_some_and(|v| v < 1) {
        el.report(
            Diagnostic::error(
                "invalid-dim",
                format!(
                    "conv2d's input {} is too small for a {kernel_h}x{kernel_w} kernel",
                    x.ty
                ),
            )
            .with_label(bound.values[0].1, "too small")
            .with_help("pad the input or use a smaller kernel"),
        );
        return None;
    }
    let out_channels = weight.ty.shape[0].clone();
    if let Some(o) = out_channels.as_const() {
        if o % groups != 0 {
            el.report(
                Diagnostic::error(
                    "dim-not-divisible",
                    format!("conv2d's {o} output channels are not divisible into {groups} groups"),
                )
                .with_label(bound.values[6].1, "groups"),
            );
            return None;
        }
    }
    let ty = TensorType::new(
        DType::F32,
        vec![x.ty.shape[0].clone(), out_channels.clone(), out_h, out_w],
    );
    let op = Op::Conv2d {
        stride,
        padding,
        dilation,
        groups: groups as usize,
    };
    match &bound.values[2].0 {
        Value::None => Some(el.emit(op, ty, span, &[&x, &weight])),
        Value::Tensor(bias) => {
            if bias.ty.dtype != DType::F32 || bias.ty.shape != vec![out_channels.clone()] {
                el.report(
                    Diagnostic::error(
                        "shape-mismatch",
                        format!(
                            "conv2d's bias must be f32[{out_channels}], found {}",
                            bias.ty
                        ),
                    )
                    .with_label(bound.values[2].1, "wrong bias"),
                );
                return None;
            }
            Some(el.emit(op, ty, span, &[&x, &weight, bias]))
        }
        other => {
            let description = other.describe();
            el.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!("conv2d's bias must be a tensor or none, found {description}"),
                )
                .with_label(bound.values[2].1, "not a tensor"),
            );
            None
        }
    }
}

fn pool2d(el: &mut Elaborator, bound: &Bound, span: Span) -> Option<Value> {
    let x = expect_tensor(el, "pool2d", &bound.values[0])?;
    expect_f32(el, "pool2d", &x, bound.values[0].1)?;
    if x.ty.rank() != 4 {
        el.report(
            Diagnostic::error(
                "rank-mismatch",
                format!("pooling needs an NCHW tensor with 4 dims, found {}", x.ty),
            )
            .with_label(bound.values[0].1, format!("{} dims", x.ty.rank())),
        );
        return None;
    }
    let kind = match &bound.values[1].0 {
        Value::Str(s) if &**s == "max" => PoolKind::Max,
        Value::Str(s) if &**s == "avg" => PoolKind::Avg,
        _ => {
            el.report(
                Diagnostic::error("invalid-argument", "pool2d's kind is \"max\" or \"avg\"")
                    .with_label(bound.values[1].1, "unknown kind"),
            );
            return None;
        }
    };
    let kernel = pair(el, "pool2d", "kernel", &bound.values[2], 1)?;
    let stride = match bound.values[3].0 {
        Value::None => kernel,
        _ => pair(el, "pool2d", "stride", &bound.values[3], 1)?,
    };
    let padding = pair(el, "pool2d", "padding", &bound.values[4], 0)?;
    if padding[0] * 2 > kernel[0] || padding[1] * 2 > kernel[1] {
        el.report(
            Diagnostic::error(
                "invalid-argument",
                format!("pooling padding {padding:?} is more than half the kernel {kernel:?}"),
            )
            .with_label(bound.values[4].1, "too much padding"),
        );
        return None;
    }
    let out_h = window_output(
        &x.ty.shape[2],
        kernel[0] as i64,
        stride[0] as i64,
        padding[0] as i64,
        1,
    );
    let out_w = window_output(
        &x.ty.shape[3],
        kernel[1] as i64,
        stride[1] as i64,
        padding[1] as i64,
        1,
    );
    let (out_h, out_w) = match (out_h, out_w) {
        (Ok(h), Ok(w)) => (h, w),
        (Err(e), _) | (_, Err(e)) => return Some(el.dim_error(e, span)),
    };
    if out_h.as_const().is_some_and(|v| v < 1) || out_w.as_const().is_some_and(|v| v < 1) {
        el.report(
            Diagnostic::error(
                "invalid-dim",
                format!(
                    "the input {} is too small for a {}x{} pooling window",
                    x.ty, kernel[0], kernel[1]
                ),
            )
            .with_label(bound.values[0].1, "too small"),
        );
        return None;
    }
    let ty = TensorType::new(
        DType::F32,
        vec![x.ty.shape[0].clone(), x.ty.shape[1].clone(), out_h, out_w],
    );
    Some(el.emit(
        Op::Pool2d {
            kind,
            kernel,
            stride,
            padding,
        },
        ty,
        span,
        &[&x],
    ))
}

pub fn gather(
    el: &mut Elaborator,
    table: TensorValue,
    indices: TensorValue,
    axis: usize,
    span: Span,
    indices_span: Span,
) -> Value {
    if indices.ty.dtype != DType::I64 {
        el.report(
            Diagnostic::error(
                "dtype-mismatch",
                format!("indices must be i64, found {}", indices.ty),
            )
            .with_label(indices_span, format!("{} indices", indices.ty.dtype))
            .with_help("token ids and other indices are i64 tensors"),
        );
        return Value::Error;
    }
    let mut shape = table.ty.shape[..axis].to_vec();
    shape.extend(indices.ty.shape.iter().cloned());
    shape.extend(table.ty.shape[axis + 1..].iter().cloned());
    el.emit(
        Op::Gather { axis },
        TensorType::new(table.ty.dtype, shape),
        span,
        &[&table, &indices],
    )
}
