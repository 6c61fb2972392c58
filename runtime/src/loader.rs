//! Reads imported `.model` files from disk for the checker.

use modelc_compiler::check::modules::Loader;
use std::path::Path;

/// Resolves imports against the folder of the importing file.
pub struct FsLoader;

impl Loader for FsLoader {
    fn load_relative(&self, from: &str, relative: &str) -> Result<(String, String), String> {
        let folder = Path::new(from).parent().unwrap_or(Path::new(""));
        let path = folder.join(relative);
        let name = path.to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read `{name}`: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("`{name}` is not valid UTF-8"))?;
        Ok((name, text))
    }
}
