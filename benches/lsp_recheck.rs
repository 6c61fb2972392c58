//! How long `modelc lsp` takes to re-check a 1,000-line file after an edit.
//!
//!     cargo bench --bench lsp_recheck
//!
//! The file is generated: many small layers (a norm, two linear maps, a residual) and a model
//! that stacks them all, so every layer is elaborated with real shapes. Two figures, each the
//! median of repeated runs:
//!
//! 1. `check_file`, as the server calls it after an edit (without recording every expression's
//!    type; the first hover of a version records them), and with types for comparison;
//! 2. an edit sent to a running `modelc lsp` over stdio until its diagnostics arrive (what an
//!    editor waits for: the check plus the name index, the conversion and the JSON-RPC).
//!
//! The minimum is printed next to the median: on a shared machine it is the better estimate
//! of an idle one.
//!
//! The target is 50 ms for the second figure. This is a benchmark, not a test: it reports and
//! does not fail on a slow machine.

use modelc_compiler::check::modules::NoFiles;
use modelc_compiler::check::{check_file, CheckOptions};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LAYERS: usize = 70;
const RUNS: usize = 40;

/// A file of `LAYERS` small layers and a model using each once: about 1,000 lines.
fn generated_file() -> String {
    let mut text = String::from("use std.nn.{Linear, LayerNorm}\n\n");
    for index in 0..LAYERS {
        text.push_str(&format!(
            "## Block {index}: a residual feed-forward block.\n\
             layer Block{index}(dim: int, hidden: int = 64) {{\n\
             \x20   norm = LayerNorm(dim)\n\
             \x20   up = Linear(dim, hidden)\n\
             \x20   down = Linear(hidden, dim)\n\
             \n\
             \x20   forward(x: f32[B, dim]) -> f32[B, dim] {{\n\
             \x20       let h = x |> norm |> up |> gelu\n\
             \x20       let y = h |> down\n\
             \x20       x + y * 0.5\n\
             \x20   }}\n\
             }}\n\n"
        ));
    }
    text.push_str("model Stack(dim: int = 32) {\n");
    for index in 0..LAYERS {
        text.push_str(&format!("    b{index} = Block{index}(dim)\n"));
    }
    text.push_str("\n    forward(x: f32[B, dim]) -> f32[B, dim] {\n        x");
    for index in 0..LAYERS {
        text.push_str(&format!("\n          |> b{index}"));
    }
    text.push_str("\n    }\n}\n");
    text
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn main() {
    let text = generated_file();
    let lines = text.lines().count();
    let check = |text: &str, record_types: bool| {
        check_file(
            "/tmp/lsp_recheck.model",
            text,
            &NoFiles,
            CheckOptions { record_types },
        )
    };
    let result = check(&text, true);
    assert!(
        result.diagnostics.is_empty(),
        "the generated file must check: {:?}",
        result.diagnostics.first()
    );
    let types = result.expression_types.len();
    for record_types in [false, true] {
        let samples: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let result = check(&text, record_types);
                let elapsed = start.elapsed();
                std::hint::black_box(result);
                elapsed
            })
            .collect();
        let what = if record_types {
            format!("recording {types} expression types")
        } else {
            "as after an edit".to_string()
        };
        println!(
            "check_file, {lines} lines, {LAYERS} layers, {what}: {}",
            summary(samples)
        );
    }

    let samples = edit_to_diagnostics(&text);
    println!(
        "modelc lsp, edit to publishDiagnostics, {lines} lines: {} (target: 50 ms)",
        summary(samples)
    );
}

/// `median M ms (min A, max B) over N runs`.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let median = samples[samples.len() / 2];
    format!(
        "median {:.2} ms (min {:.2}, max {:.2}) over {} runs",
        milliseconds(median),
        milliseconds(samples[0]),
        milliseconds(samples[samples.len() - 1]),
        samples.len()
    )
}

/// The times from sending an edit to a running server until its diagnostics arrive.
fn edit_to_diagnostics(text: &str) -> Vec<Duration> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelc"))
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("modelc lsp starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut send = |message: Value| {
        let body = message.to_string();
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        stdin.flush().expect("flush");
    };
    let uri = "file:///tmp/lsp_recheck.model";
    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"processId": null, "rootUri": null, "capabilities": {}}}));
    send(json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
    send(
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
        "textDocument": {"uri": uri, "languageId": "model", "version": 1, "text": text}}}),
    );
    wait_for_diagnostics(&mut stdout, 1);
    // Each edit rewrites the default of `dim` on the model's line: the file stays valid and
    // every layer is checked again with the new size.
    let model_line = text
        .lines()
        .position(|l| l.starts_with("model Stack"))
        .unwrap_or(0);
    let mut samples = Vec::new();
    for run in 0..RUNS {
        let version = run as i64 + 2;
        let dim = 16 + 8 * (run % 4);
        let start = Instant::now();
        send(
            json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{
                "range": {"start": {"line": model_line, "character": 0},
                          "end": {"line": model_line + 1, "character": 0}},
                "text": format!("model Stack(dim: int = {dim}) {{\n")
            }]}}),
        );
        let diagnostics = wait_for_diagnostics(&mut stdout, version);
        samples.push(start.elapsed());
        assert!(
            diagnostics.is_empty(),
            "the edited file must check: {diagnostics:?}"
        );
    }
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown", "params": null}));
    send(json!({"jsonrpc": "2.0", "method": "exit", "params": null}));
    let _ = child.wait();
    samples
}

/// Reads messages until the diagnostics of `version` arrive; returns them.
fn wait_for_diagnostics(reader: &mut impl BufRead, version: i64) -> Vec<Value> {
    loop {
        let message = read_message(reader).expect("the server answers");
        if message["method"] == "textDocument/publishDiagnostics"
            && message["params"]["version"] == version
        {
            return message["params"]["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
    }
}

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length:") {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}
