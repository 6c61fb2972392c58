//! The CPU backend: runs a scheduled graph with native code.
//!
//! Fused elementwise kernels are compiled with Cranelift ([`jit`]); matrix products call the
//! `gemm` crate; every other op runs on the reference interpreter's kernels for now. Scans run
//! their body as an executable of its own, step by step. The graph is optimized and scheduled
//! once; an executable runs for any binding of its symbolic dims without recompiling.

pub mod fused;
pub mod jit;

use fused::{kernel_steps, static_accesses};
use jit::{Access, Jit, KernelFn, Step};
use modelc_compiler::interp::eval::{apply_kernel, bind_input_symbols, evaluate_shape, Bindings};
use modelc_compiler::interp::kernels;
use modelc_compiler::interp::{EvalError, Tensor};
use modelc_compiler::ir::{Graph, NodeId, Op};
use modelc_compiler::schedule::{schedule, Kernel, KernelKind, Schedule};
use std::collections::HashMap;

/// A fused kernel compiled to native code, with its operand list.
struct CompiledKernel {
    function: KernelFn,
    steps: Vec<Step>,
    clif: String,
}

pub struct CpuExecutable {
    graph: Graph,
    schedule: Schedule,
    /// Native code for fused kernels, by kernel index; absent ones run node by node.
    compiled: HashMap<usize, CompiledKernel>,
    /// Executables of scan bodies, by scan node.
    bodies: HashMap<NodeId, CpuExecutable>,
    /// Keeps the JIT memory alive as long as the functions.
    _jit: Option<Jit>,
}

// SAFETY: compiled kernels are pure functions of their arguments; the JIT memory is immutable
// after finalization.
unsafe impl Send for CpuExecutable {}
unsafe impl Sync for CpuExecutable {}

impl CpuExecutable {
    /// Optimizes, schedules and compiles a graph.
    pub fn compile(graph: &Graph) -> Result<CpuExecutable, String> {
        let mut graph = graph.clone();
        modelc_compiler::passes::optimize(&mut graph)
            .map_err(|(pass, errors)| format!("pass `{pass}` broke the graph: {errors:?}"))?;
        Self::compile_optimized(graph)
    }

    fn compile_optimized(graph: Graph) -> Result<CpuExecutable, String> {
        let schedule = schedule(&graph);
        let mut jit = None;
        let mut compiled = HashMap::new();
        for (index, kernel) in schedule.kernels.iter().enumerate() {
            if kernel.kind != KernelKind::Fused {
                continue;
            }
            let Some(steps) = kernel_steps(&graph, kernel) else {
                continue;
            };
            if jit.is_none() {
                jit = Some(Jit::new()?);
            }
            // Accesses are decided per run (they depend on the bound shapes); the code is
            // specialized on them, so compile lazily per access pattern at run time would be
            // ideal. For now compile the all-`Full` variant's steps and keep them to build
            // variants on demand.
            compiled.insert(
                index,
                CompiledKernel {
                    function: noop_kernel,
                    steps,
                    clif: String::new(),
                },
            );
        }
        let mut bodies = HashMap::new();
        for id in graph.node_ids() {
            if let Op::Scan(scan) = &graph.node(id).op {
                bodies.insert(id, Self::compile_optimized((*scan.body).clone())?);
            }
        }
        let mut executable = CpuExecutable {
            graph,
            schedule,
            compiled,
            bodies,
            _jit: jit,
        };
        executable.specialize()?;
        Ok(executable)
    }

    /// Compiles each fused kernel for the operand accesses its static shapes imply.
    fn specialize(&mut self) -> Result<(), String> {
        let indices: Vec<usize> = self.compiled.keys().copied().collect();
        for index in indices {
            let kernel = &self.schedule.kernels[index];
            let Some(accesses) = static_accesses(&self.graph, kernel) else {
                self.compiled.remove(&index);
                continue;
            };
            let steps = self.compiled[&index].steps.clone();
            let Some(jit) = self._jit.as_mut() else {
                continue;
            };
            let (function, clif) = jit.compile(&steps, &accesses.1)?;
            let entry = self.compiled.get_mut(&index).expect("present");
            entry.function = function;
            entry.clif = clif;
        }
        Ok(())
    }

