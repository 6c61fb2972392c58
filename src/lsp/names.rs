//! What every name in the root file refers to: a local binding (a `let`, a parameter, a
//! hyper-parameter, a member, a dim a signature binds), a top-level item (of the file, an
//! import, or the prelude), a builtin or a constant.
//!
//! The compiler's resolver (`compiler/src/check/resolve.rs`) only reports unknown names and
//! keeps no spans of what names resolve to, so this walk mirrors its scoping rules and records
//! where each binding is introduced and where it is visible. Hover, go to definition and
//! completion read this index; it is built once per check.

use modelc_compiler::check::builtins;
use modelc_compiler::check::modules::{ItemRef, Program};
use modelc_compiler::source::Span;
use modelc_compiler::syntax::ast::{
    Block, DimExpr, Expr, ExprKind, FnDecl, IndexItem, Item, LayerDecl, Member, Param, Pattern,
    Statement, TypeExpr, TypeKind, UseDecl, UseNames,
};

/// What introduced a local name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    HyperParameter,
    Param,
    SubLayer,
    ForwardParameter,
    FunctionParameter,
    Let,
    LambdaParameter,
    ScanVariable,
    ScanCarry,
    DimSymbol,
}

impl BindingKind {
    /// How hover and completion describe the binding.
    pub fn describe(self) -> &'static str {
        match self {
            BindingKind::HyperParameter => "hyper-parameter",
            BindingKind::Param => "param",
            BindingKind::SubLayer => "member",
            BindingKind::ForwardParameter => "forward parameter",
            BindingKind::FunctionParameter => "parameter",
            BindingKind::Let => "let binding",
            BindingKind::LambdaParameter => "lambda parameter",
            BindingKind::ScanVariable => "scan variable",
            BindingKind::ScanCarry => "carried state",
            BindingKind::DimSymbol => "dim",
        }
    }
}

/// A local name and where it lives.
#[derive(Clone, Debug)]
pub struct Binding {
    pub name: String,
    pub kind: BindingKind,
    /// The name where it is introduced (the definition).
    pub span: Span,
    /// The whole declaration, shown on hover: `fc1 = Linear(784, hidden)`.
    pub declaration: Span,
    /// Where the name can be used, for completion.
    pub visible: Span,
    /// For a member whose value is `Layer(...)`: the layer it constructs.
    pub layer: Option<ItemRef>,
}

/// What a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Binding(usize),
    Item(ItemRef),
    Builtin(&'static str),
    Constant,
    Unknown,
}

/// One occurrence of a name: a use, or the name of a declaration (which refers to itself).
#[derive(Clone, Debug)]
pub struct NameUse {
    pub span: Span,
    pub target: Target,
}

/// `kernel` in `Conv2d(1, 6, kernel = 5)`: a named argument and what its callee resolves to.
#[derive(Clone, Debug)]
pub struct NamedArgument {
    pub span: Span,
    pub name: String,
    /// The callee, when it is a plain name or a method name.
    pub callee: Target,
    /// Whether the callee is a member applied to a value (`fc(x)`), whose forward takes the
    /// arguments, rather than a layer being constructed.
    pub applies_member: bool,
}

/// The module path of a `use`: `std.nn` in `use std.nn.{Linear}`.
#[derive(Clone, Debug)]
pub struct ModulePath {
    pub span: Span,
    pub module: Option<usize>,
}

#[derive(Debug, Default)]
pub struct NameIndex {
    pub bindings: Vec<Binding>,
    pub uses: Vec<NameUse>,
    pub named_arguments: Vec<NamedArgument>,
    pub module_paths: Vec<ModulePath>,
}

