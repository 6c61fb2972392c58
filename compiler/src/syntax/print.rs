//! A compact, stable S-expression dump of the AST, for `modelc build --emit ast` and parser
//! snapshots. Spans are left out: they are covered by the diagnostics snapshots.

use super::ast::*;
use std::fmt::Write;

pub fn print_module(module: &Module) -> String {
    let mut printer = Printer {
        out: String::new(),
        indent: 0,
    };
    for item in &module.items {
        printer.item(item);
    }
    printer.out
}

struct Printer {
    out: String,
    indent: usize,
}

impl Printer {
    fn line(&mut self, text: &str) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn nested(&mut self, head: &str, body: impl FnOnce(&mut Printer)) {
        self.line(&format!("({head}"));
        self.indent += 1;
        body(self);
        self.indent -= 1;
        self.line(")");
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Use(decl) => {
                let module: Vec<&str> = decl.module.iter().map(|i| i.name.as_str()).collect();
                let names = match &decl.names {
                    UseNames::Glob(_) => "*".to_string(),
                    UseNames::List(names) => names
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                self.line(&format!("(use {} ({names}))", module.join(".")));
            }
            Item::Layer(layer) => {
                let kind = match layer.kind {
                    LayerKind::Layer => "layer",
                    LayerKind::Model => "model",
                };
                self.nested(&format!("{kind} {}", layer.name.name), |p| {
                    if let Some(doc) = &layer.doc {
                        p.line(&format!("(doc {doc:?})"));
                    }
                    for hparam in &layer.hparams {
                        p.param("hparam", hparam);
                    }
                    for member in &layer.members {
                        match member {
                            Member::Param(param) => {
                                let init = param
                                    .init
                                    .as_ref()
                                    .map(|e| format!(" {}", expr(e)))
                                    .unwrap_or_default();
                                let condition = param
                                    .condition
                                    .as_ref()
                                    .map(|e| format!(" (if {})", expr(e)))
                                    .unwrap_or_default();
                                p.line(&format!(
                                    "(param {} {}{init}{condition})",
                                    param.name.name,
                                    type_expr(&param.ty)
                                ));
                            }
                            Member::SubLayer(sub) => p.line(&format!(
                                "(sublayer {} {})",
                                sub.name.name,
                                expr(&sub.value)
                            )),
                            Member::Forward(forward) => {
                                let ret = forward
                                    .ret
                                    .as_ref()
                                    .map(type_expr)
                                    .unwrap_or_else(|| "_".into());
                                p.nested(&format!("forward -> {ret}"), |p| {
                                    for param in &forward.params {
                                        p.param("arg", param);
                                    }
                                    p.block(&forward.body);
                                });
                            }
                        }
                    }
                });
            }
            Item::Fn(function) => {
                let ret = function
                    .ret
                    .as_ref()
                    .map(type_expr)
                    .unwrap_or_else(|| "_".into());
                self.nested(&format!("fn {} -> {ret}", function.name.name), |p| {
                    if let Some(doc) = &function.doc {
                        p.line(&format!("(doc {doc:?})"));
                    }
                    for param in &function.params {
                        p.param("arg", param);
                    }
                    p.block(&function.body);
                });
            }
            Item::Train(settings) => self.settings("train", settings),
            Item::Compress(settings) => self.settings("compress", settings),
        }
    }

    fn settings(&mut self, kind: &str, decl: &SettingsDecl) {
        self.nested(&format!("{kind} {}", decl.target.name), |p| {
            for setting in &decl.settings {
                p.line(&format!(
                    "(set {} {})",
                    setting.name.name,
                    expr(&setting.value)
                ));
            }
            if let Some(sweep) = &decl.sweep {
                p.nested("sweep", |p| {
                    for axis in &sweep.axes {
                        p.line(&format!("(in {} {})", axis.name.name, expr(&axis.value)));
                    }
                    for setting in &sweep.settings {
                        p.line(&format!(
                            "(set {} {})",
                            setting.name.name,
                            expr(&setting.value)
                        ));
                    }
                });
            }
        });
    }

    fn param(&mut self, head: &str, param: &Param) {
        let mut text = format!("({head} {}", param.name.name);
        if let Some(ty) = &param.ty {
            let _ = write!(text, " {}", type_expr(ty));
        }
        if let Some(default) = &param.default {
            let _ = write!(text, " = {}", expr(default));
        }
        text.push(')');
        self.line(&text);
    }

    fn block(&mut self, block: &Block) {
        for statement in &block.statements {
            match statement {
                Statement::Let {
                    pattern: pat,
                    ty,
                    value,
                    ..
                } => {
                    let ty = ty
                        .as_ref()
                        .map(|t| format!(" {}", type_expr(t)))
                        .unwrap_or_default();
                    self.line(&format!("(let {}{ty} {})", pattern(pat), expr(value)));
                }
                Statement::Assign { name, value, .. } => {
                    self.line(&format!("(set {} {})", name.name, expr(value)))
                }
                Statement::Yield { value, .. } => self.line(&format!("(yield {})", expr(value))),
                Statement::Expr { value, .. } => self.line(&format!("(do {})", expr(value))),
            }
        }
        if let Some(result) = &block.result {
            self.line(&expr(result));
        }
    }
}

