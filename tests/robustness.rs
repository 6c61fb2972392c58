//! Robustness: no input makes the compiler panic, hang, overflow its stack or allocate without
//! bound. Every case asserts the diagnostic it expects, not merely "no panic".
//!
//! Each case runs in a child process: this test binary, re-executed with the case's name as the
//! test filter and `MODELC_ROBUSTNESS_CASE` set. The parent kills the child at the case's
//! deadline, so a hang fails the case instead of the whole run, and a stack overflow or an abort
//! fails only its own case, with the child's stderr in the failure message.
//!
//! In the child the case runs on a thread with an 8 MiB stack ([`STACK`]). `check_file` runs
//! the compiler on a thread of its own with `CHECK_STACK_BYTES` of stack, so most cases call
//! `check_file_here` instead, which runs on the caller's thread: with 8 MiB, far below the
//! CLI's 512 MiB, the parser's nesting and chain limits are what keeps it safe. The deepest
//! inputs the limits accept need more than 8 MiB; their cases say how much.
//!
//! A counting global allocator records the peak of live heap bytes and the largest single
//! allocation in the child; cases assert both, which proves that a declared 10^12-element tensor
//! is never materialized.
//!
//! A few cases also run the `modelc` binary and assert exit code 1, the diagnostic code in
//! stderr, and no panic message.
//!
//! Cases marked "Found by these tests" reproduce a panic, stack overflow or hang that this file
//! found in an earlier compiler; the note says where it was.

use modelc_compiler::check::modules::MemoryLoader;
use modelc_compiler::check::{
    check_file, check_file_here, CheckOptions, CheckResult, CHECK_STACK_BYTES,
};
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

/// The compiler thread's stack in a child unless a case says otherwise: a common default for
/// threads, 64 times smaller than the CLI's 512 MiB.
const STACK: usize = 8 * MIB;
const CASE_ENV: &str = "MODELC_ROBUSTNESS_CASE";
const DONE_MARKER: &str = "robustness-case-finished:";

/// How long a case may take. Debug builds on a loaded machine are slow; these are generous.
const QUICK: Duration = Duration::from_secs(90);
const SLOW: Duration = Duration::from_secs(240);

struct Limits {
    deadline: Duration,
    /// Stack of the thread that runs the case.
    stack: usize,
    /// Most live heap bytes at any moment of the case, in the child.
    peak: usize,
    /// Largest single allocation.
    largest: usize,
}

const DEFAULT_LIMITS: Limits = Limits {
    deadline: QUICK,
    stack: STACK,
    peak: 512 * MIB,
    largest: 128 * MIB,
};

/// Runs `body` as the case `name` (the test function's name) in a child process; see the module
/// documentation. In the child this runs `body` on a thread with `limits.stack` bytes of stack.
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
        .stack_size(limits.stack)
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

/// Checks `text` as `name` with other files available by name, on the calling thread's stack.
fn check_files(name: &str, text: &str, files: &[(&str, &str)]) -> CheckResult {
    let loader = MemoryLoader(
        files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
    );
    check_file_here(name, text, &loader, CheckOptions::default())
}

/// Checks `text` on the calling thread's stack (`check_file_here`).
fn check(text: &str) -> CheckResult {
    check_files("main.model", text, &[])
}

