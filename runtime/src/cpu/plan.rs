//! The CPU backend's program: every graph value gets a home and every scheduled kernel an
//! instruction, decided once at compile time for any binding of the symbolic dims.
//!
//! Homes: inputs and params are read where the caller keeps them; a reshape (and dropout at
//! inference) is an alias of its operand, never a copy; every other value is computed into a
//! buffer. A value that depends on no input and has a concrete shape (a weight transpose, a
//! causal mask of fixed size, a folded constant) is *static*: it is computed once when params
//! are bound, not on every run.

use super::epilogue::{fuse_epilogues, EpilogueKernel};
use super::fused::{kernel_steps, static_accesses};
use super::jit::{element_cost, Access, Jit, KernelFn};
use super::kernels::conv::ConvGeometry;
use super::kernels::packed;
use super::kernels::pool::PoolGeometry;
use super::rows::{group_rows, MemberKind, RowGroup};
use modelc_compiler::ir::{DType, Dim, Graph, NodeId, Op, ReduceOp, TensorType};
use modelc_compiler::schedule::{schedule, KernelKind, Schedule};
use std::collections::{HashMap, HashSet};

pub type ValueId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    /// Input `index` of the graph, read in place.
    Input(usize),
    /// Param `index` of [`Program::params`], read in place.
    Param(usize),
    /// A buffer written by one instruction.
    Computed,
    /// The same bytes as another value (a reshape).
    Alias(ValueId),
    /// A contraction's result that its epilogue consumed ([`super::epilogue`]): never stored.
    Absorbed,
    /// In a scan body, computed once per scan from inputs that are the same at every step (a
    /// recurrent weight's packed form), into storage the scan keeps for all its steps.
    Hoisted,
}

#[derive(Clone, Debug)]
pub struct ValueInfo {
    /// The node that defines the value (for a scan result, the scan node).
    pub node: NodeId,
    pub dtype: DType,
    pub shape: Vec<Dim>,
    pub home: Home,
    /// Computed once at bind time (see the module comment).
    pub is_static: bool,
}

pub enum InstrKind {
    Fused {
        function: KernelFn,
        accesses: Vec<Access>,
        split: usize,
        /// Work per element ([`element_cost`]), for the choice to split over threads.
        cost: usize,
    },
    /// A matrix product; an operand marked transposed is the source of a folded `.T` (its
    /// last two axes swapped), read through strides instead of copied.
    MatMul {
        transposed: (bool, bool),
        /// The third input is a bias added to every row (a fused `add` epilogue).
        bias: bool,
        /// The input slot of the right operand packed for [`packed`] (a weight), which the
        /// product then runs on.
        packed: Option<usize>,
        epilogue: Option<Box<EpilogueKernel>>,
    },
    /// A weight packed in 16-column panels for the packed product kernel (static).
    PackRhs {
        /// The product reads the stored matrix transposed.
        transposed: bool,
    },
    /// A convolution; a third input (of its own, see [`EpilogueKernel::own_inputs`]) is a bias.
    Conv2d {
        geometry: ConvGeometry,
        epilogue: Option<Box<EpilogueKernel>>,
    },
    /// The gradient of a convolution with respect to its input: (output gradient, weight).
    Conv2dBackwardInput(ConvGeometry),
    /// The gradient of a convolution with respect to its weight: (input, output gradient).
    Conv2dBackwardWeight(ConvGeometry),
    Pool2d(PoolGeometry),
    /// The gradient of pooling: (forward input, output gradient).
    Pool2dBackward(PoolGeometry),
    /// A reduction over the trailing axes from `first_axis` on.
    ReduceRows {
        op: ReduceOp,
        first_axis: usize,
    },
    /// A sum or mean over the leading axes before `kept.start` and the trailing axes from
    /// `kept.end` on (a bias gradient).
    ReduceOuter {
        op: ReduceOp,
        kept: std::ops::Range<usize>,
    },
    Permute {
        perm: Vec<usize>,
    },
    Expand,
    Slice {
        axis: usize,
        start: Dim,
        step: i64,
    },
    Concat {
        axis: usize,
    },
    Gather {
        axis: usize,
    },
    /// The adjoint of a slice (f32): zeros with the operand at `start, start + step, ...`.
    SliceScatter {
        axis: usize,
        start: Dim,
        step: i64,
    },
    /// The adjoint of a gather (f32 updates, i64 indices).
    ScatterAdd {
        axis: usize,
    },
    /// Every element set to one value.
    Fill(modelc_compiler::ir::Literal),
    Scan(Box<ScanPlan>),
    /// Row reductions with the elementwise kernels around them, run tile by tile over rows.
    Rows(Box<RowGroup>),
    /// Any other op, through the interpreter's kernel for it.
    Interpret,
}

