//! `modelc lsp`: a language server speaking LSP over standard input and output.
//!
//! The server keeps the text of every open document, re-checks a document when it changes and
//! publishes its diagnostics, and answers hover, go to definition, completion, signature help
//! and document symbols from the document's latest [`Analysis`]. The analysis functions take
//! an analysis (built from text) and return data; only this file does I/O.
//!
//! Responsiveness: messages that arrive while a check runs are taken as one batch, so a burst
//! of edits is checked once, after the last of them; a request is answered after the
//! documents it may read are re-checked.
//!
//! Robustness: every client value is validated (positions are clamped, unknown documents and
//! malformed params get error responses), checks run on a large-stack thread under
//! `catch_unwind`, and request and notification handling is wrapped in `catch_unwind` as a
//! last resort, so that no sequence of messages takes the server down.

pub mod analysis;
pub mod completion;
pub mod definition;
pub mod diagnostics;
pub mod hover;
pub mod locations;
pub mod names;
pub mod position;
pub mod signatures;
pub mod symbols;
pub mod uri;

#[cfg(test)]
mod tests;

use analysis::Analysis;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    Completion, DocumentSymbolRequest, GotoDefinition, HoverRequest, Request as _,
    SignatureHelpRequest,
};
use lsp_types::{
    CompletionOptions, CompletionResponse, DocumentSymbolResponse, GotoDefinitionResponse,
    HoverProviderCapability, InitializeResult, OneOf, PositionEncodingKind,
    PublishDiagnosticsParams, SaveOptions, ServerCapabilities, ServerInfo, SignatureHelpOptions,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    TextDocumentSyncSaveOptions, Uri,
};
use modelc_compiler::check::modules::Loader;
use modelc_runtime::loader::FsLoader;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Runs the server on standard input and output until the client sends `exit` or closes the
/// connection. Returns the process exit code: 0 after `shutdown` then `exit`, else 1.
pub fn serve() -> u8 {
    let (connection, io_threads) = Connection::stdio();
    let code = match run(&connection) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("modelc lsp: {message}");
            1
        }
    };
    // The writer thread flushes what is queued once the connection is dropped.
    drop(connection);
    if let Err(error) = io_threads.join() {
        eprintln!("modelc lsp: {error}");
    }
    code
}

/// What the server offers. Formatting is not offered: there is no formatter.
pub fn server_capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                will_save: None,
                will_save_wait_until: None,
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(false),
                })),
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["(".into(), ",".into(), ".".into()]),
            ..CompletionOptions::default()
        }),
        signature_help_provider: Some(SignatureHelpOptions {
            trigger_characters: Some(vec!["(".into(), ",".into()]),
            retrigger_characters: None,
            work_done_progress_options: Default::default(),
        }),
        document_symbol_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    }
}

