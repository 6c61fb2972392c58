//! Row groups: a reduction over trailing axes together with the elementwise kernels around it
//! (softmax's scale, max, exp and sum, and division; layer norm's residual add, mean,
//! centring, variance and scaling) run as one instruction, tile by tile over the rows.
//!
//! Every member of a group works row by row on the same `[rows, length]` view: a *row* member
//! reads and writes whole rows (`x - max`), a *per-row* member reads and writes one value per
//! row (`rsqrt(var + eps)`), a reduction turns rows into per-row values. So a tile of rows can
//! go through all members before the next tile starts: the tile's intermediates stay in the
//! cache, and the group splits over the threads once instead of once per member.
//!
//! [`group_rows`] forms the groups from a planned instruction list (one entry point, after
//! planning); [`run_rows`] executes one. The memory plan sees a group as one instruction that
//! writes every member's result, so no buffer a member reads is reused inside the group.

use super::jit::{Access, KernelFn};
use super::kernels::{self, SendPtr, PARALLEL_WORK};
use super::plan::{Instr, InstrKind, ValueId, ValueInfo};
use modelc_compiler::ir::{DType, Dim, NodeId, ReduceOp};
use rayon::prelude::*;
use std::collections::HashSet;

/// About this many elements of each value per tile (8 KiB of f32), so a tile's values stay in
/// the first- or second-level cache between members.
const TILE_ELEMENTS: usize = 2048;

pub struct RowGroup {
    pub members: Vec<Member>,
    /// A reduction's input and its first reduced axis: the value whose bound shape gives the
    /// group's rows and row length.
    pub probe: (ValueId, usize),
}

pub struct Member {
    pub kind: MemberKind,
    pub node: NodeId,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

pub enum MemberKind {
    /// A compiled elementwise kernel over whole rows, or over one value per row.
    Fused {
        function: KernelFn,
        accesses: Vec<Access>,
        per_row: bool,
    },
    /// A reduction of each row to one value.
    Reduce { op: ReduceOp },
}

/// The dims of a shape other than constant ones: two shapes with the same such dims have the
/// same row-major layout.
fn squeezed(dims: &[Dim]) -> Vec<Dim> {
    dims.iter()
        .filter(|d| d.as_const() != Some(1))
        .cloned()
        .collect()
}

/// The row structure of a group: the dims of the rows and of one row.
struct Rows {
    rows: Vec<Dim>,
    whole: Vec<Dim>,
}

impl Rows {
    fn of_reduction(input: &ValueInfo, first_axis: usize) -> Option<Rows> {
        let length = squeezed(&input.shape[first_axis..]);
        if length.is_empty() || input.dtype != DType::F32 {
            return None; // Rows of one element: nothing to gain.
        }
        Some(Rows {
            rows: squeezed(&input.shape[..first_axis]),
            whole: squeezed(&input.shape),
        })
    }

