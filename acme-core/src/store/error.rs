//! Errors of the store.

use std::path::PathBuf;

use crate::Setting;

/// What went wrong reading or writing `acme.json`, the state file or an export.
/// Never carries file contents (they hold private keys).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An OS-level read/write/rename failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("reading", "writing", "renaming").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse; it was moved aside so nothing is lost or overwritten.
    #[error(
        "{path} is not valid JSON ({reason}); it was moved to {moved_to} and nothing was overwritten — inspect or restore it, then start again"
    )]
    Corrupt {
        /// The file as configured.
        path: PathBuf,
        /// Where the corrupt file now is.
        moved_to: PathBuf,
        /// The parser's message (position, not content).
        reason: String,
    },
    /// The file holds private keys and is readable by group or others.
    #[error("{path} is readable by others (mode {mode:04o}); run chmod 600 {path}")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The state file was written by a newer berth.
    #[error(
        "{path} has state format version {found}, this berth understands up to {supported}; upgrade berth"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A file read for display does not parse; it was left as it is.
    #[error(
        "{path} is not valid JSON ({reason}); it was left untouched — if another program is writing it, try again"
    )]
    Unparsable {
        /// The file.
        path: PathBuf,
        /// Where the JSON breaks (position, not content).
        reason: String,
    },
    /// One stored value does not parse; the others are unaffected.
    #[error("{store}: the value of {key} is unreadable ({reason}); delete or restore that key")]
    BadRecord {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// What is wrong (never the content).
        reason: String,
    },
    /// Somebody else wrote the key since it was read.
    #[error("{store}: {key} was changed by someone else at the same time")]
    Conflict {
        /// The store.
        store: String,
        /// The key.
        key: String,
    },
    /// A write made under a lease that is no longer held was refused.
    #[error(
        "{store}: the lock {lock} was lost (another berth may have taken over), so the write of {key} was refused rather than overwrite newer data"
    )]
    Fenced {
        /// The store.
        store: String,
        /// The key written.
        key: String,
        /// The lock name.
        lock: String,
    },
    /// The store cannot be reached or answered with an error.
    #[error("{store}: {action}: {reason}")]
    Backend {
        /// The store (never with a password).
        store: String,
        /// What berth was doing.
        action: &'static str,
        /// What went wrong.
        reason: String,
        /// The setting at fault (credentials, client certificate), when one is.
        setting: Option<Setting>,
    },
    /// The store was opened for reading only.
    #[error("{store} was opened read-only; this is a bug in the command that tried to write")]
    ReadOnly {
        /// The store.
        store: String,
    },
    /// The file is a mount point of its own (`-v ./acme.json:/acme.json`): it cannot be
    /// replaced atomically, and the state beside it would live outside the volume.
    #[error(
        "{path} is a single file mounted into the container, which cannot be replaced safely (renaming over a mount point fails) and leaves berth's state outside the volume; mount the directory that holds {name} instead, and use {name} inside it as the store"
    )]
    SingleFileMount {
        /// The mounted file: the store, or its state file.
        path: PathBuf,
        /// The store's file name, for the advice (also when the state file is the
        /// mount: it moves with the store).
        name: String,
    },
    /// The store's directory does not take a new file and a rename, the way every write
    /// is made.
    #[error(
        "cannot store certificates in {dir}: {source}; make the directory writable by this user (berth writes a temporary file there and renames it over the store)"
    )]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A store or export file is a symbolic link berth did not create. Replacing it
    /// atomically would turn the link into a regular file (its target left stale), and
    /// writing through it would let whoever made the link choose where keys go.
    #[error(
        "{path} is a symbolic link to {target}; berth does not write through links it did not create — use the link's target as the path, or remove the link"
    )]
    Symlink {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// A store file is a FIFO, socket, device or directory.
    #[error("{path} is {kind}; berth reads its store from regular files only")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// A store file is larger than berth reads.
    #[error("{path} is larger than {cap} bytes{}; it is not a store berth wrote — check the path", size.map(|s| format!(" ({s} bytes)")).unwrap_or_default())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, when known before reading.
        size: Option<u64>,
        /// The cap.
        cap: u64,
    },
    /// No stored certificate matches a name.
    #[error(
        "no stored certificate covers {name} in {path}; check the name against the names the stored certificates cover"
    )]
    NotFound {
        /// The name asked for.
        name: String,
        /// The store.
        path: PathBuf,
    },
}

impl StoreError {
    /// The setting whose change fixes this error, when one does.
    pub fn setting(&self) -> Option<Setting> {
        match self {
            Self::Backend { setting, .. } => *setting,
            Self::SingleFileMount { .. } => Some(Setting::StorePath),
            Self::NotFound { .. } => Some(Setting::StoredName),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
