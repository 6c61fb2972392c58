//! The IR verifier: checks the structural and typing invariants every pass may rely on.
//!
//! Invariants checked, for the graph and, recursively, for every scan body:
//!
//! 1. **Acyclic.** The graph has a topological order.
//! 2. **Inputs.** Every entry of `inputs` is a node of the graph, listed once, and is an `Input`
//!    op whose `index` equals its position in the list; every `Input` node is listed.
//! 3. **Outputs.** Every entry of `outputs` is a node of the graph, and none is a scan (a scan's
//!    results are read through `Project`).
//! 4. **Operand positions.** The positions of a node's operand edges are exactly `0..k`: no gap,
//!    no duplicate.
//! 5. **Operand counts.** Sources (`Input`, `Param`, `Fill`, `Iota`): 0. `Unary`, `Cast`,
//!    `Reduce`, `ArgMax`, `Reshape`, `Permute`, `Expand`, `Slice`, `Pool2d`, `Dropout`,
//!    `RandomUniform`, `Project`, `SliceScatter`: 1. `Binary`, `MatMul`, `Gather`, `ScatterAdd`,
//!    `Conv2dBackwardInput`, `Conv2dBackwardWeight`, `Pool2dBackward`: 2. `Select`: 3. `Conv2d`: 2 or 3. `BatchNorm`: 5 or 6. `Concat`: at
//!    least 1. `Scan`: at least `n_carry + n_sequences` (the rest are captures).
//! 6. **Dimensions.** No constant dimension of any node's type is negative.
//! 7. **Element types.** Arithmetic `Binary` ops and `Neg`/`Abs`/`Floor` take and return one
//!    numeric (non-bool) dtype; transcendental unary ops are f32; comparisons take two equal
//!    dtypes and return bool; `And`/`Or`/`Not` are bool throughout; `Select`'s condition is bool
//!    and its branches have the result's dtype; `Fill`'s literal has the node's dtype;
//!    `MatMul`, `Conv2d` (bias included) and `Pool2d` are f32; `Gather`'s indices are i64 and its
//!    table has the result's dtype; `ArgMax` returns i64; `Reduce`, `Reshape`, `Permute`,
//!    `Expand`, `Slice`, `Concat` and `Dropout` keep their operands' dtype.
//! 8. **Shapes**, compared symbolically with [`Dim`] normal forms:
//!    - elementwise ops (`Unary`, `Binary`, `Select`, `Cast`) and `Expand`: each operand
//!      broadcasts to the node's shape (aligned from the right, operand rank at most the result
//!      rank, each operand dim equal to the result's or the constant 1);
//!    - `Iota`: `axis` is below the result rank;
//!    - `Reduce`: axes in range, strictly increasing, result shape is the operand's with the
//!      axes removed (or set to 1 with `keep_dims`); `ArgMax` likewise for its one axis;
//!    - `Reshape`: the element counts (products of dims) are equal;
//!    - `Permute`: `perm` is a permutation of the operand's axes and
//!      `result[i] == operand[perm[i]]`;
//!    - `Slice`: axis in range, same rank, other dims unchanged, non-zero step, and when all is
//!      constant the first and last index lie inside the operand;
//!    - `Concat`: axis in range, every operand has the result's rank and agrees with it off the
//!      axis, and the operands' sizes along the axis sum to the result's;
//!    - `MatMul`: ranks at least 2, contracted dims equal, result is `[batch.., m, n]` with the
//!      batch dims of both operands broadcasting to the result's;
//!    - `Conv2d`: rank-4 input, weight and result; positive stride, dilation and groups;
//!      `input channels == weight[1] * groups`; output channels divisible by groups when
//!      constant; `result = [N, weight[0], H_out, W_out]` with PyTorch's output-size formula;
//!      the bias, if any, is `[weight[0]]`;
//!    - `Pool2d`: rank-4 operand and result, positive kernel and stride, batch and channels
//!      kept, spatial sizes from the output-size formula;
//!    - `Gather`: axis in range and `result = table[..axis] ++ indices ++ table[axis + 1..]`;
//!    - `Dropout`: `0 <= rate <= 1` and the result type equals the operand's.
//!    - `RandomUniform`: the seed is an i64 scalar and the result is f32 (any shape).
//!    - `BatchNorm`: finite `eps >= 0`, `0 <= momentum <= 1`; an f32 input of rank >= 2 and a
//!      result of its type; weight, bias, running_mean and running_var f32 `[C]` with `C` the
//!      input's axis 1; the optional sixth operand an i64 scalar.
//!    - the gradient ops are checked as the forward op they reverse, roles swapped:
//!      `SliceScatter` as `Slice` from its result to its operand; `ScatterAdd` (f32) as
//!      `Gather` from a table of its result's type by its indices to its updates;
//!      `Conv2dBackwardInput` as `Conv2d` of an input of its result's type by its weight to its
//!      output gradient; `Conv2dBackwardWeight` as `Conv2d` of its input by a weight of its
//!      result's type to its output gradient; `Pool2dBackward` as `Pool2d` of its input to its
//!      output gradient, with the result of the input's type.
//! 9. **Projections.** A `Project` reads a scan, its index is below the scan's
//!    `result_types.len()`, and its type equals `result_types[index]`. A scan is used only by
//!    `Project` nodes.
//! 10. **Scans.** The body verifies (recursively, all of the above); the body has one input per
//!     scan operand and `n_carry + (number of stacked results)` outputs; `result_types` has at
//!     least `n_carry` entries; each carried state has one type across the initial operand, the
//!     body input, the body output and the result; each sequence has `axis` in range, size
//!     `length` along it, and its body input is the sequence's type without `axis`; each capture's
//!     body input has the captured operand's type; each stacked result is the body's per-step
//!     output type with `length` inserted at `axis`; a constant `length` is not negative.
//!
//! Spans are not checked. Dims containing floor divisions can be equal without having equal
//! normal forms, so for those a mismatch is only reported when a concrete assignment of the
//! symbols tells them apart. The verifier never panics, whatever the graph.

use super::dim::Dim;
use super::op::{BinaryOp, DType, Op, ScanOp, TensorType, UnaryOp};
use super::print::MAX_NESTING_DEPTH;
use super::{Graph, NodeId};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The offending node, or `None` for a graph-level problem (a cycle, a dangling input or
    /// output id). Problems inside a scan body are attributed to the scan node.
    pub node: Option<NodeId>,
    /// What is wrong, starting with the op's mnemonic when it is about a node.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(id) => write!(f, "n{}: {}", id.index(), self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Checks every invariant listed in the module documentation. Returns all problems found, in a
/// deterministic order (graph-level ones first, then by node id).
pub fn verify(graph: &Graph) -> Result<(), Vec<VerifyError>> {
    let mut verifier = Verifier {
        graph,
        errors: Vec::new(),
        depth: 0,
    };
    verifier.verify_graph();
    if verifier.errors.is_empty() {
        Ok(())
    } else {
        Err(verifier.errors)
    }
}

/// How many operands an op takes.
enum OperandCount {
    Exactly(usize),
    AtLeast(usize),
    TwoOrThree,
    FiveOrSix,
}

impl OperandCount {
    fn of(op: &Op) -> OperandCount {
        match op {
            Op::Input { .. } | Op::Param { .. } | Op::Fill(_) | Op::Iota { .. } => {
                OperandCount::Exactly(0)
            }
            Op::Unary(_)
            | Op::Cast
            | Op::Reduce { .. }
            | Op::ArgMax { .. }
            | Op::Reshape
            | Op::Permute { .. }
            | Op::Expand
            | Op::Slice { .. }
            | Op::Pool2d { .. }
            | Op::Dropout { .. }
            | Op::RandomUniform { .. }
            | Op::SliceScatter { .. }
            | Op::Project { .. } => OperandCount::Exactly(1),
            Op::Binary(_)
            | Op::MatMul
            | Op::Gather { .. }
            | Op::ScatterAdd { .. }
            | Op::Conv2dBackwardInput { .. }
            | Op::Conv2dBackwardWeight { .. }
            | Op::Pool2dBackward { .. } => OperandCount::Exactly(2),
            Op::Select => OperandCount::Exactly(3),
            Op::Conv2d { .. } => OperandCount::TwoOrThree,
            Op::BatchNorm { .. } => OperandCount::FiveOrSix,
            Op::Concat { .. } => OperandCount::AtLeast(1),
            Op::Scan(scan) => OperandCount::AtLeast(scan.n_carry.saturating_add(scan.n_sequences)),
        }
    }

    fn accepts(&self, count: usize) -> bool {
        match *self {
            OperandCount::Exactly(expected) => count == expected,
            OperandCount::AtLeast(minimum) => count >= minimum,
            OperandCount::TwoOrThree => count == 2 || count == 3,
            OperandCount::FiveOrSix => count == 5 || count == 6,
        }
    }

    fn describe(&self) -> String {
        match *self {
            OperandCount::Exactly(1) => "exactly 1 operand".to_string(),
            OperandCount::Exactly(expected) => format!("exactly {expected} operands"),
            OperandCount::AtLeast(minimum) => format!("at least {minimum} operands"),
            OperandCount::TwoOrThree => "2 or 3 operands".to_string(),
            OperandCount::FiveOrSix => "5 or 6 operands".to_string(),
        }
    }
}

struct Verifier<'g> {
    graph: &'g Graph,
    errors: Vec<VerifyError>,
    /// Scan nesting depth, to refuse pathological nesting instead of overflowing the stack.
    depth: usize,
}