pub struct ScanPlan {
    pub body: Program,
    pub n_carry: usize,
    pub n_sequences: usize,
    pub axis: usize,
    pub length: Dim,
    pub reverse: bool,
}

pub struct Instr {
    pub kind: InstrKind,
    /// The node it computes (for a fused kernel, its result; for a scan, the scan node).
    pub node: NodeId,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    pub is_static: bool,
}

pub struct Program {
    pub graph: Graph,
    pub schedule: Schedule,
    pub values: Vec<ValueInfo>,
    pub instrs: Vec<Instr>,
    pub inputs: Vec<ValueId>,
    /// Param names, in the order of [`Home::Param`] indices, with their values.
    pub params: Vec<(String, ValueId)>,
    pub outputs: Vec<ValueId>,
    /// The CLIF text of each compiled fused kernel, by schedule index (a kernel identical to
    /// an earlier one reuses its code and has no entry).
    pub clif: Vec<(usize, String)>,
    /// Keeps the compiled code (this program's and its scan bodies') alive as long as the
    /// program; `None` in a scan body, whose code the enclosing program keeps.
    _jit: Option<Jit>,
}

// SAFETY: compiled kernels are pure functions of their arguments; the JIT memory is immutable
// after finalization, and nothing else in a program is shared mutably.
unsafe impl Send for Program {}
unsafe impl Sync for Program {}

impl Program {
    /// Plans an optimized graph.
    pub fn new(graph: Graph) -> Result<Program, String> {
        let mut code = Code::default();
        let mut program = Program::plan(graph, &mut code, None)?;
        program._jit = code.jit;
        Ok(program)
    }

