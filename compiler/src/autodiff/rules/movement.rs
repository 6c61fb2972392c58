//! Movement ops: each gradient is the inverse movement of the output gradient. A slice's
//! gradient is embedded into zeros with `slice_scatter` (any start and step); a concat's is
//! sliced back into its parts; an expand's is summed over the broadcast axes.

use super::RuleResult;
use crate::autodiff::Builder;
use crate::ir::{Dim, NodeId, Op, TensorType};

pub fn reshape(b: &mut Builder, operands: &[NodeId], g: NodeId) -> RuleResult {
    let shape = b.shape(operands[0]);
    Ok(vec![(0, b.reshape(g, &shape))])
}

pub fn permute(b: &mut Builder, perm: &[usize], g: NodeId) -> RuleResult {
    let mut inverse = vec![0; perm.len()];
    for (position, &axis) in perm.iter().enumerate() {
        inverse[axis] = position;
    }
    Ok(vec![(0, b.permute(g, &inverse))])
}

pub fn expand(b: &mut Builder, operands: &[NodeId], g: NodeId) -> RuleResult {
    let shape = b.shape(operands[0]);
    Ok(vec![(0, b.unbroadcast(g, &shape))])
}

pub fn slice(
    b: &mut Builder,
    axis: usize,
    start: &Dim,
    step: i64,
    operands: &[NodeId],
    g: NodeId,
) -> RuleResult {
    let ty = b.ty(operands[0]);
    let gradient = b.add(
        Op::SliceScatter {
            axis,
            start: start.clone(),
            step,
        },
        ty,
        &[g],
    );
    Ok(vec![(0, gradient)])
}

/// The adjoint of the adjoint: slicing the gradient back out.
pub fn slice_scatter(
    b: &mut Builder,
    axis: usize,
    start: &Dim,
    step: i64,
    operands: &[NodeId],
    g: NodeId,
) -> RuleResult {
    let ty = b.ty(operands[0]);
    let gradient = b.add(
        Op::Slice {
            axis,
            start: start.clone(),
            step,
        },
        ty,
        &[g],
    );
    Ok(vec![(0, gradient)])
}

pub fn concat(
    b: &mut Builder,
    axis: usize,
    operands: &[NodeId],
    g: NodeId,
    needed: &[bool],
) -> RuleResult {
    let mut out = Vec::new();
    let mut start = Dim::constant(0);
    for (position, &operand) in operands.iter().enumerate() {
        let ty: TensorType = b.ty(operand);
        if needed[position] {
            let part = b.add(
                Op::Slice {
                    axis,
                    start: start.clone(),
                    step: 1,
                },
                ty.clone(),
                &[g],
            );
            out.push((position, part));
        }
        start = start.add(&ty.shape[axis]).map_err(|_| {
            vec![crate::autodiff::internal(
                "concat offsets overflow while differentiating",
            )]
        })?;
    }
    Ok(out)
}
