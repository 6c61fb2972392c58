//! `modelc lsp` end to end: the binary is started and spoken to in JSON-RPC over stdio, with
//! Content-Length framing, as an editor does. Also: random edits never take the server down
//! (a property test), and a real client, headless Neovim, receives the diagnostics (when `nvim`
//! is installed).

use proptest::prelude::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any one message may take; generous, since tests run in parallel on small machines.
const TIMEOUT: Duration = Duration::from_secs(60);

struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
    /// Notifications read while waiting for a response.
    pending: Vec<Value>,
    /// Collects what the server writes to stderr: a caught panic shows there and fails the
    /// test.
    stderr: Option<JoinHandle<String>>,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("modelc starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut server_stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = server_stderr.read_to_string(&mut text);
            text
        });
        let stdout = child.stdout.take().expect("stdout");
        let (sender, messages) = std::sync::mpsc::channel();
        // Reads framed messages on a thread, so that a silent server fails a test by timeout
        // instead of hanging it.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if sender.send(message).is_err() {
                    break;
                }
            }
        });
        let mut client = Client {
            child,
            stdin,
            messages,
            next_id: 1,
            pending: Vec::new(),
            stderr: Some(stderr),
        };
        let result = client.request(
            "initialize",
            json!({"processId": null, "rootUri": null, "capabilities": {}}),
        );
        assert!(result["capabilities"]["hoverProvider"]
            .as_bool()
            .unwrap_or(false));
        assert!(result["capabilities"]["documentFormattingProvider"].is_null());
        client.notify("initialized", json!({}));
        client
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{}", body.len(), body).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and returns its whole response (`result` or `error`).
    fn request_raw(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let message = self.receive(deadline);
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return message;
            }
            self.pending.push(message);
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let response = self.request_raw(method, params);
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    fn receive(&mut self, deadline: Instant) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => panic!("the server did not answer in time"),
            Err(RecvTimeoutError::Disconnected) => panic!("the server closed its output"),
        }
    }

    /// The next diagnostics published for `uri` (including any read while waiting earlier).
    fn diagnostics_for(&mut self, uri: &str) -> Vec<Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let position = self.pending.iter().position(|m| {
                m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri
            });
            if let Some(position) = position {
                let message = self.pending.remove(position);
                return message["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
            let message = self.receive(deadline);
            self.pending.push(message);
        }
    }

    fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "model", "version": 1, "text": text}}),
        );
    }

    /// `shutdown` then `exit`; the server must exit with status 0.
    fn shut_down(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "modelc lsp exited with {status}");
                let stderr = self
                    .stderr
                    .take()
                    .and_then(|reader| reader.join().ok())
                    .unwrap_or_default();
                assert!(
                    !stderr.contains("panicked") && !stderr.contains("internal error"),
                    "the server caught an internal error:\n{stderr}"
                );
                return;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads one `Content-Length` framed JSON message; `None` at the end of the stream.
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

/// A scratch folder for one test's files, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("modelc-lsp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    fn uri(&self, file: &str) -> String {
        format!("file://{}", self.0.join(file).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The position of the first match of `needle` in `text`, plus `shift` UTF-16 units.
fn position_of(text: &str, needle: &str, shift: usize) -> Value {
    let offset = text.find(needle).expect("needle in text");
    let line = text[..offset].matches('\n').count();
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].encode_utf16().count() + shift;
    json!({"line": line, "character": column})
}

const MLP: &str = "\
use std.nn.{Linear, Conv2d}

model Mlp(hidden: int = 512) {
    fc1 = Linear(784, hidden)
    fc2 = Linear(hidden, 10)

    forward(x: f32[B, 784]) -> f32[B, 10] {
        let h = x |> fc1 |> relu
        fc2(h)
    }
}
";

#[test]
fn a_file_with_an_error_gets_the_diagnostic_at_its_range() {
    let dir = TempDir::new("diagnostics");
    let uri = dir.uri("broken.model");
    // Multi-byte characters before the error on its line: the range is in UTF-16 units.
    let text = "# é😀 é\nfn f(x) {\n    \"é😀\" + yy\n}\n".to_string();
    let mut client = Client::start();
    client.open(&uri, &text);
    let diagnostics = client.diagnostics_for(&uri);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let diagnostic = &diagnostics[0];
    assert_eq!(diagnostic["code"], "unknown-name");
    assert_eq!(diagnostic["message"], "`yy` is not defined");
    assert_eq!(diagnostic["source"], "modelc");
    // `"é😀" + yy`: four columns before the string, which is 5 UTF-16 units long.
    let start = position_of(&text, "yy", 0);
    assert_eq!(start["character"], 4 + 5 + 3);
    assert_eq!(diagnostic["range"]["start"], start);
    assert_eq!(diagnostic["range"]["end"], position_of(&text, "yy", 2));
    // Fixing it clears the diagnostics.
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{
                "range": {"start": position_of(&text, "yy", 0), "end": position_of(&text, "yy", 2)},
                "text": "x"
            }]
        }),
    );
    assert_eq!(client.diagnostics_for(&uri), Vec::<Value>::new());
    client.shut_down();
}

