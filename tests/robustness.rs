//! Robustness: no input makes the compiler panic, hang, overflow its stack or allocate without
//! bound. Every case asserts the diagnostic it expects, not merely "no panic".
//!
//! Each case runs in a child process: this test binary, re-executed with the case's name as the
//! test filter and `MODELC_ROBUSTNESS_CASE` set. In the child the compiler runs through
//! `check_file` on a thread with an 8 MiB stack ([`STACK`]), far below the CLI's 512 MiB, so the
//! parser's nesting and chain limits are what keeps it safe. The parent kills the child at the
//! case's deadline, so a hang fails the case instead of the whole run, and a stack overflow or
//! an abort fails only its own case, with the child's stderr in the failure message.
//!
//! A counting global allocator records the peak of live heap bytes and the largest single
//! allocation in the child; cases assert both, which proves that a declared 10^12-element tensor
//! is never materialized.
//!
//! A few cases also run the `modelc` binary and assert exit code 1, the diagnostic code in
//! stderr, and no panic message.

use modelc_compiler::check::modules::MemoryLoader;
use modelc_compiler::check::{check_file, CheckOptions, CheckResult};
use modelc_compiler::diag::codes;
use modelc_compiler::diag::render::render;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Allocation accounting

/// `System`, counting live bytes, their peak and the largest single request.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Running a case in a child process

/// The compiler thread's stack in a child: a common default, 64 times smaller than the CLI's.
const STACK: usize = 8 * MIB;
const CASE_ENV: &str = "MODELC_ROBUSTNESS_CASE";
const DONE_MARKER: &str = "robustness-case-finished:";

/// How long a case may take. Debug builds on a loaded machine are slow; these are generous.
const QUICK: Duration = Duration::from_secs(30);
const SLOW: Duration = Duration::from_secs(90);

struct Limits {
    deadline: Duration,
    /// Most live heap bytes at any moment of the case, in the child.
    peak: usize,
    /// Largest single allocation.
    largest: usize,
}

const DEFAULT_LIMITS: Limits = Limits {
    deadline: QUICK,
    peak: 512 * MIB,
    largest: 128 * MIB,
};

/// Runs `body` as the case `name` (the test function's name) in a child process; see the module
/// documentation. In the child this runs `body` on an [`STACK`]-sized thread.
fn isolated(name: &str, limits: Limits, body: impl FnOnce() + Send + 'static) {
    match std::env::var(CASE_ENV) {
        Ok(case) if case == name => run_in_child(name, &limits, body),
        // Another case's child that the filter let through: not ours to run.
        Ok(_) => {}
        Err(_) => run_child(name, &limits),
    }
}

