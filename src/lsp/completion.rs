//! Completion and signature help.
//!
//! Completion runs while the user types, so the item under the cursor usually does not parse
//! and is missing from the syntax tree. The context therefore comes from the text: a forward
//! scan up to the cursor finds open brackets (outside strings and comments), the enclosing
//! call is the innermost unmatched `(` and its callee the name before it. Names come from the
//! last check where they exist (the file's items, its imports, the prelude, the locals of a
//! parsed item) and from a scan of the text of a broken item otherwise.

use super::analysis::Analysis;
use super::names::BindingKind;
use super::signatures::{
    builtin_signature, call_parameters, item_doc, item_signature, param_text, BUILTIN_SIGNATURES,
};
use lsp_types::{
    CompletionItem, CompletionItemKind, Documentation, MarkupContent, MarkupKind,
    ParameterInformation, ParameterLabel, Position, SignatureHelp, SignatureInformation,
};
use modelc_compiler::check::modules::{ItemRef, Program};
use modelc_compiler::source::SourceMap;
use modelc_compiler::syntax::ast::{Item, LayerKind};
use modelc_compiler::syntax::parse_file;
use std::collections::HashSet;

/// The reserved words, offered as keywords.
const KEYWORDS: &[&str] = &[
    "use", "layer", "model", "fn", "param", "forward", "let", "if", "else", "scan", "in", "along",
    "with", "yield", "train", "compress", "sweep", "true", "false", "and", "or", "not", "reverse",
];

/// The constants every file sees.
const CONSTANTS: &[&str] = &["none", "pi", "f32", "i64"];

/// The fields of a tensor value.
const FIELDS: &[(&str, &str)] = &[
    ("T", "the last two dims swapped"),
    ("shape", "a tuple of its sizes"),
    ("ndim", "its rank"),
    ("dtype", "its dtype"),
];

/// The completions at a position.
pub fn completion(analysis: &Analysis, position: Position) -> Vec<CompletionItem> {
    let text = analysis.text.as_str();
    let offset = analysis.offset_of(position);
    let scan = scan_to(text, offset);
    if scan.in_comment || scan.in_string {
        return Vec::new();
    }
    let prefix_start = identifier_start(text, offset);
    let line_start = text[..prefix_start].rfind('\n').map_or(0, |i| i + 1);
    let line_before = &text[line_start..prefix_start];
    if line_before.trim_start().starts_with("use ") {
        return use_completions(analysis, line_before);
    }
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let after_dot = text[..prefix_start].ends_with('.');
    if after_dot {
        for (field, meaning) in FIELDS {
            push(
                &mut items,
                &mut seen,
                field,
                CompletionItemKind::FIELD,
                Some(meaning.to_string()),
                None,
                "0",
            );
        }
    } else if let Some(call) = enclosing_call(text, &scan, offset) {
        if call.at_argument_start {
            for (name, detail, documentation) in keyword_arguments(analysis, &call) {
                if call.given.contains(&name) {
                    continue;
                }
                let label = name.clone();
                let mut item = completion_item(
                    &label,
                    CompletionItemKind::PROPERTY,
                    Some(detail),
                    documentation,
                    "0",
                );
                item.insert_text = Some(format!("{name} = "));
                item.filter_text = Some(name.clone());
                if seen.insert(format!("{name}=")) {
                    items.push(item);
                }
            }
        }
    }
    for (name, detail) in locals_at(analysis, offset) {
        push(
            &mut items,
            &mut seen,
            &name,
            CompletionItemKind::VARIABLE,
            Some(detail),
            None,
            "1",
        );
    }
    if let Some(program) = analysis.program() {
        for (name, item) in visible_items(program) {
            let kind = match program.item(item) {
                Item::Fn(_) => CompletionItemKind::FUNCTION,
                Item::Layer(layer) if layer.kind == LayerKind::Model => CompletionItemKind::MODULE,
                _ => CompletionItemKind::CLASS,
            };
            let signature = item_signature(program, item);
            let detail = signature.lines().next().unwrap_or_default().to_string();
            let documentation = item_doc(program, item).map(|d| d.trim().to_string());
            push(
                &mut items,
                &mut seen,
                &name,
                kind,
                Some(detail),
                documentation,
                "2",
            );
        }
    }
    for signature in BUILTIN_SIGNATURES {
        push(
            &mut items,
            &mut seen,
            signature.name,
            CompletionItemKind::FUNCTION,
            Some(format!("builtin {}", signature.to_text())),
            None,
            "3",
        );
    }
    if !after_dot {
        for constant in CONSTANTS {
            push(
                &mut items,
                &mut seen,
                constant,
                CompletionItemKind::CONSTANT,
                None,
                None,
                "4",
            );
        }
        for keyword in KEYWORDS {
            push(
                &mut items,
                &mut seen,
                keyword,
                CompletionItemKind::KEYWORD,
                None,
                None,
                "5",
            );
        }
    }
    items
}