impl<'g> Verifier<'g> {
    fn graph_error(&mut self, message: String) {
        self.errors.push(VerifyError {
            node: None,
            message,
        });
    }

    /// Records a problem with a node, prefixed with its mnemonic so the message stands alone.
    fn node_error(&mut self, id: NodeId, message: impl fmt::Display) {
        let mnemonic = self.graph.node(id).op.mnemonic();
        self.errors.push(VerifyError {
            node: Some(id),
            message: format!("{mnemonic}: {message}"),
        });
    }

    fn verify_graph(&mut self) {
        self.check_acyclic();
        self.check_inputs();
        self.check_outputs();
        for id in self.graph.node_ids() {
            self.check_operand_positions(id);
            self.check_dims_not_negative(id);
            self.check_node(id);
        }
    }

    /// Invariant 1. Names the nodes Kahn's algorithm cannot order: those on a cycle or fed by one.
    fn check_acyclic(&mut self) {
        if self.graph.topological_order().is_some() {
            return;
        }
        let ids = self.graph.node_ids();
        let mut pending: HashMap<NodeId, usize> = ids
            .iter()
            .map(|&id| (id, self.graph.operand_edges(id).len()))
            .collect();
        let mut ready: Vec<NodeId> = ids.iter().copied().filter(|id| pending[id] == 0).collect();
        let mut ordered = HashSet::new();
        while let Some(id) = ready.pop() {
            ordered.insert(id);
            for user in self.graph.users(id) {
                // `users` is deduplicated, so count every edge from `id` into the user.
                let edges = self
                    .graph
                    .operand_edges(user)
                    .iter()
                    .filter(|(_, operand)| *operand == id)
                    .count();
                if let Some(count) = pending.get_mut(&user) {
                    *count = count.saturating_sub(edges);
                    if *count == 0 {
                        ready.push(user);
                    }
                }
            }
        }
        let stuck: Vec<String> = ids
            .iter()
            .filter(|id| !ordered.contains(id))
            .take(8)
            .map(|id| format!("n{}", id.index()))
            .collect();
        self.graph_error(format!(
            "the graph has a cycle (through or downstream of {})",
            stuck.join(", ")
        ));
    }

    /// Invariant 2.
    fn check_inputs(&mut self) {
        let graph = self.graph;
        let mut listed = HashSet::new();
        for (position, &id) in graph.inputs.iter().enumerate() {
            if !graph.contains(id) {
                self.graph_error(format!(
                    "inputs[{position}] refers to n{}, which is not in the graph",
                    id.index()
                ));
                continue;
            }
            if !listed.insert(id) {
                self.node_error(
                    id,
                    format!("listed twice in the graph's inputs (again at position {position})"),
                );
                continue;
            }
            match &graph.node(id).op {
                Op::Input { index, .. } if *index != position => self.node_error(
                    id,
                    format!("input index {index} but listed at position {position} of the inputs"),
                ),
                Op::Input { .. } => {}
                _ => self.node_error(
                    id,
                    format!("listed at position {position} of the inputs but is not an Input op"),
                ),
            }
        }
        for id in graph.node_ids() {
            if let Op::Input { index, name } = &graph.node(id).op {
                if !listed.contains(&id) {
                    self.node_error(
                        id,
                        format!("input {index} \"{name}\" is not listed in the graph's inputs"),
                    );
                }
            }
        }
    }

    /// Invariant 3.
    fn check_outputs(&mut self) {
        let graph = self.graph;
        for (position, &id) in graph.outputs.iter().enumerate() {
            if !graph.contains(id) {
                self.graph_error(format!(
                    "outputs[{position}] refers to n{}, which is not in the graph",
                    id.index()
                ));
            } else if matches!(graph.node(id).op, Op::Scan(_)) {
                self.node_error(
                    id,
                    format!(
                        "a scan is output {position}; its results must be read through project"
                    ),
                );
            }
        }
    }

    /// Invariant 4.
    fn check_operand_positions(&mut self, id: NodeId) {
        let edges = self.graph.operand_edges(id);
        for (expected, (position, _)) in edges.iter().enumerate() {
            if *position != expected {
                let positions: Vec<usize> = edges.iter().map(|(position, _)| *position).collect();
                self.node_error(
                    id,
                    format!(
                        "operand positions {positions:?} are not 0..{} without gaps or duplicates",
                        edges.len()
                    ),
                );
                return;
            }
        }
    }

    /// Invariant 6.
    fn check_dims_not_negative(&mut self, id: NodeId) {
        let node = self.graph.node(id);
        let mut types = vec![&node.ty];
        if let Op::Scan(scan) = &node.op {
            types.extend(scan.result_types.iter());
        }
        for ty in types {
            if ty
                .shape
                .iter()
                .any(|dim| dim.as_const().is_some_and(|value| value < 0))
            {
                self.node_error(id, format!("type {ty} has a negative dimension"));
            }
        }
    }

