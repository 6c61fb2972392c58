//! Reverse mode through a scan.
//!
//! **Choice: the forward scan stacks its states; the reverse scan recomputes the rest.** The
//! forward scan is given one more stacked result per carried state: the state each step
//! *starts* from (a body output that is just the carried input; a state of rank below the scan
//! axis is reshaped with leading 1s so it can be stacked along that axis). Everything else a
//! step computed is recomputed in the reverse scan's body, which is a copy of the forward body
//! extended with its own reverse-mode gradient. Memory is therefore `length` copies of the
//! states (what an LSTM keeps anyway as its outputs), not of every intermediate, at the cost
//! of running the forward body twice.
//!
//! The reverse scan runs the other way (`reverse` flipped) over the same axis and length:
//!
//! - carried: the gradient of each f32 state (initially the gradient of the forward scan's
//!   final state, or zero), then one accumulator per capture that needs a gradient (initially
//!   zero; each step adds its contribution, since a captured value is used by every step);
//! - sequences: the stacked states, the forward sequences, and the gradients of the stacked
//!   per-step outputs that have one;
//! - captures: the forward captures.
//!
//! Its body recomputes the step from (state, sequence slices, captures), seeds the reverse
//! pass with the incoming state gradient at the new-state outputs and the per-step output
//! gradients at the per-step outputs, and returns the gradient with respect to the state it
//! started from (the next carried gradient), the accumulators plus this step's capture
//! gradients, and (stacked) the gradient of each sequence slice. Its results are the gradients
//! of the initial states, of the captures and of the sequences. A scan inside the body is
//! differentiated the same way, recursively.

use super::RuleResult;
use crate::autodiff::{backpropagate, internal, Builder};
use crate::ir::{DType, Dim, Graph, NodeId, Op, ScanOp, TensorType};
use std::collections::HashSet;

