//! Batch normalization at inference (`BatchNorm`), whose per-channel statistics are operands:
//! with `inv = rsqrt(running_var + eps)` and `g` the output gradient,
//!
//! - `dx = g * weight * inv` (per channel, broadcast);
//! - `dweight = sum(g * (x - running_mean)) * inv`, `dbias = sum(g)`;
//! - `drunning_mean = -sum(g) * weight * inv`;
//! - `drunning_var = sum(g * (x - running_mean)) * weight * (-1/2) * inv^3`;
//!
//! the sums over every axis but the channel axis 1. The training step graph never reaches this
//! rule: it rewrites `BatchNorm` into batch-statistics primitives before differentiating
//! (`crate::train`), and the running statistics are buffers there, not differentiated.

use super::RuleResult;
use crate::autodiff::Builder;
use crate::ir::{BinaryOp, Dim, NodeId, UnaryOp};

/// The shape a per-channel vector `[C]` is reshaped to so that it broadcasts against an input
/// `[N, C, ...]`: `[C, 1, ...]` (rank one less than the input's).
pub(crate) fn channel_shape(input_shape: &[Dim]) -> Vec<Dim> {
    let mut shape = vec![input_shape[1].clone()];
    shape.extend(std::iter::repeat_n(
        Dim::constant(1),
        input_shape.len().saturating_sub(2),
    ));
    shape
}

/// The axes a batch norm reduces over: every axis of the input but the channel axis 1.
pub(crate) fn statistics_axes(rank: usize) -> Vec<usize> {
    (0..rank).filter(|&axis| axis != 1).collect()
}

pub fn batch_norm(
    b: &mut Builder,
    eps: f64,
    operands: &[NodeId],
    g: NodeId,
    needed: &[bool],
) -> RuleResult {
    let [x, weight, _bias, mean, variance] = [
        operands[0],
        operands[1],
        operands[2],
        operands[3],
        operands[4],
    ];
    let x_shape = b.shape(x);
    let channels = channel_shape(&x_shape);
    let axes = statistics_axes(x_shape.len());
    let eps = b.scalar(eps as f32);
    let shifted = b.add2(variance, eps);
    let inverse_std = b.unary(UnaryOp::Rsqrt, shifted);
    let weight_inverse_std = b.mul(weight, inverse_std);
    let needs = |position: usize| needed.get(position).copied().unwrap_or(false);
    let mut gradients = Vec::new();
    if needs(0) {
        let scale = b.reshape(weight_inverse_std, &channels);
        gradients.push((0, b.mul(g, scale)));
    }
    let sum_g = b.reduce_sum(g, &axes, false);
    if needs(2) {
        gradients.push((2, sum_g));
    }
    if needs(1) || needs(4) {
        let mean_column = b.reshape(mean, &channels);
        let centered = b.binary(BinaryOp::Sub, x, mean_column);
        let product = b.mul(g, centered);
        let sum_g_centered = b.reduce_sum(product, &axes, false);
        if needs(1) {
            gradients.push((1, b.mul(sum_g_centered, inverse_std)));
        }
        if needs(4) {
            let cube = b.mul(inverse_std, inverse_std);
            let cube = b.mul(cube, weight_inverse_std);
            let half = b.scalar(-0.5);
            let factor = b.mul(cube, half);
            gradients.push((4, b.mul(sum_g_centered, factor)));
        }
    }
    if needs(3) {
        let product = b.mul(sum_g, weight_inverse_std);
        gradients.push((3, b.neg(product)));
    }
    Ok(gradients)
}
