//! [`FileStore`]: the default [`Store`] — `acme.json` exactly as Traefik reads it, and
//! berth's state file beside it — held in memory.
//!
//! Both files are read once; every read is served from memory. A write changes memory
//! and then the files: under an advisory lock (`flock` on `.<store>.lock` beside them,
//! so `berth issue` next to a running `berth run` cannot lose either's update) the files
//! are checked for changes by others (merged in, key by key; keys this process changed
//! win), then replaced atomically (temp file, fsync, rename, fsync directory). Writes
//! that arrive while one is on disk are written together by the next one.
//!
//! Another process's edits are noticed by polling the files' identity (device, inode,
//! size, modification time) twice a second — cheap, and unlike inotify it works on bind
//! mounts and network volumes — and reported on [`Store::changes`].
//!
//! Only the owner (opened with [`FileStore::open`]) ever moves, rewrites or chmods a
//! file; [`FileStore::open_read_only`] reads and nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};
use zeroize::{Zeroize, Zeroizing};

use super::StoreError;
use super::acme_json::{AcmeJson, wipe};
use super::atomic::{self, ACME_JSON_CAP, Access, PRIVATE_MODE, STATE_CAP};
use super::kv::{Bytes, Change, Expect, Lease, Store, StoreFuture, Version, Versioned};
use super::mount;
use super::records::CERTS;
use super::state::{StateDoc, StateParseError, state_path};

/// How often another process's edits are looked for.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The file store. Cheap to share behind an `Arc`; see the module docs.
///
/// ```no_run
/// use berth_acme_core::store::{FileStore, Store, records};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// // The owner (`berth run`, `berth issue`): checks that writes will work first.
/// let store = FileStore::open("/data/acme.json".as_ref(), "berth").await?;
/// for key in store.list(records::CERTS).await? {
///     println!("{key}");
/// }
/// # Ok(()) }
/// ```
pub struct FileStore {
    inner: Arc<Inner>,
    flushed: tokio::sync::Mutex<u64>,
    _poller: Option<DropGuard>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.inner.path)
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    state_path: PathBuf,
    lock_path: PathBuf,
    locks_dir: PathBuf,
    resolver: String,
    owner: bool,
    docs: Mutex<Docs>,
    changes: broadcast::Sender<Change>,
}

/// A file's identity: a change in any of these means it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

#[derive(Default)]
struct Docs {
    /// `acme.json` without berth's readable certificate entries.
    acme: AcmeJson,
    /// berth-section entries whose names do not parse: written back unchanged.
    unkeyed: Vec<Value>,
    /// berth's certificates by domain-set key, as their JSON text (a parsed tree takes
    /// half again as much memory, and reads hand out the text anyway).
    certs: BTreeMap<String, Entry>,
    /// Other resolvers' certificates by domain-set key: readable, never written.
    foreign: BTreeMap<String, Entry>,
    /// The state file's records.
    state: StateDoc,
    versions: HashMap<String, u64>,
    next_version: u64,
    /// Bumped by every change in memory.
    generation: u64,
    /// Keys changed in memory and not yet on disk.
    dirty: BTreeSet<String>,
    seen_acme: Option<FileId>,
    seen_state: Option<FileId>,
}

impl Docs {
    fn bump(&mut self, key: &str) -> u64 {
        self.next_version += 1;
        self.versions.insert(key.to_owned(), self.next_version);
        self.next_version
    }

    fn version(&self, key: &str) -> Version {
        Version(self.versions.get(key).copied().unwrap_or(0))
    }

    fn has(&self, key: &str) -> bool {
        match key.strip_prefix(CERTS) {
            Some(set) => self.certs.contains_key(set) || self.foreign.contains_key(set),
            None => self.state.records.contains_key(key),
        }
    }

