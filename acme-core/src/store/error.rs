//! Errors of the store.

use std::path::PathBuf;

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
    /// No stored certificate matches a name.
    #[error("no stored certificate covers {name} in {path}; see `berth certs list --store {path}`")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The store.
        path: PathBuf,
    },
}

impl StoreError {
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
