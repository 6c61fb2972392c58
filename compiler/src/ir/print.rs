//! The stable text form of the graph IR, for `--emit ir`, pass tests and debugging.
//!
//! Nodes are renumbered densely as `%0, %1, ...`, independent of petgraph's indices, so two
//! graphs that differ only in how they were built (or in which nodes a pass removed) print the
//! same. The graph's inputs take the first numbers, in signature order, and appear only in the
//! header; every other node follows in [`Graph::topological_order`] and gets one line:
//!
//! ```text
//! graph(%0: f32[B, 784] "x") -> (%4) {
//!   %1 = param["fc1.weight" init=kaiming_uniform(a = 2.23606797749979)] : f32[512, 784]   # mlp.model:5:5
//!   %2 = permute[perm=[1, 0]] %1 : f32[784, 512]   # mlp.model:9:9
//!   %3 = matmul %0, %2 : f32[B, 512]   # mlp.model:9:9
//!   %4 = reduce_sum[axes=[1] keep_dims=true] %3 : f32[B, 1]   # mlp.model:10:5
//! }
//! ```
//!
//! A line is `%N = mnemonic[attributes] operands : type`, where the bracketed attributes are
//! [`Op::attributes`] and are left out (brackets included) when an op has none. With a
//! [`SourceMap`] each line ends in `   # file:line:col`; spans that lie in no file (synthesized
//! nodes) get no comment. A scan prints its body graph nested, numbered on its own from `%0`,
//! and its result types (from [`ScanOp::result_types`](super::ScanOp::result_types)) after the
//! closing brace:
//!
//! ```text
//!   %3 = scan[carry=1 sequences=1 axis=0 length=T reverse=false] %1, %2 {
//!     graph(%0: f32[B, 4] "h", %1: f32[B, 4] "x") -> (%2, %2) {
//!       %2 = add %0, %1 : f32[B, 4]
//!     }
//!   } : (f32[B, 4], f32[T, B, 4])
//! ```
//!
//! The printer never panics, whatever the graph: a cycle prints a comment line instead of the
//! nodes, and references to nodes that are not in the graph print as `<missing nK>`.

use super::{Graph, NodeId, Op};
use crate::source::SourceMap;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// One level of indentation in the text form.
const INDENT: &str = "  ";

/// Scan bodies nested deeper than this are elided. Real models nest a handful of levels at most;
/// the limit only exists so that a pathological graph cannot overflow the stack.
pub(crate) const MAX_NESTING_DEPTH: usize = 64;

/// Prints a graph in the stable text form described in the module documentation. With
/// `sources`, each node line ends in its source location; without, nothing location-dependent is
/// printed (what pass tests want, since their spans are dummies).
pub fn print_graph(graph: &Graph, sources: Option<&SourceMap>) -> String {
    let mut out = String::new();
    write_graph(&mut out, graph, sources, 0);
    out
}

/// A short reference to a node that does not depend on any numbering, for diagnostics about a
/// single node: `n7 (matmul)`, using the node's stable id, or `n7 (missing)` when the id is not
/// in the graph.
pub fn print_node_ref(graph: &Graph, id: NodeId) -> String {
    if graph.contains(id) {
        format!("n{} ({})", id.index(), graph.node(id).op.mnemonic())
    } else {
        format!("n{} (missing)", id.index())
    }
}

/// The dense numbering shared by the text and DOT forms, so `%5` in one is `n5` in the other.
pub(crate) struct Numbering {
    /// The dense number of every node in the graph.
    numbers: HashMap<NodeId, usize>,
    /// Every node, in numbering order.
    pub(crate) order: Vec<NodeId>,
    /// The nodes that are listed in `Graph::inputs` and really are `Input` ops; they are numbered
    /// first and printed in the header instead of the body.
    pub(crate) header_inputs: HashSet<NodeId>,
    /// Whether the graph has a cycle, in which case `order` is the insertion order.
    pub(crate) has_cycle: bool,
}