    /// The value's JSON bytes.
    fn bytes(&self, key: &str) -> Option<Result<Vec<u8>, serde_json::Error>> {
        match key.strip_prefix(CERTS) {
            Some(set) => self
                .certs
                .get(set)
                .or_else(|| self.foreign.get(set))
                .map(|e| Ok(e.0.get().as_bytes().to_vec())),
            None => self.state.records.get(key).map(serde_json::to_vec),
        }
    }
}

/// A certificate entry as JSON text.
/// No `Debug`: the text holds a private key.
struct Entry(Box<RawValue>);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Entry {
    /// The entry's text; `value` is wiped (it holds the key too).
    fn of(mut value: Value) -> Option<Self> {
        let entry = serde_json::value::to_raw_value(&value).ok().map(Self);
        wipe(&mut value);
        entry
    }
}

/// The text holds a private key: overwritten when the entry goes.
impl Drop for Entry {
    fn drop(&mut self) {
        let raw = std::mem::replace(&mut self.0, RawValue::NULL.to_owned());
        let mut text: Box<str> = raw.into();
        text.zeroize();
    }
}

/// Unreadable entries of berth's section may hold keys as well, and so do the state
/// file's records (the ACME account's key, an order in flight's).
impl Drop for Docs {
    fn drop(&mut self) {
        self.unkeyed.iter_mut().for_each(wipe);
        self.state.records.values_mut().for_each(wipe);
    }
}

impl FileStore {
    /// Opens `path` as its owner: refuses a store the world can read, a symbolic link, a
    /// single-file bind mount, or a directory that does not take a temp file and a
    /// rename — before any order is placed — sets a group-readable file (Kubernetes
    /// `fsGroup`) back to 0600 with a warning, and moves aside (keeping the bytes) a file
    /// that does not parse.
    /// `resolver` is the `acme.json` section berth writes.
    pub async fn open(path: &Path, resolver: &str) -> Result<Arc<Self>, StoreError> {
        let inner = Arc::new(Inner::new(path, resolver, true));
        let loader = Arc::clone(&inner);
        blocking(move || {
            atomic::refuse_symlink(&loader.path)?;
            atomic::refuse_symlink(&loader.state_path)?;
            mount::check_replaceable(&loader.path)?;
            let _lock = loader.lock_files()?;
            loader.load_initial(true)
        })
        .await?;
        let stop = CancellationToken::new();
        tokio::spawn(poll(Arc::downgrade(&inner), stop.clone()));
        Ok(Arc::new(Self {
            inner,
            flushed: tokio::sync::Mutex::new(0),
            _poller: Some(stop.drop_guard()),
        }))
    }

    /// Opens `path` for reading only (`certs list`, `config check`): nothing on disk is
    /// ever changed (not even a mode); a file others can read is read with a warning.
    pub async fn open_read_only(path: &Path, resolver: &str) -> Result<Arc<Self>, StoreError> {
        let inner = Arc::new(Inner::new(path, resolver, false));
        let loader = Arc::clone(&inner);
        blocking(move || loader.load_initial(false)).await?;
        Ok(Arc::new(Self {
            inner,
            flushed: tokio::sync::Mutex::new(0),
            _poller: None,
        }))
    }

    /// The `acme.json` path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The whole `acme.json` as it is in memory (every resolver), for display.
    pub fn acme_json(&self) -> AcmeJson {
        let docs = self.inner.docs();
        let mut acme = docs.acme.clone();
        let entries = docs
            .unkeyed
            .iter()
            .cloned()
            .chain(
                docs.certs
                    .values()
                    .filter_map(|e| serde_json::from_str(e.0.get()).ok()),
            )
            .collect();
        acme.put_section(&self.inner.resolver, entries);
        acme
    }

