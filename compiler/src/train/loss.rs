//! The losses of a `train` block as graph nodes, with the count of correct predictions.
//!
//! Every loss is a mean over the positions that have a target, as PyTorch's `reduction="mean"`:
//!
//! - `cross_entropy(label_smoothing = e)` over logits `z[..., C]` and class labels `y[...]`:
//!   `logp = z - max(z) - log(sum(exp(z - max(z))))`, then per position
//!   `-(1 - e) * logp[y] - (e / C) * sum_c logp[c]`, averaged over the positions whose label is
//!   not [`IGNORE_INDEX`] (PyTorch's `ignore_index` with `label_smoothing`).
//! - `nll` over log-probabilities `z[..., C]`: `-z[y]`, averaged over the same positions.
//! - `mse`: `mean((z - y)^2)` over every element.
//! - `bce_with_logits`: `mean(max(z, 0) - z * y + log(1 + exp(-|z|)))` over every element
//!   (the stable form PyTorch uses).
//!
//! Correct predictions: for class losses, positions where `argmax(z) == y` (ignored positions
//! never count, since an argmax is never negative); for `bce_with_logits`, elements where
//! `z > 0` agrees with `y > 0.5`; `mse` has no accuracy and reports 0.

use crate::autodiff::Builder;
use crate::check::settings::LossSpec;
use crate::ir::{BinaryOp, DType, Dim, Literal, NodeId, Op, ReduceOp, TensorType, UnaryOp};

/// The class label of a position with no target (PyTorch's `ignore_index` default).
pub const IGNORE_INDEX: i64 = -100;

/// Whether the loss takes class indices (i64) rather than real-valued targets (f32).
pub fn takes_classes(loss: LossSpec) -> bool {
    matches!(loss, LossSpec::CrossEntropy { .. } | LossSpec::Nll)
}

/// Whether the loss comes with an accuracy.
pub fn has_accuracy(loss: LossSpec) -> bool {
    !matches!(loss, LossSpec::Mse)
}

/// The type of the labels a loss takes for a model output of type `output`: class indices
/// `i64[...]` (the output's shape without its class axis) for `cross_entropy` and `nll`;
/// `f32` targets of the output's shape for `mse` and `bce_with_logits`, without a trailing
/// axis of size 1 (so a `[B, 1]` output takes `[B]` targets, as a CSV label column gives).
/// `None` when the output cannot be used by the loss (a class loss on a rank-0 output).
pub fn label_type(loss: LossSpec, output: &TensorType) -> Option<TensorType> {
    let shape = &output.shape;
    if takes_classes(loss) {
        if shape.is_empty() {
            return None;
        }
        return Some(TensorType::new(
            DType::I64,
            shape[..shape.len() - 1].to_vec(),
        ));
    }
    if shape.len() >= 2 && shape[shape.len() - 1] == Dim::constant(1) {
        return Some(TensorType::new(
            DType::F32,
            shape[..shape.len() - 1].to_vec(),
        ));
    }
    Some(TensorType::new(DType::F32, shape.clone()))
}

/// The data loss (a scalar f32) and the number of correct predictions (a scalar f32).
pub(crate) struct LossNodes {
    pub loss: NodeId,
    pub correct: NodeId,
}

/// Appends the loss of `output` against `labels` (of [`label_type`]).
pub(crate) fn build(b: &mut Builder, loss: LossSpec, output: NodeId, labels: NodeId) -> LossNodes {
    match loss {
        LossSpec::CrossEntropy { label_smoothing } => {
            let logp = log_softmax(b, output);
            classification(b, logp, output, labels, label_smoothing as f32)
        }
        LossSpec::Nll => classification(b, output, output, labels, 0.0),
        LossSpec::Mse => {
            let target = b.reshape(labels, &b.shape(output));
            let diff = b.binary(BinaryOp::Sub, output, target);
            let squared = b.mul(diff, diff);
            let loss = reduce_all(b, ReduceOp::Mean, squared);
            let correct = b.scalar(0.0);
            LossNodes { loss, correct }
        }
        LossSpec::BceWithLogits => {
            let target = b.reshape(labels, &b.shape(output));
            let zero = b.scalar(0.0);
            let positive = b.binary(BinaryOp::Max, output, zero);
            let product = b.mul(output, target);
            let absolute = b.unary(UnaryOp::Abs, output);
            let negative = b.neg(absolute);
            let exp = b.unary(UnaryOp::Exp, negative);
            let one = b.scalar(1.0);
            let one_plus = b.add2(one, exp);
            let softplus = b.unary(UnaryOp::Log, one_plus);
            let difference = b.binary(BinaryOp::Sub, positive, product);
            let per = b.add2(difference, softplus);
            let loss = reduce_all(b, ReduceOp::Mean, per);
            // Correct: 1 - |[z > 0] - [y > 0.5]|.
            let predicted = b.binary(BinaryOp::Gt, output, zero);
            let predicted = b.cast_to_f32(predicted);
            let half = b.scalar(0.5);
            let actual = b.binary(BinaryOp::Gt, target, half);
            let actual = b.cast_to_f32(actual);
            let disagree = b.binary(BinaryOp::Sub, predicted, actual);
            let disagree = b.unary(UnaryOp::Abs, disagree);
            let agree = b.binary(BinaryOp::Sub, one, disagree);
            let correct = reduce_all(b, ReduceOp::Sum, agree);
            LossNodes { loss, correct }
        }
    }
}

