//! Reductions. The gradient is reshaped to the kept-dims shape and broadcast back over the
//! reduced axes; a mean divides by the reduced element count (computed in the graph when it is
//! symbolic, so any binding works); `max`/`min` split the gradient evenly among the elements
//! equal to the result (ties share it, as PyTorch's `amax`/`amin`).

use super::RuleResult;
use crate::autodiff::Builder;
use crate::ir::{BinaryOp, Dim, NodeId, ReduceOp};

pub fn reduce(
    b: &mut Builder,
    op: ReduceOp,
    axes: &[usize],
    _keep_dims: bool,
    y: NodeId,
    operands: &[NodeId],
    g: NodeId,
) -> RuleResult {
    let x = operands[0];
    let shape = b.shape(x);
    let kept: Vec<Dim> = shape
        .iter()
        .enumerate()
        .map(|(axis, dim)| {
            if axes.contains(&axis) {
                Dim::constant(1)
            } else {
                dim.clone()
            }
        })
        .collect();
    let g_kept = b.reshape(g, &kept);
    let gradient = match op {
        ReduceOp::Sum => b.expand(g_kept, &shape),
        ReduceOp::Mean => {
            let count = axes
                .iter()
                .try_fold(Dim::constant(1), |product, &axis| product.mul(&shape[axis]))
                .ok()
                .and_then(|count| count.as_const());
            let scaled = match count {
                Some(count) => {
                    let scale = b.scalar(1.0 / count as f32);
                    b.mul(g_kept, scale)
                }
                None => {
                    // A symbolic count: count the ones in the graph.
                    let ones = b.fill_f32(1.0, &shape);
                    let count = b.reduce_sum(ones, axes, true);
                    b.div(g_kept, count)
                }
            };
            b.expand(scaled, &shape)
        }
        ReduceOp::Max | ReduceOp::Min => {
            let y_kept = b.reshape(y, &kept);
            let hits = b.binary(BinaryOp::Eq, x, y_kept);
            let mask = b.cast_to_f32(hits);
            let count = b.reduce_sum(mask, axes, true);
            let share = b.div(g_kept, count);
            b.mul(share, mask)
        }
    };
    Ok(vec![(0, gradient)])
}