    /// Makes everything written so far durable; returns the first error.
    async fn flush_through(&self, generation: u64) -> Result<(), StoreError> {
        let mut flushed = self.flushed.lock().await;
        if *flushed >= generation {
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        *flushed = blocking(move || inner.write_out()).await?;
        Ok(())
    }
}

impl Inner {
    fn new(path: &Path, resolver: &str, owner: bool) -> Self {
        let dir = atomic::directory_of(path);
        let name = atomic::file_name_of(path);
        let (changes, _) = broadcast::channel(1024);
        Self {
            path: path.to_path_buf(),
            state_path: state_path(path),
            lock_path: dir.join(format!(".{name}.lock")),
            locks_dir: dir.join(format!(".{name}.locks")),
            resolver: resolver.to_owned(),
            owner,
            docs: Mutex::new(Docs::default()),
            changes,
        }
    }

    fn docs(&self) -> MutexGuard<'_, Docs> {
        // A panic while holding the lock cannot leave the maps half-written in a way
        // that matters more than stopping would; keep serving.
        self.docs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    /// The advisory lock every writer of these files holds while it writes.
    fn lock_files(&self) -> Result<File, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(PRIVATE_MODE)
            .open(&self.lock_path)
            .map_err(|e| StoreError::io("creating the lock file", &self.lock_path, e))?;
        file.lock()
            .map_err(|e| StoreError::io("locking", &self.lock_path, e))?;
        Ok(file)
    }

    fn load_initial(&self, owner: bool) -> Result<(), StoreError> {
        self.refresh(owner, true)?;
        let mut docs = self.docs();
        let keys: Vec<String> = docs
            .certs
            .keys()
            .chain(docs.foreign.keys())
            .map(|set| format!("{CERTS}{set}"))
            .chain(docs.state.records.keys().cloned())
            .collect();
        for key in keys {
            if !docs.versions.contains_key(&key) {
                docs.bump(&key);
            }
        }
        Ok(())
    }

    /// Reads whichever file changed since it was last seen and merges it in. `owner`
    /// (holding the file lock) may move aside a file that does not parse; `initial`
    /// turns that into an error instead of going on with what is in memory.
    fn refresh(&self, owner: bool, initial: bool) -> Result<(), StoreError> {
        let (seen_acme, seen_state) = {
            let docs = self.docs();
            (docs.seen_acme, docs.seen_state)
        };
        // Only the owner holding the file lock fixes a mode; every other look warns.
        let access = if owner && self.owner {
            Access::Owner
        } else {
            Access::ReadOnly
        };
        let acme_id = file_id(&self.path)?;
        if acme_id != seen_acme || initial {
            match self.read_acme(access)? {
                Ok(acme) => self.merge_acme(acme, acme_id),
                Err(reason) if owner => {
                    let err = atomic::quarantine(&self.path, reason);
                    if initial {
                        return Err(err);
                    }
                    tracing::error!(error = %err, "keeping the certificates in memory; they are written back with the next change");
                    self.docs().seen_acme = None;
                }
                Err(reason) => {
                    // Maybe caught mid-write by a program that writes in place (Traefik):
                    // not marked as seen, so the next look reads it again.
                    if initial {
                        return Err(StoreError::Unparsable {
                            path: self.path.clone(),
                            reason,
                        });
                    }
                    tracing::debug!(path = %self.path.display(), %reason, "store changed but does not parse (yet)");
                }
            }
        }
        let state_id = file_id(&self.state_path)?;
        if state_id != seen_state || initial {
            let bytes = atomic::read_private(&self.state_path, STATE_CAP, access)?;
            match bytes
                .as_deref()
                .map_or(Ok(StateDoc::default()), |b| StateDoc::parse(b))
            {
                Ok(state) => self.merge_state(state, state_id),
                Err(StateParseError::Newer(found)) => {
                    return Err(StoreError::Version {
                        path: self.state_path.clone(),
                        found,
                        supported: super::STATE_VERSION,
                    });
                }
                Err(StateParseError::Syntax(reason)) if owner => {
                    let err = atomic::quarantine(&self.state_path, reason);
                    if initial {
                        return Err(err);
                    }
                    tracing::error!(error = %err, "keeping berth's state in memory; it is written back with the next change");
                    self.docs().seen_state = None;
                }
                Err(e) => {
                    if initial {
                        return Err(e.into_error(&self.state_path));
                    }
                    tracing::debug!(path = %self.state_path.display(), "state changed but does not parse (yet)");
                }
            }
        }
        Ok(())
    }