fn run_in_child(name: &str, limits: &Limits, body: impl FnOnce() + Send + 'static) {
    let live_before = LIVE.load(Ordering::Relaxed);
    PEAK.store(live_before, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    let worker = std::thread::Builder::new()
        .name(format!("case-{name}"))
        .stack_size(STACK)
        .spawn(body)
        .expect("spawn the case thread");
    if let Err(payload) = worker.join() {
        std::panic::resume_unwind(payload);
    }
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(live_before);
    let largest = LARGEST.load(Ordering::Relaxed);
    eprintln!(
        "case {name}: peak heap {} MiB, largest allocation {} MiB",
        peak / MIB,
        largest / MIB
    );
    assert!(
        peak <= limits.peak,
        "case {name}: peak heap {peak} bytes exceeds the limit of {} bytes",
        limits.peak
    );
    assert!(
        largest <= limits.largest,
        "case {name}: an allocation of {largest} bytes exceeds the limit of {} bytes",
        limits.largest
    );
    println!("{DONE_MARKER}{name}");
}

/// Output of a child process that was waited for with a deadline.
struct Finished {
    /// `None` when it was killed at the deadline.
    status: Option<std::process::ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `command` with piped output, killing it at `deadline`.
fn run_with_deadline(command: &mut Command, deadline: Duration) -> Finished {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child process");
    // Drain both pipes on their own threads so a chatty child cannot block on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break Some(status);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// Keeps the end of a long text, which is where a panic message or backtrace is.
fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn run_child(name: &str, limits: &Limits) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let finished = run_with_deadline(
        Command::new(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CASE_ENV, name)
            .env("RUST_BACKTRACE", "1"),
        limits.deadline,
    );
    let report = format!(
        "--- child stdout (tail) ---\n{}\n--- child stderr (tail) ---\n{}",
        tail(&finished.stdout, 4000),
        tail(&finished.stderr, 8000)
    );
    let Some(status) = finished.status else {
        panic!(
            "case {name}: HANG: still running after {:?}, killed\n{report}",
            limits.deadline
        );
    };
    assert!(
        status.success(),
        "case {name}: child process failed ({status}) after {:?}\n{report}",
        finished.elapsed
    );
    assert!(
        finished.stdout.contains(&format!("{DONE_MARKER}{name}")),
        "case {name}: the child did not run the case (is the name the test function's?)\n{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// Checking helpers

fn check_files(name: &str, text: &str, files: &[(&str, &str)]) -> CheckResult {
    let loader = MemoryLoader(
        files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
    );
    check_file(name, text, &loader, CheckOptions::default())
}

fn check(text: &str) -> CheckResult {
    check_files("main.model", text, &[])
}

fn codes_of(result: &CheckResult) -> Vec<&'static str> {
    result.diagnostics.iter().map(|d| d.code).collect()
}

/// Every diagnostic has a registered code and its primary span, if any, lies in a known file
/// (and within that file's text). Rendering must not panic either; it is skipped for very
/// large sources, where the renderer would print megabytes.
fn assert_well_formed(result: &CheckResult) {
    let sources = &result.program.sources;
    let total: usize = sources.files().map(|(_, f)| f.text.len()).sum();
    for diagnostic in &result.diagnostics {
        assert!(
            codes::ALL.iter().any(|c| c.code == diagnostic.code),
            "unregistered code `{}`",
            diagnostic.code
        );
        if let Some(span) = diagnostic.primary_span() {
            let file = sources.file_of(span.start);
            assert!(
                file.is_some(),
                "`{}` has a span {span:?} outside every file",
                diagnostic.code
            );
            let file = sources.file(file.unwrap_or_else(|| unreachable!()));
            assert!(
                span.end as usize <= file.base as usize + file.text.len(),
                "`{}` has a span {span:?} running past the end of `{}`",
                diagnostic.code,
                file.name
            );
        }
    }
    if total < MIB {
        for diagnostic in result.diagnostics.iter().take(50) {
            let _ = render(diagnostic, sources, false);
        }
    }
}

/// Asserts that `code` is among the diagnostics (and that they are well formed).
fn assert_reports(result: &CheckResult, code: &str) {
    assert_well_formed(result);
    let codes = codes_of(result);
    assert!(
        codes.contains(&code),
        "expected a `{code}` diagnostic, got {codes:?}"
    );
}

fn assert_clean(result: &CheckResult) {
    assert_well_formed(result);
    let messages: Vec<String> = result
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    assert!(
        messages.is_empty(),
        "expected no diagnostics, got {messages:#?}"
    );
}

/// A model whose forward body is `body`.
fn model_with_body(body: &str) -> String {
    format!("model M {{\n    forward(x: f32[B, 4]) {{\n        {body}\n    }}\n}}\n")
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Valid UTF-8 garbage: ASCII, the language's punctuation, whitespace and arbitrary scalars.
fn garbage(rng: &mut Rng, chars: usize) -> String {
    let mut text = String::with_capacity(chars * 2);
    while text.chars().count() < chars {
        let c = match rng.below(6) {
            0 => char::from(b' ' + rng.below(95) as u8),
            1 => ['(', ')', '[', ']', '{', '}', '"', '#', '=', '|', '*', '\\'][rng.below(12)],
            2 => [' ', '\n', '\t', '\r'][rng.below(4)],
            3 => char::from_u32(rng.next() as u32 % 0x11_0000).unwrap_or('\u{fffd}'),
            4 => char::from_u32(0x80 + rng.below(0x780) as u32).unwrap_or('é'),
            _ => char::from(b'a' + rng.below(26) as u8),
        };
        text.push(c);
    }
    text
}

const KEYWORDS: &[&str] = &[
    "use", "layer", "model", "fn", "param", "forward", "let", "if", "else", "scan", "in", "along",
    "with", "yield", "train", "compress", "sweep", "true", "false", "and", "or", "not", "reverse",
];
const PUNCTUATION: &[&str] = &[
    "+", "-", "*", "/", "%", "@", "**", "==", "!=", "<", "<=", ">", ">=", "..", "...", "|>", "|",
    "->", ":", ",", ".", "=", "_", "#", "#=", "=#", "\"", "\\", "\n",
];
const BRACKETS: &[&str] = &["(", ")", "[", "]", "{", "}"];
const WORDS: &[&str] = &[
    "x", "B", "f32", "i64", "Linear", "relu", "zeros", "M", "std", "nn", "int", "sum",
];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "4",
    "2.5",
    "1e3",
    "1_000",
    "9223372036854775807",
    "-1",
];

/// Random grammar tokens separated by spaces; brackets only when `brackets` is set.
fn random_tokens(rng: &mut Rng, bytes: usize, brackets: bool) -> String {
    let mut text = String::with_capacity(bytes + 32);
    while text.len() < bytes {
        let token = match rng.below(if brackets { 5 } else { 4 }) {
            0 => rng.pick(KEYWORDS),
            1 => rng.pick(PUNCTUATION),
            2 => rng.pick(WORDS),
            3 => rng.pick(NUMBERS),
            _ => rng.pick(BRACKETS),
        };
        // A single line: newlines from the punctuation set become spaces.
        text.push_str(if token == "\n" { " " } else { token });
        text.push(' ');
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The CLI

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modelc-robustness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Runs `modelc <args...> <file>` on `contents`; returns (exit code, stderr).
fn cli(args: &[&str], file_name: &str, contents: &[u8], deadline: Duration) -> (i32, String) {
    let path = scratch_dir().join(file_name);
    std::fs::write(&path, contents).expect("write the input file");
    let finished = run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_modelc"))
            .arg("--color")
            .arg("never")
            .args(args)
            .arg(&path),
        deadline,
    );
    let _ = std::fs::remove_file(&path);
    let Some(status) = finished.status else {
        panic!(
            "HANG: `modelc {}` on {file_name} still ran after {deadline:?}",
            args.join(" ")
        );
    };
    (status.code().unwrap_or(-1), finished.stderr)
}

/// Asserts a clean failure of the CLI: exit code 1, `code` in stderr, no panic.
fn assert_cli_reports(
    args: &[&str],
    file_name: &str,
    contents: &[u8],
    code: &str,
    deadline: Duration,
) {
    let (exit, stderr) = cli(args, file_name, contents, deadline);
    let excerpt = tail(&stderr, 4000);
    assert!(!stderr.contains("panicked"), "modelc panicked:\n{excerpt}");
    assert!(
        !stderr.contains("internal compiler error"),
        "modelc had an internal error:\n{excerpt}"
    );
    assert!(
        !stderr.contains("overflowed its stack"),
        "modelc overflowed its stack:\n{excerpt}"
    );
    assert_eq!(
        exit,
        1,
        "exit code of `modelc {}`; stderr:\n{excerpt}",
        args.join(" ")
    );
    assert!(
        stderr.contains(code),
        "expected `{code}` in stderr:\n{excerpt}"
    );
}

fn cli_path_exists() -> bool {
    Path::new(env!("CARGO_BIN_EXE_modelc")).exists()
}

// ---------------------------------------------------------------------------------------------
// Degenerate files

#[test]
fn empty_file() {
    isolated("empty_file", DEFAULT_LIMITS, || {
        assert_clean(&check(""));
        assert_clean(&check("\n\n   \t\r\n"));
        assert_clean(&check("# only a comment"));
        assert_clean(&check("#= only a block comment =#"));
    });
}

#[test]
fn empty_file_cli() {
    assert!(cli_path_exists());
    assert_cli_reports(&["run"], "empty.model", b"", "no-model", QUICK);
    assert_cli_reports(&["build"], "empty.model", b"", "no-model", QUICK);
    let (exit, stderr) = cli(&["check"], "empty.model", b"", QUICK);
    assert_eq!(
        exit, 0,
        "`modelc check` accepts an empty file; stderr:\n{stderr}"
    );
}

#[test]
fn random_utf8_garbage() {
    isolated("random_utf8_garbage", DEFAULT_LIMITS, || {
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let chars = 2000 + rng.below(20_000);
            let text = garbage(&mut rng, chars);
            let result = check(&text);
            assert_well_formed(&result);
            assert!(
                !result.diagnostics.is_empty(),
                "seed {seed}: garbage checked clean"
            );
            // Garbage in the middle of a valid file, too.
            let valid = include_str!("../examples/lenet.model");
            let cut = valid.len() / 2;
            let cut = (cut..valid.len())
                .find(|&i| valid.is_char_boundary(i))
                .unwrap_or(cut);
            let mixed = format!("{}{}{}", &valid[..cut], text, &valid[cut..]);
            let result = check(&mixed);
            assert_well_formed(&result);
            assert!(
                !result.diagnostics.is_empty(),
                "seed {seed}: garbage inside lenet checked clean"
            );
        }
    });
}

#[test]
fn random_garbage_cli() {
    let mut rng = Rng(0xdead_beef);
    let text = garbage(&mut rng, 50_000);
    let (exit, stderr) = cli(&["check"], "garbage.model", text.as_bytes(), QUICK);
    assert!(
        !stderr.contains("panicked"),
        "modelc panicked:\n{}",
        tail(&stderr, 4000)
    );
    assert_eq!(exit, 1, "stderr:\n{}", tail(&stderr, 4000));
    assert!(
        stderr.contains("syntax-error")
            || stderr.contains("nesting-too-deep")
            || stderr.contains("unterminated")
    );
}

#[test]
fn invalid_utf8_cli() {
    let mut bytes = b"model M {\n    forward(x: f32[B, 4]) { x }\n}\n".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80]);
    assert_cli_reports(&["check"], "invalid.model", &bytes, "invalid-utf8", QUICK);
    assert_cli_reports(&["run"], "invalid.model", &bytes, "invalid-utf8", QUICK);
    // A truncated multi-byte sequence at the very end.
    assert_cli_reports(
        &["check"],
        "truncated.model",
        "layer Ä"
            .as_bytes()
            .split_last()
            .map(|(_, rest)| rest)
            .unwrap_or_default(),
        "invalid-utf8",
        QUICK,
    );
}

// ---------------------------------------------------------------------------------------------
// Huge inputs

const TEN_MB: usize = 10 * 1000 * 1000;

/// `model M { forward(x: f32[B, 4]) { x + x + x ... }}` on one line of about 10 MB.
fn ten_megabyte_chain() -> String {
    let head = "model M { forward(x: f32[B, 4]) { x";
    let mut text = String::with_capacity(TEN_MB + 64);
    text.push_str(head);
    while text.len() < TEN_MB {
        text.push_str(" + x");
    }
    text.push_str(" }}");
    text
}

const HUGE_LIMITS: Limits = Limits {
    deadline: SLOW,
    peak: 4096 * MIB,
    largest: 1024 * MIB,
};

#[test]
fn ten_megabyte_operator_chain() {
    isolated("ten_megabyte_operator_chain", HUGE_LIMITS, || {
        let result = check(&ten_megabyte_chain());
        assert_reports(&result, "expression-too-long");
    });
}

#[test]
fn ten_megabyte_random_tokens() {
    isolated("ten_megabyte_random_tokens", HUGE_LIMITS, || {
        let mut rng = Rng(7);
        // With brackets: their random walk nests far deeper than the limit.
        let result = check(&random_tokens(&mut rng, TEN_MB, true));
        assert_reports(&result, "nesting-too-deep");
        // Without brackets, inside a forward body: the grammar itself must stop quickly.
        let body = random_tokens(&mut rng, TEN_MB, false);
        let result = check(&model_with_body(&body));
        assert_well_formed(&result);
        assert!(!result.diagnostics.is_empty());
    });
}

#[test]
fn ten_megabyte_chain_cli() {
    assert_cli_reports(
        &["check"],
        "chain.model",
        ten_megabyte_chain().as_bytes(),
        "expression-too-long",
        SLOW,
    );
}

// ---------------------------------------------------------------------------------------------
// Nesting and chain limits (the pre-scan and the parser)

#[test]
fn nested_parentheses() {
    isolated("nested_parentheses", DEFAULT_LIMITS, || {
        let n = 10_000;
        let parens = format!("{}x{}", "(".repeat(n), ")".repeat(n));
        assert_reports(&check(&model_with_body(&parens)), "nesting-too-deep");
        let lists = format!("{}x{}", "[".repeat(n), "]".repeat(n));
        assert_reports(&check(&model_with_body(&lists)), "nesting-too-deep");
        let blocks = format!("{}x{}", "if true {".repeat(n), "}".repeat(n));
        assert_reports(&check(&model_with_body(&blocks)), "nesting-too-deep");
        let calls = format!("{}x{}", "relu(".repeat(n), ")".repeat(n));
        assert_reports(&check(&model_with_body(&calls)), "nesting-too-deep");
        let types = format!("fn f(x: {}f32[B]{}) {{ x }}", "(".repeat(n), ")".repeat(n));
        assert_reports(&check(&types), "nesting-too-deep");
        let patterns = format!(
            "fn f(x) {{ let {}a{} = x\n a }}",
            "(".repeat(n),
            ")".repeat(n)
        );
        assert_reports(&check(&patterns), "nesting-too-deep");
        // Never closed, at the top level and inside an item.
        assert_reports(&check(&"(".repeat(n)), "nesting-too-deep");
        assert_reports(
            &check(&format!("fn f() {{ {}", "{[(".repeat(n))),
            "nesting-too-deep",
        );
    });
}

#[test]
fn nested_parentheses_cli() {
    let n = 10_000;
    let text = model_with_body(&format!("{}x{}", "(".repeat(n), ")".repeat(n)));
    assert_cli_reports(
        &["check"],
        "parens.model",
        text.as_bytes(),
        "nesting-too-deep",
        QUICK,
    );
}

#[test]
fn long_if_chains() {
    isolated("long_if_chains", DEFAULT_LIMITS, || {
        let n = 10_000;
        // `if c { x } else if c { x } else if ...`: no bracket nesting, only the if chain.
        let else_ifs = format!("{} {{ x }}", "if true { x } else ".repeat(n) + "if true");
        assert_reports(&check(&model_with_body(&else_ifs)), "expression-too-long");
        // `if if if ... true { true } { true } ... { x }`: ifs nested in conditions.
        let conditions = format!(
            "{}true{} {{ x }}",
            "if ".repeat(n),
            " { true }".repeat(n - 1)
        );
        assert_reports(&check(&model_with_body(&conditions)), "expression-too-long");
        // Nested in blocks: the brackets trip first.
        let blocks = format!("{}x{}", "if true { ".repeat(n), " }".repeat(n));
        assert_reports(&check(&model_with_body(&blocks)), "nesting-too-deep");
        // `scan` sequences nest without brackets, too.
        let scans = format!("{}x{}", "scan s in ".repeat(n), " { s }".repeat(n));
        assert_reports(&check(&model_with_body(&scans)), "expression-too-long");
    });
}

#[test]
fn long_lambda_chains() {
    isolated("long_lambda_chains", DEFAULT_LIMITS, || {
        let n = 10_000;
        let lambdas = format!("let f = {}x\n f", "|a| ".repeat(n));
        assert_reports(&check(&model_with_body(&lambdas)), "expression-too-long");
        let no_params = format!("let f = {}x\n f", "|| ".repeat(n));
        assert_reports(&check(&model_with_body(&no_params)), "expression-too-long");
    });
}

#[test]
fn long_power_chains() {
    isolated("long_power_chains", DEFAULT_LIMITS, || {
        let n = 10_000;
        let powers = format!("x{}", " ** x".repeat(n));
        assert_reports(&check(&model_with_body(&powers)), "expression-too-long");
        let negated = format!("x{}", " ** -x".repeat(n));
        assert_reports(&check(&model_with_body(&negated)), "expression-too-long");
    });
}

#[test]
fn long_operator_chains() {
    isolated("long_operator_chains", DEFAULT_LIMITS, || {
        let n = 10_000;
        for operator in [" + ", " * ", " |> relu", " and ", " or ", " @ "] {
            let chain = if operator.contains("relu") {
                format!("x{}", operator.repeat(n))
            } else {
                format!("x{}", format!("{operator}x").repeat(n))
            };
            assert_reports(&check(&model_with_body(&chain)), "expression-too-long");
        }
        let negations = format!("{}x", "- ".repeat(n));
        assert_reports(&check(&model_with_body(&negations)), "expression-too-long");
        let nots = format!("{}true", "not ".repeat(n));
        assert_reports(&check(&model_with_body(&nots)), "expression-too-long");
        let members = format!("x{}", ".T".repeat(n));
        assert_reports(&check(&model_with_body(&members)), "expression-too-long");
        let calls = format!("relu{}", "(x)".repeat(n));
        assert_reports(&check(&model_with_body(&calls)), "expression-too-long");
        let indexes = format!("x{}", "[0]".repeat(n));
        assert_reports(&check(&model_with_body(&indexes)), "expression-too-long");
    });
}

#[test]
fn long_chains_cli() {
    let text = model_with_body(&format!("x{}", " ** x".repeat(10_000)));
    assert_cli_reports(
        &["check"],
        "pow.model",
        text.as_bytes(),
        "expression-too-long",
        QUICK,
    );
    let text = model_with_body(&format!("let f = {}x\n f", "|a| ".repeat(10_000)));
    assert_cli_reports(
        &["check"],
        "lambda.model",
        text.as_bytes(),
        "expression-too-long",
        QUICK,
    );
}

// Inputs just inside the limits are parsed, built into ASTs and elaborated: the deepest trees
// the parser accepts must not overflow an 8 MiB stack either.

#[test]
fn deepest_accepted_brackets() {
    isolated("deepest_accepted_brackets", DEFAULT_LIMITS, || {
        // 60 nested parentheses (the limit is 64, and the model and forward take two).
        let parens = format!("{}x{}", "(".repeat(60), ")".repeat(60));
        assert_clean(&check(&model_with_body(&parens)));
        // Each level a chain of 255 operands whose first operand is the next level.
        let mut expr = "x".to_string();
        for _ in 0..60 {
            expr = format!("({expr}{})", " + x".repeat(254));
        }
        let result = check(&model_with_body(&expr));
        assert_clean(&result);
    });
}

#[test]
fn deepest_accepted_right_recursion() {
    isolated("deepest_accepted_right_recursion", DEFAULT_LIMITS, || {
        let n = 990;
        let powers = format!("x{}", " ** 1.0".repeat(n));
        assert_clean(&check(&model_with_body(&powers)));
        let else_ifs = format!(
            "{} {{ x }} else {{ x }}",
            "if false { x } else ".repeat(n) + "if true"
        );
        assert_clean(&check(&model_with_body(&else_ifs)));
        let conditions = format!(
            "{}true{} {{ x }} else {{ x }}",
            "if ".repeat(n),
            " { true } else { true }".repeat(n - 1)
        );
        assert_clean(&check(&model_with_body(&conditions)));
        // Lambdas count twice (two `|`).
        let lambdas = format!(
            "let f = {}x\n f{}",
            "|a| ".repeat(n / 2),
            "(1)".repeat(n / 2)
        );
        assert_clean(&check(&model_with_body(&lambdas)));
    });
}

// ---------------------------------------------------------------------------------------------
// Lexical errors

#[test]
fn unterminated_comment_and_string() {
    isolated("unterminated_comment_and_string", DEFAULT_LIMITS, || {
        let comment =
            "model M {\n    forward(x: f32[B, 4]) { x }\n}\n#= never closed\nfn f(x) { x }\n";
        assert_reports(&check(comment), "unterminated-comment");
        assert_reports(&check("#="), "unterminated-comment");
        assert_reports(&check("#=#"), "unterminated-comment");
        let string = "fn f(x) {\n    let s = \"never closed\n    x\n}\n";
        assert_reports(&check(string), "unterminated-string");
        assert_reports(&check("\""), "unterminated-string");
        assert_reports(&check("fn f() { \"\\"), "unterminated-string");
        assert_reports(&check("fn f() { \"é\\é"), "unterminated-string");
        // A long unterminated string is not a hang, either.
        let long = format!("fn f() {{ \"{}", "a\\\"".repeat(1_000_000));
        assert_reports(&check(&long), "unterminated-string");
    });
}

#[test]
fn unterminated_comment_cli() {
    assert_cli_reports(
        &["check"],
        "comment.model",
        b"#= no end",
        "unterminated-comment",
        QUICK,
    );
    assert_cli_reports(
        &["check"],
        "string.model",
        b"fn f() { \"no end",
        "unterminated-string",
        QUICK,
    );
}

#[test]
fn invalid_numbers() {
    isolated("invalid_numbers", DEFAULT_LIMITS, || {
        assert_reports(
            &check(&model_with_body("x * 99999999999999999999")),
            "invalid-number",
        );
        assert_reports(
            &check(&model_with_body("x * 9223372036854775808")),
            "invalid-number",
        );
        assert_reports(
            &check(&model_with_body(&format!("x * {}", "9".repeat(100_000)))),
            "invalid-number",
        );
        assert_reports(&check(&model_with_body("x * 1e999")), "invalid-number");
        assert_reports(
            &check("layer L { param w: f32[99999999999999999999] }"),
            "invalid-number",
        );
        // The largest i64 is fine as a literal.
        let result = check(&model_with_body("let n = 9223372036854775807\n x"));
        assert_clean(&result);
    });
}

// ---------------------------------------------------------------------------------------------
// Recursion through items

#[test]
fn recursive_layers_and_functions() {
    isolated("recursive_layers_and_functions", DEFAULT_LIMITS, || {
        let itself = "layer L {\n    inner = L()\n    forward(x) { inner(x) }\n}\nmodel M {\n    l = L()\n    forward(x: f32[B, 4]) { l(x) }\n}\n";
        assert_reports(&check(itself), "recursive-layer");
        // Also when no model uses it (checked standalone).
        assert_reports(
            &check("layer L {\n    inner = L()\n    forward(x) { inner(x) }\n}\n"),
            "recursive-layer",
        );
        let mutual = "layer A {\n    b = B()\n    forward(x) { b(x) }\n}\nlayer B {\n    a = A()\n    forward(x) { a(x) }\n}\nmodel M {\n    a = A()\n    forward(x: f32[B, 4]) { a(x) }\n}\n";
        assert_reports(&check(mutual), "recursive-layer");
        let function = "fn f(x) { f(x) }\n".to_string() + &model_with_body("f(x)");
        assert_reports(&check(&function), "recursive-layer");
        let mutual_functions =
            "fn f(x) { g(x) }\nfn g(x) { f(x) }\n".to_string() + &model_with_body("f(x)");
        assert_reports(&check(&mutual_functions), "recursive-layer");
        // Recursion through a default argument and through a pipe.
        let default = "fn f(x, y = f(1)) { x }\n".to_string() + &model_with_body("f(x)");
        assert_reports(&check(&default), "recursive-layer");
        let piped = "fn f(x) { x |> f }\n".to_string() + &model_with_body("x |> f");
        assert_reports(&check(&piped), "recursive-layer");
        // Self-application of a closure: the call depth limit stops it.
        let omega = model_with_body("let w = |f| f(f)\n w(w)");
        assert_reports(&check(&omega), "recursive-layer");
    });
}

/// `layer A0 { a = A1() ... }`, ..., `layer A{n}`: a chain longer than the depth limit.
fn layer_chain(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "layer A{i} {{\n    next = A{}()\n    forward(x) {{ next(x) }}\n}}\n",
            i + 1
        ));
    }
    text.push_str(&format!("layer A{n} {{\n    forward(x) {{ x }}\n}}\n"));
    text.push_str("model M {\n    a = A0()\n    forward(x: f32[B, 4]) { a(x) }\n}\n");
    text
}

