//! Signatures and doc comments of layers, functions and builtins, as hover and completion
//! show them. Layer and function signatures are cut from their source text, so they read as
//! written; builtins have no source, so their parameters are listed here (a unit test keeps
//! this list in step with the checker's).

use modelc_compiler::check::modules::{ItemRef, Program};
use modelc_compiler::source::Span;
use modelc_compiler::syntax::ast::{Item, LayerKind, Param};

/// A builtin's parameters: name and default as written (`None`: required). `variadic`
/// builtins take more positional arguments after these.
pub struct BuiltinSignature {
    pub name: &'static str,
    pub params: &'static [(&'static str, Option<&'static str>)],
    pub variadic: bool,
    /// Named-only arguments the builtin reads before binding the others (`dtype`).
    pub keywords: &'static [(&'static str, &'static str)],
}

const X: &[(&str, Option<&str>)] = &[("x", None)];
const AB: &[(&str, Option<&str>)] = &[("a", None), ("b", None)];
const REDUCE: &[(&str, Option<&str>)] = &[
    ("x", None),
    ("axis", Some("none")),
    ("keepdims", Some("false")),
];

/// Every builtin of `modelc_compiler::check::builtins::BUILTINS` with its parameters.
pub const BUILTIN_SIGNATURES: &[BuiltinSignature] = &[
    plain("exp", X),
    plain("log", X),
    plain("sqrt", X),
    plain("rsqrt", X),
    plain("tanh", X),
    plain("sigmoid", X),
    plain("erf", X),
    plain("abs", X),
    plain("sin", X),
    plain("cos", X),
    plain("floor", X),
    plain("maximum", AB),
    plain("minimum", AB),
    plain("pow", AB),
    plain("where", &[("condition", None), ("a", None), ("b", None)]),
    plain("cast", &[("x", None), ("dtype", None)]),
    plain("sum", REDUCE),
    plain("mean", REDUCE),
    plain("max", REDUCE),
    plain("min", REDUCE),
    plain(
        "argmax",
        &[
            ("x", None),
            ("axis", Some("-1")),
            ("keepdims", Some("false")),
        ],
    ),
    variadic("reshape", X, &[]),
    plain(
        "flatten",
        &[("x", None), ("start", Some("1")), ("end", Some("-1"))],
    ),
    variadic("permute", X, &[]),
    plain(
        "transpose",
        &[("x", None), ("a", Some("-2")), ("b", Some("-1"))],
    ),
    plain("unsqueeze", &[("x", None), ("axis", None)]),
    plain("squeeze", &[("x", None), ("axis", None)]),
    variadic("expand", X, &[]),
    plain("concat", &[("tensors", None), ("axis", Some("0"))]),
    plain(
        "split",
        &[("x", None), ("sections", None), ("axis", Some("-1"))],
    ),
    plain("matmul", AB),
    plain(
        "conv2d",
        &[
            ("x", None),
            ("weight", None),
            ("bias", Some("none")),
            ("stride", Some("1")),
            ("padding", Some("0")),
            ("dilation", Some("1")),
            ("groups", Some("1")),
        ],
    ),
    plain(
        "pool2d",
        &[
            ("x", None),
            ("kind", None),
            ("kernel", None),
            ("stride", Some("none")),
            ("padding", Some("0")),
        ],
    ),
    plain(
        "take",
        &[("table", None), ("indices", None), ("axis", Some("0"))],
    ),
    variadic("zeros", &[], &[("dtype", "f32")]),
    variadic("ones", &[], &[("dtype", "f32")]),
    variadic("full", &[("value", None)], &[("dtype", "f32")]),
    BuiltinSignature {
        name: "arange",
        params: &[("n", None)],
        variadic: false,
        keywords: &[("dtype", "i64")],
    },
    plain(
        "batch_norm",
        &[
            ("x", None),
            ("weight", None),
            ("bias", None),
            ("running_mean", None),
            ("running_var", None),
            ("num_batches_tracked", Some("none")),
            ("eps", Some("0.00001")),
            ("momentum", Some("0.1")),
        ],
    ),
    plain("dropout", &[("x", None), ("rate", Some("0.5"))]),
    plain("int", X),
    plain("float", X),
    plain("len", X),
    variadic("require", &[("condition", None), ("message", None)], &[]),
];

const fn plain(
    name: &'static str,
    params: &'static [(&'static str, Option<&'static str>)],
) -> BuiltinSignature {
    BuiltinSignature {
        name,
        params,
        variadic: false,
        keywords: &[],
    }
}

const fn variadic(
    name: &'static str,
    params: &'static [(&'static str, Option<&'static str>)],
    keywords: &'static [(&'static str, &'static str)],
) -> BuiltinSignature {
    BuiltinSignature {
        name,
        params,
        variadic: true,
        keywords,
    }
}

pub fn builtin_signature(name: &str) -> Option<&'static BuiltinSignature> {
    BUILTIN_SIGNATURES.iter().find(|b| b.name == name)
}

