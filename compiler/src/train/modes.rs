//! Training mode: the rewrites that make a forward graph behave as in training rather than at
//! inference, applied by [`super::build_step_graph`] before differentiation.
//!
//! - [`activate_dropout`]: each `Dropout { rate }` becomes `x * mask`, where `mask` is
//!   `1 / (1 - rate)` where a `RandomUniform` draw is `>= rate` and 0 elsewhere (inverted
//!   dropout, as PyTorch). The draw is stream `k` (the node's position among the graph's
//!   dropout nodes, in node order) under the step's seed, so a mask is a pure function of
//!   (seed, stream, element index). `rate == 0` is the identity, `rate == 1` multiplies by 0.
//!   The mask is a constant of the step: its only input is the i64 seed, so no gradient flows
//!   into it.
//! - [`use_batch_statistics`]: each `BatchNorm` normalizes with the statistics of its batch
//!   (mean and biased variance over every axis but the channel axis 1) and yields updated
//!   running statistics, `running = (1 - momentum) * running + momentum * batch_stat` with
//!   the *unbiased* batch variance for `running_var` (PyTorch's convention), and
//!   `num_batches_tracked + 1`. A buffer read by several batch norms (a layer called twice) is
//!   updated once per call, in graph order, as PyTorch would.
//!
//! Nodes inside scan bodies are left in inference form.

use crate::autodiff::rules::normalization::{channel_shape, statistics_axes};
use crate::autodiff::Builder;
use crate::ir::{BinaryOp, DType, Dim, Graph, Literal, NodeId, Op, ReduceOp, TensorType, UnaryOp};
use std::collections::{HashMap, HashSet};

/// The param inputs a `BatchNorm` node reads as running statistics or batch counter
/// (operands 3, 4 and 5): the buffers, which training updates but never differentiates.
pub fn batch_norm_buffers(graph: &Graph) -> HashSet<NodeId> {
    let mut buffers = HashSet::new();
    for id in graph.node_ids() {
        if matches!(graph.node(id).op, Op::BatchNorm { .. }) {
            buffers.extend(graph.operands(id).into_iter().skip(3));
        }
    }
    buffers
}

/// Rewrites every dropout node of `graph` (not of scan bodies) into a seeded mask multiply;
/// returns how many there were.
pub fn activate_dropout(graph: &mut Graph, seed: NodeId) -> usize {
    let mut stream = 0u64;
    for id in graph.node_ids() {
        let Op::Dropout { rate } = graph.node(id).op else {
            continue;
        };
        let [x] = graph.operands(id)[..] else {
            continue; // The verifier reports it.
        };
        let span = graph.node(id).span;
        let mut b = Builder::new(graph, span);
        let result = if rate <= 0.0 {
            x
        } else if rate >= 1.0 {
            let zero = b.scalar(0.0);
            b.mul(x, zero)
        } else {
            let shape = b.shape(x);
            let draw = b.add(
                Op::RandomUniform { stream },
                TensorType::new(DType::F32, shape),
                &[seed],
            );
            let threshold = b.scalar(rate as f32);
            let keep = b.binary(BinaryOp::Ge, draw, threshold);
            let scale = b.scalar((1.0 / (1.0 - rate)) as f32);
            let zero = b.scalar(0.0);
            let mask = b.select(keep, scale, zero);
            b.mul(x, mask)
        };
        stream += 1;
        graph.replace_uses(id, result);
        graph.remove(id);
    }
    stream as usize
}

/// Rewrites every batch norm of `graph` (not of scan bodies) to normalize with batch
/// statistics; returns, for each buffer input it reads, the node of the buffer's value after
/// the step.
pub fn use_batch_statistics(graph: &mut Graph) -> HashMap<NodeId, NodeId> {
    let mut updated: HashMap<NodeId, NodeId> = HashMap::new();
    let order = graph.topological_order().unwrap_or_default();
    for id in order {
        let Op::BatchNorm { eps, momentum } = graph.node(id).op else {
            continue;
        };
        let operands = graph.operands(id);
        if operands.len() < 5 {
            continue; // The verifier reports it.
        }
        let (x, weight, bias) = (operands[0], operands[1], operands[2]);
        let span = graph.node(id).span;
        let mut b = Builder::new(graph, span);
        let x_shape = b.shape(x);
        let channels = channel_shape(&x_shape);
        let axes = statistics_axes(x_shape.len());
        let vector = TensorType::new(DType::F32, vec![x_shape[1].clone()]);
        let mean = b.add(
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: axes.clone(),
                keep_dims: false,
            },
            vector.clone(),
            &[x],
        );
        let mean_column = b.reshape(mean, &channels);
        let centered = b.binary(BinaryOp::Sub, x, mean_column);
        let squares = b.mul(centered, centered);
        let variance = b.add(
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: axes.clone(),
                keep_dims: false,
            },
            vector,
            &[squares],
        );
        let eps = b.scalar(eps as f32);
        let shifted = b.add2(variance, eps);
        let inverse_std = b.unary(UnaryOp::Rsqrt, shifted);
        let scale = b.mul(weight, inverse_std);
        let scale = b.reshape(scale, &channels);
        let bias_column = b.reshape(bias, &channels);
        let scaled = b.mul(centered, scale);
        let result = b.add2(scaled, bias_column);

        // The running statistics: the unbiased variance is `variance * n / (n - 1)`, with
        // `n - 1` clamped to 1 so that a single value per channel does not make it NaN.
        let count = reduced_count(&mut b, &x_shape, &axes);
        let one = b.scalar(1.0);
        let count_less_one = b.binary(BinaryOp::Sub, count, one);
        let one = b.scalar(1.0);
        let divisor = b.binary(BinaryOp::Max, count_less_one, one);
        let unbiased = b.mul(variance, count);
        let unbiased = b.div(unbiased, divisor);
        let keep = b.scalar((1.0 - momentum) as f32);
        let take = b.scalar(momentum as f32);
        for (position, statistic) in [(3, mean), (4, unbiased)] {
            let buffer = operands[position];
            let current = *updated.get(&buffer).unwrap_or(&buffer);
            let kept = b.mul(current, keep);
            let taken = b.mul(statistic, take);
            updated.insert(buffer, b.add2(kept, taken));
        }
        if let Some(&counter) = operands.get(5) {
            let current = *updated.get(&counter).unwrap_or(&counter);
            let one = b.add(
                Op::Fill(Literal::I64(1)),
                TensorType::scalar(DType::I64),
                &[],
            );
            updated.insert(counter, b.add2(current, one));
        }
        graph.replace_uses(id, result);
        graph.remove(id);
    }
    updated
}

/// The number of elements a reduction over `axes` of `shape` combines, as an f32 scalar node:
/// a constant when the dims are, else counted in the graph over the symbolic dims only.
fn reduced_count(b: &mut Builder, shape: &[Dim], axes: &[usize]) -> NodeId {
    let mut constant = 1.0f64;
    let mut symbolic = Vec::new();
    for &axis in axes {
        match shape[axis].as_const() {
            Some(size) => constant *= size as f64,
            None => symbolic.push(shape[axis].clone()),
        }
    }
    let factor = b.scalar(constant as f32);
    if symbolic.is_empty() {
        return factor;
    }
    let ones = b.fill_f32(1.0, &symbolic);
    let all: Vec<usize> = (0..symbolic.len()).collect();
    let counted = b.reduce_sum(ones, &all, false);
    b.mul(counted, factor)
}
