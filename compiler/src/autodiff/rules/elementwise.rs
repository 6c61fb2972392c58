//! Elementwise ops: unary functions, binary arithmetic, `select` and `cast`. Operands broadcast
//! to the node's shape, so every operand gradient is unbroadcast back to the operand's shape.
//!
//! Non-smooth points: `abs` has gradient 0 at 0 (`sign(0) = 0`, as PyTorch); `floor` has
//! gradient 0 everywhere (it is piecewise constant; its derivative at the integers does not
//! exist and 0 is what every framework uses); `maximum(a, b)` routes the gradient to `a` when
//! `a >= b` and to `b` otherwise, `minimum(a, b)` to `a` when `a <= b`: ties go to the left
//! operand, the one the forward kernel returns (so `relu(x) = maximum(x, 0.0)` has gradient 1
//! at 0). Comparisons and logical ops return bool and carry no gradient.

use super::RuleResult;
use crate::autodiff::Builder;
use crate::ir::{BinaryOp, DType, NodeId, UnaryOp};

/// 2 / sqrt(pi), the scale of erf's derivative `2 / sqrt(pi) * exp(-x^2)`.
const TWO_OVER_SQRT_PI: f32 = std::f32::consts::FRAC_2_SQRT_PI;

pub fn unary(
    b: &mut Builder,
    op: UnaryOp,
    y: NodeId,
    operands: &[NodeId],
    g: NodeId,
) -> RuleResult {
    let x = operands[0];
    let local = match op {
        UnaryOp::Neg => b.neg(g),
        UnaryOp::Abs => {
            let zero = b.scalar(0.0);
            let positive = b.binary(BinaryOp::Gt, x, zero);
            let negative = b.binary(BinaryOp::Lt, x, zero);
            let positive = b.cast_to_f32(positive);
            let negative = b.cast_to_f32(negative);
            let sign = b.binary(BinaryOp::Sub, positive, negative);
            b.mul(g, sign)
        }
        UnaryOp::Exp => b.mul(g, y),
        UnaryOp::Log => b.div(g, x),
        UnaryOp::Sqrt => {
            // d sqrt(x) = 1 / (2 sqrt(x)).
            let two = b.scalar(2.0);
            let twice = b.mul(y, two);
            b.div(g, twice)
        }
        UnaryOp::Rsqrt => {
            // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3.
            let half = b.scalar(-0.5);
            let square = b.mul(y, y);
            let cube = b.mul(square, y);
            let local = b.mul(cube, half);
            b.mul(g, local)
        }
        UnaryOp::Tanh => {
            let one = b.scalar(1.0);
            let square = b.mul(y, y);
            let local = b.binary(BinaryOp::Sub, one, square);
            b.mul(g, local)
        }
        UnaryOp::Sigmoid => {
            let one = b.scalar(1.0);
            let complement = b.binary(BinaryOp::Sub, one, y);
            let local = b.mul(y, complement);
            b.mul(g, local)
        }
        UnaryOp::Erf => {
            let square = b.mul(x, x);
            let negated = b.neg(square);
            let bell = b.unary(UnaryOp::Exp, negated);
            let scale = b.scalar(TWO_OVER_SQRT_PI);
            let local = b.mul(bell, scale);
            b.mul(g, local)
        }
        UnaryOp::Sin => {
            let cos = b.unary(UnaryOp::Cos, x);
            b.mul(g, cos)
        }
        UnaryOp::Cos => {
            let sin = b.unary(UnaryOp::Sin, x);
            let product = b.mul(g, sin);
            b.neg(product)
        }
        // Piecewise constant: the gradient is zero (no contribution).
        UnaryOp::Floor => return Ok(Vec::new()),
        // Bool: never on an f32 path.
        UnaryOp::Not => return Ok(Vec::new()),
    };
    let shape = b.shape(x);
    Ok(vec![(0, b.unbroadcast(local, &shape))])
}

