//! Crash-safe writes for files that hold keys.
//!
//! Traefik writes `acme.json` in place, which is why people find it empty after a crash
//! or a full disk. berth writes a temp file in the same directory, fsyncs it, renames it
//! over the target and fsyncs the directory: a reader sees the old file or the new one,
//! never half of either.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Mode of every file that holds a private key.
pub(crate) const PRIVATE_MODE: u32 = 0o600;

/// The directory a store file lives in (`.` for a bare file name).
pub(crate) fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The file name of a store file, as text.
pub(crate) fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Replaces `path` with `bytes` atomically, with permission bits `mode`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = directory_of(path);
    let file_name = file_name_of(path);
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| StoreError::io("creating", &tmp, e))?;
        // `mode` above is filtered by the umask; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| StoreError::io("chmod", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| StoreError::io("writing", &tmp, e))?;
        file.sync_all()
            .map_err(|e| StoreError::io("syncing", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| StoreError::io("renaming into place", path, e))?;
        // The rename is durable only once the directory entry is.
        if let Ok(dir_handle) = File::open(&dir) {
            let _ = dir_handle.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Refuses a file holding keys that group or others can read.
pub(crate) fn check_private(path: &Path) -> Result<(), StoreError> {
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StoreError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("reading metadata of", path, e)),
    }
}

/// Reads a file, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("reading", path, e)),
    }
}

/// Moves a file that does not parse aside (`<path>.corrupt-<UTC time>`) and returns the
/// error describing it.
pub(crate) fn quarantine(path: &Path, reason: String) -> StoreError {
    let stamp = time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "unknown-time".into());
    let mut moved_to = path.as_os_str().to_owned();
    moved_to.push(format!(".corrupt-{stamp}"));
    let moved_to = PathBuf::from(moved_to);
    match fs::rename(path, &moved_to) {
        Ok(()) => {
            tracing::error!(path = %path.display(), moved_to = %moved_to.display(), "store file is corrupt; moved aside");
            StoreError::Corrupt {
                path: path.to_path_buf(),
                moved_to,
                reason,
            }
        }
        Err(e) => StoreError::io("moving aside corrupt", path, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_0600_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        write_atomic(&path, b"one", PRIVATE_MODE).unwrap();
        write_atomic(&path, b"two", PRIVATE_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        write_atomic(&path, b"old", PRIVATE_MODE).unwrap();
        // Renaming a file over a non-empty directory fails: the target stays as it was.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new", PRIVATE_MODE).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let err = write_atomic(
            &dir.path().join("missing-dir/acme.json"),
            b"new",
            PRIVATE_MODE,
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
        let leftovers = fs::read_dir(dir.path()).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        });
        assert_eq!(leftovers.count(), 0);
    }

    #[test]
    fn group_readable_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        fs::write(&path, b"{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_private(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_private(&path).is_ok());
        assert!(check_private(&dir.path().join("absent")).is_ok());
    }
}
