//! Translation of a scheduled fused kernel into the code generator's steps, and the choice of
//! how each operand broadcasts to the kernel's output.

use super::jit::{self, Access, Step};
use modelc_compiler::ir::{DType, Graph, Literal, NodeId, Op};
use modelc_compiler::schedule::Kernel;
use std::collections::HashMap;

/// Translates a fused kernel into JIT steps, or `None` if it uses an op or dtype the code
/// generator does not handle (it then runs node by node).
pub fn kernel_steps(graph: &Graph, kernel: &Kernel) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut step_of: HashMap<NodeId, usize> = HashMap::new();
    for (index, operand) in kernel.inputs.iter().enumerate() {
        if graph.node(*operand).ty.dtype != DType::F32 {
            return None;
        }
        step_of.insert(*operand, steps.len());
        steps.push(Step::Load(index));
    }
    for &id in &kernel.nodes {
        let node = graph.node(id);
        if node.ty.dtype != DType::F32 {
            return None;
        }
        let mut operand_steps = Vec::new();
        for operand in graph.operands(id) {
            let step = match step_of.get(&operand) {
                Some(step) => *step,
                None => match graph.node(operand).op {
                    Op::Fill(Literal::F32(value)) if graph.node(operand).ty.rank() == 0 => {
                        steps.push(Step::Constant(value));
                        step_of.insert(operand, steps.len() - 1);
                        steps.len() - 1
                    }
                    _ => return None,
                },
            };
            operand_steps.push(step);
        }
        let step = match (&node.op, operand_steps.as_slice()) {
            (Op::Unary(op), [x]) if jit::supports_unary(*op) => Step::Unary(*op, *x),
            (Op::Binary(op), [a, b]) if jit::supports_binary(*op) => Step::Binary(*op, *a, *b),
            (Op::Dropout { .. }, [x]) => {
                step_of.insert(id, *x);
                continue;
            }
            _ => return None,
        };
        steps.push(step);
        step_of.insert(id, steps.len() - 1);
    }
    // The code generator stores the last step; a kernel whose result is an earlier one (an
    // output that is only a dropout of a load) runs node by node instead.
    let result = *step_of.get(&kernel.output())?;
    (result + 1 == steps.len()).then_some(steps)
}

/// How each input of a fused kernel broadcasts to its output, decided from the static
/// (possibly symbolic) shapes: a split point `k` so that every input is the whole output, its
/// dims from `k` on, its dims before `k`, or a single value. `None` if no split fits.
pub fn static_accesses(graph: &Graph, kernel: &Kernel) -> Option<(usize, Vec<Access>)> {
    use modelc_compiler::ir::Dim;
    let output = &graph.node(kernel.output()).ty.shape;
    let rank = output.len();
    let one = Dim::constant(1);
    'split: for split in (0..=rank).rev() {
        let mut accesses = Vec::new();
        for operand in &kernel.inputs {
            let shape = &graph.node(*operand).ty.shape;
            if shape.len() > rank {
                return None;
            }
            // Left-pad with ones to the output's rank.
            let padded: Vec<&Dim> = std::iter::repeat_n(&one, rank - shape.len())
                .chain(shape.iter())
                .collect();
            let all_one = |range: std::ops::Range<usize>| padded[range].iter().all(|d| **d == one);
            let matches =
                |range: std::ops::Range<usize>| range.clone().all(|i| *padded[i] == output[i]);
            let access = if padded.iter().all(|d| **d == one) {
                Access::Scalar
            } else if matches(0..rank) {
                Access::Full
            } else if all_one(0..split) && matches(split..rank) {
                Access::Inner
            } else if matches(0..split) && all_one(split..rank) {
                Access::Outer
            } else {
                continue 'split;
            };
            accesses.push(access);
        }
        return Some((split, accesses));
    }
    None
}
