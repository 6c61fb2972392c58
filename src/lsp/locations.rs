//! Where a compiler span is for a client: the URI of its file and its UTF-16 range.
//!
//! The stdlib is embedded in the compiler under display names like `stdlib/nn.model`
//! (relative to the repository). A client needs a real file to open, so those names map to the
//! repository's `stdlib/` folder when it is present and unchanged since the build, and
//! otherwise to a copy of the embedded text written under the system's temporary folder.

use super::analysis::Analysis;
use super::position::LineIndex;
use super::uri::uri_of_path;
use lsp_types::{Location, Range, Uri};
use modelc_compiler::source::Span;
use modelc_compiler::stdlib;
use std::path::{Path, PathBuf};

/// The client location of a span of the analysed program: in the document itself
/// (`document_uri`), in an imported file, or in a stdlib file.
pub fn location_of_span(analysis: &Analysis, span: Span, document_uri: &Uri) -> Option<Location> {
    let program = analysis.program()?;
    let (file_id, start, end) = program.sources.relative(span)?;
    let file = program.sources.file(file_id);
    if Some(file_id) == analysis.root_file() {
        let range = analysis.line_index.range(&analysis.text, start, end);
        return Some(Location::new(document_uri.clone(), range));
    }
    let range = range_in_text(&file.text, start, end);
    let module = program.module_of_file(file_id)?;
    let path = if program.modules[module].is_stdlib {
        stdlib_file_path(&file.name)?
    } else {
        let path = PathBuf::from(&file.name);
        if !path.is_absolute() {
            // A file imported from an unsaved buffer resolves against the working folder.
            std::env::current_dir().ok()?.join(path)
        } else {
            path
        }
    };
    Some(Location::new(uri_of_path(&path)?, range))
}

/// The UTF-16 range of a byte range of any text.
pub fn range_in_text(text: &str, start: usize, end: usize) -> Range {
    LineIndex::new(text).range(text, start, end)
}

/// The file to show for a stdlib module's display name (`stdlib/nn.model`).
pub fn stdlib_file_path(display_name: &str) -> Option<PathBuf> {
    let embedded = stdlib::MODULES
        .iter()
        .find(|(_, name, _)| *name == display_name)
        .map(|(_, _, text)| *text)?;
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join(display_name);
    if std::fs::read_to_string(&repository).is_ok_and(|text| text == embedded) {
        return Some(repository);
    }
    // The repository is gone or its stdlib changed after this binary was built: positions
    // must match the embedded text, so show that text, written once per stdlib version.
    let cache = std::env::temp_dir()
        .join(format!("modelc-stdlib-{:016x}", stdlib_fingerprint()))
        .join(display_name);
    if std::fs::read_to_string(&cache).is_ok_and(|text| text == embedded) {
        return Some(cache);
    }
    let folder = cache.parent()?;
    std::fs::create_dir_all(folder).ok()?;
    // Write under a unique name and rename, so that two servers never see a half-written file.
    let temporary = folder.join(format!(
        ".{}.{}.tmp",
        cache.file_name()?.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&temporary, embedded).ok()?;
    std::fs::rename(&temporary, &cache).ok()?;
    Some(cache)
}

/// A hash of every embedded stdlib text (FNV-1a), naming the cache folder.
fn stdlib_fingerprint() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (_, name, text) in stdlib::MODULES {
        for byte in name.bytes().chain(text.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