impl Numbering {
    pub(crate) fn new(graph: &Graph) -> Numbering {
        let mut numbers = HashMap::new();
        let mut order = Vec::new();
        let mut header_inputs = HashSet::new();
        // Inputs go first: they have no operands, so hoisting them keeps the order topological,
        // and it makes the header read `%0, %1, ...` in signature order.
        for &id in &graph.inputs {
            let is_input_op = graph.contains(id) && matches!(graph.node(id).op, Op::Input { .. });
            if is_input_op && !numbers.contains_key(&id) {
                numbers.insert(id, order.len());
                order.push(id);
                header_inputs.insert(id);
            }
        }
        let (rest, has_cycle) = match graph.topological_order() {
            Some(topological) => (topological, false),
            None => (graph.node_ids(), true),
        };
        for id in rest {
            if let std::collections::hash_map::Entry::Vacant(entry) = numbers.entry(id) {
                entry.insert(order.len());
                order.push(id);
            }
        }
        Numbering {
            numbers,
            order,
            header_inputs,
            has_cycle,
        }
    }

    /// The node's dense number, if it is in the graph.
    pub(crate) fn number(&self, id: NodeId) -> Option<usize> {
        self.numbers.get(&id).copied()
    }

    /// `%N`, or `<missing nK>` for an id that is not in the graph.
    pub(crate) fn reference(&self, id: NodeId) -> String {
        match self.number(id) {
            Some(number) => format!("%{number}"),
            None => format!("<missing n{}>", id.index()),
        }
    }
}

/// The type text of a node: its tensor type, or for a scan the tuple of its result types (its
/// own `ty` is only a placeholder).
pub(crate) fn result_type_text(op: &Op, ty: &super::TensorType) -> String {
    match op {
        Op::Scan(scan) => {
            let types: Vec<String> = scan.result_types.iter().map(|t| t.to_string()).collect();
            format!("({})", types.join(", "))
        }
        _ => ty.to_string(),
    }
}

/// The source location of a span, or `None` when there is no source map or the span lies in no
/// file (nodes that passes synthesize carry `Span::DUMMY`).
pub(crate) fn location_text(
    sources: Option<&SourceMap>,
    span: crate::source::Span,
) -> Option<String> {
    let sources = sources?;
    sources.file_of(span.start)?;
    Some(sources.location(span))
}

/// `mnemonic[attributes]`, or just `mnemonic` when the op has no attributes.
pub(crate) fn op_text(op: &Op) -> String {
    let attributes = op.attributes();
    if attributes.is_empty() {
        op.mnemonic()
    } else {
        format!("{}[{}]", op.mnemonic(), attributes)
    }
}

/// Writes `graph(...) -> (...) {`, the body lines and `}`, with the header at `depth` levels of
/// indentation.
fn write_graph(out: &mut String, graph: &Graph, sources: Option<&SourceMap>, depth: usize) {
    let numbering = Numbering::new(graph);
    let indent = INDENT.repeat(depth);

    let inputs: Vec<String> = graph
        .inputs
        .iter()
        .map(|&id| header_input_text(graph, &numbering, id))
        .collect();
    let outputs: Vec<String> = graph
        .outputs
        .iter()
        .map(|&id| numbering.reference(id))
        .collect();
    // Writing to a String cannot fail, so the results are ignored throughout.
    let _ = writeln!(
        out,
        "{indent}graph({}) -> ({}) {{",
        inputs.join(", "),
        outputs.join(", ")
    );

    let body: Vec<NodeId> = numbering
        .order
        .iter()
        .copied()
        .filter(|id| !numbering.header_inputs.contains(id))
        .collect();
    if numbering.has_cycle {
        let _ = writeln!(
            out,
            "{indent}{INDENT}# error: the graph has a cycle; its {} nodes are not printed",
            body.len()
        );
    } else {
        for id in body {
            write_node(out, graph, &numbering, id, sources, depth + 1);
        }
    }
    let _ = writeln!(out, "{indent}}}");
}

/// One entry of the header's input list: `%0: f32[B, 784] "x"` for a proper input, a bare
/// reference with a note for an entry that is not an `Input` op (which then also has a body
/// line), or `<missing nK>`.
fn header_input_text(graph: &Graph, numbering: &Numbering, id: NodeId) -> String {
    if !graph.contains(id) {
        return numbering.reference(id);
    }
    let node = graph.node(id);
    match &node.op {
        Op::Input { name, .. } => format!("{}: {} {:?}", numbering.reference(id), node.ty, name),
        other => format!(
            "{} (not an input: {})",
            numbering.reference(id),
            other.mnemonic()
        ),
    }
}

