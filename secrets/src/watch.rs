//! Rotation: reports when a secret file's content changes.
//!
//! The watch is on the file's *directory*, not the file: editors and `mv` replace the
//! inode, and Kubernetes projected volumes swap a `..data` symlink in that directory
//! atomically, neither of which a watch on the file itself would survive. Every event in
//! the directory starts a quiet-period timer (the debounce); when it expires the file is
//! read again with the caller's [`Loader`] policy and compared with the last value, so
//! only real content changes are reported. A read is repeated while the file's size or
//! modification time moves under it, so a half-written file is never reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::loader::Loader;
use crate::secret::Secret;

/// How a [`SecretWatcher`] behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WatchOptions {
    /// Quiet time after the last file-system event before the file is read again.
    pub debounce: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(100),
        }
    }
}

impl WatchOptions {
    /// Sets the quiet time after the last event before re-reading.
    pub fn with_debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }
}

/// Watches one secret file; dropping it stops the watch.
///
/// Created by [`watch`]. [`SecretWatcher::changed`] yields the new [`Secret`] after each
/// content change, or the error when the file became unreadable or invalid (once per
/// distinct error; the next good read is reported again even if its content is the old
/// one, so a consumer knows the failure is over).
#[derive(Debug)]
pub struct SecretWatcher {
    path: PathBuf,
    current: Secret,
    changes: mpsc::Receiver<Result<Secret, Error>>,
    task: JoinHandle<()>,
    // Held for its Drop, which stops the OS watch.
    _watcher: notify::RecommendedWatcher,
}

impl SecretWatcher {
    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The most recent good value (the initial one until a change arrives).
    pub fn current(&self) -> &Secret {
        &self.current
    }

    /// Waits for the next change. `None` only if the watch ended (the OS watch failed).
    pub async fn changed(&mut self) -> Option<Result<Secret, Error>> {
        let change = self.changes.recv().await?;
        if let Ok(secret) = &change {
            self.current = secret.clone();
        }
        Some(change)
    }
}

impl Drop for SecretWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `path`, read with `loader`'s policy (cap, trim, empty handling).
///
/// The file must be readable now: the initial value is [`SecretWatcher::current`].
/// Must be called inside a Tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use berth_secrets::{Loader, WatchOptions, watch};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("password");
/// std::fs::write(&path, "old\n")?;
/// let mut watcher = watch(&path, Loader::new(), WatchOptions::default())?;
/// assert_eq!(watcher.current().expose(), "old");
///
/// std::fs::write(dir.path().join("password.new"), "new\n")?;
/// std::fs::rename(dir.path().join("password.new"), &path)?; // rotation
/// let rotated = watcher.changed().await.expect("watch running")?;
/// assert_eq!(rotated.expose(), "new");
/// # Ok(())
/// # }
/// ```
pub fn watch(
    path: impl Into<PathBuf>,
    loader: Loader,
    options: WatchOptions,
) -> Result<SecretWatcher, Error> {
    let path = path.into();
    let loader = Arc::new(loader);
    let initial = loader.read_file(&path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // The receiver is gone only when the watcher is being dropped.
        let _ = events_tx.send(event.map(|_| ()).map_err(|e| e.to_string()));
    })
    .map_err(|e| Error::Watch {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| Error::Watch {
            path: path.clone(),
            reason: e.to_string(),
        })?;

    let (changes_tx, changes_rx) = mpsc::channel(8);
    let task = tokio::spawn(run(
        path.clone(),
        loader,
        options.debounce,
        initial.clone(),
        events_rx,
        changes_tx,
    ));
    Ok(SecretWatcher {
        path,
        current: initial,
        changes: changes_rx,
        task,
        _watcher: watcher,
    })
}

/// What the consumer last heard.
enum Last {
    Good(Secret),
    Failed(String),
}

async fn run(
    path: PathBuf,
    loader: Arc<Loader>,
    debounce: Duration,
    initial: Secret,
    mut events: mpsc::UnboundedReceiver<Result<(), String>>,
    changes: mpsc::Sender<Result<Secret, Error>>,
) {
    let mut last = Last::Good(initial);
    while let Some(event) = events.recv().await {
        if let Err(reason) = event {
            let error = Error::Watch {
                path: path.clone(),
                reason,
            };
            if changes.send(Err(error)).await.is_err() {
                return;
            }
            continue;
        }
        if !quiet_period(&mut events, debounce).await {
            return;
        }
        let result = read_stable(&path, &loader, debounce).await;
        let report = match (&last, result) {
            (Last::Good(old), Ok(new)) if old.expose() == new.expose() => None,
            (_, Ok(new)) => {
                last = Last::Good(new.clone());
                Some(Ok(new))
            }
            (Last::Failed(old), Err(error)) if *old == error.to_string() => None,
            (_, Err(error)) => {
                last = Last::Failed(error.to_string());
                Some(Err(error))
            }
        };
        if let Some(report) = report
            && changes.send(report).await.is_err()
        {
            return;
        }
    }
}

/// Waits until no event arrived for `debounce`; `false` when the event source closed.
async fn quiet_period(
    events: &mut mpsc::UnboundedReceiver<Result<(), String>>,
    debounce: Duration,
) -> bool {
    loop {
        match tokio::time::timeout(debounce, events.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) => return false,
            Err(_elapsed) => return true,
        }
    }
}

/// Reads the file, again while its size or modification time changes during the read.
async fn read_stable(
    path: &Path,
    loader: &Arc<Loader>,
    debounce: Duration,
) -> Result<Secret, Error> {
    const ATTEMPTS: usize = 10;
    let mut result = Err(Error::Watch {
        path: path.to_path_buf(),
        reason: "file never stopped changing".into(),
    });
    for _ in 0..ATTEMPTS {
        let (path_owned, loader) = (path.to_path_buf(), Arc::clone(loader));
        let read = tokio::task::spawn_blocking(move || {
            let before = stamp(&path_owned);
            let value = loader.read_file(&path_owned);
            (before, value, stamp(&path_owned))
        })
        .await;
        let (before, value, after) = match read {
            Ok(read) => read,
            Err(join) => {
                return Err(Error::Watch {
                    path: path.to_path_buf(),
                    reason: join.to_string(),
                });
            }
        };
        result = value;
        if before == after {
            break;
        }
        tokio::time::sleep(debounce).await;
    }
    result
}

/// Size and modification time of what `path` resolves to, if anything.
fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
