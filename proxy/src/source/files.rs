//! Certificates read from files that another process may rewrite at any time.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_certs::acme_json::Document;
use berth_certs::{CertSet, Certificate};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::pem;
use crate::error::Error;

/// A certificate file larger than this is refused rather than read into memory.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// How often the polling fallback looks at the files when the OS offers no change
/// notifications (inotify instances exhausted, some network file systems).
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How certificates are laid out on disk, and so how bytes become a [`CertSet`].
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    /// A directory of combined `<name>.pem` files (chain, leaf first, then the key).
    PemDir(PathBuf),
    /// One combined PEM file.
    PemFile(PathBuf),
    /// A chain file and a key file.
    PemPair { cert: PathBuf, key: PathBuf },
    /// A Traefik-compatible `acme.json` store.
    AcmeJson(PathBuf),
}

impl Layout {
    /// A directory is a PEM directory, `*.json` is an `acme.json` store, anything else a
    /// combined PEM file.
    pub(crate) fn detect(path: PathBuf) -> Self {
        if path.is_dir() {
            Self::PemDir(path)
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::AcmeJson(path)
        } else {
            Self::PemFile(path)
        }
    }

    /// Reads the files now. Blocking I/O: call it off the async workers.
    pub(crate) fn load(&self) -> Result<CertSet, Error> {
        match self {
            Self::PemDir(dir) => load_dir(dir),
            Self::PemFile(path) => Ok(CertSet::new(vec![load_combined(path)?])),
            Self::PemPair { cert, key } => Ok(CertSet::new(vec![load_pair(cert, key)?])),
            Self::AcmeJson(path) => load_acme_json(path, &read_capped(path)?),
        }
    }

    /// The directories to watch: the files' parents, because writers replace files by
    /// renaming a new one over them, which a watch on the old inode would miss.
    fn watch_dirs(&self) -> Vec<PathBuf> {
        let parent = |p: &Path| match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut dirs = match self {
            Self::PemDir(dir) => vec![dir.clone()],
            Self::PemFile(path) | Self::AcmeJson(path) => vec![parent(path)],
            Self::PemPair { cert, key } => vec![parent(cert), parent(key)],
        };
        dirs.dedup();
        dirs
    }

    /// Whether a change to `changed` (a path inside a watched directory) can change the
    /// certificates.
    fn concerns(&self, changed: &Path) -> bool {
        let Some(name) = changed.file_name() else {
            return false;
        };
        // Kubernetes mounts secrets as symlinks into `..data`, swapped atomically on
        // rotation: a change there changes every file.
        if name.to_string_lossy().starts_with("..") {
            return true;
        }
        let same_name = |p: &Path| p.file_name() == Some(name);
        match self {
            Self::PemDir(_) => Path::new(name).extension().is_some_and(|e| e == "pem"),
            Self::PemFile(path) | Self::AcmeJson(path) => same_name(path),
            Self::PemPair { cert, key } => same_name(cert) || same_name(key),
        }
    }

    /// What to call these files in logs and errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::PemDir(p) | Self::PemFile(p) | Self::AcmeJson(p) => p.display().to_string(),
            Self::PemPair { cert, key } => format!("{} + {}", cert.display(), key.display()),
        }
    }
}

/// Keeps the OS watch alive and signals `changed` whenever a relevant file changes.
pub(crate) struct FileWatch {
    // Dropping the watcher ends the watch.
    _watcher: Box<dyn Watcher + Send>,
    pub(crate) changed: Arc<Notify>,
}

/// Starts watching the directories of `layout`. Events are coalesced into one
/// [`Notify`] permit; the reload task reads the files when it wakes.
pub(crate) fn watch(layout: &Layout) -> Result<FileWatch, Error> {
    let changed = Arc::new(Notify::new());
    let handler = {
        let layout = layout.clone();
        let changed = Arc::clone(&changed);
        move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                if changes_content(&event.kind) && event.paths.iter().any(|p| layout.concerns(p)) {
                    changed.notify_one();
                }
            }
            Err(error) => {
                tracing::warn!(%error, "certificate file watcher reported an error");
                // Something may have been missed; a reload costs little.
                changed.notify_one();
            }
        }
    };
    let dirs = layout.watch_dirs();
    let watcher: Box<dyn Watcher + Send> = match native_watcher(handler.clone(), &dirs) {
        Ok(watcher) => watcher,
        Err((dir, error)) => {
            tracing::warn!(
                path = %dir.display(), %error,
                "no change notifications for certificate files; polling every 500 ms instead"
            );
            let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
            let mut poller =
                notify::PollWatcher::new(handler, config).map_err(|source| Error::Watch {
                    path: dir.clone(),
                    source,
                })?;
            for dir in &dirs {
                poller
                    .watch(dir, RecursiveMode::NonRecursive)
                    .map_err(|source| Error::Watch {
                        path: dir.clone(),
                        source,
                    })?;
            }
            Box::new(poller)
        }
    };
    Ok(FileWatch {
        _watcher: watcher,
        changed,
    })
}