    /// Invariants 5 and 7 to 10 for one node.
    fn check_node(&mut self, id: NodeId) {
        let graph = self.graph;
        let node = graph.node(id);
        let operands = graph.operands(id);
        let expected = OperandCount::of(&node.op);
        if !expected.accepts(operands.len()) {
            self.node_error(
                id,
                format!("expects {}, got {}", expected.describe(), operands.len()),
            );
            // The op-specific checks index operands by position; they would only add noise.
            return;
        }
        let types: Vec<&TensorType> = operands
            .iter()
            .map(|&operand| &graph.node(operand).ty)
            .collect();
        let result = &node.ty;
        let problems = match &node.op {
            Op::Input { .. } | Op::Param { .. } => Vec::new(),
            Op::Fill(value) => {
                if value.dtype() != result.dtype {
                    vec![format!(
                        "literal {value} is {} but the result dtype is {}",
                        value.dtype(),
                        result.dtype
                    )]
                } else {
                    Vec::new()
                }
            }
            Op::Iota { axis } => {
                if *axis >= result.rank() {
                    vec![format!(
                        "axis {axis} is out of range for result type {result}"
                    )]
                } else {
                    Vec::new()
                }
            }
            Op::Unary(op) => check_unary(*op, types[0], result),
            Op::Binary(op) => check_binary(*op, types[0], types[1], result),
            Op::Select => check_select(types[0], types[1], types[2], result),
            Op::Cast => elementwise_shape_problems(&types, result),
            Op::Reduce {
                axes, keep_dims, ..
            } => check_reduce(axes, *keep_dims, types[0], result),
            Op::ArgMax { axis, keep_dims } => check_argmax(*axis, *keep_dims, types[0], result),
            Op::Reshape => check_reshape(types[0], result),
            Op::Permute { perm } => check_permute(perm, types[0], result),
            Op::Expand => {
                let mut problems = same_dtype_problems(&types, result);
                problems.extend(elementwise_shape_problems(&types, result));
                problems
            }
            Op::Slice { axis, start, step } => check_slice(*axis, start, *step, types[0], result),
            Op::Concat { axis } => check_concat(*axis, &types, result),
            Op::MatMul => check_matmul(types[0], types[1], result),
            Op::Conv2d {
                stride,
                padding,
                dilation,
                groups,
            } => check_conv2d(*stride, *padding, *dilation, *groups, &types, result),
            Op::Pool2d {
                kernel,
                stride,
                padding,
                ..
            } => check_pool2d(*kernel, *stride, *padding, types[0], result),
            Op::Gather { axis } => check_gather(*axis, types[0], types[1], result),
            Op::Dropout { rate } => check_dropout(*rate, types[0], result),
            Op::RandomUniform { .. } => check_random_uniform(types[0], result),
            Op::BatchNorm { eps, momentum } => check_batch_norm(*eps, *momentum, &types, result),
            // The adjoints are checked as the forward op they reverse, with roles swapped.
            Op::SliceScatter { axis, start, step } => {
                check_slice(*axis, start, *step, result, types[0])
                    .into_iter()
                    .map(|problem| format!("as the slice it reverses: {problem}"))
                    .collect()
            }
            Op::ScatterAdd { axis } => {
                let mut problems = f32_problems(&[("updates", types[0]), ("result", result)]);
                problems.extend(
                    check_gather(*axis, result, types[1], types[0])
                        .into_iter()
                        .map(|problem| format!("as the gather it reverses: {problem}")),
                );
                problems
            }
            Op::Conv2dBackwardInput {
                stride,
                padding,
                dilation,
                groups,
            } => check_conv2d(
                *stride,
                *padding,
                *dilation,
                *groups,
                &[result, types[1]],
                types[0],
            )
            .into_iter()
            .map(|problem| format!("as the conv2d it reverses: {problem}"))
            .collect(),
            Op::Conv2dBackwardWeight {
                stride,
                padding,
                dilation,
                groups,
            } => check_conv2d(
                *stride,
                *padding,
                *dilation,
                *groups,
                &[types[0], result],
                types[1],
            )
            .into_iter()
            .map(|problem| format!("as the conv2d it reverses: {problem}"))
            .collect(),
            Op::Pool2dBackward {
                kernel,
                stride,
                padding,
                ..
            } => {
                let mut problems: Vec<String> =
                    check_pool2d(*kernel, *stride, *padding, types[0], types[1])
                        .into_iter()
                        .map(|problem| format!("as the pool2d it reverses: {problem}"))
                        .collect();
                problems.extend(same_type_problems(types[0], result));
                problems
            }
            Op::Project { index } => self.check_project(*index, operands[0], result),
            Op::Scan(scan) => self.check_scan(scan, &operands),
        };
        for problem in problems {
            self.node_error(id, problem);
        }
        if matches!(node.op, Op::Scan(_)) {
            self.check_scan_users(id);
        }
    }

    /// Invariant 9, from the project's side.
    fn check_project(&self, index: usize, operand: NodeId, result: &TensorType) -> Vec<String> {
        let Op::Scan(scan) = &self.graph.node(operand).op else {
            return vec![format!(
                "reads n{} ({}), not a scan; only scans have several results",
                operand.index(),
                self.graph.node(operand).op.mnemonic()
            )];
        };
        match scan.result_types.get(index) {
            None => vec![format!(
                "project index {index} is out of range: the scan n{} has {} results",
                operand.index(),
                scan.result_types.len()
            )],
            Some(expected) if types_differ(expected, result) => {
                vec![format!(
                    "type {result} differs from the scan's result {index} type {expected}"
                )]
            }
            Some(_) => Vec::new(),
        }
    }

    /// Invariant 9, from the scan's side.
    fn check_scan_users(&mut self, id: NodeId) {
        for user in self.graph.users(id) {
            if !matches!(self.graph.node(user).op, Op::Project { .. }) {
                let mnemonic = self.graph.node(user).op.mnemonic();
                self.node_error(
                    id,
                    format!(
                        "used by n{} ({mnemonic}); a scan's results are read only through project",
                        user.index()
                    ),
                );
            }
        }
    }

    /// Invariant 10.
    fn check_scan(&mut self, scan: &ScanOp, operands: &[NodeId]) -> Vec<String> {
        let mut problems = Vec::new();
        let body = &*scan.body;

        if self.depth >= MAX_NESTING_DEPTH {
            problems.push(format!(
                "scan bodies nested more than {MAX_NESTING_DEPTH} deep"
            ));
            return problems;
        }
        let mut body_verifier = Verifier {
            graph: body,
            errors: Vec::new(),
            depth: self.depth + 1,
        };
        body_verifier.verify_graph();
        for error in body_verifier.errors {
            problems.push(format!("in the body: {error}"));
        }

        if let Some(length) = scan.length.as_const() {
            if length < 0 {
                problems.push(format!("length {length} is negative"));
            }
        }
        if scan.result_types.len() < scan.n_carry {
            problems.push(format!(
                "{} result types but {} carried states (the final states are results)",
                scan.result_types.len(),
                scan.n_carry
            ));
            return problems;
        }
        let stacked_count = scan.result_types.len() - scan.n_carry;
        if body.inputs.len() != operands.len() {
            problems.push(format!(
                "the body has {} inputs but the scan has {} operands ({} carried, {} sequences, {} captured)",
                body.inputs.len(),
                operands.len(),
                scan.n_carry,
                scan.n_sequences,
                operands.len().saturating_sub(scan.n_carry.saturating_add(scan.n_sequences))
            ));
        }
        if body.outputs.len() != scan.result_types.len() {
            problems.push(format!(
                "the body has {} outputs but the scan needs {} ({} carried, {} stacked)",
                body.outputs.len(),
                scan.result_types.len(),
                scan.n_carry,
                stacked_count
            ));
        }

        let graph = self.graph;
        // Missing or dangling body ids are reported by the body's own verification; here they
        // just skip the type comparisons.
        let body_input_type = |position: usize| {
            body.inputs
                .get(position)
                .filter(|&&input| body.contains(input))
                .map(|&input| &body.node(input).ty)
        };
        let body_output_type = |position: usize| {
            body.outputs
                .get(position)
                .filter(|&&output| body.contains(output))
                .map(|&output| &body.node(output).ty)
        };

        for (position, &operand) in operands.iter().enumerate() {
            let operand_type = &graph.node(operand).ty;
            if position < scan.n_carry {
                let result_type = &scan.result_types[position];
                if types_differ(operand_type, result_type) {
                    problems.push(format!(
                        "carried state {position}: initial value {operand_type} differs from result type {result_type}"
                    ));
                }
                if let Some(input_type) = body_input_type(position) {
                    if types_differ(operand_type, input_type) {
                        problems.push(format!(
                            "carried state {position}: initial value {operand_type} differs from body input {input_type}"
                        ));
                    }
                }
                if let Some(output_type) = body_output_type(position) {
                    if types_differ(operand_type, output_type) {
                        problems.push(format!(
                            "carried state {position}: initial value {operand_type} differs from body output {output_type}"
                        ));
                    }
                }
            } else if position < scan.n_carry.saturating_add(scan.n_sequences) {
                let sequence = position - scan.n_carry;
                if scan.axis >= operand_type.rank() {
                    problems.push(format!(
                        "sequence {sequence}: axis {} is out of range for {operand_type}",
                        scan.axis
                    ));
                    continue;
                }
                let size = &operand_type.shape[scan.axis];
                if dims_differ(size, &scan.length) {
                    problems.push(format!(
                        "sequence {sequence}: {operand_type} has size {size} along axis {}, not the length {}",
                        scan.axis, scan.length
                    ));
                }
                let mut slice_shape = operand_type.shape.clone();
                slice_shape.remove(scan.axis);
                let slice_type = TensorType::new(operand_type.dtype, slice_shape);
                if let Some(input_type) = body_input_type(position) {
                    if types_differ(&slice_type, input_type) {
                        problems.push(format!(
                            "sequence {sequence}: body input {input_type} is not the slice type {slice_type}"
                        ));
                    }
                }
            } else if let Some(input_type) = body_input_type(position) {
                if types_differ(operand_type, input_type) {
                    let capture = position - scan.n_carry - scan.n_sequences;
                    problems.push(format!(
                        "capture {capture}: body input {input_type} differs from {operand_type}"
                    ));
                }
            }
        }

        for stacked in 0..stacked_count {
            let position = scan.n_carry + stacked;
            let result_type = &scan.result_types[position];
            let Some(step_type) = body_output_type(position) else {
                continue;
            };
            if scan.axis > step_type.rank() {
                problems.push(format!(
                    "stacked result {stacked}: axis {} is out of range for the per-step type {step_type}",
                    scan.axis
                ));
                continue;
            }
            let mut stacked_shape = step_type.shape.clone();
            stacked_shape.insert(scan.axis, scan.length.clone());
            let expected = TensorType::new(step_type.dtype, stacked_shape);
            if types_differ(&expected, result_type) {
                problems.push(format!(
                    "stacked result {stacked}: result type {result_type} is not the per-step type {step_type} \
                     stacked along axis {} ({expected})",
                    scan.axis
                ));
            }
        }
        problems
    }
}

