//! Loading secrets the way containers hand them over: `X`, `X_FILE`, or a Docker secret
//! at `/run/secrets/<x>` — the `file_env` convention of the official database images.

use std::collections::HashSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::Error;
use crate::fifo;
use crate::secret::{Secret, SecretBytes};
use crate::trim::{TrimMode, Trimmed, trim};

/// Default read cap: a secret larger than this is almost certainly the wrong file.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;

/// How long a FIFO secret may take to be written and closed ([`Loader::with_fifo_wait`]).
pub const DEFAULT_FIFO_WAIT: Duration = Duration::from_secs(5);

/// Where Docker and Swarm mount secrets.
pub const DEFAULT_SECRETS_DIR: &str = "/run/secrets";

/// Where a loaded secret came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The environment variable itself.
    Env {
        /// The variable.
        var: String,
    },
    /// A file named by `<var>_FILE`.
    File {
        /// The `_FILE` variable.
        var: String,
        /// The file.
        path: PathBuf,
    },
    /// A Docker secret file.
    DockerSecret {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env { var } => write!(f, "environment variable {var}"),
            Self::File { var, path } => write!(f, "file {} (from {var})", path.display()),
            Self::DockerSecret { path } => write!(f, "Docker secret {}", path.display()),
        }
    }
}

/// A secret with where it came from and what trimming removed.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The value.
    pub secret: Secret,
    /// Where it came from.
    pub source: Source,
    /// What the trim policy removed.
    pub trimmed: Trimmed,
}

type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Loads secrets with one policy: size cap, trim mode, empty handling, secrets dir.
///
/// ```
/// use berth_secrets::{Loader, TrimMode};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("api_token"), "t0ken\n")?; // a Docker secret
/// let loader = Loader::new()
///     .with_env(|_| None) // nothing in the environment
///     .with_secrets_dir(dir.path())
///     .with_max_bytes(4096);
/// assert_eq!(loader.require_env("API_TOKEN")?.secret.expose(), "t0ken");
/// assert!(loader.from_env("OTHER")?.is_none());
///
/// let raw = Loader::new().with_mode(TrimMode::Raw);
/// assert_eq!(raw.read_file_bytes(&dir.path().join("api_token"))?.expose(), b"t0ken\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Loader {
    env: EnvLookup,
    secrets_dir: Option<PathBuf>,
    max_bytes: u64,
    mode: TrimMode,
    allow_empty: bool,
    fifo_wait: Duration,
    warned: Mutex<HashSet<PathBuf>>,
}

