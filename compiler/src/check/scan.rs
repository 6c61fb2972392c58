//! `scan x in xs along axis with (state = init, ...) { ...; state = ...; yield y }`: a loop over
//! one axis, elaborated into a scan node whose body is a graph of its own.

use super::elaborate::Elaborator;
use super::scope::Scope;
use super::shapes::normalize_axis;
use super::value::{TensorValue, Value};
use crate::diag::Diagnostic;
use crate::ir::{Op, ScanOp, TensorType};
use crate::source::Span;
use crate::syntax::ast::{Pattern, ScanExpr};
use std::rc::Rc;

pub fn eval_scan(el: &mut Elaborator, scope: &mut Scope, scan: &ScanExpr, span: Span) -> Value {
    let sequence_value = el.eval(scope, &scan.sequence);
    let axis_value = match &scan.axis {
        Some(expr) => el.eval(scope, expr),
        None => Value::Int(0),
    };
    let reverse = match &scan.reverse {
        None => false,
        Some(condition) => match el.eval(scope, condition) {
            Value::Bool(flag) => flag,
            Value::Error => return Value::Error,
            other => {
                el.report(
                    Diagnostic::error(
                        "non-constant-condition",
                        format!(
                            "`reverse if` needs a compile-time bool, found {}",
                            other.describe()
                        ),
                    )
                    .with_label(condition.span, "not a compile-time bool"),
                );
                return Value::Error;
            }
        },
    };
    let mut initial = Vec::new();
    for (name, expr) in &scan.carries {
        let value = el.eval(scope, expr);
        initial.push((name.clone(), value, expr.span));
    }
    // The sequences: one tensor, or a tuple of tensors matched by a tuple pattern.
    let sequences: Vec<TensorValue> = match &sequence_value {
        Value::Tensor(t) => vec![t.clone()],
        Value::Tuple(items)
            if items.iter().all(|v| matches!(v, Value::Tensor(_))) && !items.is_empty() =>
        {
            items
                .iter()
                .filter_map(|v| {
                    if let Value::Tensor(t) = v {
                        Some(t.clone())
                    } else {
                        None
                    }
                })
                .collect()
        }
        Value::Error => return Value::Error,
        other => {
            let description = other.describe();
            el.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`scan` iterates over a tensor, found {description}"),
                )
                .with_label(scan.sequence.span, "not a tensor"),
            );
            return Value::Error;
        }
    };
    let Value::Int(raw_axis) = axis_value else {
        if axis_value.is_error() {
            return Value::Error;
        }
        el.report(
            Diagnostic::error("type-mismatch", "a scan axis must be an int")
                .with_label(span, "not an int"),
        );
        return Value::Error;
    };
    let rank = sequences[0].ty.rank();
    let Some(axis) = normalize_axis(raw_axis, rank) else {
        el.report(
            Diagnostic::error(
                "invalid-axis",
                format!(
                    "axis {raw_axis} is out of range for the sequence {}",
                    sequences[0].ty
                ),
            )
            .with_label(
                scan.axis.as_ref().map(|e| e.span).unwrap_or(span),
                "out of range",
            ),
        );
        return Value::Error;
    };
    let length = sequences[0].ty.shape[axis].clone();
    for sequence in &sequences[1..] {
        if sequence.ty.rank() != rank || sequence.ty.shape[axis] != length {
            el.report(
                Diagnostic::error(
                    "shape-mismatch",
                    format!(
                        "scanned sequences differ in length: {} and {}",
                        sequences[0].ty, sequence.ty
                    ),
                )
                .with_label(scan.sequence.span, "sequences"),
            );
            return Value::Error;
        }
    }
    let mut initial_tensors = Vec::new();
    for (name, value, value_span) in &initial {
        match value {
            Value::Tensor(t) => initial_tensors.push(t.clone()),
            Value::Error => return Value::Error,
            other => {
                let description = other.describe();
                el.report(
                    Diagnostic::error(
                        "type-mismatch",
                        format!(
                            "carried state `{}` must be a tensor, found {description}",
                            name.name
                        ),
                    )
                    .with_label(*value_span, "not a tensor")
                    .with_help("start from a tensor, e.g. `zeros(B, hidden)`"),
                );
                return Value::Error;
            }
        }
    }

    // The body graph: inputs are the carried states, one step of each sequence, then captures.
    el.push_graph();
    let carry_names: Vec<String> = initial
        .iter()
        .map(|(name, _, _)| name.name.clone())
        .collect();
    Elaborator::push_scan_frame(scope, carry_names.clone());
    for (name, tensor) in carry_names.iter().zip(&initial_tensors) {
        let input = el.add_body_input(tensor.ty.clone(), name, span);
        scope.bind(name, Value::Tensor(input));
    }
    let mut step_values = Vec::new();
    for (index, sequence) in sequences.iter().enumerate() {
        let mut shape = sequence.ty.shape.clone();
        shape.remove(axis);
        let input = el.add_body_input(
            TensorType::new(sequence.ty.dtype, shape),
            &format!("step{index}"),
            span,
        );
        step_values.push(Value::Tensor(input));
    }
    let step_value = if step_values.len() == 1 {
        step_values.remove(0)
    } else {
        Value::Tuple(Rc::new(step_values))
    };
    bind_scan_pattern(el, scope, &scan.pattern, step_value, span);
    for statement in &scan.body.statements {
        el_statement(el, scope, statement);
    }
    if let Some(result) = &scan.body.result {
        let value = el.eval(scope, result);
        if !value.is_error() && !matches!(value, Value::None) {
            if let Some(frame) = scope.scans.last_mut() {
                if frame.yielded.is_none() {
                    frame.yielded = Some((value, result.span));
                }
            }
        }
    }
    let frame = scope.scans.pop();
    let assigned = frame
        .as_ref()
        .map(|f| f.assigned.clone())
        .unwrap_or_default();
    let carried_frame = scope
        .frames
        .get(frame.as_ref().map(|f| f.frame_index).unwrap_or(0))
        .cloned()
        .unwrap_or_default();
    scope.pop();

    // New states must keep their types.
    let mut ok = true;
    let mut body_outputs = Vec::new();
    let mut result_types = Vec::new();
    for ((name, _, init_span), tensor) in initial.iter().zip(&initial_tensors) {
        match carried_frame.get(&name.name) {
            Some(Value::Tensor(new_state)) if new_state.ty == tensor.ty => {
                body_outputs.push(new_state.clone());
                result_types.push(tensor.ty.clone());
            }
            Some(Value::Tensor(new_state)) => {
                el.report(
                    Diagnostic::error(
                        "scan-state-shape",
                        format!(
                            "carried state `{}` starts as {} but the body makes it {}",
                            name.name, tensor.ty, new_state.ty
                        ),
                    )
                    .with_label(*init_span, format!("starts as {}", tensor.ty))
                    .with_label(
                        assigned.get(&name.name).copied().unwrap_or(scan.body.span),
                        format!("becomes {}", new_state.ty),
                    )
                    .with_help("a carried state must keep its dtype and shape from step to step"),
                );
                ok = false;
            }
            _ => ok = false,
        }
    }
    let yielded: Vec<(TensorValue, Span)> = match frame.and_then(|f| f.yielded) {
        None => Vec::new(),
        Some((Value::Tensor(t), yield_span)) => vec![(t, yield_span)],
        Some((Value::Tuple(items), yield_span)) => {
            let mut out = Vec::new();
            for item in items.iter() {
                match item {
                    Value::Tensor(t) => out.push((t.clone(), yield_span)),
                    _ => {
                        el.report(
                            Diagnostic::error("type-mismatch", "a scan yields tensors")
                                .with_label(yield_span, "not a tensor"),
                        );
                        ok = false;
                    }
                }
            }
            out
        }
        Some((Value::Error, _)) => {
            ok = false;
            Vec::new()
        }
        Some((other, yield_span)) => {
            let description = other.describe();
            el.report(
                Diagnostic::error(
                    "type-mismatch",
                    format!("a scan yields tensors, found {description}"),
                )
                .with_label(yield_span, "not a tensor"),
            );
            ok = false;
            Vec::new()
        }
    };
    for (tensor, _) in &yielded {
        let mut shape = tensor.ty.shape.clone();
        if axis > shape.len() {
            ok = false;
            break;
        }
        shape.insert(axis, length.clone());
        body_outputs.push(tensor.clone());
        result_types.push(TensorType::new(tensor.ty.dtype, shape));
    }
    let body_level = el.level();
    let mut output_nodes = Vec::new();
    for output in &body_outputs {
        if output.level == body_level {
            output_nodes.push(output.node);
        } else {
            // An output that is an outer value or a body input unchanged still needs a node in
            // the body: import it (captures are body inputs).
            match import_into_body(el, output) {
                Some(node) => output_nodes.push(node),
                None => ok = false,
            }
        }
    }
    el.set_outputs(output_nodes);
    let (body, captured) = el.pop_graph();
    if !ok {
        return Value::Error;
    }
    let n_carry = initial_tensors.len();
    let op = Op::Scan(ScanOp {
        body: Box::new(body),
        n_carry,
        n_sequences: sequences.len(),
        axis,
        length,
        reverse,
        result_types: result_types.clone(),
    });
    let level = el.level();
    let mut operands: Vec<TensorValue> = initial_tensors.clone();
    operands.extend(sequences.iter().cloned());
    for node in captured {
        operands.push(TensorValue {
            ty: TensorType::scalar(crate::ir::DType::F32),
            node,
            level,
        });
    }
    let operand_refs: Vec<&TensorValue> = operands.iter().collect();
    let Value::Tensor(scan_node) = el.emit(
        op,
        TensorType::scalar(crate::ir::DType::F32),
        span,
        &operand_refs,
    ) else {
        return Value::Error;
    };
    let mut results = Vec::new();
    for (index, ty) in result_types.into_iter().enumerate() {
        results.push(el.emit(Op::Project { index }, ty, span, &[&scan_node]));
    }
    let stacked: Vec<Value> = results.split_off(n_carry);
    match stacked.len() {
        0 if results.len() == 1 => results.remove(0),
        0 => Value::Tuple(Rc::new(results)),
        1 => stacked.into_iter().next().unwrap_or(Value::Error),
        _ => Value::Tuple(Rc::new(stacked)),
    }
}

fn import_into_body(el: &mut Elaborator, tensor: &TensorValue) -> Option<crate::ir::NodeId> {
    // Emitting an identity reshape would add a node; instead reuse the capture mechanism by
    // emitting a reshape to the same shape, which the interpreter treats as a copy.
    match el.emit(Op::Reshape, tensor.ty.clone(), Span::DUMMY, &[tensor]) {
        Value::Tensor(t) => Some(t.node),
        _ => None,
    }
}

fn bind_scan_pattern(
    el: &mut Elaborator,
    scope: &mut Scope,
    pattern: &Pattern,
    value: Value,
    span: Span,
) {
    el.bind_pattern(scope, pattern, value, span);
}

fn el_statement(el: &mut Elaborator, scope: &mut Scope, statement: &crate::syntax::ast::Statement) {
    el.eval_statement_public(scope, statement);
}