#[test]
fn hover_on_an_expression_returns_its_shape() {
    let dir = TempDir::new("hover");
    let uri = dir.uri("mlp.model");
    let mut client = Client::start();
    client.open(&uri, MLP);
    assert_eq!(client.diagnostics_for(&uri), Vec::<Value>::new());
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": position_of(MLP, "fc2(h)", 4)}),
    );
    let value = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(value.contains("f32[B, 512]"), "{hover}");
    assert_eq!(hover["range"]["start"], position_of(MLP, "h)", 0));
    // The whole call `fc2(h)` has the output shape.
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": position_of(MLP, "(h)", 0)}),
    );
    let value = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(value.contains("f32[B, 10]"), "{hover}");
    // The doc comment of a stdlib layer.
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": position_of(MLP, "Linear(784", 1)}),
    );
    let value = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(value.contains("A fully connected layer"), "{hover}");
    client.shut_down();
}

#[test]
fn definition_of_a_stdlib_layer_returns_the_stdlib_location() {
    let dir = TempDir::new("definition");
    let uri = dir.uri("mlp.model");
    let mut client = Client::start();
    client.open(&uri, MLP);
    let location = client.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": uri}, "position": position_of(MLP, "Linear(784", 2)}),
    );
    let target = location["uri"].as_str().unwrap_or_default();
    assert!(target.ends_with("/stdlib/nn.model"), "{location}");
    let path = target.trim_start_matches("file://");
    let text = std::fs::read_to_string(path).expect("the stdlib file exists");
    let line = location["range"]["start"]["line"].as_u64().unwrap_or(0) as usize;
    let column = location["range"]["start"]["character"]
        .as_u64()
        .unwrap_or(0) as usize;
    let line_text = text.lines().nth(line).unwrap_or_default();
    assert_eq!(
        line_text.get(column..column + 6),
        Some("Linear"),
        "{line_text}"
    );
    // A local: `h` goes to its `let`.
    let location = client.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": uri}, "position": position_of(MLP, "fc2(h)", 4)}),
    );
    assert_eq!(location["uri"], uri);
    assert_eq!(location["range"]["start"], position_of(MLP, "h = x", 0));
    client.shut_down();
}

#[test]
fn completion_inside_a_call_returns_its_keyword_arguments() {
    let dir = TempDir::new("completion");
    let uri = dir.uri("conv.model");
    let text = "use std.nn.Conv2d\n\nmodel M {\n    conv = Conv2d(1, 6, \n}\n";
    let mut client = Client::start();
    client.open(&uri, text);
    let diagnostics = client.diagnostics_for(&uri);
    assert!(diagnostics.iter().any(|d| d["code"] == "syntax-error"));
    let result = client.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": uri}, "position": position_of(text, "6, ", 3)}),
    );
    let labels: Vec<&str> = result
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["label"].as_str())
        .collect();
    for expected in ["kernel", "stride", "padding", "dilation", "groups", "bias"] {
        assert!(labels.contains(&expected), "{expected} missing: {labels:?}");
    }
    let signature = client.request(
        "textDocument/signatureHelp",
        json!({"textDocument": {"uri": uri}, "position": position_of(text, "6, ", 3)}),
    );
    assert_eq!(signature["activeParameter"], 2, "{signature}");
    client.shut_down();
}

#[test]
fn document_symbols_and_unknown_requests() {
    let dir = TempDir::new("symbols");
    let uri = dir.uri("mlp.model");
    let mut client = Client::start();
    client.open(&uri, MLP);
    let symbols = client.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    assert_eq!(symbols[0]["name"], "Mlp");
    let children: Vec<&str> = symbols[0]["children"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(children, ["hidden", "fc1", "fc2", "forward"]);
    // Malformed params and unknown methods get errors, and the server goes on.
    let response = client.request_raw("textDocument/hover", json!({"nonsense": true}));
    assert_eq!(response["error"]["code"], -32602);
    let response = client.request_raw("textDocument/formatting", json!({}));
    assert_eq!(response["error"]["code"], -32601);
    // A document that was never opened has nothing to show.
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": dir.uri("other.model")}, "position": {"line": 0, "character": 0}}),
    );
    assert!(hover.is_null());
    client.shut_down();
}

