//! [`Instrumented`]: any [`Store`] with its operations timed and its leases and fenced
//! writes counted, for `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_acme_core::store::{
    Bytes, Change, Expect, Lease, Store, StoreError, StoreFuture, StoreOp, StoreStats, Version,
    Versioned,
};
use tokio::sync::broadcast;

/// Wraps a store; [`Store::stats`] then reports what passed through it.
#[derive(Debug)]
pub struct Instrumented {
    inner: Arc<dyn Store>,
    stats: StoreStats,
}

impl Instrumented {
    /// Counts everything `inner` is asked from now on.
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            stats: StoreStats::default(),
        })
    }

    async fn timed<T>(&self, op: StoreOp, work: StoreFuture<'_, T>) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = work.await;
        let elapsed: Duration = started.elapsed();
        // A refused condition or fence is an answer, not a failure to answer.
        let failed = match &result {
            Ok(_) | Err(StoreError::Conflict { .. }) => false,
            Err(StoreError::Fenced { .. }) => {
                self.stats.fenced_write();
                false
            }
            Err(_) => true,
        };
        self.stats.record(op, elapsed, failed);
        result
    }
}

impl Store for Instrumented {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>> {
        Box::pin(self.timed(StoreOp::Get, self.inner.get(key)))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        expect: Expect,
        fence: Option<&'a Lease>,
    ) -> StoreFuture<'a, Version> {
        Box::pin(self.timed(StoreOp::Put, self.inner.put(key, value, expect, fence)))
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expect: Expect,
        fence: Option<&'a Lease>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.timed(StoreOp::Delete, self.inner.delete(key, expect, fence)))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(self.timed(StoreOp::List, self.inner.list(prefix)))
    }

    fn try_lock<'a>(&'a self, name: &'a str, ttl: Duration) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            let lease = self
                .timed(StoreOp::Lock, self.inner.try_lock(name, ttl))
                .await?;
            if lease.is_some() {
                self.stats.lease_gained();
            }
            Ok(lease)
        })
    }

    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // Every lease is released, lost or not: count the lost ones here.
            if lease.lost().is_cancelled() {
                self.stats.lease_lost();
            }
            self.timed(StoreOp::Unlock, self.inner.unlock(lease)).await
        })
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.inner.changes()
    }

    fn lock_holders(&self) -> StoreFuture<'_, Vec<(String, String)>> {
        self.inner.lock_holders()
    }

    fn stats(&self) -> Option<&StoreStats> {
        Some(&self.stats)
    }
}
