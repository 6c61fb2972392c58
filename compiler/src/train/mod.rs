//! Training as graphs: the whole optimizer step of a `train` block is one graph, built from a
//! model's forward graph, so that every backend that runs a graph can train.
//!
//! # The step graph ([`build_step_graph`])
//!
//! Inputs, in order (each an `input` node, so an executable caches nothing derived from the
//! params):
//!
//! 1. the model's inputs, in signature order;
//! 2. `labels`, of [`loss::label_type`] (class indices `i64[B, ...]` or targets `f32[B, ...]`);
//! 3. every param, named by its dotted path, in [`Graph::params`] order (buffers included);
//! 4. the optimizer state: for each *trained* param in that order, one tensor of the param's
//!    type per name of [`optimizer::state_names`] (`fc1.weight.exp_avg`, ...);
//! 5. `lr`, an f32 scalar: this step's learning rate (the schedule is computed by the caller,
//!    so a schedule never recompiles anything);
//! 6. `step`, an f32 scalar: the 1-based count of this update (Adam's bias correction);
//! 7. `seed`, an i64 scalar: the random seed of this step's dropout masks (the training loop
//!    derives it from the run's seed and the step count, see [`step_seed`]).
//!
//! Outputs, in order: the data loss (f32 scalar, without the L1/L2 terms), the number of
//! correct predictions (f32 scalar; 0 for `mse`), the new params (input order: trained params
//! as the optimizer updated them, buffers as the step updated them), the new optimizer state
//! (input order).
//!
//! # Training mode
//!
//! The step graph runs the model as in training ([`modes`]): dropout draws a mask from the
//! `seed` input (a pure function of seed, dropout node and element, so a step is reproducible
//! bit for bit on every backend) and batch norm normalizes with the batch statistics and
//! updates its running statistics.
//!
//! # Buffers
//!
//! A param is a *buffer* when a batch norm reads it as running mean, running variance or
//! batch counter ([`modes::batch_norm_buffers`]), or when it is not f32 (it cannot have a
//! gradient). Buffers are not trained: they get no gradient, no L1/L2 term and no optimizer
//! state; their new value is the one the batch norms computed (unchanged when none did).
//!
//! The gradient is that of `loss + l1 * sum(|w|) + l2 * sum(w^2)` over every trained param,
//! appended by [`crate::autodiff::differentiate`]. The optimizers' formulas are in
//! [`optimizer`], the losses' in [`loss`].
//!
//! # The evaluation graph ([`build_eval_graph`])
//!
//! Inputs: the model's inputs, `labels`, the params; outputs: the data loss and the number of
//! correct predictions, computed exactly as in the step graph but in inference mode (dropout
//! is the identity, batch norm uses the running statistics). Used for validation.

pub mod loss;
pub mod modes;
pub mod optimizer;

use crate::autodiff::{differentiate, Builder};
use crate::check::settings::{LossSpec, TrainConfig};
use crate::diag::Diagnostic;
use crate::ir::verify::verify;
use crate::ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceOp, TensorType, UnaryOp};
use crate::source::Span;

pub use loss::{has_accuracy, label_type, takes_classes, IGNORE_INDEX};
pub use optimizer::state_names;

/// The diagnostic code of a model that the training graphs cannot be built for (more than one
/// output, a non-f32 output, no class axis for a class loss): the block's settings do not fit
/// the model.
pub const TRAIN_UNSUPPORTED: &str = "invalid-setting";

/// A param as an input of a training graph.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainParam {
    /// The dotted path, as in weights files.
    pub name: String,
    pub ty: TensorType,
    /// A buffer (batch-norm running statistics, non-f32 params): updated by the step, not
    /// trained (see the module doc).
    pub buffer: bool,
}

/// One optimizer state tensor: of its param's type.
#[derive(Clone, Debug, PartialEq)]
pub struct StateSlot {
    /// `param.state_name`, e.g. `fc1.weight.exp_avg`.
    pub name: String,
    /// Index into [`TrainGraph::params`].
    pub param: usize,
}

/// A step or evaluation graph and the layout of its inputs and outputs.
#[derive(Clone, Debug)]
pub struct TrainGraph {
    pub graph: Graph,
    /// How many model inputs come first.
    pub model_inputs: usize,
    /// The type of the `labels` input.
    pub labels: TensorType,
    pub params: Vec<TrainParam>,
    /// Empty in an evaluation graph.
    pub state: Vec<StateSlot>,
    /// Whether the correct-prediction count means anything (not for `mse`).
    pub has_accuracy: bool,
}

