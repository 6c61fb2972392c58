//! Lowers every inference-form `BatchNorm` node into a per-channel scale and shift:
//! `x * reshape(weight * rsqrt(running_var + eps)) + reshape(bias - running_mean * weight *
//! rsqrt(running_var + eps))`, with the vectors reshaped to `[C, 1, ...]` to broadcast along
//! the channel axis. The scale and shift depend on params only, so a backend computes them once
//! when the params are bound, and the multiply-add fuses into the producer's epilogue; the
//! result equals the interpreter's `BatchNorm` kernel bit for bit (same f32 steps, same order).
//!
//! The training step graph never reaches this pass with a `BatchNorm` node: it rewrites them
//! into batch-statistics primitives first (`crate::train`).

use crate::autodiff::rules::normalization::channel_shape;
use crate::autodiff::Builder;
use crate::ir::{BinaryOp, Graph, Op, UnaryOp};

/// Returns the number of `BatchNorm` nodes lowered (scan bodies included).
pub fn lower_batch_norm(graph: &mut Graph) -> usize {
    let mut lowered = 0;
    for id in graph.node_ids() {
        if let Op::Scan(scan) = &mut graph.node_mut(id).op {
            lowered += lower_batch_norm(&mut scan.body);
            continue;
        }
        let Op::BatchNorm { eps, .. } = graph.node(id).op else {
            continue;
        };
        let operands = graph.operands(id);
        if operands.len() < 5 {
            continue; // The verifier reports it.
        }
        let span = graph.node(id).span;
        let (x, weight, bias, mean, variance) = (
            operands[0],
            operands[1],
            operands[2],
            operands[3],
            operands[4],
        );
        let mut b = Builder::new(graph, span);
        let channels = channel_shape(&b.shape(x));
        let eps = b.scalar(eps as f32);
        let shifted = b.add2(variance, eps);
        let inverse_std = b.unary(UnaryOp::Rsqrt, shifted);
        let scale = b.mul(weight, inverse_std);
        let mean_weight = b.mul(mean, weight);
        let mean_scaled = b.mul(mean_weight, inverse_std);
        let shift = b.binary(BinaryOp::Sub, bias, mean_scaled);
        let scale = b.reshape(scale, &channels);
        let shift = b.reshape(shift, &channels);
        let scaled = b.mul(x, scale);
        let result = b.add2(scaled, shift);
        graph.replace_uses(id, result);
        graph.remove(id);
        lowered += 1;
    }
    lowered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::{evaluate, Tensor};
    use crate::ir::{DType, Dim, TensorType};
    use crate::source::Span;
    use std::collections::HashMap;

    #[test]
    fn lowered_batch_norm_equals_the_interpreter_kernel_bit_for_bit() {
        let mut graph = Graph::new();
        let x_ty = TensorType::new(DType::F32, vec![Dim::symbol("B"), Dim::constant(3)]);
        let vector = TensorType::new(DType::F32, vec![Dim::constant(3)]);
        let x = graph.add(
            Op::Input {
                index: 0,
                name: "x".into(),
            },
            x_ty.clone(),
            Span::DUMMY,
            &[],
        );
        graph.inputs.push(x);
        let mut operands = vec![x];
        for (index, name) in ["weight", "bias", "mean", "var"].iter().enumerate() {
            let id = graph.add(
                Op::Input {
                    index: index + 1,
                    name: name.to_string(),
                },
                vector.clone(),
                Span::DUMMY,
                &[],
            );
            graph.inputs.push(id);
            operands.push(id);
        }
        let norm = graph.add(
            Op::BatchNorm {
                eps: 1e-5,
                momentum: 0.1,
            },
            x_ty,
            Span::DUMMY,
            &operands,
        );
        graph.outputs = vec![norm];
        let inputs = [
            Tensor::from_f32(vec![2, 3], vec![0.3, -1.7, 2.9, 4.1, 0.01, -3.3]).unwrap(),
            Tensor::from_f32(vec![3], vec![1.3, -0.4, 0.9]).unwrap(),
            Tensor::from_f32(vec![3], vec![0.1, 0.2, -0.7]).unwrap(),
            Tensor::from_f32(vec![3], vec![0.5, -1.1, 0.33]).unwrap(),
            Tensor::from_f32(vec![3], vec![0.7, 2.3, 0.011]).unwrap(),
        ];
        let before = evaluate(&graph, &inputs, &HashMap::new()).unwrap();
        assert_eq!(lower_batch_norm(&mut graph), 1);
        crate::ir::verify::verify(&graph).unwrap();
        assert!(graph
            .node_ids()
            .iter()
            .all(|id| !matches!(graph.node(*id).op, Op::BatchNorm { .. })));
        let after = evaluate(&graph, &inputs, &HashMap::new()).unwrap();
        assert_eq!(before, after);
    }
}
