//! Reverse-mode automatic differentiation as a graph-to-graph transform.
//!
//! [`differentiate`] appends to a graph the nodes that compute the gradient of a scalar f32
//! loss with respect to chosen nodes (usually the params), and returns those gradient nodes.
//! The forward nodes are left as they are (a scan differentiated through gains extra stacked
//! results, see below), so one evaluation of the extended graph computes the loss and its
//! gradients together.
//!
//! # How it works
//!
//! Only nodes on a path from a `wrt` node to the loss *through f32 values* are differentiated:
//! a bool or i64 value (a comparison, an argmax, an int cast, gather indices) carries no
//! gradient, which is correct rather than an approximation, so no rule is asked for there.
//! Nodes are visited in reverse topological order; each node's gradient is the sum (`add`
//! nodes, in the order the contributions were made) of the contributions of its users, and
//! each rule (in [`rules`]) turns a node's gradient into contributions to its operands.
//! Every contribution has exactly its operand's type: a rule for an op that broadcasts sums
//! the gradient over the broadcast axes and reshapes it back ([`Builder::unbroadcast`]), with
//! symbolic dims kept symbolic, so the gradient graph is valid for any binding of `B`.
//!
//! A node on such a path whose op has no rule is a `no-gradient` diagnostic, never a silent
//! zero. A `wrt` node the loss does not depend on gets a zero gradient (that is its gradient).
//!
//! Scans are differentiated by a reverse scan: see [`rules::scan`].

pub(crate) mod rules;

use crate::diag::Diagnostic;
use crate::ir::{BinaryOp, DType, Dim, Graph, Literal, NodeId, Op, ReduceOp, TensorType, UnaryOp};
use crate::source::Span;
use std::collections::{HashMap, HashSet};

/// The diagnostic code for an op the gradient must flow through but that has no rule.
pub const NO_GRADIENT: &str = "no-gradient";