impl TrainGraph {
    pub fn labels_input(&self) -> usize {
        self.model_inputs
    }
    pub fn param_input(&self, index: usize) -> usize {
        self.model_inputs + 1 + index
    }
    pub fn state_input(&self, index: usize) -> usize {
        self.model_inputs + 1 + self.params.len() + index
    }
    /// The `lr` input (step graphs only).
    pub fn lr_input(&self) -> usize {
        self.state_input(self.state.len())
    }
    /// The `step` input (step graphs only).
    pub fn step_input(&self) -> usize {
        self.lr_input() + 1
    }
    /// The `seed` input (step graphs only).
    pub fn seed_input(&self) -> usize {
        self.step_input() + 1
    }
    /// Output 0 is the loss, 1 the correct count; then the new params, then the new state.
    pub fn param_output(&self, index: usize) -> usize {
        2 + index
    }
    pub fn state_output(&self, index: usize) -> usize {
        2 + self.params.len() + index
    }
}

/// Builds the optimizer-step graph of a `train` block for a model's forward graph.
pub fn build_step_graph(
    forward: &Graph,
    config: &TrainConfig,
) -> Result<TrainGraph, Vec<Diagnostic>> {
    let mut prepared = prepare(forward, config.loss)?;
    let span = prepared.span;
    let graph = &mut prepared.graph;
    // The trained params, by index into `prepared.params`.
    let trained: Vec<usize> = (0..prepared.params.len())
        .filter(|&index| !prepared.params[index].buffer)
        .collect();
    let param_nodes: Vec<NodeId> = trained
        .iter()
        .map(|&index| prepared.param_nodes[index])
        .collect();

    // Optimizer state, lr, step and seed inputs.
    let names = state_names(config.optimizer);
    let mut state = Vec::new();
    let mut state_nodes = Vec::new();
    for &index in &trained {
        let param = &prepared.params[index];
        let mut nodes = Vec::new();
        for name in names {
            let full = format!("{}.{name}", param.name);
            nodes.push(add_input(graph, &full, param.ty.clone(), span));
            state.push(StateSlot {
                name: full,
                param: index,
            });
        }
        state_nodes.push(nodes);
    }
    let lr = add_input(graph, "lr", TensorType::scalar(DType::F32), span);
    let step = add_input(graph, "step", TensorType::scalar(DType::F32), span);
    let seed = add_input(graph, "seed", TensorType::scalar(DType::I64), span);

    // Training mode.
    modes::activate_dropout(graph, seed);
    let buffer_updates = modes::use_batch_statistics(graph);

    // The objective: the data loss plus the regularization terms.
    let mut objective = prepared.loss;
    {
        let mut b = Builder::new(graph, span);
        for (strength, square) in [(config.l1, false), (config.l2, true)] {
            if strength <= 0.0 {
                continue;
            }
            let mut terms = Vec::new();
            for &param in &param_nodes {
                let magnitude = if square {
                    b.mul(param, param)
                } else {
                    b.unary(UnaryOp::Abs, param)
                };
                terms.push(loss::reduce_all(&mut b, ReduceOp::Sum, magnitude));
            }
            if terms.is_empty() {
                continue;
            }
            let total = b.sum_all(&terms);
            let factor = b.scalar(strength as f32);
            let term = b.mul(factor, total);
            objective = b.binary(BinaryOp::Add, objective, term);
        }
    }
    let gradients = differentiate(graph, objective, &param_nodes)?;

    let mut new_params: Vec<NodeId> = prepared
        .param_nodes
        .iter()
        .map(|node| *buffer_updates.get(node).unwrap_or(node))
        .collect();
    let mut new_state = Vec::new();
    {
        let mut b = Builder::new(graph, span);
        for (position, &param) in param_nodes.iter().enumerate() {
            let (updated, states) = optimizer::update(
                &mut b,
                config.optimizer,
                param,
                gradients[position],
                &state_nodes[position],
                lr,
                step,
            );
            new_params[trained[position]] = updated;
            new_state.extend(states);
        }
    }
    let mut outputs = vec![prepared.loss, prepared.correct];
    outputs.extend(new_params);
    outputs.extend(new_state);
    graph.outputs = outputs;
    finish(prepared, state)
}

