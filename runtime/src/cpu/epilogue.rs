//! Epilogue fusion: an elementwise kernel whose only job on a contraction's result is to read it
//! (an activation, a residual add, a scale) runs as that contraction's epilogue instead of as
//! an instruction of its own.
//!
//! A convolution or matrix product `v = P(...)` and a fused kernel `y = F(..., v, ...)` merge
//! when `F` is the only instruction that reads `v` or any alias of it (a reshape), reads it
//! element by element (`Full`), and neither `v` nor an alias of it is a program output;
//! neither instruction is static. The merged instruction sits where `F` was,
//! reads `P`'s inputs and then `F`'s other inputs, and writes `y`: the contraction writes its
//! result into `y`'s buffer and `F` then runs over it in place, part by part as the contraction
//! hands parts over ([`kernels::Epilogue`](super::kernels::Epilogue)). The convolution hands
//! over each band of output rows while it is still in cache; the matrix product hands over its
//! whole result (the `gemm` crate has no per-tile hook), which still saves `v`'s buffer and an
//! instruction. `v` itself is never stored: its home becomes [`Home::Absorbed`].
//!
//! The merged instruction's output never shares memory with its inputs (only plain fused
//! kernels write in place), so a residual operand is intact when the epilogue reads it.

use super::jit::{Access, KernelFn};
use super::kernels::{for_column_blocks, threads, SendPtr, PARALLEL_WORK};
use super::plan::{Home, Instr, InstrKind, ValueId, ValueInfo};

/// A fused kernel run as a contraction's epilogue.
#[derive(Clone, Debug)]
pub struct EpilogueKernel {
    pub function: KernelFn,
    pub accesses: Vec<Access>,
    /// The kernel's `[outer, inner]` view of the output: the axes before `split` are outer.
    pub split: usize,
    /// The kernel's operands in its order; slot `product` is the contraction's result, read
    /// from the output buffer.
    pub operands: Vec<ValueId>,
    pub product: usize,
    /// How many of the instruction's inputs are the contraction's own (the rest are the
    /// epilogue's).
    pub own_inputs: usize,
}

/// Merges every fusable (contraction, fused kernel) pair in a planned, ordered instruction
/// list (see the module comment).
pub fn fuse_epilogues(
    instrs: Vec<Instr>,
    values: &mut [ValueInfo],
    outputs: &[ValueId],
) -> Vec<Instr> {
    // Readers by root buffer: a reshape is an alias, so reading it reads its source.
    let root = |mut value: ValueId| {
        while let Home::Alias(source) = values[value].home {
            value = source;
        }
        value
    };
    let mut readers = vec![0usize; values.len()];
    for instr in &instrs {
        for &input in &instr.inputs {
            readers[root(input)] += 1;
        }
    }
    // Outputs by root buffer too: an output that is a reshape of `v` needs `v` stored.
    let outputs: Vec<ValueId> = outputs.iter().map(|&v| root(v)).collect();
    let mut producer: Vec<Option<usize>> = vec![None; values.len()];
    for (index, instr) in instrs.iter().enumerate() {
        if is_contraction(&instr.kind) && !instr.is_static && instr.outputs.len() == 1 {
            producer[instr.outputs[0]] = Some(index);
        }
    }
    // Merged-away producers become `None`.
    let mut slots: Vec<Option<Instr>> = instrs.into_iter().map(Some).collect();
    for consumer in 0..slots.len() {
        let Some(instr) = &slots[consumer] else {
            continue;
        };
        let InstrKind::Fused { accesses, .. } = &instr.kind else {
            continue;
        };
        if instr.is_static {
            continue;
        }
        let candidate = instr.inputs.iter().zip(accesses).position(|(&v, access)| {
            *access == Access::Full
                && readers[v] == 1
                && producer[v].is_some_and(|p| slots[p].is_some())
                && values[v].home == Home::Computed
                && !outputs.contains(&v)
        });
        let Some(slot) = candidate else {
            continue;
        };
        let product = instr.inputs[slot];
        let (Some(instr), Some(mut merged)) = (
            slots[consumer].take(),
            producer[product].and_then(|p| slots[p].take()),
        ) else {
            unreachable!("both instructions were checked present");
        };
        let InstrKind::Fused {
            function,
            accesses,
            split,
            ..
        } = &instr.kind
        else {
            unreachable!("checked a fused kernel");
        };
        let own_inputs = merged.inputs.len();
        let epilogue = Box::new(EpilogueKernel {
            function: *function,
            accesses: accesses.clone(),
            split: *split,
            operands: instr.inputs.clone(),
            product: slot,
            own_inputs,
        });
        merged.inputs.extend(
            instr
                .inputs
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != slot)
                .map(|(_, v)| *v),
        );
        merged.outputs = instr.outputs.clone();
        merged.node = instr.node;
        match &mut merged.kind {
            InstrKind::Conv2d { epilogue: hook, .. } | InstrKind::MatMul { epilogue: hook, .. } => {
                *hook = Some(epilogue)
            }
            _ => unreachable!("only contractions are producers"),
        }
        values[product].home = Home::Absorbed;
        slots[consumer] = Some(merged);
    }
    slots.into_iter().flatten().collect()
}

