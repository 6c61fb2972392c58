//! Cranelift code generation for fused elementwise kernels.
//!
//! A fused kernel is compiled to `fn(operands: *const *const f32, out: *mut f32, outer: u64,
//! inner: u64)`: two nested loops over the output viewed as `[outer, inner]`. Each operand is
//! read according to how it broadcasts to the output: element by element (`Full`), along the
//! inner part only (`Inner`, a bias over the last dims), along the outer part only (`Outer`, a
//! per-row value such as a softmax maximum), or as one value (`Scalar`). The inner loop
//! processes four lanes at a time with f32x4 vectors (Cranelift's widest on x86-64), then the
//! remainder one by one.

use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MemFlagsData, Value as ClifValue};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use modelc_compiler::ir::{BinaryOp, UnaryOp};

/// How one operand is indexed relative to the output `[outer, inner]` view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Full,
    Inner,
    Outer,
    Scalar,
}

/// A fused kernel's computation as a list of steps in SSA form: each step's value is its
/// index; the last step is stored to the output.
#[derive(Clone, Debug)]
pub enum Step {
    Load(usize),
    Constant(f32),
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
}

/// Ops the code generator emits inline; kernels with others run on the interpreter's kernels.
pub fn supports_unary(op: UnaryOp) -> bool {
    matches!(
        op,
        UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Floor
    )
}

pub fn supports_binary(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Max
            | BinaryOp::Min
    )
}

pub type KernelFn = unsafe extern "C" fn(*const *const f32, *mut f32, u64, u64);

/// Owns the JIT memory; compiled functions live as long as it.
pub struct Jit {
    module: JITModule,
    context: cranelift_codegen::Context,
    builder_context: FunctionBuilderContext,
    count: usize,
}

impl Jit {
    pub fn new() -> Result<Jit, String> {
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
        let isa_builder = cranelift_native::builder().map_err(|e| e.to_string())?;
        let isa = isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())?;
        let module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let context = module.make_context();
        Ok(Jit {
            module,
            context,
            builder_context: FunctionBuilderContext::new(),
            count: 0,
        })
    }

    /// Compiles one kernel; returns its entry point and its CLIF text.
    pub fn compile(
        &mut self,
        steps: &[Step],
        accesses: &[Access],
    ) -> Result<(KernelFn, String), String> {
        let target = self.module.target_config();
        let pointer = target.pointer_type();
        self.module.clear_context(&mut self.context);
        let signature = &mut self.context.func.signature;
        signature.params.push(AbiParam::new(pointer));
        signature.params.push(AbiParam::new(pointer));
        signature.params.push(AbiParam::new(types::I64));
        signature.params.push(AbiParam::new(types::I64));
        {
            let mut builder =
                FunctionBuilder::new(&mut self.context.func, &mut self.builder_context);
            emit_kernel(&mut builder, pointer, steps, accesses);
            builder.seal_all_blocks();
            builder.finalize(target);
        }
        let clif = self.context.func.display().to_string();
        self.count += 1;
        let name = format!("fused_kernel_{}", self.count);
        let id = self
            .module
            .declare_function(&name, Linkage::Local, &self.context.func.signature)
            .map_err(|e| e.to_string())?;
        self.module
            .define_function(id, &mut self.context)
            .map_err(|e| format!("{e:?}"))?;
        self.module.clear_context(&mut self.context);
        self.module
            .finalize_definitions()
            .map_err(|e| e.to_string())?;
        let code = self.module.get_finalized_function(id);
        // SAFETY: the function was just compiled with exactly this signature.
        let function = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
        Ok((function, clif))
    }
}

fn emit_kernel(
    builder: &mut FunctionBuilder,
    pointer: types::Type,
    steps: &[Step],
    accesses: &[Access],
) {
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    let params = builder.block_params(entry).to_vec();
    let (operands_pointer, out_pointer, outer, inner) =
        (params[0], params[1], params[2], params[3]);
    let flags = MemFlagsData::trusted();
    // Operand base pointers, loaded once.
    let bases: Vec<ClifValue> = (0..accesses.len())
        .map(|index| {
            builder.ins().load(
                pointer,
                flags,
                operands_pointer,
                (index * pointer.bytes() as usize) as i32,
            )
        })
        .collect();
    let row = builder.declare_var(types::I64);
    let column = builder.declare_var(types::I64);
    let zero = builder.ins().iconst(types::I64, 0);
    builder.def_var(row, zero);

    let outer_head = builder.create_block();
    let outer_body = builder.create_block();
    let vector_head = builder.create_block();
    let vector_body = builder.create_block();
    let scalar_head = builder.create_block();
    let scalar_body = builder.create_block();
    let outer_next = builder.create_block();
    let exit = builder.create_block();

    builder.ins().jump(outer_head, &[]);
    builder.switch_to_block(outer_head);
    let row_value = builder.use_var(row);
    let more_rows = builder.ins().icmp(
        cranelift_codegen::ir::condcodes::IntCC::UnsignedLessThan,
        row_value,
        outer,
    );
    builder.ins().brif(more_rows, outer_body, &[], exit, &[]);

    builder.switch_to_block(outer_body);
    let zero = builder.ins().iconst(types::I64, 0);
    builder.def_var(column, zero);
    builder.ins().jump(vector_head, &[]);

    // Four lanes at a time while four remain.
    builder.switch_to_block(vector_head);
    let column_value = builder.use_var(column);
    let four_more = builder.ins().iadd_imm_s(column_value, 4);
    let fits = builder.ins().icmp(
        cranelift_codegen::ir::condcodes::IntCC::UnsignedLessThanOrEqual,
        four_more,
        inner,
    );
    builder.ins().brif(fits, vector_body, &[], scalar_head, &[]);

    builder.switch_to_block(vector_body);
    let row_value = builder.use_var(row);
    let column_value = builder.use_var(column);
    let result = emit_element(
        builder,
        steps,
        accesses,
        &bases,
        row_value,
        column_value,
        inner,
        true,
    );
    let flat = flat_index(builder, row_value, column_value, inner);
    let address = element_address(builder, out_pointer, flat);
    builder.ins().store(flags, result, address, 0);
    let next = builder.ins().iadd_imm_s(column_value, 4);
    builder.def_var(column, next);
    builder.ins().jump(vector_head, &[]);

    // The remainder, one lane at a time.
    builder.switch_to_block(scalar_head);
    let column_value = builder.use_var(column);
    let more = builder.ins().icmp(
        cranelift_codegen::ir::condcodes::IntCC::UnsignedLessThan,
        column_value,
        inner,
    );
    builder.ins().brif(more, scalar_body, &[], outer_next, &[]);

    builder.switch_to_block(scalar_body);
    let row_value = builder.use_var(row);
    let column_value = builder.use_var(column);
    let result = emit_element(
        builder,
        steps,
        accesses,
        &bases,
        row_value,
        column_value,
        inner,
        false,
    );
    let flat = flat_index(builder, row_value, column_value, inner);
    let address = element_address(builder, out_pointer, flat);
    builder.ins().store(flags, result, address, 0);
    let next = builder.ins().iadd_imm_s(column_value, 1);
    builder.def_var(column, next);
    builder.ins().jump(scalar_head, &[]);

    builder.switch_to_block(outer_next);
    let row_value = builder.use_var(row);
    let next_row = builder.ins().iadd_imm_s(row_value, 1);
    builder.def_var(row, next_row);
    builder.ins().jump(outer_head, &[]);

    builder.switch_to_block(exit);
    builder.ins().return_(&[]);
}

