//! The crate's error type. No variant ever holds secret bytes.

use std::path::PathBuf;

/// Why a secret could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Both `X` and `X_FILE` are set.
    #[error(
        "both {var} and {file_var} are set; set only one (prefer {file_var}, secrets in the environment leak)"
    )]
    BothSet {
        /// The plain variable.
        var: String,
        /// The `_FILE` variable.
        file_var: String,
    },
    /// A required secret is not set anywhere.
    #[error(
        "secret {var} is not set; put it in a file and set {var}_FILE to its path, or provide the Docker secret {docker_path}"
    )]
    Missing {
        /// The variable name.
        var: String,
        /// Where the Docker secret would be.
        docker_path: PathBuf,
    },
    /// A secret was passed in a plain environment variable where only files are accepted.
    #[error(
        "{var} holds a secret in the environment, where `docker inspect` and child processes can read it; put it in a file and set {var}_FILE"
    )]
    PlainEnv {
        /// The variable name.
        var: String,
    },
    /// The file does not exist (or a symlink points nowhere).
    #[error("secret file {path} does not exist{}", if *dangling { " (it is a symlink to a missing target)" } else { "" })]
    NotFound {
        /// The file.
        path: PathBuf,
        /// Whether it is a dangling symlink.
        dangling: bool,
    },
    /// The path is a directory.
    #[error("secret file {path} is a directory; point to the file inside it")]
    IsDirectory {
        /// The path.
        path: PathBuf,
    },
    /// The path is a FIFO or a socket: reading it could wait forever.
    #[error(
        "secret file {path} is {kind}, not a regular file; write the secret to a file (mode 0600) and point to that"
    )]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The path is a FIFO whose writer did not write and close it in time.
    #[error(
        "secret file {path} is a FIFO (named pipe, or process substitution <(...)) that was not written and closed within {}s; start its writer first, or write the secret to a file (mode 0600) and point to that",
        waited.as_secs()
    )]
    FifoTimeout {
        /// The path.
        path: PathBuf,
        /// How long berth waited.
        waited: std::time::Duration,
    },
    /// The file cannot be read for lack of permission.
    #[error(
        "secret file {path} is not readable by this user; fix its owner or mode (chmod 600, owned by the user berth runs as)"
    )]
    PermissionDenied {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than the cap.
    #[error("secret file {path} is larger than {cap} bytes; is it the right file?")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap in bytes.
        cap: u64,
    },
    /// A string secret is not valid UTF-8.
    #[error(
        "secret file {path} is not valid UTF-8 text (byte {valid_up_to}); use a binary (raw) secret for key material"
    )]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the invalid byte sequence starts (an offset, never content).
        valid_up_to: usize,
    },
    /// The secret is empty after trimming.
    #[error("secret {source_name} is empty{}", if *after_trim { " after trimming the trailing newline" } else { "" })]
    Empty {
        /// The variable or file.
        source_name: String,
        /// Whether it was only empty once trimmed.
        after_trim: bool,
    },
    /// Any other I/O error.
    #[error("reading secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Watching a file for changes failed.
    #[error("watching secret file {path}: {reason}")]
    Watch {
        /// The file.
        path: PathBuf,
        /// What the watcher said.
        reason: String,
    },
}

impl Error {
    /// Maps an I/O error on `path` to the variant that says what to do.
    pub(crate) fn from_io(path: &std::path::Path, source: std::io::Error) -> Self {
        let path = path.to_path_buf();
        match source.kind() {
            std::io::ErrorKind::NotFound => {
                let dangling = std::fs::symlink_metadata(&path).is_ok();
                Self::NotFound { path, dangling }
            }
            std::io::ErrorKind::PermissionDenied => Self::PermissionDenied { path },
            std::io::ErrorKind::IsADirectory => Self::IsDirectory { path },
            _ => Self::Io { path, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_the_variant_with_the_fix() {
        let path = std::path::Path::new("/run/secrets/x");
        let denied = Error::from_io(
            path,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(matches!(denied, Error::PermissionDenied { .. }));
        assert!(denied.to_string().contains("chmod 600"), "{denied}");
        let other = Error::from_io(path, std::io::Error::other("disk on fire"));
        assert!(matches!(other, Error::Io { .. }));
    }
}