    fn read_acme(&self, access: Access) -> Result<Result<AcmeJson, String>, StoreError> {
        Ok(
            match atomic::read_private(&self.path, ACME_JSON_CAP, access)? {
                None => Ok(AcmeJson::default()),
                Some(bytes) => AcmeJson::parse(&bytes),
            },
        )
    }

    fn merge_acme(&self, mut acme: AcmeJson, id: Option<FileId>) {
        let (keyed, unkeyed) = acme.take_section(&self.resolver);
        let as_text = |entries: Vec<(String, Value)>| -> BTreeMap<String, Entry> {
            entries
                .into_iter()
                .filter_map(|(set, value)| Some((set, Entry::of(value)?)))
                .collect()
        };
        let certs = as_text(keyed);
        let foreign = as_text(acme.foreign_entries(&self.resolver));
        let mut docs = self.docs();
        let docs = &mut *docs;
        let mut changed = Vec::new();
        merge_map(
            &mut docs.certs,
            certs,
            |set| {
                let key = format!("{CERTS}{set}");
                (!docs.dirty.contains(&key)).then_some(key)
            },
            &mut changed,
        );
        let old_foreign = std::mem::replace(&mut docs.foreign, foreign);
        for set in old_foreign.keys().chain(docs.foreign.keys()) {
            if old_foreign.get(set) != docs.foreign.get(set) && !docs.certs.contains_key(set) {
                changed.push(format!("{CERTS}{set}"));
            }
        }
        docs.acme = acme;
        docs.unkeyed.iter_mut().for_each(wipe);
        docs.unkeyed = unkeyed;
        docs.seen_acme = id;
        self.announce(docs, changed);
    }

    fn merge_state(&self, state: StateDoc, id: Option<FileId>) {
        let mut docs = self.docs();
        let docs = &mut *docs;
        let mut changed = Vec::new();
        merge_map(
            &mut docs.state.records,
            state.records,
            |key| (!docs.dirty.contains(key)).then(|| key.to_owned()),
            &mut changed,
        );
        docs.state.from_v1 |= state.from_v1;
        docs.seen_state = id;
        self.announce(docs, changed);
    }

    fn announce(&self, docs: &mut Docs, changed: Vec<String>) {
        for key in changed {
            docs.bump(&key);
            let change = if docs.has(&key) {
                Change::Put(key)
            } else {
                Change::Deleted(key)
            };
            let _ = self.changes.send(change);
        }
    }

    /// Writes the changed files under the file lock; returns the generation written.
    fn write_out(&self) -> Result<u64, StoreError> {
        let _lock = self.lock_files()?;
        self.refresh(true, false)?;
        let (generation, dirty, acme, state) = {
            let mut docs = self.docs();
            let dirty = std::mem::take(&mut docs.dirty);
            let acme_dirty = docs.seen_acme.is_none() || dirty.iter().any(|k| k.starts_with(CERTS));
            let state_dirty = docs.seen_state.is_none()
                || docs.state.from_v1
                || dirty.iter().any(|k| !k.starts_with(CERTS));
            let acme = acme_dirty.then(|| {
                let certs: Vec<&RawValue> = docs.certs.values().map(|e| &*e.0).collect();
                docs.acme
                    .to_bytes_with(&self.resolver, &docs.unkeyed, &certs, &self.path)
            });
            let state = state_dirty.then(|| docs.state.to_bytes(&self.state_path));
            (docs.generation, dirty, acme, state)
        };
        let result = (|| {
            if let Some(bytes) = acme {
                atomic::write_atomic(&self.path, &bytes?, PRIVATE_MODE)?;
            }
            if let Some(bytes) = state {
                let bytes = bytes?;
                if self.docs().state.from_v1 {
                    self.keep_v1_copy()?;
                }
                atomic::write_atomic(&self.state_path, &bytes, PRIVATE_MODE)?;
            }
            Ok(())
        })();
        let mut docs = self.docs();
        match result {
            Ok(()) => {
                if docs.state.from_v1 {
                    docs.state.from_v1 = false;
                    tracing::info!(path = %self.state_path.display(), "state file converted to format 2; the format 1 file is kept beside it with the suffix .v1");
                }
                docs.seen_acme = file_id(&self.path)?;
                docs.seen_state = file_id(&self.state_path)?;
                Ok(generation)
            }
            Err(e) => {
                docs.dirty.extend(dirty);
                Err(e)
            }
        }
    }