fn flat_index(
    builder: &mut FunctionBuilder,
    row: ClifValue,
    column: ClifValue,
    inner: ClifValue,
) -> ClifValue {
    let row_start = builder.ins().imul(row, inner);
    builder.ins().iadd(row_start, column)
}

fn element_address(builder: &mut FunctionBuilder, base: ClifValue, index: ClifValue) -> ClifValue {
    let offset = builder.ins().ishl_imm_u(index, 2);
    builder.ins().iadd(base, offset)
}

/// Emits one element (or four lanes) of the kernel's computation.
#[allow(clippy::too_many_arguments)]
fn emit_element(
    builder: &mut FunctionBuilder,
    steps: &[Step],
    accesses: &[Access],
    bases: &[ClifValue],
    row: ClifValue,
    column: ClifValue,
    inner: ClifValue,
    vector: bool,
) -> ClifValue {
    let flags = MemFlagsData::trusted();
    let lane_type = if vector { types::F32X4 } else { types::F32 };
    let mut values: Vec<ClifValue> = Vec::with_capacity(steps.len());
    for step in steps {
        let value = match step {
            Step::Load(operand) => {
                let base = bases[*operand];
                match accesses[*operand] {
                    Access::Full => {
                        let flat = flat_index(builder, row, column, inner);
                        let address = element_address(builder, base, flat);
                        builder.ins().load(lane_type, flags, address, 0)
                    }
                    Access::Inner => {
                        let address = element_address(builder, base, column);
                        builder.ins().load(lane_type, flags, address, 0)
                    }
                    Access::Outer => {
                        let address = element_address(builder, base, row);
                        let scalar = builder.ins().load(types::F32, flags, address, 0);
                        if vector {
                            builder.ins().splat(types::F32X4, scalar)
                        } else {
                            scalar
                        }
                    }
                    Access::Scalar => {
                        let scalar = builder.ins().load(types::F32, flags, base, 0);
                        if vector {
                            builder.ins().splat(types::F32X4, scalar)
                        } else {
                            scalar
                        }
                    }
                }
            }
            Step::Constant(c) => {
                let scalar = builder.ins().f32const(*c);
                if vector {
                    builder.ins().splat(types::F32X4, scalar)
                } else {
                    scalar
                }
            }
            Step::Unary(op, x) => {
                let x = values[*x];
                match op {
                    UnaryOp::Neg => builder.ins().fneg(x),
                    UnaryOp::Abs => builder.ins().fabs(x),
                    UnaryOp::Sqrt => builder.ins().sqrt(x),
                    UnaryOp::Floor => builder.ins().floor(x),
                    _ => {
                        // Rsqrt: an exact 1 / sqrt(x), matching the interpreter.
                        let root = builder.ins().sqrt(x);
                        let one = builder.ins().f32const(1.0);
                        let one = if vector {
                            builder.ins().splat(types::F32X4, one)
                        } else {
                            one
                        };
                        builder.ins().fdiv(one, root)
                    }
                }
            }
            Step::Binary(op, a, b) => {
                let (a, b) = (values[*a], values[*b]);
                match op {
                    BinaryOp::Add => builder.ins().fadd(a, b),
                    BinaryOp::Sub => builder.ins().fsub(a, b),
                    BinaryOp::Mul => builder.ins().fmul(a, b),
                    BinaryOp::Div => builder.ins().fdiv(a, b),
                    // NaN-propagating max/min, as the interpreter (and NumPy's maximum) do.
                    BinaryOp::Max => builder.ins().fmax(a, b),
                    _ => builder.ins().fmin(a, b),
                }
            }
        };
        values.push(value);
    }
    *values.last().expect("a kernel has at least one step")
}