    /// Plans a graph, compiling its kernels (and its scan bodies') into `code`. In a scan body,
    /// `invariant_from` is the first input that is the same at every step (after the carries
    /// and the sequence slices).
    fn plan(
        graph: Graph,
        code: &mut Code,
        invariant_from: Option<usize>,
    ) -> Result<Program, String> {
        let schedule = schedule(&graph);
        let order = graph
            .topological_order()
            .ok_or("the graph has a cycle (the verifier should have caught it)")?;
        let mut builder = Builder {
            graph: &graph,
            values: Vec::new(),
            value_of: HashMap::new(),
            instrs: Vec::new(),
            params: Vec::new(),
            code,
            clif: Vec::new(),
            folded_transposes: folded_transposes(&graph),
            invariant_from,
            bias_epilogues: HashSet::new(),
            packed: HashMap::new(),
            alone: schedule
                .kernels
                .iter()
                .filter(|k| k.nodes.len() == 1)
                .map(|k| k.nodes[0])
                .collect(),
        };
        // Sources first, so every operand has a value before its users are planned.
        for &id in &order {
            let node = graph.node(id);
            match &node.op {
                Op::Input { index, .. } => {
                    builder.define(id, &node.ty, Home::Input(*index), false);
                }
                Op::Param { name, .. } => {
                    let index = builder.params.len();
                    let value = builder.define(id, &node.ty, Home::Param(index), false);
                    builder.params.push((name.clone(), value));
                }
                _ => {}
            }
        }
        let mut planned = vec![
            false;
            graph
                .node_ids()
                .iter()
                .map(|n| n.index() + 1)
                .max()
                .unwrap_or(0)
        ];
        for (index, kernel) in schedule.kernels.iter().enumerate() {
            if kernel.nodes.len() == 1
                && (builder.folded_transposes.contains(&kernel.nodes[0])
                    || builder.bias_epilogues.contains(&kernel.nodes[0]))
            {
                planned[kernel.nodes[0].index()] = true;
                continue;
            }
            if kernel.kind == KernelKind::Fused && builder.fused(index, kernel)? {
                for node in &kernel.nodes {
                    planned[node.index()] = true;
                }
                continue;
            }
            for &node in &kernel.nodes {
                builder.single(node)?;
                planned[node.index()] = true;
            }
        }
        // Scalar constants inlined into fused kernels that could not be compiled, and any node
        // the schedule left out, are computed on their own (statically when possible).
        for &id in &order {
            if !planned[id.index()] && !builder.value_of.contains_key(&id) {
                if let Op::Project { .. } = graph.node(id).op {
                    continue;
                }
                builder.single(id)?;
            }
        }
        builder.sort_instructions(&order);
        let inputs = graph
            .inputs
            .iter()
            .map(|id| builder.value(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = graph
            .outputs
            .iter()
            .map(|id| builder.value(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let Builder {
            mut values,
            instrs,
            params,
            clif,
            ..
        } = builder;
        // Row groups first: a kernel that joins a row group runs tile by tile in cache there,
        // better than over a whole matrix product's result after it.
        let instrs = group_rows(instrs, &values);
        let instrs = fuse_epilogues(instrs, &mut values, &outputs);
        Ok(Program {
            schedule,
            values,
            instrs,
            inputs,
            params,
            outputs,
            clif,
            _jit: None,
            graph,
        })
    }

    /// The instructions as text, one per line: what runs, on which values, and which are
    /// static (computed at bind time). Scan bodies are indented under their scan.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        self.describe_into(&mut out, "");
        out
    }

    fn describe_into(&self, out: &mut String, indent: &str) {
        for instr in &self.instrs {
            let hoisted = self.is_hoisted(instr);
            out.push_str(&format!(
                "{indent}{}{}\n",
                self.instr_text(instr),
                if instr.is_static {
                    "   # static"
                } else if hoisted {
                    "   # once per scan"
                } else {
                    ""
                }
            ));
            if let InstrKind::Scan(scan) = &instr.kind {
                scan.body.describe_into(out, &format!("{indent}    "));
            }
        }
    }

    /// One instruction as text: `%out = what(%in, ...)`.
    pub fn instr_text(&self, instr: &Instr) -> String {
        let name = |v: ValueId| format!("%{}", self.values[v].node.index());
        let outputs: Vec<String> = instr.outputs.iter().map(|v| name(*v)).collect();
        let inputs: Vec<String> = instr.inputs.iter().map(|v| name(*v)).collect();
        format!(
            "{} = {}({})",
            outputs.join(", "),
            self.instr_kind_text(instr),
            inputs.join(", ")
        )
    }

    /// What an instruction runs: `matmul rhs.T +bias`, `rows[...]`, `interpret gather`.
    pub fn instr_kind_text(&self, instr: &Instr) -> String {
        match &instr.kind {
            InstrKind::Fused { .. } => "fused".to_string(),
            InstrKind::MatMul {
                transposed,
                bias,
                packed,
                epilogue,
            } => format!(
                "matmul{}{}{}{}{}",
                if transposed.0 { " lhs.T" } else { "" },
                if transposed.1 { " rhs.T" } else { "" },
                if packed.is_some() { " packed" } else { "" },
                if *bias { " +bias" } else { "" },
                if epilogue.is_some() { " +fused" } else { "" }
            ),
            InstrKind::PackRhs { transposed } => {
                format!("pack_rhs{}", if *transposed { " T" } else { "" })
            }
            InstrKind::Conv2d { epilogue, .. } => {
                format!("conv2d{}", if epilogue.is_some() { " +fused" } else { "" })
            }
            InstrKind::Conv2dBackwardInput(_) => "conv2d_backward_input".into(),
            InstrKind::Conv2dBackwardWeight(_) => "conv2d_backward_weight".into(),
            InstrKind::Pool2d(_) => "pool2d".into(),
            InstrKind::Pool2dBackward(_) => "pool2d_backward".into(),
            InstrKind::ReduceRows { op, .. } => {
                format!("reduce_rows {}", format!("{op:?}").to_lowercase())
            }
            InstrKind::ReduceOuter { op, .. } => {
                format!("reduce_outer {}", format!("{op:?}").to_lowercase())
            }
            InstrKind::Permute { .. } => "permute".into(),
            InstrKind::Expand => "expand".into(),
            InstrKind::Slice { .. } => "slice".into(),
            InstrKind::Concat { .. } => "concat".into(),
            InstrKind::Gather { .. } => "gather".into(),
            InstrKind::SliceScatter { .. } => "slice_scatter".into(),
            InstrKind::ScatterAdd { .. } => "scatter_add".into(),
            InstrKind::Fill(value) => format!("fill {value}"),
            InstrKind::Scan(_) => "scan".into(),
            InstrKind::Rows(group) => {
                let members: Vec<String> = group
                    .members
                    .iter()
                    .map(|m| match &m.kind {
                        MemberKind::Fused { per_row: false, .. } => "fused".to_string(),
                        MemberKind::Fused { per_row: true, .. } => "fused per-row".into(),
                        MemberKind::Reduce { op } => {
                            format!("reduce {}", format!("{op:?}").to_lowercase())
                        }
                    })
                    .collect();
                format!("rows[{}]", members.join(", "))
            }
            InstrKind::Interpret => {
                format!("interpret {}", self.graph.node(instr.node).op.mnemonic())
            }
        }
    }

    /// The value a graph value lives in, following aliases.
    pub fn root(&self, mut value: ValueId) -> ValueId {
        while let Home::Alias(source) = self.values[value].home {
            value = source;
        }
        value
    }

    /// Whether an instruction runs once per scan (see [`Home::Hoisted`]) rather than per run.
    pub fn is_hoisted(&self, instr: &Instr) -> bool {
        instr
            .outputs
            .first()
            .is_some_and(|v| self.values[*v].home == Home::Hoisted)
    }
}

/// The JIT module of a program and its scan bodies, and the kernels compiled in it.
#[derive(Default)]
struct Code {
    jit: Option<Jit>,
    /// Compiled fused kernels by their steps and accesses.
    compiled: HashMap<String, KernelFn>,
}

struct Builder<'g> {
    graph: &'g Graph,
    values: Vec<ValueInfo>,
    value_of: HashMap<NodeId, ValueId>,
    instrs: Vec<Instr>,
    params: Vec<(String, ValueId)>,
    code: &'g mut Code,
    clif: Vec<(usize, String)>,
    /// Transposes that only matrix products read: they read the source through strides.
    folded_transposes: HashSet<NodeId>,
    /// Bias additions computed by the matrix product before them.
    bias_epilogues: HashSet<NodeId>,
    /// Nodes the schedule computes in a kernel of their own.
    alone: HashSet<NodeId>,
    /// Packed forms of weights on the right of products, by (weight, read transposed).
    packed: HashMap<(ValueId, bool), ValueId>,
    /// In a scan body, the first input that is the same at every step.
    invariant_from: Option<usize>,
}

/// A permute that swaps the last two axes of an f32 value of rank >= 2 and is read only as an
/// operand of matrix products (and is not a graph output) need not be materialized.
fn folded_transposes(graph: &Graph) -> HashSet<NodeId> {
    graph
        .node_ids()
        .into_iter()
        .filter(|&id| {
            let node = graph.node(id);
            let Op::Permute { perm } = &node.op else {
                return false;
            };
            let rank = perm.len();
            let swaps_last_two = rank >= 2
                && perm[..rank - 2].iter().copied().eq(0..rank - 2)
                && perm[rank - 2] == rank - 1
                && perm[rank - 1] == rank - 2;
            let users = graph.users(id);
            swaps_last_two
                && node.ty.dtype == DType::F32
                && !graph.outputs.contains(&id)
                && !users.is_empty()
                && users
                    .iter()
                    .all(|u| matches!(graph.node(*u).op, Op::MatMul))
        })
        .collect()
}

impl Builder<'_> {
    fn define(&mut self, node: NodeId, ty: &TensorType, home: Home, is_static: bool) -> ValueId {
        let value = self.values.len();
        self.values.push(ValueInfo {
            node,
            dtype: ty.dtype,
            shape: ty.shape.clone(),
            home,
            is_static,
        });
        self.value_of.insert(node, value);
        value
    }

    fn value(&self, node: NodeId) -> Result<ValueId, String> {
        self.value_of
            .get(&node)
            .copied()
            .ok_or_else(|| format!("node {} has no value yet", node.index()))
    }

    fn static_inputs(&self, inputs: &[ValueId]) -> bool {
        inputs.iter().all(|v| {
            let info = &self.values[*v];
            info.is_static || matches!(info.home, Home::Param(_))
        })
    }

    /// A fused kernel through the JIT; `false` when the code generator cannot take it.
    fn fused(
        &mut self,
        index: usize,
        kernel: &modelc_compiler::schedule::Kernel,
    ) -> Result<bool, String> {
        let (Some(steps), Some((split, accesses))) = (
            kernel_steps(self.graph, kernel),
            static_accesses(self.graph, kernel),
        ) else {
            return Ok(false);
        };
        // Identical kernels (the same layer repeated) share one compiled function.
        let key = format!("{steps:?} {accesses:?}");
        let function = match self.code.compiled.get(&key) {
            Some(function) => *function,
            None => {
                if self.code.jit.is_none() {
                    self.code.jit = Some(Jit::new()?);
                }
                let jit = self.code.jit.as_mut().expect("just created");
                let (function, clif) = jit.compile(&steps, &accesses)?;
                self.clif.push((index, clif));
                self.code.compiled.insert(key, function);
                function
            }
        };
        let inputs = kernel
            .inputs
            .iter()
            .map(|id| self.value(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let output = kernel.output();
        let ty = &self.graph.node(output).ty;
        let is_static = self.static_inputs(&inputs) && is_concrete(&ty.shape);
        let value = self.define(output, ty, Home::Computed, is_static);
        self.instrs.push(Instr {
            kind: InstrKind::Fused {
                function,
                accesses,
                split,
                cost: element_cost(&steps),
            },
            node: output,
            inputs,
            outputs: vec![value],
            is_static,
        });
        Ok(true)
    }

    /// One node as an instruction of its own (or an alias).
    fn single(&mut self, id: NodeId) -> Result<(), String> {
        let graph = self.graph;
        let node = graph.node(id);
        let operands = graph.operands(id);
        if matches!(
            node.op,
            Op::Input { .. } | Op::Param { .. } | Op::Project { .. }
        ) {
            return Ok(());
        }
        if matches!(node.op, Op::MatMul) {
            return self.matmul(id);
        }
        for operand in &operands {
            // A scalar constant that was to be inlined into a kernel that fell back.
            if !self.value_of.contains_key(operand) {
                self.single(*operand)?;
            }
        }
        let inputs = operands
            .iter()
            .map(|o| self.value(*o))
            .collect::<Result<Vec<_>, _>>()?;
        let all_f32 = inputs.iter().all(|v| self.values[*v].dtype == DType::F32)
            && node.ty.dtype == DType::F32;
        let is_static = self.static_inputs(&inputs) && is_concrete(&node.ty.shape);
        let kind = match &node.op {
            Op::Reshape | Op::Dropout { .. } if inputs.len() == 1 => {
                let source_static = self.static_inputs(&inputs);
                self.define(id, &node.ty, Home::Alias(inputs[0]), source_static);
                return Ok(());
            }
            Op::Scan(scan) => {
                let body = Program::plan(
                    (*scan.body).clone(),
                    self.code,
                    Some(scan.n_carry + scan.n_sequences),
                )?;
                // One value per scan result; `Project` nodes read them.
                let mut outputs = Vec::new();
                for (index, ty) in scan.result_types.iter().enumerate() {
                    let project = graph.users(id).into_iter().find(|user| {
                        matches!(graph.node(*user).op, Op::Project { index: i } if i == index)
                    });
                    let value = self.define(project.unwrap_or(id), ty, Home::Computed, false);
                    outputs.push(value);
                }
                self.value_of.remove(&id);
                self.instrs.push(Instr {
                    kind: InstrKind::Scan(Box::new(ScanPlan {
                        body,
                        n_carry: scan.n_carry,
                        n_sequences: scan.n_sequences,
                        axis: scan.axis,
                        length: scan.length.clone(),
                        reverse: scan.reverse,
                    })),
                    node: id,
                    inputs,
                    outputs,
                    is_static: false,
                });
                return Ok(());
            }
            Op::Conv2d {
                stride,
                padding,
                dilation,
                groups,
            } if all_f32 && node.ty.rank() == 4 => InstrKind::Conv2d {
                geometry: ConvGeometry {
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    groups: *groups,
                },
                epilogue: None,
            },
            Op::Conv2dBackwardInput {
                stride,
                padding,
                dilation,
                groups,
            } if all_f32 && node.ty.rank() == 4 => InstrKind::Conv2dBackwardInput(ConvGeometry {
                stride: *stride,
                padding: *padding,
                dilation: *dilation,
                groups: *groups,
            }),
            Op::Conv2dBackwardWeight {
                stride,
                padding,
                dilation,
                groups,
            } if all_f32 && node.ty.rank() == 4 => InstrKind::Conv2dBackwardWeight(ConvGeometry {
                stride: *stride,
                padding: *padding,
                dilation: *dilation,
                groups: *groups,
            }),
            Op::Pool2d {
                kind,
                kernel,
                stride,
                padding,
            } if all_f32 && node.ty.rank() == 4 => InstrKind::Pool2d(PoolGeometry {
                kind: *kind,
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
            }),
            Op::Pool2dBackward {
                kind,
                kernel,
                stride,
                padding,
            } if all_f32 && node.ty.rank() == 4 => InstrKind::Pool2dBackward(PoolGeometry {
                kind: *kind,
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
            }),
            Op::Reduce { op, axes, .. } if all_f32 => {
                let rank = self.values[inputs[0]].shape.len();
                let mut sorted = axes.clone();
                sorted.sort_unstable();
                let first_axis = rank - sorted.len();
                // Leading axes `0..prefix` and the trailing ones after them.
                let prefix = sorted
                    .iter()
                    .enumerate()
                    .take_while(|(i, a)| i == *a)
                    .count();
                let suffix = sorted.len() - prefix;
                if !sorted.is_empty() && sorted.iter().copied().eq(first_axis..rank) {
                    InstrKind::ReduceRows {
                        op: *op,
                        first_axis,
                    }
                } else if prefix > 0
                    && matches!(op, ReduceOp::Sum | ReduceOp::Mean)
                    && sorted[prefix..].iter().copied().eq(rank - suffix..rank)
                {
                    InstrKind::ReduceOuter {
                        op: *op,
                        kept: prefix..rank - suffix,
                    }
                } else {
                    InstrKind::Interpret
                }
            }
            Op::Permute { perm } => InstrKind::Permute { perm: perm.clone() },
            Op::Fill(value) if value.dtype() == node.ty.dtype => InstrKind::Fill(*value),
            Op::Expand => InstrKind::Expand,
            Op::Slice { axis, start, step } => InstrKind::Slice {
                axis: *axis,
                start: start.clone(),
                step: *step,
            },
            Op::Concat { axis } => InstrKind::Concat { axis: *axis },
            Op::Gather { axis }
                if inputs.len() == 2 && self.values[inputs[1]].dtype == DType::I64 =>
            {
                InstrKind::Gather { axis: *axis }
            }
            Op::SliceScatter { axis, start, step } if all_f32 && *step != 0 => {
                InstrKind::SliceScatter {
                    axis: *axis,
                    start: start.clone(),
                    step: *step,
                }
            }
            Op::ScatterAdd { axis }
                if inputs.len() == 2
                    && self.values[inputs[0]].dtype == DType::F32
                    && self.values[inputs[1]].dtype == DType::I64
                    && node.ty.dtype == DType::F32 =>
            {
                InstrKind::ScatterAdd { axis: *axis }
            }
            _ => InstrKind::Interpret,
        };
        let value = self.define(id, &node.ty, Home::Computed, is_static);
        self.instrs.push(Instr {
            kind,
            node: id,
            inputs,
            outputs: vec![value],
            is_static,
        });
        Ok(())
    }

    /// A matrix product, reading folded transposes through strides.
    fn matmul(&mut self, id: NodeId) -> Result<(), String> {
        let graph = self.graph;
        let node = graph.node(id);
        let mut inputs = Vec::new();
        let mut transposed = [false; 2];
        for (slot, operand) in graph.operands(id).into_iter().enumerate() {
            if self.folded_transposes.contains(&operand) && slot < 2 {
                transposed[slot] = true;
                inputs.push(self.value(graph.operands(operand)[0])?);
            } else {
                inputs.push(self.value(operand)?);
            }
        }
        let all_f32 = node.ty.dtype == DType::F32
            && inputs.iter().all(|v| self.values[*v].dtype == DType::F32);
        // A bias epilogue: the product's only reader adds a vector over the last axis, alone
        // in its kernel (an `add` that fused with more ops stays in its fused loop).
        let epilogue = self.bias_epilogue(id);
        let (id, node) = match epilogue {
            Some((add, bias)) if all_f32 && inputs.len() == 2 => {
                inputs.push(bias);
                self.bias_epilogues.insert(add);
                (add, graph.node(add))
            }
            _ => (id, node),
        };
        let kind = if all_f32 && (inputs.len() == 2 || epilogue.is_some()) {
            let bias = inputs.len() == 3;
            // A weight on the right is packed once, at bind time, for the packed kernel.
            let packed = if transposed[0] {
                None
            } else {
                self.packed_rhs(inputs[1], transposed[1]).map(|packed| {
                    inputs.push(packed);
                    inputs.len() - 1
                })
            };
            InstrKind::MatMul {
                transposed: (transposed[0], transposed[1]),
                bias,
                packed,
                epilogue: None,
            }
        } else if transposed == [false, false] {
            InstrKind::Interpret
        } else {
            return Err(format!(
                "matmul node {} is not a product of two f32 operands",
                id.index()
            ));
        };
        let is_static = self.static_inputs(&inputs) && is_concrete(&node.ty.shape);
        let value = self.define(id, &node.ty, Home::Computed, is_static);
        self.instrs.push(Instr {
            kind,
            node: id,
            inputs,
            outputs: vec![value],
            is_static,
        });
        Ok(())
    }

    /// The packed form ([`kernels::packed`](super::kernels::packed)) of a product's right
    /// operand, planned as a static instruction the first time it is asked for: when the
    /// operand is an f32 param or static value (packed at bind time), or a scan body's
    /// step-invariant input (packed once per scan, [`Home::Hoisted`]), of concrete rank-2 shape,
    /// and the CPU can run the packed kernel. `transposed`: the product reads the stored matrix
    /// transposed.
    fn packed_rhs(&mut self, rhs: ValueId, transposed: bool) -> Option<ValueId> {
        if let Some(packed) = self.packed.get(&(rhs, transposed)) {
            return Some(*packed);
        }
        let info = &self.values[rhs];
        let weight = info.is_static || matches!(info.home, Home::Param(_));
        let invariant = matches!(
            (info.home, self.invariant_from),
            (Home::Input(index), Some(first)) if index >= first
        );
        let [rows, columns] = info.shape.as_slice() else {
            return None;
        };
        let (Some(rows), Some(columns)) = (rows.as_const(), columns.as_const()) else {
            return None;
        };
        let (k, n) = if transposed {
            (columns as usize, rows as usize)
        } else {
            (rows as usize, columns as usize)
        };
        if !(weight || invariant)
            || info.dtype != DType::F32
            || k == 0
            || n == 0
            || !packed::available()
        {
            return None;
        }
        let node = info.node;
        let value = self.values.len();
        self.values.push(ValueInfo {
            node,
            dtype: DType::F32,
            shape: vec![Dim::constant(packed::packed_len(k, n) as i64)],
            home: if weight {
                Home::Computed
            } else {
                Home::Hoisted
            },
            is_static: weight,
        });
        self.instrs.push(Instr {
            kind: InstrKind::PackRhs { transposed },
            node,
            inputs: vec![rhs],
            outputs: vec![value],
            is_static: weight,
        });
        self.packed.insert((rhs, transposed), value);
        Some(value)
    }

    /// `(add, bias value)` when the product's only user is `add(product, bias)` with an f32
    /// bias of shape `[n]` (or `[1, .., n]`) that is a param or static, the add is not a graph
    /// output, and the schedule computes the add in a kernel of its own.
    fn bias_epilogue(&self, product: NodeId) -> Option<(NodeId, ValueId)> {
        let graph = self.graph;
        let users = graph.users(product);
        let [add] = users.as_slice() else {
            return None;
        };
        let add_node = graph.node(*add);
        if !matches!(add_node.op, Op::Binary(modelc_compiler::ir::BinaryOp::Add))
            || graph.outputs.contains(&product)
            || add_node.ty.shape != graph.node(product).ty.shape
        {
            return None;
        }
        let operands = graph.operands(*add);
        let bias = match operands.as_slice() {
            [a, b] if *a == product && b != a => *b,
            [a, b] if *b == product && b != a => *a,
            _ => return None,
        };
        let bias_value = *self.value_of.get(&bias)?;
        let info = &self.values[bias_value];
        let last = graph.node(product).ty.shape.last()?.clone();
        let vector = info.dtype == DType::F32
            && info.shape.last() == Some(&last)
            && info.shape[..info.shape.len() - 1]
                .iter()
                .all(|d| d.as_const() == Some(1))
            && (info.is_static || matches!(info.home, Home::Param(_)));
        let alone = self.schedule_alone(*add);
        (vector && alone).then_some((*add, bias_value))
    }

    /// Whether the schedule gives `node` a kernel with no other node.
    fn schedule_alone(&self, node: NodeId) -> bool {
        self.alone.contains(&node)
    }

    /// Instructions in the graph's topological order of the nodes they compute (kernels were
    /// planned in schedule order, and leftover nodes after them).
    fn sort_instructions(&mut self, order: &[NodeId]) {
        let position: HashMap<NodeId, usize> =
            order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        self.instrs
            .sort_by_key(|instr| position.get(&instr.node).copied().unwrap_or(usize::MAX));
    }
}

/// Whether a shape has no symbolic dims.
pub fn is_concrete(shape: &[Dim]) -> bool {
    shape.iter().all(|d| d.is_const())
}