/// The initialize handshake, then the main loop.
pub fn run(connection: &Connection) -> Result<u8, String> {
    let result = InitializeResult {
        capabilities: server_capabilities(),
        server_info: Some(ServerInfo {
            name: "modelc".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
    };
    let result = serde_json::to_value(result).map_err(|e| e.to_string())?;
    let (id, _params) = connection
        .initialize_start()
        .map_err(|e| format!("initialize failed: {e}"))?;
    connection
        .initialize_finish(id, result)
        .map_err(|e| format!("initialize failed: {e}"))?;
    let mut server = Server {
        connection,
        documents: HashMap::new(),
        shutdown_requested: false,
    };
    server.main_loop()
}

/// An open document.
struct Document {
    uri: Uri,
    version: i32,
    text: String,
    /// The check of `text`, or `None` while it is stale.
    analysis: Option<Analysis>,
}

struct Server<'a> {
    connection: &'a Connection,
    /// Open documents by URI text (`Uri` hashes through interior mutability, so it is not the
    /// key).
    documents: HashMap<String, Document>,
    shutdown_requested: bool,
}

impl Server<'_> {
    fn main_loop(&mut self) -> Result<u8, String> {
        loop {
            let Ok(first) = self.connection.receiver.recv() else {
                // The client went away without `exit`.
                return Ok(1);
            };
            // Everything already queued is one batch: edits typed faster than checks run are
            // checked once, after the last of them.
            let mut batch = vec![first];
            while let Ok(message) = self.connection.receiver.try_recv() {
                batch.push(message);
            }
            for message in batch {
                match message {
                    Message::Request(request) => self.on_request(request),
                    Message::Notification(notification) => {
                        if notification.method == lsp_types::notification::Exit::METHOD {
                            return Ok(if self.shutdown_requested { 0 } else { 1 });
                        }
                        let handled = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            self.on_notification(notification)
                        }));
                        if handled.is_err() {
                            eprintln!("modelc lsp: internal error while handling a notification");
                        }
                    }
                    // The server sends no requests, so it expects no responses.
                    Message::Response(_) => {}
                }
            }
            self.refresh();
        }
    }

    fn send(&self, message: impl Into<Message>) {
        // A send fails only when the client has gone; the loop then ends on the next receive.
        let _ = self.connection.sender.send(message.into());
    }

    fn on_request(&mut self, request: Request) {
        let id = request.id.clone();
        if self.shutdown_requested {
            self.send(Response::new_err(
                id,
                ErrorCode::InvalidRequest as i32,
                "the server is shutting down".into(),
            ));
            return;
        }
        if request.method == lsp_types::request::Shutdown::METHOD {
            self.shutdown_requested = true;
            self.send(Response::new_ok(id, ()));
            return;
        }
        // Answers read the latest text.
        self.refresh();
        if request.method == HoverRequest::METHOD {
            self.record_types(&request);
        }
        let response = std::panic::catch_unwind(AssertUnwindSafe(|| self.answer(request)))
            .unwrap_or_else(|_| {
                Response::new_err(
                    id,
                    ErrorCode::InternalError as i32,
                    "internal error in modelc lsp (this is a bug; please report it)".into(),
                )
            });
        self.send(response);
    }

    fn answer(&self, request: Request) -> Response {
        let id = request.id.clone();
        match request.method.as_str() {
            HoverRequest::METHOD => {
                self.with_document::<HoverRequest>(request, |analysis, _, params| {
                    hover::hover(analysis, params.text_document_position_params.position)
                })
            }
            GotoDefinition::METHOD => {
                self.with_document::<GotoDefinition>(request, |analysis, uri, params| {
                    definition::definition(
                        analysis,
                        params.text_document_position_params.position,
                        uri,
                    )
                    .map(GotoDefinitionResponse::Scalar)
                })
            }
            Completion::METHOD => {
                self.with_document::<Completion>(request, |analysis, _, params| {
                    Some(CompletionResponse::Array(completion::completion(
                        analysis,
                        params.text_document_position.position,
                    )))
                })
            }
            SignatureHelpRequest::METHOD => {
                self.with_document::<SignatureHelpRequest>(request, |analysis, _, params| {
                    completion::signature_help(
                        analysis,
                        params.text_document_position_params.position,
                    )
                })
            }
            DocumentSymbolRequest::METHOD => {
                self.with_document::<DocumentSymbolRequest>(request, |analysis, _, _| {
                    Some(DocumentSymbolResponse::Nested(symbols::document_symbols(
                        analysis,
                    )))
                })
            }
            method => Response::new_err(
                id,
                ErrorCode::MethodNotFound as i32,
                format!("modelc lsp does not handle `{method}`"),
            ),
        }
    }

    /// Parses a request's params, finds its document's analysis and answers with `answer`'s
    /// result (`null` for a document that is not open).
    fn with_document<R>(
        &self,
        request: Request,
        answer: impl FnOnce(&Analysis, &Uri, &R::Params) -> R::Result,
    ) -> Response
    where
        R: lsp_types::request::Request,
        R::Params: DocumentParams,
    {
        let id = request.id.clone();
        let params: R::Params = match serde_json::from_value(request.params) {
            Ok(params) => params,
            Err(error) => return invalid_params(id, error),
        };
        let uri = params.document_uri().clone();
        let Some(analysis) = self
            .documents
            .get(uri.as_str())
            .and_then(|document| document.analysis.as_ref())
        else {
            return Response::new_ok(id, serde_json::Value::Null);
        };
        let result = answer(analysis, &uri, &params);
        match serde_json::to_value(result) {
            Ok(value) => Response {
                id,
                result: Some(value),
                error: None,
            },
            Err(error) => Response::new_err(id, ErrorCode::InternalError as i32, error.to_string()),
        }
    }

    fn on_notification(&mut self, notification: Notification) {
        match notification.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Ok(params) = notification
                    .extract::<lsp_types::DidOpenTextDocumentParams>(DidOpenTextDocument::METHOD)
                else {
                    return;
                };
                let document = params.text_document;
                self.documents.insert(
                    document.uri.as_str().to_string(),
                    Document {
                        uri: document.uri.clone(),
                        version: document.version,
                        text: document.text,
                        analysis: None,
                    },
                );
                self.invalidate_dependents(&document.uri);
            }
            DidChangeTextDocument::METHOD => {
                let Ok(params) = notification.extract::<lsp_types::DidChangeTextDocumentParams>(
                    DidChangeTextDocument::METHOD,
                ) else {
                    return;
                };
                let uri = params.text_document.uri;
                let Some(document) = self.documents.get_mut(uri.as_str()) else {
                    return;
                };
                for change in params.content_changes {
                    position::apply_change(&mut document.text, change.range, &change.text);
                }
                document.version = params.text_document.version;
                document.analysis = None;
                self.invalidate_dependents(&uri);
            }
            DidCloseTextDocument::METHOD => {
                let Ok(params) = notification
                    .extract::<lsp_types::DidCloseTextDocumentParams>(DidCloseTextDocument::METHOD)
                else {
                    return;
                };
                let uri = params.text_document.uri;
                if self.documents.remove(uri.as_str()).is_some() {
                    self.publish(uri.clone(), Vec::new(), None);
                    // Files importing it now read it from disk.
                    self.invalidate_dependents(&uri);
                }
            }
            DidSaveTextDocument::METHOD => {
                // Unsaved text is already what importers read; nothing changes on save.
            }
            _ => {}
        }
    }

    /// Marks stale every other open document whose last check read the file of `uri`.
    fn invalidate_dependents(&mut self, uri: &Uri) {
        let name = uri::document_name(uri);
        for (other, document) in self.documents.iter_mut() {
            if other == uri.as_str() {
                continue;
            }
            let reads_it = document
                .analysis
                .as_ref()
                .and_then(|a| a.program())
                .is_some_and(|program| program.sources.find_by_name(&name).is_some());
            if reads_it {
                document.analysis = None;
            }
        }
    }

    /// Checks a hover's document again with every expression's type recorded, once per
    /// version: the check after each edit skips them to publish diagnostics sooner.
    fn record_types(&mut self, request: &Request) {
        let Some(uri) = request.params["textDocument"]["uri"]
            .as_str()
            .and_then(|text| Uri::from_str(text).ok())
        else {
            return;
        };
        let needs_types = self
            .documents
            .get(uri.as_str())
            .and_then(|document| document.analysis.as_ref())
            .is_some_and(|analysis| !analysis.has_types);
        if !needs_types {
            return;
        }
        let Some(document) = self.documents.get(uri.as_str()) else {
            return;
        };
        let analysis = {
            let loader = EditorLoader::new(&self.documents);
            Analysis::check(&uri::document_name(&uri), &document.text, &loader, true)
        };
        if let Some(document) = self.documents.get_mut(uri.as_str()) {
            document.analysis = Some(analysis);
        }
    }

    /// Re-checks every stale document and publishes its diagnostics.
    fn refresh(&mut self) {
        let stale: Vec<Uri> = self
            .documents
            .values()
            .filter(|document| document.analysis.is_none())
            .map(|document| document.uri.clone())
            .collect();
        for uri in stale {
            let Some(document) = self.documents.get(uri.as_str()) else {
                continue;
            };
            let name = uri::document_name(&uri);
            let analysis = {
                let loader = EditorLoader::new(&self.documents);
                Analysis::check(&name, &document.text, &loader, false)
            };
            let published = diagnostics::diagnostics(&analysis, &uri);
            let version = document.version;
            if let Some(document) = self.documents.get_mut(uri.as_str()) {
                document.analysis = Some(analysis);
            }
            self.publish(uri, published, Some(version));
        }
    }

    fn publish(&self, uri: Uri, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) {
        let params = PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        };
        self.send(Notification::new(
            PublishDiagnostics::METHOD.to_string(),
            params,
        ));
    }
}

