//! The evaluator: binds the inputs' symbolic dims, walks the graph in topological order and runs
//! one [`kernels`] function per node.
//!
//! This is the oracle every backend is tested against, so it checks everything it can and never
//! panics, whatever graph it is given: a malformed graph, a missing parameter or a bad input
//! becomes an [`EvalError`] pointing at the node's source span.
//!
//! Only the nodes the outputs depend on are evaluated, and each intermediate tensor is dropped
//! as soon as its last user has run.

use super::kernels::{self, Conv2dAttributes};
use super::tensor::{element_count, Tensor};
use crate::diag::Diagnostic;
use crate::ir::{Dim, Graph, Node, NodeId, Op, ScanOp};
use crate::source::Span;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Symbol values, e.g. `B = 32`.
pub type Bindings = HashMap<String, i64>;

/// Limits that keep a bad graph or input from exhausting memory.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// The most elements any one intermediate or output tensor may have.
    pub max_elements: usize,
}

impl Default for EvalOptions {
    fn default() -> EvalOptions {
        EvalOptions {
            max_elements: 1 << 31,
        }
    }
}

/// Why evaluation failed, at which node.
#[derive(Debug, Clone)]
pub struct EvalError {
    /// `"runtime-error"`, `"input-mismatch"` or `"tensor-too-large"`.
    pub code: &'static str,
    pub message: String,
    /// The source span of the node (or input) at fault; `Span::DUMMY` when there is none.
    pub span: Span,
}

/// A failure while evaluating a node: bad operand, index out of range, malformed graph.
pub const RUNTIME_ERROR: &str = "runtime-error";
/// The inputs do not match the forward signature.
pub const INPUT_MISMATCH: &str = "input-mismatch";
/// A tensor would have more than [`EvalOptions::max_elements`] elements.
pub const TENSOR_TOO_LARGE: &str = "tensor-too-large";

impl EvalError {
    /// A `runtime-error`.
    pub fn runtime(message: impl Into<String>, span: Span) -> EvalError {
        EvalError {
            code: RUNTIME_ERROR,
            message: message.into(),
            span,
        }
    }

    /// An `input-mismatch`.
    pub fn input_mismatch(message: impl Into<String>, span: Span) -> EvalError {
        EvalError {
            code: INPUT_MISMATCH,
            message: message.into(),
            span,
        }
    }

    /// A `tensor-too-large`.
    pub fn too_large(message: impl Into<String>, span: Span) -> EvalError {
        EvalError {
            code: TENSOR_TOO_LARGE,
            message: message.into(),
            span,
        }
    }

    /// The error as a diagnostic, labelled at its span.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let label = match self.code {
            INPUT_MISMATCH => "declared here",
            TENSOR_TOO_LARGE => "this tensor is too large",
            _ => "while evaluating this",
        };
        Diagnostic::error(self.code, self.message.clone()).with_label(self.span, label)
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for EvalError {}

/// Runs `graph` on `inputs` (in `graph.inputs` order) with the default [`EvalOptions`].
/// `params` maps each parameter's dotted name to its value. Returns one tensor per
/// `graph.outputs` entry.
pub fn evaluate(
    graph: &Graph,
    inputs: &[Tensor],
    params: &HashMap<String, Tensor>,
) -> Result<Vec<Tensor>, EvalError> {
    evaluate_with_options(graph, inputs, params, &EvalOptions::default())
}

/// [`evaluate`] with explicit limits.
pub fn evaluate_with_options(
    graph: &Graph,
    inputs: &[Tensor],
    params: &HashMap<String, Tensor>,
    options: &EvalOptions,
) -> Result<Vec<Tensor>, EvalError> {
    let input_refs: Vec<&Tensor> = inputs.iter().collect();
    let plan = Plan::new(graph)?;
    let evaluator = Evaluator { params, options };
    evaluator.run(graph, &plan, &input_refs, Bindings::new())
}

/// Runs one computing op (not a source, a scan or a projection) on concrete operands with the
/// interpreter's kernels, for backends that execute only some ops themselves.
pub fn apply_kernel(
    node: &Node,
    operands: &[&Tensor],
    shape: &[usize],
    bindings: &Bindings,
) -> Result<Tensor, EvalError> {
    let params = HashMap::new();
    let options = EvalOptions::default();
    let evaluator = Evaluator {
        params: &params,
        options: &options,
    };
    evaluator.evaluate_kernel(node, operands, shape, bindings)
}

/// Binds the symbols of the graph's input types from the actual input shapes, exactly as
/// [`evaluate`] does before running (so backends can size their buffers the same way).
pub fn bind_input_symbols(graph: &Graph, inputs: &[Tensor]) -> Result<Bindings, EvalError> {
    check_listed_nodes(graph)?;
    let input_refs: Vec<&Tensor> = inputs.iter().collect();
    let mut bindings = Bindings::new();
    bind_inputs(graph, &input_refs, &mut bindings)?;
    Ok(bindings)
}

// ---------------------------------------------------------------------------------------------
// Planning.

/// What a run of a graph needs that does not depend on the input values; built once per graph
/// so that a scan body is not re-planned at every step.
struct Plan {
    /// The nodes the outputs depend on, operands before users.
    order: Vec<NodeId>,
    operands: HashMap<NodeId, Vec<NodeId>>,
    /// For each live node: operand edges from live users plus one per output occurrence (so an
    /// output is never released before the end).
    use_counts: HashMap<NodeId, usize>,
    /// Position in `graph.inputs` of each input node.
    input_positions: HashMap<NodeId, usize>,
}

/// `graph.inputs` and `graph.outputs` must name nodes that exist, or `Graph::node` would panic.
fn check_listed_nodes(graph: &Graph) -> Result<(), EvalError> {
    for (list, ids) in [("input", &graph.inputs), ("output", &graph.outputs)] {
        for (position, id) in ids.iter().enumerate() {
            if !graph.contains(*id) {
                return Err(EvalError::runtime(
                    format!(
                        "malformed graph: {list} {position} names node {} which does not exist",
                        id.index()
                    ),
                    Span::DUMMY,
                ));
            }
        }
    }
    Ok(())
}