/// The signature of the call being written at a position, with the argument being written.
pub fn signature_help(analysis: &Analysis, position: Position) -> Option<SignatureHelp> {
    let text = analysis.text.as_str();
    let offset = analysis.offset_of(position);
    let scan = scan_to(text, offset);
    if scan.in_comment || scan.in_string {
        return None;
    }
    let call = enclosing_call(text, &scan, offset)?;
    let (label, parameters) = call_signature(analysis, &call)?;
    let skipped = usize::from(call.receiver_is_first_argument);
    let active = match &call.current_name {
        Some(name) => parameters.iter().position(|p| p == name),
        None => Some(call.positional_before + skipped),
    };
    let parameter_information = parameters
        .iter()
        .map(|name| ParameterInformation {
            label: ParameterLabel::Simple(name.clone()),
            documentation: None,
        })
        .collect();
    Some(SignatureHelp {
        signatures: vec![SignatureInformation {
            label,
            documentation: None,
            parameters: Some(parameter_information),
            active_parameter: active.map(|a| a as u32),
        }],
        active_signature: Some(0),
        active_parameter: active.map(|a| a as u32),
    })
}

// ------------------------------------------------------------------ text scanning

/// What a forward scan of the text up to the cursor found.
#[derive(Debug, Default)]
pub struct Scan {
    pub in_comment: bool,
    pub in_string: bool,
    /// Unmatched opening brackets, innermost last: the bracket and its byte offset.
    pub open: Vec<(char, usize)>,
}