// --- Symbolic comparisons.

/// Whether two dims are known to differ. Polynomials in normal form are equal exactly when they
/// are the same function, so for them a normal-form difference is a real difference. Floor
/// divisions break that (`(B + 2) / 2` and `B / 2 + 1` are the same function with different
/// normal forms), so when one appears the dims must also evaluate differently somewhere.
fn dims_differ(left: &Dim, right: &Dim) -> bool {
    if left == right {
        return false;
    }
    if !mentions_floor_division(left) && !mentions_floor_division(right) {
        return true;
    }
    let mut symbols = left.symbols();
    symbols.extend(right.symbols());
    symbols.sort();
    symbols.dedup();
    // A few assignments of distinct small sizes; one disagreement is proof enough.
    let assignments: [fn(i64) -> i64; 4] = [|_| 1, |i| 2 + i, |i| 7 + 3 * i, |i| 64 + 5 * i];
    assignments.iter().any(|value_of| {
        let bindings: HashMap<String, i64> = symbols
            .iter()
            .enumerate()
            .map(|(i, symbol)| (symbol.clone(), value_of(i as i64)))
            .collect();
        match (left.eval(&bindings), right.eval(&bindings)) {
            (Ok(Some(a)), Ok(Some(b))) => a != b,
            _ => false,
        }
    })
}

/// Floor divisions are the only atoms whose display contains `/` (symbols are identifiers).
fn mentions_floor_division(dim: &Dim) -> bool {
    dim.to_string().contains('/')
}

fn shapes_differ(left: &[Dim], right: &[Dim]) -> bool {
    left.len() != right.len() || left.iter().zip(right).any(|(a, b)| dims_differ(a, b))
}

fn types_differ(left: &TensorType, right: &TensorType) -> bool {
    left.dtype != right.dtype || shapes_differ(&left.shape, &right.shape)
}

/// The number of elements of a shape, or `None` on overflow.
fn element_count(shape: &[Dim]) -> Option<Dim> {
    shape
        .iter()
        .try_fold(Dim::constant(1), |product, dim| product.mul(dim).ok())
}

fn shape_text(shape: &[Dim]) -> String {
    super::dim::format_shape(shape)
}

/// Why `operand` does not broadcast to `result`, if it does not.
fn broadcast_problem(operand: &[Dim], result: &[Dim]) -> Option<String> {
    if operand.len() > result.len() {
        return Some(format!(
            "its rank {} exceeds the result rank {}",
            operand.len(),
            result.len()
        ));
    }
    let offset = result.len() - operand.len();
    for (axis, dim) in operand.iter().enumerate() {
        let target = &result[offset + axis];
        if dim.as_const() != Some(1) && dims_differ(dim, target) {
            return Some(format!(
                "dimension {axis} is {dim}, neither the result's {target} nor 1"
            ));
        }
    }
    None
}

/// Each operand must broadcast to the result shape.
fn elementwise_shape_problems(operands: &[&TensorType], result: &TensorType) -> Vec<String> {
    operands
        .iter()
        .enumerate()
        .filter_map(|(position, operand)| {
            broadcast_problem(&operand.shape, &result.shape).map(|why| {
                format!(
                    "operand {position} of type {operand} does not broadcast to {result}: {why}"
                )
            })
        })
        .collect()
}

/// Each operand must have the result's dtype.
fn same_dtype_problems(operands: &[&TensorType], result: &TensorType) -> Vec<String> {
    operands
        .iter()
        .enumerate()
        .filter(|(_, operand)| operand.dtype != result.dtype)
        .map(|(position, operand)| {
            format!(
                "dtype mismatch: operand {position} is {} but the result is {}",
                operand.dtype, result.dtype
            )
        })
        .collect()
}

/// Why a shape-preserving op's result differs from its operand, if it does.
fn same_type_problems(operand: &TensorType, result: &TensorType) -> Vec<String> {
    if types_differ(operand, result) {
        vec![format!(
            "result type {result} differs from operand type {operand}"
        )]
    } else {
        Vec::new()
    }
}

// --- Per-op checks. Each returns the problems it finds; none indexes past what it checked.

fn check_unary(op: UnaryOp, operand: &TensorType, result: &TensorType) -> Vec<String> {
    let mut problems = Vec::new();
    let transcendental = matches!(
        op,
        UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Erf
            | UnaryOp::Sin
            | UnaryOp::Cos
    );
    if op == UnaryOp::Not {
        if operand.dtype != DType::Bool || result.dtype != DType::Bool {
            problems.push(format!(
                "dtype mismatch: not takes and returns bool, got {} -> {}",
                operand.dtype, result.dtype
            ));
        }
    } else if operand.dtype != result.dtype {
        problems.push(format!(
            "dtype mismatch: operand is {} but the result is {}",
            operand.dtype, result.dtype
        ));
    } else if transcendental && operand.dtype != DType::F32 {
        problems.push(format!("dtype mismatch: needs f32, got {}", operand.dtype));
    } else if operand.dtype == DType::Bool {
        problems.push("dtype mismatch: needs a numeric dtype, got bool".to_string());
    }
    problems.extend(elementwise_shape_problems(&[operand], result));
    problems
}

fn check_binary(
    op: BinaryOp,
    left: &TensorType,
    right: &TensorType,
    result: &TensorType,
) -> Vec<String> {
    let mut problems = Vec::new();
    if op.is_comparison() {
        if left.dtype != right.dtype {
            problems.push(format!(
                "dtype mismatch: compares {} with {}",
                left.dtype, right.dtype
            ));
        }
        if result.dtype != DType::Bool {
            problems.push(format!(
                "dtype mismatch: a comparison returns bool, not {}",
                result.dtype
            ));
        }
    } else if op.is_logical() {
        if left.dtype != DType::Bool || right.dtype != DType::Bool || result.dtype != DType::Bool {
            problems.push(format!(
                "dtype mismatch: takes and returns bool, got {}, {} -> {}",
                left.dtype, right.dtype, result.dtype
            ));
        }
    } else {
        problems.extend(same_dtype_problems(&[left, right], result));
        if problems.is_empty() && result.dtype == DType::Bool {
            problems.push("dtype mismatch: arithmetic needs a numeric dtype, got bool".to_string());
        }
    }
    problems.extend(elementwise_shape_problems(&[left, right], result));
    problems
}

fn check_select(
    condition: &TensorType,
    if_true: &TensorType,
    if_false: &TensorType,
    result: &TensorType,
) -> Vec<String> {
    let mut problems = Vec::new();
    if condition.dtype != DType::Bool {
        problems.push(format!(
            "dtype mismatch: the condition is {}, not bool",
            condition.dtype
        ));
    }
    for (name, branch) in [("if_true", if_true), ("if_false", if_false)] {
        if branch.dtype != result.dtype {
            problems.push(format!(
                "dtype mismatch: {name} is {} but the result is {}",
                branch.dtype, result.dtype
            ));
        }
    }
    problems.extend(elementwise_shape_problems(
        &[condition, if_true, if_false],
        result,
    ));
    problems
}

/// The shape left by reducing `axes` (sorted, in range) of `shape`.
fn reduced_shape(shape: &[Dim], axes: &[usize], keep_dims: bool) -> Vec<Dim> {
    shape
        .iter()
        .enumerate()
        .filter_map(|(axis, dim)| match (axes.contains(&axis), keep_dims) {
            (false, _) => Some(dim.clone()),
            (true, true) => Some(Dim::constant(1)),
            (true, false) => None,
        })
        .collect()
}

