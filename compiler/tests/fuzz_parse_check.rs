//! Property test: whatever text `check_file` is given, it returns (no panic, no hang, no stack
//! overflow), every diagnostic has a registered code and a primary span inside the source map,
//! rendering the diagnostics does not panic, and every model it accepts lowers to a graph that
//! verifies.
//!
//! Inputs: random bytes (made valid UTF-8), random sequences of grammar tokens, and mutations
//! of the example and stdlib files (byte ranges deleted, inserted or replaced, on character
//! boundaries), and constant arithmetic, slices, sizes and axes over integers at the edges of
//! i64. Each property runs `check_file_here` (the compiler on the calling thread, where
//! `check_file` would start a thread with a large stack) on a thread with an 8 MiB stack, and
//! a watchdog aborts the process with the offending input if one check takes too long. A stack
//! overflow aborts the process before anything can be printed; the input being checked is then
//! in the file named at the start of the property (in the temporary directory).
//!
//! `MODELC_FUZZ_SCALE=20` multiplies the number of cases, for a longer search.

use modelc_compiler::check::modules::MemoryLoader;
use modelc_compiler::check::{check_file, check_file_here, CheckOptions};
use modelc_compiler::diag::codes;
use modelc_compiler::diag::render::render_all;
use modelc_compiler::ir::verify::verify;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STACK: usize = 8 << 20;
/// Longest one check may take before the watchdog aborts (debug build, loaded machine).
const CHECK_DEADLINE: Duration = Duration::from_secs(20);

/// Files a mutated input may import (`use blocks.{Block}`); the importing file is `main.model`.
const BLOCKS: &str = "use std.nn.{Linear}\nlayer Block(width: int) {\n    fc = Linear(width, width)\n    forward(x) { relu(fc(x)) + x }\n}\n";

const HANDWRITTEN: &str = r#"## Exercises the constructs the examples do not.
use std.nn.{Linear, LayerNorm}
use blocks.{Block}

fn double(x, factor: float = 2.0) -> f32[B, 8] { x * factor }

layer Cell(width: int) {
    param w: f32[width, width] = xavier_uniform()
    param b: f32[width] = zeros() if width > 2
    forward(x: f32[B, T, width]) {
        scan xt in x along 1 with (h = x[:, 0, :]) {
            h = tanh(xt @ w + h)
            yield h
        }
    }
}

model Net(width: int = 8) {
    norm = LayerNorm(width)
    blocks = repeat(Block(width), 2)
    cell = Cell(width)
    head = [Linear(width, width), Linear(width, width)]
    forward(x: f32[B, 8]) -> f32[B, 8] {
        let (a, _) = (x, 1)
        let f = |v| v * 0.5
        let y = if width >= 8 and(not(false)) { f(a) } else { a }
        let s = cell(reshape(y, [B, 1, width]))
        let z = y |> norm |> blocks |> head
        double(z ** 2.0 - -1.0, factor = 3.0) + sum(s, axis = 1)[..., 0:8:1]
    }
}

train Net {
    data = csv("train.csv", features = 0..8, label = 8)
    loss = mse
    optimizer = adamw(lr = 3e-3, weight_decay = 1e-4)
    batch = 2 ** 5
    epochs = 3
    sweep {
        method = random(trials = 4)
        lr in log_uniform(1e-4, 1e-2)
        batch in [16, 32]
    }
}

compress Net {
    prune = structured(sparsity = 0.5, by = l1)
    quantize = int8()
    keep = ["norm"]
}
"#;

fn corpus() -> Vec<&'static str> {
    vec![
        include_str!("../../examples/mlp.model"),
        include_str!("../../examples/lenet.model"),
        include_str!("../../stdlib/nn.model"),
        include_str!("../../stdlib/prelude.model"),
        HANDWRITTEN,
    ]
}

// ---------------------------------------------------------------------------------------------
// The property

/// What the watchdog prints when a check runs too long.
type Current = Arc<Mutex<Option<(Instant, String)>>>;

