//! Text to AST: the pest grammar, then a builder from pest pairs to [`ast`](super::ast) nodes.

use super::ast::*;
use super::prescan::{prescan, MAX_NESTING};
use crate::diag::Diagnostic;
use crate::source::{FileId, SourceMap, Span};
use pest::iterators::Pair;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "syntax/grammar.pest"]
struct ModelParser;

/// Longest operator chain (`a + b + ...`, `x |> f |> ...`, `x.a.b...`) in one expression. With
/// [`MAX_NESTING`] it bounds the depth of every expression tree, so the recursive passes over it
/// cannot exhaust the stack.
pub const MAX_CHAIN: usize = 256;

/// Parses one file. Never panics; a syntax error in one top-level item leaves the others parsed.
pub fn parse_file(sources: &SourceMap, file: FileId) -> (Module, Vec<Diagnostic>) {
    let source_file = sources.file(file);
    let text = source_file.text.as_str();
    let base = source_file.base;
    let scan = prescan(text);
    let mut diagnostics = Vec::new();
    let mut broken_chunks = Vec::new();
    for (start, end, diagnostic) in scan.errors {
        let span = Span::new(base + start as u32, base + end as u32);
        let message = diagnostic.message.clone();
        diagnostics.push(diagnostic.with_label(span, message));
        broken_chunks.push(start);
    }
    let mut module = Module::default();
    for (chunk_start, chunk_end) in scan.chunks {
        // A chunk with a lexical error would only add a confusing grammar error on top.
        if broken_chunks
            .iter()
            .any(|&at| at >= chunk_start && at < chunk_end)
        {
            continue;
        }
        let chunk = &text[chunk_start..chunk_end];
        let builder = Builder {
            base: base + chunk_start as u32,
            text,
            chunk_start,
            diagnostics: Vec::new(),
        };
        match ModelParser::parse(Rule::file, chunk) {
            Ok(mut pairs) => {
                let mut builder = builder;
                if let Some(file_pair) = pairs.next() {
                    for pair in file_pair.into_inner() {
                        if pair.as_rule() == Rule::EOI {
                            continue;
                        }
                        if let Some(item) = builder.item(pair) {
                            module.items.push(item);
                        }
                    }
                }
                diagnostics.extend(builder.diagnostics);
            }
            Err(error) => diagnostics.push(syntax_error(&error, builder.base, chunk)),
        }
    }
    (module, diagnostics)
}