#[test]
fn deep_layer_and_function_chains() {
    isolated("deep_layer_and_function_chains", DEFAULT_LIMITS, || {
        assert_reports(&check(&layer_chain(100)), "recursive-layer");
        assert_reports(&check(&layer_chain(1000)), "recursive-layer");
        // A chain within the limit checks clean.
        assert_clean(&check(&layer_chain(40)));
        let mut functions = String::new();
        for i in 0..1000 {
            functions.push_str(&format!("fn f{i}(x) {{ f{}(x) }}\n", i + 1));
        }
        functions.push_str("fn f1000(x) { x }\n");
        functions.push_str(&model_with_body("f0(x)"));
        assert_reports(&check(&functions), "recursive-layer");
    });
}

#[test]
fn deep_layer_chain_cli() {
    assert_cli_reports(
        &["check"],
        "chain.model",
        layer_chain(100).as_bytes(),
        "recursive-layer",
        QUICK,
    );
}

// ---------------------------------------------------------------------------------------------
// Imports

#[test]
fn import_cycles() {
    isolated("import_cycles", DEFAULT_LIMITS, || {
        let a = "use b.{B}\nlayer A {\n    forward(x) { x }\n}\n";
        let b = "use c.{C}\nlayer B {\n    forward(x) { x }\n}\n";
        let c = "use a.{A}\nlayer C {\n    forward(x) { x }\n}\n";
        let result = check_files(
            "a.model",
            a,
            &[("a.model", a), ("b.model", b), ("c.model", c)],
        );
        assert_reports(&result, "import-cycle");
        // Entering the cycle from outside it.
        let main = "use a.{A}\nmodel M {\n    a = A()\n    forward(x: f32[B, 4]) { a(x) }\n}\n";
        let result = check_files(
            "main.model",
            main,
            &[("a.model", a), ("b.model", b), ("c.model", c)],
        );
        assert_reports(&result, "import-cycle");
        // A file importing itself, by glob and by name, and in a subfolder.
        let own = "use own.*\nlayer L {\n    forward(x) { x }\n}\n";
        assert_reports(
            &check_files("own.model", own, &[("own.model", own)]),
            "import-cycle",
        );
        let own = "use own.{L}\nlayer L {\n    forward(x) { x }\n}\n";
        assert_reports(
            &check_files("own.model", own, &[("own.model", own)]),
            "import-cycle",
        );
        let nested = "use own.{L}\nlayer L {\n    forward(x) { x }\n}\n";
        assert_reports(
            &check_files("dir/own.model", nested, &[("dir/own.model", nested)]),
            "import-cycle",
        );
    });
}

