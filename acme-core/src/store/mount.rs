//! Proving, before any order, that the store can be written the way it will be: a temp
//! file in its directory renamed into place.
//!
//! The corner this catches is Docker's single-file bind mount (`-v ./acme.json:/acme.json`):
//! the file is a mount point, so renaming over it fails with `EBUSY` — after the order was
//! placed and the certificate paid for in rate limit — and the state file beside it would
//! land outside the volume and vanish with the container.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::StoreError;
use super::atomic::PRIVATE_MODE;

/// The refusal for a store file, or the state file beside it, that is a mount point of
/// its own (`docker run -v ./acme.json:/acme.json`), or `None`. The advice names the
/// store's file either way: the state file follows the store into the mounted
/// directory. Reads only; `berth config check` reports it.
pub fn single_file_mount(store: &Path) -> Option<StoreError> {
    let state = super::state_path(store);
    let mounted = [store, state.as_path()]
        .into_iter()
        .find(|file| is_mount_point(file))?;
    Some(StoreError::SingleFileMount {
        path: mounted.to_path_buf(),
        name: store
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "acme.json".into()),
    })
}

/// The refusal for a store file that is a symbolic link ([`StoreError::Symlink`]), or
/// `None`. Reads only; `berth config check` reports it, and the owner refuses it at open.
pub fn symlinked(path: &Path) -> Option<StoreError> {
    super::atomic::refuse_symlink(path).err()
}

/// Refuses the store at `store` when it or its state file is a mount point of its own,
/// or when their directory does not take a new file and a rename.
pub(crate) fn check_replaceable(store: &Path) -> Result<(), StoreError> {
    if let Some(refusal) = single_file_mount(store) {
        return Err(refusal);
    }
    let dir = super::atomic::directory_of(store);
    let probe =
        |suffix: &str| dir.join(format!(".berth-write-test-{}-{suffix}", std::process::id()));
    let (first, second) = (probe("a"), probe("b"));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(&first)
        .and_then(|file| file.sync_all())
        .and_then(|()| fs::rename(&first, &second));
    let _ = fs::remove_file(&first);
    let _ = fs::remove_file(&second);
    result.map_err(|source| StoreError::NotWritable { dir, source })
}

/// Whether `path` is itself mounted: on another device than its directory, or listed as
/// a mount point (a bind mount from the same file system keeps the device number).
fn is_mount_point(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if meta.is_dir() {
        return false;
    }
    let Ok(real) = fs::canonicalize(path) else {
        return false;
    };
    if let Some(parent) = real.parent()
        && let Ok(dir) = fs::metadata(parent)
        && dir.dev() != meta.dev()
    {
        return true;
    }
    fs::read_to_string("/proc/self/mountinfo")
        .map(|table| listed(&table, &real))
        .unwrap_or(false)
}

/// Whether `mountinfo` (proc(5)) lists `path` as a mount point.
fn listed(mountinfo: &str, path: &Path) -> bool {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| Path::new(&unescape(point)) == path)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = field.get(i + 1..i + 4)
            && let Ok(byte) = u8::from_str_radix(octal, 8)
        {
            out.push(byte);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_read_with_their_escapes() {
        let table = "36 35 98:0 /mnt1 /data/acme.json rw,noatime master:1 - ext3 /dev/root rw\n\
                     37 35 98:0 /x /my\\040dir/acme.json rw - ext4 /dev/sda rw\n";
        assert!(listed(table, Path::new("/data/acme.json")));
        assert!(listed(table, Path::new("/my dir/acme.json")));
        assert!(!listed(table, Path::new("/data")));
    }

    #[test]
    fn a_writable_directory_passes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        check_replaceable(&dir.path().join("acme.json")).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let err = check_replaceable(&dir.path().join("missing/acme.json")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