fn invalid_params(id: RequestId, error: serde_json::Error) -> Response {
    Response::new_err(
        id,
        ErrorCode::InvalidParams as i32,
        format!("invalid params: {error}"),
    )
}

/// Request params that name a document.
trait DocumentParams {
    fn document_uri(&self) -> &Uri;
}

impl DocumentParams for lsp_types::HoverParams {
    fn document_uri(&self) -> &Uri {
        &self.text_document_position_params.text_document.uri
    }
}

impl DocumentParams for lsp_types::GotoDefinitionParams {
    fn document_uri(&self) -> &Uri {
        &self.text_document_position_params.text_document.uri
    }
}

impl DocumentParams for lsp_types::CompletionParams {
    fn document_uri(&self) -> &Uri {
        &self.text_document_position.text_document.uri
    }
}

impl DocumentParams for lsp_types::SignatureHelpParams {
    fn document_uri(&self) -> &Uri {
        &self.text_document_position_params.text_document.uri
    }
}

impl DocumentParams for lsp_types::DocumentSymbolParams {
    fn document_uri(&self) -> &Uri {
        &self.text_document.uri
    }
}

/// Reads imports from the editor's open documents first (their unsaved text), then from disk.
pub struct EditorLoader<'a> {
    open: HashMap<PathBuf, &'a str>,
}

impl<'a> EditorLoader<'a> {
    fn new(documents: &'a HashMap<String, Document>) -> EditorLoader<'a> {
        let open = documents
            .values()
            .filter_map(|document| Some((uri::path_of_uri(&document.uri)?, document.text.as_str())))
            .collect();
        EditorLoader { open }
    }
}

impl Loader for EditorLoader<'_> {
    fn load_relative(&self, from: &str, relative: &str) -> Result<(String, String), String> {
        // Named as `FsLoader` names it, so that both agree on every module key.
        let folder = Path::new(from).parent().unwrap_or(Path::new(""));
        let path = folder.join(relative);
        match self.open.get(&path) {
            Some(text) => Ok((path.to_string_lossy().into_owned(), text.to_string())),
            None => FsLoader.load_relative(from, relative),
        }
    }
}