#[test]
fn many_imports() {
    isolated("many_imports", DEFAULT_LIMITS, || {
        // A chain of 500 modules, each importing the next: deep loading recursion.
        let n = 500;
        let files: Vec<(String, String)> = (0..n)
            .map(|i| {
                let text = if i + 1 < n {
                    format!(
                        "use m{}.{{L{}}}\nlayer L{i} {{\n    forward(x) {{ x }}\n}}\n",
                        i + 1,
                        i + 1
                    )
                } else {
                    format!("layer L{i} {{\n    forward(x) {{ x }}\n}}\n")
                };
                (format!("m{i}.model"), text)
            })
            .collect();
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let result = check_files("m0.model", &files[0].1, &borrowed);
        assert_clean(&result);
        // And one whose last module closes the loop.
        let mut files = files;
        files[n - 1].1 = format!(
            "use m0.{{L0}}\nlayer L{} {{\n    forward(x) {{ x }}\n}}\n",
            n - 1
        );
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        assert_reports(
            &check_files("m0.model", &files[0].1, &borrowed),
            "import-cycle",
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Sizes

#[test]
fn dim_overflow() {
    isolated("dim_overflow", DEFAULT_LIMITS, || {
        // A product of literal dims that overflows in the dim arithmetic.
        let product =
            "layer L {\n    param w: f32[4611686018427387904 * 4, 2]\n    forward(x) { x }\n}\n";
        assert_reports(&check(product), "dim-overflow");
        let sum = "layer L {\n    param w: f32[9223372036854775807 + 1]\n    forward(x) { x }\n}\n";
        assert_reports(&check(sum), "dim-overflow");
        // Symbolic dims: the overflow is in the dim polynomial of a model input.
        let symbolic =
            model_with_body("reshape(x, [B * 9223372036854775807 * 9223372036854775807])");
        assert_reports(&check(&symbolic), "dim-overflow");
        let input = "model M {\n    forward(x: f32[B, 9223372036854775807 * 2]) { x }\n}\n";
        assert_reports(&check(input), "dim-overflow");
    });
}

#[test]
fn huge_literal_dims() {
    isolated(
        "huge_literal_dims",
        Limits {
            peak: 64 * MIB,
            largest: 16 * MIB,
            ..DEFAULT_LIMITS
        },
        || {
            // Each dim fits in an i64 but the element count does not: reported as too large.
            let param =
                "layer L {\n    param w: f32[9223372036854775807, 2]\n    forward(x) { x }\n}\n";
            let result = check(param);
            assert_well_formed(&result);
            let codes = codes_of(&result);
            assert!(
                codes.contains(&"dim-overflow") || codes.contains(&"tensor-too-large"),
                "expected dim-overflow or tensor-too-large, got {codes:?}"
            );
        },
    );
}

/// Tensors of 10^12 elements: the checker rejects them without allocating anything like 4 TB.
/// The child's allocation limits below are what prove it.
#[test]
fn tensor_too_large() {
    isolated(
        "tensor_too_large",
        Limits {
            peak: 64 * MIB,
            largest: 16 * MIB,
            ..DEFAULT_LIMITS
        },
        || {
            let param = "model M {\n    param w: f32[1000000, 1000000]\n    forward(x: f32[B, 4]) { x }\n}\n";
            assert_reports(&check(param), "tensor-too-large");
            let standalone = "layer L {\n    param w: f32[1000000, 1000000] = normal()\n    forward(x) { x }\n}\n";
            assert_reports(&check(standalone), "tensor-too-large");
            assert_reports(
                &check(&model_with_body("zeros(1000000, 1000000)")),
                "tensor-too-large",
            );
            assert_reports(
                &check(&model_with_body("zeros([1000000, 1000000])")),
                "tensor-too-large",
            );
            assert_reports(
                &check(&model_with_body("ones(1000000, 1000000) + x[0, 0]")),
                "tensor-too-large",
            );
            let input = "model M {\n    forward(x: f32[1000000, 1000000]) { x }\n}\n";
            assert_reports(&check(input), "tensor-too-large");
            // Reached through a layer's hyper-parameters.
            let layer = "use std.nn.Linear\nmodel M {\n    fc = Linear(1000000, 1000000)\n    forward(x: f32[B, 1000000]) { fc(x) }\n}\n";
            assert_reports(&check(layer), "tensor-too-large");
            // Broadcasting two legal tensors into an illegal one.
            let broadcast = model_with_body("zeros(1000000, 1) + zeros(1, 1000000)");
            assert_reports(&check(&broadcast), "tensor-too-large");
        },
    );
}

#[test]
fn tensor_too_large_cli() {
    // `run` would allocate the params if the checker let them through.
    let text =
        "model M {\n    param w: f32[1000000, 1000000]\n    forward(x: f32[B, 4]) { x }\n}\n";
    assert_cli_reports(
        &["run"],
        "large.model",
        text.as_bytes(),
        "tensor-too-large",
        QUICK,
    );
    let text = model_with_body("zeros(1000000, 1000000)");
    assert_cli_reports(
        &["run"],
        "zeros.model",
        text.as_bytes(),
        "tensor-too-large",
        QUICK,
    );
}

#[test]
fn long_list_literal() {
    isolated("long_list_literal", DEFAULT_LIMITS, || {
        let n = 100_000;
        let ints = format!("let xs = [{}]\n x", "1, ".repeat(n));
        assert_clean(&check(&model_with_body(&ints)));
        let tensors = format!("let xs = [{}]\n x", "x, ".repeat(n));
        assert_clean(&check(&model_with_body(&tensors)));
        let tuple = format!("let xs = ({})\n x", "x, ".repeat(n));
        assert_clean(&check(&model_with_body(&tuple)));
        let args = format!("relu(x, {})", "1, ".repeat(n));
        assert_reports(&check(&model_with_body(&args)), "too-many-arguments");
    });
}