/// Where the input being checked is kept, so that it survives a stack overflow (which aborts
/// the process before any message can name it).
fn last_input_path(property: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "modelc-fuzz-{property}-{}.model",
        std::process::id()
    ))
}

fn check_one(
    text: &str,
    record_types: bool,
    current: &Current,
    last_input: Option<&std::path::Path>,
) -> Result<(), TestCaseError> {
    if let Ok(mut slot) = current.lock() {
        *slot = Some((Instant::now(), text.to_string()));
    }
    if let Some(path) = last_input {
        let _ = std::fs::write(path, text);
    }
    let loader = MemoryLoader(HashMap::from([(
        "blocks.model".to_string(),
        BLOCKS.to_string(),
    )]));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let result = check_file_here("main.model", text, &loader, CheckOptions { record_types });
        let sources = &result.program.sources;
        let mut problems = Vec::new();
        for diagnostic in &result.diagnostics {
            if !codes::ALL.iter().any(|c| c.code == diagnostic.code) {
                problems.push(format!("unregistered code `{}`", diagnostic.code));
            }
            if let Some(span) = diagnostic.primary_span() {
                match sources.file_of(span.start) {
                    None => problems.push(format!(
                        "`{}` ({}) has its primary span {span:?} outside the source map",
                        diagnostic.code, diagnostic.message
                    )),
                    Some(file) => {
                        let file = sources.file(file);
                        if span.end as usize > file.base as usize + file.text.len() {
                            problems.push(format!(
                                "`{}` ({}) has its primary span {span:?} past the end of `{}`",
                                diagnostic.code, diagnostic.message, file.name
                            ));
                        }
                    }
                }
            }
        }
        let _ = render_all(&result.diagnostics, sources, false);
        for model in &result.models {
            if let Err(errors) = verify(&model.graph) {
                let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                problems.push(format!(
                    "model `{}` checked clean but its graph fails to verify: {errors:?}",
                    model.name
                ));
            }
        }
        problems
    }));
    if let Ok(mut slot) = current.lock() {
        *slot = None;
    }
    match outcome {
        Ok(problems) if problems.is_empty() => Ok(()),
        Ok(problems) => Err(TestCaseError::fail(problems.join("\n"))),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a non-string panic payload".to_string());
            Err(TestCaseError::fail(format!(
                "check_file panicked: {message}"
            )))
        }
    }
}

/// Runs `strategy` through the property on an 8 MiB thread, under a watchdog.
fn run_property<S>(name: &'static str, cases: u32, strategy: S)
where
    S: Strategy<Value = String> + Send + 'static,
{
    let current: Current = Arc::new(Mutex::new(None));
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let current = Arc::clone(&current);
        let finished = Arc::clone(&finished);
        std::thread::spawn(move || {
            while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let Ok(slot) = current.lock() else { continue };
                if let Some((started, text)) = slot.as_ref() {
                    if started.elapsed() > CHECK_DEADLINE {
                        eprintln!(
                            "{name}: HANG: check_file ran over {CHECK_DEADLINE:?} on this input ({} bytes):\n{text:?}",
                            text.len()
                        );
                        std::process::abort();
                    }
                }
            }
        });
    }
    let worker = std::thread::Builder::new()
        .name(name.to_string())
        .stack_size(STACK)
        .spawn(move || {
            // `MODELC_FUZZ_SCALE=20 cargo test --test fuzz_parse_check` runs 20 times the cases.
            let scale = std::env::var("MODELC_FUZZ_SCALE")
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(1);
            let config = Config {
                cases: cases.saturating_mul(scale),
                failure_persistence: None,
                ..Config::default()
            };
            let mut runner = TestRunner::new(config);
            let last_input = last_input_path(name);
            eprintln!("{name}: should the process die, the input it was checking is in {last_input:?}");
            let result = runner.run(&(strategy, any::<bool>()), |(text, record_types)| {
                check_one(&text, record_types, &current, Some(&last_input))
            });
            finished.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = std::fs::remove_file(&last_input);
            match result {
                Ok(()) => {}
                Err(TestError::Fail(reason, (text, record_types))) => panic!(
                    "{name}: {reason}\nminimal input (record_types = {record_types}, {} bytes):\n{text:?}",
                    text.len()
                ),
                Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
            }
        })
        .expect("spawn the property thread");
    if let Err(payload) = worker.join() {
        std::panic::resume_unwind(payload);
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn random_bytes() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 0..2000)
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