fn pattern(pattern: &Pattern) -> String {
    match pattern {
        Pattern::Name(ident) => ident.name.clone(),
        Pattern::Wildcard(_) => "_".into(),
        Pattern::Tuple(items, _) => format!(
            "({})",
            items.iter().map(pattern_ref).collect::<Vec<_>>().join(" ")
        ),
    }
}

fn pattern_ref(p: &Pattern) -> String {
    pattern(p)
}

pub fn type_expr(ty: &TypeExpr) -> String {
    match &ty.kind {
        TypeKind::Named(ident) => ident.name.clone(),
        TypeKind::Tensor { dtype, dims } => {
            let dims: Vec<String> = dims
                .iter()
                .map(|d| match d {
                    DimExpr::Ellipsis(_) => "...".to_string(),
                    DimExpr::Expr(e) => expr(e),
                })
                .collect();
            format!("{}[{}]", dtype.name, dims.join(", "))
        }
        TypeKind::Tuple(items) => format!(
            "({})",
            items.iter().map(type_expr).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn block_inline(block: &Block) -> String {
    let mut parts: Vec<String> = Vec::new();
    for statement in &block.statements {
        parts.push(match statement {
            Statement::Let {
                pattern: pat,
                value,
                ..
            } => format!("(let {} {})", pattern(pat), expr(value)),
            Statement::Assign { name, value, .. } => format!("(set {} {})", name.name, expr(value)),
            Statement::Yield { value, .. } => format!("(yield {})", expr(value)),
            Statement::Expr { value, .. } => format!("(do {})", expr(value)),
        });
    }
    if let Some(result) = &block.result {
        parts.push(expr(result));
    }
    format!("{{{}}}", parts.join(" "))
}

/// One expression on one line, fully parenthesised.
pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Float(v) => format!("{v:?}"),
        ExprKind::Bool(v) => v.to_string(),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Name(name) => name.clone(),
        ExprKind::Unary { op, operand } => {
            let op = match op {
                UnaryOperator::Neg => "neg",
                UnaryOperator::Not => "not",
            };
            format!("({op} {})", expr(operand))
        }
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.symbol(), expr(lhs), expr(rhs))
        }
        ExprKind::Range { start, end } => format!("(.. {} {})", expr(start), expr(end)),
        ExprKind::Call { callee, args } => {
            let mut text = format!("(call {}", expr(callee));
            for arg in args {
                match &arg.name {
                    Some(name) => {
                        let _ = write!(text, " {}={}", name.name, expr(&arg.value));
                    }
                    None => {
                        let _ = write!(text, " {}", expr(&arg.value));
                    }
                }
            }
            text.push(')');
            text
        }
        ExprKind::Member { receiver, name } => format!("(. {} {})", expr(receiver), name.name),
        ExprKind::Pipe { input, stage } => format!("(|> {} {})", expr(input), expr(stage)),
        ExprKind::Index { target, items } => {
            let items: Vec<String> = items
                .iter()
                .map(|item| match item {
                    IndexItem::Single(e) => expr(e),
                    IndexItem::Ellipsis(_) => "...".into(),
                    IndexItem::Slice {
                        start, end, step, ..
                    } => {
                        let bound = |b: &Option<Expr>| b.as_ref().map(expr).unwrap_or_default();
                        match step {
                            Some(_) => format!("{}:{}:{}", bound(start), bound(end), bound(step)),
                            None => format!("{}:{}", bound(start), bound(end)),
                        }
                    }
                })
                .collect();
            format!("(index {} {})", expr(target), items.join(" "))
        }
        ExprKind::Tuple(items) => format!(
            "(tuple{})",
            items
                .iter()
                .map(|i| format!(" {}", expr(i)))
                .collect::<String>()
        ),
        ExprKind::List(items) => {
            format!("[{}]", items.iter().map(expr).collect::<Vec<_>>().join(" "))
        }
        ExprKind::Block(block) => block_inline(block),
        ExprKind::Lambda { params, body } => {
            let params: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            format!("(lambda ({}) {})", params.join(" "), expr(body))
        }
        ExprKind::If {
            condition,
            then_block,
            else_block,
        } => {
            let else_text = else_block
                .as_ref()
                .map(|b| format!(" {}", block_inline(b)))
                .unwrap_or_default();
            format!(
                "(if {} {}{else_text})",
                expr(condition),
                block_inline(then_block)
            )
        }
        ExprKind::Scan(scan) => {
            let carries: Vec<String> = scan
                .carries
                .iter()
                .map(|(n, v)| format!("({} {})", n.name, expr(v)))
                .collect();
            let axis = scan
                .axis
                .as_ref()
                .map(|a| format!(" along={}", expr(a)))
                .unwrap_or_default();
            let reverse = match &scan.reverse {
                None => String::new(),
                Some(condition) => format!(" (reverse {})", expr(condition)),
            };
            format!(
                "(scan {} {}{axis}{reverse} (with {}) {})",
                pattern(&scan.pattern),
                expr(&scan.sequence),
                carries.join(" "),
                block_inline(&scan.body)
            )
        }
    }
}
