//! Crash-safe writes for files that hold keys.
//!
//! Traefik writes `acme.json` in place, which is why people find it empty after a crash
//! or a full disk. berth writes a temp file in the same directory, fsyncs it, renames it
//! over the target and fsyncs the directory: a reader sees the old file or the new one,
//! never half of either.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::StoreError;

/// Mode of every file that holds a private key.
pub(crate) const PRIVATE_MODE: u32 = 0o600;

/// Runs file I/O on tokio's blocking pool, so it never stalls the runtime that drives
/// orders (in `berth run` a single thread shared with the admin server); a task that
/// could not finish (panicked or cancelled) is an I/O error like any other.
pub(crate) async fn blocking_io<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

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

/// Replaces `path` with `bytes` atomically, with permission bits `mode`. A `path` that
/// is a symbolic link is refused ([`StoreError::Symlink`]), never replaced by a regular
/// file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    refuse_symlink(path)?;
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

/// The most berth reads of `acme.json`: 10,000 certificates take about 21 MB, so this
/// leaves room for ten times that while a file that is not a store (a disk image, a log
/// piped to the wrong path) is refused instead of filling memory.
pub(crate) const ACME_JSON_CAP: u64 = 256 * 1024 * 1024;

/// The most berth reads of its state file (ledger, ARI advice and history per set: a few
/// hundred bytes each, so 10,000 sets take a few MB).
pub(crate) const STATE_CAP: u64 = 256 * 1024 * 1024;

/// The most berth reads of the DNS record journal (one short entry per TXT record in
/// flight).
pub(crate) const JOURNAL_CAP: u64 = 16 * 1024 * 1024;

/// How a reader treats a key file whose mode lets others read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The owning writer: a group-readable file (Kubernetes `fsGroup` makes every file on
    /// the volume 0660 at each mount) is set back to 0600 with a warning; a
    /// world-readable one is refused.
    Owner,
    /// A reader (`certs list`, `config check`, the poll): never changes the file, warns.
    ReadOnly,
}

/// Refuses a store file that is a symbolic link: berth replaces the file by renaming a
/// temp file over it, which would turn the link into a regular file and leave its target
/// stale. Reads only.
pub(crate) fn refuse_symlink(path: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(StoreError::Symlink {
            path: path.to_path_buf(),
            target: fs::read_link(path).unwrap_or_default(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("reading metadata of", path, e)),
    }
}

/// Reads a file that holds keys, `None` when it does not exist. One open: the mode, the
/// file type and the size are checked on the descriptor that is then read (`fstat`), so
/// the file cannot be swapped between the check and the read. The open does not block
/// on a FIFO (`O_NONBLOCK`); anything but a regular file is refused, and so is a file
/// larger than `cap`.
pub(crate) fn read_private(
    path: &Path,
    cap: u64,
    access: Access,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("opening", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| StoreError::io("reading metadata of", path, e))?;
    if !meta.file_type().is_file() {
        return Err(StoreError::NotRegular {
            path: path.to_path_buf(),
            kind: file_kind(&meta.file_type()),
        });
    }
    check_mode(&file, path, meta.permissions().mode() & 0o777, access)?;
    if meta.len() > cap {
        return Err(StoreError::TooLarge {
            path: path.to_path_buf(),
            size: Some(meta.len()),
            cap,
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0)));
    // The file may grow between fstat and read: read one byte past the cap to notice.
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io("reading", path, e))?;
    if bytes.len() as u64 > cap {
        return Err(StoreError::TooLarge {
            path: path.to_path_buf(),
            size: None,
            cap,
        });
    }
    Ok(Some(bytes))
}

/// Applies `access` to a key file opened as `file` with permission bits `mode`.
fn check_mode(file: &File, path: &Path, mode: u32, access: Access) -> Result<(), StoreError> {
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let refusal = StoreError::Permissions {
        path: path.to_path_buf(),
        mode,
    };
    match access {
        Access::Owner if mode & 0o007 != 0 => Err(refusal),
        Access::Owner => {
            // Through the descriptor (fchmod): the file that was checked is the one fixed.
            match file.set_permissions(fs::Permissions::from_mode(PRIVATE_MODE)) {
                Ok(()) => tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:04o}"),
                    "store file was readable by its group (Kubernetes fsGroup does this at every mount); set it back to 0600. Set fsGroupChangePolicy: OnRootMismatch in the pod's securityContext so the volume is not relabelled at each start"
                ),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:04o}"),
                    error = %e,
                    "store file is readable by its group and could not be set back to 0600; run chmod 600 {}",
                    path.display()
                ),
            }
            Ok(())
        }
        Access::ReadOnly => {
            tracing::warn!(path = %path.display(), "{refusal}");
            Ok(())
        }
    }
}

/// A file type in words, for the refusal of a non-regular store or secret file.
fn file_kind(kind: &fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a regular file"
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
    fn owner_sets_a_group_readable_file_back_to_0600_and_refuses_a_world_readable_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        fs::write(&path, b"{}").unwrap();
        // What Kubernetes fsGroup leaves: group read/write.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o660)).unwrap();
        let read = read_private(&path, ACME_JSON_CAP, Access::ReadOnly).unwrap();
        assert_eq!(read.as_deref().map(Vec::as_slice), Some(&b"{}"[..]));
        assert_eq!(mode(&path), 0o660, "a reader changed the mode");
        assert!(read_private(&path, ACME_JSON_CAP, Access::Owner).is_ok());
        assert_eq!(mode(&path), 0o600, "the owner did not fix the mode");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_private(&path, ACME_JSON_CAP, Access::Owner)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
        assert_eq!(mode(&path), 0o644, "a refused file was changed");
        assert!(read_private(&path, ACME_JSON_CAP, Access::ReadOnly).is_ok());
        let absent = dir.path().join("absent");
        assert!(read_private(&absent, 1, Access::Owner).unwrap().is_none());
    }

    #[test]
    fn a_file_over_the_cap_or_not_regular_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json.berth-state");
        write_atomic(&path, &[b' '; 100], PRIVATE_MODE).unwrap();
        let err = read_private(&path, 99, Access::Owner).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { cap: 99, .. }), "{err}");
        assert!(err.to_string().contains("acme.json.berth-state"), "{err}");
        assert!(read_private(&path, 100, Access::Owner).is_ok());

        // A FIFO with no writer: a plain open would wait forever.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = read_private(&fifo, ACME_JSON_CAP, Access::Owner).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        let err = read_private(dir.path(), ACME_JSON_CAP, Access::ReadOnly).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
    }

    #[test]
    fn a_symlink_is_refused_and_left_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        write_atomic(&target, b"old", PRIVATE_MODE).unwrap();
        let link = dir.path().join("acme.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_atomic(&link, b"new", PRIVATE_MODE).unwrap_err();
        assert!(matches!(err, StoreError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("real.json"), "{err}");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&target).unwrap(), b"old");
    }
}