    /// The CLIF of every compiled kernel, for `--emit clif`.
    pub fn clif(&self) -> String {
        let mut indices: Vec<&usize> = self.compiled.keys().collect();
        indices.sort();
        indices
            .iter()
            .map(|i| format!("; kernel {i}\n{}\n", self.compiled[i].clif))
            .collect()
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Runs on inputs in signature order with params by name.
    pub fn run(
        &self,
        inputs: &[Tensor],
        params: &HashMap<String, Tensor>,
    ) -> Result<Vec<Tensor>, EvalError> {
        let bindings = bind_input_symbols(&self.graph, inputs)?;
        self.run_with_bindings(inputs, params, &bindings)
    }

    fn run_with_bindings(
        &self,
        inputs: &[Tensor],
        params: &HashMap<String, Tensor>,
        bindings: &Bindings,
    ) -> Result<Vec<Tensor>, EvalError> {
        let graph = &self.graph;
        let mut values: HashMap<NodeId, Tensor> = HashMap::new();
        let mut multi: HashMap<NodeId, Vec<Tensor>> = HashMap::new();
        for (index, id) in graph.inputs.iter().enumerate() {
            let tensor = inputs
                .get(index)
                .ok_or_else(|| EvalError::input_mismatch("too few inputs", graph.node(*id).span))?;
            values.insert(*id, tensor.clone());
        }
        for (id, name) in graph.params() {
            let tensor = params.get(name).ok_or_else(|| {
                EvalError::runtime(format!("no value for param `{name}`"), graph.node(id).span)
            })?;
            values.insert(id, tensor.clone());
        }
        for (index, kernel) in self.schedule.kernels.iter().enumerate() {
            match (kernel.kind, self.compiled.get(&index)) {
                (KernelKind::Fused, Some(compiled)) => {
                    let output = self.run_compiled(kernel, compiled, &values, bindings)?;
                    values.insert(kernel.output(), output);
                }
                _ => {
                    for &id in &kernel.nodes {
                        self.run_node(id, &mut values, &mut multi, params, bindings)?;
                    }
                }
            }
        }
        graph
            .outputs
            .iter()
            .map(|id| {
                values.get(id).cloned().ok_or_else(|| {
                    EvalError::runtime("an output was not computed", graph.node(*id).span)
                })
            })
            .collect()
    }

    fn run_compiled(
        &self,
        kernel: &Kernel,
        compiled: &CompiledKernel,
        values: &HashMap<NodeId, Tensor>,
        bindings: &Bindings,
    ) -> Result<Tensor, EvalError> {
        let graph = &self.graph;
        let output_node = graph.node(kernel.output());
        let shape = evaluate_shape(&output_node.ty.shape, bindings)
            .map_err(|e| EvalError::runtime(e, output_node.span))?;
        let (split, accesses) = static_accesses(graph, kernel)
            .ok_or_else(|| EvalError::runtime("kernel accesses changed", output_node.span))?;
        let outer: usize = shape[..split].iter().product();
        let inner: usize = shape[split..].iter().product();
        let mut pointers: Vec<*const f32> = Vec::with_capacity(kernel.inputs.len());
        for (operand, access) in kernel.inputs.iter().zip(&accesses) {
            let tensor = values
                .get(operand)
                .ok_or_else(|| EvalError::runtime("operand not computed", output_node.span))?;
            let data = tensor
                .as_f32()
                .ok_or_else(|| EvalError::runtime("fused operand is not f32", output_node.span))?;
            let needed = match access {
                Access::Full => outer * inner,
                Access::Inner => inner,
                Access::Outer => outer,
                Access::Scalar => 1,
            };
            if data.len() != needed {
                return Err(EvalError::runtime(
                    format!(
                        "fused operand has {} elements, the kernel reads {needed}",
                        data.len()
                    ),
                    output_node.span,
                ));
            }
            pointers.push(data.as_ptr());
        }
        let mut out = vec![0.0f32; outer * inner];
        if !out.is_empty() {
            // SAFETY: every pointer covers exactly the elements its access pattern reads (checked
            // above), and `out` holds `outer * inner` elements.
            unsafe {
                (compiled.function)(
                    pointers.as_ptr(),
                    out.as_mut_ptr(),
                    outer as u64,
                    inner as u64,
                )
            };
        }
        Tensor::from_f32(shape, out).ok_or_else(|| {
            EvalError::runtime("fused kernel produced a bad shape", output_node.span)
        })
    }

    fn run_node(
        &self,
        id: NodeId,
        values: &mut HashMap<NodeId, Tensor>,
        multi: &mut HashMap<NodeId, Vec<Tensor>>,
        params: &HashMap<String, Tensor>,
        bindings: &Bindings,
    ) -> Result<(), EvalError> {
        let graph = &self.graph;
        let node = graph.node(id);
        let operands = graph.operands(id);
        match &node.op {
            Op::Input { .. } | Op::Param { .. } => return Ok(()),
            Op::Project { index } => {
                let results = multi
                    .get(&operands[0])
                    .ok_or_else(|| EvalError::runtime("scan results missing", node.span))?;
                let value = results
                    .get(*index)
                    .cloned()
                    .ok_or_else(|| EvalError::runtime("no such scan result", node.span))?;
                values.insert(id, value);
                return Ok(());
            }
            Op::Scan(scan) => {
                let operand_values: Vec<&Tensor> = operands
                    .iter()
                    .map(|o| {
                        values
                            .get(o)
                            .ok_or_else(|| EvalError::runtime("scan operand missing", node.span))
                    })
                    .collect::<Result<_, _>>()?;
                let body = self
                    .bodies
                    .get(&id)
                    .ok_or_else(|| EvalError::runtime("scan body not compiled", node.span))?;
                let results = run_scan(scan, body, &operand_values, params, bindings, node.span)?;
                multi.insert(id, results);
                return Ok(());
            }
            _ => {}
        }
        // Scalar constants read by fused kernels that fell back are computed here too.
        for operand in &operands {
            if !values.contains_key(operand) {
                self.run_node(*operand, values, multi, params, bindings)?;
            }
        }
        let shape = evaluate_shape(&node.ty.shape, bindings)
            .map_err(|e| EvalError::runtime(e, node.span))?;
        let operand_values: Vec<&Tensor> = operands
            .iter()
            .map(|o| {
                values
                    .get(o)
                    .ok_or_else(|| EvalError::runtime("operand missing", node.span))
            })
            .collect::<Result<_, _>>()?;
        let result = match &node.op {
            Op::MatMul => matmul(operand_values[0], operand_values[1], &shape)
                .unwrap_or_else(|| apply_kernel(node, &operand_values, &shape, bindings)),
            _ => apply_kernel(node, &operand_values, &shape, bindings),
        }?;
        values.insert(id, result);
        Ok(())
    }
}

unsafe extern "C" fn noop_kernel(_: *const *const f32, _: *mut f32, _: u64, _: u64) {}

/// Runs a scan: the body executable once per step.
fn run_scan(
    scan: &modelc_compiler::ir::ScanOp,
    body: &CpuExecutable,
    operands: &[&Tensor],
    params: &HashMap<String, Tensor>,
    bindings: &Bindings,
    span: modelc_compiler::source::Span,
) -> Result<Vec<Tensor>, EvalError> {
    let length = evaluate_shape(std::slice::from_ref(&scan.length), bindings)
        .map_err(|e| EvalError::runtime(e, span))?[0];
    let n_carry = scan.n_carry;
    let n_sequences = scan.n_sequences;
    let mut carries: Vec<Tensor> = operands[..n_carry].iter().map(|t| (*t).clone()).collect();
    let sequences = &operands[n_carry..n_carry + n_sequences];
    let captures = &operands[n_carry + n_sequences..];
    let mut stacked: Vec<Vec<Tensor>> = Vec::new();
    for step in 0..length {
        let position = if scan.reverse {
            length - 1 - step
        } else {
            step
        };
        let mut body_inputs = carries.clone();
        for sequence in sequences {
            body_inputs.push(
                kernels::index_along_axis(sequence, scan.axis, position)
                    .map_err(|e| EvalError::runtime(e, span))?,
            );
        }
        body_inputs.extend(captures.iter().map(|t| (*t).clone()));
        let outputs = body.run_with_bindings(&body_inputs, params, bindings)?;
        let (new_carries, step_outputs) = outputs.split_at(n_carry.min(outputs.len()));
        carries = new_carries.to_vec();
        if stacked.is_empty() {
            stacked = step_outputs
                .iter()
                .map(|_| Vec::with_capacity(length))
                .collect();
        }
        for (slot, output) in stacked.iter_mut().zip(step_outputs) {
            slot.push(output.clone());
        }
    }
    let mut results = carries;
    for (index, steps) in stacked.into_iter().enumerate() {
        let ty = &scan.result_types[n_carry + index];
        let shape = evaluate_shape(&ty.shape, bindings).map_err(|e| EvalError::runtime(e, span))?;
        let mut out = kernels::zeros(ty.dtype, &shape);
        for (step, tensor) in steps.iter().enumerate() {
            let position = if scan.reverse {
                length - 1 - step
            } else {
                step
            };
            kernels::write_along_axis(&mut out, tensor, scan.axis, position)
                .map_err(|e| EvalError::runtime(e, span))?;
        }
        results.push(out);
    }
    Ok(results)
}

/// f32 matrix products through the `gemm` crate: rank-2 operands, or a batched left operand
/// times a rank-2 right operand (the common `x @ weight.T`). `None` for other layouts.
fn matmul(a: &Tensor, b: &Tensor, shape: &[usize]) -> Option<Result<Tensor, EvalError>> {
    let (a_data, b_data) = (a.as_f32()?, b.as_f32()?);
    if b.shape.len() != 2 || a.shape.len() < 2 {
        return None;
    }
    let k = *a.shape.last()?;
    let (k2, n) = (b.shape[0], b.shape[1]);
    if k != k2 {
        return None;
    }
    let m: usize = a.shape[..a.shape.len() - 1].iter().product();
    if shape.iter().product::<usize>() != m * n {
        return None;
    }
    let mut out = vec![0.0f32; m * n];
    if m > 0 && n > 0 {
        // SAFETY: row-major buffers of the stated sizes; strides in elements.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                a_data.as_ptr(),
                1,
                k as isize,
                b_data.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
    Some(Ok(Tensor::from_f32(shape.to_vec(), out)?))
}
