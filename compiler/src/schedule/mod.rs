//! The scheduler: turns a graph into an ordered list of kernels, independent of any backend.
//!
//! Elementwise nodes (unary, binary, select, cast, dropout at inference, scalar constants)
//! fuse into one loop over their common shape when the producer has a single user in the
//! same group and the same shape; every other node is a kernel of its own, run by a library
//! routine or a dedicated kernel. Each refused fusion is recorded with the rule that blocked
//! it, so the fusion plan is an output a user can read (`modelc build --emit kernels`).

use crate::ir::{Graph, NodeId, Op};
use crate::source::SourceMap;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// One loop over the output's elements evaluating several elementwise nodes per element.
    Fused,
    /// One node, executed by its own routine (matmul, convolution, reduction, movement, scan).
    Single,
}

#[derive(Clone, Debug)]
pub struct Kernel {
    pub kind: KernelKind,
    /// The nodes computed, operands before users; the last one is the kernel's result.
    pub nodes: Vec<NodeId>,
    /// Values the kernel reads from outside itself, in first-use order.
    pub inputs: Vec<NodeId>,
}

impl Kernel {
    pub fn output(&self) -> NodeId {
        *self
            .nodes
            .last()
            .expect("a kernel computes at least one node")
    }
}

/// A producer that could not join its consumer's kernel, and why.
#[derive(Clone, Debug)]
pub struct Rejection {
    pub producer: NodeId,
    pub consumer: NodeId,
    pub rule: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct Schedule {
    pub kernels: Vec<Kernel>,
    pub rejections: Vec<Rejection>,
}

/// Whether a node can be evaluated element by element inside a fused loop.
pub fn is_elementwise(graph: &Graph, id: NodeId) -> bool {
    let node = graph.node(id);
    match node.op {
        Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Cast | Op::Dropout { .. } => true,
        Op::Fill(_) => node.ty.rank() == 0,
        _ => false,
    }
}

/// Schedules a graph. Sources (inputs, params) are not kernels; they are bound before running.
pub fn schedule(graph: &Graph) -> Schedule {
    let Some(order) = graph.topological_order() else {
        return Schedule::default();
    };
    let outputs: HashSet<NodeId> = graph.outputs.iter().copied().collect();
    // Group roots first: walk from users to producers so each group grows from its root.
    let mut group_of: HashMap<NodeId, usize> = HashMap::new();
    let mut groups: Vec<Vec<NodeId>> = Vec::new();
    let mut rejections = Vec::new();
    for &id in order.iter().rev() {
        if group_of.contains_key(&id) || !is_elementwise(graph, id) {
            continue;
        }
        if matches!(graph.node(id).op, Op::Fill(_)) && !outputs.contains(&id) {
            // A scalar constant joins the groups that read it; alone it is not a kernel.
            if graph
                .users(id)
                .iter()
                .all(|user| is_elementwise(graph, *user))
            {
                continue;
            }
        }
        let group_index = groups.len();
        let root_shape = graph.node(id).ty.shape.clone();
        let mut members = vec![id];
        group_of.insert(id, group_index);
        let mut frontier = vec![id];
        while let Some(consumer) = frontier.pop() {
            for producer in graph.operands(consumer) {
                if group_of.contains_key(&producer) {
                    continue;
                }
                let producer_node = graph.node(producer);
                if matches!(producer_node.op, Op::Fill(_)) && producer_node.ty.rank() == 0 {
                    continue; // Inlined as a constant wherever it is read.
                }
                let rule = if !is_elementwise(graph, producer) {
                    if matches!(producer_node.op, Op::Input { .. } | Op::Param { .. }) {
                        continue;
                    }
                    "the producer is not elementwise"
                } else if producer_node.ty.shape != root_shape {
                    "the producer's shape differs (it is broadcast)"
                } else if outputs.contains(&producer) {
                    "the producer is a graph output"
                } else if graph.users(producer).len() != 1 {
                    "the producer has several users"
                } else {
                    group_of.insert(producer, group_index);
                    members.push(producer);
                    frontier.push(producer);
                    continue;
                };
                if is_elementwise(graph, producer) || is_elementwise(graph, consumer) {
                    rejections.push(Rejection {
                        producer,
                        consumer,
                        rule,
                    });
                }
            }
        }
        groups.push(members);
    }
    // Emit kernels in topological order of their results.
    let mut kernels = Vec::new();
    let mut emitted_groups = HashSet::new();
    for &id in &order {
        let node = graph.node(id);
        if matches!(node.op, Op::Input { .. } | Op::Param { .. }) {
            continue;
        }
        match group_of.get(&id) {
            Some(&group_index) => {
                if !emitted_groups.insert(group_index) {
                    continue;
                }
                let members: HashSet<NodeId> = groups[group_index].iter().copied().collect();
                let nodes: Vec<NodeId> = order
                    .iter()
                    .copied()
                    .filter(|n| members.contains(n))
                    .collect();
                let inputs = kernel_inputs(graph, &nodes, &members);
                // The group is emitted where its root is ready: at the position of its last
                // member in topological order, which is where all its inputs exist.
                kernels.push((
                    nodes.last().copied().unwrap_or(id),
                    Kernel {
                        kind: KernelKind::Fused,
                        nodes,
                        inputs,
                    },
                ));
            }
            None => {
                if matches!(node.op, Op::Fill(_)) && node.ty.rank() == 0 && !outputs.contains(&id) {
                    let read_only_by_groups =
                        graph.users(id).iter().all(|u| group_of.contains_key(u));
                    if read_only_by_groups {
                        continue;
                    }
                }
                let members: HashSet<NodeId> = [id].into_iter().collect();
                let inputs = kernel_inputs(graph, &[id], &members);
                kernels.push((
                    id,
                    Kernel {
                        kind: KernelKind::Single,
                        nodes: vec![id],
                        inputs,
                    },
                ));
            }
        }
    }
    let position: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    kernels.sort_by_key(|(root, _)| position.get(root).copied().unwrap_or(usize::MAX));
    Schedule {
        kernels: kernels.into_iter().map(|(_, k)| k).collect(),
        rejections,
    }
}

/// Operands read from outside `members`, in first-use order. Scalar constants read by a fused
/// group are inlined, so they are not inputs of it.
fn kernel_inputs(graph: &Graph, nodes: &[NodeId], members: &HashSet<NodeId>) -> Vec<NodeId> {
    let fused = nodes.len() > 1 || nodes.iter().any(|n| is_elementwise(graph, *n));
    let mut inputs = Vec::new();
    for node in nodes {
        for operand in graph.operands(*node) {
            let operand_node = graph.node(operand);
            let inlined =
                fused && matches!(operand_node.op, Op::Fill(_)) && operand_node.ty.rank() == 0;
            if !members.contains(&operand) && !inlined && !inputs.contains(&operand) {
                inputs.push(operand);
            }
        }
    }
    inputs
}

/// The fusion plan as text: each kernel with the ops it computes and the source lines they
/// came from, then every refused fusion with its rule.
pub fn print_schedule(graph: &Graph, schedule: &Schedule, sources: Option<&SourceMap>) -> String {
    let mut out = String::new();
    let location = |id: NodeId| -> String {
        match sources {
            Some(map) => map.location(graph.node(id).span),
            None => String::new(),
        }
    };
    for (index, kernel) in schedule.kernels.iter().enumerate() {
        let kind = match kernel.kind {
            KernelKind::Fused => "fused",
            KernelKind::Single => "single",
        };
        let ops: Vec<String> = kernel
            .nodes
            .iter()
            .map(|n| graph.node(*n).op.mnemonic())
            .collect();
        let mut lines: Vec<String> = kernel
            .nodes
            .iter()
            .map(|n| location(*n))
            .filter(|l| !l.is_empty())
            .collect();
        lines.dedup();
        let output = graph.node(kernel.output());
        out.push_str(&format!(
            "kernel {index} {kind} [{}] -> {}{}\n",
            ops.join(", "),
            output.ty,
            if lines.is_empty() {
                String::new()
            } else {
                format!("   # {}", lines.join(", "))
            }
        ));
    }
    if !schedule.rejections.is_empty() {
        out.push_str("not fused:\n");
        for rejection in &schedule.rejections {
            out.push_str(&format!(
                "  {} -> {}: {}{}\n",
                graph.node(rejection.producer).op.mnemonic(),
                graph.node(rejection.consumer).op.mnemonic(),
                rejection.rule,
                sources
                    .map(|_| format!("   # {}", location(rejection.consumer)))
                    .unwrap_or_default()
            ));
        }
    }
    out
}