pub fn binary(
    b: &mut Builder,
    op: BinaryOp,
    y: NodeId,
    operands: &[NodeId],
    g: NodeId,
    needed: &[bool],
) -> RuleResult {
    let (left, right) = (operands[0], operands[1]);
    let mut left_gradient = None;
    let mut right_gradient = None;
    match op {
        BinaryOp::Add => {
            left_gradient = Some(g);
            right_gradient = Some(g);
        }
        BinaryOp::Sub => {
            left_gradient = Some(g);
            if needed[1] {
                right_gradient = Some(b.neg(g));
            }
        }
        BinaryOp::Mul => {
            if needed[0] {
                left_gradient = Some(b.mul(g, right));
            }
            if needed[1] {
                right_gradient = Some(b.mul(g, left));
            }
        }
        BinaryOp::Div => {
            if needed[0] {
                left_gradient = Some(b.div(g, right));
            }
            if needed[1] {
                // d(a / b)/db = -a / b^2 = -y / b.
                let scaled = b.mul(g, y);
                let quotient = b.div(scaled, right);
                right_gradient = Some(b.neg(quotient));
            }
        }
        BinaryOp::Rem => {
            // Python's remainder: a - b * floor(a / b).
            left_gradient = Some(g);
            if needed[1] {
                let quotient = b.div(left, right);
                let floored = b.unary(UnaryOp::Floor, quotient);
                let product = b.mul(g, floored);
                right_gradient = Some(b.neg(product));
            }
        }
        BinaryOp::Pow => {
            if needed[0] {
                // b * a^(b - 1).
                let one = b.scalar(1.0);
                let exponent = b.binary(BinaryOp::Sub, right, one);
                let power = b.binary(BinaryOp::Pow, left, exponent);
                let local = b.mul(right, power);
                left_gradient = Some(b.mul(g, local));
            }
            if needed[1] {
                // a^b * log(a), taken as 0 where a == 0 (PyTorch's convention; the limit
                // for b > 0). Negative bases give NaN, as the real power has no derivative.
                let zero = b.scalar(0.0);
                let log = b.unary(UnaryOp::Log, left);
                let local = b.mul(y, log);
                let at_zero = b.binary(BinaryOp::Eq, left, zero);
                let local = b.select(at_zero, zero, local);
                right_gradient = Some(b.mul(g, local));
            }
        }
        BinaryOp::Max | BinaryOp::Min => {
            let comparison = if op == BinaryOp::Max {
                BinaryOp::Ge
            } else {
                BinaryOp::Le
            };
            let left_selected = b.binary(comparison, left, right);
            let zero = b.scalar(0.0);
            if needed[0] {
                left_gradient = Some(b.select(left_selected, g, zero));
            }
            if needed[1] {
                right_gradient = Some(b.select(left_selected, zero, g));
            }
        }
        // Bool results: no gradient flows (and none is needed).
        BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::And
        | BinaryOp::Or => {}
    }
    let mut out = Vec::new();
    for (position, gradient) in [(0, left_gradient), (1, right_gradient)] {
        if let (Some(gradient), true) = (gradient, needed[position]) {
            let shape = b.shape(operands[position]);
            out.push((position, b.unbroadcast(gradient, &shape)));
        }
    }
    Ok(out)
}

pub fn select(b: &mut Builder, operands: &[NodeId], g: NodeId, needed: &[bool]) -> RuleResult {
    let condition = operands[0];
    let zero = b.scalar(0.0);
    let mut out = Vec::new();
    if needed[1] {
        let routed = b.select(condition, g, zero);
        let shape = b.shape(operands[1]);
        out.push((1, b.unbroadcast(routed, &shape)));
    }
    if needed[2] {
        let routed = b.select(condition, zero, g);
        let shape = b.shape(operands[2]);
        out.push((2, b.unbroadcast(routed, &shape)));
    }
    Ok(out)
}

/// f32 to f32 is the identity; from i64 or bool there is no gradient (the operand is never
/// on an f32 path).
pub fn cast(b: &mut Builder, operands: &[NodeId], g: NodeId) -> RuleResult {
    let x = operands[0];
    if b.ty(x).dtype != DType::F32 {
        return Ok(Vec::new());
    }
    let shape = b.shape(x);
    Ok(vec![(0, b.unbroadcast(g, &shape))])
}