const TOKENS: &[&str] = &[
    // Keywords.
    "use",
    "layer",
    "model",
    "fn",
    "param",
    "forward",
    "let",
    "if",
    "else",
    "scan",
    "in",
    "along",
    "with",
    "yield",
    "train",
    "compress",
    "sweep",
    "true",
    "false",
    "and",
    "or",
    "not",
    "reverse",
    // Names the checker knows.
    "x",
    "y",
    "B",
    "T",
    "f32",
    "i64",
    "bool",
    "int",
    "float",
    "string",
    "std",
    "nn",
    "Linear",
    "Conv2d",
    "relu",
    "softmax",
    "zeros",
    "ones",
    "reshape",
    "sum",
    "matmul",
    "repeat",
    "none",
    "M",
    "L",
    "blocks",
    "Block",
    "normal",
    "data",
    "lr",
    "epochs",
    "csv",
    // Numbers.
    "0",
    "1",
    "2",
    "4",
    "-1",
    "0.5",
    "1e-3",
    "1_000",
    "9223372036854775807",
    "9223372036854775808",
    "(-9223372036854775807 - 1)",
    "1e999",
    // Punctuation.
    "+",
    "-",
    "*",
    "/",
    "%",
    "@",
    "**",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "..",
    "...",
    "|>",
    "|",
    "->",
    ":",
    ",",
    ".",
    "=",
    "_",
    "\"s\"",
    "\"",
    "#",
    "#=",
    "=#",
    "##",
    "\\",
    // Brackets.
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
];

fn token_sequence() -> impl Strategy<Value = String> {
    let token = (
        0..TOKENS.len(),
        prop_oneof![Just(" "), Just(""), Just("\n"), Just("\t")],
    );
    proptest::collection::vec(token, 0..300).prop_map(|tokens| {
        let mut text = String::new();
        for (index, separator) in tokens {
            text.push_str(TOKENS[index]);
            text.push_str(separator);
        }
        text
    })
}

/// Token sequences inside a model's forward body, so that most of them reach elaboration.
fn token_body() -> impl Strategy<Value = String> {
    token_sequence().prop_map(|body| {
        format!("model M {{\n    forward(x: f32[B, 4]) {{\n        {body}\n    }}\n}}\n")
    })
}

/// Integers at and around the edges of i64 and of the compiler's limits.
const EXTREMES: &[&str] = &[
    "(-9223372036854775807 - 1)",
    "-9223372036854775807",
    "-4294967296",
    "-2",
    "-1",
    "0",
    "1",
    "2",
    "62",
    "63",
    "64",
    "4294967296",
    "9223372036854775807",
];

/// Constant arithmetic, slices, sizes and axes over [`EXTREMES`], inside a forward body.
fn extreme_integers() -> impl Strategy<Value = String> {
    let int = || (0..EXTREMES.len()).prop_map(|i| EXTREMES[i]);
    let operator = prop_oneof![
        Just("+"),
        Just("-"),
        Just("*"),
        Just("/"),
        Just("%"),
        Just("**"),
        Just(".."),
        Just("<"),
    ];
    let arithmetic =
        (int(), operator, int()).prop_map(|(a, op, b)| format!("let n = {a} {op} {b}\n x"));
    let slice = (int(), int(), int()).prop_map(|(a, b, c)| format!("x[:, {a}:{b}:{c}]"));
    let sized = (0usize..8, int(), int()).prop_map(|(form, a, b)| match form {
        0 => format!("zeros({a}, {b})"),
        1 => format!("reshape(x, [{a}, {b}])"),
        2 => format!("split(x, {a}, axis = {b})"),
        3 => format!("sum(x, axis = {a})"),
        4 => format!("x[{a}, {b}]"),
        5 => format!("transpose(x, {a}, {b})"),
        6 => format!("max_pool2d(reshape(x, [B, 1, 2, 2]), {a}, stride = {b})"),
        _ => format!("arange({a})"),
    });
    prop_oneof![arithmetic, slice, sized].prop_map(|body| {
        format!("model M {{\n    forward(x: f32[B, 4]) {{\n        {body}\n    }}\n}}\n")
    })
}