    fn keep_v1_copy(&self) -> Result<(), StoreError> {
        let mut name = self.state_path.as_os_str().to_owned();
        name.push(".v1");
        let copy = PathBuf::from(name);
        if copy.exists() {
            return Ok(());
        }
        match atomic::read_private(&self.state_path, STATE_CAP, Access::Owner)? {
            Some(bytes) => atomic::write_atomic(&copy, &bytes, PRIVATE_MODE),
            None => Ok(()),
        }
    }

    fn change(
        &self,
        key: &str,
        value: Option<&[u8]>,
        expect: Expect,
    ) -> Result<(u64, Version), StoreError> {
        if !self.owner {
            return Err(StoreError::ReadOnly {
                store: self.describe(),
            });
        }
        let not_json = || StoreError::BadRecord {
            store: self.describe(),
            key: key.to_owned(),
            reason: "the value to write is not JSON".into(),
        };
        let mut docs = self.docs();
        let exists = docs.has(key);
        let holds = match expect {
            Expect::Any => true,
            Expect::Absent => !exists,
            Expect::Version(v) => exists && docs.version(key) == v,
        };
        if !holds {
            return Err(StoreError::Conflict {
                store: self.describe(),
                key: key.to_owned(),
            });
        }
        match (key.strip_prefix(CERTS), value) {
            (Some(set), Some(v)) => {
                let text = String::from_utf8(v.to_vec()).map_err(|_| not_json())?;
                let raw = RawValue::from_string(text).map_err(|_| not_json())?;
                docs.certs.insert(set.to_owned(), Entry(raw));
            }
            (Some(set), None) => {
                docs.certs.remove(set);
            }
            (None, Some(v)) => {
                let value = serde_json::from_slice(v).map_err(|_| not_json())?;
                if let Some(old) = docs.state.records.insert(key.to_owned(), value) {
                    old.discard();
                }
            }
            (None, None) => {
                if let Some(old) = docs.state.records.remove(key) {
                    old.discard();
                }
            }
        }
        let version = docs.bump(key);
        docs.dirty.insert(key.to_owned());
        docs.generation += 1;
        let change = if docs.has(key) {
            Change::Put(key.to_owned())
        } else {
            Change::Deleted(key.to_owned())
        };
        let _ = self.changes.send(change);
        Ok((docs.generation, Version(version)))
    }
}

/// A stored value that may hold a key: overwritten once merging discards it.
trait Discard {
    fn discard(self);
}

impl Discard for Value {
    fn discard(mut self) {
        wipe(&mut self);
    }
}

impl Discard for Entry {
    fn discard(self) {
        // Its Drop overwrites the text.
    }
}

/// Replaces `current` by `new` except for keys `theirs` says are ours (returns `None`);
/// the keys that changed go to `changed`. Every value left over is discarded.
fn merge_map<V: PartialEq + Discard>(
    current: &mut BTreeMap<String, V>,
    mut new: BTreeMap<String, V>,
    theirs: impl Fn(&str) -> Option<String>,
    changed: &mut Vec<String>,
) {
    let keys: BTreeSet<String> = current.keys().chain(new.keys()).cloned().collect();
    for key in keys {
        let Some(announce) = theirs(&key) else {
            continue;
        };
        match new.remove(&key) {
            Some(value) if current.get(&key) != Some(&value) => {
                if let Some(old) = current.insert(key, value) {
                    old.discard();
                }
                changed.push(announce);
            }
            Some(same) => same.discard(),
            None => {
                if let Some(old) = current.remove(&key) {
                    old.discard();
                    changed.push(announce);
                }
            }
        }
    }
    new.into_values().for_each(Discard::discard);
}

