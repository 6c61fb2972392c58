//! The abstract syntax tree. Every node carries its [`Span`]; names are plain strings.

use crate::source::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug)]
pub enum Item {
    Use(UseDecl),
    Layer(LayerDecl),
    Fn(FnDecl),
    Train(SettingsDecl),
    Compress(SettingsDecl),
}

impl Item {
    /// The name the item defines in its module, if any.
    pub fn defined_name(&self) -> Option<&Ident> {
        match self {
            Item::Layer(layer) => Some(&layer.name),
            Item::Fn(function) => Some(&function.name),
            Item::Use(_) | Item::Train(_) | Item::Compress(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct UseDecl {
    /// Module path segments: `std.nn` in `use std.nn.{Linear}`.
    pub module: Vec<Ident>,
    pub names: UseNames,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum UseNames {
    List(Vec<Ident>),
    Glob(Span),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Layer,
    Model,
}

#[derive(Clone, Debug)]
pub struct LayerDecl {
    pub kind: LayerKind,
    pub name: Ident,
    /// Compile-time hyper-parameters.
    pub hparams: Vec<Param>,
    pub members: Vec<Member>,
    /// `##` comment lines directly above the declaration.
    pub doc: Option<String>,
    pub span: Span,
}

impl LayerDecl {
    pub fn forward(&self) -> Option<&Forward> {
        self.members.iter().find_map(|m| match m {
            Member::Forward(forward) => Some(forward),
            _ => None,
        })
    }
}

#[derive(Clone, Debug)]
pub enum Member {
    Param(ParamDecl),
    SubLayer(SubLayerDecl),
    Forward(Forward),
}

/// `param weight: f32[outputs, inputs] = kaiming_uniform()`
#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    pub init: Option<Expr>,
    /// `param bias: f32[n] = zeros() if bias`: the param exists only when this holds; when it
    /// does not, the name reads as `none`.
    pub condition: Option<Expr>,
    pub span: Span,
}

/// `conv1 = Conv2d(1, 6, kernel = 5)`
#[derive(Clone, Debug)]
pub struct SubLayerDecl {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Forward {
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct FnDecl {
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Block,
    pub doc: Option<String>,
    pub span: Span,
}

/// A parameter of a layer header, a forward or a fn: `name: type = default`.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum TypeKind {
    /// `int`, `float`, `bool`, `string`, `layer`, or a bare dtype.
    Named(Ident),
    /// `f32[B, ..., 4 * hidden]`
    Tensor {
        dtype: Ident,
        dims: Vec<DimExpr>,
    },
    Tuple(Vec<TypeExpr>),
}

#[derive(Clone, Debug)]
pub enum DimExpr {
    /// `...`: any number of leading batch dims.
    Ellipsis(Span),
    Expr(Expr),
}

#[derive(Clone, Debug)]
pub struct SettingsDecl {
    pub target: Ident,
    pub settings: Vec<Setting>,
    pub sweep: Option<Sweep>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Setting {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Sweep {
    /// `lr in log_uniform(1e-4, 1e-2)`
    pub axes: Vec<Setting>,
    /// `method = bayesian(trials = 20)`
    pub settings: Vec<Setting>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub statements: Vec<Statement>,
    pub result: Option<Box<Expr>>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Statement {
    Let {
        pattern: Pattern,
        ty: Option<TypeExpr>,
        value: Expr,
        span: Span,
    },
    /// `c = f(c)`: updates a carried state inside a scan body.
    Assign {
        name: Ident,
        value: Expr,
        span: Span,
    },
    Yield {
        value: Expr,
        span: Span,
    },
    /// An expression evaluated for its checks, like `require(dim % heads == 0, "...")`.
    Expr {
        value: Expr,
        span: Span,
    },
}

#[derive(Clone, Debug)]
pub enum Pattern {
    Name(Ident),
    Wildcard(Span),
    Tuple(Vec<Pattern>, Span),
}

impl Pattern {
    pub fn span(&self) -> Span {
        match self {
            Pattern::Name(ident) => ident.span,
            Pattern::Wildcard(span) | Pattern::Tuple(_, span) => *span,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOperator {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    MatMul,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinaryOperator {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOperator::Add => "+",
            BinaryOperator::Sub => "-",
            BinaryOperator::Mul => "*",
            BinaryOperator::Div => "/",
            BinaryOperator::Rem => "%",
            BinaryOperator::MatMul => "@",
            BinaryOperator::Pow => "**",
            BinaryOperator::Eq => "==",
            BinaryOperator::Ne => "!=",
            BinaryOperator::Lt => "<",
            BinaryOperator::Le => "<=",
            BinaryOperator::Gt => ">",
            BinaryOperator::Ge => ">=",
            BinaryOperator::And => "and",
            BinaryOperator::Or => "or",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOperator {
    Neg,
    Not,
}

#[derive(Clone, Debug)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug)]
pub enum IndexItem {
    /// `x[i]`: selects one position and drops the axis.
    Single(Expr),
    /// `x[a:b:s]`: keeps the axis.
    Slice {
        start: Option<Expr>,
        end: Option<Expr>,
        step: Option<Expr>,
        span: Span,
    },
    /// `x[..., 0]`
    Ellipsis(Span),
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Name(String),
    Unary {
        op: UnaryOperator,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOperator,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Range {
        start: Box<Expr>,
        end: Box<Expr>,
    },
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    /// `receiver.name`: a method call when followed by arguments, else a field (`x.T`).
    Member {
        receiver: Box<Expr>,
        name: Ident,
    },
    /// `input |> stage`: `stage(input)`, or `f(input, a)` when the stage is `f(a)`.
    Pipe {
        input: Box<Expr>,
        stage: Box<Expr>,
    },
    Index {
        target: Box<Expr>,
        items: Vec<IndexItem>,
    },
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    Lambda {
        params: Vec<Ident>,
        body: Box<Expr>,
    },
    /// `{ let a = ...; a + 1 }`: a lambda's block body.
    Block(Block),
    If {
        condition: Box<Expr>,
        then_block: Block,
        else_block: Option<Block>,
    },
    Scan(Box<ScanExpr>),
}

#[derive(Clone, Debug)]
pub struct ScanExpr {
    pub pattern: Pattern,
    pub sequence: Expr,
    pub axis: Option<Expr>,
    /// `reverse` (iterate from the last step), optionally `reverse if <bool>`.
    pub reverse: Option<Expr>,
    pub carries: Vec<(Ident, Expr)>,
    pub body: Block,
}