/// `z - max(z) - log(sum(exp(z - max(z))))` along the last axis.
fn log_softmax(b: &mut Builder, z: NodeId) -> NodeId {
    let last = b.ty(z).rank() - 1;
    let max = reduce_keep(b, ReduceOp::Max, z, last);
    let shifted = b.binary(BinaryOp::Sub, z, max);
    let exp = b.unary(UnaryOp::Exp, shifted);
    let sum = b.reduce_sum(exp, &[last], true);
    let log_sum = b.unary(UnaryOp::Log, sum);
    b.binary(BinaryOp::Sub, shifted, log_sum)
}

/// The smoothed negative log-likelihood of `logp[..., C]` at `labels[...]`, averaged over the
/// positions that have a label, and the argmax hits of `scores`.
fn classification(
    b: &mut Builder,
    logp: NodeId,
    scores: NodeId,
    labels: NodeId,
    smoothing: f32,
) -> LossNodes {
    let shape = b.shape(logp);
    let last = shape.len() - 1;
    let classes = shape[last].clone();
    let mut column_shape = shape[..last].to_vec();
    column_shape.push(Dim::constant(1));
    let column = b.reshape(labels, &column_shape);
    let iota = b.add(
        Op::Iota { axis: last },
        TensorType::new(DType::I64, shape.clone()),
        &[],
    );
    let hits = b.binary(BinaryOp::Eq, iota, column);
    let one_hot = b.cast_to_f32(hits);
    let weighted = b.mul(one_hot, logp);
    let picked = b.reduce_sum(weighted, &[last], false);
    let mut per = b.scalar(-(1.0 - smoothing));
    per = b.mul(per, picked);
    if smoothing > 0.0 {
        let total = b.reduce_sum(logp, &[last], false);
        let class_count = match classes.as_const() {
            Some(count) => count as f32,
            None => 1.0,
        };
        let factor = b.scalar(-smoothing / class_count);
        let smooth = b.mul(factor, total);
        per = b.add2(per, smooth);
    }
    let ignore = b.add(
        Op::Fill(Literal::I64(IGNORE_INDEX)),
        TensorType::scalar(DType::I64),
        &[],
    );
    let valid = b.binary(BinaryOp::Ne, labels, ignore);
    let valid = b.cast_to_f32(valid);
    let masked = b.mul(per, valid);
    let total = reduce_all(b, ReduceOp::Sum, masked);
    let count = reduce_all(b, ReduceOp::Sum, valid);
    let one = b.scalar(1.0);
    let count = b.binary(BinaryOp::Max, count, one);
    let loss = b.div(total, count);

    let argmax = b.add(
        Op::ArgMax {
            axis: last,
            keep_dims: false,
        },
        TensorType::new(DType::I64, shape[..last].to_vec()),
        &[scores],
    );
    let right = b.binary(BinaryOp::Eq, argmax, labels);
    let right = b.cast_to_f32(right);
    let correct = reduce_all(b, ReduceOp::Sum, right);
    LossNodes { loss, correct }
}

/// Reduces one axis, keeping it with size 1.
fn reduce_keep(b: &mut Builder, op: ReduceOp, x: NodeId, axis: usize) -> NodeId {
    let ty = b.ty(x);
    let mut shape = ty.shape.clone();
    shape[axis] = Dim::constant(1);
    b.add(
        Op::Reduce {
            op,
            axes: vec![axis],
            keep_dims: true,
        },
        TensorType::new(ty.dtype, shape),
        &[x],
    )
}

/// Reduces every axis to a scalar (a scalar is returned as it is).
pub(crate) fn reduce_all(b: &mut Builder, op: ReduceOp, x: NodeId) -> NodeId {
    let ty = b.ty(x);
    if ty.rank() == 0 {
        return x;
    }
    b.add(
        Op::Reduce {
            op,
            axes: (0..ty.rank()).collect(),
            keep_dims: false,
        },
        TensorType::scalar(ty.dtype),
        &[x],
    )
}