impl NameIndex {
    /// Indexes every name of the program's root module.
    pub fn build(program: &Program) -> NameIndex {
        let root = program.root;
        let mut builder = Builder {
            program,
            module: root,
            scopes: Vec::new(),
            index: NameIndex::default(),
        };
        let Some(module) = program.modules.get(root) else {
            return builder.index;
        };
        for (item_index, item) in module.ast.items.iter().enumerate() {
            let item_ref = ItemRef {
                module: root,
                item: item_index,
            };
            match item {
                Item::Use(use_decl) => builder.use_decl(use_decl),
                Item::Layer(layer) => {
                    builder.declare_item(layer.name.span, item_ref);
                    builder.layer(layer);
                }
                Item::Fn(function) => {
                    builder.declare_item(function.name.span, item_ref);
                    builder.function(function);
                }
                Item::Train(settings) | Item::Compress(settings) => {
                    builder.use_name(&settings.target.name, settings.target.span);
                }
            }
        }
        builder.index
    }

    /// The name occurrence under a byte offset: one whose span contains it, else one that ends
    /// exactly there (a cursor just after a name).
    pub fn use_at(&self, offset: u32) -> Option<&NameUse> {
        smallest_containing(&self.uses, offset, |u| u.span)
    }

    pub fn named_argument_at(&self, offset: u32) -> Option<&NamedArgument> {
        smallest_containing(&self.named_arguments, offset, |a| a.span)
    }

    pub fn module_path_at(&self, offset: u32) -> Option<&ModulePath> {
        smallest_containing(&self.module_paths, offset, |p| p.span)
    }

    /// The local names visible at an offset, innermost first, each name once.
    pub fn bindings_visible_at(&self, offset: u32) -> Vec<&Binding> {
        let mut visible: Vec<&Binding> = self
            .bindings
            .iter()
            .filter(|b| b.visible.start <= offset && offset <= b.visible.end)
            .collect();
        // Inner scopes start later; among equals the later binding shadows the earlier.
        visible.sort_by_key(|b| std::cmp::Reverse((b.visible.start, b.span.start)));
        let mut seen = std::collections::HashSet::new();
        visible.retain(|b| seen.insert(b.name.clone()));
        visible
    }
}

fn smallest_containing<T>(items: &[T], offset: u32, span: impl Fn(&T) -> Span) -> Option<&T> {
    let inside = items
        .iter()
        .filter(|item| {
            let s = span(item);
            s.start <= offset && offset < s.end
        })
        .min_by_key(|item| span(item).len());
    inside.or_else(|| {
        items
            .iter()
            .filter(|item| span(item).end == offset && !span(item).is_empty())
            .min_by_key(|item| span(item).len())
    })
}

struct Builder<'a> {
    program: &'a Program,
    module: usize,
    /// Binding indices per lexical scope, innermost last.
    scopes: Vec<Vec<usize>>,
    index: NameIndex,
}