#[derive(Clone, Debug)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    Replace { at: usize, len: usize, text: String },
}

fn snippet() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..TOKENS.len()).prop_map(|i| TOKENS[i].to_string()),
        proptest::collection::vec(0..TOKENS.len(), 1..8).prop_map(|indices| indices
            .iter()
            .map(|&i| TOKENS[i])
            .collect::<Vec<_>>()
            .join(" ")),
        "\\PC{0,12}",
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), snippet()).prop_map(|(at, text)| Edit::Insert { at, text }),
        (any::<usize>(), 1usize..20, snippet()).prop_map(|(at, len, text)| Edit::Replace {
            at,
            len,
            text
        }),
    ]
}

/// The nearest character boundary at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, edit: &Edit) -> String {
    let position = |at: usize| {
        if text.is_empty() {
            0
        } else {
            boundary(text, at % (text.len() + 1))
        }
    };
    match edit {
        Edit::Delete { at, len } => {
            let start = position(*at);
            let end = boundary(text, start + len);
            format!("{}{}", &text[..start], &text[end..])
        }
        Edit::Insert { at, text: inserted } => {
            let start = position(*at);
            format!("{}{inserted}{}", &text[..start], &text[start..])
        }
        Edit::Replace {
            at,
            len,
            text: inserted,
        } => {
            let start = position(*at);
            let end = boundary(text, start + len);
            format!("{}{inserted}{}", &text[..start], &text[end..])
        }
    }
}

fn mutated_corpus() -> impl Strategy<Value = String> {
    let files = corpus();
    (0..files.len(), proptest::collection::vec(edit(), 1..6)).prop_map(move |(index, edits)| {
        let mut text = files[index].to_string();
        for edit in &edits {
            text = apply(&text, edit);
        }
        text
    })
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn corpus_checks_and_is_well_formed() {
    // The unmutated corpus goes through the same property (and must not be all errors, or the
    // mutations would test little beyond the parser).
    let current: Current = Arc::new(Mutex::new(None));
    for text in corpus() {
        check_one(text, true, &current, None).unwrap_or_else(|e| panic!("{e}"));
    }
    let loader = MemoryLoader(HashMap::from([(
        "blocks.model".to_string(),
        BLOCKS.to_string(),
    )]));
    for text in corpus() {
        let result = check_file("main.model", text, &loader, CheckOptions::default());
        let messages: Vec<&str> = result
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert!(
            messages.is_empty(),
            "a corpus file does not check: {messages:?}\n{text}"
        );
    }
}

#[test]
fn random_bytes_never_break_the_checker() {
    run_property("random_bytes", 1500, random_bytes());
}

#[test]
fn random_token_sequences_never_break_the_checker() {
    run_property("token_sequences", 1500, token_sequence());
}

#[test]
fn random_forward_bodies_never_break_the_checker() {
    run_property("forward_bodies", 1500, token_body());
}

#[test]
fn mutated_examples_never_break_the_checker() {
    run_property("mutated_examples", 2500, mutated_corpus());
}

// This property finds the integer overflows that `tests/robustness.rs`
// (`integer_overflow_in_constant_arithmetic`) pins: `i64::MIN / -1` and `i64::MIN % -1` in
// `check::operators`, and slice steps near i64's limits in `check::indexing`.
#[test]
fn extreme_integers_never_break_the_checker() {
    run_property("extreme_integers", 600, extreme_integers());
}
