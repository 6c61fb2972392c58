//! Running a planned program: params bound once (static values computed then), then any
//! number of runs, each on one arena whose layout is cached per binding of the symbolic dims.

use super::epilogue::BoundEpilogue;
use super::jit::Access;
use super::kernels::copy::{copy_strided, View};
use super::kernels::{self, contiguous_strides, SendPtr};
use super::memory::{storage, Layout, Line};
use super::plan::{Home, Instr, InstrKind, Program, ScanPlan, ValueId};
use modelc_compiler::interp::eval::{apply_kernel, evaluate_shape, Bindings};
use modelc_compiler::interp::{EvalError, Tensor, TensorData};
use modelc_compiler::ir::{DType, Literal, ReduceOp};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A binding of the symbolic dims, sorted by name: the key of the layout cache.
type BindingKey = Vec<(String, i64)>;

/// A program with its params bound: static values computed, scan bodies bound too.
pub struct BoundProgram<'p> {
    program: &'p Program,
    /// Where each param's data is (owned by the caller's tensors, which outlive this).
    params: Vec<*const u8>,
    /// Storage of static values, by value.
    statics: HashMap<ValueId, Vec<Line>>,
    /// Bound scan bodies, by instruction index.
    bodies: HashMap<usize, BoundProgram<'p>>,
    layouts: Mutex<HashMap<BindingKey, Arc<Layout>>>,
    /// Arenas of finished runs, reused by the next ones.
    arenas: Mutex<Vec<Vec<Line>>>,
}

// SAFETY: the raw pointers point into tensors borrowed for `'p` and into storage this value
// owns; runs only read them, and each run writes its own arena.
unsafe impl Send for BoundProgram<'_> {}
unsafe impl Sync for BoundProgram<'_> {}

fn tensor_pointer(tensor: &Tensor) -> *const u8 {
    match &tensor.data {
        TensorData::F32(v) => v.as_ptr() as *const u8,
        TensorData::I64(v) => v.as_ptr() as *const u8,
        TensorData::Bool(v) => v.as_ptr() as *const u8,
    }
}

