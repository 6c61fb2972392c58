//! One checked version of a document: its text, the compiler's result and the name index.
//! Every feature (diagnostics, hover, definition, completion, symbols) reads an [`Analysis`],
//! so each can be tested on a text without a client.

use super::names::NameIndex;
use super::position::LineIndex;
use modelc_compiler::check::modules::{Loader, Program};
use modelc_compiler::check::{check_file, CheckOptions, CheckResult};
use modelc_compiler::source::FileId;
use std::panic::AssertUnwindSafe;

/// Deeply nested input recurses deeply in the parser and the checker; a check runs on its own
/// thread with this much stack, as the CLI does.
pub const CHECK_STACK_BYTES: usize = 256 << 20;

#[derive(Debug)]
pub struct Analysis {
    pub text: String,
    pub line_index: LineIndex,
    /// `None` when the checker panicked on this text (a compiler bug, reported as a
    /// diagnostic instead of taking the server down).
    pub checked: Option<Checked>,
    /// Whether every expression's type was recorded (hover needs them; diagnostics do not).
    pub has_types: bool,
}

#[derive(Debug)]
pub struct Checked {
    pub result: CheckResult,
    pub names: NameIndex,
}

impl Analysis {
    /// Checks a text and indexes its names. Never panics: the check runs on a large-stack
    /// thread under `catch_unwind`. With `record_types`, every expression's type is recorded
    /// for hover; without, the check is about a fifth faster, which the server uses for the
    /// check after each edit, recording types when a hover needs them.
    pub fn check(
        name: &str,
        text: &str,
        loader: &(dyn Loader + Sync),
        record_types: bool,
    ) -> Analysis {
        let run = || {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                let result = check_file(name, text, loader, CheckOptions { record_types });
                let names = NameIndex::build(&result.program);
                Checked { result, names }
            }))
            .ok()
        };
        let checked = std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("modelc-check".into())
                .stack_size(CHECK_STACK_BYTES)
                .spawn_scoped(scope, run);
            match spawned {
                Ok(handle) => handle.join().ok().flatten(),
                // No thread could be made (out of memory for its stack): check here rather
                // than not at all; the caller's thread has a large stack too.
                Err(_) => run(),
            }
        });
        Analysis {
            text: text.to_string(),
            line_index: LineIndex::new(text),
            checked,
            has_types: record_types,
        }
    }

    pub fn program(&self) -> Option<&Program> {
        self.checked.as_ref().map(|c| &c.result.program)
    }

    pub fn names(&self) -> Option<&NameIndex> {
        self.checked.as_ref().map(|c| &c.names)
    }

    /// The root file's id in the program's source map.
    pub fn root_file(&self) -> Option<FileId> {
        let program = self.program()?;
        program.modules.get(program.root).map(|m| m.file)
    }

    /// The global offset (the compiler's span space) of a byte offset in the document.
    pub fn global_offset(&self, byte_offset: usize) -> Option<u32> {
        let program = self.program()?;
        let base = program.sources.file(self.root_file()?).base;
        let offset = u32::try_from(byte_offset.min(self.text.len())).ok()?;
        base.checked_add(offset)
    }

    /// The byte offset in the document of a position a client sent.
    pub fn offset_of(&self, position: lsp_types::Position) -> usize {
        self.line_index.offset(&self.text, position)
    }
}