/// Scans `text[..offset]` for brackets, skipping strings, `#` comments and `#= ... =#` block
/// comments as the lexer does.
pub fn scan_to(text: &str, offset: usize) -> Scan {
    let end = super::position::floor_char_boundary(text, offset);
    let bytes = &text.as_bytes()[..end];
    let mut scan = Scan::default();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'#' if bytes.get(index + 1) == Some(&b'=') => match find(bytes, index + 2, b"=#") {
                Some(close) => index = close + 2,
                None => {
                    scan.in_comment = true;
                    return scan;
                }
            },
            b'#' => match bytes[index..].iter().position(|b| *b == b'\n') {
                Some(newline) => index += newline + 1,
                None => {
                    scan.in_comment = true;
                    return scan;
                }
            },
            b'"' => {
                index += 1;
                loop {
                    match bytes.get(index) {
                        None => {
                            scan.in_string = true;
                            return scan;
                        }
                        // Strings are on one line; an unterminated one ends there.
                        Some(b'\n') => break,
                        Some(b'\\') => index += 2,
                        Some(b'"') => {
                            index += 1;
                            break;
                        }
                        Some(_) => index += 1,
                    }
                }
            }
            open @ (b'(' | b'[' | b'{') => {
                scan.open.push((open as char, index));
                index += 1;
            }
            close @ (b')' | b']' | b'}') => {
                let matching = match close {
                    b')' => '(',
                    b']' => '[',
                    _ => '{',
                };
                // A stray closer closes the innermost bracket of its kind, if any is open.
                if let Some(position) = scan.open.iter().rposition(|(c, _)| *c == matching) {
                    scan.open.truncate(position);
                }
                index += 1;
            }
            _ => index += 1,
        }
    }
    scan
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > bytes.len() {
        return None;
    }
    bytes[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The start of the identifier that ends at `offset` (or `offset` when there is none).
fn identifier_start(text: &str, offset: usize) -> usize {
    let offset = super::position::floor_char_boundary(text, offset);
    let bytes = text.as_bytes();
    let mut start = offset;
    while start > 0 && is_identifier_byte(bytes[start - 1]) {
        start -= 1;
    }
    start
}

/// The call whose arguments the cursor is in.
#[derive(Debug)]
pub struct EnclosingCall {
    pub callee: String,
    /// `x.f(` or `x |> f(`: the first parameter is already given.
    pub receiver_is_first_argument: bool,
    /// Named arguments already written in this call.
    pub given: HashSet<String>,
    /// Whether the cursor is where an argument starts (after `(` or `,`), so a keyword
    /// argument can be written there.
    pub at_argument_start: bool,
    /// Positional arguments before the one being written.
    pub positional_before: usize,
    /// The name of the named argument being written, if it is one.
    pub current_name: Option<String>,
    /// The byte offset of the `(`.
    pub paren: usize,
}

/// Finds the innermost unmatched `(` before the cursor and the callee name directly before it.
pub fn enclosing_call(text: &str, scan: &Scan, offset: usize) -> Option<EnclosingCall> {
    let &(bracket, paren) = scan.open.last()?;
    if bracket != '(' {
        return None;
    }
    let callee_start = identifier_start(text, paren);
    let callee = &text[callee_start..paren];
    if callee.is_empty() || callee.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let before = text[..callee_start].trim_end();
    // `layer Name(`, `fn name(` and `forward(` open parameter lists, not calls.
    let previous_word_start = identifier_start(before, before.len());
    let previous_word = &before[previous_word_start..];
    if matches!(previous_word, "layer" | "model" | "fn") || callee == "forward" {
        return None;
    }
    if KEYWORDS.contains(&callee) && callee != "not" {
        return None;
    }
    let receiver_is_first_argument = text[..callee_start].ends_with('.') || before.ends_with("|>");
    let cursor = identifier_start(text, offset);
    let arguments = &text[paren + 1..cursor];
    let segments = split_top_level(arguments);
    let mut given = HashSet::new();
    let mut positional_before = 0;
    let last = segments.len().saturating_sub(1);
    let mut current_name = None;
    for (index, segment) in segments.iter().enumerate() {
        let name = named_argument(segment);
        if index == last {
            current_name = name;
            break;
        }
        match name {
            Some(name) => {
                given.insert(name);
            }
            None => positional_before += 1,
        }
    }
    let at_argument_start = segments.last().is_none_or(|s| s.trim().is_empty());
    Some(EnclosingCall {
        callee: callee.to_string(),
        receiver_is_first_argument,
        given,
        at_argument_start,
        positional_before,
        current_name,
        paren,
    })
}

/// Splits argument text at commas outside brackets and strings.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut depth = 0i32;
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0;
    for (index, character) in text.char_indices() {
        if in_string {
            match character {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' | '\n' => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                segments.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    segments.push(&text[start..]);
    segments
}

/// `name` when an argument is written `name = value` (not `name == value`).
fn named_argument(segment: &str) -> Option<String> {
    let trimmed = segment.trim_start();
    let end = trimmed
        .bytes()
        .position(|b| !is_identifier_byte(b))
        .unwrap_or(trimmed.len());
    if end == 0 {
        return None;
    }
    let rest = trimmed[end..].trim_start();
    if rest.starts_with('=') && !rest.starts_with("==") {
        Some(trimmed[..end].to_string())
    } else {
        None
    }
}

// ------------------------------------------------------------------ what a callee takes

/// The parameters a call's callee takes, as `(name, detail, documentation)`, without those
/// that positional arguments, a receiver or a pipeline input fill.
fn keyword_arguments(
    analysis: &Analysis,
    call: &EnclosingCall,
) -> Vec<(String, String, Option<String>)> {
    let mut arguments: Vec<(String, String, Option<String>)> = Vec::new();
    // How many of them can be given by position (a builtin's `dtype` cannot).
    let mut positional = 0;
    match resolve_callee(analysis, call) {
        Some(Callee::Item(item, applies)) => {
            let Some(program) = analysis.program() else {
                return arguments;
            };
            let owner = program
                .item(item)
                .defined_name()
                .map(|n| n.name.clone())
                .unwrap_or_default();
            for param in call_parameters(program, item, applies) {
                arguments.push((
                    param.name.name.clone(),
                    param_text(program, param),
                    Some(format!("parameter of `{owner}`")),
                ));
            }
            positional = arguments.len();
        }
        Some(Callee::Builtin(name)) => {
            if let Some(signature) = builtin_signature(name) {
                for (parameter, default) in signature.params {
                    let detail = match default {
                        Some(default) => format!("{parameter} = {default}"),
                        None => parameter.to_string(),
                    };
                    arguments.push((parameter.to_string(), detail, Some(signature.to_text())));
                }
                positional = arguments.len();
                for (parameter, default) in signature.keywords {
                    arguments.push((
                        parameter.to_string(),
                        format!("{parameter} = {default}"),
                        Some(signature.to_text()),
                    ));
                }
            }
        }
        None => {}
    }
    // Positional arguments (and a receiver or pipeline input) fill the leading parameters.
    let filled = call.positional_before + usize::from(call.receiver_is_first_argument);
    arguments.drain(..filled.min(positional));
    arguments
}

/// The signature label and parameter names of a call's callee.
fn call_signature(analysis: &Analysis, call: &EnclosingCall) -> Option<(String, Vec<String>)> {
    match resolve_callee(analysis, call)? {
        Callee::Item(item, applies) => {
            let program = analysis.program()?;
            let parameters = call_parameters(program, item, applies);
            let texts: Vec<String> = parameters.iter().map(|p| param_text(program, p)).collect();
            let label = format!("{}({})", call.callee, texts.join(", "));
            // Parameter labels are substrings of the signature label, as LSP requires.
            Some((label, texts))
        }
        Callee::Builtin(name) => {
            let signature = builtin_signature(name)?;
            let mut names: Vec<String> = signature
                .params
                .iter()
                .map(|(parameter, default)| match default {
                    Some(default) => format!("{parameter} = {default}"),
                    None => parameter.to_string(),
                })
                .collect();
            names.extend(
                signature
                    .keywords
                    .iter()
                    .map(|(parameter, default)| format!("{parameter} = {default}")),
            );
            Some((signature.to_text(), names))
        }
    }
}

enum Callee {
    /// An item and whether it is applied (a member's forward) rather than constructed.
    Item(ItemRef, bool),
    Builtin(&'static str),
}

/// What a callee name means at the call: a local member (its layer's forward), another local
/// (nothing known), a top-level item, or a builtin.
fn resolve_callee(analysis: &Analysis, call: &EnclosingCall) -> Option<Callee> {
    let program = analysis.program()?;
    let names = analysis.names()?;
    if let Some(paren) = analysis.global_offset(call.paren) {
        if inside_parsed_item(program, paren) {
            if let Some(binding) = names
                .bindings_visible_at(paren)
                .into_iter()
                .find(|b| b.name == call.callee)
            {
                return match (binding.kind, binding.layer) {
                    (BindingKind::SubLayer, Some(layer)) => Some(Callee::Item(layer, true)),
                    _ => None,
                };
            }
        } else if let Some(layer) = member_layer_in_text(analysis, call.paren, &call.callee) {
            return Some(Callee::Item(layer, true));
        }
    }
    if let Some(item) = program.lookup(program.root, &call.callee) {
        return Some(Callee::Item(item, false));
    }
    builtin_signature(&call.callee).map(|s| Callee::Builtin(s.name))
}

/// Whether a global offset lies inside an item of the root file that parsed.
fn inside_parsed_item(program: &Program, offset: u32) -> bool {
    program.modules[program.root].ast.items.iter().any(|item| {
        let span = match item {
            Item::Layer(layer) => layer.span,
            Item::Fn(function) => function.span,
            _ => return false,
        };
        span.start <= offset && offset <= span.end
    })
}

/// The start of the (possibly broken) top-level item the offset is in: the last line before it
/// that starts with an item keyword at column 0.
fn item_region_start(text: &str, offset: usize) -> usize {
    let mut line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    loop {
        let line = &text[line_start..];
        if ["layer ", "model ", "fn "]
            .iter()
            .any(|keyword| line.starts_with(keyword))
        {
            return line_start;
        }
        if line_start == 0 {
            return 0;
        }
        line_start = text[..line_start - 1].rfind('\n').map_or(0, |i| i + 1);
    }
}

/// In a broken item, a member `name = Layer(...)` found in its text: the layer it constructs.
fn member_layer_in_text(analysis: &Analysis, offset: usize, member: &str) -> Option<ItemRef> {
    let program = analysis.program()?;
    let text = &analysis.text;
    let region = &text[item_region_start(text, offset)..offset];
    for line in region.lines() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix(member) else {
            continue;
        };
        let rest = rest.trim_start();
        if !rest.starts_with('=') || rest.starts_with("==") {
            continue;
        }
        let value = rest[1..].trim_start();
        let end = value
            .bytes()
            .position(|b| !is_identifier_byte(b))
            .unwrap_or(value.len());
        let item = program.lookup(program.root, &value[..end])?;
        if program.layer(item).is_some() {
            return Some(item);
        }
    }
    None
}

// ------------------------------------------------------------------ names in scope

/// The local names at an offset with a short description: from the name index inside a parsed
/// item, else from the text of the item being written.
fn locals_at(analysis: &Analysis, offset: usize) -> Vec<(String, String)> {
    if let (Some(program), Some(names), Some(global)) = (
        analysis.program(),
        analysis.names(),
        analysis.global_offset(offset),
    ) {
        if inside_parsed_item(program, global) {
            return names
                .bindings_visible_at(global)
                .into_iter()
                .map(|b| (b.name.clone(), b.kind.describe().to_string()))
                .collect();
        }
    }
    let text = &analysis.text;
    let offset = super::position::floor_char_boundary(text, offset);
    let start = item_region_start(text, offset);
    names_in_text(&text[start..offset])
}

/// The names a piece of item text introduces: parameters (`name:`), `let` patterns, `param`
/// names and members (`name =` at the start of a line).
fn names_in_text(region: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, what: &str| {
        if !name.is_empty()
            && !name.as_bytes()[0].is_ascii_digit()
            && !KEYWORDS.contains(&name)
            && !found.iter().any(|(n, _)| n == name)
        {
            found.push((name.to_string(), what.to_string()));
        }
    };
    for line in region.lines() {
        let code = line.split('#').next().unwrap_or("");
        let trimmed = code.trim_start();
        if let Some(rest) = trimmed.strip_prefix("let ") {
            let pattern = rest.split(['=', ':']).next().unwrap_or("");
            for name in pattern.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                add(name, "let binding");
            }
        } else if let Some(rest) = trimmed.strip_prefix("param ") {
            let end = rest
                .bytes()
                .position(|b| !is_identifier_byte(b))
                .unwrap_or(rest.len());
            add(&rest[..end], "param");
        } else if let Some(name) = named_argument(trimmed) {
            add(&name, "member");
        }
        // `name:` anywhere on the line: a parameter of a header, a forward or a fn.
        let bytes = code.as_bytes();
        for (index, byte) in bytes.iter().enumerate() {
            if *byte != b':' || bytes.get(index + 1) == Some(&b':') {
                continue;
            }
            let before = code[..index].trim_end();
            let start = identifier_start(before, before.len());
            add(&before[start..], "parameter");
        }
    }
    found
}

/// The top-level names a file sees: its items and imports, then the prelude's.
fn visible_items(program: &Program) -> Vec<(String, ItemRef)> {
    let mut items: Vec<(String, ItemRef)> = program.modules[program.root]
        .scope
        .iter()
        .map(|(name, item)| (name.clone(), *item))
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(prelude) = program.prelude {
        let mut prelude_items: Vec<(String, ItemRef)> = program.modules[prelude]
            .scope
            .iter()
            .filter(|(_, item)| item.module == prelude)
            .map(|(name, item)| (name.clone(), *item))
            .collect();
        prelude_items.sort_by(|a, b| a.0.cmp(&b.0));
        items.extend(prelude_items);
    }
    items
}

/// Completions on a `use` line: stdlib modules after `use std.`, a module's items after its
/// path.
fn use_completions(analysis: &Analysis, line_before: &str) -> Vec<CompletionItem> {
    let path_text = line_before.trim_start().trim_start_matches("use ").trim();
    let path_text = path_text
        .split('{')
        .next()
        .unwrap_or("")
        .trim_end_matches('.');
    let mut items = Vec::new();
    if !line_before.contains('{') && (path_text == "std" || path_text.is_empty()) {
        for module in modelc_compiler::stdlib::module_paths() {
            if module == modelc_compiler::stdlib::PRELUDE {
                continue;
            }
            let short = module.trim_start_matches("std.");
            let label = if path_text == "std" { short } else { module };
            items.push(completion_item(
                label,
                CompletionItemKind::MODULE,
                Some(module.to_string()),
                None,
                "0",
            ));
        }
        return items;
    }
    // The module is loaded when its `use` parsed; while the line is being written it is not,
    // and a stdlib module is then read from the embedded text.
    let loaded = analysis
        .program()
        .and_then(|program| program.modules.iter().position(|m| m.key == path_text));
    let entries: Vec<(String, CompletionItemKind, Option<String>)> = match loaded {
        Some(module) => {
            let Some(program) = analysis.program() else {
                return items;
            };
            program.modules[module]
                .ast
                .items
                .iter()
                .filter_map(item_entry)
                .collect()
        }
        None => {
            let Some((name, text)) = modelc_compiler::stdlib::find(path_text) else {
                return items;
            };
            let mut sources = SourceMap::new();
            let Some(file) = sources.add(name, text) else {
                return items;
            };
            let (module, _) = parse_file(&sources, file);
            module.items.iter().filter_map(item_entry).collect()
        }
    };
    for (name, kind, documentation) in entries {
        items.push(completion_item(
            &name,
            kind,
            Some(format!("in {path_text}")),
            documentation,
            "0",
        ));
    }
    items
}

/// A top-level item's name, completion kind and doc comment.
fn item_entry(item: &Item) -> Option<(String, CompletionItemKind, Option<String>)> {
    match item {
        Item::Fn(function) => Some((
            function.name.name.clone(),
            CompletionItemKind::FUNCTION,
            function.doc.as_ref().map(|d| d.trim().to_string()),
        )),
        Item::Layer(layer) => Some((
            layer.name.name.clone(),
            if layer.kind == LayerKind::Model {
                CompletionItemKind::MODULE
            } else {
                CompletionItemKind::CLASS
            },
            layer.doc.as_ref().map(|d| d.trim().to_string()),
        )),
        _ => None,
    }
}

fn completion_item(
    label: &str,
    kind: CompletionItemKind,
    detail: Option<String>,
    documentation: Option<String>,
    sort_group: &str,
) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail,
        documentation: documentation.map(|value| {
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            })
        }),
        sort_text: Some(format!("{sort_group}_{label}")),
        ..CompletionItem::default()
    }
}

/// Adds an item unless its label was offered already (a local shadows an item of the same
/// name; an item shadows a builtin).
fn push(
    items: &mut Vec<CompletionItem>,
    seen: &mut HashSet<String>,
    label: &str,
    kind: CompletionItemKind,
    detail: Option<String>,
    documentation: Option<String>,
    sort_group: &str,
) {
    if seen.insert(label.to_string()) {
        items.push(completion_item(
            label,
            kind,
            detail,
            documentation,
            sort_group,
        ));
    }
}
