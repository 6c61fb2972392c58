//! Elaboration: checking a model and lowering it to the graph IR in one walk.
//!
//! A model is checked the way it will run: its layers are instantiated with their actual
//! hyper-parameters, and every expression is evaluated to a compile-time [`Value`]. Sizes and
//! hyper-parameters become numbers, batch dims stay symbols (`B`), and every tensor operation
//! both checks its operand types and appends a node to the graph. So the graph exists exactly
//! when the model checks, every node has the span of the expression that made it, and a layer
//! body is checked once per distinct use (a shape error in `Linear` is found with the sizes it
//! was called with, and reported at the call's argument when the signature rejects it).
//!
//! Errors never stop elaboration: a failed expression evaluates to [`Value::Error`], which every
//! later operation passes through silently, so one mistake gives one diagnostic.

use super::modules::{ItemRef, Program};
use super::scope::{ScanFrame, Scope};
use super::suggest;
use super::value::{dim_value, Closure, LayerId, TensorValue, Value};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{DType, Dim, DimError, Graph, Init, Literal, NodeId, Op, TensorType};
use crate::source::Span;
use crate::syntax::ast::{
    self, Expr, ExprKind, Item, LayerKind, Member, Pattern, Statement, TypeKind,
};
use std::collections::HashMap;
use std::rc::Rc;

/// The largest tensor the compiler accepts, in elements (16 GiB of f32).
pub const MAX_ELEMENTS: i64 = 1 << 32;
/// Deepest chain of nested layer instantiations and calls.
pub const MAX_CALL_DEPTH: usize = 64;
/// Most expression evaluations in one model: functions are inlined, so a chain of functions
/// that each call the next twice grows exponentially; this bounds the work.
pub const MAX_EVALUATIONS: usize = 2_000_000;
/// Most layer instances in one model (`repeat` inside `repeat` multiplies).
pub const MAX_LAYER_INSTANCES: usize = 100_000;

/// An instantiated layer: a declaration with its hyper-parameters bound and params created.
#[derive(Debug)]
pub struct LayerInstance {
    pub item: ItemRef,
    /// Dotted path in the layer tree (`block1.conv1`); empty for the model itself.
    pub path: String,
    pub hparams: HashMap<String, Value>,
    pub members: HashMap<String, Value>,
}

/// A graph under construction: the model's, or a scan body's.
struct GraphFrame {
    graph: Graph,
    /// Outer node → this graph's input node, for values a scan body reads from outside.
    captures: Vec<(NodeId, NodeId)>,
}

/// Argument values of a call, with spans for diagnostics.
#[derive(Default, Clone)]
pub struct Args {
    pub positional: Vec<(Value, Span)>,
    pub named: Vec<(ast::Ident, Value)>,
}

pub struct Elaborator<'p> {
    pub program: &'p Program,
    pub diagnostics: Diagnostics,
    graphs: Vec<GraphFrame>,
    pub layers: Vec<LayerInstance>,
    /// Items being instantiated or called, innermost last, with the call's span.
    call_stack: Vec<(ItemRef, Span)>,
    /// Inferred type of each checked expression, for hover in the language server.
    pub expression_types: Vec<(Span, String)>,
    /// Whether to record `expression_types`.
    pub record_types: bool,
    /// The call depth at which a `require` failed, until that call returns.
    failed_requirement: Option<usize>,
    /// Expressions evaluated so far, against [`MAX_EVALUATIONS`].
    evaluations: usize,
}

