//! Whole-file reads and atomic writes, with errors as diagnostics that name the path.

use modelc_compiler::diag::Diagnostic;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Reads a whole file into memory. Fails with an `io-error` diagnostic naming the path.
pub fn read_file(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    fs::read(path).map_err(|error| {
        Diagnostic::error(
            "io-error",
            format!("could not read `{}`: {error}", path.display()),
        )
    })
}

/// Replaces the contents of `path` with `bytes` so that a reader, or the file system after a
/// crash, sees either the old file whole or the new file whole, never a half-written one.
///
/// The bytes go to a temporary file in the same directory (a rename is only atomic within one
/// file system), which is flushed to disk and then renamed over the target. On any failure the
/// temporary file is removed and the target is left untouched. When the target already exists
/// its permissions are carried over to the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Diagnostic> {
    let io_error = |action: &str, error: std::io::Error| {
        Diagnostic::error(
            "io-error",
            format!("could not write `{}`: {action}: {error}", path.display()),
        )
    };
    let file_name = path.file_name().ok_or_else(|| {
        Diagnostic::error(
            "io-error",
            format!(
                "could not write `{}`: the path does not name a file",
                path.display()
            ),
        )
    })?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temporary_path = directory.join(unique_temporary_name(file_name));

    // `create_new` refuses to follow or reuse an existing file, so a stale or hostile file with
    // the same name is never overwritten or written through.
    let mut temporary_file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary_path)
        .map_err(|error| io_error("could not create a temporary file beside it", error))?;

    let result = write_and_rename(&mut temporary_file, &temporary_path, path, bytes);
    drop(temporary_file);
    match result {
        Ok(()) => {
            sync_directory(&directory);
            Ok(())
        }
        Err((action, error)) => {
            // Best effort: the error being reported is the write failure, not this cleanup.
            let _ = fs::remove_file(&temporary_path);
            Err(io_error(action, error))
        }
    }
}

fn write_and_rename(
    temporary_file: &mut File,
    temporary_path: &Path,
    target_path: &Path,
    bytes: &[u8],
) -> Result<(), (&'static str, std::io::Error)> {
    temporary_file
        .write_all(bytes)
        .map_err(|error| ("writing the data failed", error))?;
    // Keep the user's permissions on the file being replaced; a new file gets the default ones.
    if let Ok(existing) = fs::metadata(target_path) {
        if existing.is_file() {
            temporary_file
                .set_permissions(existing.permissions())
                .map_err(|error| ("copying the old file's permissions failed", error))?;
        }
    }
    // Without this, a crash after the rename can leave a renamed but empty file on some file
    // systems: the rename is durable before the data is.
    temporary_file
        .sync_all()
        .map_err(|error| ("flushing the data to disk failed", error))?;
    fs::rename(temporary_path, target_path)
        .map_err(|error| ("renaming the temporary file over it failed", error))
}

/// `.NAME.PID.COUNTER.tmp`: the pid separates processes, the counter separates threads and
/// repeated calls within one process, and the leading dot keeps it out of plain listings.
fn unique_temporary_name(file_name: &std::ffi::OsStr) -> std::ffi::OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(file_name);
    name.push(format!(".{}.{count}.tmp", std::process::id()));
    name
}

/// Makes the rename itself durable. Not every platform can open a directory for syncing, and
/// the data is already safe in the file, so failures here are ignored.
fn sync_directory(directory: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = File::open(directory) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = directory;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_directory(test_name: &str) -> PathBuf {
        let directory = std::env::temp_dir().join(format!(
            "modelc-runtime-fsio-{test_name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&directory);
        fs::create_dir_all(&directory).expect("create scratch directory");
        directory
    }

    fn directory_entries(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(directory)
            .expect("list scratch directory")
            .map(|entry| {
                entry
                    .expect("directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_atomic_creates_then_replaces_content_and_leaves_no_temporary_file() {
        let directory = scratch_directory("replace");
        let target = directory.join("weights.bin");

        write_atomic(&target, b"first version, longer than the second").expect("first write");
        assert_eq!(
            read_file(&target).expect("read back"),
            b"first version, longer than the second"
        );

        write_atomic(&target, b"second").expect("second write");
        assert_eq!(read_file(&target).expect("read back"), b"second");
        assert_eq!(
            directory_entries(&directory),
            vec!["weights.bin".to_string()]
        );

        let _ = fs::remove_dir_all(&directory);
    }

    #[test]
    fn write_atomic_failure_keeps_the_old_target_and_removes_the_temporary_file() {
        let directory = scratch_directory("failure");
        // A directory cannot be replaced by a file with rename, so the last step fails.
        let target = directory.join("occupied");
        fs::create_dir(&target).expect("create directory at target");
        fs::write(target.join("inside.txt"), b"user data").expect("write user data");

        let error = write_atomic(&target, b"new").expect_err("renaming over a directory must fail");
        assert_eq!(error.code, "io-error");
        assert!(
            error.message.contains("occupied"),
            "message names the path: {}",
            error.message
        );
        assert_eq!(directory_entries(&directory), vec!["occupied".to_string()]);
        assert_eq!(
            fs::read(target.join("inside.txt")).expect("user data kept"),
            b"user data"
        );

        let _ = fs::remove_dir_all(&directory);
    }

    #[test]
    fn write_atomic_into_a_missing_directory_is_an_io_error() {
        let directory = scratch_directory("missing");
        let target = directory.join("no-such-directory").join("file.bin");
        let error = write_atomic(&target, b"x").expect_err("missing directory");
        assert_eq!(error.code, "io-error");
        let _ = fs::remove_dir_all(&directory);
    }

    #[test]
    fn read_file_of_a_missing_path_names_it() {
        let path = Path::new("/definitely/not/here/model.safetensors");
        let error = read_file(path).expect_err("missing file");
        assert_eq!(error.code, "io-error");
        assert!(error
            .message
            .contains("/definitely/not/here/model.safetensors"));
    }

    #[cfg(unix)]
    #[test]
    fn write_atomic_keeps_the_permissions_of_the_file_it_replaces() {
        use std::os::unix::fs::PermissionsExt;
        let directory = scratch_directory("permissions");
        let target = directory.join("script.sh");
        fs::write(&target, b"old").expect("write old");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o750)).expect("chmod");
        write_atomic(&target, b"new").expect("replace");
        let mode = fs::metadata(&target).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        let _ = fs::remove_dir_all(&directory);
    }
}
