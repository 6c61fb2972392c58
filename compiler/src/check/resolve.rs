//! Name resolution over every item of a file, including code that elaboration never reaches:
//! functions no model calls, layers whose hyper-parameters have no defaults, the branch of an
//! `if` not taken. Reports each unknown name once, with a did-you-mean suggestion.

use super::modules::Program;
use super::suggest;
use crate::diag::{Diagnostic, Diagnostics};
use crate::syntax::ast::*;

/// Resolves every name used in the items of `module`.
pub fn resolve_module(program: &Program, module: usize, diagnostics: &mut Diagnostics) {
    let mut resolver = Resolver {
        program,
        module,
        scopes: Vec::new(),
        diagnostics,
    };
    for item in &program.modules[module].ast.items {
        match item {
            Item::Layer(layer) => resolver.layer(layer),
            Item::Fn(function) => resolver.function(function),
            Item::Use(_) | Item::Train(_) | Item::Compress(_) => {}
        }
    }
}

struct Resolver<'a> {
    program: &'a Program,
    module: usize,
    scopes: Vec<Vec<String>>,
    diagnostics: &'a mut Diagnostics,
}

impl Resolver<'_> {
    fn push(&mut self) {
        self.scopes.push(Vec::new());
    }

    fn pop(&mut self) {
        self.scopes.pop();
    }

    fn define(&mut self, name: &str) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(name.to_string());
        }
    }

    fn known(&self, name: &str) -> bool {
        self.scopes
            .iter()
            .any(|scope| scope.iter().any(|n| n == name))
            || self.program.lookup(self.module, name).is_some()
            || super::builtins::lookup(name).is_some()
            || super::builtins::constant(name).is_some()
            || name == "repeat"
    }

    fn use_name(&mut self, name: &str, span: crate::source::Span) {
        if self.known(name) {
            return;
        }
        let mut candidates: Vec<String> = self.scopes.iter().flatten().cloned().collect();
        candidates.extend(self.program.visible_names(self.module));
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
        self.diagnostics.push(diagnostic);
    }

    fn layer(&mut self, layer: &LayerDecl) {
        self.push();
        for hparam in &layer.hparams {
            self.param(hparam);
        }
        for member in &layer.members {
            match member {
                Member::Param(param) => {
                    self.type_expr(&param.ty, false);
                    if let Some(init) = &param.init {
                        // Initializers are a fixed vocabulary checked by elaboration; only
                        // their arguments are names to resolve.
                        if let ExprKind::Call { args, .. } = &init.kind {
                            for arg in args {
                                self.expr(&arg.value);
                            }
                        }
                    }
                    if let Some(condition) = &param.condition {
                        self.expr(condition);
                    }
                }
                Member::SubLayer(sub) => self.expr(&sub.value),
                Member::Forward(_) => {}
            }
        }
        for member in &layer.members {
            match member {
                Member::Param(param) => self.define(&param.name.name),
                Member::SubLayer(sub) => self.define(&sub.name.name),
                Member::Forward(_) => {}
            }
        }
        for member in &layer.members {
            if let Member::Forward(forward) = member {
                self.push();
                for param in &forward.params {
                    self.param(param);
                }
                if let Some(ret) = &forward.ret {
                    self.type_expr(ret, true);
                }
                self.block(&forward.body);
                self.pop();
            }
        }
        self.pop();
    }

    fn function(&mut self, function: &FnDecl) {
        self.push();
        for param in &function.params {
            self.param(param);
        }
        if let Some(ret) = &function.ret {
            self.type_expr(ret, true);
        }
        self.block(&function.body);
        self.pop();
    }

    /// A parameter: its default sees earlier parameters; its type binds new dim names.
    fn param(&mut self, param: &Param) {
        if let Some(default) = &param.default {
            self.expr(default);
        }
        if let Some(ty) = &param.ty {
            self.type_expr(ty, true);
        }
        self.define(&param.name.name);
    }

    /// Names in a type's dims: when `binds`, an unknown bare name is a new dim symbol.
    fn type_expr(&mut self, ty: &TypeExpr, binds: bool) {
        match &ty.kind {
            TypeKind::Named(_) => {}
            TypeKind::Tuple(items) => {
                for item in items {
                    self.type_expr(item, binds);
                }
            }
            TypeKind::Tensor { dims, .. } => {
                for dim in dims {
                    let DimExpr::Expr(expr) = dim else { continue };
                    match &expr.kind {
                        ExprKind::Name(name) if binds && !self.known(name) => self.define(name),
                        _ => self.expr(expr),
                    }
                }
            }
        }
    }

    fn block(&mut self, block: &Block) {
        self.push();
        for statement in &block.statements {
            match statement {
                Statement::Let {
                    pattern, ty, value, ..
                } => {
                    self.expr(value);
                    if let Some(ty) = ty {
                        self.type_expr(ty, true);
                    }
                    self.pattern(pattern);
                }
                Statement::Assign { name, value, .. } => {
                    self.expr(value);
                    self.use_name(&name.name, name.span);
                }
                Statement::Yield { value, .. } | Statement::Expr { value, .. } => self.expr(value),
            }
        }
        if let Some(result) = &block.result {
            self.expr(result);
        }
        self.pop();
    }

    fn pattern(&mut self, pattern: &Pattern) {
        match pattern {
            Pattern::Name(ident) => self.define(&ident.name),
            Pattern::Wildcard(_) => {}
            Pattern::Tuple(items, _) => {
                for item in items {
                    self.pattern(item);
                }
            }
        }
    }

    fn expr(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Str(_) => {}
            ExprKind::Name(name) => self.use_name(name, expr.span),
            ExprKind::Unary { operand, .. } => self.expr(operand),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Range { start, end } => {
                self.expr(start);
                self.expr(end);
            }
            ExprKind::Call { callee, args } => {
                match &callee.kind {
                    // `x.f(a)`: `f` is looked up at elaboration, where the receiver is known.
                    ExprKind::Member { receiver, .. } => self.expr(receiver),
                    _ => self.expr(callee),
                }
                for arg in args {
                    self.expr(&arg.value);
                }
            }
            ExprKind::Member { receiver, .. } => self.expr(receiver),
            ExprKind::Pipe { input, stage } => {
                self.expr(input);
                self.expr(stage);
            }
            ExprKind::Index { target, items } => {
                self.expr(target);
                for item in items {
                    match item {
                        IndexItem::Single(e) => self.expr(e),
                        IndexItem::Slice {
                            start, end, step, ..
                        } => {
                            for bound in [start, end, step].into_iter().flatten() {
                                self.expr(bound);
                            }
                        }
                        IndexItem::Ellipsis(_) => {}
                    }
                }
            }
            ExprKind::Tuple(items) | ExprKind::List(items) => {
                for item in items {
                    self.expr(item);
                }
            }
            ExprKind::Block(block) => self.block(block),
            ExprKind::Lambda { params, body } => {
                self.push();
                for param in params {
                    self.define(&param.name);
                }
                self.expr(body);
                self.pop();
            }
            ExprKind::If {
                condition,
                then_block,
                else_block,
            } => {
                self.expr(condition);
                self.block(then_block);
                if let Some(block) = else_block {
                    self.block(block);
                }
            }
            ExprKind::Scan(scan) => {
                self.expr(&scan.sequence);
                for flag in [&scan.axis, &scan.reverse].into_iter().flatten() {
                    self.expr(flag);
                }
                for (_, value) in &scan.carries {
                    self.expr(value);
                }
                self.push();
                self.pattern(&scan.pattern);
                for (name, _) in &scan.carries {
                    self.define(&name.name);
                }
                self.block(&scan.body);
                self.pop();
            }
        }
    }
}