/// Adds to `graph` the gradient of the scalar f32 `loss` with respect to each node of `wrt`
/// (params, usually), returning the gradient nodes in the same order. Each gradient node has
/// its `wrt` node's type.
pub fn differentiate(
    graph: &mut Graph,
    loss: NodeId,
    wrt: &[NodeId],
) -> Result<Vec<NodeId>, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    if !graph.contains(loss) {
        return Err(vec![internal("the loss node is not in the graph")]);
    }
    let loss_node = graph.node(loss);
    if loss_node.ty.dtype != DType::F32 || loss_node.ty.rank() != 0 {
        problems.push(
            Diagnostic::error(
                NO_GRADIENT,
                format!("the loss must be a scalar f32, but it is {}", loss_node.ty),
            )
            .with_label(loss_node.span, "this is the loss")
            .with_help("reduce it to a scalar, e.g. with `mean(...)`"),
        );
    }
    for &id in wrt {
        if !graph.contains(id) {
            problems.push(internal(
                "a node to differentiate with respect to is not in the graph",
            ));
        } else if graph.node(id).ty.dtype != DType::F32 || matches!(graph.node(id).op, Op::Scan(_))
        {
            let node = graph.node(id);
            problems.push(
                Diagnostic::error(
                    NO_GRADIENT,
                    format!(
                        "cannot differentiate with respect to a {} value: only f32 tensors have gradients",
                        node.ty
                    ),
                )
                .with_label(node.span, "differentiated with respect to this"),
            );
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let span = graph.node(loss).span;
    let seed = Builder::new(graph, span).fill_f32(1.0, &[]);
    let gradients = backpropagate(graph, &[(loss, seed)], wrt)?;
    let mut results = Vec::with_capacity(wrt.len());
    for &id in wrt {
        let gradient = match gradients.get(&id) {
            Some(&gradient) => gradient,
            None => {
                let node = graph.node(id);
                let (shape, span) = (node.ty.shape.clone(), node.span);
                Builder::new(graph, span).fill_f32(0.0, &shape)
            }
        };
        results.push(gradient);
    }
    Ok(results)
}

fn internal(message: &str) -> Diagnostic {
    Diagnostic::error("internal-error", format!("differentiation: {message}"))
        .with_help("this is a bug in modelc; please report it")
}

/// The core of reverse mode: given cotangents for some nodes (`seeds`: node, gradient node of
/// the node's type), adds the nodes computing the gradient of `sum(seed_node * seed)` with
/// respect to every node of `wrt` that depends on a seed node, and returns them by node. A
/// `wrt` node missing from the map has a zero gradient.
pub(crate) fn backpropagate(
    graph: &mut Graph,
    seeds: &[(NodeId, NodeId)],
    wrt: &[NodeId],
) -> Result<HashMap<NodeId, NodeId>, Vec<Diagnostic>> {
    let Some(order) = graph.topological_order() else {
        return Err(vec![internal("the graph has a cycle")]);
    };
    // Nodes whose value depends on a wrt node through f32 values.
    let wrt_set: HashSet<NodeId> = wrt.iter().copied().collect();
    let mut varying: HashSet<NodeId> = HashSet::new();
    for &id in &order {
        let node = graph.node(id);
        let carries_gradient = node.ty.dtype == DType::F32 || matches!(node.op, Op::Scan(_));
        if !carries_gradient {
            continue;
        }
        if wrt_set.contains(&id) || graph.operands(id).iter().any(|o| varying.contains(o)) {
            varying.insert(id);
        }
    }
    // ... and that a seed node depends on.
    let mut relevant: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = seeds.iter().map(|(node, _)| *node).collect();
    while let Some(id) = stack.pop() {
        if !varying.contains(&id) || !relevant.insert(id) {
            continue;
        }
        stack.extend(graph.operands(id));
    }

    let mut contributions: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for &(node, seed) in seeds {
        contributions.entry(node).or_default().push(seed);
    }
    // Gradients of a scan's results, by result index, gathered from its `project` users.
    let mut result_gradients: HashMap<NodeId, Vec<(usize, NodeId)>> = HashMap::new();
    let mut gradients: HashMap<NodeId, NodeId> = HashMap::new();
    let mut problems = Vec::new();

    for &id in order.iter().rev() {
        if !relevant.contains(&id) {
            continue;
        }
        let operands = graph.operands(id);
        let needed: Vec<bool> = operands.iter().map(|o| relevant.contains(o)).collect();
        let span = graph.node(id).span;
        let outcome = if let Op::Scan(_) = graph.node(id).op {
            let results = result_gradients.remove(&id).unwrap_or_default();
            if results.is_empty() {
                continue;
            }
            rules::scan::scan(graph, id, &results, &needed, &relevant)
        } else {
            let Some(parts) = contributions.remove(&id) else {
                continue;
            };
            let gradient = Builder::new(graph, span).sum_all(&parts);
            if wrt_set.contains(&id) {
                gradients.insert(id, gradient);
            }
            if let Op::Project { index } = graph.node(id).op {
                if let Some(&scan) = operands.first() {
                    if needed.first() == Some(&true) {
                        result_gradients
                            .entry(scan)
                            .or_default()
                            .push((index, gradient));
                    }
                }
                continue;
            }
            if !needed.iter().any(|&n| n) {
                continue;
            }
            rules::operand_gradients(graph, id, gradient, &needed)
        };
        match outcome {
            Ok(parts) => {
                for (position, part) in parts {
                    if let Some(&operand) = operands.get(position) {
                        if needed[position] {
                            contributions.entry(operand).or_default().push(part);
                        }
                    }
                }
            }
            Err(mut diagnostics) => problems.append(&mut diagnostics),
        }
    }
    if problems.is_empty() {
        Ok(gradients)
    } else {
        Err(problems)
    }
}

/// The `no-gradient` diagnostic for a node whose op has no rule.
pub(crate) fn no_rule(graph: &Graph, id: NodeId, why: &str) -> Diagnostic {
    let node = graph.node(id);
    Diagnostic::error(
        NO_GRADIENT,
        format!(
            "`{}` has no gradient rule{why}, but the gradient must flow through it",
            node.op.mnemonic()
        ),
    )
    .with_label(node.span, "the gradient of the loss flows through this")
}

/// Appends nodes to a graph, all with one span (that of the forward node being differentiated,
/// so a gradient node points at the source it comes from).
pub(crate) struct Builder<'g> {
    pub graph: &'g mut Graph,
    pub span: Span,
}

impl<'g> Builder<'g> {
    pub fn new(graph: &'g mut Graph, span: Span) -> Builder<'g> {
        Builder { graph, span }
    }

    pub fn ty(&self, id: NodeId) -> TensorType {
        self.graph.node(id).ty.clone()
    }

    pub fn shape(&self, id: NodeId) -> Vec<Dim> {
        self.graph.node(id).ty.shape.clone()
    }

    pub fn add(&mut self, op: Op, ty: TensorType, operands: &[NodeId]) -> NodeId {
        self.graph.add(op, ty, self.span, operands)
    }

    pub fn fill_f32(&mut self, value: f32, shape: &[Dim]) -> NodeId {
        self.add(
            Op::Fill(Literal::F32(value)),
            TensorType::new(DType::F32, shape.to_vec()),
            &[],
        )
    }

    pub fn scalar(&mut self, value: f32) -> NodeId {
        self.fill_f32(value, &[])
    }

    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> NodeId {
        let ty = self.ty(x);
        self.add(Op::Unary(op), ty, &[x])
    }

    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        let shape = broadcast_shapes(&self.shape(a), &self.shape(b));
        let dtype = if op.is_comparison() || op.is_logical() {
            DType::Bool
        } else {
            self.ty(a).dtype
        };
        self.add(Op::Binary(op), TensorType::new(dtype, shape), &[a, b])
    }