/// A copy of `shape` elements of `dtype` at `pointer`, as a tensor.
///
/// # Safety
/// `pointer` addresses that many elements of that type (bools as bytes 0 or 1).
unsafe fn tensor_from_raw(pointer: *const u8, dtype: DType, shape: &[usize]) -> Tensor {
    let count: usize = shape.iter().product();
    let data = match dtype {
        DType::F32 => {
            TensorData::F32(std::slice::from_raw_parts(pointer as *const f32, count).to_vec())
        }
        DType::I64 => {
            TensorData::I64(std::slice::from_raw_parts(pointer as *const i64, count).to_vec())
        }
        DType::Bool => TensorData::Bool(
            std::slice::from_raw_parts(pointer, count)
                .iter()
                .map(|b| *b != 0)
                .collect(),
        ),
    };
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

/// Writes a tensor's elements to `pointer`.
///
/// # Safety
/// `pointer` has room for the tensor's elements.
unsafe fn write_tensor(tensor: &Tensor, pointer: *mut u8) {
    match &tensor.data {
        TensorData::F32(v) => {
            std::ptr::copy_nonoverlapping(v.as_ptr(), pointer as *mut f32, v.len())
        }
        TensorData::I64(v) => {
            std::ptr::copy_nonoverlapping(v.as_ptr(), pointer as *mut i64, v.len())
        }
        TensorData::Bool(v) => {
            for (i, b) in v.iter().enumerate() {
                *pointer.add(i) = u8::from(*b);
            }
        }
    }
}

impl<'p> BoundProgram<'p> {
    pub fn new(
        program: &'p Program,
        params: &'p HashMap<String, Tensor>,
    ) -> Result<BoundProgram<'p>, EvalError> {
        let graph = &program.graph;
        let mut pointers = Vec::with_capacity(program.params.len());
        for (name, value) in &program.params {
            let info = &program.values[*value];
            let span = graph.node(info.node).span;
            let tensor = params
                .get(name)
                .ok_or_else(|| EvalError::runtime(format!("no value for param `{name}`"), span))?;
            let shape = evaluate_shape(&info.shape, &Bindings::new()).ok();
            if tensor.dtype() != info.dtype
                || shape.is_some_and(|s| s != tensor.shape)
                || tensor.len() != tensor.shape.iter().product::<usize>()
            {
                return Err(EvalError::input_mismatch(
                    format!(
                        "param `{name}` is declared {}{}, the value given is {}{:?}",
                        info.dtype,
                        modelc_compiler::ir::dim::format_shape(&info.shape),
                        tensor.dtype(),
                        tensor.shape
                    ),
                    span,
                ));
            }
            pointers.push(tensor_pointer(tensor));
        }
        let mut bound = BoundProgram {
            program,
            params: pointers,
            statics: HashMap::new(),
            bodies: HashMap::new(),
            layouts: Mutex::new(HashMap::new()),
            arenas: Mutex::new(Vec::new()),
        };
        for (index, instr) in program.instrs.iter().enumerate() {
            if let InstrKind::Scan(scan) = &instr.kind {
                bound
                    .bodies
                    .insert(index, BoundProgram::new(&scan.body, params)?);
            }
        }
        bound.compute_statics()?;
        Ok(bound)
    }

    /// Runs the static instructions once, each output into storage of its own.
    fn compute_statics(&mut self) -> Result<(), EvalError> {
        let program = self.program;
        if !program.instrs.iter().any(|i| i.is_static) {
            return Ok(());
        }
        let no_bindings = Bindings::new();
        let mut shapes = vec![Vec::new(); program.values.len()];
        let mut pointers = vec![std::ptr::null_mut::<u8>(); program.values.len()];
        for (value, info) in program.values.iter().enumerate() {
            match info.home {
                Home::Param(index) => pointers[value] = self.params[index] as *mut u8,
                Home::Alias(source) => pointers[value] = pointers[source],
                _ => {}
            }
            if info.is_static || matches!(info.home, Home::Param(_)) {
                shapes[value] = evaluate_shape(&info.shape, &no_bindings)
                    .map_err(|e| EvalError::runtime(e, program.graph.node(info.node).span))?;
            }
        }
        for (index, instr) in program.instrs.iter().enumerate() {
            if !instr.is_static {
                continue;
            }
            for &output in &instr.outputs {
                let bytes = shapes[output].iter().product::<usize>()
                    * program.values[output].dtype.size_in_bytes();
                let mut buffer = storage(bytes.max(1));
                pointers[output] = buffer.as_mut_ptr() as *mut u8;
                self.statics.insert(output, buffer);
            }
            // Aliases of static values defined after this instruction.
            for (value, info) in program.values.iter().enumerate() {
                if let Home::Alias(source) = info.home {
                    pointers[value] = pointers[source];
                }
            }
            self.run_instr(index, instr, &pointers, &shapes, &no_bindings)?;
        }
        Ok(())
    }

    /// The memory layout for a binding, computed once per distinct binding.
    pub fn layout(&self, bindings: &Bindings) -> Result<Arc<Layout>, EvalError> {
        let mut key: Vec<(String, i64)> = bindings.iter().map(|(k, v)| (k.clone(), *v)).collect();
        key.sort();
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(layout) = layouts.get(&key) {
            return Ok(layout.clone());
        }
        let layout = Arc::new(Layout::new(self.program, bindings)?);
        layouts.insert(key, layout.clone());
        Ok(layout)
    }

    /// The program this binds.
    pub fn program(&self) -> &'p Program {
        self.program
    }

    /// Runs on inputs that [`bind_input_symbols`](modelc_compiler::interp::eval::bind_input_symbols)
    /// has checked and bound; returns the outputs.
    pub fn run(&self, inputs: &[Tensor], bindings: &Bindings) -> Result<Vec<Tensor>, EvalError> {
        self.run_timed(inputs, bindings, None)
    }

    /// [`run`](Self::run), adding each top-level instruction's wall time to `times` (indexed
    /// like [`Program::instrs`]) when given.
    pub fn run_timed(
        &self,
        inputs: &[Tensor],
        bindings: &Bindings,
        times: Option<&mut [Duration]>,
    ) -> Result<Vec<Tensor>, EvalError> {
        let layout = self.layout(bindings)?;
        let mut arena = self.take_arena(layout.arena_bytes);
        let input_pointers: Vec<*const u8> = inputs.iter().map(tensor_pointer).collect();
        let arena_pointer = arena.as_mut_ptr() as *mut u8;
        let result = kernels::on_pool(|| {
            self.execute(&layout, arena_pointer, &input_pointers, bindings, times)
        })
        .map(|pointers| {
            self.program
                .outputs
                .iter()
                .map(|&value| {
                    // SAFETY: the output's pointer addresses its elements in this run.
                    unsafe {
                        tensor_from_raw(
                            pointers[value],
                            self.program.values[value].dtype,
                            &layout.shapes[value],
                        )
                    }
                })
                .collect()
        });
        self.arenas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(arena);
        result
    }

    fn take_arena(&self, bytes: usize) -> Vec<Line> {
        let mut arenas = self.arenas.lock().unwrap_or_else(|e| e.into_inner());
        match arenas.iter().position(|a| a.len() * 64 >= bytes) {
            Some(index) => arenas.swap_remove(index),
            None => storage(bytes.max(1)),
        }
    }

    /// Runs every dynamic instruction; returns the pointer of every value.
    fn execute(
        &self,
        layout: &Layout,
        arena: *mut u8,
        inputs: &[*const u8],
        bindings: &Bindings,
        times: Option<&mut [Duration]>,
    ) -> Result<Vec<*mut u8>, EvalError> {
        let pointers = self.pointer_table(layout, arena, inputs);
        self.run_dynamic(&pointers, layout, bindings, times)?;
        Ok(pointers)
    }

    /// Where every value is for a run on `arena` with these inputs.
    fn pointer_table(&self, layout: &Layout, arena: *mut u8, inputs: &[*const u8]) -> Vec<*mut u8> {
        let program = self.program;
        let mut pointers = vec![std::ptr::null_mut::<u8>(); program.values.len()];
        for (value, info) in program.values.iter().enumerate() {
            pointers[value] = match info.home {
                Home::Input(index) => inputs[index] as *mut u8,
                Home::Param(index) => self.params[index] as *mut u8,
                Home::Computed if info.is_static => self.statics[&value].as_ptr() as *mut u8,
                // SAFETY: the layout places every dynamic value inside the arena.
                Home::Computed => unsafe { arena.add(layout.offsets[value]) },
                Home::Alias(source) => pointers[source],
                // Absorbed values are never read; hoisted ones get storage from their scan.
                Home::Absorbed | Home::Hoisted => std::ptr::null_mut(),
            };
        }
        pointers
    }

    /// Runs every dynamic instruction over a pointer table.
    fn run_dynamic(
        &self,
        pointers: &[*mut u8],
        layout: &Layout,
        bindings: &Bindings,
        mut times: Option<&mut [Duration]>,
    ) -> Result<(), EvalError> {
        for (index, instr) in self.program.instrs.iter().enumerate() {
            if instr.is_static || self.program.is_hoisted(instr) {
                continue;
            }
            match times.as_deref_mut() {
                Some(times) => {
                    let started = Instant::now();
                    self.run_instr(index, instr, pointers, &layout.shapes, bindings)?;
                    times[index] += started.elapsed();
                }
                None => self.run_instr(index, instr, pointers, &layout.shapes, bindings)?,
            }
        }
        Ok(())
    }

    fn run_instr(
        &self,
        index: usize,
        instr: &Instr,
        pointers: &[*mut u8],
        shapes: &[Vec<usize>],
        bindings: &Bindings,
    ) -> Result<(), EvalError> {
        let program = self.program;
        let node = program.graph.node(instr.node);
        let span = node.span;
        let out = instr.outputs.first().copied().unwrap_or(0);
        let input = |i: usize| pointers[instr.inputs[i]];
        let shape = |i: usize| shapes[instr.inputs[i]].as_slice();
        let element_size = |value: ValueId| program.values[value].dtype.size_in_bytes();
        // An NCHW (or OIHW) shape as an array (the planner only plans rank-4 operands there).
        let four = |s: &[usize]| [s[0], s[1], s[2], s[3]];
        // A contraction's epilogue on this run's buffers, over the instruction's output.
        // SAFETY: as for the kernels below.
        let bind_epilogue = |epilogue: &super::epilogue::EpilogueKernel| unsafe {
            BoundEpilogue::new(
                epilogue,
                pointers,
                element_size,
                pointers[out],
                &shapes[out],
            )
        };
        // SAFETY (for every kernel call below): pointers come from the layout, which sized
        // every buffer from these shapes; the checker proved the shapes consistent.
        unsafe {
            match &instr.kind {
                InstrKind::Fused {
                    function,
                    accesses,
                    split,
                    cost,
                } => {
                    let out_shape = &shapes[out];
                    let outer: usize = out_shape[..*split].iter().product();
                    let inner: usize = out_shape[*split..].iter().product();
                    run_fused(
                        *function,
                        accesses,
                        &instr
                            .inputs
                            .iter()
                            .map(|v| (pointers[*v], element_size(*v)))
                            .collect::<Vec<_>>(),
                        pointers[out],
                        (outer, inner),
                        *cost,
                    );
                }
                InstrKind::MatMul {
                    transposed,
                    bias,
                    packed,
                    epilogue,
                } => {
                    let bound = epilogue.as_deref().map(bind_epilogue);
                    let lhs_shape = shape(0);
                    let k = lhs_shape.last().copied().unwrap_or(1);
                    let rows: usize = lhs_shape[..lhs_shape.len().saturating_sub(1)]
                        .iter()
                        .product();
                    let n = shapes[out].last().copied().unwrap_or(1);
                    match packed {
                        // Rows of every batch element at once: the weight is one matrix.
                        Some(slot) if !transposed.0 => {
                            let run = bound.as_ref().map(|b| move |s, l| b.run(s, l));
                            kernels::packed::matmul_packed(
                                input(0) as *const f32,
                                (rows, k, n),
                                input(*slot) as *const f32,
                                bias.then(|| input(2) as *const f32),
                                pointers[out] as *mut f32,
                                run.as_ref().map(|r| r as kernels::Epilogue),
                            );
                        }
                        _ => {
                            // The logical operand shapes: a folded transpose swaps its source's
                            // last two.
                            let logical = |i: usize, swap: bool| {
                                let mut s = shape(i).to_vec();
                                let r = s.len();
                                if swap && r >= 2 {
                                    s.swap(r - 2, r - 1);
                                }
                                s
                            };
                            kernels::matmul::matmul(
                                input(0) as *const f32,
                                &logical(0, transposed.0),
                                input(1) as *const f32,
                                &logical(1, transposed.1),
                                pointers[out] as *mut f32,
                                &shapes[out],
                                *transposed,
                                bias.then(|| input(2) as *const f32),
                            );
                            if let Some(bound) = &bound {
                                bound.run_all(shapes[out].iter().product());
                            }
                        }
                    }
                }
                InstrKind::PackRhs { transposed } => {
                    let stored = shape(0);
                    let (k, n, strides) = if *transposed {
                        (stored[1], stored[0], (1, stored[1]))
                    } else {
                        (stored[0], stored[1], (stored[1], 1))
                    };
                    let length = kernels::packed::packed_len(k, n);
                    kernels::packed::pack_rhs(
                        input(0) as *const f32,
                        (k, n),
                        strides,
                        std::slice::from_raw_parts_mut(pointers[out] as *mut f32, length),
                    );
                }
                InstrKind::Conv2d { geometry, epilogue } => {
                    let bound = epilogue.as_deref().map(bind_epilogue);
                    let run = bound
                        .as_ref()
                        .map(|b| move |start, length| b.run(start, length));
                    let own_inputs = epilogue
                        .as_ref()
                        .map_or(instr.inputs.len(), |e| e.own_inputs);
                    kernels::conv::conv2d(
                        input(0) as *const f32,
                        four(shape(0)),
                        input(1) as *const f32,
                        four(shape(1)),
                        (own_inputs > 2).then(|| input(2) as *const f32),
                        pointers[out] as *mut f32,
                        four(&shapes[out]),
                        *geometry,
                        run.as_ref().map(|r| r as kernels::Epilogue),
                    )
                }
                InstrKind::Conv2dBackwardInput(geometry)
                | InstrKind::Conv2dBackwardWeight(geometry) => {
                    let gradient = match &instr.kind {
                        InstrKind::Conv2dBackwardInput(_) => {
                            kernels::conv_backward::conv2d_backward_input
                        }
                        _ => kernels::conv_backward::conv2d_backward_weight,
                    };
                    gradient(
                        input(0) as *const f32,
                        four(shape(0)),
                        input(1) as *const f32,
                        four(shape(1)),
                        pointers[out] as *mut f32,
                        four(&shapes[out]),
                        *geometry,
                    )
                }
                InstrKind::Pool2dBackward(geometry) => kernels::pool_backward::pool2d_backward(
                    input(0) as *const f32,
                    four(shape(0)),
                    input(1) as *const f32,
                    four(shape(1)),
                    pointers[out] as *mut f32,
                    *geometry,
                ),
                InstrKind::Pool2d(geometry) => kernels::pool::pool2d(
                    input(0) as *const f32,
                    four(shape(0)),
                    pointers[out] as *mut f32,
                    four(&shapes[out]),
                    *geometry,
                ),
                InstrKind::ReduceRows { op, first_axis } => {
                    let rows: usize = shape(0)[..*first_axis].iter().product();
                    let length: usize = shape(0)[*first_axis..].iter().product();
                    if length == 0 && rows > 0 && matches!(op, ReduceOp::Max | ReduceOp::Min) {
                        return Err(EvalError::runtime(
                            format!("{op:?} over an empty axis has no identity"),
                            span,
                        ));
                    }
                    kernels::reduce::reduce_rows(
                        *op,
                        input(0) as *const f32,
                        rows,
                        length,
                        pointers[out] as *mut f32,
                    )
                }
                InstrKind::ReduceOuter { op, kept } => {
                    let x = shape(0);
                    let outer: usize = x[..kept.start].iter().product();
                    let middle: usize = x[kept.clone()].iter().product();
                    let inner: usize = x[kept.end..].iter().product();
                    if outer * inner == 0 && middle > 0 && *op == ReduceOp::Mean {
                        // The interpreter's mean of nothing.
                        let result = apply_kernel(
                            node,
                            &[&tensor_from_raw(input(0), DType::F32, x)],
                            &shapes[out],
                            bindings,
                        )?;
                        write_tensor(&result, pointers[out]);
                    } else {
                        kernels::reduce::reduce_outer(
                            *op,
                            input(0) as *const f32,
                            (outer, middle, inner),
                            pointers[out] as *mut f32,
                        )
                    }
                }
                InstrKind::Permute { perm } => {
                    let source = contiguous_strides(shape(0));
                    let view = View {
                        offset: 0,
                        strides: perm.iter().map(|&axis| source[axis]).collect(),
                    };
                    copy_contiguous(
                        input(0),
                        &view,
                        pointers[out],
                        &shapes[out],
                        element_size(out),
                    );
                }
                InstrKind::Expand => {
                    let (from, to) = (shape(0), &shapes[out]);
                    let source = contiguous_strides(from);
                    let pad = to.len() - from.len();
                    let strides = (0..to.len())
                        .map(|axis| {
                            if axis < pad || from[axis - pad] == 1 {
                                0
                            } else {
                                source[axis - pad]
                            }
                        })
                        .collect();
                    let view = View { offset: 0, strides };
                    copy_contiguous(input(0), &view, pointers[out], to, element_size(out));
                }
                InstrKind::Slice { axis, start, step } => {
                    let start = evaluate_shape(std::slice::from_ref(start), bindings)
                        .map_err(|e| EvalError::runtime(e, span))?[0];
                    let mut strides = contiguous_strides(shape(0));
                    let offset = start as isize * strides[*axis];
                    strides[*axis] *= *step as isize;
                    let view = View { offset, strides };
                    copy_contiguous(
                        input(0),
                        &view,
                        pointers[out],
                        &shapes[out],
                        element_size(out),
                    );
                }
                InstrKind::Concat { axis } => {
                    let out_shape = &shapes[out];
                    let strides = contiguous_strides(out_shape);
                    let mut position = 0usize;
                    for part in 0..instr.inputs.len() {
                        let part_shape = shape(part);
                        let destination = View {
                            offset: position as isize * strides[*axis],
                            strides: strides.clone(),
                        };
                        let source = View {
                            offset: 0,
                            strides: contiguous_strides(part_shape),
                        };
                        copy_strided(
                            input(part),
                            &source,
                            pointers[out],
                            &destination,
                            part_shape,
                            element_size(out),
                        );
                        position += part_shape[*axis];
                    }
                }
                InstrKind::Gather { axis } => {
                    let table = shape(0);
                    let outer: usize = table[..*axis].iter().product();
                    let inner: usize = table[*axis + 1..].iter().product();
                    let count: usize = shape(1).iter().product();
                    kernels::gather::gather(
                        input(0),
                        (outer, table[*axis], inner),
                        input(1) as *const i64,
                        count,
                        pointers[out],
                        element_size(out),
                        *axis,
                    )
                    .map_err(|e| EvalError::runtime(e, span))?;
                }
                InstrKind::SliceScatter { axis, start, step } => {
                    let start = evaluate_shape(std::slice::from_ref(start), bindings)
                        .map_err(|e| EvalError::runtime(e, span))?[0]
                        as i128;
                    let (part, whole) = (shape(0), &shapes[out]);
                    let (count, length) = (part[*axis] as i128, whole[*axis] as i128);
                    let last = start + (count - 1) * i128::from(*step);
                    if count > 0 && [start, last].iter().any(|i| *i < 0 || *i >= length) {
                        return Err(EvalError::runtime(
                            format!(
                                "scatter index out of range 0..{length} (start {start}, step {step}, count {count})"
                            ),
                            span,
                        ));
                    }
                    let total: usize = whole.iter().product();
                    std::ptr::write_bytes(pointers[out] as *mut f32, 0, total);
                    let mut strides = contiguous_strides(whole);
                    let offset = start as isize * strides[*axis];
                    strides[*axis] *= *step as isize;
                    copy_strided(
                        input(0),
                        &View {
                            offset: 0,
                            strides: contiguous_strides(part),
                        },
                        pointers[out],
                        &View { offset, strides },
                        part,
                        element_size(out),
                    );
                }
                InstrKind::ScatterAdd { axis } => {
                    let whole = &shapes[out];
                    kernels::gather::scatter_add(
                        input(0) as *const f32,
                        input(1) as *const i64,
                        shape(1).iter().product(),
                        pointers[out] as *mut f32,
                        (
                            whole[..*axis].iter().product(),
                            whole[*axis],
                            whole[*axis + 1..].iter().product(),
                        ),
                        *axis,
                    )
                    .map_err(|e| EvalError::runtime(e, span))?;
                }
                InstrKind::Fill(value) => {
                    let count: usize = shapes[out].iter().product();
                    match *value {
                        Literal::F32(v) => {
                            std::slice::from_raw_parts_mut(pointers[out] as *mut f32, count).fill(v)
                        }
                        Literal::I64(v) => {
                            std::slice::from_raw_parts_mut(pointers[out] as *mut i64, count).fill(v)
                        }
                        Literal::Bool(v) => {
                            std::ptr::write_bytes(pointers[out], u8::from(v), count)
                        }
                    }
                }
                InstrKind::Scan(scan) => {
                    let body = self
                        .bodies
                        .get(&index)
                        .ok_or_else(|| EvalError::runtime("scan body not bound", span))?;
                    run_scan(scan, body, instr, pointers, shapes, bindings, span)?;
                }
                InstrKind::Rows(group) => {
                    super::rows::run_rows(group, pointers, shapes, &element_size)
                        .map_err(|e| EvalError::runtime(e, span))?;
                }
                InstrKind::Interpret => {
                    let operands: Vec<Tensor> = instr
                        .inputs
                        .iter()
                        .map(|&v| tensor_from_raw(pointers[v], program.values[v].dtype, &shapes[v]))
                        .collect();
                    let references: Vec<&Tensor> = operands.iter().collect();
                    let result = apply_kernel(node, &references, &shapes[out], bindings)?;
                    if result.shape != shapes[out] || result.dtype() != program.values[out].dtype {
                        return Err(EvalError::runtime(
                            "an interpreted kernel returned an unexpected shape",
                            span,
                        ));
                    }
                    write_tensor(&result, pointers[out]);
                }
            }
        }
        Ok(())
    }
}