impl fmt::Debug for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader")
            .field("secrets_dir", &self.secrets_dir())
            .field("max_bytes", &self.max_bytes)
            .field("mode", &self.mode)
            .field("allow_empty", &self.allow_empty)
            .field("fifo_wait", &self.fifo_wait)
            .finish_non_exhaustive()
    }
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// Reads the process environment, Docker secrets in [`DEFAULT_SECRETS_DIR`], 1 MiB
    /// cap, trim policy on, empty values refused.
    pub fn new() -> Self {
        Self {
            env: Arc::new(|key| std::env::var(key).ok()),
            secrets_dir: None,
            max_bytes: DEFAULT_MAX_BYTES,
            mode: TrimMode::Trim,
            allow_empty: false,
            fifo_wait: DEFAULT_FIFO_WAIT,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// Looks variables up with `lookup` instead of the process environment (tests,
    /// config files).
    pub fn with_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// Where Docker secrets are looked for (default [`DEFAULT_SECRETS_DIR`],
    /// `/run/secrets`). The loader reads no variable for it: an application that lets
    /// its users move the directory passes their choice here.
    ///
    /// ```
    /// use berth_secrets::Loader;
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("db_password"), "hunter2\n")?;
    /// // An application's own setting, e.g. from its command line or environment.
    /// let configured = Some(dir.path().to_path_buf());
    /// let mut loader = Loader::new().with_env(|_| None);
    /// if let Some(dir) = configured {
    ///     loader = loader.with_secrets_dir(dir);
    /// }
    /// assert_eq!(loader.secrets_dir(), dir.path());
    /// assert_eq!(loader.require_env("DB_PASSWORD")?.secret.expose(), "hunter2");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_secrets_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.secrets_dir = Some(dir.into());
        self
    }

    /// The read cap in bytes.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Trim or keep bytes raw.
    pub fn with_mode(mut self, mode: TrimMode) -> Self {
        self.mode = mode;
        self
    }

    /// How long a FIFO given as a secret file (process substitution `<(…)` makes one)
    /// may take to be written and closed before reading it fails (default 5 s). A
    /// regular file is read at once; a socket is refused.
    pub fn with_fifo_wait(mut self, wait: Duration) -> Self {
        self.fifo_wait = wait;
        self
    }

    /// Accept values that are empty (after trimming).
    pub fn allow_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
    }

    /// The Docker secrets directory in effect.
    pub fn secrets_dir(&self) -> PathBuf {
        self.secrets_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR))
    }

    /// `name`, `name_FILE`, or the Docker secret `<dir>/<name lowercased>`; `Ok(None)`
    /// when none is set. Both variables set is an error; empty counts as unset.
    pub fn from_env(&self, name: &str) -> Result<Option<Loaded>, Error> {
        let file_var = format!("{name}_FILE");
        let value = (self.env)(name)
            .filter(|v| !v.is_empty())
            .map(Zeroizing::new);
        let file = (self.env)(&file_var).filter(|v| !v.is_empty());
        match (value, file) {
            (Some(_), Some(_)) => Err(Error::BothSet {
                var: name.to_owned(),
                file_var,
            }),
            (Some(value), None) => {
                let (range, trimmed) = trim(value.as_bytes(), self.mode);
                let text = Zeroizing::new(value.as_bytes()[range].to_vec());
                let secret = self.to_secret(text, name, trimmed, None)?;
                Ok(Some(Loaded {
                    secret,
                    source: Source::Env {
                        var: name.to_owned(),
                    },
                    trimmed,
                }))
            }
            (None, Some(path)) => {
                let path = PathBuf::from(path);
                let (secret, trimmed) = self.read_text(&path)?;
                Ok(Some(Loaded {
                    secret,
                    source: Source::File {
                        var: file_var,
                        path,
                    },
                    trimmed,
                }))
            }
            (None, None) => {
                let path = self.secrets_dir().join(name.to_ascii_lowercase());
                if std::fs::symlink_metadata(&path).is_err() {
                    return Ok(None);
                }
                let (secret, trimmed) = self.read_text(&path)?;
                Ok(Some(Loaded {
                    secret,
                    source: Source::DockerSecret { path },
                    trimmed,
                }))
            }
        }
    }

    /// Like [`Self::from_env`], but a missing secret is an error saying what to set.
    pub fn require_env(&self, name: &str) -> Result<Loaded, Error> {
        self.from_env(name)?.ok_or_else(|| Error::Missing {
            var: name.to_owned(),
            docker_path: self.secrets_dir().join(name.to_ascii_lowercase()),
        })
    }

    /// Refuses a secret passed in a plain environment variable where berth accepts only
    /// `<var>_FILE` (the environment leaks through `docker inspect` and to children).
    pub fn refuse_plain_env(&self, var: &str) -> Result<(), Error> {
        match (self.env)(var) {
            Some(value) if !value.is_empty() => {
                drop(Zeroizing::new(value));
                Err(Error::PlainEnv {
                    var: var.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Reads a text secret from `path` with this loader's policy.
    pub fn read_file(&self, path: &Path) -> Result<Secret, Error> {
        self.read_text(path).map(|(secret, _)| secret)
    }

    /// Reads a binary secret from `path` (trimmed only in [`TrimMode::Trim`]).
    pub fn read_file_bytes(&self, path: &Path) -> Result<SecretBytes, Error> {
        let (bytes, _) = self.read_bytes(path)?;
        Ok(SecretBytes::new(bytes.to_vec()))
    }

    fn read_text(&self, path: &Path) -> Result<(Secret, Trimmed), Error> {
        let (bytes, trimmed) = self.read_bytes(path)?;
        let name = path.display().to_string();
        Ok((self.to_secret(bytes, &name, trimmed, Some(path))?, trimmed))
    }

    fn to_secret(
        &self,
        bytes: Zeroizing<Vec<u8>>,
        name: &str,
        trimmed: Trimmed,
        path: Option<&Path>,
    ) -> Result<Secret, Error> {
        if bytes.is_empty() && !self.allow_empty {
            return Err(Error::Empty {
                source_name: name.to_owned(),
                after_trim: trimmed.trailing_newline_bytes > 0 || trimmed.bom,
            });
        }
        match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(Secret::new(text.to_owned())),
            Err(e) => Err(Error::NotUtf8 {
                path: path.map_or_else(|| PathBuf::from(name), Path::to_path_buf),
                valid_up_to: e.valid_up_to(),
            }),
        }
    }

    /// Reads at most `max_bytes` (checked before and during the read) into a zeroizing
    /// buffer and applies the trim mode. One open: type, size and mode are checked on the
    /// descriptor that is read (`fstat`), and the open does not wait for a FIFO's writer
    /// (`O_NONBLOCK`) — a FIFO or socket is refused.
    fn read_bytes(&self, path: &Path) -> Result<(Zeroizing<Vec<u8>>, Trimmed), Error> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::from_io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::from_io(path, e))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            return Err(Error::IsDirectory {
                path: path.to_path_buf(),
            });
        }
        // A device is read up to the cap like a file. A FIFO (process substitution) is
        // read until its writer closes it, within `fifo_wait`; a socket is refused.
        if kind.is_socket() {
            return Err(Error::NotRegular {
                path: path.to_path_buf(),
                kind: "a socket",
            });
        }
        if kind.is_fifo() {
            let buffer = fifo::read(&file, self.max_bytes, self.fifo_wait)
                .map_err(|e| e.at(path, self.max_bytes, self.fifo_wait))?;
            return Ok(self.trimmed(buffer));
        }
        if meta.len() > self.max_bytes {
            return Err(Error::TooLarge {
                path: path.to_path_buf(),
                cap: self.max_bytes,
            });
        }
        self.warn_if_shared(path, meta.permissions().mode());
        let mut buffer = Zeroizing::new(Vec::with_capacity(
            usize::try_from(meta.len().min(self.max_bytes)).unwrap_or(0),
        ));
        // The file may grow between fstat and read: read one byte past the cap to notice.
        file.take(self.max_bytes.saturating_add(1))
            .read_to_end(&mut buffer)
            .map_err(|e| Error::from_io(path, e))?;
        if buffer.len() as u64 > self.max_bytes {
            return Err(Error::TooLarge {
                path: path.to_path_buf(),
                cap: self.max_bytes,
            });
        }
        Ok(self.trimmed(buffer))
    }

    /// Applies the trim mode, copying only when something was trimmed.
    fn trimmed(&self, buffer: Zeroizing<Vec<u8>>) -> (Zeroizing<Vec<u8>>, Trimmed) {
        let (range, trimmed) = trim(&buffer, self.mode);
        if range == (0..buffer.len()) {
            return (buffer, trimmed);
        }
        (Zeroizing::new(buffer[range].to_vec()), trimmed)
    }

    fn warn_if_shared(&self, path: &Path, mode: u32) {
        if mode & 0o044 == 0 {
            return;
        }
        let first = self
            .warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_path_buf());
        if first {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:04o}", mode & 0o777),
                "secret file is readable by group or others; run chmod 600 {} (Docker secrets default to 0444: set mode: 0400 in the stack file)",
                path.display()
            );
        }
    }
}

impl Secret {
    /// [`Loader::from_env`] with the default loader: `name`, `name_FILE`, or the Docker
    /// secret `/run/secrets/<name lowercased>`.
    pub fn from_env(name: &str) -> Result<Option<Secret>, Error> {
        Ok(Loader::new().from_env(name)?.map(|loaded| loaded.secret))
    }

    /// Like [`Secret::from_env`], but a missing secret is an error saying what to set.
    pub fn require_env(name: &str) -> Result<Secret, Error> {
        Loader::new().require_env(name).map(|loaded| loaded.secret)
    }

    /// Reads a text secret from a file with the trim policy and the 1 MiB cap.
    pub fn from_file(path: &Path) -> Result<Secret, Error> {
        Loader::new().read_file(path)
    }
}
