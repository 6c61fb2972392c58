//! One optimizer update as graph nodes, with PyTorch's formulas (`torch.optim`, default
//! options otherwise: no dampening, no AMSGrad, RMSprop neither centered nor with momentum).
//!
//! `p` is a param, `g` its gradient (of the data loss plus the L1/L2 terms), `lr` the learning
//! rate of this step and `t` the 1-based step count, both runtime scalars:
//!
//! - `sgd(lr, momentum = mu, nesterov)`: with `mu = 0`, `p <- p - lr * g`. Otherwise the state
//!   `momentum_buffer` (zeros at the start, so the first step gives `b = g` as PyTorch's
//!   `b = g.clone()`): `b <- mu * b + g`, then `p <- p - lr * (g + mu * b)` with Nesterov or
//!   `p <- p - lr * b` without.
//! - `adam(lr, beta1, beta2, eps)`: states `exp_avg` (m) and `exp_avg_sq` (v), zeros at the
//!   start: `m <- beta1 * m + (1 - beta1) * g`, `v <- beta2 * v + (1 - beta2) * g^2`,
//!   `p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`.
//! - `adamw(..., weight_decay = wd)`: decoupled decay first, `p <- p * (1 - lr * wd)`, then the
//!   Adam update above.
//! - `rmsprop(lr, alpha, eps)`: state `square_avg` (v): `v <- alpha * v + (1 - alpha) * g^2`,
//!   `p <- p - lr * g / (sqrt(v) + eps)`.

use crate::autodiff::Builder;
use crate::check::settings::OptimizerSpec;
use crate::ir::{BinaryOp, NodeId, UnaryOp};

/// The names of the per-param state tensors the optimizer keeps (PyTorch's state keys), in the
/// order the step graph takes and returns them.
pub fn state_names(optimizer: OptimizerSpec) -> &'static [&'static str] {
    match optimizer {
        OptimizerSpec::Sgd { momentum: 0.0, .. } => &[],
        OptimizerSpec::Sgd { .. } => &["momentum_buffer"],
        OptimizerSpec::Adam { .. } | OptimizerSpec::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
        OptimizerSpec::RmsProp { .. } => &["square_avg"],
    }
}

/// The new param and the new state (in [`state_names`] order) after one step.
pub(crate) fn update(
    b: &mut Builder,
    optimizer: OptimizerSpec,
    param: NodeId,
    gradient: NodeId,
    state: &[NodeId],
    lr: NodeId,
    step: NodeId,
) -> (NodeId, Vec<NodeId>) {
    match optimizer {
        OptimizerSpec::Sgd {
            momentum, nesterov, ..
        } => {
            if momentum == 0.0 {
                let delta = b.mul(lr, gradient);
                return (b.binary(BinaryOp::Sub, param, delta), Vec::new());
            }
            let mu = b.scalar(momentum as f32);
            let decayed = b.mul(mu, state[0]);
            let buffer = b.add2(decayed, gradient);
            let direction = if nesterov {
                let ahead = b.mul(mu, buffer);
                b.add2(gradient, ahead)
            } else {
                buffer
            };
            let delta = b.mul(lr, direction);
            (b.binary(BinaryOp::Sub, param, delta), vec![buffer])
        }
        OptimizerSpec::Adam {
            beta1, beta2, eps, ..
        } => adam(b, param, gradient, state, lr, step, beta1, beta2, eps),
        OptimizerSpec::AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } => {
            let decay = b.scalar(weight_decay as f32);
            let lr_decay = b.mul(lr, decay);
            let one = b.scalar(1.0);
            let keep = b.binary(BinaryOp::Sub, one, lr_decay);
            let decayed = b.mul(param, keep);
            adam(b, decayed, gradient, state, lr, step, beta1, beta2, eps)
        }
        OptimizerSpec::RmsProp { alpha, eps, .. } => {
            let average = ema(b, state[0], gradient, alpha, true);
            let root = b.unary(UnaryOp::Sqrt, average);
            let eps = b.scalar(eps as f32);
            let denominator = b.add2(root, eps);
            let scaled = b.div(gradient, denominator);
            let delta = b.mul(lr, scaled);
            (b.binary(BinaryOp::Sub, param, delta), vec![average])
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn adam(
    b: &mut Builder,
    param: NodeId,
    gradient: NodeId,
    state: &[NodeId],
    lr: NodeId,
    step: NodeId,
    beta1: f64,
    beta2: f64,
    eps: f64,
) -> (NodeId, Vec<NodeId>) {
    let m = ema(b, state[0], gradient, beta1, false);
    let v = ema(b, state[1], gradient, beta2, true);
    let correction1 = bias_correction(b, beta1, step);
    let correction2 = bias_correction(b, beta2, step);
    let root_v = b.unary(UnaryOp::Sqrt, v);
    let root_correction2 = b.unary(UnaryOp::Sqrt, correction2);
    let scaled_root = b.div(root_v, root_correction2);
    let eps = b.scalar(eps as f32);
    let denominator = b.add2(scaled_root, eps);
    let step_size = b.div(lr, correction1);
    let ratio = b.div(m, denominator);
    let delta = b.mul(step_size, ratio);
    (b.binary(BinaryOp::Sub, param, delta), vec![m, v])
}

/// `beta * average + (1 - beta) * g` (or `g^2` when `squared`).
fn ema(b: &mut Builder, average: NodeId, gradient: NodeId, beta: f64, squared: bool) -> NodeId {
    let value = if squared {
        b.mul(gradient, gradient)
    } else {
        gradient
    };
    let keep = b.scalar(beta as f32);
    let kept = b.mul(keep, average);
    let new = b.scalar((1.0 - beta) as f32);
    let added = b.mul(new, value);
    b.add2(kept, added)
}

/// `1 - beta^t`.
fn bias_correction(b: &mut Builder, beta: f64, step: NodeId) -> NodeId {
    let beta = b.scalar(beta as f32);
    let power = b.binary(BinaryOp::Pow, beta, step);
    let one = b.scalar(1.0);
    b.binary(BinaryOp::Sub, one, power)
}
