//! Replacing a file so that no reader ever sees a partial one.
//!
//! Envoy reloads an ECDS file when a file is moved into the watched
//! directory, and reads it whole: the new content goes to a temporary file
//! in the same directory (same file system, so the rename is atomic), is
//! flushed to disk, and is renamed over the original; the directory is
//! flushed too so the rename survives a crash. Any failure removes the
//! temporary file (`tempfile` does, on drop) and leaves the original
//! untouched.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    // Hidden and ending in `.tmp`: not a `NAME.json` that `serve` would
    // read. Created as `File::create` would (0666 less the umask), not
    // tempfile's private 0600: a new file is readable as any other.
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{}.turnoutctl-", name.to_string_lossy()))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    // The replacement keeps the original's permissions.
    if let Ok(meta) = fs::metadata(path) {
        file.as_file().set_permissions(meta.permissions())?;
    }
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_with_its_permissions_and_nothing_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        replace(&path, b"{}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        replace(&path, b"{\"version\": 1}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"version\": 1}");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["users.json"]);
        // A failed write (the target is a directory) leaves no temporary
        // file behind.
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("x"), "x").unwrap();
        assert!(replace(&sub, b"{}").is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