impl Plan {
    fn new(graph: &Graph) -> Result<Plan, EvalError> {
        check_listed_nodes(graph)?;
        let topological = graph
            .topological_order()
            .ok_or_else(|| EvalError::runtime("malformed graph: it has a cycle", Span::DUMMY))?;
        let mut live = HashSet::new();
        let mut stack: Vec<NodeId> = graph.outputs.clone();
        while let Some(id) = stack.pop() {
            if live.insert(id) {
                stack.extend(graph.operands(id));
            }
        }
        let order: Vec<NodeId> = topological
            .into_iter()
            .filter(|id| live.contains(id))
            .collect();
        let operands: HashMap<NodeId, Vec<NodeId>> =
            order.iter().map(|&id| (id, graph.operands(id))).collect();
        let mut use_counts: HashMap<NodeId, usize> = HashMap::new();
        for operand in operands.values().flatten().chain(&graph.outputs) {
            *use_counts.entry(*operand).or_insert(0) += 1;
        }
        let mut input_positions = HashMap::new();
        for (position, &id) in graph.inputs.iter().enumerate() {
            if input_positions.insert(id, position).is_some() {
                return Err(EvalError::runtime(
                    format!(
                        "malformed graph: node {} is listed twice as an input",
                        id.index()
                    ),
                    graph.node(id).span,
                ));
            }
        }
        Ok(Plan {
            order,
            operands,
            use_counts,
            input_positions,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Input binding.

fn is_consistent(tensor: &Tensor) -> bool {
    element_count(&tensor.shape) == Some(tensor.len())
}

/// Binds symbols from the inputs' actual shapes, then checks every declared dim (compound ones
/// like `2*B` included) against the actual size.
fn bind_inputs(
    graph: &Graph,
    inputs: &[&Tensor],
    bindings: &mut Bindings,
) -> Result<(), EvalError> {
    if inputs.len() != graph.inputs.len() {
        let span = graph
            .inputs
            .first()
            .map_or(Span::DUMMY, |&id| graph.node(id).span);
        return Err(EvalError::input_mismatch(
            format!(
                "the model takes {} input(s) but {} were given",
                graph.inputs.len(),
                inputs.len()
            ),
            span,
        ));
    }
    for (&id, &tensor) in graph.inputs.iter().zip(inputs) {
        let node = graph.node(id);
        let name = input_name(node)?;
        let mismatch = || {
            EvalError::input_mismatch(
                format!(
                    "input `{name}` expects {}, got {}",
                    node.ty,
                    kernels::describe(tensor)
                ),
                node.span,
            )
        };
        if !is_consistent(tensor) {
            return Err(EvalError::input_mismatch(
                format!(
                    "input `{name}` has shape {:?} but holds {} values",
                    tensor.shape,
                    tensor.len()
                ),
                node.span,
            ));
        }
        if tensor.dtype() != node.ty.dtype || tensor.shape.len() != node.ty.shape.len() {
            return Err(mismatch());
        }
        for (dim, &actual) in node.ty.shape.iter().zip(&tensor.shape) {
            let actual = i64::try_from(actual).map_err(|_| mismatch())?;
            if let Some(constant) = dim.as_const() {
                if constant != actual {
                    return Err(mismatch());
                }
                continue;
            }
            let symbols = dim.symbols();
            let [symbol] = symbols.as_slice() else {
                continue;
            };
            if Dim::symbol(symbol.clone()) != *dim {
                // A compound dim such as `2*B`: checked in the second pass.
                continue;
            }
            match bindings.get(symbol) {
                Some(&bound) if bound != actual => {
                    return Err(EvalError::input_mismatch(
                        format!(
                            "input `{name}` expects {}, got {}: `{symbol}` is {bound} elsewhere but {actual} here",
                            node.ty,
                            kernels::describe(tensor)
                        ),
                        node.span,
                    ));
                }
                Some(_) => {}
                None => {
                    bindings.insert(symbol.clone(), actual);
                }
            }
        }
    }
    for (&id, &tensor) in graph.inputs.iter().zip(inputs) {
        let node = graph.node(id);
        let name = input_name(node)?;
        for (dim, &actual) in node.ty.shape.iter().zip(&tensor.shape) {
            match dim.eval(bindings) {
                Ok(Some(value)) if i64::try_from(actual) == Ok(value) => {}
                Ok(None) => {
                    return Err(EvalError::runtime(
                        format!(
                            "input `{name}`: dim `{dim}` of {} mentions a symbol that no input binds on its own",
                            node.ty
                        ),
                        node.span,
                    ));
                }
                _ => {
                    return Err(EvalError::input_mismatch(
                        format!(
                            "input `{name}` expects {}, got {}",
                            node.ty,
                            kernels::describe(tensor)
                        ),
                        node.span,
                    ));
                }
            }
        }
    }
    Ok(())
}

fn input_name(node: &Node) -> Result<&str, EvalError> {
    match &node.op {
        Op::Input { name, .. } => Ok(name),
        other => Err(EvalError::runtime(
            format!(
                "malformed graph: a graph input is a `{}` node, not an input",
                other.mnemonic()
            ),
            node.span,
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes.

/// A dim's value under the bindings, as a size.
fn evaluate_size(dim: &Dim, bindings: &Bindings) -> Result<usize, String> {
    let value = evaluate_integer(dim, bindings)?;
    usize::try_from(value)
        .map_err(|_| format!("dim `{dim}` evaluates to {value}, which is not a valid size"))
}

/// A dim's value under the bindings (may be negative, e.g. a slice start).
fn evaluate_integer(dim: &Dim, bindings: &Bindings) -> Result<i64, String> {
    match dim.eval(bindings) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => {
            let unbound: Vec<String> = dim
                .symbols()
                .into_iter()
                .filter(|s| !bindings.contains_key(s))
                .collect();
            Err(format!(
                "dim `{dim}` mentions unbound symbol(s) {}",
                unbound.join(", ")
            ))
        }
        Err(error) => Err(format!("evaluating dim `{dim}` failed: {error:?}")),
    }
}

pub fn evaluate_shape(shape: &[Dim], bindings: &Bindings) -> Result<Vec<usize>, String> {
    shape
        .iter()
        .map(|dim| evaluate_size(dim, bindings))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

/// A node's value: borrowed for inputs and parameters (no copy of the weights), owned for
/// computed tensors, several for a scan.
#[derive(Clone)]
enum NodeValue<'t> {
    Borrowed(&'t Tensor),
    Owned(Tensor),
    Many(Vec<Tensor>),
}

struct Evaluator<'p> {
    params: &'p HashMap<String, Tensor>,
    options: &'p EvalOptions,
}

/// An op's failure, named after the op and pointing at the node.
fn op_error(node: &Node, reason: impl fmt::Display) -> EvalError {
    EvalError::runtime(
        format!("{} failed: {reason}", node.op.mnemonic()),
        node.span,
    )
}

impl<'p> Evaluator<'p> {
    fn run<'t>(
        &self,
        graph: &Graph,
        plan: &Plan,
        inputs: &[&'t Tensor],
        mut bindings: Bindings,
    ) -> Result<Vec<Tensor>, EvalError>
    where
        'p: 't,
    {
        bind_inputs(graph, inputs, &mut bindings)?;
        let mut remaining_uses = plan.use_counts.clone();
        let mut values: HashMap<NodeId, NodeValue<'t>> = HashMap::new();
        let no_operands = Vec::new();
        for &id in &plan.order {
            let node = graph.node(id);
            let operands = plan.operands.get(&id).unwrap_or(&no_operands);
            let value = self.evaluate_node(
                node,
                id,
                operands,
                plan,
                inputs,
                &bindings,
                &mut values,
                &remaining_uses,
            )?;
            // Release operands whose last user this was.
            for operand in operands {
                if let Some(count) = remaining_uses.get_mut(operand) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        values.remove(operand);
                    }
                }
            }
            values.insert(id, value);
        }
        let mut outputs = Vec::with_capacity(graph.outputs.len());
        for (position, id) in graph.outputs.iter().enumerate() {
            let last_occurrence = !graph.outputs[position + 1..].contains(id);
            let value = if last_occurrence {
                values.remove(id)
            } else {
                values.get(id).cloned()
            };
            let node = graph.node(*id);
            match value {
                Some(NodeValue::Owned(tensor)) => outputs.push(tensor),
                Some(NodeValue::Borrowed(tensor)) => outputs.push(tensor.clone()),
                Some(NodeValue::Many(_)) => {
                    return Err(op_error(
                        node,
                        format!(
                            "output {position} is a multi-result node; read it through `project`"
                        ),
                    ))
                }
                None => {
                    return Err(op_error(
                        node,
                        format!("internal error: output {position} was not computed"),
                    ))
                }
            }
        }
        Ok(outputs)
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate_node<'t>(
        &self,
        node: &Node,
        id: NodeId,
        operands: &[NodeId],
        plan: &Plan,
        inputs: &[&'t Tensor],
        bindings: &Bindings,
        values: &mut HashMap<NodeId, NodeValue<'t>>,
        remaining_uses: &HashMap<NodeId, usize>,
    ) -> Result<NodeValue<'t>, EvalError>
    where
        'p: 't,
    {
        if let Op::Scan(scan) = &node.op {
            // A scan's own type is a placeholder; its results are checked against
            // `result_types` inside, and each `project` is checked against its own type.
            let tensors = operand_tensors(node, operands, values)?;
            return Ok(NodeValue::Many(
                self.evaluate_scan(scan, node, &tensors, bindings)?,
            ));
        }

        let shape =
            evaluate_shape(&node.ty.shape, bindings).map_err(|reason| op_error(node, reason))?;
        if !matches!(node.op, Op::Input { .. } | Op::Param { .. }) {
            self.check_size(node, &shape)?;
        }
        // An operand whose only remaining use is this node can be moved instead of copied.
        let movable_operand = match operands {
            [only] if remaining_uses.get(only) == Some(&1) => Some(*only),
            _ => None,
        };

        let value = match &node.op {
            Op::Input { .. } => {
                let tensor = plan
                    .input_positions
                    .get(&id)
                    .and_then(|&position| inputs.get(position).copied())
                    .ok_or_else(|| {
                        op_error(
                            node,
                            "malformed graph: this input node is not listed in the graph's inputs",
                        )
                    })?;
                NodeValue::Borrowed(tensor)
            }
            Op::Param { name, .. } => {
                let tensor = self.params.get(name).ok_or_else(|| {
                    EvalError::runtime(
                        format!("parameter `{name}` ({}) has no value", node.ty),
                        node.span,
                    )
                })?;
                if !is_consistent(tensor)
                    || tensor.dtype() != node.ty.dtype
                    || tensor.shape != shape
                {
                    return Err(EvalError::runtime(
                        format!(
                            "parameter `{name}` is declared {} but its value is {} ({} values)",
                            node.ty,
                            kernels::describe(tensor),
                            tensor.len()
                        ),
                        node.span,
                    ));
                }
                NodeValue::Borrowed(tensor)
            }
            Op::Project { index } => {
                let [operand] = operands else {
                    return Err(op_error(
                        node,
                        format!("expected 1 operand, got {}", operands.len()),
                    ));
                };
                let results = if movable_operand.is_some() {
                    match values.remove(operand) {
                        Some(NodeValue::Many(results)) => results.into_iter().nth(*index),
                        _ => {
                            return Err(op_error(
                                node,
                                "its operand is not a multi-result (scan) node",
                            ))
                        }
                    }
                } else {
                    match values.get(operand) {
                        Some(NodeValue::Many(results)) => results.get(*index).cloned(),
                        _ => {
                            return Err(op_error(
                                node,
                                "its operand is not a multi-result (scan) node",
                            ))
                        }
                    }
                };
                NodeValue::Owned(
                    results
                        .ok_or_else(|| op_error(node, format!("result {index} does not exist")))?,
                )
            }
            Op::Reshape | Op::Dropout { .. }
                if movable_operand
                    .is_some_and(|o| matches!(values.get(&o), Some(NodeValue::Owned(_)))) =>
            {
                let Some(NodeValue::Owned(tensor)) =
                    movable_operand.and_then(|o| values.remove(&o))
                else {
                    return Err(op_error(node, "internal error: movable operand vanished"));
                };
                // Dropout is the identity at inference; the shape check below still applies.
                let result = if matches!(node.op, Op::Reshape) {
                    kernels::reshape_owned(tensor, &shape)
                } else {
                    Ok(tensor)
                };
                NodeValue::Owned(result.map_err(|reason| op_error(node, reason))?)
            }
            _ => {
                let tensors = operand_tensors(node, operands, values)?;
                let result = self.evaluate_kernel(node, &tensors, &shape, bindings)?;
                NodeValue::Owned(result)
            }
        };

        // Every kernel is trusted only as far as this check: the result must have exactly the
        // type the graph declares.
        let tensor = match &value {
            NodeValue::Borrowed(tensor) => *tensor,
            NodeValue::Owned(tensor) => tensor,
            NodeValue::Many(_) => {
                return Err(op_error(
                    node,
                    "internal error: unexpected multi-result value",
                ))
            }
        };
        if tensor.shape != shape || tensor.dtype() != node.ty.dtype || !is_consistent(tensor) {
            return Err(op_error(
                node,
                format!(
                    "internal error: the result is {} but the node is declared {} ({}{})",
                    kernels::describe(tensor),
                    node.ty,
                    node.ty.dtype,
                    kernels::format_concrete_shape(&shape)
                ),
            ));
        }
        Ok(value)
    }

    /// Runs the kernel of a computing (non-source, non-control) op on its operands.
    fn evaluate_kernel(
        &self,
        node: &Node,
        tensors: &[&Tensor],
        shape: &[usize],
        bindings: &Bindings,
    ) -> Result<Tensor, EvalError> {
        let fail = |reason: String| op_error(node, reason);
        let result = match &node.op {
            Op::Fill(value) => {
                exact_operands::<0>(node, tensors)?;
                kernels::fill(*value, node.ty.dtype, shape)
            }
            Op::Iota { axis } => {
                exact_operands::<0>(node, tensors)?;
                kernels::iota(*axis, node.ty.dtype, shape)
            }
            Op::Unary(op) => {
                let [x] = exact_operands(node, tensors)?;
                kernels::unary(*op, x, shape)
            }
            Op::Binary(op) => {
                let [a, b] = exact_operands(node, tensors)?;
                kernels::binary(*op, a, b, shape)
            }
            Op::Select => {
                let [condition, if_true, if_false] = exact_operands(node, tensors)?;
                kernels::select(condition, if_true, if_false, shape)
            }
            Op::Cast => {
                let [x] = exact_operands(node, tensors)?;
                kernels::cast(x, node.ty.dtype, shape)
            }
            Op::Reduce {
                op,
                axes,
                keep_dims,
            } => {
                let [x] = exact_operands(node, tensors)?;
                kernels::reduce(*op, x, axes, *keep_dims, shape)
            }
            Op::ArgMax { axis, keep_dims } => {
                let [x] = exact_operands(node, tensors)?;
                kernels::arg_max(x, *axis, *keep_dims, shape)
            }
            Op::Reshape => {
                let [x] = exact_operands(node, tensors)?;
                kernels::reshape(x, shape)
            }
            Op::Permute { perm } => {
                let [x] = exact_operands(node, tensors)?;
                kernels::permute(x, perm, shape)
            }
            Op::Expand => {
                let [x] = exact_operands(node, tensors)?;
                kernels::expand(x, shape)
            }
            Op::Slice { axis, start, step } => {
                let [x] = exact_operands(node, tensors)?;
                let start = evaluate_integer(start, bindings).map_err(fail)?;
                kernels::slice(x, *axis, start, *step, shape)
            }
            Op::Concat { axis } => kernels::concat(tensors, *axis, shape),
            Op::MatMul => {
                let [a, b] = exact_operands(node, tensors)?;
                kernels::mat_mul(a, b, shape)
            }
            Op::Conv2d {
                stride,
                padding,
                dilation,
                groups,
            } => {
                let attributes = Conv2dAttributes {
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    groups: *groups,
                };
                match tensors {
                    [input, weight] => kernels::conv2d(input, weight, None, attributes, shape),
                    [input, weight, bias] => {
                        kernels::conv2d(input, weight, Some(bias), attributes, shape)
                    }
                    _ => Err(format!("expected 2 or 3 operands, got {}", tensors.len())),
                }
            }
            Op::Pool2d {
                kind,
                kernel,
                stride,
                padding,
            } => {
                let [x] = exact_operands(node, tensors)?;
                kernels::pool2d(*kind, x, *kernel, *stride, *padding, shape)
            }
            Op::Gather { axis } => {
                let [table, indices] = exact_operands(node, tensors)?;
                kernels::gather(table, indices, *axis, shape)
            }
            Op::Dropout { .. } => {
                let [x] = exact_operands(node, tensors)?;
                // Inference mode: the identity.
                Ok((*x).clone())
            }
            Op::RandomUniform { stream } => {
                let [seed] = exact_operands(node, tensors)?;
                kernels::random_uniform(seed, *stream, shape)
            }
            Op::BatchNorm { eps, .. } => match tensors {
                // The counter (sixth operand) only matters to the training rewrite.
                [x, weight, bias, mean, variance] | [x, weight, bias, mean, variance, _] => {
                    kernels::batch_norm_inference(x, [weight, bias, mean, variance], *eps, shape)
                }
                _ => Err(format!("expected 5 or 6 operands, got {}", tensors.len())),
            },
            Op::SliceScatter { axis, start, step } => {
                let [x] = exact_operands(node, tensors)?;
                let start = evaluate_integer(start, bindings).map_err(fail)?;
                kernels::slice_scatter(x, *axis, start, *step, shape)
            }
            Op::ScatterAdd { axis } => {
                let [updates, indices] = exact_operands(node, tensors)?;
                kernels::scatter_add(updates, indices, *axis, shape)
            }
            Op::Conv2dBackwardInput {
                stride,
                padding,
                dilation,
                groups,
            } => {
                let [gradient, weight] = exact_operands(node, tensors)?;
                let attributes = Conv2dAttributes {
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    groups: *groups,
                };
                kernels::conv2d_backward_input(gradient, weight, attributes, shape)
            }
            Op::Conv2dBackwardWeight {
                stride,
                padding,
                dilation,
                groups,
            } => {
                let [input, gradient] = exact_operands(node, tensors)?;
                let attributes = Conv2dAttributes {
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    groups: *groups,
                };
                kernels::conv2d_backward_weight(input, gradient, attributes, shape)
            }
            Op::Pool2dBackward {
                kind,
                kernel,
                stride,
                padding,
            } => {
                let [input, gradient] = exact_operands(node, tensors)?;
                kernels::pool2d_backward(*kind, input, gradient, *kernel, *stride, *padding, shape)
            }
            Op::Input { .. } | Op::Param { .. } | Op::Scan(_) | Op::Project { .. } => {
                Err("internal error: handled elsewhere".to_string())
            }
        };
        result.map_err(fail)
    }

    /// Refuses a result with more elements than the limit, before anything is allocated.
    fn check_size(&self, node: &Node, shape: &[usize]) -> Result<usize, EvalError> {
        let count = element_count(shape);
        match count {
            Some(count) if count <= self.options.max_elements => Ok(count),
            _ => {
                let described = shape
                    .iter()
                    .map(|&d| d as u128)
                    .try_fold(1u128, |acc, d| acc.checked_mul(d));
                let amount = described.map_or_else(|| "too many".to_string(), |n| n.to_string());
                Err(EvalError::too_large(
                    format!(
                        "the result of `{}` would be {}{} with {amount} elements, more than the limit of {}",
                        node.op.mnemonic(),
                        node.ty.dtype,
                        kernels::format_concrete_shape(shape),
                        self.options.max_elements
                    ),
                    node.span,
                ))
            }
        }
    }

    /// Runs a scan: the body once per position along `axis` (last to first when `reverse`),
    /// threading the carried states and stacking per-step outputs at their positions.
    fn evaluate_scan(
        &self,
        scan: &ScanOp,
        node: &Node,
        operands: &[&Tensor],
        bindings: &Bindings,
    ) -> Result<Vec<Tensor>, EvalError> {
        let fail = |reason: String| op_error(node, reason);
        let ScanOp {
            body,
            n_carry,
            n_sequences,
            axis,
            length,
            reverse,
            result_types,
        } = scan;
        let (n_carry, n_sequences, axis) = (*n_carry, *n_sequences, *axis);
        let fixed_operands = n_carry
            .checked_add(n_sequences)
            .ok_or_else(|| fail("operand counts overflow".into()))?;
        if operands.len() < fixed_operands {
            return Err(fail(format!(
                "expected at least {fixed_operands} operands ({n_carry} carried, {n_sequences} sequences), got {}",
                operands.len()
            )));
        }
        let (initial_carries, rest) = operands.split_at(n_carry);
        let (sequences, captures) = rest.split_at(n_sequences);
        if body.inputs.len() != operands.len() {
            return Err(fail(format!(
                "the body takes {} inputs but the scan has {} operands",
                body.inputs.len(),
                operands.len()
            )));
        }
        if result_types.len() < n_carry || body.outputs.len() != result_types.len() {
            return Err(fail(format!(
                "the body has {} outputs, the scan declares {} results and {n_carry} carried states",
                body.outputs.len(),
                result_types.len()
            )));
        }
        let length = evaluate_size(length, bindings).map_err(fail)?;
        for (position, sequence) in sequences.iter().enumerate() {
            if sequence.shape.get(axis) != Some(&length) {
                return Err(fail(format!(
                    "sequence {position} is {} but the scan runs {length} steps along axis {axis}",
                    kernels::describe(sequence)
                )));
            }
        }
        let mut result_shapes = Vec::with_capacity(result_types.len());
        for result_type in result_types {
            let shape = evaluate_shape(&result_type.shape, bindings).map_err(fail)?;
            self.check_size(node, &shape)?;
            result_shapes.push(shape);
        }
        let mut stacked = Vec::with_capacity(result_types.len() - n_carry);
        for (result_type, shape) in result_types.iter().zip(&result_shapes).skip(n_carry) {
            if shape.get(axis) != Some(&length) {
                return Err(fail(format!(
                    "stacked result {}{} has no axis {axis} of length {length}",
                    result_type.dtype,
                    kernels::format_concrete_shape(shape)
                )));
            }
            stacked.push(kernels::zeros(result_type.dtype, shape));
        }

        let body_plan = Plan::new(body)?;
        let mut carries: Vec<Tensor> = initial_carries
            .iter()
            .map(|&tensor| tensor.clone())
            .collect();
        for step in 0..length {
            let position = if *reverse { length - 1 - step } else { step };
            let slices: Vec<Tensor> = sequences
                .iter()
                .map(|sequence| kernels::index_along_axis(sequence, axis, position))
                .collect::<Result<_, _>>()
                .map_err(fail)?;
            let step_inputs: Vec<&Tensor> = carries
                .iter()
                .chain(&slices)
                .chain(captures.iter().copied())
                .collect();
            let step_outputs = self
                .run(body, &body_plan, &step_inputs, bindings.clone())
                .map_err(|error| {
                    // A body input that does not match means a carried state changed type: the
                    // scan is at fault, not the user's inputs.
                    if error.code == INPUT_MISMATCH {
                        op_error(
                            node,
                            format!(
                                "at step {position}, the body rejected its inputs: {}",
                                error.message
                            ),
                        )
                    } else {
                        error
                    }
                })?;
            let mut step_outputs = step_outputs.into_iter();
            carries = step_outputs.by_ref().take(n_carry).collect();
            for (stacked_result, output) in stacked.iter_mut().zip(step_outputs) {
                kernels::write_along_axis(stacked_result, &output, axis, position).map_err(fail)?;
            }
        }
        for (index, carry) in carries.iter().enumerate() {
            let (expected_type, expected_shape) = (&result_types[index], &result_shapes[index]);
            if carry.dtype() != expected_type.dtype || &carry.shape != expected_shape {
                return Err(fail(format!(
                    "carried state {index} ends as {} but the scan declares {expected_type}",
                    kernels::describe(carry)
                )));
            }
        }
        carries.extend(stacked);
        Ok(carries)
    }
}

/// The operands' tensors, in order; a multi-result operand must be read through `project`.
fn operand_tensors<'v>(
    node: &Node,
    operands: &[NodeId],
    values: &'v HashMap<NodeId, NodeValue<'_>>,
) -> Result<Vec<&'v Tensor>, EvalError> {
    operands
        .iter()
        .enumerate()
        .map(|(position, operand)| match values.get(operand) {
            Some(NodeValue::Borrowed(tensor)) => Ok(*tensor),
            Some(NodeValue::Owned(tensor)) => Ok(tensor),
            Some(NodeValue::Many(_)) => Err(op_error(
                node,
                format!(
                    "operand {position} is a multi-result (scan) node; read it through `project`"
                ),
            )),
            None => Err(op_error(
                node,
                format!("internal error: operand {position} has no value"),
            )),
        })
        .collect()
}

/// Exactly `N` operands, or an error naming the op.
fn exact_operands<'v, const N: usize>(
    node: &Node,
    tensors: &[&'v Tensor],
) -> Result<[&'v Tensor; N], EvalError> {
    <[&Tensor; N]>::try_from(tensors).map_err(|_| {
        op_error(
            node,
            format!("expected {N} operand(s), got {}", tensors.len()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BinaryOp, DType, Init, Literal, PoolKind, ReduceOp, TensorType, UnaryOp};

    fn shape_of(dims: &[i64]) -> Vec<Dim> {
        dims.iter().map(|&d| Dim::constant(d)).collect()
    }

    fn typed(dtype: DType, dims: &[i64]) -> TensorType {
        TensorType::new(dtype, shape_of(dims))
    }

    fn f32_type(dims: &[i64]) -> TensorType {
        typed(DType::F32, dims)
    }

    fn concrete_type(tensor: &Tensor) -> TensorType {
        TensorType::new(
            tensor.dtype(),
            tensor
                .shape
                .iter()
                .map(|&d| Dim::constant(d as i64))
                .collect(),
        )
    }

    fn add_input(graph: &mut Graph, name: &str, ty: TensorType) -> NodeId {
        let index = graph.inputs.len();
        let id = graph.add(
            Op::Input {
                index,
                name: name.to_string(),
            },
            ty,
            Span::DUMMY,
            &[],
        );
        graph.inputs.push(id);
        id
    }

    fn f32s(shape: &[usize], values: &[f32]) -> Tensor {
        Tensor::from_f32(shape.to_vec(), values.to_vec()).unwrap()
    }

    fn i64s(shape: &[usize], values: &[i64]) -> Tensor {
        Tensor::from_i64(shape.to_vec(), values.to_vec()).unwrap()
    }

    fn bools(shape: &[usize], values: &[bool]) -> Tensor {
        Tensor::from_bool(shape.to_vec(), values.to_vec()).unwrap()
    }

    /// `0, 1, 2, ...` as f32 in the given shape.
    fn ramp(shape: &[usize]) -> Tensor {
        let count = shape.iter().product::<usize>();
        f32s(shape, &(0..count).map(|v| v as f32).collect::<Vec<_>>())
    }

    /// Evaluates one op whose operands are graph inputs typed exactly like the given tensors.
    fn apply(op: Op, output_type: TensorType, operands: &[Tensor]) -> Result<Tensor, EvalError> {
        let mut graph = Graph::new();
        let ids: Vec<NodeId> = operands
            .iter()
            .enumerate()
            .map(|(i, t)| add_input(&mut graph, &format!("x{i}"), concrete_type(t)))
            .collect();
        let node = graph.add(op, output_type, Span::DUMMY, &ids);
        graph.outputs.push(node);
        let mut results = evaluate(&graph, operands, &HashMap::new())?;
        Ok(results.remove(0))
    }

    fn assert_close(actual: &Tensor, expected: &[f32]) {
        let values = actual.as_f32().expect("an f32 result");
        assert_eq!(values.len(), expected.len(), "{actual:?}");
        for (index, (a, e)) in values.iter().zip(expected).enumerate() {
            let close = (a - e).abs() <= 1e-6 * (1.0 + e.abs()) || (a.is_nan() && e.is_nan());
            assert!(close, "element {index}: got {a}, expected {e}");
        }
    }

    // --- Elementwise.

    #[test]
    fn binary_broadcasts_on_every_axis() {
        // [2, 1, 3] + [4, 1] -> [2, 4, 3]: a broadcasts along axis 1, b along axes 0 and 2.
        let a = ramp(&[2, 1, 3]);
        let b = f32s(&[4, 1], &[10.0, 20.0, 30.0, 40.0]);
        let out = apply(Op::Binary(BinaryOp::Add), f32_type(&[2, 4, 3]), &[a, b]).unwrap();
        let mut expected = Vec::new();
        for i in 0..2 {
            for j in 0..4 {
                for k in 0..3 {
                    expected.push((i * 3 + k) as f32 + 10.0 * (j + 1) as f32);
                }
            }
        }
        assert_eq!(out.shape, vec![2, 4, 3]);
        assert_close(&out, &expected);

        // [1, 3, 1] * [5, 1, 4] -> [5, 3, 4], odd sizes, size-1 dims on both sides.
        let out = apply(
            Op::Binary(BinaryOp::Mul),
            f32_type(&[5, 3, 4]),
            &[ramp(&[1, 3, 1]), ramp(&[5, 1, 4])],
        )
        .unwrap();
        let mut expected = Vec::new();
        for i in 0..5 {
            for j in 0..3 {
                for k in 0..4 {
                    expected.push((j * (i * 4 + k)) as f32);
                }
            }
        }
        assert_close(&out, &expected);

        // A scalar against a matrix, in both operand positions.
        let scalar = f32s(&[], &[2.0]);
        let out = apply(
            Op::Binary(BinaryOp::Sub),
            f32_type(&[2, 3]),
            &[scalar.clone(), ramp(&[2, 3])],
        )
        .unwrap();
        assert_close(&out, &[2.0, 1.0, 0.0, -1.0, -2.0, -3.0]);
        let out = apply(
            Op::Binary(BinaryOp::Div),
            f32_type(&[2, 3]),
            &[ramp(&[2, 3]), scalar],
        )
        .unwrap();
        assert_close(&out, &[0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_errors() {
        let error = apply(
            Op::Binary(BinaryOp::Add),
            f32_type(&[2, 3]),
            &[ramp(&[2, 3]), ramp(&[4])],
        )
        .unwrap_err();
        assert_eq!(error.code, RUNTIME_ERROR);
        assert!(error.message.contains("add"), "{}", error.message);
        // The node declares a shape the operands cannot produce.
        let error = apply(
            Op::Binary(BinaryOp::Add),
            f32_type(&[3, 3]),
            &[ramp(&[2, 3]), ramp(&[3])],
        )
        .unwrap_err();
        assert_eq!(error.code, RUNTIME_ERROR);
        // Mixed dtypes.
        let error = apply(
            Op::Binary(BinaryOp::Add),
            f32_type(&[2]),
            &[ramp(&[2]), i64s(&[2], &[1, 2])],
        )
        .unwrap_err();
        assert!(error.message.contains("dtypes differ"), "{}", error.message);
    }

    #[test]
    fn integer_division_floors_and_remainder_takes_the_divisor_sign() {
        let a = i64s(&[4], &[7, -7, 7, -7]);
        let b = i64s(&[4], &[2, 2, -2, -2]);
        let i64_type = typed(DType::I64, &[4]);
        let quotient = apply(
            Op::Binary(BinaryOp::Div),
            i64_type.clone(),
            &[a.clone(), b.clone()],
        )
        .unwrap();
        assert_eq!(quotient.as_i64().unwrap(), &[3, -4, -4, 3]);
        let remainder = apply(Op::Binary(BinaryOp::Rem), i64_type.clone(), &[a, b]).unwrap();
        assert_eq!(remainder.as_i64().unwrap(), &[1, 1, -1, -1]);
        // Overflowing corner cases wrap instead of panicking.
        let extreme = i64s(&[1], &[i64::MIN]);
        let minus_one = i64s(&[1], &[-1]);
        let wrapped = apply(
            Op::Binary(BinaryOp::Div),
            typed(DType::I64, &[1]),
            &[extreme.clone(), minus_one.clone()],
        );
        assert_eq!(wrapped.unwrap().as_i64().unwrap(), &[i64::MIN]);
        let wrapped = apply(
            Op::Binary(BinaryOp::Rem),
            typed(DType::I64, &[1]),
            &[extreme, minus_one],
        );
        assert_eq!(wrapped.unwrap().as_i64().unwrap(), &[0]);
        // Powers, sums and products.
        let power = apply(
            Op::Binary(BinaryOp::Pow),
            i64_type.clone(),
            &[i64s(&[4], &[2, -3, 5, 0]), i64s(&[], &[3])],
        );
        assert_eq!(power.unwrap().as_i64().unwrap(), &[8, -27, 125, 0]);
        let zero_power = apply(
            Op::Binary(BinaryOp::Pow),
            typed(DType::I64, &[1]),
            &[i64s(&[1], &[0]), i64s(&[1], &[0])],
        );
        assert_eq!(zero_power.unwrap().as_i64().unwrap(), &[1]);
        let negative_exponent = apply(
            Op::Binary(BinaryOp::Pow),
            typed(DType::I64, &[1]),
            &[i64s(&[1], &[2]), i64s(&[1], &[-1])],
        );
        assert_eq!(negative_exponent.unwrap_err().code, RUNTIME_ERROR);
        let product = apply(
            Op::Binary(BinaryOp::Mul),
            i64_type,
            &[i64s(&[4], &[1, 2, 3, 4]), i64s(&[1], &[-2])],
        );
        assert_eq!(product.unwrap().as_i64().unwrap(), &[-2, -4, -6, -8]);
    }

    #[test]
    fn integer_division_by_zero_is_an_error() {
        for op in [BinaryOp::Div, BinaryOp::Rem] {
            let error = apply(
                Op::Binary(op),
                typed(DType::I64, &[2]),
                &[i64s(&[2], &[4, 5]), i64s(&[2], &[1, 0])],
            )
            .unwrap_err();
            assert_eq!(error.code, RUNTIME_ERROR);
            assert!(
                error.message.contains("division by zero"),
                "{}",
                error.message
            );
        }
        // Float division by zero is IEEE: infinity, not an error.
        let out = apply(
            Op::Binary(BinaryOp::Div),
            f32_type(&[1]),
            &[f32s(&[1], &[1.0]), f32s(&[1], &[0.0])],
        )
        .unwrap();
        assert_eq!(out.as_f32().unwrap(), &[f32::INFINITY]);
    }

    #[test]
    fn float_remainder_power_and_nan_propagating_max_min() {
        let a = f32s(&[4], &[-7.5, 7.5, 7.5, -7.5]);
        let b = f32s(&[4], &[2.0, 2.0, -2.0, -2.0]);
        let out = apply(Op::Binary(BinaryOp::Rem), f32_type(&[4]), &[a, b]).unwrap();
        assert_close(&out, &[0.5, 1.5, -0.5, -1.5]);
        let out = apply(
            Op::Binary(BinaryOp::Pow),
            f32_type(&[3]),
            &[f32s(&[3], &[2.0, 9.0, 4.0]), f32s(&[3], &[3.0, 0.5, -1.0])],
        )
        .unwrap();
        assert_close(&out, &[8.0, 3.0, 0.25]);
        let a = f32s(&[3], &[1.0, f32::NAN, 3.0]);
        let b = f32s(&[3], &[2.0, 0.0, f32::NAN]);
        let max = apply(
            Op::Binary(BinaryOp::Max),
            f32_type(&[3]),
            &[a.clone(), b.clone()],
        )
        .unwrap();
        assert_close(&max, &[2.0, f32::NAN, f32::NAN]);
        let min = apply(Op::Binary(BinaryOp::Min), f32_type(&[3]), &[a, b]).unwrap();
        assert_close(&min, &[1.0, f32::NAN, f32::NAN]);
        let max = apply(
            Op::Binary(BinaryOp::Max),
            typed(DType::I64, &[2]),
            &[i64s(&[2], &[1, 5]), i64s(&[2], &[3, 4])],
        );
        assert_eq!(max.unwrap().as_i64().unwrap(), &[3, 5]);
    }

    #[test]
    fn comparisons_give_bool_and_logic_works_on_bool() {
        let a = f32s(&[4], &[1.0, 2.0, 3.0, f32::NAN]);
        let b = f32s(&[], &[2.0]);
        let bool_type = typed(DType::Bool, &[4]);
        let expectations = [
            (BinaryOp::Lt, [true, false, false, false]),
            (BinaryOp::Le, [true, true, false, false]),
            (BinaryOp::Gt, [false, false, true, false]),
            (BinaryOp::Ge, [false, true, true, false]),
            (BinaryOp::Eq, [false, true, false, false]),
            (BinaryOp::Ne, [true, false, true, true]),
        ];
        for (op, expected) in expectations {
            let out = apply(Op::Binary(op), bool_type.clone(), &[a.clone(), b.clone()]).unwrap();
            assert_eq!(out.as_bool().unwrap(), &expected, "{op:?}");
        }
        let out = apply(
            Op::Binary(BinaryOp::Ge),
            bool_type.clone(),
            &[i64s(&[4], &[1, 2, 3, 4]), i64s(&[1], &[3])],
        );
        assert_eq!(out.unwrap().as_bool().unwrap(), &[false, false, true, true]);
        let p = bools(&[4], &[true, true, false, false]);
        let q = bools(&[4], &[true, false, true, false]);
        let and = apply(
            Op::Binary(BinaryOp::And),
            bool_type.clone(),
            &[p.clone(), q.clone()],
        )
        .unwrap();
        assert_eq!(and.as_bool().unwrap(), &[true, false, false, false]);
        let or = apply(Op::Binary(BinaryOp::Or), bool_type.clone(), &[p.clone(), q]).unwrap();
        assert_eq!(or.as_bool().unwrap(), &[true, true, true, false]);
        assert!(apply(
            Op::Binary(BinaryOp::Add),
            bool_type.clone(),
            &[p.clone(), p]
        )
        .is_err());
        assert!(apply(Op::Binary(BinaryOp::And), bool_type, &[a.clone(), a]).is_err());
    }

    #[test]
    fn unary_functions() {
        let x = f32s(&[4], &[0.5, -1.5, 0.0, 2.0]);
        let cases: [(UnaryOp, [f32; 4]); 12] = [
            (UnaryOp::Neg, [-0.5, 1.5, -0.0, -2.0]),
            (UnaryOp::Abs, [0.5, 1.5, 0.0, 2.0]),
            (UnaryOp::Exp, [1.648_721_3, 0.223_130_16, 1.0, 7.389_056]),
            (
                UnaryOp::Log,
                [
                    -std::f32::consts::LN_2,
                    f32::NAN,
                    f32::NEG_INFINITY,
                    std::f32::consts::LN_2,
                ],
            ),
            (
                UnaryOp::Sqrt,
                [
                    std::f32::consts::FRAC_1_SQRT_2,
                    f32::NAN,
                    0.0,
                    std::f32::consts::SQRT_2,
                ],
            ),
            (
                UnaryOp::Rsqrt,
                [
                    std::f32::consts::SQRT_2,
                    f32::NAN,
                    f32::INFINITY,
                    std::f32::consts::FRAC_1_SQRT_2,
                ],
            ),
            (
                UnaryOp::Tanh,
                [0.462_117_15, -0.905_148_26, 0.0, 0.964_027_6],
            ),
            (
                UnaryOp::Sigmoid,
                [0.622_459_3, 0.182_425_52, 0.5, 0.880_797_1],
            ),
            (UnaryOp::Erf, [0.520_499_9, -0.966_105_16, 0.0, 0.995_322_3]),
            (UnaryOp::Sin, [0.479_425_55, -0.997_495, 0.0, 0.909_297_4]),
            (UnaryOp::Cos, [0.877_582_6, 0.070_737_2, 1.0, -0.416_146_84]),
            (UnaryOp::Floor, [0.0, -2.0, 0.0, 2.0]),
        ];
        for (op, expected) in cases {
            let out = apply(Op::Unary(op), f32_type(&[4]), std::slice::from_ref(&x)).unwrap();
            let values = out.as_f32().unwrap();
            for (a, e) in values.iter().zip(&expected) {
                let close = (a - e).abs() <= 1e-6 || (a.is_nan() && e.is_nan()) || a == e;
                assert!(close, "{op:?}: got {values:?}, expected {expected:?}");
            }
        }
        let integers = i64s(&[3], &[-3, 0, i64::MIN]);
        let neg = apply(
            Op::Unary(UnaryOp::Neg),
            typed(DType::I64, &[3]),
            std::slice::from_ref(&integers),
        )
        .unwrap();
        assert_eq!(neg.as_i64().unwrap(), &[3, 0, i64::MIN]);
        let abs = apply(
            Op::Unary(UnaryOp::Abs),
            typed(DType::I64, &[3]),
            std::slice::from_ref(&integers),
        )
        .unwrap();
        assert_eq!(abs.as_i64().unwrap(), &[3, 0, i64::MIN]);
        let not = apply(
            Op::Unary(UnaryOp::Not),
            typed(DType::Bool, &[2]),
            &[bools(&[2], &[true, false])],
        )
        .unwrap();
        assert_eq!(not.as_bool().unwrap(), &[false, true]);
        let error = apply(
            Op::Unary(UnaryOp::Exp),
            typed(DType::I64, &[3]),
            &[integers],
        )
        .unwrap_err();
        assert_eq!(error.code, RUNTIME_ERROR);
        assert!(apply(Op::Unary(UnaryOp::Not), f32_type(&[4]), &[x]).is_err());
        // A unary op broadcasts its operand like every elementwise op.
        let out = apply(
            Op::Unary(UnaryOp::Neg),
            f32_type(&[2, 2]),
            &[f32s(&[2], &[1.0, 2.0])],
        )
        .unwrap();
        assert_close(&out, &[-1.0, -2.0, -1.0, -2.0]);
    }

    #[test]
    fn select_broadcasts_all_three_operands() {
        let condition = bools(&[2, 1], &[true, false]);
        let if_true = ramp(&[3]);
        let if_false = f32s(&[], &[-1.0]);
        let out = apply(
            Op::Select,
            f32_type(&[2, 3]),
            &[condition.clone(), if_true, if_false],
        )
        .unwrap();
        assert_close(&out, &[0.0, 1.0, 2.0, -1.0, -1.0, -1.0]);
        let error = apply(
            Op::Select,
            f32_type(&[2, 3]),
            &[condition.clone(), ramp(&[3]), i64s(&[], &[1])],
        )
        .unwrap_err();
        assert!(error.message.contains("dtypes differ"), "{}", error.message);
        assert!(apply(
            Op::Select,
            f32_type(&[2, 3]),
            &[ramp(&[2, 1]), ramp(&[3]), ramp(&[3])]
        )
        .is_err());
    }

    #[test]
    fn cast_between_every_dtype() {
        let x = f32s(&[5], &[-2.7, -0.5, 0.0, 0.5, 2.7]);
        let out = apply(Op::Cast, typed(DType::I64, &[5]), std::slice::from_ref(&x)).unwrap();
        assert_eq!(out.as_i64().unwrap(), &[-2, 0, 0, 0, 2]);
        let out = apply(Op::Cast, typed(DType::Bool, &[5]), &[x]).unwrap();
        assert_eq!(out.as_bool().unwrap(), &[true, true, false, true, true]);
        let flags = bools(&[2], &[true, false]);
        let out = apply(Op::Cast, f32_type(&[2]), std::slice::from_ref(&flags)).unwrap();
        assert_close(&out, &[1.0, 0.0]);
        let out = apply(Op::Cast, typed(DType::I64, &[2]), &[flags]).unwrap();
        assert_eq!(out.as_i64().unwrap(), &[1, 0]);
        let integers = i64s(&[3], &[-3, 0, 7]);
        let out = apply(Op::Cast, f32_type(&[3]), std::slice::from_ref(&integers)).unwrap();
        assert_close(&out, &[-3.0, 0.0, 7.0]);
        let out = apply(Op::Cast, typed(DType::Bool, &[3]), &[integers]).unwrap();
        assert_eq!(out.as_bool().unwrap(), &[true, false, true]);
    }

    // --- Reductions.

    #[test]
    fn reductions_with_and_without_keep_dims() {
        // x[i, j, k] = 12 i + 4 j + k over [2, 3, 4].
        let x = ramp(&[2, 3, 4]);
        let reduce = |op, axes: Vec<usize>, keep_dims, dims: &[i64]| {
            apply(
                Op::Reduce {
                    op,
                    axes,
                    keep_dims,
                },
                f32_type(dims),
                std::slice::from_ref(&x),
            )
            .unwrap()
        };
        // Sum over i and k: 4 * 12 + 2 * (0 + 1 + 2 + 3) + 8 * 4 j = 60 + 32 j.
        let sum = reduce(ReduceOp::Sum, vec![0, 2], true, &[1, 3, 1]);
        assert_eq!(sum.shape, vec![1, 3, 1]);
        assert_close(&sum, &[60.0, 92.0, 124.0]);
        let sum = reduce(ReduceOp::Sum, vec![2, 0], false, &[3]);
        assert_close(&sum, &[60.0, 92.0, 124.0]);
        // Mean over j: 12 i + 4 + k.
        let mean = reduce(ReduceOp::Mean, vec![1], false, &[2, 4]);
        assert_close(&mean, &[4.0, 5.0, 6.0, 7.0, 16.0, 17.0, 18.0, 19.0]);
        let max = reduce(ReduceOp::Max, vec![2], false, &[2, 3]);
        assert_close(&max, &[3.0, 7.0, 11.0, 15.0, 19.0, 23.0]);
        let min = reduce(ReduceOp::Min, vec![0, 1, 2], true, &[1, 1, 1]);
        assert_close(&min, &[0.0]);
        let everything = reduce(ReduceOp::Sum, vec![0, 1, 2], false, &[]);
        assert_close(&everything, &[276.0]);

        let with_nan = f32s(&[2, 2], &[1.0, f32::NAN, 3.0, 4.0]);
        let max = apply(
            Op::Reduce {
                op: ReduceOp::Max,
                axes: vec![1],
                keep_dims: false,
            },
            f32_type(&[2]),
            &[with_nan],
        );
        assert_close(&max.unwrap(), &[f32::NAN, 4.0]);

        let integers = i64s(&[2, 3], &[1, -2, 3, 4, 5, -6]);
        let sum = apply(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![0],
                keep_dims: false,
            },
            typed(DType::I64, &[3]),
            std::slice::from_ref(&integers),
        );
        assert_eq!(sum.unwrap().as_i64().unwrap(), &[5, 3, -3]);
        let min = apply(
            Op::Reduce {
                op: ReduceOp::Min,
                axes: vec![1],
                keep_dims: true,
            },
            typed(DType::I64, &[2, 1]),
            &[integers],
        );
        assert_eq!(min.unwrap().as_i64().unwrap(), &[-2, -6]);

        let flags = bools(&[2, 2], &[false, true, false, false]);
        let any = apply(
            Op::Reduce {
                op: ReduceOp::Max,
                axes: vec![1],
                keep_dims: false,
            },
            typed(DType::Bool, &[2]),
            &[flags],
        );
        assert_eq!(any.unwrap().as_bool().unwrap(), &[true, false]);
    }

    #[test]
    fn bad_reductions_are_errors() {
        let x = ramp(&[2, 3]);
        let reduce = |axes: Vec<usize>, dims: &[i64]| {
            apply(
                Op::Reduce {
                    op: ReduceOp::Sum,
                    axes,
                    keep_dims: false,
                },
                f32_type(dims),
                std::slice::from_ref(&x),
            )
        };
        assert!(reduce(vec![2], &[2, 3]).is_err());
        assert!(reduce(vec![1, 1], &[2]).is_err());
        assert!(reduce(vec![1], &[3]).is_err());
        let empty = Tensor::from_f32(vec![2, 0], vec![]).unwrap();
        let max = apply(
            Op::Reduce {
                op: ReduceOp::Max,
                axes: vec![1],
                keep_dims: false,
            },
            f32_type(&[2]),
            std::slice::from_ref(&empty),
        );
        assert_eq!(max.unwrap_err().code, RUNTIME_ERROR);
        let sum = apply(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![1],
                keep_dims: false,
            },
            f32_type(&[2]),
            &[empty],
        );
        assert_close(&sum.unwrap(), &[0.0, 0.0]);
    }

    #[test]
    fn arg_max_takes_the_first_maximum() {
        let x = f32s(&[2, 3], &[1.0, 3.0, 3.0, 5.0, 2.0, 5.0]);
        let out = apply(
            Op::ArgMax {
                axis: 1,
                keep_dims: false,
            },
            typed(DType::I64, &[2]),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_eq!(out.as_i64().unwrap(), &[1, 0]);
        let out = apply(
            Op::ArgMax {
                axis: 1,
                keep_dims: true,
            },
            typed(DType::I64, &[2, 1]),
            std::slice::from_ref(&x),
        )
        .unwrap();
        assert_eq!(out.shape, vec![2, 1]);
        let out = apply(
            Op::ArgMax {
                axis: 0,
                keep_dims: false,
            },
            typed(DType::I64, &[3]),
            &[x],
        )
        .unwrap();
        assert_eq!(out.as_i64().unwrap(), &[1, 0, 1]);
        let with_nan = f32s(&[4], &[1.0, f32::NAN, 9.0, f32::NAN]);
        let out = apply(
            Op::ArgMax {
                axis: 0,
                keep_dims: false,
            },
            typed(DType::I64, &[]),
            &[with_nan],
        )
        .unwrap();
        assert_eq!(out.as_i64().unwrap(), &[1]);
        let integers = i64s(&[3], &[-5, 7, 7]);
        let out = apply(
            Op::ArgMax {
                axis: 0,
                keep_dims: false,
            },
            typed(DType::I64, &[]),
            &[integers],
        )
        .unwrap();
        assert_eq!(out.as_i64().unwrap(), &[1]);
    }

    // --- Movement.

    #[test]
    fn reshape_permute_and_expand() {
        let out = apply(Op::Reshape, f32_type(&[3, 2]), &[ramp(&[2, 3])]).unwrap();
        assert_eq!(out.shape, vec![3, 2]);
        assert_close(&out, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(apply(Op::Reshape, f32_type(&[4, 2]), &[ramp(&[2, 3])]).is_err());

        // out[a, b, c] = in[b, c, a] = 12 b + 4 c + a.
        let out = apply(
            Op::Permute {
                perm: vec![2, 0, 1],
            },
            f32_type(&[4, 2, 3]),
            &[ramp(&[2, 3, 4])],
        )
        .unwrap();
        let mut expected = Vec::new();
        for a in 0..4 {
            for b in 0..2 {
                for c in 0..3 {
                    expected.push((12 * b + 4 * c + a) as f32);
                }
            }
        }
        assert_close(&out, &expected);
        assert!(apply(
            Op::Permute {
                perm: vec![0, 0, 1]
            },
            f32_type(&[2, 2, 3]),
            &[ramp(&[2, 3, 4])]
        )
        .is_err());
        assert!(apply(
            Op::Permute { perm: vec![1, 0] },
            f32_type(&[3, 2]),
            &[ramp(&[2, 3, 4])]
        )
        .is_err());

        // [3, 1] -> [2, 3, 4]: a new leading axis and a size-1 axis stretched.
        let out = apply(Op::Expand, f32_type(&[2, 3, 4]), &[ramp(&[3, 1])]).unwrap();
        let expected: Vec<f32> = (0..24).map(|i| ((i / 4) % 3) as f32).collect();
        assert_close(&out, &expected);
        assert!(apply(Op::Expand, f32_type(&[2, 4]), &[ramp(&[3, 1])]).is_err());
    }

    #[test]
    fn slice_with_positive_and_negative_steps() {
        let x = ramp(&[10]);
        let slice = |start: i64, step: i64, count: i64| {
            apply(
                Op::Slice {
                    axis: 0,
                    start: Dim::constant(start),
                    step,
                },
                f32_type(&[count]),
                std::slice::from_ref(&x),
            )
        };
        assert_close(&slice(8, -3, 3).unwrap(), &[8.0, 5.0, 2.0]);
        assert_close(&slice(1, 4, 3).unwrap(), &[1.0, 5.0, 9.0]);
        assert_close(
            &slice(9, -1, 10).unwrap(),
            &[9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
        );
        // Running off either end is an error naming the index, never a panic.
        let error = slice(8, -3, 4).unwrap_err();
        assert!(error.message.contains("-1"), "{}", error.message);
        assert!(slice(1, 4, 4).is_err());
        assert!(slice(-1, 1, 1).is_err());
        assert!(slice(0, 0, 2).is_err());
        assert!(slice(i64::MAX, i64::MAX, 3).is_err());
        // Along a middle axis of a [2, 3, 2] tensor: rows 2 then 0.
        let out = apply(
            Op::Slice {
                axis: 1,
                start: Dim::constant(2),
                step: -2,
            },
            f32_type(&[2, 2, 2]),
            &[ramp(&[2, 3, 2])],
        )
        .unwrap();
        assert_close(&out, &[4.0, 5.0, 0.0, 1.0, 10.0, 11.0, 6.0, 7.0]);
    }

    #[test]
    fn concat_along_a_middle_axis() {
        let a = ramp(&[2, 1, 2]);
        let b = f32s(
            &[2, 2, 2],
            &[10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0],
        );
        let out = apply(
            Op::Concat { axis: 1 },
            f32_type(&[2, 3, 2]),
            &[a.clone(), b.clone()],
        )
        .unwrap();
        assert_close(
            &out,
            &[
                0.0, 1.0, 10.0, 11.0, 12.0, 13.0, 2.0, 3.0, 14.0, 15.0, 16.0, 17.0,
            ],
        );
        assert!(apply(
            Op::Concat { axis: 1 },
            f32_type(&[2, 4, 2]),
            &[a.clone(), b]
        )
        .is_err());
        assert!(apply(
            Op::Concat { axis: 1 },
            f32_type(&[2, 2, 2]),
            &[a, ramp(&[2, 1, 3])]
        )
        .is_err());
        let out = apply(
            Op::Concat { axis: 0 },
            typed(DType::I64, &[3]),
            &[i64s(&[1], &[5]), i64s(&[2], &[6, 7])],
        )
        .unwrap();
        assert_eq!(out.as_i64().unwrap(), &[5, 6, 7]);
    }

    // --- Contractions and windows.

    #[test]
    fn mat_mul_plain_and_with_batch_broadcast() {
        let a = f32s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = f32s(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
        let out = apply(Op::MatMul, f32_type(&[2, 2]), &[a.clone(), b.clone()]).unwrap();
        assert_close(&out, &[58.0, 64.0, 139.0, 154.0]);
        // [2, 1, 2, 3] x [3, 3, 2]: batch [2, 1] and [3] broadcast to [2, 3]. With a[i] = a * (i+1)
        // and b[j] = b + j (elementwise), each result block is (i+1) * (a x b + j * a x ones).
        let mut a_batch = Vec::new();
        for i in 0..2 {
            a_batch.extend(a.as_f32().unwrap().iter().map(|v| v * (i + 1) as f32));
        }
        let mut b_batch = Vec::new();
        for j in 0..3 {
            b_batch.extend(b.as_f32().unwrap().iter().map(|v| v + j as f32));
        }
        let out = apply(
            Op::MatMul,
            f32_type(&[2, 3, 2, 2]),
            &[f32s(&[2, 1, 2, 3], &a_batch), f32s(&[3, 3, 2], &b_batch)],
        )
        .unwrap();
        let row_sums = [6.0, 15.0];
        let base = [58.0, 64.0, 139.0, 154.0];
        let mut expected = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                for (position, value) in base.iter().enumerate() {
                    expected.push((i + 1) as f32 * (value + j as f32 * row_sums[position / 2]));
                }
            }
        }
        assert_close(&out, &expected);
        assert!(apply(Op::MatMul, f32_type(&[2, 2]), &[a.clone(), a]).is_err());
        assert!(apply(
            Op::MatMul,
            typed(DType::I64, &[1, 1]),
            &[i64s(&[1, 1], &[1]), i64s(&[1, 1], &[1])]
        )
        .is_err());
    }

    fn conv_op(stride: usize, padding: usize, groups: usize) -> Op {
        Op::Conv2d {
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [1, 1],
            groups,
        }
    }

    #[test]
    fn conv2d_with_stride_padding_and_bias() {
        // 3x3 input 1..9, 2x2 ones kernel, stride 2, padding 1: the four windows cover
        // {1}, {2, 3}, {4, 7}, {5, 6, 8, 9}.
        let input = f32s(
            &[1, 1, 3, 3],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        );
        let weight = f32s(&[1, 1, 2, 2], &[1.0; 4]);
        let bias = f32s(&[1], &[0.5]);
        let out = apply(
            conv_op(2, 1, 1),
            f32_type(&[1, 1, 2, 2]),
            &[input.clone(), weight.clone(), bias],
        )
        .unwrap();
        assert_close(&out, &[1.5, 5.5, 11.5, 28.5]);
        let out = apply(
            conv_op(2, 1, 1),
            f32_type(&[1, 1, 2, 2]),
            &[input.clone(), weight.clone()],
        )
        .unwrap();
        assert_close(&out, &[1.0, 5.0, 11.0, 28.0]);
        // A wrongly declared output size is an error.
        assert!(apply(conv_op(1, 1, 1), f32_type(&[1, 1, 2, 2]), &[input, weight]).is_err());
    }

    #[test]
    fn conv2d_with_groups() {
        // Two groups of one input channel each; output channel o reads input channel o / 2.
        let input = f32s(&[1, 2, 2, 2], &[1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0]);
        let weight = f32s(&[4, 1, 1, 1], &[1.0, 2.0, 3.0, -1.0]);
        let out = apply(
            conv_op(1, 0, 2),
            f32_type(&[1, 4, 2, 2]),
            &[input.clone(), weight.clone()],
        )
        .unwrap();
        assert_close(
            &out,
            &[
                1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 6.0, 8.0, 30.0, 60.0, 90.0, 120.0, -10.0, -20.0,
                -30.0, -40.0,
            ],
        );
        // groups = 3 does not divide 2 channels.
        assert!(apply(conv_op(1, 0, 3), f32_type(&[1, 4, 2, 2]), &[input, weight]).is_err());
    }

    #[test]
    fn max_and_average_pooling_with_padding() {
        let input = f32s(
            &[1, 1, 3, 3],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        );
        let pool = |kind, input: &Tensor| {
            apply(
                Op::Pool2d {
                    kind,
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [1, 1],
                },
                f32_type(&[1, 1, 2, 2]),
                std::slice::from_ref(input),
            )
            .unwrap()
        };
        assert_close(&pool(PoolKind::Max, &input), &[1.0, 3.0, 7.0, 9.0]);
        // Padding counts in the divisor: every window divides by 4.
        assert_close(&pool(PoolKind::Avg, &input), &[0.25, 1.25, 2.75, 7.0]);
        // Padding is -inf for max, so negative inputs are not clipped to 0.
        let negative = f32s(
            &[1, 1, 3, 3],
            &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0],
        );
        assert_close(&pool(PoolKind::Max, &negative), &[-1.0, -2.0, -4.0, -5.0]);
        // Odd size without padding: floor output size drops the last row and column.
        let out = apply(
            Op::Pool2d {
                kind: PoolKind::Max,
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            },
            f32_type(&[1, 1, 1, 1]),
            &[input],
        )
        .unwrap();
        assert_close(&out, &[5.0]);
    }

    // --- Indexing and sources.

    #[test]
    fn gather_takes_along_an_axis() {
        let table = ramp(&[3, 2]);
        let indices = i64s(&[1, 2], &[2, 0]);
        let out = apply(
            Op::Gather { axis: 0 },
            f32_type(&[1, 2, 2]),
            &[table.clone(), indices.clone()],
        )
        .unwrap();
        assert_close(&out, &[4.0, 5.0, 0.0, 1.0]);
        let columns = i64s(&[3], &[1, 1, 0]);
        let out = apply(
            Op::Gather { axis: 1 },
            f32_type(&[3, 3]),
            &[table.clone(), columns],
        )
        .unwrap();
        assert_close(&out, &[1.0, 1.0, 0.0, 3.0, 3.0, 2.0, 5.0, 5.0, 4.0]);
        let scalar_index = i64s(&[], &[1]);
        let out = apply(
            Op::Gather { axis: 0 },
            f32_type(&[2]),
            &[table.clone(), scalar_index],
        )
        .unwrap();
        assert_close(&out, &[2.0, 3.0]);
    }

    #[test]
    fn gather_with_an_out_of_range_index_is_an_error() {
        let table = ramp(&[3, 2]);
        for bad in [3, -1, i64::MIN, i64::MAX] {
            let error = apply(
                Op::Gather { axis: 0 },
                f32_type(&[2, 2]),
                &[table.clone(), i64s(&[2], &[0, bad])],
            )
            .unwrap_err();
            assert_eq!(error.code, RUNTIME_ERROR);
            assert!(
                error.message.contains(&bad.to_string()) && error.message.contains("0..3"),
                "{}",
                error.message
            );
        }
        let error = apply(
            Op::Gather { axis: 0 },
            f32_type(&[2, 2]),
            &[table, ramp(&[2])],
        )
        .unwrap_err();
        assert!(error.message.contains("indices"), "{}", error.message);
    }

    fn single_node(op: Op, ty: TensorType) -> Graph {
        let mut graph = Graph::new();
        let node = graph.add(op, ty, Span::DUMMY, &[]);
        graph.outputs.push(node);
        graph
    }

    #[test]
    fn fill_and_iota() {
        let graph = single_node(Op::Fill(Literal::I64(7)), typed(DType::I64, &[2, 2]));
        assert_eq!(
            evaluate(&graph, &[], &HashMap::new()).unwrap()[0]
                .as_i64()
                .unwrap(),
            &[7; 4]
        );
        let graph = single_node(Op::Fill(Literal::F32(1.0)), typed(DType::I64, &[2]));
        assert_eq!(
            evaluate(&graph, &[], &HashMap::new()).unwrap_err().code,
            RUNTIME_ERROR
        );

        let graph = single_node(Op::Iota { axis: 1 }, typed(DType::I64, &[2, 3]));
        assert_eq!(
            evaluate(&graph, &[], &HashMap::new()).unwrap()[0]
                .as_i64()
                .unwrap(),
            &[0, 1, 2, 0, 1, 2]
        );
        let graph = single_node(Op::Iota { axis: 0 }, f32_type(&[2, 3]));
        assert_close(
            &evaluate(&graph, &[], &HashMap::new()).unwrap()[0],
            &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        );
        let graph = single_node(Op::Iota { axis: 2 }, f32_type(&[2, 3]));
        assert_eq!(
            evaluate(&graph, &[], &HashMap::new()).unwrap_err().code,
            RUNTIME_ERROR
        );
    }

    #[test]
    fn a_huge_fill_is_refused_before_allocating() {
        let graph = single_node(
            Op::Fill(Literal::F32(0.0)),
            f32_type(&[1_000_000, 1_000_000]),
        );
        let error = evaluate(&graph, &[], &HashMap::new()).unwrap_err();
        assert_eq!(error.code, TENSOR_TOO_LARGE);
        assert!(error.message.contains("1000000000000"), "{}", error.message);
        // Even when the element count overflows usize.
        let graph = single_node(
            Op::Fill(Literal::F32(0.0)),
            f32_type(&[i64::MAX, i64::MAX, 4]),
        );
        assert_eq!(
            evaluate(&graph, &[], &HashMap::new()).unwrap_err().code,
            TENSOR_TOO_LARGE
        );
        // The limit is configurable.
        let graph = single_node(Op::Fill(Literal::F32(0.0)), f32_type(&[10, 10]));
        let options = EvalOptions { max_elements: 99 };
        let error = evaluate_with_options(&graph, &[], &HashMap::new(), &options).unwrap_err();
        assert_eq!(error.code, TENSOR_TOO_LARGE);
        assert!(evaluate_with_options(
            &graph,
            &[],
            &HashMap::new(),
            &EvalOptions { max_elements: 100 }
        )
        .is_ok());
    }

    #[test]
    fn dropout_is_the_identity() {
        let out = apply(
            Op::Dropout { rate: 0.5 },
            f32_type(&[2, 2]),
            &[ramp(&[2, 2])],
        )
        .unwrap();
        assert_close(&out, &[0.0, 1.0, 2.0, 3.0]);
        assert!(apply(Op::Dropout { rate: 0.5 }, f32_type(&[4]), &[ramp(&[2, 2])]).is_err());
    }

    #[test]
    fn intermediates_are_moved_or_shared_correctly() {
        // x -> neg -> reshape -> dropout -> output, and neg is also used by a later add, so it
        // must not be moved into the reshape.
        let mut graph = Graph::new();
        let x = add_input(&mut graph, "x", f32_type(&[2, 2]));
        let negated = graph.add(
            Op::Unary(UnaryOp::Neg),
            f32_type(&[2, 2]),
            Span::DUMMY,
            &[x],
        );
        let reshaped = graph.add(Op::Reshape, f32_type(&[4]), Span::DUMMY, &[negated]);
        let dropped = graph.add(
            Op::Dropout { rate: 0.1 },
            f32_type(&[4]),
            Span::DUMMY,
            &[reshaped],
        );
        let doubled = graph.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[2, 2]),
            Span::DUMMY,
            &[negated, negated],
        );
        graph.outputs = vec![dropped, doubled, x, dropped];
        let outputs = evaluate(&graph, &[ramp(&[2, 2])], &HashMap::new()).unwrap();
        assert_close(&outputs[0], &[0.0, -1.0, -2.0, -3.0]);
        assert_close(&outputs[1], &[0.0, -2.0, -4.0, -6.0]);
        assert_close(&outputs[2], &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(outputs[3], outputs[0]);

        // A single-use intermediate is moved into the reshape; a wrong reshape still fails.
        let mut graph = Graph::new();
        let x = add_input(&mut graph, "x", f32_type(&[2, 3]));
        let negated = graph.add(
            Op::Unary(UnaryOp::Neg),
            f32_type(&[2, 3]),
            Span::DUMMY,
            &[x],
        );
        let reshaped = graph.add(Op::Reshape, f32_type(&[3, 2]), Span::DUMMY, &[negated]);
        graph.outputs = vec![reshaped];
        let outputs = evaluate(&graph, &[ramp(&[2, 3])], &HashMap::new()).unwrap();
        assert_eq!(outputs[0].shape, vec![3, 2]);
        assert_close(&outputs[0], &[0.0, -1.0, -2.0, -3.0, -4.0, -5.0]);
        graph.node_mut(reshaped).ty = f32_type(&[4, 2]);
        let error = evaluate(&graph, &[ramp(&[2, 3])], &HashMap::new()).unwrap_err();
        assert_eq!(error.code, RUNTIME_ERROR);
        assert!(error.message.contains("reshape"), "{}", error.message);
    }

    #[test]
    fn a_scan_body_can_read_parameters_and_nest_scans() {
        // Outer scan over rows of a [2, 3] matrix; its body runs an inner scan summing the row
        // and scales the sum by a parameter, accumulating into the outer carry.
        let mut inner_body = Graph::new();
        let sum = add_input(&mut inner_body, "sum", f32_type(&[]));
        let element = add_input(&mut inner_body, "element", f32_type(&[]));
        let next = inner_body.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[]),
            Span::DUMMY,
            &[sum, element],
        );
        inner_body.outputs = vec![next];

        let mut outer_body = Graph::new();
        let total = add_input(&mut outer_body, "total", f32_type(&[]));
        let row = add_input(&mut outer_body, "row", f32_type(&[3]));
        let zero = outer_body.add(Op::Fill(Literal::F32(0.0)), f32_type(&[]), Span::DUMMY, &[]);
        let inner = outer_body.add(
            Op::Scan(ScanOp {
                body: Box::new(inner_body),
                n_carry: 1,
                n_sequences: 1,
                axis: 0,
                length: Dim::constant(3),
                reverse: false,
                result_types: vec![f32_type(&[])],
            }),
            f32_type(&[]),
            Span::DUMMY,
            &[zero, row],
        );
        let row_sum = outer_body.add(
            Op::Project { index: 0 },
            f32_type(&[]),
            Span::DUMMY,
            &[inner],
        );
        let scale = outer_body.add(
            Op::Param {
                name: "scale".into(),
                init: Init::Ones,
            },
            f32_type(&[]),
            Span::DUMMY,
            &[],
        );
        let scaled = outer_body.add(
            Op::Binary(BinaryOp::Mul),
            f32_type(&[]),
            Span::DUMMY,
            &[row_sum, scale],
        );
        let next_total = outer_body.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[]),
            Span::DUMMY,
            &[total, scaled],
        );
        outer_body.outputs = vec![next_total, scaled];

        let mut graph = Graph::new();
        let matrix = add_input(&mut graph, "m", f32_type(&[2, 3]));
        let zero = graph.add(Op::Fill(Literal::F32(0.0)), f32_type(&[]), Span::DUMMY, &[]);
        let outer = graph.add(
            Op::Scan(ScanOp {
                body: Box::new(outer_body),
                n_carry: 1,
                n_sequences: 1,
                axis: 0,
                length: Dim::constant(2),
                reverse: false,
                result_types: vec![f32_type(&[]), f32_type(&[2])],
            }),
            f32_type(&[]),
            Span::DUMMY,
            &[zero, matrix],
        );
        let final_total = graph.add(
            Op::Project { index: 0 },
            f32_type(&[]),
            Span::DUMMY,
            &[outer],
        );
        let per_row = graph.add(
            Op::Project { index: 1 },
            f32_type(&[2]),
            Span::DUMMY,
            &[outer],
        );
        graph.outputs = vec![final_total, per_row];

        let params = HashMap::from([("scale".to_string(), f32s(&[], &[10.0]))]);
        let outputs = evaluate(&graph, &[ramp(&[2, 3])], &params).unwrap();
        assert_close(&outputs[0], &[150.0]);
        assert_close(&outputs[1], &[30.0, 120.0]);
        let error = evaluate(&graph, &[ramp(&[2, 3])], &HashMap::new()).unwrap_err();
        assert!(error.message.contains("scale"), "{}", error.message);
    }

    // --- Parameters.

    #[test]
    fn parameters_are_looked_up_by_name_and_checked() {
        let mut graph = Graph::new();
        let x = add_input(&mut graph, "x", f32_type(&[2]));
        let weight = graph.add(
            Op::Param {
                name: "layer.weight".into(),
                init: Init::Zeros,
            },
            f32_type(&[2]),
            Span::new(5, 9),
            &[],
        );
        let product = graph.add(
            Op::Binary(BinaryOp::Mul),
            f32_type(&[2]),
            Span::DUMMY,
            &[x, weight],
        );
        // A parameter nobody uses does not need a value.
        graph.add(
            Op::Param {
                name: "unused".into(),
                init: Init::Zeros,
            },
            f32_type(&[3]),
            Span::DUMMY,
            &[],
        );
        graph.outputs.push(product);
        let inputs = [f32s(&[2], &[3.0, 4.0])];

        let params = HashMap::from([("layer.weight".to_string(), f32s(&[2], &[2.0, -1.0]))]);
        assert_close(
            &evaluate(&graph, &inputs, &params).unwrap()[0],
            &[6.0, -4.0],
        );

        let error = evaluate(&graph, &inputs, &HashMap::new()).unwrap_err();
        assert_eq!((error.code, error.span), (RUNTIME_ERROR, Span::new(5, 9)));
        assert!(error.message.contains("layer.weight"), "{}", error.message);

        for wrong in [f32s(&[3], &[1.0, 2.0, 3.0]), i64s(&[2], &[1, 2])] {
            let params = HashMap::from([("layer.weight".to_string(), wrong)]);
            let error = evaluate(&graph, &inputs, &params).unwrap_err();
            assert_eq!(error.code, RUNTIME_ERROR);
            assert!(error.message.contains("layer.weight"), "{}", error.message);
        }
        // A tensor whose data does not match its own shape is refused, not indexed.
        let inconsistent = Tensor {
            shape: vec![2],
            data: crate::interp::TensorData::F32(vec![1.0]),
        };
        let params = HashMap::from([("layer.weight".to_string(), inconsistent)]);
        assert_eq!(
            evaluate(&graph, &inputs, &params).unwrap_err().code,
            RUNTIME_ERROR
        );
    }

    // --- Symbols and inputs.

    /// `x: f32[B, 3]`, `y: f32[B, 3]` -> `x + y`, and a `[B, 2]` fill.
    fn symbolic_graph() -> Graph {
        let batch = Dim::symbol("B");
        let row = TensorType::new(DType::F32, vec![batch.clone(), Dim::constant(3)]);
        let mut graph = Graph::new();
        let x = add_input(&mut graph, "x", row.clone());
        let y = add_input(&mut graph, "y", row.clone());
        let sum = graph.add(Op::Binary(BinaryOp::Add), row, Span::DUMMY, &[x, y]);
        let filled = graph.add(
            Op::Fill(Literal::F32(1.0)),
            TensorType::new(DType::F32, vec![batch, Dim::constant(2)]),
            Span::DUMMY,
            &[],
        );
        graph.outputs = vec![sum, filled];
        graph
    }

    #[test]
    fn symbols_bind_from_input_shapes() {
        let graph = symbolic_graph();
        let outputs = evaluate(&graph, &[ramp(&[2, 3]), ramp(&[2, 3])], &HashMap::new()).unwrap();
        assert_close(&outputs[0], &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(outputs[1].shape, vec![2, 2]);
        let outputs = evaluate(&graph, &[ramp(&[5, 3]), ramp(&[5, 3])], &HashMap::new()).unwrap();
        assert_eq!(outputs[1].shape, vec![5, 2]);
        let bindings = bind_input_symbols(&graph, &[ramp(&[4, 3]), ramp(&[4, 3])]).unwrap();
        assert_eq!(bindings, HashMap::from([("B".to_string(), 4)]));
    }

    #[test]
    fn mismatching_inputs_are_errors_not_panics() {
        let graph = symbolic_graph();
        let cases: Vec<(Vec<Tensor>, &str)> = vec![
            (
                vec![ramp(&[2, 4]), ramp(&[2, 4])],
                "input `x` expects f32[B, 3], got f32[2, 4]",
            ),
            (
                vec![ramp(&[2, 3]), ramp(&[3, 3])],
                "`B` is 2 elsewhere but 3 here",
            ),
            (vec![ramp(&[2, 3])], "takes 2 input(s) but 1 were given"),
            (
                vec![ramp(&[2, 3]), ramp(&[2, 3, 1])],
                "input `y` expects f32[B, 3], got f32[2, 3, 1]",
            ),
            (
                vec![ramp(&[2, 3]), i64s(&[2, 3], &[0; 6])],
                "input `y` expects f32[B, 3], got i64[2, 3]",
            ),
        ];
        for (inputs, expected) in cases {
            let error = evaluate(&graph, &inputs, &HashMap::new()).unwrap_err();
            assert_eq!(error.code, INPUT_MISMATCH);
            assert!(
                error.message.contains(expected),
                "{} does not contain {expected}",
                error.message
            );
        }
        let inconsistent = Tensor {
            shape: vec![2, 3],
            data: crate::interp::TensorData::F32(vec![0.0; 5]),
        };
        let error = evaluate(&graph, &[inconsistent, ramp(&[2, 3])], &HashMap::new()).unwrap_err();
        assert_eq!(error.code, INPUT_MISMATCH);
    }

    #[test]
    fn compound_input_dims_are_checked_after_binding() {
        // x: f32[B], y: f32[2*B + 1].
        let batch = Dim::symbol("B");
        let compound = batch
            .mul(&Dim::constant(2))
            .unwrap()
            .add(&Dim::constant(1))
            .unwrap();
        let mut graph = Graph::new();
        let x = add_input(&mut graph, "x", TensorType::new(DType::F32, vec![batch]));
        let y = add_input(
            &mut graph,
            "y",
            TensorType::new(DType::F32, vec![compound.clone()]),
        );
        graph.outputs = vec![x, y];
        assert!(evaluate(&graph, &[ramp(&[3]), ramp(&[7])], &HashMap::new()).is_ok());
        let error = evaluate(&graph, &[ramp(&[3]), ramp(&[6])], &HashMap::new()).unwrap_err();
        assert_eq!(error.code, INPUT_MISMATCH);
        assert!(error.message.contains("f32[2*B + 1]"), "{}", error.message);
        // Alone, `2*B + 1` cannot bind B.
        let mut graph = Graph::new();
        let y = add_input(&mut graph, "y", TensorType::new(DType::F32, vec![compound]));
        graph.outputs = vec![y];
        assert_eq!(
            evaluate(&graph, &[ramp(&[7])], &HashMap::new())
                .unwrap_err()
                .code,
            RUNTIME_ERROR
        );
    }

    #[test]
    fn an_unbound_symbol_in_a_node_shape_is_an_error() {
        let graph = single_node(
            Op::Fill(Literal::F32(0.0)),
            TensorType::new(DType::F32, vec![Dim::symbol("N")]),
        );
        let error = evaluate(&graph, &[], &HashMap::new()).unwrap_err();
        assert_eq!(error.code, RUNTIME_ERROR);
        assert!(
            error.message.contains("unbound symbol(s) N"),
            "{}",
            error.message
        );
        let graph = single_node(Op::Fill(Literal::F32(0.0)), f32_type(&[-3]));
        assert_eq!(
            evaluate(&graph, &[], &HashMap::new()).unwrap_err().code,
            RUNTIME_ERROR
        );
    }

    // --- Scans.

    /// A scan that sums a length-4 sequence: the carry is the running sum, and each step also
    /// outputs it.
    fn cumulative_sum_graph(reverse: bool) -> Graph {
        let mut body = Graph::new();
        let state = add_input(&mut body, "state", f32_type(&[]));
        let element = add_input(&mut body, "element", f32_type(&[]));
        let sum = body.add(
            Op::Binary(BinaryOp::Add),
            f32_type(&[]),
            Span::DUMMY,
            &[state, element],
        );
        body.outputs = vec![sum, sum];

        let mut graph = Graph::new();
        let sequence = add_input(&mut graph, "xs", f32_type(&[4]));
        let zero = graph.add(Op::Fill(Literal::F32(0.0)), f32_type(&[]), Span::DUMMY, &[]);
        let scan = graph.add(
            Op::Scan(ScanOp {
                body: Box::new(body),
                n_carry: 1,
                n_sequences: 1,
                axis: 0,
                length: Dim::constant(4),
                reverse,
                result_types: vec![f32_type(&[]), f32_type(&[4])],
            }),
            f32_type(&[]),
            Span::DUMMY,
            &[zero, sequence],
        );
        let final_state = graph.add(
            Op::Project { index: 0 },
            f32_type(&[]),
            Span::DUMMY,
            &[scan],
        );
        let stacked = graph.add(
            Op::Project { index: 1 },
            f32_type(&[4]),
            Span::DUMMY,
            &[scan],
        );
        graph.outputs = vec![final_state, stacked];
        graph
    }

    #[test]
    fn scan_computes_a_cumulative_sum() {
        let inputs = [f32s(&[4], &[1.0, 2.0, 3.0, 4.0])];
        let outputs = evaluate(&cumulative_sum_graph(false), &inputs, &HashMap::new()).unwrap();
        assert_close(&outputs[0], &[10.0]);
        assert_close(&outputs[1], &[1.0, 3.0, 6.0, 10.0]);
    }

    #[test]
    fn reverse_scan_stacks_outputs_at_their_positions() {
        let inputs = [f32s(&[4], &[1.0, 2.0, 3.0, 4.0])];
        let outputs = evaluate(&cumulative_sum_graph(true), &inputs, &HashMap::new()).unwrap();
        assert_close(&outputs[0], &[10.0]);
        // Visiting 4, 3, 2, 1 gives running sums 4, 7, 9, 10, each stored where its element was.
        assert_close(&outputs[1], &[10.0, 9.0, 7.0, 4.0]);
    }

    #[test]
    fn scan_over_a_middle_axis_with_symbols_and_a_capture() {
        // h: f32[B, 2] starts at 0; xs: f32[B, T, 2]; w: f32[2] is captured.
        // Each step: h = h + x_t * w, output h. Body types mention the outer symbol B.
        let (batch, time) = (Dim::symbol("B"), Dim::symbol("T"));
        let state_type = TensorType::new(DType::F32, vec![batch.clone(), Dim::constant(2)]);
        let mut body = Graph::new();
        let h = add_input(&mut body, "h", state_type.clone());
        let x = add_input(&mut body, "x", state_type.clone());
        let w = add_input(&mut body, "w", f32_type(&[2]));
        let scaled = body.add(
            Op::Binary(BinaryOp::Mul),
            state_type.clone(),
            Span::DUMMY,
            &[x, w],
        );
        let next = body.add(
            Op::Binary(BinaryOp::Add),
            state_type.clone(),
            Span::DUMMY,
            &[h, scaled],
        );
        body.outputs = vec![next, next];

        let sequence_type = TensorType::new(
            DType::F32,
            vec![batch.clone(), time.clone(), Dim::constant(2)],
        );
        let mut graph = Graph::new();
        let xs = add_input(&mut graph, "xs", sequence_type.clone());
        let weights = add_input(&mut graph, "w", f32_type(&[2]));
        let zero = graph.add(
            Op::Fill(Literal::F32(0.0)),
            state_type.clone(),
            Span::DUMMY,
            &[],
        );
        let scan = graph.add(
            Op::Scan(ScanOp {
                body: Box::new(body),
                n_carry: 1,
                n_sequences: 1,
                axis: 1,
                length: time,
                reverse: false,
                result_types: vec![state_type.clone(), sequence_type.clone()],
            }),
            f32_type(&[]),
            Span::DUMMY,
            &[zero, xs, weights],
        );
        let final_state = graph.add(Op::Project { index: 0 }, state_type, Span::DUMMY, &[scan]);
        let stacked = graph.add(
            Op::Project { index: 1 },
            sequence_type,
            Span::DUMMY,
            &[scan],
        );
        graph.outputs = vec![final_state, stacked];

        // B = 2, T = 3; xs[b, t, c] = 6 b + 2 t + c; w = [1, 10].
        let inputs = [ramp(&[2, 3, 2]), f32s(&[2], &[1.0, 10.0])];
        let outputs = evaluate(&graph, &inputs, &HashMap::new()).unwrap();
        let mut expected_stacked = vec![0.0; 12];
        let mut expected_final = vec![0.0; 4];
        for b in 0..2 {
            for c in 0..2 {
                let mut running = 0.0;
                for t in 0..3 {
                    running += (6 * b + 2 * t + c) as f32 * [1.0, 10.0][c];
                    expected_stacked[b * 6 + t * 2 + c] = running;
                }
                expected_final[b * 2 + c] = running;
            }
        }
        assert_eq!(outputs[1].shape, vec![2, 3, 2]);
        assert_close(&outputs[0], &expected_final);
        assert_close(&outputs[1], &expected_stacked);

        // Zero steps: the initial state and an empty stack.
        let outputs = evaluate(
            &graph,
            &[ramp(&[2, 0, 2]), f32s(&[2], &[1.0, 10.0])],
            &HashMap::new(),
        )
        .unwrap();
        assert_close(&outputs[0], &[0.0; 4]);
        assert_eq!(outputs[1].shape, vec![2, 0, 2]);
    }

    #[test]
    fn malformed_scans_are_errors() {
        let graph = cumulative_sum_graph(false);
        let inputs = [f32s(&[4], &[1.0, 2.0, 3.0, 4.0])];
        let scan_id = graph
            .node_ids()
            .into_iter()
            .find(|&id| matches!(graph.node(id).op, Op::Scan(_)))
            .unwrap();
        let mutate = |change: &dyn Fn(&mut ScanOp)| {
            let mut broken = graph.clone();
            if let Op::Scan(scan) = &mut broken.node_mut(scan_id).op {
                change(scan);
            }
            evaluate(&broken, &inputs, &HashMap::new()).unwrap_err()
        };
        for error in [
            mutate(&|scan| scan.n_carry = 5),
            mutate(&|scan| scan.n_carry = usize::MAX),
            mutate(&|scan| scan.length = Dim::constant(3)),
            mutate(&|scan| scan.axis = 1),
            mutate(&|scan| {
                scan.result_types.pop();
            }),
            mutate(&|scan| scan.result_types[0] = f32_type(&[1])),
            mutate(&|scan| scan.result_types[1] = f32_type(&[5])),
            mutate(&|scan| scan.body.outputs.clear()),
        ] {
            assert_eq!(error.code, RUNTIME_ERROR, "{}", error.message);
        }
        // A carried state that changes shape in the body is the scan's fault.
        let error = mutate(&|scan| {
            let body = &mut scan.body;
            let widened = body.add(Op::Expand, f32_type(&[2]), Span::DUMMY, &[body.outputs[0]]);
            body.outputs[0] = widened;
            scan.result_types[0] = f32_type(&[2]);
        });
        assert_eq!(error.code, RUNTIME_ERROR, "{}", error.message);
    }

    // --- Malformed graphs and diagnostics.

    #[test]
    fn malformed_graphs_never_panic() {
        let x = ramp(&[2, 3]);
        // Wrong operand counts.
        assert!(apply(
            Op::Binary(BinaryOp::Add),
            f32_type(&[2, 3]),
            std::slice::from_ref(&x)
        )
        .is_err());
        assert!(apply(
            Op::Unary(UnaryOp::Neg),
            f32_type(&[2, 3]),
            &[x.clone(), x.clone()]
        )
        .is_err());
        assert!(apply(Op::Concat { axis: 0 }, f32_type(&[2, 3]), &[]).is_err());
        assert!(apply(
            conv_op(1, 0, 1),
            f32_type(&[2, 3]),
            std::slice::from_ref(&x)
        )
        .is_err());
        // Ops on operands of the wrong rank.
        assert!(apply(
            conv_op(1, 0, 1),
            f32_type(&[1, 1, 1, 1]),
            &[x.clone(), x.clone()]
        )
        .is_err());
        let pool = Op::Pool2d {
            kind: PoolKind::Avg,
            kernel: [0, 2],
            stride: [1, 1],
            padding: [0, 0],
        };
        assert!(apply(pool, f32_type(&[1, 1, 1, 1]), &[ramp(&[1, 1, 3, 3])]).is_err());
        assert!(apply(
            Op::ArgMax {
                axis: 5,
                keep_dims: false
            },
            typed(DType::I64, &[2]),
            std::slice::from_ref(&x)
        )
        .is_err());
        // A project of something that is not a scan.
        assert!(apply(
            Op::Project { index: 0 },
            f32_type(&[2, 3]),
            std::slice::from_ref(&x)
        )
        .is_err());
        // A node whose declared dtype differs from what its op produces.
        assert!(apply(
            Op::Unary(UnaryOp::Neg),
            typed(DType::I64, &[2, 3]),
            std::slice::from_ref(&x)
        )
        .is_err());

        // Outputs or inputs naming missing nodes; an input node not listed as an input.
        let mut graph = Graph::new();
        let ghost = graph.add(Op::Fill(Literal::F32(0.0)), f32_type(&[]), Span::DUMMY, &[]);
        graph.remove(ghost);
        graph.outputs = vec![ghost];
        assert_eq!(
            evaluate(&graph, &[], &HashMap::new()).unwrap_err().code,
            RUNTIME_ERROR
        );
        graph.outputs.clear();
        graph.inputs = vec![ghost];
        assert_eq!(
            evaluate(&graph, std::slice::from_ref(&x), &HashMap::new())
                .unwrap_err()
                .code,
            RUNTIME_ERROR
        );
        let mut graph = Graph::new();
        let stray = graph.add(
            Op::Input {
                index: 0,
                name: "x".into(),
            },
            f32_type(&[2, 3]),
            Span::DUMMY,
            &[],
        );
        graph.outputs = vec![stray];
        assert_eq!(
            evaluate(&graph, &[], &HashMap::new()).unwrap_err().code,
            RUNTIME_ERROR
        );
        // A graph input that is not an input node.
        let mut graph = Graph::new();
        let fill = graph.add(
            Op::Fill(Literal::F32(0.0)),
            f32_type(&[2, 3]),
            Span::DUMMY,
            &[],
        );
        graph.inputs = vec![fill];
        graph.outputs = vec![fill];
        assert_eq!(
            evaluate(&graph, std::slice::from_ref(&x), &HashMap::new())
                .unwrap_err()
                .code,
            RUNTIME_ERROR
        );
        // A scan read directly, without project.
        let mut graph = cumulative_sum_graph(false);
        let scan = graph
            .node_ids()
            .into_iter()
            .find(|&id| matches!(graph.node(id).op, Op::Scan(_)))
            .unwrap();
        graph.outputs = vec![scan];
        let inputs = [f32s(&[4], &[1.0, 2.0, 3.0, 4.0])];
        assert_eq!(
            evaluate(&graph, &inputs, &HashMap::new()).unwrap_err().code,
            RUNTIME_ERROR
        );
        let negated = graph.add(Op::Unary(UnaryOp::Neg), f32_type(&[]), Span::DUMMY, &[scan]);
        graph.outputs = vec![negated];
        assert_eq!(
            evaluate(&graph, &inputs, &HashMap::new()).unwrap_err().code,
            RUNTIME_ERROR
        );
        // A project index past the scan's results.
        let project = graph.add(
            Op::Project { index: 7 },
            f32_type(&[]),
            Span::DUMMY,
            &[scan],
        );
        graph.outputs = vec![project];
        assert_eq!(
            evaluate(&graph, &inputs, &HashMap::new()).unwrap_err().code,
            RUNTIME_ERROR
        );
    }

    #[test]
    fn errors_convert_to_diagnostics() {
        let span = Span::new(3, 8);
        for (error, label) in [
            (EvalError::runtime("boom", span), "while evaluating this"),
            (
                EvalError::input_mismatch("bad input", span),
                "declared here",
            ),
            (
                EvalError::too_large("huge", span),
                "this tensor is too large",
            ),
        ] {
            let diagnostic = error.to_diagnostic();
            assert_eq!(diagnostic.code, error.code);
            assert_eq!(diagnostic.message, error.message);
            assert_eq!(diagnostic.primary_span(), Some(span));
            assert_eq!(diagnostic.labels[0].message, label);
        }
        assert_eq!(
            EvalError::runtime("boom", span).to_string(),
            "runtime-error: boom"
        );
    }
}