fn syntax_error(error: &pest::error::Error<Rule>, base: u32, chunk: &str) -> Diagnostic {
    let (start, end) = match error.location {
        pest::error::InputLocation::Pos(position) => (position, position),
        pest::error::InputLocation::Span((start, end)) => (start, end),
    };
    // Point at the offending character (or the end of the input) rather than an empty span.
    let end = if end > start {
        end
    } else {
        chunk[start..]
            .chars()
            .next()
            .map(|c| start + c.len_utf8())
            .unwrap_or(start)
    };
    let found = match chunk[start..].chars().next() {
        None => "end of input".to_string(),
        Some(c) if c.is_whitespace() => "whitespace".to_string(),
        Some(_) => {
            let token: String = chunk[start..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .take(12)
                .collect();
            format!("`{token}`")
        }
    };
    let expected = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => describe_expected(positives),
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    let span = Span::new(base + start as u32, base + end as u32);
    let mut diagnostic = Diagnostic::error(
        "syntax-error",
        format!("expected {expected}, found {found}"),
    )
    .with_label(span, format!("expected {expected}"));
    let after_equals = chunk[..start].trim_end().ends_with('=');
    if (found == "`=`" && expected.contains("expression"))
        || (expected.contains("expression") && after_equals && found == "`=`")
    {
        diagnostic =
            diagnostic.with_help("a statement is `let name = value`; comparisons use `==`");
    }
    diagnostic
}

/// Turns the grammar's expected rules into words a user knows.
fn describe_expected(rules: &[Rule]) -> String {
    let mut words: Vec<&str> = rules
        .iter()
        .map(|rule| match rule {
            Rule::ident | Rule::name_pattern => "a name",
            Rule::number => "a number",
            Rule::string => "a string",
            Rule::expr
            | Rule::pipe_expr
            | Rule::or_expr
            | Rule::and_expr
            | Rule::not_expr
            | Rule::cmp_expr
            | Rule::range_expr
            | Rule::add_expr
            | Rule::mul_expr
            | Rule::unary_expr
            | Rule::pow_expr
            | Rule::postfix_expr
            | Rule::primary
            | Rule::slice
            | Rule::ellipsis
            | Rule::arg
            | Rule::named_arg => "an expression",
            Rule::type_expr | Rule::tensor_type | Rule::named_type | Rule::tuple_type => "a type",
            Rule::layer_decl
            | Rule::use_decl
            | Rule::fn_decl
            | Rule::train_decl
            | Rule::compress_decl
            | Rule::layer_kind => "an item (`use`, `layer`, `model`, `fn`, `train`, `compress`)",
            Rule::param_decl | Rule::forward_decl | Rule::sublayer_decl => {
                "a layer member (`param`, `forward` or `name = Layer(...)`)"
            }
            Rule::let_stmt | Rule::assign_stmt | Rule::yield_stmt => "a statement",
            Rule::block => "`{`",
            Rule::param_list | Rule::call_args => "`(`",
            Rule::param => "a parameter",
            Rule::setting | Rule::sweep_block | Rule::sweep_axis => "a setting (`name = value`)",
            Rule::return_type => "`->`",
            Rule::EOI => "end of input",
            Rule::cmp_op
            | Rule::add_op
            | Rule::mul_op
            | Rule::pow_op
            | Rule::or_op
            | Rule::and_op
            | Rule::range_op => "an operator",
            Rule::index_args | Rule::dims => "`[`",
            Rule::member_access => "`.`",
            Rule::use_group | Rule::use_glob => "`{` or `*`",
            Rule::carry => "a carried state (`name = value`)",
            _ => "a token",
        })
        .collect();
    words.sort();
    words.dedup();
    match words.len() {
        0 => "something else".to_string(),
        1 => words[0].to_string(),
        _ => {
            let last = words.pop().unwrap_or_default();
            format!("{} or {}", words.join(", "), last)
        }
    }
}

struct Builder<'a> {
    /// Global offset of the chunk's first byte.
    base: u32,
    /// The whole file, for doc comments above an item.
    text: &'a str,
    chunk_start: usize,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Builder<'a> {
    /// A pair's span without trailing whitespace and comments: a rule that ends in an optional
    /// or repeated part keeps the whitespace pest skipped before trying it, and a label should
    /// not spill onto the next line.
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let span = pair.as_span();
        let text = pair.as_str();
        let trimmed = trim_trailing_trivia(text);
        Span::new(
            self.base + span.start() as u32,
            self.base + (span.start() + trimmed.len()) as u32,
        )
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn error_expr(&self, span: Span) -> Expr {
        Expr {
            kind: ExprKind::Tuple(Vec::new()),
            span,
        }
    }

    /// `##` lines directly above a file-relative offset.
    fn doc_above(&self, chunk_offset: usize) -> Option<String> {
        let absolute = self.chunk_start + chunk_offset;
        let before = &self.text[..absolute];
        let mut lines: Vec<&str> = Vec::new();
        for line in before.lines().rev() {
            let trimmed = line.trim();
            if trimmed.is_empty() && lines.is_empty() {
                // The item's own line start: `before` ends in the indentation of the item.
                continue;
            }
            match trimmed.strip_prefix("##") {
                Some(doc) => lines.push(doc.strip_prefix(' ').unwrap_or(doc)),
                None => break,
            }
        }
        if lines.is_empty() {
            return None;
        }
        lines.reverse();
        Some(lines.join("\n"))
    }

    fn item(&mut self, pair: Pair<Rule>) -> Option<Item> {
        match pair.as_rule() {
            Rule::use_decl => Some(Item::Use(self.use_decl(pair))),
            Rule::layer_decl => Some(Item::Layer(self.layer_decl(pair))),
            Rule::fn_decl => Some(Item::Fn(self.fn_decl(pair))),
            Rule::train_decl => Some(Item::Train(self.settings_decl(pair))),
            Rule::compress_decl => Some(Item::Compress(self.settings_decl(pair))),
            _ => None,
        }
    }

    fn use_decl(&mut self, pair: Pair<Rule>) -> UseDecl {
        let span = self.span(&pair);
        let mut module = Vec::new();
        let mut names = None;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::use_path => module = inner.into_inner().map(|p| self.ident(p)).collect(),
                Rule::use_group => {
                    names = Some(UseNames::List(
                        inner.into_inner().map(|p| self.ident(p)).collect(),
                    ))
                }
                Rule::use_glob => names = Some(UseNames::Glob(self.span(&inner))),
                _ => {}
            }
        }
        // `use std.nn.Linear` imports the last segment.
        let names = match names {
            Some(names) => names,
            None => {
                let last = module.pop();
                UseNames::List(last.into_iter().collect())
            }
        };
        UseDecl {
            module,
            names,
            span,
        }
    }

    fn layer_decl(&mut self, pair: Pair<Rule>) -> LayerDecl {
        let span = self.span(&pair);
        let doc = self.doc_above(pair.as_span().start());
        let mut kind = LayerKind::Layer;
        let mut name = None;
        let mut hparams = Vec::new();
        let mut members = Vec::new();
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::layer_kind => {
                    kind = if inner.as_str() == "model" {
                        LayerKind::Model
                    } else {
                        LayerKind::Layer
                    }
                }
                Rule::ident => name = Some(self.ident(inner)),
                Rule::param_list => hparams = self.param_list(inner),
                Rule::param_decl => members.push(Member::Param(self.param_decl(inner))),
                Rule::sublayer_decl => {
                    let member_span = self.span(&inner);
                    let mut parts = inner.into_inner();
                    let name = parts.next().map(|p| self.ident(p));
                    let value = parts.next().map(|p| self.expr(p));
                    if let (Some(name), Some(value)) = (name, value) {
                        members.push(Member::SubLayer(SubLayerDecl {
                            name,
                            value,
                            span: member_span,
                        }));
                    }
                }
                Rule::forward_decl => members.push(Member::Forward(self.forward_decl(inner))),
                _ => {}
            }
        }
        let name = name.unwrap_or(Ident {
            name: String::new(),
            span,
        });
        LayerDecl {
            kind,
            name,
            hparams,
            members,
            doc,
            span,
        }
    }

    fn param_decl(&mut self, pair: Pair<Rule>) -> ParamDecl {
        let span = self.span(&pair);
        let mut name = None;
        let mut ty = None;
        let mut init = None;
        let mut condition = None;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::ident => name = Some(self.ident(inner)),
                Rule::type_expr => ty = Some(self.type_expr(inner)),
                Rule::expr => init = Some(self.expr(inner)),
                Rule::param_condition => {
                    condition = inner.into_inner().next().map(|e| self.expr(e))
                }
                _ => {}
            }
        }
        ParamDecl {
            condition,
            name: name.unwrap_or(Ident {
                name: String::new(),
                span,
            }),
            ty: ty.unwrap_or(TypeExpr {
                kind: TypeKind::Tuple(Vec::new()),
                span,
            }),
            init,
            span,
        }
    }

    fn forward_decl(&mut self, pair: Pair<Rule>) -> Forward {
        let span = self.span(&pair);
        let mut params = Vec::new();
        let mut ret = None;
        let mut body = None;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::param_list => params = self.param_list(inner),
                Rule::return_type => ret = inner.into_inner().next().map(|t| self.type_expr(t)),
                Rule::block => body = Some(self.block(inner)),
                _ => {}
            }
        }
        let body = body.unwrap_or(Block {
            statements: Vec::new(),
            result: None,
            span,
        });
        Forward {
            params,
            ret,
            body,
            span,
        }
    }

    fn fn_decl(&mut self, pair: Pair<Rule>) -> FnDecl {
        let span = self.span(&pair);
        let doc = self.doc_above(pair.as_span().start());
        let mut name = None;
        let mut params = Vec::new();
        let mut ret = None;
        let mut body = None;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::ident => name = Some(self.ident(inner)),
                Rule::param_list => params = self.param_list(inner),
                Rule::return_type => ret = inner.into_inner().next().map(|t| self.type_expr(t)),
                Rule::block => body = Some(self.block(inner)),
                _ => {}
            }
        }
        FnDecl {
            name: name.unwrap_or(Ident {
                name: String::new(),
                span,
            }),
            params,
            ret,
            body: body.unwrap_or(Block {
                statements: Vec::new(),
                result: None,
                span,
            }),
            doc,
            span,
        }
    }

    fn param_list(&mut self, pair: Pair<Rule>) -> Vec<Param> {
        pair.into_inner()
            .map(|param| {
                let span = self.span(&param);
                let mut name = None;
                let mut ty = None;
                let mut default = None;
                for inner in param.into_inner() {
                    match inner.as_rule() {
                        Rule::ident => name = Some(self.ident(inner)),
                        Rule::type_expr => ty = Some(self.type_expr(inner)),
                        Rule::expr => default = Some(self.expr(inner)),
                        _ => {}
                    }
                }
                Param {
                    name: name.unwrap_or(Ident {
                        name: String::new(),
                        span,
                    }),
                    ty,
                    default,
                    span,
                }
            })
            .collect()
    }

    fn settings_decl(&mut self, pair: Pair<Rule>) -> SettingsDecl {
        let span = self.span(&pair);
        let mut target = None;
        let mut settings = Vec::new();
        let mut sweep = None;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::ident => target = Some(self.ident(inner)),
                Rule::settings => {
                    for entry in inner.into_inner() {
                        match entry.as_rule() {
                            Rule::setting => settings.push(self.setting(entry)),
                            Rule::sweep_block => {
                                let sweep_span = self.span(&entry);
                                let mut axes = Vec::new();
                                let mut sweep_settings = Vec::new();
                                for part in entry.into_inner() {
                                    match part.as_rule() {
                                        Rule::sweep_axis => axes.push(self.setting(part)),
                                        Rule::setting => sweep_settings.push(self.setting(part)),
                                        _ => {}
                                    }
                                }
                                sweep = Some(Sweep {
                                    axes,
                                    settings: sweep_settings,
                                    span: sweep_span,
                                });
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        SettingsDecl {
            target: target.unwrap_or(Ident {
                name: String::new(),
                span,
            }),
            settings,
            sweep,
            span,
        }
    }

    fn setting(&mut self, pair: Pair<Rule>) -> Setting {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = inner.next().map(|p| self.ident(p)).unwrap_or(Ident {
            name: String::new(),
            span,
        });
        let value = inner
            .next()
            .map(|p| self.expr(p))
            .unwrap_or_else(|| self.error_expr(span));
        Setting { name, value, span }
    }

    fn type_expr(&mut self, pair: Pair<Rule>) -> TypeExpr {
        let span = self.span(&pair);
        let Some(inner) = pair.into_inner().next() else {
            return TypeExpr {
                kind: TypeKind::Tuple(Vec::new()),
                span,
            };
        };
        let kind = match inner.as_rule() {
            Rule::tuple_type => {
                TypeKind::Tuple(inner.into_inner().map(|t| self.type_expr(t)).collect())
            }
            Rule::tensor_type => {
                let mut parts = inner.into_inner();
                let dtype = parts.next().map(|p| self.ident(p)).unwrap_or(Ident {
                    name: String::new(),
                    span,
                });
                let dims = parts
                    .next()
                    .map(|dims| {
                        dims.into_inner()
                            .map(|dim| match dim.as_rule() {
                                Rule::ellipsis => DimExpr::Ellipsis(self.span(&dim)),
                                _ => DimExpr::Expr(self.expr(dim)),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                TypeKind::Tensor { dtype, dims }
            }
            _ => {
                let ident = inner.into_inner().next().map(|p| self.ident(p));
                TypeKind::Named(ident.unwrap_or(Ident {
                    name: String::new(),
                    span,
                }))
            }
        };
        TypeExpr { kind, span }
    }

    fn block(&mut self, pair: Pair<Rule>) -> Block {
        let span = self.span(&pair);
        let mut statements = Vec::new();
        let mut result = None;
        for inner in pair.into_inner() {
            let inner_span = self.span(&inner);
            match inner.as_rule() {
                Rule::let_stmt => {
                    let mut pattern = None;
                    let mut ty = None;
                    let mut value = None;
                    for part in inner.into_inner() {
                        match part.as_rule() {
                            Rule::type_expr => ty = Some(self.type_expr(part)),
                            Rule::expr => value = Some(self.expr(part)),
                            _ => pattern = Some(self.pattern(part)),
                        }
                    }
                    statements.push(Statement::Let {
                        pattern: pattern.unwrap_or(Pattern::Wildcard(inner_span)),
                        ty,
                        value: value.unwrap_or_else(|| self.error_expr(inner_span)),
                        span: inner_span,
                    });
                }
                Rule::assign_stmt => {
                    let mut parts = inner.into_inner();
                    let name = parts.next().map(|p| self.ident(p));
                    let value = parts.next().map(|p| self.expr(p));
                    if let (Some(name), Some(value)) = (name, value) {
                        statements.push(Statement::Assign {
                            name,
                            value,
                            span: inner_span,
                        });
                    }
                }
                Rule::yield_stmt => {
                    if let Some(value) = inner.into_inner().next().map(|p| self.expr(p)) {
                        statements.push(Statement::Yield {
                            value,
                            span: inner_span,
                        });
                    }
                }
                Rule::expr_stmt => {
                    if let Some(value) = inner.into_inner().next().map(|p| self.expr(p)) {
                        statements.push(Statement::Expr {
                            value,
                            span: inner_span,
                        });
                    }
                }
                Rule::expr => result = Some(Box::new(self.expr(inner))),
                _ => {}
            }
        }
        // The grammar reads a block's last expression as a statement; it is the result.
        if result.is_none() {
            if let Some(Statement::Expr { .. }) = statements.last() {
                if let Some(Statement::Expr { value, .. }) = statements.pop() {
                    result = Some(Box::new(value));
                }
            }
        }
        Block {
            statements,
            result,
            span,
        }
    }

    fn pattern(&mut self, pair: Pair<Rule>) -> Pattern {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::wildcard => Pattern::Wildcard(span),
            Rule::name_pattern => match pair.into_inner().next() {
                Some(ident) => Pattern::Name(self.ident(ident)),
                None => Pattern::Wildcard(span),
            },
            Rule::tuple_pattern | Rule::list_pattern => {
                Pattern::Tuple(pair.into_inner().map(|p| self.pattern(p)).collect(), span)
            }
            _ => Pattern::Wildcard(span),
        }
    }

    fn chain_too_long(&mut self, span: Span, count: usize) -> bool {
        if count > MAX_CHAIN {
            self.diagnostics.push(
                Diagnostic::error(
                    "expression-too-long",
                    format!("an operator chain of {count} operands; the limit is {MAX_CHAIN}"),
                )
                .with_label(span, "this expression")
                .with_help("split it with `let` bindings"),
            );
            return true;
        }
        false
    }

    fn expr(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        match rule {
            Rule::expr => match pair.into_inner().next() {
                Some(inner) => self.expr(inner),
                None => self.error_expr(span),
            },
            Rule::pipe_expr => {
                let parts: Vec<Pair<Rule>> = pair.into_inner().collect();
                if self.chain_too_long(span, parts.len()) {
                    return self.error_expr(span);
                }
                let mut parts = parts.into_iter();
                let Some(first) = parts.next() else {
                    return self.error_expr(span);
                };
                let mut result = self.expr(first);
                for stage in parts {
                    let stage = self.expr(stage);
                    let span = result.span.to(stage.span);
                    result = Expr {
                        kind: ExprKind::Pipe {
                            input: Box::new(result),
                            stage: Box::new(stage),
                        },
                        span,
                    };
                }
                result
            }
            Rule::or_expr
            | Rule::and_expr
            | Rule::add_expr
            | Rule::mul_expr
            | Rule::cmp_expr
            | Rule::range_expr => {
                let parts: Vec<Pair<Rule>> = pair.into_inner().collect();
                if self.chain_too_long(span, parts.len().div_ceil(2)) {
                    return self.error_expr(span);
                }
                let mut parts = parts.into_iter();
                let Some(first) = parts.next() else {
                    return self.error_expr(span);
                };
                let mut result = self.expr(first);
                while let (Some(operator), Some(operand)) = (parts.next(), parts.next()) {
                    let rhs = self.expr(operand);
                    let span = result.span.to(rhs.span);
                    if operator.as_rule() == Rule::range_op {
                        result = Expr {
                            kind: ExprKind::Range {
                                start: Box::new(result),
                                end: Box::new(rhs),
                            },
                            span,
                        };
                        continue;
                    }
                    let op = binary_operator(operator.as_str().trim());
                    result = Expr {
                        kind: ExprKind::Binary {
                            op,
                            lhs: Box::new(result),
                            rhs: Box::new(rhs),
                        },
                        span,
                    };
                }
                result
            }
            Rule::not_expr | Rule::unary_expr => {
                let parts: Vec<Pair<Rule>> = pair.into_inner().collect();
                if self.chain_too_long(span, parts.len()) {
                    return self.error_expr(span);
                }
                let mut operators = Vec::new();
                let mut operand = None;
                for part in parts {
                    match part.as_rule() {
                        Rule::not_op => operators.push((UnaryOperator::Not, self.span(&part))),
                        Rule::neg_op => operators.push((UnaryOperator::Neg, self.span(&part))),
                        _ => operand = Some(self.expr(part)),
                    }
                }
                let mut result = operand.unwrap_or_else(|| self.error_expr(span));
                for (op, op_span) in operators.into_iter().rev() {
                    // Fold `-3` into a literal so that dims and defaults can be negative numbers.
                    result = match (op, result.kind) {
                        (UnaryOperator::Neg, ExprKind::Int(value)) if value != i64::MIN => Expr {
                            kind: ExprKind::Int(-value),
                            span: op_span.to(result.span),
                        },
                        (UnaryOperator::Neg, ExprKind::Float(value)) => Expr {
                            kind: ExprKind::Float(-value),
                            span: op_span.to(result.span),
                        },
                        (op, kind) => {
                            let operand = Expr {
                                kind,
                                span: result.span,
                            };
                            Expr {
                                span: op_span.to(operand.span),
                                kind: ExprKind::Unary {
                                    op,
                                    operand: Box::new(operand),
                                },
                            }
                        }
                    };
                }
                result
            }
            Rule::pow_expr => {
                let mut parts = pair.into_inner();
                let Some(base) = parts.next() else {
                    return self.error_expr(span);
                };
                let base = self.expr(base);
                match (parts.next(), parts.next()) {
                    (Some(_), Some(exponent)) => {
                        let exponent = self.expr(exponent);
                        Expr {
                            kind: ExprKind::Binary {
                                op: BinaryOperator::Pow,
                                lhs: Box::new(base),
                                rhs: Box::new(exponent),
                            },
                            span,
                        }
                    }
                    _ => base,
                }
            }
            Rule::postfix_expr => self.postfix(pair),
            Rule::primary => match pair.into_inner().next() {
                Some(inner) => self.expr(inner),
                None => self.error_expr(span),
            },
            Rule::number => self.number(pair),
            Rule::string => {
                let raw = pair.as_str();
                let body = &raw[1..raw.len().saturating_sub(1).max(1)];
                Expr {
                    kind: ExprKind::Str(unescape(body)),
                    span,
                }
            }
            Rule::true_lit => Expr {
                kind: ExprKind::Bool(true),
                span,
            },
            Rule::false_lit => Expr {
                kind: ExprKind::Bool(false),
                span,
            },
            Rule::ident => Expr {
                kind: ExprKind::Name(pair.as_str().to_string()),
                span,
            },
            Rule::paren_expr => {
                let mut elements = Vec::new();
                let mut trailing_comma = false;
                for inner in pair.into_inner() {
                    if inner.as_rule() == Rule::trailing_comma {
                        trailing_comma = true;
                    } else {
                        elements.push(self.expr(inner));
                    }
                }
                if elements.len() == 1 && !trailing_comma {
                    let mut inner = elements.pop().unwrap_or_else(|| self.error_expr(span));
                    inner.span = span;
                    inner
                } else {
                    Expr {
                        kind: ExprKind::Tuple(elements),
                        span,
                    }
                }
            }
            Rule::list_expr => {
                let elements = pair.into_inner().map(|p| self.expr(p)).collect();
                Expr {
                    kind: ExprKind::List(elements),
                    span,
                }
            }
            Rule::lambda => {
                let mut params = Vec::new();
                let mut body = None;
                for inner in pair.into_inner() {
                    match inner.as_rule() {
                        Rule::ident => params.push(self.ident(inner)),
                        Rule::block => {
                            let block = self.block(inner);
                            let block_span = block.span;
                            body = Some(Expr {
                                kind: ExprKind::Block(block),
                                span: block_span,
                            });
                        }
                        _ => body = Some(self.expr(inner)),
                    }
                }
                let body = body.unwrap_or_else(|| self.error_expr(span));
                Expr {
                    kind: ExprKind::Lambda {
                        params,
                        body: Box::new(body),
                    },
                    span,
                }
            }
            Rule::if_expr => self.if_expr(pair),
            Rule::scan_expr => self.scan_expr(pair),
            _ => self.error_expr(span),
        }
    }

    fn if_expr(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let mut condition = None;
        let mut then_block = None;
        let mut else_block = None;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::expr => condition = Some(self.expr(inner)),
                Rule::block if then_block.is_none() => then_block = Some(self.block(inner)),
                Rule::block => else_block = Some(self.block(inner)),
                Rule::if_expr => {
                    // `else if` is an else block whose result is the nested if.
                    let nested = self.if_expr(inner);
                    let nested_span = nested.span;
                    else_block = Some(Block {
                        statements: Vec::new(),
                        result: Some(Box::new(nested)),
                        span: nested_span,
                    });
                }
                _ => {}
            }
        }
        let condition = condition.unwrap_or_else(|| self.error_expr(span));
        let then_block = then_block.unwrap_or(Block {
            statements: Vec::new(),
            result: None,
            span,
        });
        Expr {
            kind: ExprKind::If {
                condition: Box::new(condition),
                then_block,
                else_block,
            },
            span,
        }
    }

    fn scan_expr(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let mut pattern = None;
        let mut sequence = None;
        let mut axis = None;
        let mut reverse = None;
        let mut carries = Vec::new();
        let mut body = None;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::expr if sequence.is_none() => sequence = Some(self.expr(inner)),
                Rule::expr => axis = Some(self.expr(inner)),
                Rule::reverse_flag => {
                    let flag_span = self.span(&inner);
                    reverse = Some(match inner.into_inner().next() {
                        Some(condition) => self.expr(condition),
                        None => Expr {
                            kind: ExprKind::Bool(true),
                            span: flag_span,
                        },
                    });
                }
                Rule::carry => {
                    let mut parts = inner.into_inner();
                    let name = parts.next().map(|p| self.ident(p));
                    let value = parts.next().map(|p| self.expr(p));
                    if let (Some(name), Some(value)) = (name, value) {
                        carries.push((name, value));
                    }
                }
                Rule::block => body = Some(self.block(inner)),
                _ => pattern = Some(self.pattern(inner)),
            }
        }
        let scan = ScanExpr {
            pattern: pattern.unwrap_or(Pattern::Wildcard(span)),
            sequence: sequence.unwrap_or_else(|| self.error_expr(span)),
            axis,
            reverse,
            carries,
            body: body.unwrap_or(Block {
                statements: Vec::new(),
                result: None,
                span,
            }),
        };
        Expr {
            kind: ExprKind::Scan(Box::new(scan)),
            span,
        }
    }

    fn postfix(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let parts: Vec<Pair<Rule>> = pair.into_inner().collect();
        if self.chain_too_long(span, parts.len()) {
            return self.error_expr(span);
        }
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return self.error_expr(span);
        };
        let mut result = self.expr(first);
        for part in parts {
            let part_span = self.span(&part);
            let span = result.span.to(part_span);
            result = match part.as_rule() {
                Rule::call_args => {
                    let args = part.into_inner().map(|arg| self.arg(arg)).collect();
                    Expr {
                        kind: ExprKind::Call {
                            callee: Box::new(result),
                            args,
                        },
                        span,
                    }
                }
                Rule::index_args => {
                    let items = part
                        .into_inner()
                        .map(|item| self.index_item(item))
                        .collect();
                    Expr {
                        kind: ExprKind::Index {
                            target: Box::new(result),
                            items,
                        },
                        span,
                    }
                }
                Rule::member_access => {
                    let name = part.into_inner().next().map(|p| self.ident(p));
                    let name = name.unwrap_or(Ident {
                        name: String::new(),
                        span: part_span,
                    });
                    Expr {
                        kind: ExprKind::Member {
                            receiver: Box::new(result),
                            name,
                        },
                        span,
                    }
                }
                _ => result,
            };
        }
        result
    }

    fn arg(&mut self, pair: Pair<Rule>) -> Arg {
        let span = self.span(&pair);
        let Some(inner) = pair.into_inner().next() else {
            return Arg {
                name: None,
                value: self.error_expr(span),
            };
        };
        if inner.as_rule() == Rule::named_arg {
            let mut parts = inner.into_inner();
            let name = parts.next().map(|p| self.ident(p));
            let value = parts
                .next()
                .map(|p| self.expr(p))
                .unwrap_or_else(|| self.error_expr(span));
            Arg { name, value }
        } else {
            Arg {
                name: None,
                value: self.expr(inner),
            }
        }
    }

    fn index_item(&mut self, pair: Pair<Rule>) -> IndexItem {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::ellipsis => IndexItem::Ellipsis(span),
            Rule::slice => {
                // Bounds are positional: find which of start/end/step each bound is by the
                // colons before it.
                let text = pair.as_str();
                let slice_start = pair.as_span().start();
                let mut bounds: [Option<Expr>; 3] = [None, None, None];
                for bound in pair.into_inner() {
                    let offset = bound.as_span().start() - slice_start;
                    let colons = text[..offset].matches(':').count().min(2);
                    bounds[colons] = bound.into_inner().next().map(|e| self.expr(e));
                }
                let [start, end, step] = bounds;
                IndexItem::Slice {
                    start,
                    end,
                    step,
                    span,
                }
            }
            _ => IndexItem::Single(self.expr(pair)),
        }
    }

    fn number(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let text: String = pair.as_str().chars().filter(|c| *c != '_').collect();
        let is_float = text.contains(['.', 'e', 'E']);
        if is_float {
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => Expr {
                    kind: ExprKind::Float(value),
                    span,
                },
                _ => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "invalid-number",
                            format!("`{}` is out of range for a float", pair.as_str()),
                        )
                        .with_label(span, "too large"),
                    );
                    Expr {
                        kind: ExprKind::Float(0.0),
                        span,
                    }
                }
            }
        } else {
            match text.parse::<i64>() {
                Ok(value) => Expr {
                    kind: ExprKind::Int(value),
                    span,
                },
                Err(_) => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "invalid-number",
                            format!("`{}` does not fit in a 64-bit integer", pair.as_str()),
                        )
                        .with_label(span, "too large")
                        .with_help(format!("the largest integer is {}", i64::MAX)),
                    );
                    Expr {
                        kind: ExprKind::Int(0),
                        span,
                    }
                }
            }
        }
    }
}

/// Strips trailing whitespace and trailing `#` line comments.
fn trim_trailing_trivia(text: &str) -> &str {
    let mut end = text.trim_end();
    loop {
        // A comment runs to the end of its line; if the last line holds one after code, cut it.
        let line_start = end.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = &end[line_start..];
        match line.find('#') {
            Some(hash) if !line[..hash].contains('"') => {
                let cut = end[..line_start + hash].trim_end();
                if cut.len() == end.len() {
                    return end;
                }
                end = cut;
            }
            _ => return end,
        }
    }
}

fn binary_operator(text: &str) -> BinaryOperator {
    match text {
        "+" => BinaryOperator::Add,
        "-" => BinaryOperator::Sub,
        "*" => BinaryOperator::Mul,
        "/" => BinaryOperator::Div,
        "%" => BinaryOperator::Rem,
        "@" => BinaryOperator::MatMul,
        "**" => BinaryOperator::Pow,
        "==" => BinaryOperator::Eq,
        "!=" => BinaryOperator::Ne,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::Le,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::Ge,
        "and" => BinaryOperator::And,
        _ => BinaryOperator::Or,
    }
}

fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[allow(dead_code)]
const _: usize = MAX_NESTING;