#[test]
fn imports_read_open_documents_and_diagnostics_follow_their_edits() {
    let dir = TempDir::new("imports");
    let blocks_uri = dir.uri("blocks.model");
    let main_uri = dir.uri("main.model");
    let blocks = "use std.nn.Linear\n\n## A block.\nlayer Block(n: int) {\n    fc = Linear(n, n)\n    forward(x: f32[B, n]) { x |> fc }\n}\n";
    // On disk the imported file has no `Block` at all: the open buffer is what counts.
    std::fs::write(dir.0.join("blocks.model"), "fn other(x) { x }\n").expect("write");
    let main = "use blocks.{Block}\n\nmodel M {\n    b = Block(4)\n    forward(x: f32[B, 4]) { b(x) }\n}\n";
    let mut client = Client::start();
    client.open(&blocks_uri, blocks);
    client.open(&main_uri, main);
    assert_eq!(client.diagnostics_for(&main_uri), Vec::<Value>::new());
    let location = client.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": main_uri}, "position": position_of(main, "Block(4)", 1)}),
    );
    assert_eq!(location["uri"], blocks_uri);
    // Breaking the imported layer's shapes reports on the importing file too.
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": blocks_uri, "version": 2},
            "contentChanges": [{"text": blocks.replace("x |> fc", "x |> fc |> fc |> flatten(0) |> fc")}]
        }),
    );
    let diagnostics = client.diagnostics_for(&main_uri);
    let diagnostics = if diagnostics.is_empty() {
        client.diagnostics_for(&main_uri)
    } else {
        diagnostics
    };
    assert!(!diagnostics.is_empty(), "no diagnostics for the importer");
    client.shut_down();
}

// ------------------------------------------------------------------ random edits

/// Text to insert: characters of several UTF-8 and UTF-16 widths and the language's brackets.
fn insertion() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "x",
        "é",
        "😀",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        "\n",
        " ",
        "layer",
        "model M {",
        "forward(",
        "let y = ",
        "|>",
        "#",
        "#=",
        "=#",
        "\"",
        "f32[B, 4]",
        ",",
        "=",
        "Linear(",
        "use std.nn.",
        "1e999",
        "é😀é",
    ]);
    prop::collection::vec(pieces, 0..4).prop_map(|pieces| pieces.concat())
}

#[derive(Clone, Debug)]
enum Step {
    /// Replace the range between two positions (any order, any values) with text.
    Edit {
        start: (u32, u32),
        end: (u32, u32),
        text: String,
    },
    /// Replace the whole text.
    Replace(String),
    Request {
        method: &'static str,
        at: (u32, u32),
    },
}

fn step() -> impl Strategy<Value = Step> {
    let position = (0u32..14, 0u32..40);
    prop_oneof![
        6 => (position.clone(), position.clone(), insertion())
            .prop_map(|(start, end, text)| Step::Edit { start, end, text }),
        1 => insertion().prop_map(Step::Replace),
        2 => (
            prop::sample::select(vec![
                "textDocument/hover",
                "textDocument/completion",
                "textDocument/definition",
                "textDocument/signatureHelp",
            ]),
            position,
        )
            .prop_map(|(method, at)| Step::Request { method, at }),
    ]
}

const START: &str = "## é😀 doc\nuse std.nn.{Linear}\n\nmodel M(n: int = 4) {\n    fc = Linear(n, n) # 😀\n    forward(x: f32[B, 4]) {\n        let é = 1\n        x |> fc |> relu\n    }\n}\n";

fn position(at: (u32, u32)) -> Value {
    json!({"line": at.0, "character": at.1})
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_edits_never_take_the_server_down(steps in prop::collection::vec(step(), 1..60)) {
        let dir = TempDir::new("edits");
        let uri = dir.uri("edited.model");
        let mut client = Client::start();
        client.open(&uri, START);
        for (version, step) in steps.iter().enumerate() {
            match step {
                Step::Edit { start, end, text } => client.notify(
                    "textDocument/didChange",
                    json!({
                        "textDocument": {"uri": uri, "version": version + 2},
                        "contentChanges": [{
                            "range": {"start": position(*start), "end": position(*end)},
                            "text": text
                        }]
                    }),
                ),
                Step::Replace(text) => client.notify(
                    "textDocument/didChange",
                    json!({
                        "textDocument": {"uri": uri, "version": version + 2},
                        "contentChanges": [{"text": text}]
                    }),
                ),
                Step::Request { method, at } => {
                    let response = client.request_raw(
                        method,
                        json!({"textDocument": {"uri": uri}, "position": position(*at)}),
                    );
                    prop_assert!(response.get("error").is_none(), "{method}: {response}");
                }
            }
        }
        // Still alive: a hover gets a response.
        let response = client.request_raw(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": 3, "character": 2}}),
        );
        prop_assert!(response.get("error").is_none(), "{response}");
        client.shut_down();
    }
}

// ------------------------------------------------------------------ a real client

/// Headless Neovim opens a file with the server attached and prints the diagnostics it
/// received (`scripts/nvim_lsp_test.sh`). Skipped, saying so, when `nvim` is not installed.
#[test]
fn neovim_receives_the_diagnostics() {
    let on_path = Command::new("nvim")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !on_path {
        eprintln!("skipped: nvim is not installed (apt-get install neovim)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(root.join("scripts/nvim_lsp_test.sh"))
        .env("MODELC", env!("CARGO_BIN_EXE_modelc"))
        .output()
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "nvim_lsp_test.sh failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("unknown-name 3:16 `yy` is not defined")
            && stdout.contains("hover answered: true"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
