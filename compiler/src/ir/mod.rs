//! The graph IR: a petgraph DAG of primitive ops, each node typed and carrying its source span.

pub mod dim;
pub mod dot;
pub mod op;
pub mod print;
pub mod verify;

pub use dim::{Dim, DimError};
pub use op::{BinaryOp, DType, Init, Literal, Op, PoolKind, ReduceOp, ScanOp, TensorType, UnaryOp};

use crate::source::Span;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

/// A node's id; stable across node removals.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(pub NodeIndex<u32>);

impl NodeId {
    pub fn index(self) -> usize {
        self.0.index()
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    /// The node's result type. For a multi-result node (a scan) this is a rank-0 placeholder;
    /// its results are typed by the `Project` nodes that read them.
    pub ty: TensorType,
    /// Where in the `.model` source this node came from.
    pub span: Span,
}

/// A computation graph. Edge weights are operand positions.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    graph: StableDiGraph<Node, usize>,
    /// Model inputs in signature order.
    pub inputs: Vec<NodeId>,
    /// Model outputs in signature order.
    pub outputs: Vec<NodeId>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a node with its operands in order.
    pub fn add(&mut self, op: Op, ty: TensorType, span: Span, operands: &[NodeId]) -> NodeId {
        let id = NodeId(self.graph.add_node(Node { op, ty, span }));
        for (position, operand) in operands.iter().enumerate() {
            self.graph.add_edge(operand.0, id.0, position);
        }
        id
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id.0]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.graph[id.0]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.graph.contains_node(id.0)
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// The operands of a node, in position order.
    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(usize, NodeId)> = self
            .graph
            .edges_directed(id.0, Direction::Incoming)
            .map(|edge| (*edge.weight(), NodeId(edge.source())))
            .collect();
        edges.sort_by_key(|(position, _)| *position);
        edges.into_iter().map(|(_, node)| node).collect()
    }

    /// The nodes that use a node, without duplicates, in id order.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut users: Vec<NodeId> = self
            .graph
            .edges_directed(id.0, Direction::Outgoing)
            .map(|edge| NodeId(edge.target()))
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// All node ids in insertion order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.graph.node_indices().map(NodeId).collect()
    }

    /// Nodes in a topological order (operands before users), ties broken by insertion order so
    /// printing is stable. `None` if the graph has a cycle.
    pub fn topological_order(&self) -> Option<Vec<NodeId>> {
        let ids = self.node_ids();
        let mut pending: std::collections::HashMap<NodeId, usize> = ids
            .iter()
            .map(|id| {
                (
                    *id,
                    self.graph.edges_directed(id.0, Direction::Incoming).count(),
                )
            })
            .collect();
        let mut ready: std::collections::BTreeSet<NodeId> =
            ids.iter().copied().filter(|id| pending[id] == 0).collect();
        let mut order = Vec::with_capacity(ids.len());
        while let Some(id) = ready.pop_first() {
            order.push(id);
            for edge in self.graph.edges_directed(id.0, Direction::Outgoing) {
                let target = NodeId(edge.target());
                let count = pending.get_mut(&target).expect("every node counted");
                *count -= 1;
                if *count == 0 {
                    ready.insert(target);
                }
            }
        }
        (order.len() == ids.len()).then_some(order)
    }

    /// Parameters in insertion order, with their names.
    pub fn params(&self) -> Vec<(NodeId, &str)> {
        self.node_ids()
            .into_iter()
            .filter_map(|id| match &self.node(id).op {
                Op::Param { name, .. } => Some((id, name.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Points every use of `old` at `new` instead.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        let uses: Vec<_> = self
            .graph
            .edges_directed(old.0, Direction::Outgoing)
            .map(|edge| (edge.id(), edge.target(), *edge.weight()))
            .collect();
        for (edge, target, position) in uses {
            self.graph.remove_edge(edge);
            self.graph.add_edge(new.0, target, position);
        }
        for output in self.inputs.iter_mut().chain(self.outputs.iter_mut()) {
            if *output == old {
                *output = new;
            }
        }
    }

    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        self.graph.remove_node(id.0)
    }

    /// The operands of a node with their edge positions, sorted by position. Unlike
    /// [`Graph::operands`] this keeps the positions, so the verifier can report gaps and
    /// duplicates. Empty for a node that is not in the graph.
    pub fn operand_edges(&self, id: NodeId) -> Vec<(usize, NodeId)> {
        let mut edges: Vec<(usize, NodeId)> = self
            .graph
            .edges_directed(id.0, Direction::Incoming)
            .map(|edge| (*edge.weight(), NodeId(edge.source())))
            .collect();
        edges.sort();
        edges
    }
}