    /// How an instruction runs as a member of a group with these rows, or `None`.
    fn member(&self, instr: &Instr, values: &[ValueInfo]) -> Option<MemberKind> {
        if instr.is_static || instr.outputs.len() != 1 {
            return None;
        }
        match &instr.kind {
            InstrKind::ReduceRows { op, first_axis } => {
                let input = &values[instr.inputs[0]];
                let fits = squeezed(&input.shape[..*first_axis]) == self.rows
                    && squeezed(&input.shape) == self.whole
                    && input.dtype == DType::F32;
                fits.then_some(MemberKind::Reduce { op: *op })
            }
            InstrKind::Fused {
                function,
                accesses,
                split,
                ..
            } => {
                let out = &values[instr.outputs[0]].shape;
                let only_full = accesses
                    .iter()
                    .all(|a| matches!(a, Access::Full | Access::Scalar));
                let shape = squeezed(out);
                let per_row = if shape == self.whole {
                    // Outer and inner operands must be per-row values and row vectors.
                    let aligned = squeezed(&out[..*split]) == self.rows;
                    if !(only_full || aligned) {
                        return None;
                    }
                    false
                } else if shape == self.rows && only_full {
                    true
                } else {
                    return None;
                };
                Some(MemberKind::Fused {
                    function: *function,
                    accesses: accesses.clone(),
                    per_row,
                })
            }
            _ => None,
        }
    }
}

/// Replaces runs of instructions that can share rows (at least one reduction and one more
/// member) by row-group instructions. Static instructions (computed at bind) are left where
/// they are and do not break a run.
pub fn group_rows(instrs: Vec<Instr>, values: &[ValueInfo]) -> Vec<Instr> {
    let dynamic: Vec<usize> = (0..instrs.len())
        .filter(|&i| !instrs[i].is_static)
        .collect();
    // Member ranges, as positions in `dynamic`.
    let mut groups: Vec<(usize, usize, (ValueId, usize))> = Vec::new();
    let mut position = 0;
    while position < dynamic.len() {
        let instr = &instrs[dynamic[position]];
        let seed = match &instr.kind {
            InstrKind::ReduceRows { first_axis, .. } => {
                Rows::of_reduction(&values[instr.inputs[0]], *first_axis)
                    .map(|rows| (rows, (instr.inputs[0], *first_axis)))
            }
            _ => None,
        };
        let Some((rows, probe)) = seed else {
            position += 1;
            continue;
        };
        let floor = groups.last().map_or(0, |g| g.1);
        let mut start = position;
        while start > floor && rows.member(&instrs[dynamic[start - 1]], values).is_some() {
            start -= 1;
        }
        let mut end = position + 1;
        while end < dynamic.len() && rows.member(&instrs[dynamic[end]], values).is_some() {
            end += 1;
        }
        let end = start + row_local_prefix(&instrs, &dynamic[start..end]);
        // At least the seed reduction and one more member.
        if end > position && end - start >= 2 {
            groups.push((start, end, probe));
            position = end;
        } else {
            position += 1;
        }
    }
    if groups.is_empty() {
        return instrs;
    }
    let mut slots: Vec<Option<Instr>> = instrs.into_iter().map(Some).collect();
    let mut result = Vec::with_capacity(slots.len());
    let mut group_at = vec![None; slots.len()];
    for (index, (start, end, _)) in groups.iter().enumerate() {
        group_at[dynamic[*start]] = Some(index);
        for &i in &dynamic[*start + 1..*end] {
            group_at[i] = Some(usize::MAX); // Taken by the group that starts earlier.
        }
    }
    for index in 0..slots.len() {
        match group_at[index] {
            None => result.push(slots[index].take().expect("each instruction once")),
            Some(usize::MAX) => {}
            Some(group) => {
                let (start, end, probe) = groups[group];
                let members: Vec<Instr> = dynamic[start..end]
                    .iter()
                    .map(|&i| slots[i].take().expect("each instruction once"))
                    .collect();
                result.push(group_instruction(members, values, probe));
            }
        }
    }
    result
}

/// How many of the candidate members (in order) read values of earlier members only row by
/// row: a value made inside the group may not be read whole (as a row vector or a scalar).
fn row_local_prefix(instrs: &[Instr], candidates: &[usize]) -> usize {
    let mut produced: HashSet<ValueId> = HashSet::new();
    for (count, &index) in candidates.iter().enumerate() {
        let instr = &instrs[index];
        if let InstrKind::Fused { accesses, .. } = &instr.kind {
            let whole_read =
                instr.inputs.iter().zip(accesses).any(|(v, a)| {
                    produced.contains(v) && matches!(a, Access::Inner | Access::Scalar)
                });
            if whole_read {
                return count;
            }
        }
        produced.extend(instr.outputs.iter().copied());
    }
    candidates.len()
}

fn group_instruction(members: Vec<Instr>, values: &[ValueInfo], probe: (ValueId, usize)) -> Instr {
    let first_axis = probe.1;
    let rows = Rows::of_reduction(&values[probe.0], first_axis).expect("a seed reduction");
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut planned = Vec::new();
    for instr in members {
        let kind = rows
            .member(&instr, values)
            .expect("members were checked when the group was formed");
        for &input in &instr.inputs {
            if !outputs.contains(&input) && !inputs.contains(&input) {
                inputs.push(input);
            }
        }
        outputs.push(instr.outputs[0]);
        planned.push(Member {
            kind,
            node: instr.node,
            inputs: instr.inputs,
            output: instr.outputs[0],
        });
    }
    Instr {
        node: planned.last().expect("a group has members").node,
        kind: InstrKind::Rows(Box::new(RowGroup {
            members: planned,
            probe,
        })),
        inputs,
        outputs,
        is_static: false,
    }
}

/// Runs a row group over the bound `shapes`, the values at `pointers`.
///
/// # Safety
/// `pointers` address buffers of the bound shapes of every value (as the layout sized them),
/// and `element_sizes[v]` is the size of value `v`'s elements.
pub unsafe fn run_rows(
    group: &RowGroup,
    pointers: &[*mut u8],
    shapes: &[Vec<usize>],
    element_sizes: &dyn Fn(ValueId) -> usize,
) -> Result<(), String> {
    let (probe, first_axis) = group.probe;
    let rows: usize = shapes[probe][..first_axis].iter().product();
    let length: usize = shapes[probe][first_axis..].iter().product();
    if rows == 0 {
        return Ok(());
    }
    let extremum = group.members.iter().any(|m| {
        matches!(
            m.kind,
            MemberKind::Reduce {
                op: ReduceOp::Max | ReduceOp::Min
            }
        )
    });
    if length == 0 && extremum {
        return Err("a max or min over an empty axis has no identity".into());
    }
    let members: Vec<BoundMember> = group
        .members
        .iter()
        .map(|m| {
            let operands = m
                .inputs
                .iter()
                .map(|&v| (SendPtr(pointers[v]), element_sizes(v)))
                .collect();
            (m, operands, SendPtr(pointers[m.output]))
        })
        .collect();
    let tile = (TILE_ELEMENTS / length.max(1)).max(1);
    let most_operands = members.iter().map(|m| m.1.len()).max().unwrap_or(0);
    let run = |range: std::ops::Range<usize>| {
        // The operand pointers of one member call, reused across tiles and members.
        let mut pointers: Vec<*const f32> = Vec::with_capacity(most_operands);
        let mut start = range.start;
        while start < range.end {
            let end = (start + tile).min(range.end);
            for (member, operands, out) in &members {
                // SAFETY: rows `start..end` of every value lie inside its buffer.
                unsafe { run_member(member, operands, *out, start..end, length, &mut pointers) };
            }
            start = end;
        }
    };
    let work = rows * length.max(1) * members.len();
    let tasks = kernels::threads();
    if work >= PARALLEL_WORK && tasks > 1 && rows > 1 {
        let chunk = rows.div_ceil(tasks);
        (0..tasks).into_par_iter().for_each(|task| {
            let range = (task * chunk).min(rows)..((task + 1) * chunk).min(rows);
            if !range.is_empty() {
                run(range);
            }
        });
    } else {
        run(0..rows);
    }
    Ok(())
}

/// A member with its operands' pointers and element sizes, and its output's pointer.
type BoundMember<'g> = (&'g Member, Vec<(SendPtr<u8>, usize)>, SendPtr<u8>);