/// Checks `text` through `check_file`, which runs on a thread with a stack of its own.
fn check_on_own_stack(text: &str) -> CheckResult {
    check_file(
        "main.model",
        text,
        &MemoryLoader(Default::default()),
        CheckOptions::default(),
    )
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

/// Random grammar tokens on one line, separated by spaces. With `brackets`, brackets are
/// frequent and comment and string delimiters are left out, so that every bracket counts.
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
        let token = match token {
            "\n" => " ",
            "#" | "#=" | "=#" | "\"" if brackets => "+",
            _ => token,
        };
        text.push_str(token);
        text.push(' ');
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The CLI

/// A fresh directory per call, so CLI cases running in parallel never share a file.
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "modelc-robustness-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Runs `modelc <args...> <file>` on `contents`; returns (exit code, stderr).
fn cli(args: &[&str], file_name: &str, contents: &[u8], deadline: Duration) -> (i32, String) {
    let dir = scratch_dir();
    let path = dir.join(file_name);
    std::fs::write(&path, contents).expect("write the input file");
    let finished = run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_modelc"))
            .arg("--color")
            .arg("never")
            .args(args)
            .arg(&path),
        deadline,
    );
    let _ = std::fs::remove_dir_all(&dir);
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
    assert!(
        cli_path_exists(),
        "the modelc binary is built for integration tests"
    );
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

/// 10 MB inputs. pest builds its whole token queue (40 bytes a token, many tokens an operand)
/// before the parser's chain limit applies, so the 10 MB chain peaks at about 2.7 GB of heap,
/// one allocation of 2.5 GiB; `x+x+...` without spaces takes twice that. These limits record
/// what is measured, not what is desirable: they catch the amplification getting worse.
const HUGE_LIMITS: Limits = Limits {
    deadline: SLOW,
    stack: STACK,
    peak: 4096 * MIB,
    largest: 3072 * MIB,
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
        // Without brackets, at the top level and inside a forward body.
        let tokens = random_tokens(&mut rng, TEN_MB, false);
        let result = check(&tokens);
        assert_well_formed(&result);
        assert!(!result.diagnostics.is_empty());
        let result = check(&model_with_body(&tokens));
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
        // A param condition that is an else-if chain.
        let param = format!(
            "layer L {{\n    param w: f32[4] = zeros() if {}{{ true }}\n}}\n",
            "if true { true } else ".repeat(n)
        );
        assert_reports(&check(&param), "expression-too-long");
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
        for operand in [
            " + x", " * x", " @ x", " - x", " / x", " % x", " |> relu", " and x", " or x",
        ] {
            let chain = format!("x{}", operand.repeat(n));
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
        // Chains in a train block's settings and in a param's dims.
        let train = format!("train M {{\n    epochs = 1{}\n}}\n", " + 1".repeat(n));
        assert_reports(&check(&train), "expression-too-long");
        let dims = format!("layer L {{\n    param w: f32[1{}]\n}}\n", " * 1".repeat(n));
        assert_reports(&check(&dims), "expression-too-long");
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

// Inputs just inside the limits are parsed, built into syntax trees and elaborated, so the
// deepest trees the limits allow decide how much stack the compiler needs: between 32 and
// 64 MiB for the deepest (measured in the test profile), which `check_file`'s own thread
// (`CHECK_STACK_BYTES`) and the CLI's 512 MiB cover. 8 MiB does not: found by these tests, 500
// `if`s nested in conditions or 499 nested lambdas (the pre-scan allows 1000 of either)
// overflowed it in `syntax::parser::Builder::expr` (about 14 frames per level), and 62 levels
// of parentheses each holding a 255-operand chain (a syntax tree 15,800 deep) overflowed it in
// the derived `Clone` of `ast::Expr` (`check::modules::LoadState::build_scope` clones the
// items), before `check_file` had a thread of its own.

/// The deepest expression the limits allow: 62 levels of parentheses (with the model and
/// forward braces that is 64, the limit), each holding the longest chain of each operator kind
/// around the next level: a syntax tree about 110,000 deep.
fn deepest_accepted_expression() -> String {
    let mut expr = "x".to_string();
    for _ in 0..62 {
        let postfix = format!("({expr}){}", ".T".repeat(255));
        let negated = format!("{}{postfix}", "- ".repeat(255));
        let product = format!("{negated}{}", " * x".repeat(255));
        let sum = format!("{product}{}", " + x".repeat(255));
        let conjunction = format!("{sum}{}", " and x".repeat(255));
        let disjunction = format!("{conjunction}{}", " or x".repeat(255));
        expr = format!("{disjunction}{}", " |> relu".repeat(255));
    }
    expr
}

/// The deepest inputs of each kind that the limits accept, with the diagnostics they give
/// (`None`: none).
fn deepest_accepted_inputs() -> Vec<(String, Option<&'static str>)> {
    let n = 999;
    let mut bracket_chains = "x".to_string();
    for _ in 0..62 {
        bracket_chains = format!("({bracket_chains}{})", " + x".repeat(254));
    }
    vec![
        // `.T` makes the operands' shapes differ, which elaboration reports once.
        (deepest_accepted_expression(), Some("broadcast-mismatch")),
        (bracket_chains, None),
        (
            format!(
                "{}true{} {{ x }} else {{ x }}",
                "if ".repeat(n),
                " { true } else { true }".repeat(n - 1)
            ),
            None,
        ),
        (
            format!(
                "{} {{ x }} else {{ x }}",
                "if false { x } else ".repeat(n) + "if true"
            ),
            None,
        ),
        (format!("x{}", " ** 1.0".repeat(n)), None),
        // Two `|` per lambda; a call chain is at most 256 long, so 499 calls take two chains.
        (
            format!(
                "let f = {}x\n let g = f{}\n g{}",
                "|a| ".repeat(499),
                "(1)".repeat(250),
                "(1)".repeat(249)
            ),
            None,
        ),
    ]
}

fn assert_checks_as(result: &CheckResult, expected: Option<&str>) {
    match expected {
        None => assert_clean(result),
        Some(code) => {
            assert_reports(result, code);
            let codes = codes_of(result);
            assert!(
                !codes.contains(&"nesting-too-deep") && !codes.contains(&"expression-too-long"),
                "an input within the limits was rejected: {codes:?}"
            );
        }
    }
}

/// `check_file` from an 8 MiB thread: it runs the compiler on a thread of its own.
#[test]
fn deepest_accepted_inputs_from_an_8_mib_thread() {
    let limits = Limits {
        peak: 1024 * MIB,
        largest: 512 * MIB,
        ..DEFAULT_LIMITS
    };
    isolated(
        "deepest_accepted_inputs_from_an_8_mib_thread",
        limits,
        || {
            for (body, expected) in deepest_accepted_inputs() {
                assert_checks_as(&check_on_own_stack(&model_with_body(&body)), expected);
            }
        },
    );
}

/// `check_file_here` with half of `check_file`'s stack: the margin `check_file` relies on.
#[test]
fn deepest_accepted_inputs_fit_in_half_the_check_stack() {
    let limits = Limits {
        stack: CHECK_STACK_BYTES / 2,
        peak: 1024 * MIB,
        largest: 512 * MIB,
        ..DEFAULT_LIMITS
    };
    isolated(
        "deepest_accepted_inputs_fit_in_half_the_check_stack",
        limits,
        || {
            for (body, expected) in deepest_accepted_inputs() {
                assert_checks_as(&check(&model_with_body(&body)), expected);
            }
        },
    );
}

// `and`, `or` and `not` before a name (`true and false`) were syntax errors until the grammar
// made those tokens atomic; the chains above rely on them.
#[test]
fn keyword_operators_before_a_name() {
    isolated("keyword_operators_before_a_name", DEFAULT_LIMITS, || {
        for body in [
            "let a = true and false\n x",
            "let a = not true\n x",
            "let a = true or false\n x",
            "let a = not not true and not false or true\n x",
        ] {
            assert_clean(&check(&model_with_body(body)));
        }
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
        // One per line, many lines: each is reported.
        let many = "fn f() { \"\n".repeat(1000);
        assert_reports(&check(&many), "unterminated-string");
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
        let digits = format!("x * {}", "9".repeat(100_000));
        assert_reports(&check(&model_with_body(&digits)), "invalid-number");
        assert_reports(&check(&model_with_body("x * 1e999")), "invalid-number");
        assert_reports(
            &check("layer L {\n    param w: f32[99999999999999999999]\n}\n"),
            "invalid-number",
        );
        assert_reports(
            &check("train M {\n    epochs = 99999999999999999999\n}\n"),
            "invalid-number",
        );
        // The largest i64 is fine as a literal. The smallest is not: the literal is its
        // magnitude, which is too large, and `-` applies to it afterwards.
        assert_clean(&check(&model_with_body("let n = 9223372036854775807\n x")));
        let smallest = model_with_body("let n = -9223372036854775808\n x");
        assert_reports(&check(&smallest), "invalid-number");
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
        // Through a list of layers and through `repeat`.
        let listed = "layer L {\n    inner = [L(), L()]\n    forward(x) { x |> inner }\n}\n";
        assert_reports(&check(listed), "recursive-layer");
        let repeated = "layer L {\n    inner = repeat(L(), 3)\n    forward(x) { x |> inner }\n}\n";
        assert_reports(&check(repeated), "recursive-layer");
        let function = "fn f(x) { f(x) }\n".to_string() + &model_with_body("f(x)");
        assert_reports(&check(&function), "recursive-layer");
        let mutual_functions =
            "fn f(x) { g(x) }\nfn g(x) { f(x) }\n".to_string() + &model_with_body("f(x)");
        assert_reports(&check(&mutual_functions), "recursive-layer");
        let piped = "fn f(x) { x |> f }\n".to_string() + &model_with_body("x |> f");
        assert_reports(&check(&piped), "recursive-layer");
        let method = "fn f(x) { x.f() }\n".to_string() + &model_with_body("x.f()");
        assert_reports(&check(&method), "recursive-layer");
        // Self-application of a closure: the call depth limit stops it.
        let omega = model_with_body("let w = |f| f(f)\n w(w)");
        assert_reports(&check(&omega), "recursive-layer");
    });
}

/// A function whose default argument calls the function itself.
const DEFAULT_ARGUMENT_RECURSION: &str =
    "fn f(x, y = f(1)) { x }\nmodel M {\n    forward(x: f32[B, 4]) { f(x) }\n}\n";

// Found by these tests: unbounded recursion, a stack overflow on any stack (the CLI's 512 MiB
// too: it aborted with exit status 134). `Elaborator::call_function` checked for recursion
// against `call_stack`, then evaluated the missing argument's default `f(1)` in `bind_params`
// before pushing `f`, so every nested call passed the check again. `instantiate` (layer
// hyper-parameter defaults) and `call_forward` did the same.
#[test]
fn recursion_through_default_arguments() {
    isolated(
        "recursion_through_default_arguments",
        DEFAULT_LIMITS,
        || {
            assert_reports(&check(DEFAULT_ARGUMENT_RECURSION), "recursive-layer");
            let mutual = "fn f(x, y = g(1)) { x }\nfn g(x, y = f(1)) { x }\n".to_string()
                + &model_with_body("f(x)");
            assert_reports(&check(&mutual), "recursive-layer");
            let layer =
                "fn f(x, y = f(1)) { x }\nlayer L(n: int = f(1)) {\n    forward(x) { x }\n}\n";
            assert_reports(&check(layer), "recursive-layer");
        },
    );
}

// The same input through the CLI, which aborted with "thread has overflowed its stack".
#[test]
fn recursion_through_default_arguments_cli() {
    assert_cli_reports(
        &["check"],
        "default.model",
        DEFAULT_ARGUMENT_RECURSION.as_bytes(),
        "recursive-layer",
        QUICK,
    );
}

/// `layer A0 { next = A1() ... }`, ..., `layer A{n}`: a chain of `n + 1` nested layers.
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
        // Lambdas calling lambdas.
        let mut lambdas = String::from("let g0 = |v| v\n");
        for i in 1..200 {
            lambdas.push_str(&format!("let g{i} = |v| g{}(v)\n", i - 1));
        }
        lambdas.push_str("g199(x)");
        assert_reports(&check(&model_with_body(&lambdas)), "recursive-layer");
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

// Found by these tests: a hang. Functions and closures are inlined at each call, with a depth
// limit but no limit on the total work, so a call tree of depth 64 can have 2^64 leaves.
// Church numerals take two lines: `t = |f| |v| f(f(v))` applied as `t(t)(t)(t)(t)` is 2^65536
// calls of the innermost lambda (`t(t)(t)(t)` took 0.6 s; one more `(t)` ran for ever).
// `fn f{k}(x) { f{k-1}(x) + f{k-1}(x) }` is the plain form: 2^k calls, 2.3 s at k = 18, so
// about 2.5 hours at k = 30.
const CHURCH_NUMERALS: &str = "let t = |f| |v| f(f(v))\n t(t)(t)(t)(t)(|v| v + 1.0)(x)";

fn doubling_functions(k: usize) -> String {
    let mut text = String::from("fn f0(x) { x }\n");
    for i in 1..=k {
        text.push_str(&format!("fn f{i}(x) {{ f{}(x) + f{}(x) }}\n", i - 1, i - 1));
    }
    text + &model_with_body(&format!("f{k}(x)"))
}

// Generous: this detects hangs, not slowness; CI runs tests in parallel on two cores.
const HANG_LIMITS: Limits = Limits {
    deadline: Duration::from_secs(120),
    ..DEFAULT_LIMITS
};

#[test]
fn exponential_closure_calls_are_bounded() {
    isolated("exponential_closure_calls_are_bounded", HANG_LIMITS, || {
        // Through `check_file`: the values such a program builds before the step limit stops
        // it (closures capturing closures, lists of lists) are tens of thousands deep, and
        // dropping them recursively needs more than 8 MiB (16 MiB suffices), so on an 8 MiB
        // stack `check_file_here` overflows in `Drop for Rc<Closure>` (from
        // `Elaborator::call_value`).
        assert_reports(
            &check_on_own_stack(&model_with_body(CHURCH_NUMERALS)),
            "program-too-large",
        );
        let nested_lists =
            "let t = |f| |v| f(f(v))\n let w = |g| [g]\n let h = t(t)(t)(t)(t)(w)(1)\n x";
        assert_reports(
            &check_on_own_stack(&model_with_body(nested_lists)),
            "program-too-large",
        );
        let wrappers =
            "let t = |f| |v| f(f(v))\n let w = |g| |v| g(v)\n let h = t(t)(t)(t)(t)(w)(|v| v)\n h(x)";
        assert_reports(
            &check_on_own_stack(&model_with_body(wrappers)),
            "program-too-large",
        );
        // Three levels of numerals are small enough to check.
        let small = "let t = |f| |v| f(f(v))\n t(t)(t)(|v| v + 1.0)(x)";
        assert_clean(&check(&model_with_body(small)));
    });
}

#[test]
fn exponential_function_calls_are_bounded() {
    isolated(
        "exponential_function_calls_are_bounded",
        HANG_LIMITS,
        || {
            assert_reports(&check(&doubling_functions(30)), "program-too-large");
            assert_reports(&check(&doubling_functions(1000)), "program-too-large");
            // Small call trees are fine.
            assert_clean(&check(&doubling_functions(10)));
        },
    );
}

// Found by these tests: a hang and unbounded memory. `repeat(layer, n)` allows n up to 1024 per
// level, and levels multiply: three nested levels are 1024^3 (10^9) layer instances. Two
// levels (10^6 instances) took about 3.4 s.
#[test]
fn nested_repeat_is_bounded() {
    isolated("nested_repeat_is_bounded", HANG_LIMITS, || {
        let mut text = String::from("layer A3 {\n    forward(x) { x }\n}\n");
        for i in (0..3).rev() {
            text.push_str(&format!(
                "layer A{i} {{\n    h = repeat(A{}(), 1024)\n    forward(x) {{ x |> h }}\n}}\n",
                i + 1
            ));
        }
        text.push_str("model M {\n    a = A0()\n    forward(x: f32[B, 4]) { a(x) }\n}\n");
        assert_reports(&check(&text), "program-too-large");
    });
}

// Found by these tests: quadratic time in the number of diagnostics. `diag::Diagnostics::push`
// dropped repeats by scanning every diagnostic kept so far: 10,000 lines of `use` (40 KB) took
// 0.5 s, 50,000 took 39 s, and 100,000 (500 KB) minutes. Any diagnostic did it: 100,000
// `too-many-arguments` from one call, 50,000 `unknown-name` from one list (over 60 s), 50,000
// `duplicate-definition` (17 s).
#[test]
fn many_diagnostics_take_linear_time() {
    let limits = Limits {
        peak: 1024 * MIB,
        largest: 512 * MIB,
        ..HANG_LIMITS
    };
    isolated("many_diagnostics_take_linear_time", limits, || {
        let n = 100_000;
        let result = check(&"use\n".repeat(n));
        assert_reports(&result, "syntax-error");
        assert_eq!(result.diagnostics.len(), n);
        // Pre-scan errors, one per item.
        let result = check(&"fn \"\n".repeat(n));
        assert_reports(&result, "unterminated-string");
        assert_eq!(result.diagnostics.len(), n);
        let args = model_with_body(&format!("relu(x, {})", "1, ".repeat(n)));
        assert_reports(&check(&args), "too-many-arguments");
        let names: Vec<String> = (0..n / 2).map(|i| format!("a{i}")).collect();
        let unknown = model_with_body(&format!("let l = [{}]\n x", names.join(", ")));
        assert_reports(&check(&unknown), "unknown-name");
        assert_reports(
            &check(&"fn a(x) { x }\n".repeat(n / 2)),
            "duplicate-definition",
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Imports

#[test]
fn import_cycles() {
    isolated("import_cycles", DEFAULT_LIMITS, || {
        let a = "use b.{B}\nlayer A {\n    forward(x) { x }\n}\n";
        let b = "use c.{C}\nlayer B {\n    forward(x) { x }\n}\n";
        let c = "use a.{A}\nlayer C {\n    forward(x) { x }\n}\n";
        let files = [("a.model", a), ("b.model", b), ("c.model", c)];
        assert_reports(&check_files("a.model", a, &files), "import-cycle");
        // Entering the cycle from outside it.
        let main = "use a.{A}\nmodel M {\n    a = A()\n    forward(x: f32[B, 4]) { a(x) }\n}\n";
        assert_reports(&check_files("main.model", main, &files), "import-cycle");
        // A file importing itself, by glob and by name, and in a folder.
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
        assert_reports(
            &check_files("dir/own.model", own, &[("dir/own.model", own)]),
            "import-cycle",
        );
        // Through a folder and back.
        let outer = "use dir.inner.{I}\nlayer O {\n    forward(x) { x }\n}\n";
        let inner = "use outer.{O}\nlayer I {\n    forward(x) { x }\n}\n";
        let files = [
            ("outer.model", outer),
            ("dir/inner.model", inner),
            ("dir/outer.model", outer),
        ];
        let result = check_files("outer.model", outer, &files);
        assert_well_formed(&result);
    });
}

#[test]
fn many_imports() {
    isolated("many_imports", DEFAULT_LIMITS, || {
        // A chain of 500 modules, each importing the next: deep loading recursion.
        let n = 500;
        let mut files: Vec<(String, String)> = (0..n)
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
        assert_clean(&check_files("m0.model", &files[0].1, &borrowed));
        // And one whose last module closes the loop.
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
        // Products and sums of literal dims that overflow in the dim arithmetic.
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

/// Each dim fits in an i64 but their product does not. The element count saturates and the
/// tensor is reported as too large (the brief expected `dim-overflow`; either is a clean
/// rejection, and which one is asserted here).
#[test]
fn element_count_overflow() {
    let limits = Limits {
        peak: 64 * MIB,
        largest: 16 * MIB,
        ..DEFAULT_LIMITS
    };
    isolated("element_count_overflow", limits, || {
        let param =
            "layer L {\n    param w: f32[9223372036854775807, 2]\n    forward(x) { x }\n}\n";
        assert_reports(&check(param), "tensor-too-large");
        let input = "model M {\n    forward(x: f32[B, 9223372036854775807, 9223372036854775807]) { x }\n}\n";
        assert_reports(&check(input), "tensor-too-large");
        let zeros = model_with_body("zeros(9223372036854775807, 9223372036854775807)");
        assert_reports(&check(&zeros), "tensor-too-large");
    });
}

/// Tensors of 10^12 elements: the checker rejects them without allocating anything like 4 TB.
/// The child's allocation limits (64 MiB live at most, no single allocation over 16 MiB) are
/// what prove it.
#[test]
fn tensor_too_large() {
    let limits = Limits {
        peak: 64 * MIB,
        largest: 16 * MIB,
        ..DEFAULT_LIMITS
    };
    isolated("tensor_too_large", limits, || {
        let param =
            "model M {\n    param w: f32[1000000, 1000000]\n    forward(x: f32[B, 4]) { x }\n}\n";
        assert_reports(&check(param), "tensor-too-large");
        let standalone =
            "layer L {\n    param w: f32[1000000, 1000000] = normal()\n    forward(x) { x }\n}\n";
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
    });
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
    // The grammar's token queue for these 300 KB lines is a few hundred MB.
    let limits = Limits {
        peak: 1024 * MIB,
        largest: 512 * MIB,
        ..DEFAULT_LIMITS
    };
    isolated("long_list_literal", limits, || {
        let n = 100_000;
        let ints = format!("let xs = [{}]\n x", "1, ".repeat(n));
        assert_clean(&check(&model_with_body(&ints)));
        let tensors = format!("let xs = [{}]\n x", "x, ".repeat(n));
        assert_clean(&check(&model_with_body(&tensors)));
        let tuple = format!("let xs = ({})\n x", "x, ".repeat(n));
        assert_clean(&check(&model_with_body(&tuple)));
        let nested = format!("let xs = [{}]\n x", "[[1], [2, [3]]], ".repeat(n / 10));
        assert_clean(&check(&model_with_body(&nested)));
        // One extra argument costs one diagnostic, so keep it to a few (see
        // `many_diagnostics_take_linear_time`).
        let args = format!("relu(x, {})", "1, ".repeat(100));
        assert_reports(&check(&model_with_body(&args)), "too-many-arguments");
        let concat = format!("concat([{}], axis = 0)", "x, ".repeat(10_000));
        assert_clean(&check(&model_with_body(&concat)));
    });
}

#[test]
fn many_items() {
    isolated("many_items", DEFAULT_LIMITS, || {
        // 20,000 layers no model uses: each is checked standalone.
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("layer L{i} {{\n    forward(x) {{ x }}\n}}\n"));
        }
        assert_clean(&check(&text));
    });
}

// ---------------------------------------------------------------------------------------------
// Integer edge cases in builtins and operators

/// The smallest i64, which has no literal (its magnitude does not fit).
const I64_MIN: &str = "(-9223372036854775807 - 1)";

/// Runs each `(body, expected code)` as a model's forward body, catching panics so that every
/// case is tried; panics with a summary of the cases that panicked or reported otherwise.
/// `None` expects no diagnostics; `Some("")` expects any diagnostics but no panic.
fn run_table(cases: &[(String, Option<&'static str>)]) {
    let mut failures = Vec::new();
    for (body, expected) in cases {
        let text = model_with_body(body);
        let outcome = std::panic::catch_unwind(|| check(&text));
        let result = match outcome {
            Ok(result) => result,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("PANIC on `{body}`: {message}"));
                continue;
            }
        };
        assert_well_formed(&result);
        let codes = codes_of(&result);
        let fits = match expected {
            None => codes.is_empty(),
            Some("") => true,
            Some(code) => codes.contains(code),
        };
        if !fits {
            failures.push(format!("`{body}`: expected {expected:?}, got {codes:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn integer_edge_cases() {
    isolated("integer_edge_cases", DEFAULT_LIMITS, || {
        let max = "9223372036854775807";
        let min = I64_MIN;
        let image = "reshape(x, [B, 1, 2, 2])";
        let cases: Vec<(String, Option<&'static str>)> = vec![
            (format!("let n = -{min}\n x"), Some("dim-overflow")),
            (format!("let n = {max} + 1\n x"), Some("dim-overflow")),
            (format!("let n = {min} - 1\n x"), Some("dim-overflow")),
            (format!("let n = {max} * 2\n x"), Some("dim-overflow")),
            ("let n = 3 ** 62\n x".to_string(), Some("dim-overflow")),
            (format!("let n = 2 ** {max}\n x"), None),
            (format!("let n = 2 ** {min}\n x"), None),
            ("let n = 1 / 0\n x".to_string(), Some("invalid-dim")),
            ("let n = 1 % 0\n x".to_string(), Some("invalid-dim")),
            (format!("let n = {min} / 1\n x"), None),
            (format!("let n = {min} % 1\n x"), None),
            (format!("x[:, {min}]"), Some("invalid-axis")),
            (format!("x[:, {max}]"), Some("invalid-axis")),
            (format!("x[:, {min}:]"), None),
            (format!("x[:, :{max}]"), None),
            (
                format!("x[:, -{max}:-{max}:-{max}]"),
                Some("invalid-argument"),
            ),
            (format!("x[:, 0..{max}]"), Some("type-mismatch")),
            ("x[:, 0:1e300]".to_string(), Some("invalid-argument")),
            (format!("sum(x, axis = {min})"), Some("invalid-axis")),
            (format!("sum(x, axis = {max})"), Some("invalid-axis")),
            (
                format!("mean(x, axis = [{min}, {max}])"),
                Some("invalid-axis"),
            ),
            (
                format!("concat([x, x], axis = {min})"),
                Some("invalid-axis"),
            ),
            (format!("flatten(x, {max})"), Some("invalid-axis")),
            (format!("flatten(x, {min})"), Some("invalid-axis")),
            (format!("permute(x, [{max}, 0])"), Some("invalid-axis")),
            (format!("transpose(x, {min}, 0)"), Some("invalid-axis")),
            (format!("reshape(x, [{min}])"), Some("invalid-dim")),
            ("reshape(x, [-1, -1])".to_string(), Some("invalid-reshape")),
            (
                "reshape(x, [B * 4 / -1])".to_string(),
                Some("invalid-reshape"),
            ),
            (format!("reshape(x, [B, {max}])"), Some("invalid-reshape")),
            (
                format!("split(x, {max}, axis = 1)"),
                Some("dim-not-divisible"),
            ),
            (
                format!("split(x, {min}, axis = 1)"),
                Some("invalid-argument"),
            ),
            (format!("expand(x, [B, {max}])"), Some("broadcast-mismatch")),
            (format!("arange({max})"), Some("tensor-too-large")),
            (format!("zeros({min}, 2)"), Some("invalid-dim")),
            ("zeros(1e300, 2)".to_string(), Some("invalid-dim")),
            ("zeros(-9.2e18, 2)".to_string(), Some("invalid-dim")),
            ("zeros(0.0 / 0.0, 2)".to_string(), Some("invalid-dim")),
            (
                format!("conv2d({image}, zeros(1, 1, 1, 1), none, stride = {max})"),
                Some("invalid-argument"),
            ),
            (
                format!("conv2d({image}, zeros(1, 1, 1, 1), none, padding = {max})"),
                Some("invalid-argument"),
            ),
            (
                format!("conv2d({image}, zeros(1, 1, 1, 1), none, dilation = {max})"),
                Some("invalid-argument"),
            ),
            (
                format!("conv2d({image}, zeros(1, 1, 1, 1), none, groups = {max})"),
                Some(""),
            ),
            (
                format!("conv2d({image}, zeros(1, 1, 1, 1), none, groups = {min})"),
                Some("invalid-argument"),
            ),
            (
                format!("max_pool2d({image}, {max})"),
                Some("invalid-argument"),
            ),
            (
                format!("max_pool2d({image}, 2, padding = {max})"),
                Some("invalid-argument"),
            ),
        ];
        run_table(&cases);
        // Through a stdlib layer's hyper-parameters.
        let conv = format!("use std.nn.{{Conv2d}}\nmodel M {{\n    c = Conv2d(1, 1, {max})\n    forward(x: f32[B, 1, 4, 4]) {{ c(x) }}\n}}\n");
        assert_reports(&check(&conv), "tensor-too-large");
    });
}

// Found by these tests: panics on integer overflow in constant arithmetic.
// - `i64::MIN / -1`: `check::operators::scalar_binary` tested `a % b == 0` before dividing, and
//   `i64::MIN % -1` overflows ("attempt to calculate the remainder with overflow", a panic in
//   every build, not only with debug assertions); `i64::MIN % -1` panicked the same way in
//   `a.rem_euclid(b)`.
// - `x[:, 0:4:i64::MAX]`: `check::indexing` computed the slice length as
//   `(last - first + step - 1) / step`, which overflows for a huge step ("attempt to add with
//   overflow" with debug assertions, a wrong length without).
// - `x[:, ::i64::MIN]`: the same code negated the step ("attempt to negate with overflow").
// Both slices select one element, as in Python.
#[test]
fn integer_overflow_in_constant_arithmetic() {
    isolated(
        "integer_overflow_in_constant_arithmetic",
        DEFAULT_LIMITS,
        || {
            let min = I64_MIN;
            run_table(&[
                (format!("let n = {min} / -1\n x"), Some("dim-overflow")),
                (format!("let n = {min} % -1\n x"), Some("dim-overflow")),
                ("x[:, 0:4:9223372036854775807]".to_string(), None),
                (format!("x[:, ::{min}]"), None),
                (format!("x[:, 3:0:{min}]"), None),
            ]);
        },
    );
}

// The first input above through the CLI, which printed the panic and "internal compiler error".
#[test]
fn integer_overflow_cli() {
    let text = model_with_body(&format!("let n = {I64_MIN} / -1\n x"));
    assert_cli_reports(
        &["check"],
        "overflow.model",
        text.as_bytes(),
        "dim-overflow",
        QUICK,
    );
}

/// Every combination of edge integers with each operator, and as slice bounds: no panic, and
/// well-formed diagnostics (whichever they are).
#[test]
fn extreme_integer_combinations() {
    isolated("extreme_integer_combinations", DEFAULT_LIMITS, || {
        let edges = [
            I64_MIN,
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
        let mut cases = Vec::new();
        for a in edges {
            for operator in ["+", "-", "*", "/", "%", "**", "..", "<"] {
                for b in edges {
                    cases.push((format!("let n = {a} {operator} {b}\n x"), Some("")));
                }
            }
        }
        let bounds = [
            I64_MIN,
            "-5",
            "-4",
            "-1",
            "0",
            "1",
            "3",
            "4",
            "5",
            "9223372036854775807",
        ];
        for a in bounds {
            for b in bounds {
                for c in bounds {
                    cases.push((format!("x[:, {a}:{b}:{c}]"), Some("")));
                }
            }
        }
        run_table(&cases);
    });
}