impl BuiltinSignature {
    /// `sum(x, axis = none, keepdims = false)`, formatted as the checker's messages format it.
    pub fn to_text(&self) -> String {
        let mut parts: Vec<String> = self
            .params
            .iter()
            .map(|(name, default)| match default {
                Some(default) => format!("{name} = {default}"),
                None => name.to_string(),
            })
            .collect();
        if self.variadic {
            parts.push("...".into());
        }
        parts.extend(
            self.keywords
                .iter()
                .map(|(name, default)| format!("{name} = {default}")),
        );
        format!("{}({})", self.name, parts.join(", "))
    }
}

/// Source text with runs of whitespace (line breaks included) collapsed to one space.
pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The source text of a span, whitespace collapsed; empty when the span is not in one file.
pub fn span_text(program: &Program, span: Span) -> String {
    program
        .sources
        .snippet(span)
        .map(collapse_whitespace)
        .unwrap_or_default()
}

/// The text of a declaration up to its body's `{`: `layer Linear(inputs: int, ...)`.
fn header_text(program: &Program, span: Span) -> String {
    let text = program.sources.snippet(span).unwrap_or_default();
    let mut depth = 0i32;
    let mut in_string = false;
    let mut previous = '\0';
    for (index, character) in text.char_indices() {
        if in_string {
            if character == '"' && previous != '\\' {
                in_string = false;
            }
        } else {
            match character {
                '"' => in_string = true,
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                '{' if depth <= 0 => return collapse_whitespace(&text[..index]),
                _ => {}
            }
        }
        previous = character;
    }
    collapse_whitespace(text)
}

/// A parameter as written: `kernel: int`, `stride: int = 1`.
pub fn param_text(program: &Program, param: &Param) -> String {
    let text = span_text(program, param.span);
    if text.is_empty() {
        param.name.name.clone()
    } else {
        text
    }
}

/// The signature of a layer or function: its header and, for a layer, its forward's.
pub fn item_signature(program: &Program, item: ItemRef) -> String {
    match program.item(item) {
        Item::Layer(layer) => {
            let mut text = header_text(program, layer.span);
            if let Some(forward) = layer.forward() {
                let forward_span = Span::new(forward.span.start, forward.body.span.start);
                text.push_str("\n    ");
                text.push_str(&header_text(program, forward_span));
            }
            text
        }
        Item::Fn(function) => header_text(
            program,
            Span::new(function.span.start, function.body.span.start),
        ),
        _ => String::new(),
    }
}

/// The `##` doc comment of a layer or function.
pub fn item_doc(program: &Program, item: ItemRef) -> Option<&str> {
    match program.item(item) {
        Item::Layer(layer) => layer.doc.as_deref(),
        Item::Fn(function) => function.doc.as_deref(),
        _ => None,
    }
}

/// What kind of item it is, in words.
pub fn item_kind(program: &Program, item: ItemRef) -> &'static str {
    match program.item(item) {
        Item::Layer(layer) if layer.kind == LayerKind::Model => "model",
        Item::Layer(_) => "layer",
        Item::Fn(_) => "fn",
        _ => "item",
    }
}

/// The parameters a call of an item binds: a layer's hyper-parameters when it is constructed,
/// its forward's parameters when a member of that layer is applied, a function's parameters.
pub fn call_parameters(program: &Program, item: ItemRef, applies_layer: bool) -> &[Param] {
    match program.item(item) {
        Item::Layer(layer) if applies_layer => layer
            .forward()
            .map(|forward| forward.params.as_slice())
            .unwrap_or(&[]),
        Item::Layer(layer) => &layer.hparams,
        Item::Fn(function) => &function.params,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelc_compiler::check::builtins::BUILTINS;
    use modelc_compiler::check::modules::NoFiles;
    use modelc_compiler::check::{check_file, CheckOptions};

    #[test]
    fn every_builtin_has_a_signature() {
        for name in BUILTINS {
            assert!(
                builtin_signature(name).is_some(),
                "no signature for `{name}`"
            );
        }
        assert_eq!(BUILTIN_SIGNATURES.len(), BUILTINS.len());
    }

    /// Calls each builtin with an argument it does not have: the checker's `unknown-argument`
    /// help then states the signature it binds, which must be the one listed here.
    #[test]
    fn builtin_signatures_match_the_checker() {
        for signature in BUILTIN_SIGNATURES {
            let mut arguments: Vec<&str> = Vec::new();
            if !signature.params.is_empty() {
                arguments.push("x");
            }
            arguments.push("zzzz_no_such_parameter = 1");
            let text = format!(
                "layer Probe {{\n    forward(x: f32[2, 3]) {{\n        {}({})\n    }}\n}}\n",
                signature.name,
                arguments.join(", ")
            );
            let result = check_file("probe.model", &text, &NoFiles, CheckOptions::default());
            let help = result
                .diagnostics
                .iter()
                .find(|d| d.code == "unknown-argument")
                .and_then(|d| d.help.clone())
                .unwrap_or_default();
            let mut expected = BuiltinSignature {
                keywords: &[],
                ..*signature
            }
            .to_text();
            if signature.params.is_empty() && signature.variadic {
                expected = format!("{}(...)", signature.name);
            }
            assert_eq!(
                help,
                format!("the signature is `{expected}`"),
                "builtin `{}`",
                signature.name
            );
        }
    }
}
