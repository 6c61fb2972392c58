//! Contractions, windows and indexing: `matmul` (batched, with broadcast batch dims and rank-2
//! operands), `conv2d` (input, weight and bias; any groups, so depthwise too), `pool2d` (max and
//! average) and `gather` (an embedding lookup; its gradient is a scatter-add).

use super::RuleResult;
use crate::autodiff::{broadcast_shapes, Builder};
use crate::ir::{DType, NodeId, Op, PoolKind, TensorType};

/// `x @ y` with NumPy's batch broadcasting.
fn mat_mul_node(b: &mut Builder, x: NodeId, y: NodeId) -> NodeId {
    let (xs, ys) = (b.shape(x), b.shape(y));
    let mut shape = broadcast_shapes(&xs[..xs.len() - 2], &ys[..ys.len() - 2]);
    shape.push(xs[xs.len() - 2].clone());
    shape.push(ys[ys.len() - 1].clone());
    b.add(Op::MatMul, TensorType::new(DType::F32, shape), &[x, y])
}

/// For `y = a @ w`: `da = dy @ w^T` and `dw = a^T @ dy`, each summed over the batch dims its
/// operand was broadcast along.
pub fn mat_mul(b: &mut Builder, operands: &[NodeId], g: NodeId, needed: &[bool]) -> RuleResult {
    let (a, w) = (operands[0], operands[1]);
    let mut out = Vec::new();
    if needed[0] {
        let w_t = b.transpose(w);
        let product = mat_mul_node(b, g, w_t);
        let shape = b.shape(a);
        out.push((0, b.unbroadcast(product, &shape)));
    }
    if needed[1] {
        let a_t = b.transpose(a);
        let product = mat_mul_node(b, a_t, g);
        let shape = b.shape(w);
        out.push((1, b.unbroadcast(product, &shape)));
    }
    Ok(out)
}

/// `[stride, padding, dilation]`.
pub type ConvWindow = [[usize; 2]; 3];

pub fn conv2d(
    b: &mut Builder,
    [stride, padding, dilation]: ConvWindow,
    groups: usize,
    operands: &[NodeId],
    g: NodeId,
    needed: &[bool],
) -> RuleResult {
    let (x, w) = (operands[0], operands[1]);
    let mut out = Vec::new();
    if needed[0] {
        let ty = b.ty(x);
        let op = Op::Conv2dBackwardInput {
            stride,
            padding,
            dilation,
            groups,
        };
        out.push((0, b.add(op, ty, &[g, w])));
    }
    if needed[1] {
        let ty = b.ty(w);
        let op = Op::Conv2dBackwardWeight {
            stride,
            padding,
            dilation,
            groups,
        };
        out.push((1, b.add(op, ty, &[x, g])));
    }
    if needed.get(2) == Some(&true) {
        let summed = b.reduce_sum(g, &[0, 2, 3], false);
        out.push((2, summed));
    }
    Ok(out)
}

/// `[kernel, stride, padding]`.
pub type PoolWindow = [[usize; 2]; 3];

pub fn pool2d(
    b: &mut Builder,
    kind: PoolKind,
    [kernel, stride, padding]: PoolWindow,
    operands: &[NodeId],
    g: NodeId,
) -> RuleResult {
    let x = operands[0];
    let ty = b.ty(x);
    let op = Op::Pool2dBackward {
        kind,
        kernel,
        stride,
        padding,
    };
    Ok(vec![(0, b.add(op, ty, &[x, g]))])
}

/// `table.take(indices, axis)`: the table's gradient adds each gathered row's gradient back at
/// its index (rows gathered twice get both). The indices are i64: no gradient.
pub fn gather(b: &mut Builder, axis: usize, operands: &[NodeId], g: NodeId) -> RuleResult {
    let (table, indices) = (operands[0], operands[1]);
    let ty = b.ty(table);
    Ok(vec![(0, b.add(Op::ScatterAdd { axis }, ty, &[g, indices]))])
}

/// The adjoint of the adjoint: a gather of the gradient.
pub fn scatter_add(b: &mut Builder, axis: usize, operands: &[NodeId], g: NodeId) -> RuleResult {
    let (updates, indices) = (operands[0], operands[1]);
    let ty = b.ty(updates);
    Ok(vec![(0, b.add(Op::Gather { axis }, ty, &[g, indices]))])
}