pub fn scan(
    graph: &mut Graph,
    id: NodeId,
    results: &[(usize, NodeId)],
    needed: &[bool],
    _relevant: &HashSet<NodeId>,
) -> RuleResult {
    let span = graph.node(id).span;
    let Op::Scan(forward) = graph.node(id).op.clone() else {
        return Err(vec![internal("the scan rule was given another op")]);
    };
    let operands = graph.operands(id);
    let n_carry = forward.n_carry;
    let n_sequences = forward.n_sequences;
    let n_captures = operands.len() - n_carry - n_sequences;
    let axis = forward.axis;
    let n_results = forward.result_types.len();
    let carry_types: Vec<TensorType> = forward.result_types[..n_carry].to_vec();
    let bad_body = || vec![internal("the scan body does not match the scan")];
    if forward.body.inputs.len() != operands.len() || forward.body.outputs.len() != n_results {
        return Err(bad_body());
    }

    // Gradients of the forward results, summed per result index.
    let mut result_gradient: Vec<Option<NodeId>> = vec![None; n_results];
    for &(index, gradient) in results {
        let Some(slot) = result_gradient.get_mut(index) else {
            return Err(bad_body());
        };
        *slot = Some(match *slot {
            Some(previous) => Builder::new(graph, span).add2(previous, gradient),
            None => gradient,
        });
    }

    // 1. The forward scan also stacks the state each step starts from.
    let padded_types: Vec<TensorType> = carry_types
        .iter()
        .map(|ty| {
            let mut shape = vec![Dim::constant(1); axis.saturating_sub(ty.rank())];
            shape.extend(ty.shape.iter().cloned());
            TensorType::new(ty.dtype, shape)
        })
        .collect();
    let stacked_state_types: Vec<TensorType> = padded_types
        .iter()
        .map(|ty| {
            let mut shape = ty.shape.clone();
            shape.insert(axis, forward.length.clone());
            TensorType::new(ty.dtype, shape)
        })
        .collect();
    let mut forward_body = (*forward.body).clone();
    for (position, padded) in padded_types.iter().enumerate() {
        let input = forward_body.inputs[position];
        let output = if *padded != carry_types[position] {
            forward_body.add(Op::Reshape, padded.clone(), span, &[input])
        } else {
            input
        };
        forward_body.outputs.push(output);
    }
    if let Op::Scan(scan) = &mut graph.node_mut(id).op {
        *scan.body = forward_body.clone();
        scan.result_types
            .extend(stacked_state_types.iter().cloned());
    }
    let states: Vec<NodeId> = stacked_state_types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            graph.add(
                Op::Project {
                    index: n_results + i,
                },
                ty.clone(),
                span,
                &[id],
            )
        })
        .collect();

    // 2. The reverse body: the forward body, its inputs renumbered, plus gradient inputs.
    let mut body = forward_body;
    body.outputs.truncate(n_results);
    let old_inputs = body.inputs.clone();
    let diff_carries: Vec<usize> = (0..n_carry)
        .filter(|&i| carry_types[i].dtype == DType::F32)
        .collect();
    let diff_sequences: Vec<usize> = (0..n_sequences).filter(|&j| needed[n_carry + j]).collect();
    let diff_captures: Vec<usize> = (0..n_captures)
        .filter(|&l| needed[n_carry + n_sequences + l])
        .collect();
    let step_gradients: Vec<usize> = (0..n_results - n_carry)
        .filter(|&m| result_gradient[n_carry + m].is_some())
        .collect();

    let mut inputs: Vec<NodeId> = Vec::new();
    let new_input = |body: &mut Graph, inputs: &mut Vec<NodeId>, name: String, ty: TensorType| {
        let index = inputs.len();
        let node = body.add(Op::Input { index, name }, ty, span, &[]);
        inputs.push(node);
        node
    };
    let reuse_input = |body: &mut Graph, inputs: &mut Vec<NodeId>, node: NodeId| {
        let index = inputs.len();
        if let Op::Input { name, .. } = &body.node(node).op {
            let name = name.clone();
            body.node_mut(node).op = Op::Input { index, name };
        }
        inputs.push(node);
    };
    // Carried: state gradients, capture gradient accumulators.
    let mut state_gradient_inputs = Vec::new();
    for &i in &diff_carries {
        let node = new_input(
            &mut body,
            &mut inputs,
            format!("grad_state{i}"),
            carry_types[i].clone(),
        );
        state_gradient_inputs.push(node);
    }
    let mut accumulator_inputs = Vec::new();
    for &l in &diff_captures {
        let ty = body.node(old_inputs[n_carry + n_sequences + l]).ty.clone();
        let node = new_input(&mut body, &mut inputs, format!("grad_capture{l}"), ty);
        accumulator_inputs.push(node);
    }
    // Sequences: the states, the forward sequences, the per-step output gradients.
    let mut state_values = Vec::new();
    for i in 0..n_carry {
        let old = old_inputs[i];
        if padded_types[i] != carry_types[i] {
            let name = format!("state{i}");
            let padded = new_input(&mut body, &mut inputs, name, padded_types[i].clone());
            let value = body.add(Op::Reshape, carry_types[i].clone(), span, &[padded]);
            body.replace_uses(old, value);
            body.remove(old);
            state_values.push(value);
        } else {
            reuse_input(&mut body, &mut inputs, old);
            state_values.push(old);
        }
    }
    for j in 0..n_sequences {
        reuse_input(&mut body, &mut inputs, old_inputs[n_carry + j]);
    }
    let body_outputs = body.outputs.clone();
    let mut seeds: Vec<(NodeId, NodeId)> = Vec::new();
    for &m in &step_gradients {
        let output = body_outputs[n_carry + m];
        let ty = body.node(output).ty.clone();
        let node = new_input(&mut body, &mut inputs, format!("grad_output{m}"), ty);
        seeds.push((output, node));
    }
    for l in 0..n_captures {
        reuse_input(
            &mut body,
            &mut inputs,
            old_inputs[n_carry + n_sequences + l],
        );
    }
    body.inputs = inputs;
    for (k, &i) in diff_carries.iter().enumerate() {
        seeds.push((body_outputs[i], state_gradient_inputs[k]));
    }

    let mut wrt: Vec<NodeId> = diff_carries.iter().map(|&i| state_values[i]).collect();
    wrt.extend(diff_sequences.iter().map(|&j| old_inputs[n_carry + j]));
    wrt.extend(
        diff_captures
            .iter()
            .map(|&l| old_inputs[n_carry + n_sequences + l]),
    );
    let gradients = backpropagate(&mut body, &seeds, &wrt)?;

    let mut outputs = Vec::new();
    let mut result_types = Vec::new();
    {
        let mut b = Builder::new(&mut body, span);
        let gradient_or_zero = |b: &mut Builder, node: NodeId| match gradients.get(&node) {
            Some(&gradient) => gradient,
            None => {
                let shape = b.shape(node);
                b.fill_f32(0.0, &shape)
            }
        };
        for &i in &diff_carries {
            outputs.push(gradient_or_zero(&mut b, state_values[i]));
            result_types.push(carry_types[i].clone());
        }
        for (k, &l) in diff_captures.iter().enumerate() {
            let capture = old_inputs[n_carry + n_sequences + l];
            let total = match gradients.get(&capture) {
                Some(&gradient) => b.add2(accumulator_inputs[k], gradient),
                None => accumulator_inputs[k],
            };
            outputs.push(total);
            result_types.push(b.ty(capture));
        }
        for &j in &diff_sequences {
            outputs.push(gradient_or_zero(&mut b, old_inputs[n_carry + j]));
        }
    }
    body.outputs = outputs;
    for &j in &diff_sequences {
        let ty = graph.node(operands[n_carry + j]).ty.clone();
        result_types.push(ty);
    }

    // 3. The reverse scan in the outer graph.
    let mut scan_operands = Vec::new();
    {
        let mut b = Builder::new(graph, span);
        for &i in &diff_carries {
            let initial = match result_gradient[i] {
                Some(gradient) => gradient,
                None => b.fill_f32(0.0, &carry_types[i].shape),
            };
            scan_operands.push(initial);
        }
        for &l in &diff_captures {
            let shape = b.shape(operands[n_carry + n_sequences + l]);
            scan_operands.push(b.fill_f32(0.0, &shape));
        }
    }
    scan_operands.extend(states.iter().copied());
    scan_operands.extend(operands[n_carry..n_carry + n_sequences].iter().copied());
    for &m in &step_gradients {
        scan_operands.extend(result_gradient[n_carry + m]);
    }
    scan_operands.extend(operands[n_carry + n_sequences..].iter().copied());
    let reverse = ScanOp {
        body: Box::new(body),
        n_carry: diff_carries.len() + diff_captures.len(),
        n_sequences: n_carry + n_sequences + step_gradients.len(),
        axis,
        length: forward.length.clone(),
        reverse: !forward.reverse,
        result_types: result_types.clone(),
    };
    let reverse_id = graph.add(
        Op::Scan(reverse),
        TensorType::scalar(DType::F32),
        span,
        &scan_operands,
    );
    let project = |graph: &mut Graph, index: usize| {
        graph.add(
            Op::Project { index },
            result_types[index].clone(),
            span,
            &[reverse_id],
        )
    };
    let mut out = Vec::new();
    for (k, &i) in diff_carries.iter().enumerate() {
        if needed[i] {
            out.push((i, project(graph, k)));
        }
    }
    let base = diff_carries.len();
    for (k, &l) in diff_captures.iter().enumerate() {
        out.push((n_carry + n_sequences + l, project(graph, base + k)));
    }
    let base = base + diff_captures.len();
    for (k, &j) in diff_sequences.iter().enumerate() {
        out.push((n_carry + j, project(graph, base + k)));
    }
    Ok(out)
}
