//! The record journal: every TXT record berth adds is written here first and struck off
//! once removed, so records left behind by a crash (or a failed removal) are found and
//! removed on the next run instead of piling up in the zone.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

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
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    /// Orders run concurrently; each change is a read-modify-write of the whole file.
    lock: Mutex<()>,
}

impl Journal {
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The entries; an unreadable journal is reported and treated as empty (it only
    /// ever makes cleanup more thorough, never blocks an order).
    pub(crate) fn entries(&self) -> Vec<Entry> {
        match atomic::read_private(&self.path, atomic::JOURNAL_CAP, atomic::Access::Owner) {
            Ok(None) => Vec::new(),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %self.path.display(), error = %e, "DNS record journal is unreadable; ignoring it");
                Vec::new()
            }),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the DNS record journal");
                Vec::new()
            }
        }
    }

    fn save(&self, entries: &[Entry]) {
        if entries.is_empty() {
            match std::fs::remove_file(&self.path) {
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
                tracing::warn!(path = %self.path.display(), error = %e, "cannot encode the DNS record journal; leaving it as it was");
                return;
            }
        };
        if let Err(e) = atomic::write_atomic(&self.path, &bytes, PRIVATE_MODE) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the DNS record journal");
        }
    }

    pub(crate) fn add(&self, record: &TxtRecord, provider: String) {
        let _one_writer = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut entries = self.entries();
        entries.push(Entry {
            record: record.clone(),
            provider,
            added_at: SystemTime::now(),
        });
        self.save(&entries);
    }

    pub(crate) fn remove(&self, record: &TxtRecord) {
        let _one_writer = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|e| e.record != *record);
        if entries.len() != before {
            self.save(&entries);
        }
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

    #[test]
    fn records_are_added_struck_off_and_the_file_goes_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join("acme.json.berth-dns"));
        journal.add(&record("a"), "exec (x)".into());
        journal.add(&record("b"), "exec (x)".into());
        assert_eq!(
            std::fs::metadata(journal.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        journal.remove(&record("a"));
        let left: Vec<_> = journal.entries().into_iter().map(|e| e.record).collect();
        assert_eq!(left, vec![record("b")]);
        journal.remove(&record("b"));
        assert!(!journal.path().exists());
    }

    #[test]
    fn an_entry_that_cannot_be_encoded_leaves_the_journal_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join("acme.json.berth-dns"));
        journal.add(&record("a"), "exec (x)".into());
        let before = std::fs::read_to_string(journal.path()).unwrap();
        // serde encodes no time before 1970.
        let unencodable = Entry {
            record: record("b"),
            provider: "exec (x)".into(),
            added_at: SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(1),
        };
        journal.save(&[unencodable]);
        assert_eq!(std::fs::read_to_string(journal.path()).unwrap(), before);
        let left: Vec<_> = journal.entries().into_iter().map(|e| e.record).collect();
        assert_eq!(left, vec![record("a")]);
    }

    #[test]
    fn a_corrupt_journal_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, "{not json").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Journal::new(&path).entries().is_empty());
    }
}
