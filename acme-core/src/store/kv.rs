//! [`Store`]: the key-value interface every backend implements — the file store today,
//! shared stores for several replicas later.
//!
//! Keys are small and per certificate (see [`keys`](super::keys)), never one blob of
//! everything: a store shared by replicas must not serialise every write of every
//! certificate on one value (Traefik v1's cluster store broke at about a hundred
//! certificates that way). Values are bytes (JSON written by [`records`](super::records))
//! and may hold private keys, so they are zeroized when dropped.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::StoreError;

/// The future a [`Store`] method returns: boxed so that `dyn Store` works.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A stored value's bytes; wiped from memory when dropped (values hold private keys).
pub type Bytes = Zeroizing<Vec<u8>>;

/// A value's version: different after every write of the key. Only comparable for the
/// same key of the same store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

/// A value with the version it was read at.
pub struct Versioned {
    /// The bytes.
    pub value: Bytes,
    /// The version, for a later [`Expect::Version`].
    pub version: Version,
}

impl fmt::Debug for Versioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versioned")
            .field("bytes", &self.value.len())
            .field("version", &self.version)
            .finish()
    }
}

/// The condition a write is made under (compare-and-set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Write only if the key does not exist.
    Absent,
    /// Write only if the key is still at this version.
    Version(Version),
}

/// Something changed in the store, seen by [`Store::changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The key was written (by this process or another).
    Put(String),
    /// The key was deleted.
    Deleted(String),
    /// Changes may have been missed: re-read what matters.
    Resync,
}

/// A lock on one name, held until [`Store::unlock`] or until it is lost.
///
/// A lease is an *efficiency* lock: it keeps two holders from doing the same work, it
/// cannot make a CA refuse the second one. Work done under it must be resumable (an
/// order's URL and key are stored before any challenge is answered), and a backend that
/// can lose a lease (a TTL ran out) fences writes made under it.
pub struct Lease {
    name: String,
    token: String,
    lost: CancellationToken,
    /// What keeps the lock held in this backend (a locked file, a renewal task), and
    /// what its writes are fenced with.
    _held: Box<dyn std::any::Any + Send + Sync>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("lost", &self.lost.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// A lease on `name`; `held` keeps the backend's lock alive until the lease drops.
    pub fn new(
        name: impl Into<String>,
        token: impl Into<String>,
        held: Box<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        Self::with_lost(name, token, held, CancellationToken::new())
    }

    /// A lease whose loss the backend signals by cancelling `lost`.
    pub fn with_lost(
        name: impl Into<String>,
        token: impl Into<String>,
        held: Box<dyn std::any::Any + Send + Sync>,
        lost: CancellationToken,
    ) -> Self {
        Self {
            name: name.into(),
            token: token.into(),
            lost,
            _held: held,
        }
    }

    /// The locked name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The holder's token (fencing writes compare it).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Fires when the lease is lost (a TTL ran out before it could be renewed): stop the
    /// work it guards.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// The backend's lock key and revision or token data, for fencing writes.
    pub fn held(&self) -> &(dyn std::any::Any + Send + Sync) {
        &*self._held
    }
}

/// Where berth keeps certificates, keys and its state, as keys and values.
///
/// Implementations serve reads fast (the file store from memory) and make a write
/// durable before its future completes. Writes name the [`Expect`]ed version, so two
/// writers of one key cannot silently lose each other's update.
pub trait Store: Send + Sync + fmt::Debug {
    /// What the store is, for messages (`/data/acme.json`, `redis://…`); never a password.
    fn describe(&self) -> String;

    /// The value of `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>>;

    /// Writes `value` under `key` if `expect` holds; the new version. A failed
    /// condition is [`StoreError::Conflict`]. With a `fence`, the write is made only
    /// while that lease is still held ([`StoreError::Fenced`] otherwise), so a holder
    /// that paused past its lease cannot overwrite what the next holder wrote.
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        expect: Expect,
        fence: Option<&'a Lease>,
    ) -> StoreFuture<'a, Version>;

    /// Deletes `key` if `expect` holds (and the `fence` lease is held); whether it
    /// existed.
    fn delete<'a>(
        &'a self,
        key: &'a str,
        expect: Expect,
        fence: Option<&'a Lease>,
    ) -> StoreFuture<'a, bool>;

    /// The keys starting with `prefix`, sorted.
    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>>;

    /// Takes the lock `name` if nobody holds it; `None` if somebody does. A backend with
    /// expiring locks keeps it alive (renewing at a third of `ttl`) until unlocked.
    fn try_lock<'a>(&'a self, name: &'a str, ttl: Duration) -> StoreFuture<'a, Option<Lease>>;

    /// Releases a lease.
    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()>;

    /// Changes made from now on, by this process or others (as soon as the backend
    /// notices them).
    fn changes(&self) -> broadcast::Receiver<Change>;

    /// The locks held now, by anyone, as (lock name, holder) — the holder being the name
    /// its process gave the backend (a shared store's replica: host and pid) — for
    /// display. Backends that do not record holders return none.
    fn lock_holders(&self) -> StoreFuture<'_, Vec<(String, String)>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// What the store counts about itself (latency, leases, fenced writes), if it
    /// counts; for `/metrics`.
    fn stats(&self) -> Option<&super::StoreStats> {
        None
    }
}
