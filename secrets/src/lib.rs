//! Secret values for containers.
//!
//! - [`Secret`] / [`SecretBytes`] are zeroized on drop and print as `[redacted]`; the
//!   content is reached only through `expose()`.
//! - [`Loader`] follows the `file_env` convention of the official database images:
//!   `X` or `X_FILE` (both set is an error, empty counts as unset), else the Docker
//!   secret `/run/secrets/<x>`. One trim policy everywhere: one leading UTF-8 BOM and
//!   every trailing `\r`/`\n` are removed, never spaces or tabs; [`TrimMode::Raw`] keeps
//!   bytes as they are. Reads are capped (1 MiB) into zeroizing buffers.
//! - [`watch`] reports when a secret file changes (replacement, Kubernetes `..data`
//!   symlink swaps).
//!
//! ```
//! use berth_secrets::{Loader, Secret, Source};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("db_password");
//! std::fs::write(&path, "hunter2\r\n")?; // as a Windows editor saves it
//!
//! let file = path.display().to_string();
//! let loader = Loader::new().with_env(move |var| (var == "DB_PASSWORD_FILE").then(|| file.clone()));
//! let loaded = loader.require_env("DB_PASSWORD")?;
//! assert_eq!(loaded.secret.expose(), "hunter2");
//! assert_eq!(loaded.trimmed.trailing_newline_bytes, 2);
//! assert!(matches!(loaded.source, Source::File { .. }));
//! assert_eq!(format!("{:?}", loaded.secret), "[redacted]");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod fifo;
mod loader;
mod secret;
mod trim;
mod watch;

pub use error::Error;
pub use loader::{
    DEFAULT_FIFO_WAIT, DEFAULT_MAX_BYTES, DEFAULT_SECRETS_DIR, Loaded, Loader, Source,
};
pub use secret::{REDACTED, Secret, SecretBytes};
pub use trim::{TrimMode, Trimmed};
pub use watch::{SecretWatcher, WatchOptions, watch};
