//! What the status page and `/api/certs` ask the store (who holds which order lease, the
//! stored certificates no configuration names), kept [`FRESH_FOR`]: a burst of requests
//! (a dashboard, a scrape, several operators) makes one store call — with a shared store,
//! a Redis `SCAN` or an etcd range read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_acme_core::CertManager;
use berth_acme_core::stale::StaleCert;
use berth_acme_core::store::records::CERTS;

/// How long an answer from the store is shown before the store is asked again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(2);

/// How long a request waits for the store; without an answer it shows none. Handshakes
/// never wait on this: the proxy's workers run on their own threads.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// The store's answers, each at most [`FRESH_FOR`] old.
#[derive(Default)]
pub(crate) struct StoreCache {
    holders: Cached<BTreeMap<String, String>>,
    unmanaged: Cached<Vec<StaleCert>>,
}

impl StoreCache {
    /// Which replica holds each set's order lease now (set key → `host:pid`); empty
    /// when the store does not answer in time.
    pub(crate) async fn lease_holders(
        &self,
        manager: &Arc<CertManager>,
    ) -> Arc<BTreeMap<String, String>> {
        // The store outlives a reload's new manager: one answer serves every generation.
        self.holders
            .get(0, || async {
                match tokio::time::timeout(LOOKUP_TIMEOUT, manager.store().lock_holders()).await {
                    Ok(Ok(held)) => held
                        .into_iter()
                        .filter_map(|(name, holder)| {
                            Some((name.strip_prefix(CERTS)?.to_owned(), holder))
                        })
                        .collect(),
                    _ => BTreeMap::new(),
                }
            })
            .await
    }

    /// The stored certificates `manager` is not configured with; none when the store
    /// does not answer in time.
    pub(crate) async fn unmanaged(&self, manager: &Arc<CertManager>) -> Arc<Vec<StaleCert>> {
        // Which sets are unmanaged depends on the manager's configuration: a reload's
        // new manager asks again.
        let generation = Arc::as_ptr(manager) as usize;
        self.unmanaged
            .get(generation, || async {
                match tokio::time::timeout(LOOKUP_TIMEOUT, manager.unmanaged()).await {
                    Ok(Ok(stale)) => stale,
                    _ => Vec::new(),
                }
            })
            .await
    }
}

/// One answer, when it was fetched, and for which key.
struct Cached<T> {
    // An async mutex held across the store call on purpose: requests arriving meanwhile
    // wait for that call's answer instead of asking the store again.
    slot: tokio::sync::Mutex<Option<(Instant, usize, Arc<T>)>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Self {
            slot: tokio::sync::Mutex::new(None),
        }
    }
}

impl<T> Cached<T> {
    /// The answer for `key` if it is fresh, else `fetch`'s (kept for the next callers).
    async fn get<F: Future<Output = T>>(&self, key: usize, fetch: impl FnOnce() -> F) -> Arc<T> {
        let mut slot = self.slot.lock().await;
        if let Some((at, cached_key, value)) = slot.as_ref()
            && *cached_key == key
            && at.elapsed() < FRESH_FOR
        {
            return Arc::clone(value);
        }
        let value = Arc::new(fetch().await);
        *slot = Some((Instant::now(), key, Arc::clone(&value)));
        value
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_a_new_key_fetches_again() {
        let cache: Cached<usize> = Cached::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            fetches.fetch_add(1, Ordering::SeqCst)
        };
        let answers = futures_util::future::join_all((0..10).map(|_| cache.get(1, fetch))).await;
        assert!(answers.iter().all(|a| **a == 0), "{answers:?}");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Another key (a reloaded manager) is not served the old answer.
        assert_eq!(*cache.get(2, fetch).await, 1);
        assert_eq!(*cache.get(2, fetch).await, 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}