    pub fn add2(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Mul, a, b)
    }

    pub fn div(&mut self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Div, a, b)
    }

    pub fn neg(&mut self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Neg, x)
    }

    /// `where(condition, if_true, if_false)`, broadcast to all three shapes.
    pub fn select(&mut self, condition: NodeId, if_true: NodeId, if_false: NodeId) -> NodeId {
        let shape = broadcast_shapes(
            &broadcast_shapes(&self.shape(condition), &self.shape(if_true)),
            &self.shape(if_false),
        );
        let dtype = self.ty(if_true).dtype;
        self.add(
            Op::Select,
            TensorType::new(dtype, shape),
            &[condition, if_true, if_false],
        )
    }

    /// A bool tensor as 0.0 / 1.0.
    pub fn cast_to_f32(&mut self, x: NodeId) -> NodeId {
        let shape = self.shape(x);
        self.add(Op::Cast, TensorType::new(DType::F32, shape), &[x])
    }

    pub fn reshape(&mut self, x: NodeId, shape: &[Dim]) -> NodeId {
        if self.shape(x) == shape {
            return x;
        }
        let dtype = self.ty(x).dtype;
        self.add(Op::Reshape, TensorType::new(dtype, shape.to_vec()), &[x])
    }

    pub fn expand(&mut self, x: NodeId, shape: &[Dim]) -> NodeId {
        if self.shape(x) == shape {
            return x;
        }
        let dtype = self.ty(x).dtype;
        self.add(Op::Expand, TensorType::new(dtype, shape.to_vec()), &[x])
    }

    pub fn permute(&mut self, x: NodeId, perm: &[usize]) -> NodeId {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return x;
        }
        let ty = self.ty(x);
        let shape = perm.iter().map(|&axis| ty.shape[axis].clone()).collect();
        self.add(
            Op::Permute {
                perm: perm.to_vec(),
            },
            TensorType::new(ty.dtype, shape),
            &[x],
        )
    }

    /// Swaps the last two axes.
    pub fn transpose(&mut self, x: NodeId) -> NodeId {
        let rank = self.ty(x).rank();
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(rank - 2, rank - 1);
        self.permute(x, &perm)
    }

    /// Sums over `axes` (sorted, unique).
    pub fn reduce_sum(&mut self, x: NodeId, axes: &[usize], keep_dims: bool) -> NodeId {
        if axes.is_empty() {
            return x;
        }
        let ty = self.ty(x);
        let shape = ty
            .shape
            .iter()
            .enumerate()
            .filter_map(|(axis, dim)| match (axes.contains(&axis), keep_dims) {
                (false, _) => Some(dim.clone()),
                (true, true) => Some(Dim::constant(1)),
                (true, false) => None,
            })
            .collect();
        self.add(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: axes.to_vec(),
                keep_dims,
            },
            TensorType::new(ty.dtype, shape),
            &[x],
        )
    }

    /// Sums the parts (all of one type) with a chain of adds.
    pub fn sum_all(&mut self, parts: &[NodeId]) -> NodeId {
        let mut total = parts[0];
        for &part in &parts[1..] {
            total = self.add2(total, part);
        }
        total
    }

    /// The gradient of an operand of shape `target` that was broadcast to `gradient`'s shape:
    /// summed over the axes broadcasting added or stretched, then reshaped to `target`.
    pub fn unbroadcast(&mut self, gradient: NodeId, target: &[Dim]) -> NodeId {
        let shape = self.shape(gradient);
        if shape == target {
            return gradient;
        }
        let offset = shape.len().saturating_sub(target.len());
        let one = Dim::constant(1);
        let axes: Vec<usize> = (0..shape.len())
            .filter(|&axis| axis < offset || (target[axis - offset] == one && shape[axis] != one))
            .collect();
        let summed = self.reduce_sum(gradient, &axes, false);
        self.reshape(summed, target)
    }
}

/// NumPy broadcasting of two shapes, aligned from the right; a dim that is the constant 1
/// yields to the other.
pub(crate) fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Vec<Dim> {
    let rank = a.len().max(b.len());
    let one = Dim::constant(1);
    (0..rank)
        .map(|i| {
            let from_a = (i + a.len()).checked_sub(rank).map(|j| &a[j]);
            let from_b = (i + b.len()).checked_sub(rank).map(|j| &b[j]);
            match (from_a, from_b) {
                (Some(x), Some(y)) => {
                    if *x == one {
                        y.clone()
                    } else {
                        x.clone()
                    }
                }
                (Some(x), None) => x.clone(),
                (None, Some(y)) => y.clone(),
                (None, None) => one.clone(),
            }
        })
        .collect()
}
