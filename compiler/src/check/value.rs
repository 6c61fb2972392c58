//! Compile-time values: what an expression evaluates to while a model is elaborated.
//!
//! Hyper-parameters and dims are known at compile time; tensors are known by type and by the
//! graph node that will compute them.

use super::modules::ItemRef;
use crate::ir::{DType, Dim, Init, NodeId, TensorType};
use crate::syntax::ast;
use std::collections::HashMap;
use std::rc::Rc;

/// A tensor during elaboration: its type and the node computing it, in the graph at `level`
/// (0 is the model's graph; each enclosing scan body adds one).
#[derive(Clone, Debug)]
pub struct TensorValue {
    pub ty: TensorType,
    pub node: NodeId,
    pub level: usize,
}

/// An instantiated layer.
pub type LayerId = usize;

#[derive(Clone, Debug)]
pub struct Closure {
    pub params: Vec<ast::Ident>,
    pub body: ast::Expr,
    pub captured: Vec<HashMap<String, Value>>,
    pub module: usize,
    pub layer: Option<LayerId>,
}

#[derive(Clone, Debug)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(Rc<str>),
    /// An absent optional param, or an `if` without `else` whose condition was false.
    None,
    /// A size that depends on symbols (`B`, `4*T`). Constant sizes are `Int`.
    Dim(Dim),
    DType(DType),
    Tensor(TensorValue),
    /// Tuples and lists.
    Tuple(Rc<Vec<Value>>),
    Range(i64, i64),
    Layer(LayerId),
    /// A layer type or a function, by its declaration.
    Item(ItemRef),
    Builtin(&'static str),
    Closure(Rc<Closure>),
    Init(Init),
    /// The result of an expression that already produced a diagnostic. Every operation on it
    /// yields `Error` again without a new diagnostic, so one mistake is reported once.
    Error,
}

impl Value {
    /// A short description for diagnostics: `an int`, `f32[B, 10]`, `layer Linear`.
    pub fn describe(&self) -> String {
        match self {
            Value::Int(v) => format!("the int {v}"),
            Value::Float(v) => format!("the float {v}"),
            Value::Bool(v) => format!("the bool {v}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::None => "none".into(),
            Value::Dim(d) => format!("the dim {d}"),
            Value::DType(d) => format!("the dtype {d}"),
            Value::Tensor(t) => format!("a tensor {}", t.ty),
            Value::Tuple(items) => format!("a tuple of {}", items.len()),
            Value::Range(a, b) => format!("the range {a}..{b}"),
            Value::Layer(_) => "a layer".into(),
            Value::Item(_) => "a layer or function definition".into(),
            Value::Builtin(name) => format!("the builtin `{name}`"),
            Value::Closure(_) => "a lambda".into(),
            Value::Init(_) => "an initializer".into(),
            Value::Error => "an erroneous value".into(),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error)
    }

    /// An int or symbolic size as a [`Dim`].
    pub fn as_dim(&self) -> Option<Dim> {
        match self {
            Value::Int(v) => Some(Dim::constant(*v)),
            Value::Dim(d) => Some(d.clone()),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }
}

/// A dim as a value: constant dims become plain ints.
pub fn dim_value(dim: Dim) -> Value {
    match dim.as_const() {
        Some(value) => Value::Int(value),
        None => Value::Dim(dim),
    }
}