fn is_contraction(kind: &InstrKind) -> bool {
    matches!(
        kind,
        InstrKind::Conv2d { epilogue: None, .. } | InstrKind::MatMul { epilogue: None, .. }
    )
}

/// An epilogue bound to one run's buffers: [`BoundEpilogue::run`] is the
/// [`Epilogue`](super::kernels::Epilogue) a contraction calls.
pub struct BoundEpilogue {
    function: KernelFn,
    /// Each operand's pointer, element size in bytes and access.
    operands: Vec<(SendPtr<u8>, usize, Access)>,
    out: SendPtr<f32>,
    /// The length of the kernel's inner view.
    inner: usize,
    /// Whether every operand is read element by element or as one value, so that any range
    /// is one call whatever rows it crosses.
    flat: bool,
}

impl BoundEpilogue {
    /// # Safety
    /// `pointers` and `element_sizes` are the run's, indexed by value; `out` is the
    /// instruction's output, of shape `out_shape`.
    pub unsafe fn new(
        kernel: &EpilogueKernel,
        pointers: &[*mut u8],
        element_size: impl Fn(ValueId) -> usize,
        out: *mut u8,
        out_shape: &[usize],
    ) -> BoundEpilogue {
        let operands = kernel
            .operands
            .iter()
            .zip(&kernel.accesses)
            .enumerate()
            .map(|(slot, (&value, &access))| {
                if slot == kernel.product {
                    (SendPtr(out), 4, access)
                } else {
                    (SendPtr(pointers[value]), element_size(value), access)
                }
            })
            .collect();
        BoundEpilogue {
            function: kernel.function,
            operands,
            out: SendPtr(out as *mut f32),
            inner: out_shape[kernel.split.min(out_shape.len())..]
                .iter()
                .product(),
            flat: kernel
                .accesses
                .iter()
                .all(|a| matches!(a, Access::Full | Access::Scalar)),
        }
    }

    /// Runs the kernel over output elements `start..start + length` (flat indices), in place,
    /// one call per row of the kernel's view that the range touches (one call in all when
    /// every operand is read element by element).
    pub fn run(&self, start: usize, length: usize) {
        let end = start + length;
        let mut position = start;
        // Operand pointers on the stack for the usual few operands: a convolution calls this
        // once per channel and band, so no allocation per call.
        let mut on_stack = [std::ptr::null::<f32>(); 8];
        let mut on_heap = Vec::new();
        let count = self.operands.len();
        let pointers: &mut [*const f32] = if count <= on_stack.len() {
            &mut on_stack[..count]
        } else {
            on_heap.resize(count, std::ptr::null());
            &mut on_heap
        };
        while position < end {
            let (row, column) = (position / self.inner, position % self.inner);
            let stop = if self.flat {
                end
            } else {
                end.min((row + 1) * self.inner)
            };
            // SAFETY: the range lies inside the output (the contraction's promise), so every
            // offset lies inside its operand, which the checker proved broadcast to it.
            unsafe {
                for (slot, &(pointer, size, access)) in pointers.iter_mut().zip(&self.operands) {
                    let element = match access {
                        Access::Full => position,
                        Access::Inner => column,
                        Access::Outer => row,
                        Access::Scalar => 0,
                    };
                    *slot = pointer.get().add(element * size) as *const f32;
                }
                (self.function)(
                    pointers.as_ptr(),
                    self.out.get().add(position),
                    1,
                    (stop - position) as u64,
                );
            }
            position = stop;
        }
    }

    /// Runs the kernel over the whole output of `total` elements, split over the threads.
    pub fn run_all(&self, total: usize) {
        let tasks = threads();
        if total < PARALLEL_WORK || tasks < 2 {
            self.run(0, total);
            return;
        }
        for_column_blocks(total, 8, |range| self.run(range.start, range.len()));
    }
}