/// Copies a strided view of `source` into a contiguous `destination` of `shape`.
///
/// # Safety
/// The view addresses elements inside `source`; `destination` holds `shape`'s elements.
unsafe fn copy_contiguous(
    source: *const u8,
    view: &View,
    destination: *mut u8,
    shape: &[usize],
    element_size: usize,
) {
    let contiguous = View {
        offset: 0,
        strides: contiguous_strides(shape),
    };
    copy_strided(source, view, destination, &contiguous, shape, element_size);
}

/// Calls a fused kernel over `[outer, inner]`, splitting rows (or, for one row, columns)
/// across the pool when the kernel is large enough.
///
/// # Safety
/// Each operand pointer addresses what its access reads over `[outer, inner]`; `out` holds
/// `outer * inner` f32.
unsafe fn run_fused(
    function: super::jit::KernelFn,
    accesses: &[Access],
    operands: &[(*mut u8, usize)],
    out: *mut u8,
    (outer, inner): (usize, usize),
    cost: usize,
) {
    let total = outer * inner;
    if total == 0 {
        return;
    }
    let tasks = kernels::threads();
    // Weighted by the work per element: an LSTM cell update (sigmoids and tanh) over 16 x 128
    // elements splits; a plain add needs 2^16 elements.
    if total * cost < kernels::PARALLEL_WORK || tasks < 2 {
        let pointers: Vec<*const f32> = operands.iter().map(|(p, _)| *p as *const f32).collect();
        function(
            pointers.as_ptr(),
            out as *mut f32,
            outer as u64,
            inner as u64,
        );
        return;
    }
    let operands: Vec<(SendPtr<u8>, usize)> = operands
        .iter()
        .map(|(p, size)| (SendPtr(*p), *size))
        .collect();
    let out = SendPtr(out);
    // Element offsets of a chunk starting at `(row, column)`, per access.
    let run = |rows: std::ops::Range<usize>, columns: std::ops::Range<usize>| {
        let pointers: Vec<*const f32> = operands
            .iter()
            .zip(accesses)
            .map(|((pointer, size), access)| {
                let element = match access {
                    Access::Full => rows.start * inner + columns.start,
                    Access::Inner => columns.start,
                    Access::Outer => rows.start,
                    Access::Scalar => 0,
                };
                pointer.get().add(element * size) as *const f32
            })
            .collect();
        let destination = (out.get() as *mut f32).add(rows.start * inner + columns.start);
        function(
            pointers.as_ptr(),
            destination,
            rows.len() as u64,
            columns.len() as u64,
        );
    };
    if outer >= tasks {
        let chunk = outer.div_ceil(tasks);
        (0..tasks).into_par_iter().for_each(|task| {
            let rows = (task * chunk).min(outer)..((task + 1) * chunk).min(outer);
            if !rows.is_empty() {
                run(rows, 0..inner);
            }
        });
    } else if outer == 1 {
        // Chunks of whole vectors, so lanes line up the same as on one thread.
        let chunk = inner.div_ceil(tasks).div_ceil(8) * 8;
        (0..tasks).into_par_iter().for_each(|task| {
            let columns = (task * chunk).min(inner)..((task + 1) * chunk).min(inner);
            if !columns.is_empty() {
                run(0..1, columns);
            }
        });
    } else {
        (0..outer)
            .into_par_iter()
            .for_each(|row| run(row..row + 1, 0..inner));
    }
}

