//! The gradient rule of every primitive op, grouped by kind.
//!
//! A rule gets a node, the gradient of the loss with respect to the node's value (a node of the
//! same type) and which operands need a gradient, and returns `(operand position, gradient)`
//! pairs, each gradient of exactly its operand's type. Operands of dtype i64 or bool never
//! need one. Ops with no rule (the gradient ops themselves, so far) are a `no-gradient`
//! diagnostic.

pub mod contraction;
pub mod elementwise;
pub mod movement;
pub mod normalization;
pub mod reduce;
pub mod scan;

use super::{no_rule, Builder};
use crate::diag::Diagnostic;
use crate::ir::{Graph, NodeId, Op};

/// What a rule returns: gradients by operand position, or why there is none.
pub type RuleResult = Result<Vec<(usize, NodeId)>, Vec<Diagnostic>>;

/// Dispatches to the rule of the node's op (every op except `Scan` and `Project`, which the
/// driver handles because their gradients are per result).
pub fn operand_gradients(
    graph: &mut Graph,
    id: NodeId,
    gradient: NodeId,
    needed: &[bool],
) -> RuleResult {
    let op = graph.node(id).op.clone();
    let operands = graph.operands(id);
    let mut b = Builder::new(graph, graph_span(graph, id));
    match &op {
        Op::Input { .. } | Op::Param { .. } | Op::Fill(_) | Op::Iota { .. } => Ok(Vec::new()),
        Op::Unary(unary) => elementwise::unary(&mut b, *unary, id, &operands, gradient),
        Op::Binary(binary) => elementwise::binary(&mut b, *binary, id, &operands, gradient, needed),
        Op::Select => elementwise::select(&mut b, &operands, gradient, needed),
        Op::Cast => elementwise::cast(&mut b, &operands, gradient),
        // Inference-mode dropout is the identity; the training step graph replaces it by a
        // multiply with a random mask before differentiating.
        Op::Dropout { .. } => Ok(vec![(0, gradient)]),
        // Its only operand is an i64 seed: nothing to differentiate.
        Op::RandomUniform { .. } => Ok(Vec::new()),
        Op::BatchNorm { eps, .. } => {
            normalization::batch_norm(&mut b, *eps, &operands, gradient, needed)
        }
        Op::Reduce {
            op,
            axes,
            keep_dims,
        } => reduce::reduce(&mut b, *op, axes, *keep_dims, id, &operands, gradient),
        Op::Reshape => movement::reshape(&mut b, &operands, gradient),
        Op::Permute { perm } => movement::permute(&mut b, perm, gradient),
        Op::Expand => movement::expand(&mut b, &operands, gradient),
        Op::Slice { axis, start, step } => {
            movement::slice(&mut b, *axis, start, *step, &operands, gradient)
        }
        Op::Concat { axis } => movement::concat(&mut b, *axis, &operands, gradient, needed),
        Op::SliceScatter { axis, start, step } => {
            movement::slice_scatter(&mut b, *axis, start, *step, &operands, gradient)
        }
        Op::MatMul => contraction::mat_mul(&mut b, &operands, gradient, needed),
        Op::Conv2d {
            stride,
            padding,
            dilation,
            groups,
        } => contraction::conv2d(
            &mut b,
            [*stride, *padding, *dilation],
            *groups,
            &operands,
            gradient,
            needed,
        ),
        Op::Pool2d {
            kind,
            kernel,
            stride,
            padding,
        } => contraction::pool2d(
            &mut b,
            *kind,
            [*kernel, *stride, *padding],
            &operands,
            gradient,
        ),
        Op::Gather { axis } => contraction::gather(&mut b, *axis, &operands, gradient),
        Op::ScatterAdd { axis } => contraction::scatter_add(&mut b, *axis, &operands, gradient),
        // Integer-valued: never reached through f32 values.
        Op::ArgMax { .. } => Ok(Vec::new()),
        Op::Conv2dBackwardInput { .. }
        | Op::Conv2dBackwardWeight { .. }
        | Op::Pool2dBackward { .. } => Err(vec![no_rule(
            b.graph,
            id,
            " (second derivatives through convolutions and pooling are not implemented)",
        )]),
        Op::Scan(_) | Op::Project { .. } => Err(vec![super::internal(
            "scan and project gradients are handled by the driver",
        )]),
    }
}

fn graph_span(graph: &Graph, id: NodeId) -> crate::source::Span {
    graph.node(id).span
}