/// One file per lock name, hashed (FNV-1a, stable across builds) so any name makes a
/// short, safe file name.
fn lock_file_name(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}.lock")
}

fn file_id(path: &Path) -> Result<Option<FileId>, StoreError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("reading metadata of", path, e)),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::io("running", "store I/O task", std::io::Error::other(e)))?
}

/// Looks for other processes' edits until the store is dropped.
async fn poll(inner: std::sync::Weak<Inner>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let result = tokio::task::spawn_blocking(move || inner.refresh(false, false)).await;
        if let Ok(Err(e)) = result {
            tracing::warn!(error = %e, "could not check the store for changes");
        }
    }
}

impl Store for FileStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>> {
        Box::pin(async move {
            let docs = self.inner.docs();
            let Some(bytes) = docs.bytes(key) else {
                return Ok(None);
            };
            let bytes = bytes.map_err(|e| StoreError::BadRecord {
                store: self.describe(),
                key: key.to_owned(),
                reason: e.to_string(),
            })?;
            Ok(Some(Versioned {
                value: Zeroizing::new(bytes),
                version: docs.version(key),
            }))
        })
    }

    // A file lock is held until this process ends or drops it, so a lease cannot be
    // lost while its holder still writes: fences need no check here.
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        expect: Expect,
        _fence: Option<&'a Lease>,
    ) -> StoreFuture<'a, Version> {
        Box::pin(async move {
            let (generation, version) = self.inner.change(key, Some(&value), expect)?;
            self.flush_through(generation).await?;
            Ok(version)
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expect: Expect,
        _fence: Option<&'a Lease>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if !self.inner.docs().has(key) && expect != Expect::Absent {
                return match expect {
                    Expect::Version(_) => Err(StoreError::Conflict {
                        store: self.describe(),
                        key: key.to_owned(),
                    }),
                    _ => Ok(false),
                };
            }
            let (generation, _) = self.inner.change(key, None, expect)?;
            self.flush_through(generation).await?;
            Ok(true)
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let docs = self.inner.docs();
            let mut keys: BTreeSet<String> = docs
                .certs
                .keys()
                .chain(docs.foreign.keys())
                .map(|set| format!("{CERTS}{set}"))
                .filter(|k| k.starts_with(prefix))
                .collect();
            keys.extend(
                docs.state
                    .records
                    .range(prefix.to_owned()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, _)| k.clone()),
            );
            Ok(keys.into_iter().collect())
        })
    }

    fn try_lock<'a>(&'a self, name: &'a str, _ttl: Duration) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            let dir = self.inner.locks_dir.clone();
            let name = name.to_owned();
            blocking(move || {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| StoreError::io("creating", &dir, e))?;
                let path = dir.join(lock_file_name(&name));
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .mode(PRIVATE_MODE)
                    .open(&path)
                    .map_err(|e| StoreError::io("creating the lock file", &path, e))?;
                // flock: released by the kernel when this process dies, so a crashed
                // holder never blocks the next one (no TTL needed on one machine).
                match file.try_lock() {
                    Ok(()) => Ok(Some(Lease::new(
                        name,
                        format!("{:016x}", rand::random::<u64>()),
                        Box::new(file),
                    ))),
                    Err(fs::TryLockError::WouldBlock) => Ok(None),
                    Err(fs::TryLockError::Error(e)) => Err(StoreError::io("locking", &path, e)),
                }
            })
            .await
        })
    }

    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()> {
        drop(lease);
        Box::pin(async { Ok(()) })
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }
}
