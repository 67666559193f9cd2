//! Replacing a file so that no reader ever sees a partial one.
//!
//! Envoy reloads an ECDS file when a file is moved into the watched
//! directory, and reads it whole: the new content goes to a temporary file
//! in the same directory (same file system, so the rename is atomic), is
//! flushed to disk, and is renamed over the original; the directory is
//! flushed too so the rename survives a crash. Any failure removes the
//! temporary file and leaves the original untouched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.turnoutctl-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A leftover of an earlier run that died with the same pid.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        // The replacement keeps the original's permissions.
        if let Ok(meta) = fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