/// One member over rows `rows` of the group's `[rows, length]` view.
///
/// # Safety
/// See [`run_rows`].
unsafe fn run_member(
    member: &Member,
    operands: &[(SendPtr<u8>, usize)],
    out: SendPtr<u8>,
    rows: std::ops::Range<usize>,
    length: usize,
    pointers: &mut Vec<*const f32>,
) {
    let count = rows.len();
    match &member.kind {
        MemberKind::Reduce { op } => {
            let (input, size) = operands[0];
            kernels::reduce::reduce_rows_serial(
                *op,
                input.get().add(rows.start * length * size) as *const f32,
                count,
                length,
                (out.get() as *mut f32).add(rows.start),
            );
        }
        MemberKind::Fused {
            function,
            accesses,
            per_row,
        } => {
            let row_elements = if *per_row { 1 } else { length };
            pointers.clear();
            pointers.extend(
                operands
                    .iter()
                    .zip(accesses)
                    .map(|((pointer, size), access)| {
                        let element = match access {
                            Access::Full => rows.start * row_elements,
                            Access::Outer => rows.start,
                            Access::Inner | Access::Scalar => 0,
                        };
                        pointer.get().add(element * size) as *const f32
                    }),
            );
            let destination = (out.get() as *mut f32).add(rows.start * row_elements);
            // A per-row member's operands are all whole values: one row of `count` elements.
            let (outer, inner) = if *per_row {
                (1, count)
            } else {
                (count, length)
            };
            function(pointers.as_ptr(), destination, outer as u64, inner as u64);
        }
    }
}
