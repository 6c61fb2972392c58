//! The memory plan of one binding of the symbolic dims: every value's concrete shape, and an
//! offset in one arena for every computed value, reusing the space of values no longer read.
//!
//! Liveness is counted in instructions: a buffer is live from the instruction that writes it
//! to the last one that reads it or any alias of it (graph outputs live to the end). Buffers
//! are placed in instruction order, best fit among the free blocks, freed blocks merging with
//! their neighbours. A fused elementwise kernel writes in place over an input it reads element
//! by element when that input dies there: the kernel reads each element before it writes it.

use super::jit::Access;
use super::plan::{Home, InstrKind, Program, ValueId};
use modelc_compiler::interp::eval::{evaluate_shape, Bindings};
use modelc_compiler::interp::EvalError;

/// Alignment of every buffer in the arena, in bytes (a cache line).
pub const ALIGN: usize = 64;

/// A 64-byte aligned unit of arena storage.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Line(pub [u8; ALIGN]);

/// Zeroed storage of at least `bytes` bytes, 64-byte aligned.
pub fn storage(bytes: usize) -> Vec<Line> {
    vec![Line([0; ALIGN]); bytes.div_ceil(ALIGN)]
}

/// Most elements a single value may have; larger requests are reported, not attempted.
pub const MAX_ELEMENTS: usize = 1 << 31;

pub struct Layout {
    /// Concrete shape of every value.
    pub shapes: Vec<Vec<usize>>,
    /// Byte offset in the arena of every dynamic computed value (others: `usize::MAX`).
    pub offsets: Vec<usize>,
    pub arena_bytes: usize,
}

impl Layout {
    pub fn new(program: &Program, bindings: &Bindings) -> Result<Layout, EvalError> {
        let mut shapes = Vec::with_capacity(program.values.len());
        for value in &program.values {
            let span = program.graph.node(value.node).span;
            let shape =
                evaluate_shape(&value.shape, bindings).map_err(|e| EvalError::runtime(e, span))?;
            let count = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&c| c <= MAX_ELEMENTS);
            if count.is_none() {
                return Err(EvalError::too_large(
                    format!(
                        "a {} of shape {shape:?} has more than {MAX_ELEMENTS} elements",
                        value.dtype
                    ),
                    span,
                ));
            }
            shapes.push(shape);
        }
        let bytes = |value: ValueId| -> usize {
            shapes[value].iter().product::<usize>() * program.values[value].dtype.size_in_bytes()
        };
        let dynamic = |value: ValueId| {
            let info = &program.values[value];
            info.home == Home::Computed && !info.is_static
        };
        // Last reader of every root buffer.
        let instrs: Vec<usize> = (0..program.instrs.len())
            .filter(|&i| !program.instrs[i].is_static)
            .collect();
        let mut last_use = vec![0usize; program.values.len()];
        for (position, &index) in instrs.iter().enumerate() {
            for &input in &program.instrs[index].inputs {
                let root = program.root(input);
                last_use[root] = last_use[root].max(position);
            }
        }
        for &output in &program.outputs {
            last_use[program.root(output)] = usize::MAX;
        }
        let mut offsets = vec![usize::MAX; program.values.len()];
        let mut free = FreeList::default();
        for (position, &index) in instrs.iter().enumerate() {
            let instr = &program.instrs[index];
            for (slot, &output) in instr.outputs.iter().enumerate() {
                if !dynamic(output) {
                    continue;
                }
                let size = bytes(output);
                // In place over a dying input read element by element.
                let reuse = match &instr.kind {
                    InstrKind::Fused { accesses, .. } if slot == 0 => instr
                        .inputs
                        .iter()
                        .zip(accesses)
                        .find_map(|(&input, access)| {
                            let root = program.root(input);
                            let read_once = instr
                                .inputs
                                .iter()
                                .filter(|other| program.root(**other) == root)
                                .count()
                                == 1;
                            (*access == Access::Full
                                && read_once
                                && dynamic(root)
                                && last_use[root] == position
                                && bytes(root) == size
                                && offsets[root] != usize::MAX)
                                .then_some(root)
                        }),
                    _ => None,
                };
                offsets[output] = match reuse {
                    Some(root) => {
                        // The input's block now belongs to the output; it is freed with it.
                        last_use[root] = usize::MAX - 1;
                        offsets[root]
                    }
                    None => free.allocate(size.div_ceil(ALIGN) * ALIGN),
                };
            }
            // Free what dies here (after placing the outputs, which must not overlap inputs).
            for &input in &instr.inputs {
                let root = program.root(input);
                if dynamic(root) && last_use[root] == position && offsets[root] != usize::MAX {
                    free.release(offsets[root], bytes(root).div_ceil(ALIGN) * ALIGN);
                    last_use[root] = usize::MAX - 1; // Freed once even if read twice.
                }
            }
            for &output in &instr.outputs {
                // A result nobody reads (a scan's unused final state) is free at once.
                if dynamic(output) && last_use[output] == 0 && position > 0 {
                    free.release(offsets[output], bytes(output).div_ceil(ALIGN) * ALIGN);
                    last_use[output] = usize::MAX - 1;
                }
            }
        }
        Ok(Layout {
            shapes,
            offsets,
            arena_bytes: free.top,
        })
    }
}

/// Free blocks of the arena, sorted by offset, and the arena's high-water mark.
#[derive(Default)]
struct FreeList {
    blocks: Vec<(usize, usize)>,
    top: usize,
}

impl FreeList {
    fn allocate(&mut self, size: usize) -> usize {
        if size == 0 {
            return 0;
        }
        let best = self
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, (_, length))| *length >= size)
            .min_by_key(|(_, (_, length))| *length)
            .map(|(index, _)| index);
        if let Some(index) = best {
            let (offset, length) = self.blocks[index];
            if length == size {
                self.blocks.remove(index);
            } else {
                self.blocks[index] = (offset + size, length - size);
            }
            return offset;
        }
        // Grow the arena, extending a free block that ends at the top.
        if let Some(&(offset, length)) = self.blocks.last() {
            if offset + length == self.top {
                self.blocks.pop();
                self.top = offset + size;
                return offset;
            }
        }
        let offset = self.top;
        self.top += size;
        offset
    }

    fn release(&mut self, offset: usize, size: usize) {
        if size == 0 {
            return;
        }
        let index = self.blocks.partition_point(|(o, _)| *o < offset);
        self.blocks.insert(index, (offset, size));
        // Merge with the following block, then with the preceding one.
        if index + 1 < self.blocks.len() && offset + size == self.blocks[index + 1].0 {
            self.blocks[index].1 += self.blocks[index + 1].1;
            self.blocks.remove(index + 1);
        }
        if index > 0 && self.blocks[index - 1].0 + self.blocks[index - 1].1 == offset {
            self.blocks[index - 1].1 += self.blocks[index].1;
            self.blocks.remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FreeList;

    #[test]
    fn freed_blocks_are_reused_and_merged() {
        let mut free = FreeList::default();
        let a = free.allocate(64);
        let b = free.allocate(128);
        let c = free.allocate(64);
        assert_eq!((a, b, c), (0, 64, 192));
        free.release(a, 64);
        free.release(b, 128);
        assert_eq!(free.blocks, vec![(0, 192)]);
        assert_eq!(free.allocate(192), 0);
        assert_eq!(free.top, 256);
    }
}