fn check_reduce(
    axes: &[usize],
    keep_dims: bool,
    operand: &TensorType,
    result: &TensorType,
) -> Vec<String> {
    let mut problems = Vec::new();
    if operand.dtype != result.dtype {
        problems.push(format!(
            "dtype mismatch: operand is {} but the result is {}",
            operand.dtype, result.dtype
        ));
    }
    if let Some(axis) = axes.iter().find(|&&axis| axis >= operand.rank()) {
        problems.push(format!(
            "axis {axis} is out of range for operand type {operand}"
        ));
        return problems;
    }
    if axes.windows(2).any(|pair| pair[0] >= pair[1]) {
        problems.push(format!("axes {axes:?} are not sorted and unique"));
        return problems;
    }
    let expected = reduced_shape(&operand.shape, axes, keep_dims);
    if shapes_differ(&expected, &result.shape) {
        problems.push(format!(
            "result shape {} should be {} (reducing axes {axes:?} of {operand})",
            shape_text(&result.shape),
            shape_text(&expected)
        ));
    }
    problems
}

fn check_argmax(
    axis: usize,
    keep_dims: bool,
    operand: &TensorType,
    result: &TensorType,
) -> Vec<String> {
    let mut problems = Vec::new();
    if result.dtype != DType::I64 {
        problems.push(format!(
            "dtype mismatch: returns i64 indices, not {}",
            result.dtype
        ));
    }
    if axis >= operand.rank() {
        problems.push(format!(
            "axis {axis} is out of range for operand type {operand}"
        ));
        return problems;
    }
    let expected = reduced_shape(&operand.shape, &[axis], keep_dims);
    if shapes_differ(&expected, &result.shape) {
        problems.push(format!(
            "result shape {} should be {}",
            shape_text(&result.shape),
            shape_text(&expected)
        ));
    }
    problems
}

fn check_reshape(operand: &TensorType, result: &TensorType) -> Vec<String> {
    let mut problems = same_dtype_problems(&[operand], result);
    // An overflowing product cannot be compared; the type checker reports overflow where it arises.
    if let (Some(from), Some(to)) = (element_count(&operand.shape), element_count(&result.shape)) {
        if dims_differ(&from, &to) {
            problems.push(format!(
                "element count changes from {from} ({operand}) to {to} ({result})"
            ));
        }
    }
    problems
}

fn check_permute(perm: &[usize], operand: &TensorType, result: &TensorType) -> Vec<String> {
    let mut problems = same_dtype_problems(&[operand], result);
    let mut seen = vec![false; perm.len()];
    let is_permutation = perm.len() == operand.rank()
        && perm
            .iter()
            .all(|&axis| axis < seen.len() && !std::mem::replace(&mut seen[axis], true));
    if !is_permutation {
        problems.push(format!(
            "perm {perm:?} is not a permutation of the {} axes of {operand}",
            operand.rank()
        ));
        return problems;
    }
    let expected: Vec<Dim> = perm
        .iter()
        .map(|&axis| operand.shape[axis].clone())
        .collect();
    if shapes_differ(&expected, &result.shape) {
        problems.push(format!(
            "result shape {} should be {} (perm {perm:?} of {operand})",
            shape_text(&result.shape),
            shape_text(&expected)
        ));
    }
    problems
}

fn check_slice(
    axis: usize,
    start: &Dim,
    step: i64,
    operand: &TensorType,
    result: &TensorType,
) -> Vec<String> {
    let mut problems = same_dtype_problems(&[operand], result);
    if step == 0 {
        problems.push("step is 0".to_string());
    }
    if axis >= operand.rank() {
        problems.push(format!(
            "axis {axis} is out of range for operand type {operand}"
        ));
        return problems;
    }
    if operand.rank() != result.rank() {
        problems.push(format!(
            "result rank {} differs from operand rank {}",
            result.rank(),
            operand.rank()
        ));
        return problems;
    }
    for (other_axis, (from, to)) in operand.shape.iter().zip(&result.shape).enumerate() {
        if other_axis != axis && dims_differ(from, to) {
            problems.push(format!("dimension {other_axis} changes from {from} to {to}, but only axis {axis} is sliced"));
        }
    }
    // When everything is constant, the first and last index read must exist.
    if let (Some(size), Some(start), Some(count)) = (
        operand.shape[axis].as_const(),
        start.as_const(),
        result.shape[axis].as_const(),
    ) {
        if count > 0 && step != 0 {
            let last = (count - 1)
                .checked_mul(step)
                .and_then(|offset| offset.checked_add(start));
            match last {
                Some(last) if (0..size).contains(&start) && (0..size).contains(&last) => {}
                _ => problems.push(format!(
                    "{count} elements from {start} in steps of {step} leave the {size} elements of axis {axis}"
                )),
            }
        }
    }
    problems
}

fn check_concat(axis: usize, operands: &[&TensorType], result: &TensorType) -> Vec<String> {
    let mut problems = same_dtype_problems(operands, result);
    if axis >= result.rank() {
        problems.push(format!(
            "axis {axis} is out of range for result type {result}"
        ));
        return problems;
    }
    let mut total = Some(Dim::constant(0));
    for (position, operand) in operands.iter().enumerate() {
        if operand.rank() != result.rank() {
            problems.push(format!(
                "operand {position} has rank {}, the result {}",
                operand.rank(),
                result.rank()
            ));
            return problems;
        }
        for (other_axis, (from, to)) in operand.shape.iter().zip(&result.shape).enumerate() {
            if other_axis != axis && dims_differ(from, to) {
                problems.push(format!(
                    "operand {position} has {from} on axis {other_axis}, the result {to}"
                ));
            }
        }
        total = total.and_then(|sum| sum.add(&operand.shape[axis]).ok());
    }
    if let Some(total) = total {
        if dims_differ(&total, &result.shape[axis]) {
            problems.push(format!(
                "operand sizes along axis {axis} sum to {total}, not {}",
                result.shape[axis]
            ));
        }
    }
    problems
}

fn f32_problems(what: &[(&str, &TensorType)]) -> Vec<String> {
    what.iter()
        .filter(|(_, ty)| ty.dtype != DType::F32)
        .map(|(name, ty)| format!("dtype mismatch: the {name} is {}, not f32", ty.dtype))
        .collect()
}

fn check_matmul(left: &TensorType, right: &TensorType, result: &TensorType) -> Vec<String> {
    let mut problems = f32_problems(&[
        ("left operand", left),
        ("right operand", right),
        ("result", result),
    ]);
    if left.rank() < 2 || right.rank() < 2 {
        problems.push(format!(
            "operands {left} and {right} must both have rank at least 2"
        ));
        return problems;
    }
    let expected_rank = left.rank().max(right.rank());
    if result.rank() != expected_rank {
        problems.push(format!(
            "result rank {} should be {expected_rank}",
            result.rank()
        ));
        return problems;
    }
    let (left_batch, left_matrix) = left.shape.split_at(left.rank() - 2);
    let (right_batch, right_matrix) = right.shape.split_at(right.rank() - 2);
    let (result_batch, result_matrix) = result.shape.split_at(result.rank() - 2);
    if dims_differ(&left_matrix[1], &right_matrix[0]) {
        problems.push(format!(
            "contracted dimensions differ: {} (last of {left}) and {} (second to last of {right})",
            left_matrix[1], right_matrix[0]
        ));
    }
    if dims_differ(&result_matrix[0], &left_matrix[0])
        || dims_differ(&result_matrix[1], &right_matrix[1])
    {
        problems.push(format!(
            "result matrix [{}, {}] should be [{}, {}]",
            result_matrix[0], result_matrix[1], left_matrix[0], right_matrix[1]
        ));
    }
    for (name, batch) in [("left", left_batch), ("right", right_batch)] {
        if let Some(why) = broadcast_problem(batch, result_batch) {
            problems.push(format!(
                "{name} batch dimensions {} do not broadcast to {}: {why}",
                shape_text(batch),
                shape_text(result_batch)
            ));
        }
    }
    problems
}

