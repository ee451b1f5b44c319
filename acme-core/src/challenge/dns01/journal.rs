//! The record journal: every TXT record berth adds is written here first and struck off
//! once removed, so records left behind by a crash (or a failed removal) are found and
//! removed on the next run instead of piling up in the zone.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::provider::TxtRecord;
use crate::store::atomic::{self, PRIVATE_MODE};

/// One record berth added and has not removed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) record: TxtRecord,
    /// The provider that added it (`describe()`), for the log.
    pub(crate) provider: String,
    pub(crate) added_at: SystemTime,
}

/// The journal file (JSON, 0600, written atomically).
///
/// The file is read and written on tokio's blocking pool: the solver runs on whatever
/// runtime drives the orders, which may be a single thread shared with a server.
#[derive(Debug)]
pub(crate) struct Journal {
    path: Arc<Path>,
    /// Orders run concurrently; each change is a read-modify-write of the whole file.
    /// The guard travels into the blocking task, so changes are applied one at a time and
    /// in the order they were asked for, even when the asking future is dropped.
    lock: Arc<Mutex<()>>,
}

impl Journal {
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Arc::from(path.into()),
            lock: Arc::new(Mutex::new(())),
        }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The entries; an unreadable journal is reported and treated as empty (it only
    /// ever makes cleanup more thorough, never blocks an order).
    pub(crate) async fn entries(&self) -> Vec<Entry> {
        let path = Arc::clone(&self.path);
        blocking(&self.path, move || read(&path))
            .await
            .unwrap_or_default()
    }

    /// Records `record` as added; returns once the journal says so.
    pub(crate) async fn add(&self, record: &TxtRecord, provider: String) {
        let one_writer = Arc::clone(&self.lock).lock_owned().await;
        let path = Arc::clone(&self.path);
        let entry = Entry {
            record: record.clone(),
            provider,
            added_at: SystemTime::now(),
        };
        blocking(&self.path, move || {
            let _one_writer = one_writer;
            let mut entries = read(&path);
            entries.push(entry);
            save(&path, &entries);
        })
        .await;
    }

    /// Strikes `record` off; returns once the journal no longer lists it.
    pub(crate) async fn remove(&self, record: &TxtRecord) {
        let one_writer = Arc::clone(&self.lock).lock_owned().await;
        let path = Arc::clone(&self.path);
        let record = record.clone();
        blocking(&self.path, move || {
            let _one_writer = one_writer;
            let mut entries = read(&path);
            let before = entries.len();
            entries.retain(|e| e.record != record);
            if entries.len() != before {
                save(&path, &entries);
            }
        })
        .await;
    }
}

/// Runs `work` on the blocking pool; a task that panicked or was cancelled (the runtime
/// shutting down) is reported like any other journal failure.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot use the DNS record journal");
            None
        }
    }
}

fn read(path: &Path) -> Vec<Entry> {
    match atomic::read_private(path, atomic::JOURNAL_CAP, atomic::Access::Owner) {
        Ok(None) => Vec::new(),
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "DNS record journal is unreadable; ignoring it");
            Vec::new()
        }),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the DNS record journal");
            Vec::new()
        }
    }
}

fn save(path: &Path, entries: &[Entry]) {
    if entries.is_empty() {
        match std::fs::remove_file(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => {}
        }
    }
    // A journal that cannot be encoded is not written at all: an empty file in its
    // place would lose the records it already lists.
    let bytes = match serde_json::to_vec_pretty(entries) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot encode the DNS record journal; leaving it as it was");
            return;
        }
    };
    if let Err(e) = atomic::write_atomic(path, &bytes, PRIVATE_MODE) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the DNS record journal");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn record(value: &str) -> TxtRecord {
        TxtRecord {
            fqdn: "_acme-challenge.example.com.".into(),
            zone: "example.com.".into(),
            value: value.into(),
            ttl: 60,
        }
    }

    #[tokio::test]
    async fn records_are_added_struck_off_and_the_file_goes_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join("acme.json.berth-dns"));
        journal.add(&record("a"), "exec (x)".into()).await;
        journal.add(&record("b"), "exec (x)".into()).await;
        assert_eq!(
            std::fs::metadata(journal.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        journal.remove(&record("a")).await;
        let left: Vec<_> = journal
            .entries()
            .await
            .into_iter()
            .map(|e| e.record)
            .collect();
        assert_eq!(left, vec![record("b")]);
        journal.remove(&record("b")).await;
        assert!(!journal.path().exists());
    }

    #[tokio::test]
    async fn an_entry_that_cannot_be_encoded_leaves_the_journal_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join("acme.json.berth-dns"));
        journal.add(&record("a"), "exec (x)".into()).await;
        let before = std::fs::read_to_string(journal.path()).unwrap();
        // serde encodes no time before 1970.
        let unencodable = Entry {
            record: record("b"),
            provider: "exec (x)".into(),
            added_at: SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(1),
        };
        save(journal.path(), &[unencodable]);
        assert_eq!(std::fs::read_to_string(journal.path()).unwrap(), before);
        let left: Vec<_> = journal
            .entries()
            .await
            .into_iter()
            .map(|e| e.record)
            .collect();
        assert_eq!(left, vec![record("a")]);
    }

    /// Concurrent orders each read-modify-write the whole file: none may lose another's
    /// entry, so changes are applied one at a time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_lose_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::new(dir.path().join("acme.json.berth-dns")));
        let adds: Vec<_> = (0..24)
            .map(|i| {
                let journal = Arc::clone(&journal);
                tokio::spawn(async move {
                    journal
                        .add(&record(&i.to_string()), "exec (x)".into())
                        .await;
                })
            })
            .collect();
        for add in adds {
            add.await.unwrap();
        }
        let mut left: Vec<_> = journal
            .entries()
            .await
            .into_iter()
            .map(|e| e.record.value)
            .collect();
        left.sort_by_key(|v| v.parse::<u32>().unwrap());
        assert_eq!(left, (0..24).map(|i| i.to_string()).collect::<Vec<_>>());
        let removes: Vec<_> = (0..24)
            .filter(|i| i % 2 == 0)
            .map(|i| {
                let journal = Arc::clone(&journal);
                tokio::spawn(async move { journal.remove(&record(&i.to_string())).await })
            })
            .collect();
        for remove in removes {
            remove.await.unwrap();
        }
        let mut left: Vec<_> = journal
            .entries()
            .await
            .into_iter()
            .map(|e| e.record.value)
            .collect();
        left.sort_by_key(|v| v.parse::<u32>().unwrap());
        assert_eq!(
            left,
            (0..24)
                .filter(|i| i % 2 == 1)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_corrupt_journal_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, "{not json").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Journal::new(&path).entries().await.is_empty());
    }
}