/// Writes one node line (several for a scan) at `depth` levels of indentation.
fn write_node(
    out: &mut String,
    graph: &Graph,
    numbering: &Numbering,
    id: NodeId,
    sources: Option<&SourceMap>,
    depth: usize,
) {
    let node = graph.node(id);
    let indent = INDENT.repeat(depth);
    let operands: Vec<String> = graph
        .operands(id)
        .iter()
        .map(|&operand| numbering.reference(operand))
        .collect();

    let mut line = format!(
        "{indent}{} = {}",
        numbering.reference(id),
        op_text(&node.op)
    );
    if !operands.is_empty() {
        line.push(' ');
        line.push_str(&operands.join(", "));
    }
    if let Op::Scan(scan) = &node.op {
        let _ = writeln!(out, "{line} {{");
        if depth + 1 > MAX_NESTING_DEPTH {
            let _ = writeln!(
                out,
                "{indent}{INDENT}# scan body nested too deeply to print"
            );
        } else {
            write_graph(out, &scan.body, sources, depth + 1);
        }
        line = format!("{indent}}}");
    }
    let _ = write!(out, "{line} : {}", result_type_text(&node.op, &node.ty));
    if let Some(location) = location_text(sources, node.span) {
        let _ = write!(out, "   # {location}");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BinaryOp, DType, Dim, Init, ReduceOp, ScanOp, TensorType};
    use crate::source::Span;

    fn f32_type(shape: &[Dim]) -> TensorType {
        TensorType::new(DType::F32, shape.to_vec())
    }

    fn batch() -> Dim {
        Dim::symbol("B")
    }

    /// `x: f32[B, 4]`, `w: f32[4, 2]`, `y = matmul x, w`.
    fn tiny_graph() -> Graph {
        let mut graph = Graph::new();
        let x = graph.add(
            Op::Input {
                index: 0,
                name: "x".into(),
            },
            f32_type(&[batch(), Dim::constant(4)]),
            Span::DUMMY,
            &[],
        );
        let w = graph.add(
            Op::Param {
                name: "fc.weight".into(),
                init: Init::Zeros,
            },
            f32_type(&[Dim::constant(4), Dim::constant(2)]),
            Span::DUMMY,
            &[],
        );
        let y = graph.add(
            Op::MatMul,
            f32_type(&[batch(), Dim::constant(2)]),
            Span::DUMMY,
            &[x, w],
        );
        graph.inputs = vec![x];
        graph.outputs = vec![y];
        graph
    }

    #[test]
    fn prints_a_tiny_graph_exactly() {
        let expected = "\
graph(%0: f32[B, 4] \"x\") -> (%2) {
  %1 = param[\"fc.weight\" init=zeros()] : f32[4, 2]
  %2 = matmul %0, %1 : f32[B, 2]
}
";
        assert_eq!(print_graph(&tiny_graph(), None), expected);
    }

    #[test]
    fn appends_source_locations_when_given_a_source_map() {
        let mut sources = SourceMap::new();
        let file = sources
            .add("tiny.model", "model Tiny {\n    y = x @ w\n}\n")
            .expect("small file");
        let mut graph = tiny_graph();
        let matmul = graph.outputs[0];
        graph.node_mut(matmul).span = sources.span(file, 17, 22);
        let printed = print_graph(&graph, Some(&sources));
        assert!(
            printed.contains("  %2 = matmul %0, %1 : f32[B, 2]   # tiny.model:2:5\n"),
            "{printed}"
        );
        // The parameter's dummy span lies in no file, so its line has no location comment.
        assert!(
            printed.contains("  %1 = param[\"fc.weight\" init=zeros()] : f32[4, 2]\n"),
            "{printed}"
        );
    }

    #[test]
    fn renumbering_is_dense_and_inputs_come_first() {
        let mut graph = Graph::new();
        // A param inserted before the input, and a dead node removed, so petgraph's indices are
        // neither dense nor in print order.
        let w = graph.add(
            Op::Param {
                name: "w".into(),
                init: Init::Ones,
            },
            f32_type(&[Dim::constant(4)]),
            Span::DUMMY,
            &[],
        );
        let dead = graph.add(
            Op::Fill(crate::ir::Literal::F32(0.0)),
            f32_type(&[]),
            Span::DUMMY,
            &[],
        );
        let x = graph.add(
            Op::Input {
                index: 0,
                name: "x".into(),
            },
            f32_type(&[batch(), Dim::constant(4)]),
            Span::DUMMY,
            &[],
        );
        let sum = graph.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[batch(), Dim::constant(4)]),
            Span::DUMMY,
            &[x, w],
        );
        let reduced = graph.add(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![1],
                keep_dims: true,
            },
            f32_type(&[batch(), Dim::constant(1)]),
            Span::DUMMY,
            &[sum],
        );
        graph.remove(dead);
        graph.inputs = vec![x];
        graph.outputs = vec![reduced];
        let expected = "\
graph(%0: f32[B, 4] \"x\") -> (%3) {
  %1 = param[\"w\" init=ones()] : f32[4]
  %2 = add %0, %1 : f32[B, 4]
  %3 = reduce_sum[axes=[1] keep_dims=true] %2 : f32[B, 1]
}
";
        assert_eq!(print_graph(&graph, None), expected);
    }

    #[test]
    fn prints_scan_bodies_nested() {
        let state = || f32_type(&[batch(), Dim::constant(4)]);
        let mut body = Graph::new();
        let h = body.add(
            Op::Input {
                index: 0,
                name: "h".into(),
            },
            state(),
            Span::DUMMY,
            &[],
        );
        let x = body.add(
            Op::Input {
                index: 1,
                name: "x".into(),
            },
            state(),
            Span::DUMMY,
            &[],
        );
        let next = body.add(Op::Binary(BinaryOp::Add), state(), Span::DUMMY, &[h, x]);
        body.inputs = vec![h, x];
        body.outputs = vec![next, next];

        let time = Dim::symbol("T");
        let sequence_type = f32_type(&[time.clone(), batch(), Dim::constant(4)]);
        let mut graph = Graph::new();
        let initial = graph.add(
            Op::Input {
                index: 0,
                name: "h0".into(),
            },
            state(),
            Span::DUMMY,
            &[],
        );
        let sequence = graph.add(
            Op::Input {
                index: 1,
                name: "xs".into(),
            },
            sequence_type.clone(),
            Span::DUMMY,
            &[],
        );
        let scan = graph.add(
            Op::Scan(ScanOp {
                body: Box::new(body),
                n_carry: 1,
                n_sequences: 1,
                axis: 0,
                length: time,
                reverse: false,
                result_types: vec![state(), sequence_type.clone()],
            }),
            TensorType::scalar(DType::F32),
            Span::DUMMY,
            &[initial, sequence],
        );
        let stacked = graph.add(
            Op::Project { index: 1 },
            sequence_type,
            Span::DUMMY,
            &[scan],
        );
        graph.inputs = vec![initial, sequence];
        graph.outputs = vec![stacked];
        let expected = "\
graph(%0: f32[B, 4] \"h0\", %1: f32[T, B, 4] \"xs\") -> (%3) {
  %2 = scan[carry=1 sequences=1 axis=0 length=T reverse=false] %0, %1 {
    graph(%0: f32[B, 4] \"h\", %1: f32[B, 4] \"x\") -> (%2, %2) {
      %2 = add %0, %1 : f32[B, 4]
    }
  } : (f32[B, 4], f32[T, B, 4])
  %3 = project[1] %2 : f32[T, B, 4]
}
";
        assert_eq!(print_graph(&graph, None), expected);
    }

    #[test]
    fn a_cycle_prints_a_note_instead_of_nodes() {
        let mut graph = Graph::new();
        let x = graph.add(
            Op::Input {
                index: 0,
                name: "x".into(),
            },
            f32_type(&[]),
            Span::DUMMY,
            &[],
        );
        let first = graph.add(
            Op::Unary(crate::ir::UnaryOp::Neg),
            f32_type(&[]),
            Span::DUMMY,
            &[x],
        );
        let second = graph.add(
            Op::Unary(crate::ir::UnaryOp::Neg),
            f32_type(&[]),
            Span::DUMMY,
            &[first],
        );
        graph.inputs = vec![x];
        graph.outputs = vec![second];
        // Pointing the uses of `x` at `second` closes the loop first -> second -> first.
        graph.replace_uses(x, second);
        let printed = print_graph(&graph, None);
        assert!(
            printed.contains("# error: the graph has a cycle"),
            "{printed}"
        );
        assert!(!printed.contains(" = neg"), "{printed}");
    }

    #[test]
    fn missing_references_print_without_panicking() {
        let mut graph = tiny_graph();
        let matmul = graph.outputs[0];
        graph.remove(matmul);
        let printed = print_graph(&graph, None);
        assert!(
            printed.contains(&format!("-> (<missing n{}>)", matmul.index())),
            "{printed}"
        );
        assert_eq!(
            print_node_ref(&graph, matmul),
            format!("n{} (missing)", matmul.index())
        );
        assert_eq!(print_node_ref(&graph, graph.inputs[0]), "n0 (input)");
    }
}
