//! Graphviz DOT output of the graph IR, for `--emit dot`.
//!
//! Node names follow the dense numbering of the text form ([`super::print`]), so node `n5` in
//! the picture is `%5` in the text dump. A node's label is its op on the first line (the name
//! for inputs and params, `mnemonic[attributes]` for other ops), its type on the second and, with
//! a [`SourceMap`], its source location on the third:
//!
//! ```text
//! digraph model {
//!   rankdir=TB;
//!   node [shape=box, fontname="monospace"];
//!   edge [fontname="monospace"];
//!   n0 [label="input \"x\"\nf32[B, 784]", shape=invhouse, style=filled, fillcolor="#c8e6c9"];
//!   n1 [label="param \"fc1.weight\"\nf32[784, 512]", style=filled, fillcolor="#e3f2fd"];
//!   n2 [label="matmul\nf32[B, 512]"];
//!   n0 -> n2 [label="0"];
//!   n1 -> n2 [label="1"];
//!   out0 [label="output 0", shape=house, style=filled, fillcolor="#ffe0b2"];
//!   n2 -> out0;
//! }
//! ```
//!
//! Edges run from operand to user and are labelled with the operand position when the user has
//! more than one operand. Each graph output gets its own `outK` node, so a value that is output
//! twice is visibly so. A scan's body is drawn inside `subgraph cluster_N` with its node names
//! prefixed by the scan's (`s5_n0`, `s5_out0`), which keeps names unique at any nesting depth.
//! A graph with a cycle is still drawn (that is when a picture helps most), in insertion order.

use super::print::{location_text, op_text, result_type_text, Numbering, MAX_NESTING_DEPTH};
use super::{Graph, Op};
use crate::source::SourceMap;
use std::fmt::Write;

/// Fill colour of parameters: light, so the data flow stands out from the weights.
const PARAM_FILL: &str = "#e3f2fd";
/// Fill colour of graph inputs.
const INPUT_FILL: &str = "#c8e6c9";
/// Fill colour of graph outputs.
const OUTPUT_FILL: &str = "#ffe0b2";

/// Renders a graph as a Graphviz DOT `digraph` (see the module documentation for the layout).
pub fn graph_to_dot(graph: &Graph, sources: Option<&SourceMap>) -> String {
    let mut out = String::new();
    out.push_str("digraph model {\n");
    out.push_str("  rankdir=TB;\n");
    out.push_str("  node [shape=box, fontname=\"monospace\"];\n");
    out.push_str("  edge [fontname=\"monospace\"];\n");
    let mut cluster_count = 0;
    write_graph_contents(&mut out, graph, sources, "", 1, &mut cluster_count);
    out.push_str("}\n");
    out
}

/// Escapes text for a DOT double-quoted label: backslashes and quotes are escaped, and a line
/// break becomes DOT's centred-line escape `\n`.
pub fn escape_label(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            // A carriage return would otherwise end up verbatim in the label.
            '\r' => {}
            other => escaped.push(other),
        }
    }
    escaped
}

/// Joins label lines, each escaped, with DOT line breaks.
fn label(lines: &[String]) -> String {
    lines
        .iter()
        .map(|line| escape_label(line))
        .collect::<Vec<_>>()
        .join("\\n")
}

