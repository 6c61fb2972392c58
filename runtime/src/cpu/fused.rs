//! Translation of a scheduled fused kernel into the code generator's steps, and the choice of
//! how each operand broadcasts to the kernel's output.

use super::jit::{self, Access, Step};
use modelc_compiler::ir::{BinaryOp, DType, Graph, Literal, NodeId, Op, UnaryOp};
use modelc_compiler::schedule::Kernel;
use std::collections::HashMap;

/// A node's value inside the translation: a step, or an i64 scalar constant, which only a cast
/// can use (the code generator has no i64 values).
#[derive(Clone, Copy)]
enum Value {
    Step(usize),
    Int(i64),
}

/// Translates a fused kernel into JIT steps, or `None` if it uses an op or dtype the code
/// generator does not handle (it then runs node by node). Operands may be f32 or bool (read
/// as bytes 0 or 1); values inside the kernel f32 or bool; the result must be f32. i64
/// operands and values, `Rem`, `Sin`, `Cos` and `Pow` with other than a constant exponent of
/// 2, 3, 0.5, 1 or -1 are not handled.
pub fn kernel_steps(graph: &Graph, kernel: &Kernel) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut value_of: HashMap<NodeId, Value> = HashMap::new();
    for (index, operand) in kernel.inputs.iter().enumerate() {
        let step = match graph.node(*operand).ty.dtype {
            DType::F32 => Step::Load(index),
            DType::Bool => Step::LoadBool(index),
            DType::I64 => return None,
        };
        value_of.insert(*operand, Value::Step(steps.len()));
        steps.push(step);
    }
    if graph.node(kernel.output()).ty.dtype != DType::F32 {
        return None;
    }
    for &id in &kernel.nodes {
        let node = graph.node(id);
        let mut operands = Vec::new();
        for (position, operand) in graph.operands(id).into_iter().enumerate() {
            if position == 1 && matches!(node.op, Op::Binary(BinaryOp::Pow)) {
                // The exponent is read from the graph as a constant (see `translate`), not
                // computed.
                operands.push(Value::Int(0));
                continue;
            }
            let value = match value_of.get(&operand) {
                Some(value) => *value,
                None => {
                    let value = match graph.node(operand).op {
                        Op::Fill(literal) if graph.node(operand).ty.rank() == 0 => match literal {
                            Literal::F32(v) => push(&mut steps, Step::Constant(v)),
                            Literal::Bool(b) => push(&mut steps, Step::BoolConstant(b)),
                            Literal::I64(v) => Value::Int(v),
                        },
                        _ => return None,
                    };
                    value_of.insert(operand, value);
                    value
                }
            };
            operands.push(value);
        }
        let value = match node.ty.dtype {
            DType::I64 => return None,
            DType::F32 | DType::Bool => translate(graph, id, &operands, &mut steps)?,
        };
        value_of.insert(id, value);
    }
    // The code generator stores the last step; a kernel whose result is an earlier one (an
    // output that is only a dropout of a load) runs node by node instead.
    match value_of.get(&kernel.output())? {
        Value::Step(result) if result + 1 == steps.len() => Some(steps),
        _ => None,
    }
}

fn push(steps: &mut Vec<Step>, step: Step) -> Value {
    steps.push(step);
    Value::Step(steps.len() - 1)
}

/// The value of one f32 or bool node from its operands' values, pushing its steps.
fn translate(
    graph: &Graph,
    id: NodeId,
    operands: &[Value],
    steps: &mut Vec<Step>,
) -> Option<Value> {
    let node = graph.node(id);
    let kinds = jit::step_kinds(steps).ok()?;
    let is_f32 = |value: &Value| matches!(value, Value::Step(s) if kinds[*s] == jit::Kind::F32);
    let is_bool = |value: &Value| matches!(value, Value::Step(s) if kinds[*s] == jit::Kind::Bool);
    let step = |value: &Value| match value {
        Value::Step(s) => Some(*s),
        Value::Int(_) => None,
    };
    let wants_f32 = node.ty.dtype == DType::F32;
    let new = match (&node.op, operands) {
        (Op::Dropout { .. }, [x]) if wants_f32 && is_f32(x) => return Some(*x),
        (Op::Unary(UnaryOp::Not), [x]) if !wants_f32 && is_bool(x) => {
            Step::Unary(UnaryOp::Not, step(x)?)
        }
        (Op::Unary(op), [x]) if wants_f32 && is_f32(x) && jit::supports_unary(*op) => {
            Step::Unary(*op, step(x)?)
        }
        (Op::Binary(BinaryOp::Pow), [x, _]) if wants_f32 && is_f32(x) => {
            // Only a scalar constant exponent, read from the graph.
            let exponent_node = graph.node(graph.operands(id)[1]);
            let exponent = match exponent_node.op {
                Op::Fill(Literal::F32(e)) if exponent_node.ty.rank() == 0 => e,
                _ => return None,
            };
            if !jit::supports_power(exponent) {
                return None;
            }
            Step::Power(step(x)?, exponent)
        }
        (Op::Binary(op), [a, b]) if is_f32(a) && is_f32(b) => {
            let comparison = op.is_comparison();
            if !jit::supports_binary(*op) || comparison == wants_f32 {
                return None;
            }
            Step::Binary(*op, step(a)?, step(b)?)
        }
        (Op::Binary(op), [a, b]) if !wants_f32 && is_bool(a) && is_bool(b) => match op {
            BinaryOp::And | BinaryOp::Or | BinaryOp::Eq | BinaryOp::Ne => {
                Step::Binary(*op, step(a)?, step(b)?)
            }
            _ => return None,
        },
        (Op::Select, [c, a, b]) if is_bool(c) => {
            let branches_fit = if wants_f32 {
                is_f32(a) && is_f32(b)
            } else {
                is_bool(a) && is_bool(b)
            };
            if !branches_fit {
                return None;
            }
            Step::Select(step(c)?, step(a)?, step(b)?)
        }
        (Op::Cast, [x]) => match (x, wants_f32) {
            // Same dtype: the value itself.
            (Value::Step(_), true) if is_f32(x) => return Some(*x),
            (Value::Step(_), false) if is_bool(x) => return Some(*x),
            (Value::Step(s), true) => Step::BoolToF32(*s),
            (Value::Step(s), false) => Step::F32ToBool(*s),
            // An i64 constant, converted as the interpreter does (`as f32`, nonzero).
            (Value::Int(v), true) => Step::Constant(*v as f32),
            (Value::Int(v), false) => Step::BoolConstant(*v != 0),
        },
        _ => return None,
    };
    Some(push(steps, new))
}

/// How each input of a fused kernel broadcasts to its output, decided from the static
/// (possibly symbolic) shapes: a split point `k` so that every input is the whole output, its
/// dims from `k` on, its dims before `k`, or a single value. The smallest such `k`, so the
/// inner loop (the vectorized one) is as long as possible: a kernel of whole-tensor operands
/// runs as one row. `None` if no split fits.
pub fn static_accesses(graph: &Graph, kernel: &Kernel) -> Option<(usize, Vec<Access>)> {
    use modelc_compiler::ir::Dim;
    let output = &graph.node(kernel.output()).ty.shape;
    let rank = output.len();
    let one = Dim::constant(1);
    'split: for split in 0..=rank {
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