/// Builds the evaluation graph (loss and correct count, params as inputs) for validation.
pub fn build_eval_graph(forward: &Graph, loss: LossSpec) -> Result<TrainGraph, Vec<Diagnostic>> {
    let mut prepared = prepare(forward, loss)?;
    prepared.graph.outputs = vec![prepared.loss, prepared.correct];
    finish(prepared, Vec::new())
}

struct Prepared {
    graph: Graph,
    model_inputs: usize,
    labels: TensorType,
    params: Vec<TrainParam>,
    param_nodes: Vec<NodeId>,
    loss: NodeId,
    correct: NodeId,
    has_accuracy: bool,
    span: Span,
}

/// Copies the forward graph, adds the `labels` input, turns every param into an input and
/// appends the loss.
fn prepare(forward: &Graph, loss_spec: LossSpec) -> Result<Prepared, Vec<Diagnostic>> {
    if forward.outputs.len() != 1 {
        return Err(vec![Diagnostic::error(
            TRAIN_UNSUPPORTED,
            format!(
                "training needs a model with one output, but this one has {}",
                forward.outputs.len()
            ),
        )
        .with_help("return the output the loss is computed on")]);
    }
    let mut graph = forward.clone();
    let output = graph.outputs[0];
    let output_node = graph.node(output);
    let span = output_node.span;
    let output_ty = output_node.ty.clone();
    if output_ty.dtype != DType::F32 {
        return Err(vec![Diagnostic::error(
            TRAIN_UNSUPPORTED,
            format!("the loss needs an f32 model output, but it is {output_ty}"),
        )
        .with_label(span, "the model's output")]);
    }
    let Some(labels_ty) = label_type(loss_spec, &output_ty) else {
        return Err(vec![Diagnostic::error(
            TRAIN_UNSUPPORTED,
            format!(
                "`{}` needs a model output with a class axis, but it is {output_ty}",
                loss_spec.name()
            ),
        )
        .with_label(span, "the model's output")]);
    };
    let model_inputs = graph.inputs.len();
    let labels = add_input(&mut graph, "labels", labels_ty.clone(), span);
    let declared: Vec<(NodeId, String)> = graph
        .params()
        .into_iter()
        .map(|(id, name)| (id, name.to_string()))
        .collect();
    let buffers = modes::batch_norm_buffers(&graph);
    let mut params = Vec::new();
    let mut param_nodes = Vec::new();
    for (id, name) in declared {
        let node = graph.node(id);
        let (ty, node_span) = (node.ty.clone(), node.span);
        let buffer = buffers.contains(&id) || ty.dtype != DType::F32;
        let input = add_input(&mut graph, &name, ty.clone(), node_span);
        graph.replace_uses(id, input);
        graph.remove(id);
        params.push(TrainParam { name, ty, buffer });
        param_nodes.push(input);
    }
    let nodes = {
        let mut b = Builder::new(&mut graph, span);
        loss::build(&mut b, loss_spec, output, labels)
    };
    Ok(Prepared {
        graph,
        model_inputs,
        labels: labels_ty,
        params,
        param_nodes,
        loss: nodes.loss,
        correct: nodes.correct,
        has_accuracy: has_accuracy(loss_spec),
        span,
    })
}

fn finish(prepared: Prepared, state: Vec<StateSlot>) -> Result<TrainGraph, Vec<Diagnostic>> {
    if let Err(errors) = verify(&prepared.graph) {
        return Err(vec![Diagnostic::error(
            "internal-error",
            format!("the training graph does not verify: {errors:?}"),
        )]);
    }
    Ok(TrainGraph {
        graph: prepared.graph,
        model_inputs: prepared.model_inputs,
        labels: prepared.labels,
        params: prepared.params,
        state,
        has_accuracy: prepared.has_accuracy,
    })
}

/// The dropout seed of the step with 1-based count `step` in a run seeded with `run_seed`: a
/// SplitMix64 mix of both, so that consecutive steps draw unrelated masks and a run is a pure
/// function of its seed.
pub fn step_seed(run_seed: u64, step: u64) -> i64 {
    crate::interp::kernels::random_bits(run_seed as i64, u64::MAX, step) as i64
}

/// Appends an input node at the next position.
fn add_input(graph: &mut Graph, name: &str, ty: TensorType, span: Span) -> NodeId {
    let index = graph.inputs.len();
    let id = graph.add(
        Op::Input {
            index,
            name: name.to_string(),
        },
        ty,
        span,
        &[],
    );
    graph.inputs.push(id);
    id
}

#[cfg(test)]
mod tests;