/// Writes the node, cluster and edge statements of one graph level. `prefix` makes node names
/// unique across scan bodies; `depth` is the indentation level.
fn write_graph_contents(
    out: &mut String,
    graph: &Graph,
    sources: Option<&SourceMap>,
    prefix: &str,
    depth: usize,
    cluster_count: &mut usize,
) {
    let numbering = Numbering::new(graph);
    let indent = "  ".repeat(depth);
    // Writing to a String cannot fail, so the results are ignored throughout.
    if numbering.has_cycle {
        let _ = writeln!(
            out,
            "{indent}// the graph has a cycle: nodes are listed in insertion order"
        );
    }

    for (number, &id) in numbering.order.iter().enumerate() {
        let node = graph.node(id);
        let first_line = match &node.op {
            Op::Input { name, .. } => format!("input \"{name}\""),
            Op::Param { name, .. } => format!("param \"{name}\""),
            other => op_text(other),
        };
        let mut lines = vec![first_line, result_type_text(&node.op, &node.ty)];
        lines.extend(location_text(sources, node.span));
        let style = match &node.op {
            Op::Input { .. } => {
                format!(", shape=invhouse, style=filled, fillcolor=\"{INPUT_FILL}\"")
            }
            Op::Param { .. } => format!(", style=filled, fillcolor=\"{PARAM_FILL}\""),
            // Bold marks the node whose body is the cluster drawn next to it.
            Op::Scan(_) => ", style=bold".to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{indent}{prefix}n{number} [label=\"{}\"{style}];",
            label(&lines)
        );

        if let Op::Scan(scan) = &node.op {
            let cluster = *cluster_count;
            *cluster_count += 1;
            let _ = writeln!(out, "{indent}subgraph cluster_{cluster} {{");
            let cluster_label = escape_label(&format!("scan %{number} body"));
            let _ = writeln!(out, "{indent}  label=\"{cluster_label}\";");
            let _ = writeln!(out, "{indent}  style=dashed;");
            if depth > MAX_NESTING_DEPTH {
                let _ = writeln!(out, "{indent}  // scan body nested too deeply to draw");
            } else {
                let body_prefix = format!("{prefix}s{number}_");
                write_graph_contents(
                    out,
                    &scan.body,
                    sources,
                    &body_prefix,
                    depth + 1,
                    cluster_count,
                );
            }
            let _ = writeln!(out, "{indent}}}");
        }
    }

    for &id in &numbering.order {
        let Some(user) = numbering.number(id) else {
            continue;
        };
        let operands = graph.operands(id);
        let labelled = operands.len() > 1;
        for (position, &operand) in operands.iter().enumerate() {
            // Operands are always in the graph (they are edge sources), but a missing number
            // must not panic the renderer.
            let Some(operand) = numbering.number(operand) else {
                continue;
            };
            if labelled {
                let _ = writeln!(
                    out,
                    "{indent}{prefix}n{operand} -> {prefix}n{user} [label=\"{position}\"];"
                );
            } else {
                let _ = writeln!(out, "{indent}{prefix}n{operand} -> {prefix}n{user};");
            }
        }
    }

    for (position, &id) in graph.outputs.iter().enumerate() {
        let mut lines = vec![format!("output {position}")];
        let number = numbering.number(id);
        if number.is_none() {
            lines.push(format!("<missing n{}>", id.index()));
        }
        let _ = writeln!(
            out,
            "{indent}{prefix}out{position} [label=\"{}\", shape=house, style=filled, fillcolor=\"{OUTPUT_FILL}\"];",
            label(&lines)
        );
        if let Some(number) = number {
            let _ = writeln!(out, "{indent}{prefix}n{number} -> {prefix}out{position};");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BinaryOp, DType, Dim, Init, ScanOp, TensorType};
    use crate::source::Span;

    fn f32_type(shape: &[Dim]) -> TensorType {
        TensorType::new(DType::F32, shape.to_vec())
    }

    fn batch() -> Dim {
        Dim::symbol("B")
    }

    /// `x: f32[B, 4]`, `w: f32[4, 2]`, `y = matmul x, w`, `z = neg y`.
    fn small_graph(parameter_name: &str) -> Graph {
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
                name: parameter_name.into(),
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
        let z = graph.add(
            Op::Unary(crate::ir::UnaryOp::Neg),
            f32_type(&[batch(), Dim::constant(2)]),
            Span::DUMMY,
            &[y],
        );
        graph.inputs = vec![x];
        graph.outputs = vec![z];
        graph
    }

    #[test]
    fn emits_header_nodes_edges_and_outputs() {
        let dot = graph_to_dot(&small_graph("fc.weight"), None);
        assert!(
            dot.starts_with(
                "digraph model {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n"
            ),
            "{dot}"
        );
        assert!(dot.ends_with("}\n"), "{dot}");
        assert!(
            dot.contains("  n0 [label=\"input \\\"x\\\"\\nf32[B, 4]\", shape=invhouse, style=filled, fillcolor=\"#c8e6c9\"];\n"),
            "{dot}"
        );
        assert!(
            dot.contains("  n1 [label=\"param \\\"fc.weight\\\"\\nf32[4, 2]\", style=filled, fillcolor=\"#e3f2fd\"];\n"),
            "{dot}"
        );
        assert!(
            dot.contains("  n2 [label=\"matmul\\nf32[B, 2]\"];\n"),
            "{dot}"
        );
        // Two operands: positions are labelled. One operand: no label.
        assert!(dot.contains("  n0 -> n2 [label=\"0\"];\n"), "{dot}");
        assert!(dot.contains("  n1 -> n2 [label=\"1\"];\n"), "{dot}");
        assert!(dot.contains("  n2 -> n3;\n"), "{dot}");
        assert!(
            dot.contains("  out0 [label=\"output 0\", shape=house"),
            "{dot}"
        );
        assert!(dot.contains("  n3 -> out0;\n"), "{dot}");
    }

    #[test]
    fn escapes_quotes_and_backslashes() {
        let dot = graph_to_dot(&small_graph("odd\"name\\x"), None);
        assert!(
            dot.contains("label=\"param \\\"odd\\\"name\\\\x\\\"\\nf32[4, 2]\""),
            "{dot}"
        );
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn adds_source_locations_as_a_third_label_line() {
        let mut sources = SourceMap::new();
        let file = sources
            .add("small.model", "y = x @ w\n")
            .expect("small file");
        let mut graph = small_graph("w");
        let matmul = graph.operands(graph.outputs[0])[0];
        graph.node_mut(matmul).span = sources.span(file, 4, 9);
        let dot = graph_to_dot(&graph, Some(&sources));
        assert!(
            dot.contains("n2 [label=\"matmul\\nf32[B, 2]\\nsmall.model:1:5\"];"),
            "{dot}"
        );
    }

    #[test]
    fn draws_scan_bodies_as_clusters_with_prefixed_names() {
        let state = || f32_type(&[batch()]);
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
        let doubled = body.add(Op::Binary(BinaryOp::Add), state(), Span::DUMMY, &[h, h]);
        body.inputs = vec![h];
        body.outputs = vec![doubled];

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
        let scan = graph.add(
            Op::Scan(ScanOp {
                body: Box::new(body),
                n_carry: 1,
                n_sequences: 0,
                axis: 0,
                length: Dim::constant(3),
                reverse: false,
                result_types: vec![state()],
            }),
            TensorType::scalar(DType::F32),
            Span::DUMMY,
            &[initial],
        );
        let last = graph.add(Op::Project { index: 0 }, state(), Span::DUMMY, &[scan]);
        graph.inputs = vec![initial];
        graph.outputs = vec![last];

        let dot = graph_to_dot(&graph, None);
        assert!(
            dot.contains("  subgraph cluster_0 {\n    label=\"scan %1 body\";\n"),
            "{dot}"
        );
        assert!(
            dot.contains("    s1_n0 [label=\"input \\\"h\\\"\\nf32[B]\""),
            "{dot}"
        );
        // The same operand twice: both positions get an edge.
        assert!(
            dot.contains("    s1_n0 -> s1_n1 [label=\"0\"];\n    s1_n0 -> s1_n1 [label=\"1\"];\n"),
            "{dot}"
        );
        assert!(dot.contains("    s1_n1 -> s1_out0;\n"), "{dot}");
        assert!(dot.contains("  n1 [label=\"scan[carry=1 sequences=0 axis=0 length=3 reverse=false]\\n(f32[B])\", style=bold];"), "{dot}");
        assert!(dot.contains("  n1 -> n2;\n"), "{dot}");
    }
}