impl<'p> Elaborator<'p> {
    pub fn new(program: &'p Program) -> Elaborator<'p> {
        Elaborator {
            program,
            diagnostics: Diagnostics::new(),
            graphs: vec![GraphFrame {
                graph: Graph::new(),
                captures: Vec::new(),
            }],
            layers: Vec::new(),
            call_stack: Vec::new(),
            expression_types: Vec::new(),
            record_types: false,
            failed_requirement: None,
            evaluations: 0,
        }
    }

    pub fn into_graph(mut self) -> (Graph, Diagnostics) {
        let frame = self.graphs.swap_remove(0);
        (frame.graph, self.diagnostics)
    }

    // ------------------------------------------------------------------ diagnostics

    /// Reports a diagnostic. When it points into the stdlib while user code called it, the
    /// outermost user call site is added, so the user sees which of their lines caused it.
    pub fn report(&mut self, mut diagnostic: Diagnostic) {
        // After a failed `require`, the rest of that body would only report consequences.
        if self
            .failed_requirement
            .is_some_and(|depth| self.call_stack.len() >= depth)
        {
            return;
        }
        // An error inside the stdlib is the user's to fix at their call: that call becomes the
        // primary label, and the stdlib line stays as context.
        if let Some(span) = diagnostic.primary_span() {
            if self.span_in_stdlib(span) {
                let user_call = self
                    .call_stack
                    .iter()
                    .rev()
                    .map(|(_, call_span)| *call_span)
                    .find(|call_span| !self.span_in_stdlib(*call_span));
                if let Some(call_span) = user_call {
                    diagnostic.labels.insert(
                        0,
                        crate::diag::Label {
                            span: call_span,
                            message: "in this call".to_string(),
                        },
                    );
                }
            } else if !self.span_in_root(span) {
                // An error inside another of the user's modules: show which call in the file
                // being checked led there.
                let root_call = self
                    .call_stack
                    .iter()
                    .rev()
                    .map(|(_, call_span)| *call_span)
                    .find(|call_span| self.span_in_root(*call_span));
                if let Some(call_span) = root_call {
                    diagnostic = diagnostic.with_label(call_span, "in this call");
                }
            }
        }
        self.diagnostics.push(diagnostic);
    }

    /// Notes that a `require` failed: diagnostics from the rest of the current call are
    /// consequences and are dropped, and the call evaluates to an error.
    pub fn fail_requirement(&mut self) {
        let depth = self.call_stack.len().max(1);
        if self.failed_requirement.is_none_or(|d| depth < d) {
            self.failed_requirement = Some(depth);
        }
    }

    /// Leaves a call; returns whether a `require` failed inside it.
    fn pop_call(&mut self) -> bool {
        self.call_stack.pop();
        match self.failed_requirement {
            Some(depth) if self.call_stack.len() < depth => {
                self.failed_requirement = None;
                true
            }
            _ => false,
        }
    }

    /// The span a node should carry: inside the stdlib, the user's call that led there, so a
    /// node always points at a line of the user's own files.
    fn user_span(&self, span: Span) -> Span {
        if !self.span_in_stdlib(span) {
            return span;
        }
        self.call_stack
            .iter()
            .rev()
            .map(|(_, call_span)| *call_span)
            .find(|call_span| !self.span_in_stdlib(*call_span))
            .unwrap_or(span)
    }

    fn span_in_root(&self, span: Span) -> bool {
        self.program
            .sources
            .file_of(span.start)
            .and_then(|file| self.program.module_of_file(file))
            .is_some_and(|module| module == self.program.root)
    }

    fn span_in_stdlib(&self, span: Span) -> bool {
        self.program
            .sources
            .file_of(span.start)
            .and_then(|file| self.program.module_of_file(file))
            .is_some_and(|module| self.program.modules[module].is_stdlib)
    }

    fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Value {
        self.report(Diagnostic::error(code, message).with_label(span, label));
        Value::Error
    }

    pub fn dim_error(&mut self, error: DimError, span: Span) -> Value {
        match error {
            DimError::Overflow => self.error(
                "dim-overflow",
                span,
                "a size computation overflows 64 bits",
                "overflows here",
            ),
            DimError::DivisionByZero => self.error(
                "invalid-dim",
                span,
                "division by zero in a size",
                "divides by zero",
            ),
            DimError::NotDivisible => self.error(
                "dim-not-divisible",
                span,
                "a size does not divide evenly",
                "leaves a remainder",
            ),
        }
    }

    // ------------------------------------------------------------------ graph building

    pub fn level(&self) -> usize {
        self.graphs.len() - 1
    }

    fn graph_mut(&mut self) -> &mut Graph {
        &mut self
            .graphs
            .last_mut()
            .expect("the model graph is never popped")
            .graph
    }

    /// Brings a tensor into the current graph, adding capture inputs to enclosing scan bodies.
    fn import(&mut self, tensor: &TensorValue) -> Option<NodeId> {
        let current = self.level();
        if tensor.level > current {
            return None;
        }
        let mut node = tensor.node;
        for level in tensor.level + 1..=current {
            let frame = &mut self.graphs[level];
            if let Some((_, inner)) = frame.captures.iter().find(|(outer, _)| *outer == node) {
                node = *inner;
                continue;
            }
            let index = frame.graph.inputs.len();
            let inner = frame.graph.add(
                Op::Input {
                    index,
                    name: format!("capture{index}"),
                },
                tensor.ty.clone(),
                Span::DUMMY,
                &[],
            );
            frame.graph.inputs.push(inner);
            frame.captures.push((node, inner));
            node = inner;
        }
        Some(node)
    }

    /// Appends a node whose operands are `operands`, after checking its size.
    pub fn emit(&mut self, op: Op, ty: TensorType, span: Span, operands: &[&TensorValue]) -> Value {
        let span = self.user_span(span);
        if let Some(error) = self.check_size(&ty, span) {
            return error;
        }
        let mut operand_nodes = Vec::with_capacity(operands.len());
        for operand in operands {
            match self.import(operand) {
                Some(node) => operand_nodes.push(node),
                None => {
                    return self.error(
                        "runtime-error",
                        span,
                        "a value from inside a scan body is used outside it",
                        "used here",
                    )
                }
            }
        }
        let level = self.level();
        let node = self.graph_mut().add(op, ty.clone(), span, &operand_nodes);
        Value::Tensor(TensorValue { ty, node, level })
    }

    /// Rejects tensors whose constant element count exceeds [`MAX_ELEMENTS`].
    fn check_size(&mut self, ty: &TensorType, span: Span) -> Option<Value> {
        let mut count: i64 = 1;
        for dim in &ty.shape {
            let Some(size) = dim.as_const() else { continue };
            if size < 0 {
                return Some(self.error(
                    "invalid-dim",
                    span,
                    format!("a tensor of shape {} has a negative dim", shape_of(ty)),
                    "negative size",
                ));
            }
            count = count.checked_mul(size).unwrap_or(i64::MAX);
        }
        if count > MAX_ELEMENTS {
            return Some(self.error(
                "tensor-too-large",
                span,
                format!("a tensor of type {ty} has {count} elements; the limit is {MAX_ELEMENTS}"),
                "too large",
            ));
        }
        None
    }

    /// A rank-0 constant of the given dtype.
    pub fn scalar(&mut self, value: Literal, span: Span) -> TensorValue {
        let span = self.user_span(span);
        let level = self.level();
        let ty = TensorType::scalar(value.dtype());
        let node = self.graph_mut().add(Op::Fill(value), ty.clone(), span, &[]);
        TensorValue { ty, node, level }
    }

    // ------------------------------------------------------------------ models and layers

    /// Elaborates a model: instantiates its layer tree, creates inputs from its forward
    /// signature, runs the forward, and checks the result against the declared return type.
    pub fn elaborate_model(
        &mut self,
        model: ItemRef,
        hparam_overrides: &[(String, Value)],
    ) -> Option<()> {
        let program = self.program;
        let layer = program.layer(model)?;
        let args = Args {
            positional: Vec::new(),
            named: hparam_overrides
                .iter()
                .map(|(name, value)| {
                    (
                        ast::Ident {
                            name: name.clone(),
                            span: layer.name.span,
                        },
                        value.clone(),
                    )
                })
                .collect(),
        };
        let instance = self.instantiate(model, args, String::new(), layer.name.span)?;
        let Some(forward) = layer.forward() else {
            self.report(
                Diagnostic::error(
                    "missing-forward",
                    format!("`{}` has no forward", layer.name.name),
                )
                .with_label(layer.name.span, "declared here")
                .with_help("add `forward(x: f32[B, ...]) -> f32[B, ...] { ... }`"),
            );
            return None;
        };
        // Inputs: one graph input per forward parameter, typed from the signature.
        let mut scope = Scope::new(model.module, Some(instance), true);
        let mut inputs = Vec::new();
        for (index, param) in forward.params.iter().enumerate() {
            let Some(ty) = &param.ty else {
                self.report(
                    Diagnostic::error(
                        "invalid-type",
                        format!("model input `{}` needs a tensor type", param.name.name),
                    )
                    .with_label(param.name.span, "no type")
                    .with_help(format!("write `{}: f32[B, ...]`", param.name.name)),
                );
                return None;
            };
            let tensor_type = self.input_type(&mut scope, ty)?;
            let level = self.level();
            let node = self.graph_mut().add(
                Op::Input {
                    index,
                    name: param.name.name.clone(),
                },
                tensor_type.clone(),
                param.span,
                &[],
            );
            self.graph_mut().inputs.push(node);
            let value = Value::Tensor(TensorValue {
                ty: tensor_type,
                node,
                level,
            });
            scope.bind(&param.name.name, value.clone());
            inputs.push(value);
        }
        self.call_stack.push((model, forward.span));
        let result = self.eval_block(&mut scope, &forward.body);
        self.pop_call();
        let result = match &forward.ret {
            Some(ret) => {
                let mut binders = HashMap::new();
                if self.match_type(
                    &mut scope,
                    &result,
                    ret,
                    &mut binders,
                    forward.body.span,
                    "the forward's result",
                ) {
                    result
                } else {
                    Value::Error
                }
            }
            None => result,
        };
        let outputs = match &result {
            Value::Tensor(tensor) => vec![tensor.node],
            Value::Tuple(items) => {
                let mut nodes = Vec::new();
                for item in items.iter() {
                    match item {
                        Value::Tensor(tensor) => nodes.push(tensor.node),
                        Value::Error => return None,
                        other => {
                            let description = other.describe();
                            self.error(
                                "type-mismatch",
                                forward.body.span,
                                format!("a model returns tensors, but this forward returns {description}"),
                                "returned here",
                            );
                            return None;
                        }
                    }
                }
                nodes
            }
            Value::Error => return None,
            other => {
                let description = other.describe();
                self.error(
                    "type-mismatch",
                    forward.body.span,
                    format!("a model returns tensors, but this forward returns {description}"),
                    "returned here",
                );
                return None;
            }
        };
        self.graph_mut().outputs = outputs;
        Some(())
    }

    /// The type of a model input: literal dims and hyper-parameters are numbers, other names
    /// become symbols bound when the model runs.
    fn input_type(&mut self, scope: &mut Scope, ty: &ast::TypeExpr) -> Option<TensorType> {
        let TypeKind::Tensor { dtype, dims } = &ty.kind else {
            self.report(
                Diagnostic::error("invalid-type", "a model input must be a tensor type")
                    .with_label(ty.span, "not a tensor type")
                    .with_help("write a type like `f32[B, 784]`"),
            );
            return None;
        };
        let dtype = self.dtype(dtype)?;
        let mut shape = Vec::new();
        for dim in dims {
            match dim {
                ast::DimExpr::Ellipsis(span) => {
                    self.report(
                        Diagnostic::error("invalid-type", "a model input cannot have `...` dims")
                            .with_label(*span, "name these dims")
                            .with_help("use named dims such as `B` and `T`"),
                    );
                    return None;
                }
                ast::DimExpr::Expr(expr) => {
                    if let ExprKind::Name(name) = &expr.kind {
                        if self.try_lookup(scope, name).is_none() {
                            let symbol = Dim::symbol(name.clone());
                            scope.bind(name, Value::Dim(symbol.clone()));
                            shape.push(symbol);
                            continue;
                        }
                    }
                    let value = self.eval(scope, expr);
                    shape.push(self.to_dim(value, expr.span)?);
                }
            }
        }
        let ty = TensorType::new(dtype, shape);
        if self
            .check_size(&ty, dims_span(dims).unwrap_or(ty_span(ty_span_of(&ty))))
            .is_some()
        {
            return None;
        }
        Some(ty)
    }

    fn dtype(&mut self, ident: &ast::Ident) -> Option<DType> {
        match DType::from_name(&ident.name) {
            Some(dtype) => Some(dtype),
            None => {
                let known = ["f32".to_string(), "i64".to_string(), "bool".to_string()];
                let mut diagnostic = Diagnostic::error(
                    "invalid-type",
                    format!("unknown element type `{}`", ident.name),
                )
                .with_label(ident.span, "not a dtype");
                diagnostic = match suggest::closest(&ident.name, known.iter()) {
                    Some(s) => diagnostic.with_help(format!(
                        "did you mean `{s}`? the element types are f32, i64 and bool"
                    )),
                    None => diagnostic.with_help("the element types are f32, i64 and bool"),
                };
                self.report(diagnostic);
                None
            }
        }
    }

    /// Instantiates a layer declaration: binds hyper-parameters, creates params, instantiates
    /// sub-layers. Returns `None` after reporting when that fails.
    pub fn instantiate(
        &mut self,
        item: ItemRef,
        args: Args,
        path: String,
        span: Span,
    ) -> Option<LayerId> {
        let program = self.program;
        let layer = program.layer(item)?;
        if self.call_stack.iter().any(|(active, _)| *active == item) {
            self.report(
                Diagnostic::error("recursive-layer", format!("`{}` contains itself", layer.name.name))
                    .with_label(span, "instantiated again here")
                    .with_label(layer.name.span, "defined here")
                    .with_help("a layer cannot contain an instance of itself; use `scan` for repetition over time"),
            );
            return None;
        }
        if self.call_stack.len() >= MAX_CALL_DEPTH {
            self.error(
                "recursive-layer",
                span,
                format!("layers and functions nest more than {MAX_CALL_DEPTH} deep"),
                "too deep here",
            );
            return None;
        }
        if self.layers.len() >= MAX_LAYER_INSTANCES {
            self.error(
                "program-too-large",
                span,
                format!("the model instantiates more than {MAX_LAYER_INSTANCES} layers"),
                "one too many here",
            );
            return None;
        }
        let mut scope = Scope::new(item.module, None, false);
        self.call_stack.push((item, span));
        let hparams = self.bind_params(
            &mut scope,
            &layer.hparams,
            args,
            span,
            &layer.name.name,
            false,
        );
        self.pop_call();
        let hparams = hparams?;
        let id = self.layers.len();
        self.layers.push(LayerInstance {
            item,
            path: path.clone(),
            hparams,
            members: HashMap::new(),
        });
        self.call_stack.push((item, span));
        let mut scope = Scope::new(item.module, Some(id), false);
        let mut defined: HashMap<String, Span> = HashMap::new();
        for member in &layer.members {
            let (name, member_span) = match member {
                Member::Param(param) => (&param.name, param.span),
                Member::SubLayer(sub) => (&sub.name, sub.span),
                Member::Forward(_) => continue,
            };
            if let Some(first) = defined.get(&name.name) {
                self.report(
                    Diagnostic::error(
                        "duplicate-definition",
                        format!("`{}` is defined more than once", name.name),
                    )
                    .with_label(name.span, "defined again here")
                    .with_label(*first, "first defined here")
                    .with_help("rename one of them"),
                );
                continue;
            }
            defined.insert(name.name.clone(), name.span);
            let member_path = if path.is_empty() {
                name.name.clone()
            } else {
                format!("{path}.{}", name.name)
            };
            let value = match member {
                Member::Param(param) => self.create_param(&mut scope, param, &member_path),
                Member::SubLayer(sub) => {
                    self.create_sublayer(&mut scope, sub, &member_path, member_span)
                }
                Member::Forward(_) => continue,
            };
            self.layers[id].members.insert(name.name.clone(), value);
        }
        let forwards = layer
            .members
            .iter()
            .filter(|m| matches!(m, Member::Forward(_)))
            .count();
        if forwards > 1 {
            self.report(
                Diagnostic::error(
                    "duplicate-definition",
                    format!("`{}` has more than one forward", layer.name.name),
                )
                .with_label(layer.name.span, "in this layer")
                .with_help("keep one forward"),
            );
        }
        self.pop_call();
        Some(id)
    }

    fn create_param(&mut self, scope: &mut Scope, param: &ast::ParamDecl, path: &str) -> Value {
        if let Some(condition) = &param.condition {
            match self.eval(scope, condition) {
                Value::Bool(true) => {}
                Value::Bool(false) => return Value::None,
                Value::Error => return Value::Error,
                other => {
                    return self.error(
                        "non-constant-condition",
                        condition.span,
                        format!(
                            "a param condition must be a compile-time bool, found {}",
                            other.describe()
                        ),
                        "not a bool",
                    )
                }
            }
        }
        let TypeKind::Tensor { dtype, dims } = &param.ty.kind else {
            return self.error(
                "invalid-type",
                param.ty.span,
                "a param's type must be a tensor type",
                "not a tensor type",
            );
        };
        let Some(dtype) = self.dtype(dtype) else {
            return Value::Error;
        };
        let mut shape = Vec::new();
        for dim in dims {
            let ast::DimExpr::Expr(expr) = dim else {
                return self.error(
                    "invalid-type",
                    param.ty.span,
                    "a param's shape cannot contain `...`",
                    "give every dim",
                );
            };
            let value = self.eval(scope, expr);
            match value {
                Value::Int(size) if size > 0 => shape.push(Dim::constant(size)),
                Value::Int(size) => {
                    return self.error(
                        "invalid-dim",
                        expr.span,
                        format!("param `{path}` has a dim of {size}; dims must be positive"),
                        "not positive",
                    )
                }
                Value::Error => return Value::Error,
                Value::Float(_) if is_division(expr) => {
                    return self.error(
                        "dim-not-divisible",
                        expr.span,
                        "this size does not divide evenly",
                        "leaves a remainder",
                    )
                }
                other => {
                    return self.error(
                        "invalid-dim",
                        expr.span,
                        format!(
                            "a param's dims must be known integers, found {}",
                            other.describe()
                        ),
                        "not an integer size",
                    )
                }
            }
        }
        let ty = TensorType::new(dtype, shape);
        let init = match &param.init {
            Some(expr) => match self.initializer(scope, expr) {
                Some(init) => init,
                None => return Value::Error,
            },
            None => Init::Zeros,
        };
        self.emit(
            Op::Param {
                name: path.to_string(),
                init,
            },
            ty,
            param.span,
            &[],
        )
    }

    fn initializer(&mut self, scope: &mut Scope, expr: &Expr) -> Option<Init> {
        const NAMES: &[&str] = &[
            "zeros",
            "ones",
            "constant",
            "uniform",
            "normal",
            "kaiming_uniform",
            "kaiming_normal",
            "xavier_uniform",
            "xavier_normal",
        ];
        let (name, name_span, arg_exprs) = match &expr.kind {
            ExprKind::Call { callee, args } => match &callee.kind {
                ExprKind::Name(name) => (name.as_str(), callee.span, args.as_slice()),
                _ => ("", expr.span, args.as_slice()),
            },
            ExprKind::Name(name) => (name.as_str(), expr.span, &[][..]),
            ExprKind::Int(_) | ExprKind::Float(_) => {
                let value = self.eval(scope, expr);
                return value.as_f64().map(Init::Constant);
            }
            _ => ("", expr.span, &[][..]),
        };
        if !NAMES.contains(&name) {
            let names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
            let mut diagnostic = Diagnostic::error(
                "invalid-initializer",
                if name.is_empty() {
                    "a param initializer must be an initializer call".to_string()
                } else {
                    format!("`{name}` is not an initializer")
                },
            )
            .with_label(name_span, "not an initializer")
            .with_note(format!("initializers: {}", NAMES.join(", ")));
            if let Some(s) = suggest::closest(name, names.iter()) {
                diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
            }
            self.report(diagnostic);
            return None;
        }
        let args = self.eval_args(scope, arg_exprs);
        let signature: &[(&str, Option<f64>)] = match name {
            "zeros" | "ones" | "kaiming_normal" | "xavier_uniform" | "xavier_normal" => &[],
            "constant" => &[("value", None)],
            "uniform" => &[("low", Some(0.0)), ("high", Some(1.0))],
            "normal" => &[("mean", Some(0.0)), ("std", Some(1.0))],
            _ => &[("a", Some(0.0))],
        };
        let values = self.bind_float_args(name, signature, args, expr.span)?;
        Some(match name {
            "zeros" => Init::Zeros,
            "ones" => Init::Ones,
            "constant" => Init::Constant(values[0]),
            "uniform" => {
                if values[0] > values[1] {
                    self.error(
                        "invalid-argument",
                        expr.span,
                        "uniform(low, high) needs low <= high",
                        "empty range",
                    );
                    return None;
                }
                Init::Uniform {
                    low: values[0],
                    high: values[1],
                }
            }
            "normal" => Init::Normal {
                mean: values[0],
                std: values[1],
            },
            "kaiming_uniform" => Init::KaimingUniform { a: values[0] },
            "kaiming_normal" => Init::KaimingNormal,
            "xavier_uniform" => Init::XavierUniform,
            _ => Init::XavierNormal,
        })
    }

    /// Binds float-valued arguments of an initializer or similar builtin by name and position.
    fn bind_float_args(
        &mut self,
        callee: &str,
        signature: &[(&str, Option<f64>)],
        args: Args,
        span: Span,
    ) -> Option<Vec<f64>> {
        let mut values: Vec<Option<f64>> = signature.iter().map(|(_, default)| *default).collect();
        let mut ok = true;
        for (index, (value, arg_span)) in args.positional.into_iter().enumerate() {
            if index >= signature.len() {
                self.error(
                    "too-many-arguments",
                    arg_span,
                    format!("`{callee}` takes {} arguments", signature.len()),
                    "extra argument",
                );
                ok = false;
                continue;
            }
            match value.as_f64() {
                Some(v) => values[index] = Some(v),
                None => {
                    if !value.is_error() {
                        self.error(
                            "type-mismatch",
                            arg_span,
                            format!("expected a number, found {}", value.describe()),
                            "not a number",
                        );
                    }
                    ok = false;
                }
            }
        }
        for (name, value) in args.named {
            let Some(index) = signature.iter().position(|(n, _)| *n == name.name) else {
                self.error(
                    "unknown-argument",
                    name.span,
                    format!("`{callee}` has no argument `{}`", name.name),
                    "unknown argument",
                );
                ok = false;
                continue;
            };
            match value.as_f64() {
                Some(v) => values[index] = Some(v),
                None => {
                    if !value.is_error() {
                        self.error(
                            "type-mismatch",
                            name.span,
                            format!("expected a number, found {}", value.describe()),
                            "not a number",
                        );
                    }
                    ok = false;
                }
            }
        }
        let mut out = Vec::new();
        for ((name, _), value) in signature.iter().zip(values) {
            match value {
                Some(v) => out.push(v),
                None => {
                    self.error(
                        "missing-argument",
                        span,
                        format!("`{callee}` needs the argument `{name}`"),
                        "missing argument",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn create_sublayer(
        &mut self,
        scope: &mut Scope,
        sub: &ast::SubLayerDecl,
        path: &str,
        span: Span,
    ) -> Value {
        // `name = Layer(args)`: construct with the member's path.
        if let ExprKind::Call { callee, args } = &sub.value.kind {
            let is_repeat = matches!(&callee.kind, ExprKind::Name(name) if name == "repeat")
                && self.try_lookup(scope, "repeat").is_none();
            if is_repeat {
                return self.create_repeated(scope, sub, args, path, span);
            }
            let callee_value = self.eval(scope, callee);
            if let Value::Item(item) = callee_value {
                if self.program.layer(item).is_some() {
                    let args = self.eval_args(scope, args);
                    return match self.instantiate(item, args, path.to_string(), sub.value.span) {
                        Some(id) => Value::Layer(id),
                        None => Value::Error,
                    };
                }
            }
            if callee_value.is_error() {
                return Value::Error;
            }
        }
        // `h = [Block(256), Block(256)]`: a list of layers named `h.0`, `h.1`, ...
        if let ExprKind::List(elements) = &sub.value.kind {
            let mut layers = Vec::new();
            for (index, element) in elements.iter().enumerate() {
                let element_decl = ast::SubLayerDecl {
                    name: sub.name.clone(),
                    value: element.clone(),
                    span,
                };
                layers.push(self.create_sublayer(
                    scope,
                    &element_decl,
                    &format!("{path}.{index}"),
                    span,
                ));
            }
            return Value::Tuple(Rc::new(layers));
        }
        let value = self.eval(scope, &sub.value);
        match value {
            Value::Error => Value::Error,
            // A member may also be a compile-time constant or a function alias.
            Value::Int(_)
            | Value::Float(_)
            | Value::Bool(_)
            | Value::Str(_)
            | Value::Item(_)
            | Value::Builtin(_)
            | Value::Closure(_) => value,
            other => self.error(
                "type-mismatch",
                sub.value.span,
                format!(
                    "a layer member must be a layer construction like `Linear(4, 8)`, found {}",
                    other.describe()
                ),
                "not a layer",
            ),
        }
    }

    /// `h = repeat(Block(256), 4)`: `n` fresh instances of one construction, named `h.0`, ...
    fn create_repeated(
        &mut self,
        scope: &mut Scope,
        sub: &ast::SubLayerDecl,
        args: &[ast::Arg],
        path: &str,
        span: Span,
    ) -> Value {
        if args.len() != 2 || args.iter().any(|a| a.name.is_some()) {
            return self.error(
                "missing-argument",
                sub.value.span,
                "`repeat` takes a layer construction and a count: `repeat(Block(256), 4)`",
                "needs two arguments",
            );
        }
        let count = self.eval(scope, &args[1].value);
        let count = match count {
            Value::Int(count) => count,
            Value::Error => return Value::Error,
            other => {
                return self.error(
                    "type-mismatch",
                    args[1].value.span,
                    format!("a repeat count must be an int, found {}", other.describe()),
                    "not an int",
                )
            }
        };
        if !(1..=1024).contains(&count) {
            return self.error(
                "invalid-argument",
                args[1].value.span,
                format!("a repeat count must be between 1 and 1024, found {count}"),
                "out of range",
            );
        }
        let mut layers = Vec::new();
        for index in 0..count {
            let element_decl = ast::SubLayerDecl {
                name: sub.name.clone(),
                value: args[0].value.clone(),
                span,
            };
            layers.push(self.create_sublayer(
                scope,
                &element_decl,
                &format!("{path}.{index}"),
                span,
            ));
        }
        Value::Tuple(Rc::new(layers))
    }

    /// Binds call arguments to declared parameters, evaluating defaults in order and checking
    /// declared types. `members_visible` is false: parameters see only earlier parameters.
    pub fn bind_params(
        &mut self,
        scope: &mut Scope,
        params: &[ast::Param],
        args: Args,
        call_span: Span,
        callee: &str,
        tensor_params: bool,
    ) -> Option<HashMap<String, Value>> {
        let mut slots: Vec<Option<(Value, Span)>> = vec![None; params.len()];
        let mut ok = true;
        let signature = || {
            let parts: Vec<String> = params
                .iter()
                .map(|p| {
                    let ty =
                        p.ty.as_ref()
                            .map(|t| format!(": {}", crate::syntax::print::type_expr(t)))
                            .unwrap_or_default();
                    let default = p
                        .default
                        .as_ref()
                        .map(|d| format!(" = {}", crate::syntax::print::expr(d)))
                        .unwrap_or_default();
                    format!("{}{ty}{default}", p.name.name)
                })
                .collect();
            format!("{callee}({})", parts.join(", "))
        };
        for (index, (value, span)) in args.positional.into_iter().enumerate() {
            if index < params.len() {
                slots[index] = Some((value, span));
            } else {
                self.report(
                    Diagnostic::error(
                        "too-many-arguments",
                        format!(
                            "`{callee}` takes {} argument{}, but more were given",
                            params.len(),
                            plural(params.len())
                        ),
                    )
                    .with_label(span, "extra argument")
                    .with_help(format!("the signature is `{}`", signature())),
                );
                ok = false;
            }
        }
        for (name, value) in args.named {
            let Some(index) = params.iter().position(|p| p.name.name == name.name) else {
                let names: Vec<String> = params.iter().map(|p| p.name.name.clone()).collect();
                let mut diagnostic = Diagnostic::error(
                    "unknown-argument",
                    format!("`{callee}` has no parameter `{}`", name.name),
                )
                .with_label(name.span, "unknown parameter");
                diagnostic = match suggest::closest(&name.name, names.iter()) {
                    Some(s) => diagnostic.with_help(format!("did you mean `{s}`?")),
                    None => diagnostic.with_help(format!("the signature is `{}`", signature())),
                };
                self.report(diagnostic);
                ok = false;
                continue;
            };
            if let Some((_, first_span)) = &slots[index] {
                self.report(
                    Diagnostic::error(
                        "duplicate-argument",
                        format!("`{}` is given twice", name.name),
                    )
                    .with_label(name.span, "given again here")
                    .with_label(*first_span, "first given here"),
                );
                ok = false;
                continue;
            }
            slots[index] = Some((value, name.span));
        }
        let mut bound = HashMap::new();
        for (param, slot) in params.iter().zip(slots) {
            let (value, span) = match slot {
                Some(slot) => slot,
                None => match &param.default {
                    Some(default) => (self.eval(scope, default), default.span),
                    None => {
                        self.report(
                            Diagnostic::error(
                                "missing-argument",
                                format!("`{callee}` needs the argument `{}`", param.name.name),
                            )
                            .with_label(call_span, format!("`{}` is missing", param.name.name))
                            .with_help(format!("the signature is `{}`", signature())),
                        );
                        ok = false;
                        scope.bind(&param.name.name, Value::Error);
                        continue;
                    }
                },
            };
            let value = match &param.ty {
                Some(ty) if !value.is_error() => {
                    let what = format!("argument `{}` of `{callee}`", param.name.name);
                    self.coerce_param(scope, value, ty, span, &what, tensor_params)
                }
                _ => value,
            };
            if value.is_error() {
                ok = ok && param.ty.is_none();
            }
            scope.bind(&param.name.name, value.clone());
            bound.insert(param.name.name.clone(), value);
        }
        ok.then_some(bound)
    }

    /// Checks a value against a parameter's declared type, converting ints to floats where a
    /// float is declared. Tensor types bind their named dims into `scope`.
    fn coerce_param(
        &mut self,
        scope: &mut Scope,
        value: Value,
        ty: &ast::TypeExpr,
        span: Span,
        what: &str,
        _tensor_params: bool,
    ) -> Value {
        if let TypeKind::Named(type_name) = &ty.kind {
            let converted = match (type_name.name.as_str(), &value) {
                ("int", Value::Int(_) | Value::Dim(_)) => Some(value.clone()),
                ("float", Value::Float(_)) => Some(value.clone()),
                ("float", Value::Int(v)) => Some(Value::Float(*v as f64)),
                ("bool", Value::Bool(_)) => Some(value.clone()),
                ("string", Value::Str(_)) => Some(value.clone()),
                ("int" | "float" | "bool" | "string", _) => None,
                _ => {
                    self.report(
                        Diagnostic::error("invalid-type", format!("unknown type `{}`", type_name.name))
                            .with_label(type_name.span, "not a type")
                            .with_help("parameter types are int, float, bool, string, or a tensor type like f32[B, 10]"),
                    );
                    return Value::Error;
                }
            };
            return match converted {
                Some(v) => v,
                None => self.error(
                    "type-mismatch",
                    span,
                    format!(
                        "{what} must be {} {}, found {}",
                        article(&type_name.name),
                        type_name.name,
                        value.describe()
                    ),
                    format!("expected {}", type_name.name),
                ),
            };
        }
        let mut binders = HashMap::new();
        if self.match_type(scope, &value, ty, &mut binders, span, what) {
            for (binder, dim) in binders {
                scope.bind(&binder, dim);
            }
            value
        } else {
            Value::Error
        }
    }

    /// Matches a value against a type expression. Named dims that are not in scope bind to the
    /// actual dims (recorded in `binders`); others must equal. Reports and returns false on a
    /// mismatch.
    pub fn match_type(
        &mut self,
        scope: &mut Scope,
        value: &Value,
        ty: &ast::TypeExpr,
        binders: &mut HashMap<String, Value>,
        span: Span,
        what: &str,
    ) -> bool {
        if value.is_error() {
            return false;
        }
        match &ty.kind {
            TypeKind::Tuple(types) => {
                let Value::Tuple(items) = value else {
                    self.error(
                        "type-mismatch",
                        span,
                        format!("{what} must be a tuple, found {}", value.describe()),
                        "not a tuple",
                    );
                    return false;
                };
                if items.len() != types.len() {
                    self.error(
                        "type-mismatch",
                        span,
                        format!(
                            "{what} must be a tuple of {}, found a tuple of {}",
                            types.len(),
                            items.len()
                        ),
                        "wrong length",
                    );
                    return false;
                }
                let items = items.clone();
                let mut ok = true;
                for (item, item_ty) in items.iter().zip(types) {
                    ok &= self.match_type(scope, item, item_ty, binders, span, what);
                }
                ok
            }
            TypeKind::Named(name) => {
                let fits = match name.name.as_str() {
                    "int" => matches!(value, Value::Int(_) | Value::Dim(_)),
                    "float" => matches!(value, Value::Float(_) | Value::Int(_)),
                    "bool" => matches!(value, Value::Bool(_)),
                    "string" => matches!(value, Value::Str(_)),
                    _ => {
                        self.error(
                            "invalid-type",
                            name.span,
                            format!("unknown type `{}`", name.name),
                            "not a type",
                        );
                        return false;
                    }
                };
                if !fits {
                    self.error(
                        "type-mismatch",
                        span,
                        format!(
                            "{what} must be {} {}, found {}",
                            article(&name.name),
                            name.name,
                            value.describe()
                        ),
                        format!("expected {}", name.name),
                    );
                }
                fits
            }
            TypeKind::Tensor { dtype, dims } => {
                let Some(expected_dtype) = self.dtype(dtype) else {
                    return false;
                };
                let Value::Tensor(tensor) = value else {
                    self.error(
                        "type-mismatch",
                        span,
                        format!(
                            "{what} must be a tensor {}, found {}",
                            crate::syntax::print::type_expr(ty),
                            value.describe()
                        ),
                        "expected a tensor",
                    );
                    return false;
                };
                let actual = tensor.ty.clone();
                let declared = crate::syntax::print::type_expr(ty);
                if actual.dtype != expected_dtype {
                    self.report(
                        Diagnostic::error(
                            "dtype-mismatch",
                            format!("{what} must be {declared}, found {actual}"),
                        )
                        .with_label(
                            span,
                            format!("this is {}, not {}", actual.dtype, expected_dtype),
                        )
                        .with_help(format!(
                            "convert with `cast(x, {expected_dtype})` if that is intended"
                        )),
                    );
                    return false;
                }
                let ellipses = dims
                    .iter()
                    .filter(|d| matches!(d, ast::DimExpr::Ellipsis(_)))
                    .count();
                if ellipses > 1 {
                    self.error(
                        "invalid-type",
                        ty.span,
                        "a type can have at most one `...`",
                        "more than one `...`",
                    );
                    return false;
                }
                let fixed = dims.len() - ellipses;
                let rank_ok = if ellipses == 1 {
                    actual.rank() >= fixed
                } else {
                    actual.rank() == fixed
                };
                if !rank_ok {
                    self.report(
                        Diagnostic::error(
                            "rank-mismatch",
                            format!("{what} must be {declared}, found {actual}"),
                        )
                        .with_label(
                            span,
                            format!(
                                "this has {} dim{}, {} expected",
                                actual.rank(),
                                plural(actual.rank()),
                                if ellipses == 1 {
                                    format!("at least {fixed}")
                                } else {
                                    fixed.to_string()
                                }
                            ),
                        ),
                    );
                    return false;
                }
                // Pair each declared dim with the actual dim it describes.
                let mut pairs: Vec<(&Expr, usize)> = Vec::new();
                let mut actual_index = 0;
                for dim in dims {
                    match dim {
                        ast::DimExpr::Ellipsis(_) => actual_index += actual.rank() - fixed,
                        ast::DimExpr::Expr(expr) => {
                            pairs.push((expr, actual_index));
                            actual_index += 1;
                        }
                    }
                }
                let mut mismatches = Vec::new();
                for (expr, index) in pairs {
                    let actual_dim = actual.shape[index].clone();
                    if let ExprKind::Name(name) = &expr.kind {
                        if let Some(bound) = binders.get(name) {
                            if bound.as_dim().as_ref() != Some(&actual_dim) {
                                mismatches.push((
                                    index,
                                    bound.as_dim().map(|d| d.to_string()).unwrap_or_default(),
                                    actual_dim,
                                ));
                            }
                            continue;
                        }
                        if self.try_lookup(scope, name).is_none() {
                            binders.insert(name.clone(), dim_value(actual_dim));
                            continue;
                        }
                    }
                    scope.push();
                    for (binder, dim) in binders.iter() {
                        scope.bind(binder, dim.clone());
                    }
                    let expected = self.eval(scope, expr);
                    scope.pop();
                    let Some(expected) = self.to_dim(expected, expr.span) else {
                        return false;
                    };
                    if expected != actual_dim {
                        mismatches.push((index, expected.to_string(), actual_dim));
                    }
                }
                if let Some((index, expected, found)) = mismatches.first() {
                    let expected_type =
                        self.instantiated_type_text(scope, expected_dtype, dims, binders);
                    let mut diagnostic = Diagnostic::error(
                        "shape-mismatch",
                        format!("{what} must be {expected_type}, found {actual}"),
                    )
                    .with_label(
                        span,
                        format!("dim {index} is {found} here, but {expected} is expected"),
                    );
                    for (index, expected, found) in mismatches.iter().skip(1) {
                        diagnostic = diagnostic.with_note(format!(
                            "dim {index} is {found}, but {expected} is expected"
                        ));
                    }
                    self.report(diagnostic);
                    return false;
                }
                true
            }
        }
    }

    /// A declared tensor type with the sizes known here filled in: `f32[..., 500]` rather than
    /// `f32[..., inputs]`. Dims that bind new names keep their names.
    fn instantiated_type_text(
        &mut self,
        scope: &mut Scope,
        dtype: DType,
        dims: &[ast::DimExpr],
        binders: &HashMap<String, Value>,
    ) -> String {
        let mut parts = Vec::new();
        for dim in dims {
            match dim {
                ast::DimExpr::Ellipsis(_) => parts.push("...".to_string()),
                ast::DimExpr::Expr(expr) => {
                    if let ExprKind::Name(name) = &expr.kind {
                        if let Some(bound) = binders.get(name) {
                            parts.push(
                                bound
                                    .as_dim()
                                    .map(|d| d.to_string())
                                    .unwrap_or_else(|| name.clone()),
                            );
                            continue;
                        }
                        if self.try_lookup(scope, name).is_none() {
                            parts.push(name.clone());
                            continue;
                        }
                    }
                    let saved = self.diagnostics.len();
                    scope.push();
                    for (binder, value) in binders {
                        scope.bind(binder, value.clone());
                    }
                    let value = self.eval(scope, expr);
                    scope.pop();
                    let text = match value.as_dim() {
                        Some(dim) if self.diagnostics.len() == saved => dim.to_string(),
                        _ => crate::syntax::print::expr(expr),
                    };
                    parts.push(text);
                }
            }
        }
        format!("{dtype}[{}]", parts.join(", "))
    }

    /// An int or symbolic size as a dim, reporting anything else.
    pub fn to_dim(&mut self, value: Value, span: Span) -> Option<Dim> {
        match value {
            Value::Int(_) | Value::Dim(_) => value.as_dim(),
            Value::Error => None,
            Value::Float(v) => {
                self.error(
                    "dim-not-divisible",
                    span,
                    format!("a size must be a whole number, this is {v}"),
                    "not a whole number",
                );
                None
            }
            other => {
                self.error(
                    "invalid-dim",
                    span,
                    format!("a size must be an int, found {}", other.describe()),
                    "not a size",
                );
                None
            }
        }
    }

    // ------------------------------------------------------------------ names

    /// Looks a name up without reporting: locals, the layer's members and hyper-parameters,
    /// top-level items, builtins.
    pub fn try_lookup(&self, scope: &Scope, name: &str) -> Option<Value> {
        if let Some(value) = scope.local(name) {
            return Some(value.clone());
        }
        if let Some(layer) = scope.layer.and_then(|id| self.layers.get(id)) {
            if scope.members_visible {
                if let Some(value) = layer.members.get(name) {
                    return Some(value.clone());
                }
            }
            if let Some(value) = layer.hparams.get(name) {
                return Some(value.clone());
            }
        }
        if let Some(item) = self.program.lookup(scope.module, name) {
            return Some(Value::Item(item));
        }
        super::builtins::constant(name)
            .or_else(|| super::builtins::lookup(name).map(Value::Builtin))
    }

    pub fn lookup(&mut self, scope: &Scope, name: &str, span: Span) -> Value {
        if let Some(value) = self.try_lookup(scope, name) {
            return value;
        }
        let mut candidates = scope.local_names();
        if let Some(layer) = scope.layer.and_then(|id| self.layers.get(id)) {
            candidates.extend(layer.hparams.keys().cloned());
            if scope.members_visible {
                candidates.extend(layer.members.keys().cloned());
            }
        }
        candidates.extend(self.program.visible_names(scope.module));
        candidates.extend(super::builtins::names().map(|s| s.to_string()));
        let mut diagnostic = Diagnostic::error("unknown-name", format!("`{name}` is not defined"))
            .with_label(span, "not found in this scope");
        if let Some(suggestion) = suggest::closest(name, candidates.iter()) {
            diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
        } else if name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
            diagnostic = diagnostic.with_help(format!(
                "import it, e.g. `use std.nn.{name}`, or define `layer {name}`"
            ));
        }
        self.report(diagnostic);
        Value::Error
    }

    // ------------------------------------------------------------------ statements and blocks

    pub fn eval_block(&mut self, scope: &mut Scope, block: &ast::Block) -> Value {
        scope.push();
        for statement in &block.statements {
            self.eval_statement(scope, statement);
        }
        let result = match &block.result {
            Some(result) => self.eval(scope, result),
            None if !scope.scans.is_empty()
                && scope.frames.len()
                    == scope.scans.last().map(|s| s.frame_index + 2).unwrap_or(0) =>
            {
                Value::None
            }
            None => {
                self.report(
                    Diagnostic::error("missing-result", "this block has no result")
                        .with_label(
                            Span::new(block.span.end.saturating_sub(1), block.span.end),
                            "expected an expression before `}`",
                        )
                        .with_help("end the block with the expression whose value it returns"),
                );
                Value::Error
            }
        };
        scope.pop();
        result
    }

    pub fn eval_statement_public(&mut self, scope: &mut Scope, statement: &Statement) {
        self.eval_statement(scope, statement)
    }

    fn eval_statement(&mut self, scope: &mut Scope, statement: &Statement) {
        match statement {
            Statement::Let {
                pattern, ty, value, ..
            } => {
                let mut result = self.eval(scope, value);
                if let Some(ty) = ty {
                    let mut binders = HashMap::new();
                    if !self.match_type(scope, &result, ty, &mut binders, value.span, "this value")
                    {
                        result = Value::Error;
                    }
                }
                self.bind_pattern(scope, pattern, result, value.span);
            }
            Statement::Assign { name, value, span } => {
                let result = self.eval(scope, value);
                let Some(scan) = scope.scans.last() else {
                    self.report(
                        Diagnostic::error(
                            "assign-outside-scan",
                            format!("`{}` is assigned outside a scan body", name.name),
                        )
                        .with_label(*span, "assignment")
                        .with_help(format!("bind a new value with `let {} = ...`", name.name)),
                    );
                    return;
                };
                if !scan.carries.contains(&name.name) {
                    let carries = scan.carries.join(", ");
                    self.report(
                        Diagnostic::error(
                            "assign-outside-scan",
                            format!("`{}` is not a carried state of this scan", name.name),
                        )
                        .with_label(name.span, "not carried")
                        .with_help(if carries.is_empty() {
                            "declare carried state with `with (name = initial)`".to_string()
                        } else {
                            format!(
                                "the carried states are: {carries}; for a local value use `let`"
                            )
                        }),
                    );
                    return;
                }
                let frame_index = scan.frame_index;
                if let Some(scan) = scope.scans.last_mut() {
                    scan.assigned
                        .insert(name.name.clone(), name.span.to(value.span));
                }
                if let Some(frame) = scope.frames.get_mut(frame_index) {
                    frame.insert(name.name.clone(), result);
                }
            }
            Statement::Expr { value, span } => {
                // A statement is evaluated for its checks (`require(...)`); a value left over
                // is almost always `f (x)` read as two expressions.
                let result = self.eval(scope, value);
                if !matches!(result, Value::None | Value::Error) {
                    self.report(
                        Diagnostic::error(
                            "type-mismatch",
                            format!("this statement's value ({}) is unused", result.describe()),
                        )
                        .with_label(*span, "value unused")
                        .with_help("a call's `(` must follow the name without a space: write `f(x)`; bind other values with `let`"),
                    );
                }
            }
            Statement::Yield { value, span } => {
                let result = self.eval(scope, value);
                match scope.scans.last_mut() {
                    Some(scan) => {
                        if scan.yielded.is_some() {
                            self.report(
                                Diagnostic::error(
                                    "yield-outside-scan",
                                    "a scan body yields once per step",
                                )
                                .with_label(*span, "second yield")
                                .with_help(
                                    "yield a tuple to produce several outputs: `yield (h, c)`",
                                ),
                            );
                        } else {
                            scan.yielded = Some((result, value.span));
                        }
                    }
                    None => {
                        self.report(
                            Diagnostic::error("yield-outside-scan", "`yield` outside a scan body")
                                .with_label(*span, "not in a scan")
                                .with_help(
                                    "`yield` gives one step's output inside `scan x in xs { ... }`",
                                ),
                        );
                    }
                }
            }
        }
    }

    pub fn bind_pattern(&mut self, scope: &mut Scope, pattern: &Pattern, value: Value, span: Span) {
        match pattern {
            Pattern::Name(ident) => scope.bind(&ident.name, value),
            Pattern::Wildcard(_) => {}
            Pattern::Tuple(patterns, pattern_span) => {
                let items: Vec<Value> = match &value {
                    Value::Tuple(items) if items.len() == patterns.len() => items.as_ref().clone(),
                    Value::Error => vec![Value::Error; patterns.len()],
                    Value::Tuple(items) => {
                        self.report(
                            Diagnostic::error(
                                "invalid-pattern",
                                format!(
                                    "the pattern has {} names, but the value has {} parts",
                                    patterns.len(),
                                    items.len()
                                ),
                            )
                            .with_label(*pattern_span, format!("{} names", patterns.len()))
                            .with_label(span, format!("{} parts", items.len())),
                        );
                        vec![Value::Error; patterns.len()]
                    }
                    other => {
                        self.report(
                            Diagnostic::error(
                                "invalid-pattern",
                                format!(
                                    "only a tuple can be destructured, found {}",
                                    other.describe()
                                ),
                            )
                            .with_label(*pattern_span, "destructuring pattern")
                            .with_label(span, "not a tuple"),
                        );
                        vec![Value::Error; patterns.len()]
                    }
                };
                for (pattern, item) in patterns.iter().zip(items) {
                    self.bind_pattern(scope, pattern, item, span);
                }
            }
        }
    }

    // ------------------------------------------------------------------ expressions

    pub fn eval(&mut self, scope: &mut Scope, expr: &Expr) -> Value {
        self.evaluations += 1;
        if self.evaluations > MAX_EVALUATIONS {
            if self.evaluations == MAX_EVALUATIONS + 1 {
                self.report(
                    Diagnostic::error(
                        "program-too-large",
                        format!("elaborating this model takes more than {MAX_EVALUATIONS} steps"),
                    )
                    .with_label(expr.span, "stopped here")
                    .with_help("functions are inlined at every call; a function that calls another several times multiplies the work"),
                );
            }
            return Value::Error;
        }
        let value = self.eval_inner(scope, expr);
        if self.record_types {
            let description = match &value {
                Value::Tensor(tensor) => tensor.ty.to_string(),
                Value::Error => String::new(),
                other => other.describe(),
            };
            if !description.is_empty() {
                self.expression_types.push((expr.span, description));
            }
        }
        value
    }

    fn eval_inner(&mut self, scope: &mut Scope, expr: &Expr) -> Value {
        match &expr.kind {
            ExprKind::Int(v) => Value::Int(*v),
            ExprKind::Float(v) => Value::Float(*v),
            ExprKind::Bool(v) => Value::Bool(*v),
            ExprKind::Str(s) => Value::Str(Rc::from(s.as_str())),
            ExprKind::Name(name) => self.lookup(scope, name, expr.span),
            ExprKind::Unary { op, operand } => {
                let value = self.eval(scope, operand);
                super::operators::unary(self, *op, value, expr.span)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let left = self.eval(scope, lhs);
                let right = self.eval(scope, rhs);
                super::operators::binary(self, *op, left, right, expr.span, lhs.span, rhs.span)
            }
            ExprKind::Range { start, end } => {
                let start_value = self.eval(scope, start);
                let end_value = self.eval(scope, end);
                match (start_value, end_value) {
                    (Value::Int(a), Value::Int(b)) => Value::Range(a, b),
                    (Value::Error, _) | (_, Value::Error) => Value::Error,
                    _ => self.error(
                        "type-mismatch",
                        expr.span,
                        "a range's bounds must be ints",
                        "not ints",
                    ),
                }
            }
            ExprKind::Call { callee, args } => self.eval_call(scope, callee, args, None, expr.span),
            ExprKind::Pipe { input, stage } => {
                let input_value = self.eval(scope, input);
                // Nodes made by a stage point at the stage, not at the whole chain before it.
                match &stage.kind {
                    ExprKind::Call { callee, args } => self.eval_call(
                        scope,
                        callee,
                        args,
                        Some((input_value, input.span)),
                        stage.span,
                    ),
                    _ => self.eval_call(
                        scope,
                        stage,
                        &[],
                        Some((input_value, input.span)),
                        stage.span,
                    ),
                }
            }
            ExprKind::Member { receiver, name } => {
                let receiver_value = self.eval(scope, receiver);
                self.member(receiver_value, name, expr.span)
            }
            ExprKind::Index { target, items } => {
                let target_value = self.eval(scope, target);
                super::indexing::index(self, scope, target_value, items, expr.span)
            }
            ExprKind::Tuple(items) | ExprKind::List(items) => {
                let values: Vec<Value> = items.iter().map(|item| self.eval(scope, item)).collect();
                Value::Tuple(Rc::new(values))
            }
            ExprKind::Block(block) => self.eval_block(scope, block),
            ExprKind::Lambda { params, body } => Value::Closure(Rc::new(Closure {
                params: params.clone(),
                body: (**body).clone(),
                captured: scope.frames.clone(),
                module: scope.module,
                layer: scope.layer,
            })),
            ExprKind::If {
                condition,
                then_block,
                else_block,
            } => {
                let condition_value = self.eval(scope, condition);
                match condition_value {
                    Value::Bool(true) => self.eval_block(scope, then_block),
                    Value::Bool(false) => match else_block {
                        Some(block) => self.eval_block(scope, block),
                        None => Value::None,
                    },
                    Value::Error => Value::Error,
                    other => self.error(
                        "non-constant-condition",
                        condition.span,
                        format!(
                            "an `if` condition must be a bool known at compile time, found {}",
                            other.describe()
                        ),
                        "not a compile-time bool",
                    ),
                }
            }
            ExprKind::Scan(scan) => super::scan::eval_scan(self, scope, scan, expr.span),
        }
    }

    /// `receiver.name` without a call: a layer's member, a tuple element, or a tensor property.
    fn member(&mut self, receiver: Value, name: &ast::Ident, span: Span) -> Value {
        match (&receiver, name.name.as_str()) {
            (Value::Error, _) => Value::Error,
            (Value::Layer(id), member) => match self.layers[*id].members.get(member) {
                Some(value) => value.clone(),
                None => {
                    let layer_name = self.layer_name(*id);
                    let candidates: Vec<String> =
                        self.layers[*id].members.keys().cloned().collect();
                    let mut diagnostic = Diagnostic::error(
                        "unknown-name",
                        format!("layer `{layer_name}` has no member `{member}`"),
                    )
                    .with_label(name.span, "no such member");
                    if let Some(s) = suggest::closest(member, candidates.iter()) {
                        diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
                    }
                    self.report(diagnostic);
                    Value::Error
                }
            },
            (Value::Tensor(tensor), "T") => {
                if tensor.ty.rank() < 2 {
                    return self.error(
                        "rank-mismatch",
                        span,
                        format!(
                            "`.T` swaps the last two dims, but this tensor is {}",
                            tensor.ty
                        ),
                        "fewer than 2 dims",
                    );
                }
                let rank = tensor.ty.rank();
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.swap(rank - 2, rank - 1);
                super::builtins::permute(self, tensor.clone(), perm, span)
            }
            (Value::Tensor(tensor), "shape") => Value::Tuple(Rc::new(
                tensor.ty.shape.iter().cloned().map(dim_value).collect(),
            )),
            (Value::Tensor(tensor), "ndim") => Value::Int(tensor.ty.rank() as i64),
            (Value::Tensor(tensor), "dtype") => Value::DType(tensor.ty.dtype),
            (Value::Tuple(items), field) if field.parse::<usize>().is_ok() => {
                let index: usize = field.parse().unwrap_or(usize::MAX);
                match items.get(index) {
                    Some(item) => item.clone(),
                    None => self.error(
                        "invalid-axis",
                        name.span,
                        format!("the tuple has {} elements", items.len()),
                        "out of range",
                    ),
                }
            }
            _ => {
                let description = receiver.describe();
                let mut diagnostic = Diagnostic::error(
                    "unknown-name",
                    format!("{description} has no field `{}`", name.name),
                )
                .with_label(name.span, "unknown field");
                if matches!(receiver, Value::Tensor(_)) {
                    diagnostic = diagnostic.with_help("tensors have `.T`, `.shape`, `.ndim` and `.dtype`; call functions as methods with `x.f(...)`");
                }
                self.report(diagnostic);
                Value::Error
            }
        }
    }

    pub fn layer_name(&self, id: LayerId) -> String {
        self.program
            .layer(self.layers[id].item)
            .map(|l| l.name.name.clone())
            .unwrap_or_default()
    }

    pub fn eval_args(&mut self, scope: &mut Scope, args: &[ast::Arg]) -> Args {
        let mut result = Args::default();
        for arg in args {
            let value = self.eval(scope, &arg.value);
            match &arg.name {
                Some(name) => result.named.push((name.clone(), value)),
                None => result.positional.push((value, arg.value.span)),
            }
        }
        result
    }

    /// Evaluates a call. A method call `x.f(a)` and a pipeline stage `x |> f(a)` both become
    /// `f(x, a)`; `pipe_input` carries that first argument.
    fn eval_call(
        &mut self,
        scope: &mut Scope,
        callee: &Expr,
        args: &[ast::Arg],
        pipe_input: Option<(Value, Span)>,
        span: Span,
    ) -> Value {
        let mut first = pipe_input;
        let callee_value = match &callee.kind {
            ExprKind::Member { receiver, name } => {
                let receiver_value = self.eval(scope, receiver);
                match &receiver_value {
                    Value::Layer(_) | Value::Tuple(_) => {
                        self.member(receiver_value, name, callee.span)
                    }
                    Value::Error => Value::Error,
                    _ => {
                        let function = self.lookup(scope, &name.name, name.span);
                        if first.is_some() {
                            // `x |> y.f(a)`: y is the receiver, x comes after it.
                            let mut evaluated = self.eval_args(scope, args);
                            if let Some(input) = first.take() {
                                evaluated.positional.insert(0, input);
                            }
                            evaluated
                                .positional
                                .insert(0, (receiver_value, receiver.span));
                            return self.call_value(function, evaluated, span, callee.span);
                        }
                        first = Some((receiver_value, receiver.span));
                        function
                    }
                }
            }
            _ => self.eval(scope, callee),
        };
        let mut evaluated = self.eval_args(scope, args);
        if let Some(input) = first {
            evaluated.positional.insert(0, input);
        }
        self.call_value(callee_value, evaluated, span, callee.span)
    }

    /// Calls a callable value with evaluated arguments.
    pub fn call_value(
        &mut self,
        callee: Value,
        args: Args,
        span: Span,
        callee_span: Span,
    ) -> Value {
        if args.positional.iter().any(|(v, _)| v.is_error())
            || args.named.iter().any(|(_, v)| v.is_error())
        {
            // Still validate argument names, but do not report shape errors on top of the
            // original error.
            if let Value::Builtin(_) | Value::Layer(_) = callee {
                return Value::Error;
            }
        }
        match callee {
            Value::Error => Value::Error,
            Value::Builtin(name) => super::builtins::call(self, name, args, span),
            Value::Layer(id) => self.call_forward(id, args, span),
            Value::Tuple(items)
                if items.iter().all(|v| matches!(v, Value::Layer(_))) && !items.is_empty() =>
            {
                // A list of layers applies in sequence: `x |> blocks`.
                let mut current = args;
                let mut result = Value::Error;
                for item in items.iter() {
                    result = self.call_value(item.clone(), current, span, callee_span);
                    current = Args {
                        positional: vec![(result.clone(), span)],
                        named: Vec::new(),
                    };
                }
                result
            }
            Value::Closure(closure) => self.call_closure(&closure, args, span),
            Value::Item(item) => match self.program.item(item) {
                Item::Fn(_) => self.call_function(item, args, span),
                Item::Layer(layer) => {
                    let name = layer.name.name.clone();
                    self.report(
                        Diagnostic::error("type-mismatch", format!("`{name}` is a layer type; it must be declared as a member before it is applied"))
                            .with_label(callee_span, "layer type used as a function")
                            .with_help(format!("declare it in the layer body, e.g. `block = {name}(...)`, then call `block(x)`")),
                    );
                    Value::Error
                }
                _ => Value::Error,
            },
            other => {
                let description = other.describe();
                self.error(
                    "not-callable",
                    callee_span,
                    format!("{description} cannot be called"),
                    "not a function or layer",
                )
            }
        }
    }

    fn call_forward(&mut self, id: LayerId, args: Args, span: Span) -> Value {
        let program = self.program;
        let item = self.layers[id].item;
        let Some(layer) = program.layer(item) else {
            return Value::Error;
        };
        let Some(forward) = layer.forward() else {
            return self.error(
                "missing-forward",
                span,
                format!(
                    "layer `{}` has no forward, so it cannot be applied",
                    layer.name.name
                ),
                "applied here",
            );
        };
        if self.call_stack.len() >= MAX_CALL_DEPTH {
            return self.error(
                "recursive-layer",
                span,
                format!("calls nest more than {MAX_CALL_DEPTH} deep"),
                "too deep here",
            );
        }
        let mut scope = Scope::new(item.module, Some(id), true);
        let name = format!("{}.forward", layer.name.name);
        self.call_stack.push((item, span));
        let Some(_) = self.bind_params(&mut scope, &forward.params, args, span, &name, true) else {
            self.pop_call();
            return Value::Error;
        };
        let result = self.eval_block(&mut scope, &forward.body);
        if self.pop_call() {
            return Value::Error;
        }
        self.check_return(&mut scope, result, forward.ret.as_ref(), forward.body.span)
    }

    fn check_return(
        &mut self,
        scope: &mut Scope,
        result: Value,
        ret: Option<&ast::TypeExpr>,
        body_span: Span,
    ) -> Value {
        let Some(ret) = ret else { return result };
        let result_span = body_span;
        let mut binders = HashMap::new();
        if self.match_type(scope, &result, ret, &mut binders, result_span, "the result") {
            result
        } else {
            Value::Error
        }
    }

    fn call_function(&mut self, item: ItemRef, args: Args, span: Span) -> Value {
        let program = self.program;
        let Some(function) = program.function(item) else {
            return Value::Error;
        };
        if self.call_stack.iter().any(|(active, _)| *active == item) {
            self.report(
                Diagnostic::error(
                    "recursive-layer",
                    format!("`{}` calls itself", function.name.name),
                )
                .with_label(span, "called again here")
                .with_label(function.name.span, "defined here")
                .with_help("functions are inlined, so they cannot recurse; use `scan` to loop"),
            );
            return Value::Error;
        }
        if self.call_stack.len() >= MAX_CALL_DEPTH {
            return self.error(
                "recursive-layer",
                span,
                format!("calls nest more than {MAX_CALL_DEPTH} deep"),
                "too deep here",
            );
        }
        let mut scope = Scope::new(item.module, None, false);
        // The call is active while its defaults are evaluated, so a default that calls the
        // function itself is caught as recursion.
        self.call_stack.push((item, span));
        let Some(_) = self.bind_params(
            &mut scope,
            &function.params,
            args,
            span,
            &function.name.name,
            true,
        ) else {
            self.pop_call();
            return Value::Error;
        };
        let result = self.eval_block(&mut scope, &function.body);
        if self.pop_call() {
            return Value::Error;
        }
        self.check_return(
            &mut scope,
            result,
            function.ret.as_ref(),
            function.body.span,
        )
    }

    fn call_closure(&mut self, closure: &Closure, args: Args, span: Span) -> Value {
        if !args.named.is_empty() {
            let (name, _) = &args.named[0];
            return self.error(
                "unknown-argument",
                name.span,
                "a lambda takes positional arguments only",
                "named argument",
            );
        }
        if args.positional.len() != closure.params.len() {
            return self.error(
                "missing-argument",
                span,
                format!(
                    "this lambda takes {} argument{}, {} given",
                    closure.params.len(),
                    plural(closure.params.len()),
                    args.positional.len()
                ),
                "wrong number of arguments",
            );
        }
        if self.call_stack.len() >= MAX_CALL_DEPTH {
            return self.error(
                "recursive-layer",
                span,
                format!("calls nest more than {MAX_CALL_DEPTH} deep"),
                "too deep here",
            );
        }
        let mut scope = Scope::new(closure.module, closure.layer, closure.layer.is_some());
        scope.frames = closure.captured.clone();
        scope.push();
        for (param, (value, _)) in closure.params.iter().zip(args.positional) {
            scope.bind(&param.name, value);
        }
        self.call_stack.push((
            ItemRef {
                module: usize::MAX,
                item: self.call_stack.len(),
            },
            span,
        ));
        let result = self.eval(&mut scope, &closure.body);
        self.pop_call();
        result
    }

    // ------------------------------------------------------------------ scan support

    pub(crate) fn push_graph(&mut self) {
        self.graphs.push(GraphFrame {
            graph: Graph::new(),
            captures: Vec::new(),
        });
    }

    /// Pops a scan body's graph, returning it with the outer nodes it captured, in input order.
    pub(crate) fn pop_graph(&mut self) -> (Graph, Vec<NodeId>) {
        match self.graphs.pop() {
            Some(frame) if !self.graphs.is_empty() => {
                let captured = frame.captures.iter().map(|(outer, _)| *outer).collect();
                (frame.graph, captured)
            }
            Some(frame) => {
                // Never pop the model graph: put it back.
                self.graphs.push(frame);
                (Graph::new(), Vec::new())
            }
            None => (Graph::new(), Vec::new()),
        }
    }

    /// Adds a body input to the current (scan body) graph.
    pub(crate) fn add_body_input(&mut self, ty: TensorType, name: &str, span: Span) -> TensorValue {
        let span = self.user_span(span);
        let level = self.level();
        let graph = self.graph_mut();
        let index = graph.inputs.len();
        let node = graph.add(
            Op::Input {
                index,
                name: name.to_string(),
            },
            ty.clone(),
            span,
            &[],
        );
        graph.inputs.push(node);
        TensorValue { ty, node, level }
    }

    pub(crate) fn set_outputs(&mut self, outputs: Vec<NodeId>) {
        self.graph_mut().outputs = outputs;
    }

    pub(crate) fn push_scan_frame(scope: &mut Scope, carries: Vec<String>) {
        scope.push();
        let frame_index = scope.frames.len() - 1;
        scope.scans.push(ScanFrame {
            carries,
            frame_index,
            yielded: None,
            assigned: HashMap::new(),
        });
    }

    /// Checks the layers that no model instantiated, when all their hyper-parameters have
    /// defaults, so that their bodies are checked too.
    pub fn check_standalone_layer(&mut self, item: ItemRef) {
        let program = self.program;
        let Some(layer) = program.layer(item) else {
            return;
        };
        if layer.kind == LayerKind::Model || layer.hparams.iter().any(|p| p.default.is_none()) {
            return;
        }
        let saved = std::mem::replace(
            &mut self.graphs,
            vec![GraphFrame {
                graph: Graph::new(),
                captures: Vec::new(),
            }],
        );
        let Some(id) = self.instantiate(
            item,
            Args::default(),
            layer.name.name.clone(),
            layer.name.span,
        ) else {
            self.graphs = saved;
            return;
        };
        if let Some(forward) = layer.forward() {
            let mut scope = Scope::new(item.module, Some(id), true);
            let mut args = Args::default();
            let mut ok = true;
            for param in &forward.params {
                match &param.ty {
                    Some(ty) if matches!(ty.kind, TypeKind::Tensor { .. }) => {
                        let has_ellipsis = matches!(&ty.kind, TypeKind::Tensor { dims, .. } if dims.iter().any(|d| matches!(d, ast::DimExpr::Ellipsis(_))));
                        if has_ellipsis {
                            ok = false;
                            break;
                        }
                        match self.input_type(&mut scope, ty) {
                            Some(tensor_type) => {
                                let value = self.emit(
                                    Op::Input {
                                        index: args.positional.len(),
                                        name: param.name.name.clone(),
                                    },
                                    tensor_type,
                                    param.span,
                                    &[],
                                );
                                args.positional.push((value, param.span));
                            }
                            None => ok = false,
                        }
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                self.call_forward(id, args, forward.span);
            }
        }
        self.graphs = saved;
    }
}

fn is_division(expr: &Expr) -> bool {
    matches!(
        expr.kind,
        ExprKind::Binary {
            op: ast::BinaryOperator::Div,
            ..
        }
    )
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

fn article(type_name: &str) -> &'static str {
    if type_name == "int" {
        "an"
    } else {
        "a"
    }
}

fn shape_of(ty: &TensorType) -> String {
    crate::ir::dim::format_shape(&ty.shape)
}

fn dims_span(dims: &[ast::DimExpr]) -> Option<Span> {
    let spans: Vec<Span> = dims
        .iter()
        .map(|d| match d {
            ast::DimExpr::Ellipsis(span) => *span,
            ast::DimExpr::Expr(expr) => expr.span,
        })
        .collect();
    Some(spans.first()?.to(*spans.last()?))
}

fn ty_span_of(_ty: &TensorType) -> Span {
    Span::DUMMY
}

fn ty_span(span: Span) -> Span {
    span
}