fn native_watcher<F>(
    handler: F,
    dirs: &[PathBuf],
) -> Result<Box<dyn Watcher + Send>, (PathBuf, notify::Error)>
where
    F: notify::EventHandler,
{
    let first = dirs.first().cloned().unwrap_or_default();
    let mut watcher = notify::recommended_watcher(handler).map_err(|e| (first, e))?;
    for dir in dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| (dir.clone(), e))?;
    }
    Ok(Box::new(watcher))
}

/// Reads and opens do not change a file; our own reloads would otherwise trigger more
/// reloads. A close after writing does: non-atomic writers (Traefik) finish that way.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn read_capped(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let io_error = |e: std::io::Error| Error::CertFile {
        path: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::CertFile {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_FILE_BYTES} bytes; is this the right file?"),
        });
    }
    Ok(bytes)
}

fn read_pem(path: &Path) -> Result<pem::PemParts, Error> {
    let bytes = read_capped(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::CertFile {
        path: path.to_path_buf(),
        reason: "not PEM text (not UTF-8); convert DER files with `openssl x509 -inform der`"
            .into(),
    })?;
    pem::split(text).map_err(|e| Error::CertFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn load_combined(path: &Path) -> Result<Certificate, Error> {
    let parts = read_pem(path)?;
    let Some(key) = parts.key else {
        return Err(Error::CertFile {
            path: path.to_path_buf(),
            reason: "no private key; append the key PEM after the certificates, or give the key file separately".into(),
        });
    };
    certificate(path, &parts.chain, parts.certificates, key)
}

fn load_pair(cert: &Path, key: &Path) -> Result<Certificate, Error> {
    let chain = read_pem(cert)?;
    let Some(key_pem) = read_pem(key)?.key else {
        return Err(Error::CertFile {
            path: key.to_path_buf(),
            reason: "no PRIVATE KEY block; is this the key file?".into(),
        });
    };
    certificate(cert, &chain.chain, chain.certificates, key_pem)
}

fn certificate(
    path: &Path,
    chain: &str,
    certificates: usize,
    key: berth_secrets::Secret,
) -> Result<Certificate, Error> {
    if certificates == 0 {
        return Err(Error::CertFile {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block; is this the certificate file?".into(),
        });
    }
    Certificate::from_pem(chain, key).map_err(|e| Error::CertFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn load_dir(dir: &Path) -> Result<CertSet, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::CertFile {
        path: dir.to_path_buf(),
        reason: format!("cannot list the directory: {e}"),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| {
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            !hidden && p.extension().is_some_and(|e| e == "pem") && p.is_file()
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        tracing::warn!(path = %dir.display(), "no <name>.pem files in the certificate directory");
    }
    let certs = paths
        .iter()
        .map(|p| load_combined(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CertSet::new(certs))
}

/// Turns the bytes of an `acme.json` store into a certificate set: every readable
/// certificate of every resolver (Traefik's included), unexpired ones only, newest per
/// set of names. The file is never modified; a broken one is an error, and the caller
/// keeps serving the previous set.
fn load_acme_json(path: &Path, bytes: &[u8]) -> Result<CertSet, Error> {
    let store = Document::parse(bytes).map_err(|reason| Error::CertFile {
        path: path.to_path_buf(),
        reason: format!("not a valid acme.json: {reason}"),
    })?;
    let (stored, unreadable) = store.all_certificates();
    for entry in &unreadable {
        tracing::warn!(path = %path.display(), ?entry, "skipping an unreadable certificate in acme.json");
    }
    let now = std::time::SystemTime::now();
    let mut newest: Vec<Certificate> = Vec::new();
    for cert in stored.into_iter().map(|s| s.certificate) {
        if !cert.is_valid_at(now) {
            continue;
        }
        match newest
            .iter_mut()
            .find(|have| have.info().domains.same_names(&cert.info().domains))
        {
            Some(have) if have.info().not_after < cert.info().not_after => *have = cert,
            Some(_) => {}
            None => newest.push(cert),
        }
    }
    Ok(CertSet::new(newest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_to_our_files_trigger_a_reload() {
        let dir = Layout::PemDir(PathBuf::from("/certs"));
        assert!(dir.concerns(Path::new("/certs/www.pem")));
        assert!(!dir.concerns(Path::new("/certs/www.pem.tmp")));
        assert!(dir.concerns(Path::new("/certs/..data")));

        let file = Layout::detect(PathBuf::from("site.pem"));
        assert!(matches!(file, Layout::PemFile(_)));
        assert_eq!(file.watch_dirs(), [PathBuf::from(".")]);
        assert!(file.concerns(Path::new("./site.pem")));
        assert!(!file.concerns(Path::new("./other.pem")));

        let pair = Layout::PemPair {
            cert: PathBuf::from("/a/tls.crt"),
            key: PathBuf::from("/b/tls.key"),
        };
        assert_eq!(
            pair.watch_dirs(),
            [PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(pair.concerns(Path::new("/b/tls.key")));
        assert!(!pair.concerns(Path::new("/a/tls.crt.tmp")));

        assert!(matches!(
            Layout::detect(PathBuf::from("/data/acme.json")),
            Layout::AcmeJson(_)
        ));
    }

    #[test]
    fn reads_do_not_count_as_changes_but_finished_writes_do() {
        use notify::event::{CreateKind, ModifyKind, RenameMode};
        assert!(!changes_content(&EventKind::Access(AccessKind::Open(
            AccessMode::Read
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
    }
}
