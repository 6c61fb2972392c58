//! `file:` URIs and paths. Documents are checked under their path, so that relative imports
//! resolve against the folder of the file on disk, and definitions in other files are sent
//! back as `file:` URIs.

use lsp_types::Uri;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The local path of a `file:` URI, percent-decoded; `None` for other schemes or when the
/// decoded bytes are not UTF-8.
pub fn path_of_uri(uri: &Uri) -> Option<PathBuf> {
    let text = uri.as_str();
    let rest = text
        .strip_prefix("file://")
        .or_else(|| text.strip_prefix("FILE://"))?;
    // `file://host/path` names a host; only an empty host or `localhost` is local.
    let path_start = rest.find('/')?;
    let host = &rest[..path_start];
    if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
        return None;
    }
    let encoded = &rest[path_start..];
    let encoded = encoded.split(['?', '#']).next().unwrap_or(encoded);
    let decoded = percent_decode(encoded)?;
    // `file:///C:/x` is the Windows path `C:/x`.
    let bytes = decoded.as_bytes();
    if cfg!(windows) && bytes.len() >= 3 && bytes[0] == b'/' && bytes[2] == b':' {
        return Some(PathBuf::from(&decoded[1..]));
    }
    Some(PathBuf::from(decoded))
}

/// The `file:` URI of an absolute path.
pub fn uri_of_path(path: &Path) -> Option<Uri> {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut encoded = String::from("file://");
    if !text.starts_with('/') {
        encoded.push('/');
    }
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~/:".contains(&byte);
        if keep {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Uri::from_str(&encoded).ok()
}

/// The name a document is checked under: its path for `file:` URIs, else the URI itself
/// (an unsaved buffer), whose relative imports then resolve against the working folder.
pub fn document_name(uri: &Uri) -> String {
    match path_of_uri(uri) {
        Some(path) => path.to_string_lossy().into_owned(),
        None => uri.as_str().to_string(),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            let high = (bytes[index + 1] as char).to_digit(16);
            let low = (bytes[index + 2] as char).to_digit(16);
            if let (Some(high), Some(low)) = (high, low) {
                decoded.push((high * 16 + low) as u8);
                index += 3;
                continue;
            }
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_round_trip_with_escapes() {
        let path = Path::new("/tmp/a folder/é.model");
        let uri = uri_of_path(path).expect("a valid URI");
        assert_eq!(uri.as_str(), "file:///tmp/a%20folder/%C3%A9.model");
        assert_eq!(path_of_uri(&uri).as_deref(), Some(path));
    }

    #[test]
    fn other_schemes_have_no_path() {
        let uri = Uri::from_str("untitled:Untitled-1").expect("a valid URI");
        assert_eq!(path_of_uri(&uri), None);
        assert_eq!(document_name(&uri), "untitled:Untitled-1");
    }

    #[test]
    fn a_truncated_escape_is_kept_as_text() {
        assert_eq!(percent_decode("/a%2").as_deref(), Some("/a%2"));
        assert_eq!(percent_decode("/a%41").as_deref(), Some("/aA"));
    }
}
