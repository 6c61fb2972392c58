//! Local algebraic identities that remove work without changing any value:
//!
//! - `x + 0`, `0 + x`, `x - 0`, `x * 1`, `1 * x`, `x / 1` become `x` when the constant does
//!   not change `x`'s shape or dtype by broadcasting;
//! - a reshape to the same shape, a cast to the same dtype, and an identity permutation
//!   become their operand;
//! - a reshape of a reshape reads the original tensor; a permutation of a permutation becomes
//!   one permutation.
//!
//! Replaced nodes are left unused for dead-code elimination to remove.

use crate::ir::{BinaryOp, Graph, Literal, NodeId, Op};

/// Returns the number of nodes rewritten. Rewrites expose more rewrites (a merged reshape may
/// become an identity), so it repeats until nothing changes, a few rounds at most.
pub fn simplify_algebra(graph: &mut Graph) -> usize {
    let mut total = 0;
    for _ in 0..4 {
        let changes = simplify_once(graph);
        total += changes;
        if changes == 0 {
            break;
        }
    }
    total
}

fn simplify_once(graph: &mut Graph) -> usize {
    let mut changes = 0;
    let Some(order) = graph.topological_order() else {
        return 0;
    };
    for id in order {
        if !graph.contains(id) {
            continue;
        }
        if let Some(replacement) = identity_of(graph, id) {
            graph.replace_uses(id, replacement);
            changes += 1;
            continue;
        }
        changes += usize::from(merge_movement(graph, id));
    }
    for id in graph.node_ids() {
        if let Op::Scan(scan) = &mut graph.node_mut(id).op {
            changes += simplify_once(&mut scan.body);
        }
    }
    changes
}

fn constant(graph: &Graph, id: NodeId) -> Option<f64> {
    let node = graph.node(id);
    match node.op {
        Op::Fill(Literal::F32(v)) if node.ty.rank() == 0 => Some(f64::from(v)),
        Op::Fill(Literal::I64(v)) if node.ty.rank() == 0 => Some(v as f64),
        _ => None,
    }
}

/// The operand a node is equal to, if it is an identity.
fn identity_of(graph: &Graph, id: NodeId) -> Option<NodeId> {
    let node = graph.node(id);
    let operands = graph.operands(id);
    let same_type = |operand: NodeId| graph.node(operand).ty == node.ty;
    match &node.op {
        Op::Binary(op) if operands.len() == 2 => {
            let (left, right) = (operands[0], operands[1]);
            let is = |operand: NodeId, value: f64| constant(graph, operand) == Some(value);
            let candidate = match op {
                BinaryOp::Add if is(right, 0.0) => Some(left),
                BinaryOp::Add if is(left, 0.0) => Some(right),
                BinaryOp::Sub if is(right, 0.0) => Some(left),
                BinaryOp::Mul if is(right, 1.0) => Some(left),
                BinaryOp::Mul if is(left, 1.0) => Some(right),
                BinaryOp::Div if is(right, 1.0) => Some(left),
                _ => None,
            };
            candidate.filter(|&operand| same_type(operand))
        }
        Op::Reshape | Op::Cast | Op::Expand if operands.len() == 1 && same_type(operands[0]) => {
            Some(operands[0])
        }
        Op::Permute { perm }
            if operands.len() == 1 && perm.iter().enumerate().all(|(i, p)| i == *p) =>
        {
            Some(operands[0])
        }
        _ => None,
    }
}

/// Reads through a reshape of a reshape, or composes a permutation of a permutation.
fn merge_movement(graph: &mut Graph, id: NodeId) -> bool {
    let operands = graph.operands(id);
    let [inner] = operands[..] else { return false };
    let inner_operands = graph.operands(inner);
    let [source] = inner_operands[..] else {
        return false;
    };
    let (outer_op, inner_op) = (graph.node(id).op.clone(), graph.node(inner).op.clone());
    let new_op = match (outer_op, inner_op) {
        (Op::Reshape, Op::Reshape) => Op::Reshape,
        (Op::Permute { perm: outer }, Op::Permute { perm: inner_perm }) => {
            // out[i] = mid[outer[i]] = src[inner[outer[i]]]
            Op::Permute {
                perm: outer.iter().map(|&axis| inner_perm[axis]).collect(),
            }
        }
        _ => return false,
    };
    let node = graph.node(id).clone();
    let is_identity = match &new_op {
        Op::Permute { perm } => perm.iter().enumerate().all(|(i, p)| i == *p),
        _ => graph.node(source).ty == node.ty,
    };
    if is_identity {
        graph.replace_uses(id, source);
        return true;
    }
    let merged = graph.add(new_op, node.ty, node.span, &[source]);
    graph.replace_uses(id, merged);
    true
}