/// Runs a scan: the bound body once per step over one arena and one pointer table, the carried
/// state in fixed buffers, sequence slices copied out and per-step outputs copied into place.
#[allow(clippy::too_many_arguments)]
unsafe fn run_scan(
    scan: &ScanPlan,
    body: &BoundProgram,
    instr: &Instr,
    pointers: &[*mut u8],
    shapes: &[Vec<usize>],
    bindings: &Bindings,
    span: modelc_compiler::source::Span,
) -> Result<(), EvalError> {
    let program = body.program;
    let length = evaluate_shape(std::slice::from_ref(&scan.length), bindings)
        .map_err(|e| EvalError::runtime(e, span))?[0];
    let layout = body.layout(bindings)?;
    let mut arena = body.take_arena(layout.arena_bytes);
    let bytes_of = |value: ValueId, shape: &[usize]| {
        shape.iter().product::<usize>() * program.values[value].dtype.size_in_bytes()
    };
    let (n_carry, n_sequences) = (scan.n_carry, scan.n_sequences);
    // The carried state lives in fixed buffers that the body reads as its inputs; new states
    // are staged in a second set first, since one may be computed from another.
    let carry_bytes: Vec<usize> = (0..n_carry)
        .map(|i| bytes_of(program.inputs[i], &layout.shapes[program.inputs[i]]))
        .collect();
    let mut current: Vec<Vec<Line>> = carry_bytes.iter().map(|b| storage((*b).max(1))).collect();
    let mut staged: Vec<Vec<Line>> = carry_bytes.iter().map(|b| storage((*b).max(1))).collect();
    for (i, buffer) in current.iter_mut().enumerate() {
        std::ptr::copy_nonoverlapping(
            pointers[instr.inputs[i]],
            buffer.as_mut_ptr() as *mut u8,
            carry_bytes[i],
        );
    }
    let mut slices: Vec<Vec<Line>> = (0..n_sequences)
        .map(|s| {
            let value = program.inputs[n_carry + s];
            storage(bytes_of(value, &layout.shapes[value]).max(1))
        })
        .collect();
    // Slice views of each sequence: the step's offset changes, the rest does not.
    let slice_views: Vec<(View, Vec<usize>, isize, usize)> = (0..n_sequences)
        .map(|s| {
            let sequence_shape = &shapes[instr.inputs[n_carry + s]];
            let strides = contiguous_strides(sequence_shape);
            let mut slice_shape = sequence_shape.clone();
            slice_shape.remove(scan.axis);
            let mut slice_strides = strides.clone();
            slice_strides.remove(scan.axis);
            let element_size = program.values[program.inputs[n_carry + s]]
                .dtype
                .size_in_bytes();
            (
                View {
                    offset: 0,
                    strides: slice_strides,
                },
                slice_shape,
                strides[scan.axis],
                element_size,
            )
        })
        .collect();
    let mut inputs: Vec<*const u8> = Vec::with_capacity(program.inputs.len());
    inputs.extend(current.iter().map(|b| b.as_ptr() as *const u8));
    inputs.extend(slices.iter().map(|b| b.as_ptr() as *const u8));
    inputs.extend(
        instr.inputs[n_carry + n_sequences..]
            .iter()
            .map(|v| pointers[*v] as *const u8),
    );
    let mut body_pointers = body.pointer_table(&layout, arena.as_mut_ptr() as *mut u8, &inputs);
    // What is the same at every step (a recurrent weight's packed form) is computed once, into
    // storage kept for all the steps.
    let mut hoisted = Vec::new();
    for (index, body_instr) in program.instrs.iter().enumerate() {
        if !program.is_hoisted(body_instr) {
            continue;
        }
        for &output in &body_instr.outputs {
            let mut buffer = storage(bytes_of(output, &layout.shapes[output]).max(1));
            body_pointers[output] = buffer.as_mut_ptr() as *mut u8;
            hoisted.push(buffer);
        }
        body.run_instr(index, body_instr, &body_pointers, &layout.shapes, bindings)?;
    }
    let result = (|| -> Result<(), EvalError> {
        for step in 0..length {
            let position = if scan.reverse {
                length - 1 - step
            } else {
                step
            };
            for (s, slice) in slices.iter_mut().enumerate() {
                let (view, slice_shape, axis_stride, element_size) = &slice_views[s];
                let view = View {
                    offset: position as isize * axis_stride,
                    strides: view.strides.clone(),
                };
                copy_contiguous(
                    pointers[instr.inputs[n_carry + s]],
                    &view,
                    slice.as_mut_ptr() as *mut u8,
                    slice_shape,
                    *element_size,
                );
            }
            body.run_dynamic(&body_pointers, &layout, bindings, None)?;
            for (i, buffer) in staged.iter_mut().enumerate() {
                std::ptr::copy_nonoverlapping(
                    body_pointers[program.outputs[i]],
                    buffer.as_mut_ptr() as *mut u8,
                    carry_bytes[i],
                );
            }
            for k in 0..program.outputs.len() - n_carry {
                let produced = program.outputs[n_carry + k];
                let stacked = instr.outputs[n_carry + k];
                let stacked_shape = &shapes[stacked];
                let strides = contiguous_strides(stacked_shape);
                let mut step_strides = strides.clone();
                step_strides.remove(scan.axis);
                let destination = View {
                    offset: position as isize * strides[scan.axis],
                    strides: step_strides,
                };
                let step_shape = &layout.shapes[produced];
                let source = View {
                    offset: 0,
                    strides: contiguous_strides(step_shape),
                };
                copy_strided(
                    body_pointers[produced],
                    &source,
                    pointers[stacked],
                    &destination,
                    step_shape,
                    program.values[produced].dtype.size_in_bytes(),
                );
            }
            for (i, buffer) in current.iter_mut().enumerate() {
                std::ptr::copy_nonoverlapping(
                    staged[i].as_ptr() as *const u8,
                    buffer.as_mut_ptr() as *mut u8,
                    carry_bytes[i],
                );
            }
        }
        for (i, buffer) in current.iter().enumerate() {
            std::ptr::copy_nonoverlapping(
                buffer.as_ptr() as *const u8,
                pointers[instr.outputs[i]],
                carry_bytes[i],
            );
        }
        Ok(())
    })();
    body.arenas
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(arena);
    result
}