/// PyTorch's output size of a convolution or pooling window:
/// `floor((input + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1`.
/// `None` when an attribute does not fit an `i64` or the arithmetic overflows.
fn window_output_size(
    input: &Dim,
    kernel: &Dim,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<Dim> {
    let stride = i64::try_from(stride).ok()?;
    let padding = i64::try_from(padding).ok()?.checked_mul(2)?;
    let dilation = i64::try_from(dilation).ok()?;
    let effective_kernel = kernel
        .sub(&Dim::constant(1))
        .ok()?
        .mul(&Dim::constant(dilation))
        .ok()?;
    input
        .add(&Dim::constant(padding))
        .ok()?
        .sub(&effective_kernel)
        .ok()?
        .sub(&Dim::constant(1))
        .ok()?
        .floor_div(stride)
        .ok()?
        .add(&Dim::constant(1))
        .ok()
}

fn check_conv2d(
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    operands: &[&TensorType],
    result: &TensorType,
) -> Vec<String> {
    let (input, weight) = (operands[0], operands[1]);
    let bias = operands.get(2).copied();
    let mut named = vec![("input", input), ("weight", weight), ("result", result)];
    named.extend(bias.map(|bias| ("bias", bias)));
    let mut problems = f32_problems(&named);
    if stride.contains(&0) || dilation.contains(&0) || groups == 0 {
        problems.push(format!(
            "stride {stride:?}, dilation {dilation:?} and groups {groups} must be positive"
        ));
        return problems;
    }
    if input.rank() != 4 || weight.rank() != 4 || result.rank() != 4 {
        problems.push(format!(
            "input {input}, weight {weight} and result {result} must all have rank 4"
        ));
        return problems;
    }
    let groups_dim = Dim::constant(i64::try_from(groups).unwrap_or(i64::MAX));
    if let Ok(channels) = weight.shape[1].mul(&groups_dim) {
        if dims_differ(&input.shape[1], &channels) {
            problems.push(format!(
                "input channels {} should be weight[1] * groups = {} * {groups}",
                input.shape[1], weight.shape[1]
            ));
        }
    }
    if let Some(out_channels) = weight.shape[0].as_const() {
        if out_channels % groups_dim.as_const().unwrap_or(1) != 0 {
            problems.push(format!(
                "output channels {out_channels} are not divisible by groups {groups}"
            ));
        }
    }
    let mut expected = vec![input.shape[0].clone(), weight.shape[0].clone()];
    for spatial in 0..2 {
        match window_output_size(
            &input.shape[2 + spatial],
            &weight.shape[2 + spatial],
            stride[spatial],
            padding[spatial],
            dilation[spatial],
        ) {
            Some(size) => expected.push(size),
            // Unrepresentable: compare against the result itself, i.e. skip this dimension.
            None => expected.push(result.shape[2 + spatial].clone()),
        }
    }
    if shapes_differ(&expected, &result.shape) {
        problems.push(format!(
            "result shape {} should be {}",
            shape_text(&result.shape),
            shape_text(&expected)
        ));
    }
    if let Some(bias) = bias {
        if bias.rank() != 1 || dims_differ(&bias.shape[0], &weight.shape[0]) {
            problems.push(format!("bias {bias} should be [{}]", weight.shape[0]));
        }
    }
    problems
}

fn check_pool2d(
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    operand: &TensorType,
    result: &TensorType,
) -> Vec<String> {
    let mut problems = f32_problems(&[("operand", operand), ("result", result)]);
    if kernel.contains(&0) || stride.contains(&0) {
        problems.push(format!(
            "kernel {kernel:?} and stride {stride:?} must be positive"
        ));
        return problems;
    }
    if operand.rank() != 4 || result.rank() != 4 {
        problems.push(format!(
            "operand {operand} and result {result} must have rank 4"
        ));
        return problems;
    }
    let mut expected = vec![operand.shape[0].clone(), operand.shape[1].clone()];
    for spatial in 0..2 {
        let kernel_dim = Dim::constant(i64::try_from(kernel[spatial]).unwrap_or(i64::MAX));
        match window_output_size(
            &operand.shape[2 + spatial],
            &kernel_dim,
            stride[spatial],
            padding[spatial],
            1,
        ) {
            Some(size) => expected.push(size),
            None => expected.push(result.shape[2 + spatial].clone()),
        }
    }
    if shapes_differ(&expected, &result.shape) {
        problems.push(format!(
            "result shape {} should be {}",
            shape_text(&result.shape),
            shape_text(&expected)
        ));
    }
    problems
}

fn check_gather(
    axis: usize,
    table: &TensorType,
    indices: &TensorType,
    result: &TensorType,
) -> Vec<String> {
    let mut problems = Vec::new();
    if indices.dtype != DType::I64 {
        problems.push(format!(
            "dtype mismatch: indices are {}, not i64",
            indices.dtype
        ));
    }
    if table.dtype != result.dtype {
        problems.push(format!(
            "dtype mismatch: the table is {} but the result is {}",
            table.dtype, result.dtype
        ));
    }
    if axis >= table.rank() {
        problems.push(format!(
            "axis {axis} is out of range for table type {table}"
        ));
        return problems;
    }
    let mut expected: Vec<Dim> = table.shape[..axis].to_vec();
    expected.extend(indices.shape.iter().cloned());
    expected.extend(table.shape[axis + 1..].iter().cloned());
    if shapes_differ(&expected, &result.shape) {
        problems.push(format!(
            "result shape {} should be {}",
            shape_text(&result.shape),
            shape_text(&expected)
        ));
    }
    problems
}

fn check_random_uniform(seed: &TensorType, result: &TensorType) -> Vec<String> {
    let mut problems = f32_problems(&[("result", result)]);
    if seed.dtype != DType::I64 || seed.rank() != 0 {
        problems.push(format!("the seed is {seed}, not an i64 scalar"));
    }
    problems
}

fn check_batch_norm(
    eps: f64,
    momentum: f64,
    types: &[&TensorType],
    result: &TensorType,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !(eps.is_finite() && eps >= 0.0) {
        problems.push(format!("eps {eps} is not a finite number >= 0"));
    }
    if !(0.0..=1.0).contains(&momentum) {
        problems.push(format!("momentum {momentum} is not between 0 and 1"));
    }
    let x = types[0];
    problems.extend(f32_problems(&[("input", x)]));
    problems.extend(same_type_problems(x, result));
    if x.rank() < 2 {
        problems.push(format!("the input {x} has rank below 2 (no channel axis)"));
        return problems;
    }
    let channels = [x.shape[1].clone()];
    for (name, ty) in ["weight", "bias", "running_mean", "running_var"]
        .into_iter()
        .zip(&types[1..5])
    {
        problems.extend(f32_problems(&[(name, ty)]));
        if shapes_differ(&ty.shape, &channels) {
            problems.push(format!(
                "the {name} has shape {}, not {}",
                shape_text(&ty.shape),
                shape_text(&channels)
            ));
        }
    }
    if let Some(counter) = types.get(5) {
        if counter.dtype != DType::I64 || counter.rank() != 0 {
            problems.push(format!(
                "num_batches_tracked is {counter}, not an i64 scalar"
            ));
        }
    }
    problems
}

fn check_dropout(rate: f64, operand: &TensorType, result: &TensorType) -> Vec<String> {
    let mut problems = Vec::new();
    if !(0.0..=1.0).contains(&rate) {
        problems.push(format!("rate {rate} is not between 0 and 1"));
    }
    problems.extend(same_type_problems(operand, result));
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Init, Literal, ReduceOp};
    use crate::source::Span;

    fn batch() -> Dim {
        Dim::symbol("B")
    }

    fn constant(value: i64) -> Dim {
        Dim::constant(value)
    }

    fn f32_type(shape: &[Dim]) -> TensorType {
        TensorType::new(DType::F32, shape.to_vec())
    }

    fn input(graph: &mut Graph, name: &str, ty: TensorType) -> NodeId {
        let index = graph.inputs.len();
        let id = graph.add(
            Op::Input {
                index,
                name: name.into(),
            },
            ty,
            Span::DUMMY,
            &[],
        );
        graph.inputs.push(id);
        id
    }

    fn param(graph: &mut Graph, name: &str, ty: TensorType) -> NodeId {
        graph.add(
            Op::Param {
                name: name.into(),
                init: Init::Zeros,
            },
            ty,
            Span::DUMMY,
            &[],
        )
    }

    /// Asserts that verification fails with some message containing `needle`.
    #[track_caller]
    fn assert_rejected(graph: &Graph, needle: &str) {
        match verify(graph) {
            Ok(()) => panic!("expected a verification error mentioning {needle:?}"),
            Err(errors) => {
                let messages: Vec<String> = errors.iter().map(|error| error.to_string()).collect();
                assert!(
                    messages.iter().any(|message| message.contains(needle)),
                    "no error mentions {needle:?}: {messages:#?}"
                );
            }
        }
    }

    #[track_caller]
    fn assert_accepted(graph: &Graph) {
        if let Err(errors) = verify(graph) {
            let messages: Vec<String> = errors.iter().map(|error| error.to_string()).collect();
            panic!("expected a valid graph: {messages:#?}");
        }
    }

    /// `[B, 1] + [1, 4] -> [B, 4]`.
    fn broadcast_add_graph() -> Graph {
        let mut graph = Graph::new();
        let column = input(&mut graph, "column", f32_type(&[batch(), constant(1)]));
        let row = param(&mut graph, "row", f32_type(&[constant(1), constant(4)]));
        let sum = graph.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[batch(), constant(4)]),
            Span::DUMMY,
            &[column, row],
        );
        graph.outputs = vec![sum];
        graph
    }

    /// `x: [B, 784] @ w: [784, 512] -> [B, 512]`, then `reduce_sum` over axis 1 with kept dims.
    fn matmul_reduce_graph() -> Graph {
        let mut graph = Graph::new();
        let x = input(&mut graph, "x", f32_type(&[batch(), constant(784)]));
        let w = param(&mut graph, "w", f32_type(&[constant(784), constant(512)]));
        let product = graph.add(
            Op::MatMul,
            f32_type(&[batch(), constant(512)]),
            Span::DUMMY,
            &[x, w],
        );
        let total = graph.add(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![1],
                keep_dims: true,
            },
            f32_type(&[batch(), constant(1)]),
            Span::DUMMY,
            &[product],
        );
        graph.outputs = vec![total];
        graph
    }

    /// A running sum over `xs: [T, B, 4]` carrying `h: [B, 4]`; outputs the final state and the
    /// stacked states.
    fn scan_graph(project_index: usize) -> Graph {
        let state = || f32_type(&[batch(), constant(4)]);
        let time = Dim::symbol("T");
        let sequence_type = f32_type(&[time.clone(), batch(), constant(4)]);

        let mut body = Graph::new();
        let h = input(&mut body, "h", state());
        let x = input(&mut body, "x", state());
        let next = body.add(Op::Binary(BinaryOp::Add), state(), Span::DUMMY, &[h, x]);
        body.outputs = vec![next, next];

        let mut graph = Graph::new();
        let initial = input(&mut graph, "h0", state());
        let sequence = input(&mut graph, "xs", sequence_type.clone());
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
        let project_type = if project_index == 0 {
            state()
        } else {
            sequence_type
        };
        let result = graph.add(
            Op::Project {
                index: project_index,
            },
            project_type,
            Span::DUMMY,
            &[scan],
        );
        graph.outputs = vec![result];
        graph
    }

    #[test]
    fn accepts_valid_graphs() {
        assert_accepted(&broadcast_add_graph());
        assert_accepted(&matmul_reduce_graph());
        assert_accepted(&scan_graph(0));
        assert_accepted(&scan_graph(1));
        assert_accepted(&Graph::new());
    }

    #[test]
    fn accepts_movement_and_window_ops() {
        let mut graph = Graph::new();
        let image = input(
            &mut graph,
            "image",
            f32_type(&[batch(), constant(3), constant(32), constant(32)]),
        );
        let weight = param(
            &mut graph,
            "conv.weight",
            f32_type(&[constant(8), constant(3), constant(3), constant(3)]),
        );
        let bias = param(&mut graph, "conv.bias", f32_type(&[constant(8)]));
        let features = graph.add(
            Op::Conv2d {
                stride: [2, 2],
                padding: [1, 1],
                dilation: [1, 1],
                groups: 1,
            },
            f32_type(&[batch(), constant(8), constant(16), constant(16)]),
            Span::DUMMY,
            &[image, weight, bias],
        );
        let pooled = graph.add(
            Op::Pool2d {
                kind: crate::ir::PoolKind::Max,
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            },
            f32_type(&[batch(), constant(8), constant(8), constant(8)]),
            Span::DUMMY,
            &[features],
        );
        let flat = graph.add(
            Op::Reshape,
            f32_type(&[batch(), constant(512)]),
            Span::DUMMY,
            &[pooled],
        );
        let transposed = graph.add(
            Op::Permute { perm: vec![1, 0] },
            f32_type(&[constant(512), batch()]),
            Span::DUMMY,
            &[flat],
        );
        let halves = graph.add(
            Op::Slice {
                axis: 0,
                start: constant(256),
                step: 1,
            },
            f32_type(&[constant(256), batch()]),
            Span::DUMMY,
            &[transposed],
        );
        let joined = graph.add(
            Op::Concat { axis: 0 },
            f32_type(&[constant(768), batch()]),
            Span::DUMMY,
            &[transposed, halves],
        );
        let tokens = input(
            &mut graph,
            "tokens",
            TensorType::new(DType::I64, vec![batch(), Dim::symbol("T")]),
        );
        let table = param(
            &mut graph,
            "embedding",
            f32_type(&[constant(100), constant(16)]),
        );
        let embedded = graph.add(
            Op::Gather { axis: 0 },
            f32_type(&[batch(), Dim::symbol("T"), constant(16)]),
            Span::DUMMY,
            &[table, tokens],
        );
        let best = graph.add(
            Op::ArgMax {
                axis: 2,
                keep_dims: false,
            },
            TensorType::new(DType::I64, vec![batch(), Dim::symbol("T")]),
            Span::DUMMY,
            &[embedded],
        );
        graph.outputs = vec![joined, best];
        assert_accepted(&graph);
    }

    #[test]
    fn strided_convolution_over_symbolic_sizes_is_accepted() {
        // PyTorch's size is floor((H + 2 - 3) / 2) + 1 = (H - 1) / 2 + 1; the checker may well
        // have built the equal `(H + 1) / 2` instead, whose normal form differs.
        let height = Dim::symbol("H");
        let expected = height.add(&constant(1)).unwrap().floor_div(2).unwrap();
        let mut graph = Graph::new();
        let image = input(
            &mut graph,
            "image",
            f32_type(&[batch(), constant(3), height.clone(), height.clone()]),
        );
        let weight = param(
            &mut graph,
            "w",
            f32_type(&[constant(8), constant(3), constant(3), constant(3)]),
        );
        let features = graph.add(
            Op::Conv2d {
                stride: [2, 2],
                padding: [1, 1],
                dilation: [1, 1],
                groups: 1,
            },
            f32_type(&[batch(), constant(8), expected.clone(), expected]),
            Span::DUMMY,
            &[image, weight],
        );
        graph.outputs = vec![features];
        assert_accepted(&graph);

        // `H / 2` differs from `(H + 1) / 2` for odd H, so it is reported.
        let halved = height.floor_div(2).unwrap();
        graph.node_mut(features).ty = f32_type(&[batch(), constant(8), halved.clone(), halved]);
        assert_rejected(
            &graph,
            "conv2d: result shape [B, 8, (H) / 2, (H) / 2] should be",
        );
    }

    #[test]
    fn rejects_wrong_operand_count() {
        let mut graph = Graph::new();
        let x = input(&mut graph, "x", f32_type(&[batch()]));
        let sum = graph.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[batch()]),
            Span::DUMMY,
            &[x],
        );
        graph.outputs = vec![sum];
        assert_rejected(&graph, "add: expects exactly 2 operands, got 1");
        let errors = verify(&graph).unwrap_err();
        assert_eq!(errors[0].node, Some(sum));
    }

    #[test]
    fn rejects_operand_position_gaps() {
        let mut graph = Graph::new();
        let x = input(&mut graph, "x", f32_type(&[batch()]));
        let w = param(&mut graph, "w", f32_type(&[batch()]));
        let sum = graph.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[batch()]),
            Span::DUMMY,
            &[w, x],
        );
        graph.outputs = vec![sum];
        // Removing the first operand leaves the add with an edge at position 1 only.
        graph.remove(w);
        assert_rejected(
            &graph,
            "add: operand positions [1] are not 0..1 without gaps or duplicates",
        );
        assert_rejected(&graph, "add: expects exactly 2 operands, got 1");
        assert!(verify(&graph)
            .unwrap_err()
            .iter()
            .all(|error| error.node == Some(sum)));
    }

    #[test]
    fn rejects_dtype_mismatches() {
        let mut graph = Graph::new();
        let x = input(&mut graph, "x", f32_type(&[batch()]));
        let n = input(&mut graph, "n", TensorType::new(DType::I64, vec![batch()]));
        let sum = graph.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[batch()]),
            Span::DUMMY,
            &[x, n],
        );
        let less = graph.add(
            Op::Binary(BinaryOp::Lt),
            f32_type(&[batch()]),
            Span::DUMMY,
            &[x, x],
        );
        let chosen = graph.add(Op::Select, f32_type(&[batch()]), Span::DUMMY, &[x, x, x]);
        let filled = graph.add(Op::Fill(Literal::I64(0)), f32_type(&[]), Span::DUMMY, &[]);
        graph.outputs = vec![sum, less, chosen, filled];
        assert_rejected(
            &graph,
            "add: dtype mismatch: operand 1 is i64 but the result is f32",
        );
        assert_rejected(&graph, "lt: dtype mismatch: a comparison returns bool");
        assert_rejected(
            &graph,
            "select: dtype mismatch: the condition is f32, not bool",
        );
        assert_rejected(&graph, "fill: literal 0 is i64");
    }

    #[test]
    fn rejects_bad_broadcast() {
        let mut graph = Graph::new();
        let x = input(&mut graph, "x", f32_type(&[batch(), constant(3)]));
        let y = input(&mut graph, "y", f32_type(&[constant(4)]));
        let sum = graph.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[batch(), constant(4)]),
            Span::DUMMY,
            &[x, y],
        );
        graph.outputs = vec![sum];
        assert_rejected(
            &graph,
            "operand 0 of type f32[B, 3] does not broadcast to f32[B, 4]",
        );
    }

    #[test]
    fn rejects_bad_permutation() {
        let mut graph = Graph::new();
        let x = input(&mut graph, "x", f32_type(&[batch(), constant(3)]));
        let permuted = graph.add(
            Op::Permute { perm: vec![0, 0] },
            f32_type(&[batch(), batch()]),
            Span::DUMMY,
            &[x],
        );
        let wrong_shape = graph.add(
            Op::Permute { perm: vec![1, 0] },
            f32_type(&[batch(), constant(3)]),
            Span::DUMMY,
            &[x],
        );
        graph.outputs = vec![permuted, wrong_shape];
        assert_rejected(&graph, "perm [0, 0] is not a permutation");
        assert_rejected(&graph, "result shape [B, 3] should be [3, B]");
    }

    #[test]
    fn rejects_bad_project_index_and_type() {
        assert_rejected(&scan_graph(2), "project index 2 is out of range");
        let mut graph = scan_graph(0);
        let project = graph.outputs[0];
        graph.node_mut(project).ty = f32_type(&[batch()]);
        assert_rejected(&graph, "differs from the scan's result 0 type");
    }

    #[test]
    fn rejects_inconsistent_scans() {
        // A body whose carried output has the wrong type.
        let mut graph = scan_graph(0);
        let scan = graph.operands(graph.outputs[0])[0];
        if let Op::Scan(scan_op) = &mut graph.node_mut(scan).op {
            let output = scan_op.body.outputs[0];
            scan_op.body.node_mut(output).ty = f32_type(&[batch(), constant(5)]);
        }
        assert_rejected(
            &graph,
            "carried state 0: initial value f32[B, 4] differs from body output f32[B, 5]",
        );
        // Errors inside the body are reported on the scan node.
        assert!(verify(&graph)
            .unwrap_err()
            .iter()
            .any(|error| error.node == Some(scan) && error.message.contains("in the body: ")));

        // A scan used directly by a non-project.
        let mut graph = scan_graph(0);
        let scan = graph.operands(graph.outputs[0])[0];
        let misuse = graph.add(Op::Unary(UnaryOp::Neg), f32_type(&[]), Span::DUMMY, &[scan]);
        graph.outputs.push(misuse);
        assert_rejected(&graph, "read only through project");
    }

    #[test]
    fn rejects_inputs_list_missing_an_input() {
        let mut graph = broadcast_add_graph();
        graph.inputs.clear();
        assert_rejected(
            &graph,
            "input 0 \"column\" is not listed in the graph's inputs",
        );

        let mut graph = broadcast_add_graph();
        let row = graph.params()[0].0;
        graph.inputs.push(row);
        assert_rejected(
            &graph,
            "listed at position 1 of the inputs but is not an Input op",
        );
    }

    #[test]
    fn rejects_dangling_outputs_and_cycles() {
        let mut graph = broadcast_add_graph();
        let sum = graph.outputs[0];
        graph.remove(sum);
        graph.outputs = vec![sum];
        assert_rejected(&graph, "outputs[0] refers to n2, which is not in the graph");

        let mut graph = Graph::new();
        let x = input(&mut graph, "x", f32_type(&[]));
        let first = graph.add(Op::Unary(UnaryOp::Neg), f32_type(&[]), Span::DUMMY, &[x]);
        let second = graph.add(
            Op::Unary(UnaryOp::Neg),
            f32_type(&[]),
            Span::DUMMY,
            &[first],
        );
        graph.outputs = vec![second];
        graph.replace_uses(x, second);
        assert_rejected(&graph, "the graph has a cycle");
    }

    #[test]
    fn rejects_shape_errors_of_reductions_and_contractions() {
        let mut graph = matmul_reduce_graph();
        let total = graph.outputs[0];
        graph.node_mut(total).op = Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![2],
            keep_dims: true,
        };
        assert_rejected(&graph, "axis 2 is out of range");

        let mut graph = matmul_reduce_graph();
        let product = graph.operands(graph.outputs[0])[0];
        let weight = graph.params()[0].0;
        graph.node_mut(weight).ty = f32_type(&[constant(783), constant(512)]);
        assert_rejected(&graph, "contracted dimensions differ");
        let _ = product;

        let mut graph = Graph::new();
        let x = input(&mut graph, "x", f32_type(&[batch(), constant(6)]));
        let reshaped = graph.add(
            Op::Reshape,
            f32_type(&[batch(), constant(2), constant(4)]),
            Span::DUMMY,
            &[x],
        );
        graph.outputs = vec![reshaped];
        assert_rejected(&graph, "element count changes from 6*B");
    }

    #[test]
    fn floor_division_dims_compare_by_value() {
        let height = Dim::symbol("H");
        let shifted = height.add(&constant(2)).unwrap().floor_div(2).unwrap();
        let plus_one = height.floor_div(2).unwrap().add(&constant(1)).unwrap();
        assert_ne!(shifted, plus_one, "different normal forms");
        assert!(!dims_differ(&shifted, &plus_one), "same function");
        assert!(dims_differ(&shifted, &height.floor_div(2).unwrap()));
        assert!(dims_differ(&batch(), &constant(3)));
    }

    #[test]
    fn never_panics_on_garbage() {
        // Attributes far out of range on ops with the right operand count.
        let mut graph = Graph::new();
        let x = input(&mut graph, "x", f32_type(&[]));
        for op in [
            Op::Reduce {
                op: ReduceOp::Max,
                axes: vec![usize::MAX],
                keep_dims: false,
            },
            Op::ArgMax {
                axis: 9,
                keep_dims: true,
            },
            Op::Permute {
                perm: vec![usize::MAX],
            },
            Op::Slice {
                axis: 3,
                start: constant(-1),
                step: i64::MIN,
            },
            Op::Concat { axis: 1 },
            Op::Pool2d {
                kind: crate::ir::PoolKind::Avg,
                kernel: [0, 1],
                stride: [1, 1],
                padding: [0, 0],
            },
            Op::Gather { axis: 4 },
            Op::Dropout { rate: f64::NAN },
            Op::Iota { axis: 2 },
        ] {
            let operand_count = match OperandCount::of(&op) {
                OperandCount::Exactly(count) => count,
                _ => 1,
            };
            let operands = vec![x; operand_count];
            graph.add(op, f32_type(&[constant(-2)]), Span::DUMMY, &operands);
        }
        let scan = graph.add(
            Op::Scan(ScanOp {
                body: Box::new(Graph::new()),
                n_carry: usize::MAX,
                n_sequences: usize::MAX,
                axis: usize::MAX,
                length: constant(-1),
                reverse: true,
                result_types: Vec::new(),
            }),
            f32_type(&[]),
            Span::DUMMY,
            &[x],
        );
        graph.outputs = vec![scan];
        let errors = verify(&graph).unwrap_err();
        assert!(errors.len() > 10, "{errors:#?}");
    }
}