impl Builder<'_> {
    fn push(&mut self) {
        self.scopes.push(Vec::new());
    }

    fn pop(&mut self) {
        self.scopes.pop();
    }

    fn declare_item(&mut self, span: Span, item: ItemRef) {
        self.index.uses.push(NameUse {
            span,
            target: Target::Item(item),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn define(
        &mut self,
        name: &str,
        kind: BindingKind,
        span: Span,
        declaration: Span,
        visible: Span,
        layer: Option<ItemRef>,
    ) {
        let index = self.index.bindings.len();
        self.index.bindings.push(Binding {
            name: name.to_string(),
            kind,
            span,
            declaration,
            visible,
            layer,
        });
        self.index.uses.push(NameUse {
            span,
            target: Target::Binding(index),
        });
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(index);
        }
    }

    /// Looks a name up as the compiler does: locals innermost first, then items of the file and
    /// its imports, the prelude, the constants, and the builtins.
    fn resolve(&self, name: &str) -> Target {
        for scope in self.scopes.iter().rev() {
            for &binding in scope.iter().rev() {
                if self.index.bindings[binding].name == name {
                    return Target::Binding(binding);
                }
            }
        }
        if let Some(item) = self.program.lookup(self.module, name) {
            return Target::Item(item);
        }
        if matches!(name, "none" | "pi" | "f32" | "i64") {
            return Target::Constant;
        }
        match builtins::lookup(name) {
            Some(builtin) => Target::Builtin(builtin),
            None => Target::Unknown,
        }
    }

    fn use_name(&mut self, name: &str, span: Span) {
        let target = self.resolve(name);
        self.index.uses.push(NameUse { span, target });
    }

    fn use_decl(&mut self, use_decl: &UseDecl) {
        let segments: Vec<&str> = use_decl.module.iter().map(|s| s.name.as_str()).collect();
        if let (Some(first), Some(last)) = (use_decl.module.first(), use_decl.module.last()) {
            let module = self.module_of_path(&segments);
            self.index.module_paths.push(ModulePath {
                span: first.span.to(last.span),
                module,
            });
        }
        if let UseNames::List(names) = &use_decl.names {
            for name in names {
                let item = self.program.modules[self.module]
                    .scope
                    .get(&name.name)
                    .copied();
                self.index.uses.push(NameUse {
                    span: name.span,
                    target: item.map(Target::Item).unwrap_or(Target::Unknown),
                });
            }
        }
    }

    /// The loaded module a `use` path names, keyed as `modules.rs` keys them.
    fn module_of_path(&self, segments: &[&str]) -> Option<usize> {
        let key = if segments.first() == Some(&"std") {
            segments.join(".")
        } else {
            let file_name = &self
                .program
                .sources
                .file(self.program.modules[self.module].file)
                .name;
            let folder = match file_name.rfind('/') {
                Some(index) => &file_name[..=index],
                None => "",
            };
            format!("{folder}{}.model", segments.join("/"))
        };
        self.program.modules.iter().position(|m| m.key == key)
    }

    fn layer(&mut self, layer: &LayerDecl) {
        self.push();
        for hparam in &layer.hparams {
            self.param(hparam, BindingKind::HyperParameter, layer.span);
        }
        // Members are built seeing only the hyper-parameters.
        for member in &layer.members {
            match member {
                Member::Param(param) => {
                    self.type_expr(&param.ty, false, layer.span);
                    if let Some(init) = &param.init {
                        // Initializers are a fixed vocabulary, not names; their arguments are.
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
        let forward_span = layer
            .forward()
            .map(|forward| forward.span)
            .unwrap_or(Span::DUMMY);
        for member in &layer.members {
            match member {
                Member::Param(param) => self.define(
                    &param.name.name,
                    BindingKind::Param,
                    param.name.span,
                    param.span,
                    forward_span,
                    None,
                ),
                Member::SubLayer(sub) => {
                    let constructed = self.constructed_layer(&sub.value);
                    self.define(
                        &sub.name.name,
                        BindingKind::SubLayer,
                        sub.name.span,
                        sub.span,
                        forward_span,
                        constructed,
                    );
                }
                Member::Forward(_) => {}
            }
        }
        for member in &layer.members {
            if let Member::Forward(forward) = member {
                self.push();
                for param in &forward.params {
                    self.param(param, BindingKind::ForwardParameter, forward.span);
                }
                if let Some(ret) = &forward.ret {
                    self.type_expr(ret, true, forward.span);
                }
                self.block(&forward.body);
                self.pop();
            }
        }
        self.pop();
    }

    /// The layer a member's value constructs: `Linear` in `fc = Linear(4, 4)`.
    fn constructed_layer(&self, value: &Expr) -> Option<ItemRef> {
        let ExprKind::Call { callee, .. } = &value.kind else {
            return None;
        };
        let ExprKind::Name(name) = &callee.kind else {
            return None;
        };
        match self.resolve(name) {
            Target::Item(item) if self.program.layer(item).is_some() => Some(item),
            _ => None,
        }
    }

    fn function(&mut self, function: &FnDecl) {
        self.push();
        for param in &function.params {
            self.param(param, BindingKind::FunctionParameter, function.span);
        }
        if let Some(ret) = &function.ret {
            self.type_expr(ret, true, function.span);
        }
        self.block(&function.body);
        self.pop();
    }

    fn param(&mut self, param: &Param, kind: BindingKind, visible: Span) {
        if let Some(default) = &param.default {
            self.expr(default);
        }
        if let Some(ty) = &param.ty {
            self.type_expr(ty, true, visible);
        }
        self.define(
            &param.name.name,
            kind,
            param.name.span,
            param.span,
            visible,
            None,
        );
    }

    /// Names in a type's dims: when `binds`, an unknown bare name is a new dim symbol.
    fn type_expr(&mut self, ty: &TypeExpr, binds: bool, visible: Span) {
        match &ty.kind {
            TypeKind::Named(_) => {}
            TypeKind::Tuple(items) => {
                for item in items {
                    self.type_expr(item, binds, visible);
                }
            }
            TypeKind::Tensor { dims, .. } => {
                for dim in dims {
                    let DimExpr::Expr(expr) = dim else { continue };
                    match &expr.kind {
                        ExprKind::Name(name) if binds && self.resolve(name) == Target::Unknown => {
                            self.define(
                                name,
                                BindingKind::DimSymbol,
                                expr.span,
                                ty.span,
                                visible,
                                None,
                            );
                        }
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
                    pattern,
                    ty,
                    value,
                    span,
                } => {
                    self.expr(value);
                    let visible = Span::new(span.end, block.span.end);
                    if let Some(ty) = ty {
                        self.type_expr(ty, true, visible);
                    }
                    self.pattern(pattern, BindingKind::Let, *span, visible);
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

    fn pattern(&mut self, pattern: &Pattern, kind: BindingKind, declaration: Span, visible: Span) {
        match pattern {
            Pattern::Name(ident) => {
                self.define(&ident.name, kind, ident.span, declaration, visible, None)
            }
            Pattern::Wildcard(_) => {}
            Pattern::Tuple(items, _) => {
                for item in items {
                    self.pattern(item, kind, declaration, visible);
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
                let (callee_target, applies_member) = match &callee.kind {
                    // `x.f(a)`: `f` is a function, builtin or layer called with `x` first, or a
                    // member when `x` is a layer; only the first reading has a definition here.
                    ExprKind::Member { receiver, name } => {
                        self.expr(receiver);
                        let target = self.resolve(&name.name);
                        if target != Target::Unknown {
                            self.index.uses.push(NameUse {
                                span: name.span,
                                target,
                            });
                        }
                        (target, self.is_member(target))
                    }
                    ExprKind::Name(name) => {
                        self.expr(callee);
                        let target = self.resolve(name);
                        (target, self.is_member(target))
                    }
                    _ => {
                        self.expr(callee);
                        (Target::Unknown, false)
                    }
                };
                for arg in args {
                    if let Some(name) = &arg.name {
                        self.index.named_arguments.push(NamedArgument {
                            span: name.span,
                            name: name.name.clone(),
                            callee: callee_target,
                            applies_member,
                        });
                    }
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
                    self.define(
                        &param.name,
                        BindingKind::LambdaParameter,
                        param.span,
                        param.span,
                        expr.span,
                        None,
                    );
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
                let visible = scan.body.span;
                self.pattern(
                    &scan.pattern,
                    BindingKind::ScanVariable,
                    scan.pattern.span(),
                    visible,
                );
                for (name, value) in &scan.carries {
                    self.define(
                        &name.name,
                        BindingKind::ScanCarry,
                        name.span,
                        name.span.to(value.span),
                        visible,
                        None,
                    );
                }
                self.block(&scan.body);
                self.pop();
            }
        }
    }

    /// Whether a callee target is a member applied to a value (its forward takes the call's
    /// arguments) rather than an item.
    fn is_member(&self, target: Target) -> bool {
        matches!(target, Target::Binding(index)
            if self.index.bindings[index].kind == BindingKind::SubLayer)
    }
}
