//! Stale certificates: stored certificates whose names `berth run` no longer manages
//! (so nothing renews them) or that have expired, and removing them from a store.
//!
//! A store can hold certificates no configuration names any more: a domain dropped
//! from the config, a one-off `berth issue`. They are never renewed (renewing them
//! forever is how Traefik #3376 burns rate limits) and never served by `berth run`; they
//! only take space and confuse listings. [`ConfiguredSets`] is what the last `berth run`
//! was configured with, recorded in the store so that read-only commands can tell
//! which stored certificates are unmanaged without being given the configuration.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::certificate::Certificate;
use crate::domain::DomainSet;
use crate::error::Error;
use crate::store::records::{self, CERTS, CertRecord};
use crate::store::{Expect, Store, StoreError};

/// The key of the [`ConfiguredSets`] record.
pub const CONFIGURED: &str = "configured";

/// How long a removal may hold a set's lock (it deletes two keys).
const REMOVE_LOCK_TTL: Duration = Duration::from_secs(60);

/// The domain sets the last `berth run` on a store was configured with (set keys,
/// [`DomainSet::key`]), and when it recorded them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredSets {
    /// The configured sets' keys.
    pub sets: BTreeSet<String>,
    /// When they were recorded.
    pub at: Option<SystemTime>,
}

impl ConfiguredSets {
    /// Whether the set with key `set` is configured.
    pub fn manages(&self, set: &str) -> bool {
        self.sets.contains(set)
    }
}

/// Records `sets` as the configured ones, unless the store already says exactly that
/// (a restart with the same configuration writes nothing).
pub async fn record_configured(
    store: &dyn Store,
    sets: impl IntoIterator<Item = String>,
) -> Result<(), StoreError> {
    let sets: BTreeSet<String> = sets.into_iter().collect();
    if configured(store).await?.is_some_and(|c| c.sets == sets) {
        return Ok(());
    }
    records::update_json::<ConfiguredSets, _>(store, CONFIGURED, None, |c| {
        c.sets.clone_from(&sets);
        c.at = Some(SystemTime::now());
    })
    .await
    .map(|_| ())
}

/// What the last `berth run` recorded; `None` if no `berth run` used this store yet.
pub async fn configured(store: &dyn Store) -> Result<Option<ConfiguredSets>, StoreError> {
    Ok(records::get_json::<ConfiguredSets>(store, CONFIGURED)
        .await?
        .map(|(c, _)| c))
}

/// The sets of the certificates stored in `resolver`'s section that a renewal of "all"
/// takes up, and those it leaves alone. With `named` (the caller picks certificates by
/// name) every stored one is a candidate; otherwise only those the last `berth run`
/// manages, once it recorded its configuration: renewing the others forever is how
/// Traefik #3376 burns rate limits.
pub async fn renewable(
    store: &dyn Store,
    resolver: &str,
    named: bool,
) -> Result<(Vec<DomainSet>, Vec<DomainSet>), StoreError> {
    let acme = records::traefik_json(store, resolver).await?;
    let stored = acme.certificates(resolver).0.into_iter().map(|c| c.domains);
    let configured = if named {
        None
    } else {
        configured(store).await?
    };
    Ok(match configured {
        Some(configured) => stored.partition(|set| configured.manages(&set.key())),
        None => (stored.collect(), Vec::new()),
    })
}

/// A stored certificate and why it is stale.
#[derive(Debug, Clone)]
pub struct StaleCert {
    /// Its set key ([`DomainSet::key`]).
    pub key: String,
    /// Its names.
    pub domains: DomainSet,
    /// The certificate.
    pub certificate: Certificate,
    /// Past its `notAfter`.
    pub expired: bool,
    /// Not among the configured sets.
    pub unmanaged: bool,
}

impl StaleCert {
    /// Why it is stale, as berth prints it: `expired, unmanaged`, `expired` or
    /// `unmanaged`.
    pub fn reason(&self) -> &'static str {
        match (self.expired, self.unmanaged) {
            (true, true) => "expired, unmanaged",
            (true, false) => "expired",
            _ => "unmanaged",
        }
    }

    /// Whether [`retire`](crate::revocation::retire) revokes it when given an account:
    /// only a certificate that has not expired can still be used, so only that one is
    /// revoked.
    pub fn revocable(&self) -> bool {
        !self.expired
    }
}

/// The stored certificates that are expired (with `expired`) or unmanaged (with
/// `unmanaged`, judged against `configured`). Unreadable entries are skipped.
pub async fn find_stale(
    store: &dyn Store,
    configured: Option<&ConfiguredSets>,
    expired: bool,
    unmanaged: bool,
    now: SystemTime,
) -> Result<Vec<StaleCert>, StoreError> {
    let mut found = Vec::new();
    for key in store.list(CERTS).await? {
        let Some(set) = key.strip_prefix(CERTS) else {
            continue;
        };
        let is_unmanaged = configured.is_some_and(|c| !c.manages(set));
        if !expired && !is_unmanaged {
            // Decided by the key alone: a store of 10,000 managed certificates is not
            // read (and parsed) for the status page's unmanaged rows.
            continue;
        }
        let Some(value) = store.get(&key).await? else {
            continue;
        };
        let Ok(record) = CertRecord::decode(&value.value) else {
            continue;
        };
        let is_expired = record.certificate.info().not_after <= now;
        if (expired && is_expired) || (unmanaged && is_unmanaged) {
            found.push(StaleCert {
                key: set.to_owned(),
                domains: record.domains,
                certificate: record.certificate,
                expired: is_expired,
                unmanaged: is_unmanaged,
            });
        }
    }
    Ok(found)
}

/// Removes a set's certificate and state, under the set's order lock (the lock every
/// berth takes before ordering it), so a removal never races an order of the same set.
/// Refuses when another process holds the lock.
pub async fn remove(store: &dyn Store, set: &str) -> Result<(), Error> {
    let cert_key = records::cert_key(set);
    let Some(lease) = store.try_lock(&cert_key, REMOVE_LOCK_TTL).await? else {
        return Err(Error::OrderInProgress {
            domains: set.to_owned(),
            store: store.describe(),
        });
    };
    let result = async {
        store.delete(&cert_key, Expect::Any, Some(&lease)).await?;
        store
            .delete(&records::state_key(set), Expect::Any, Some(&lease))
            .await?;
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = store.unlock(lease).await {
        // The lock expires with its lease; nothing is lost.
        tracing::debug!(domains = %set, error = %e, "could not release the lock after removing");
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use berth_secrets::Secret;
    use rcgen::{CertificateParams, KeyPair};

    use super::*;
    use crate::store::FileStore;

    async fn store_with(sets: &[&str]) -> (tempfile::TempDir, std::sync::Arc<FileStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(&dir.path().join("acme.json"), "berth")
            .await
            .unwrap();
        for name in sets {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![(*name).to_owned()]).unwrap();
            params.not_after = (SystemTime::now() + Duration::from_secs(30 * 86_400)).into();
            let pem = params.self_signed(&key).unwrap().pem();
            let record = CertRecord {
                domains: DomainSet::parse([*name]).unwrap(),
                certificate: Certificate::from_pem(&pem, Secret::new(key.serialize_pem())).unwrap(),
            };
            let cert_key = records::cert_key(&record.domains.key());
            store
                .put(&cert_key, record.encode(), Expect::Any, None)
                .await
                .unwrap();
        }
        (dir, store)
    }

    fn keys(sets: &[DomainSet]) -> Vec<String> {
        let mut keys: Vec<String> = sets.iter().map(DomainSet::key).collect();
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn renewing_all_leaves_unmanaged_sets_alone_unless_they_are_named() {
        let (_dir, store) = store_with(&["a.example.com", "b.example.com"]).await;
        let both = vec!["a.example.com".to_owned(), "b.example.com".to_owned()];
        // No berth run recorded its configuration: nothing can be called unmanaged.
        let (take, leave) = renewable(store.as_ref(), "berth", false).await.unwrap();
        assert_eq!((keys(&take), keys(&leave)), (both.clone(), vec![]));

        record_configured(store.as_ref(), ["a.example.com".to_owned()])
            .await
            .unwrap();
        let (take, leave) = renewable(store.as_ref(), "berth", false).await.unwrap();
        assert_eq!(keys(&take), ["a.example.com"]);
        assert_eq!(keys(&leave), ["b.example.com"]);
        // Naming certificates considers every stored one.
        let (take, leave) = renewable(store.as_ref(), "berth", true).await.unwrap();
        assert_eq!((keys(&take), keys(&leave)), (both, vec![]));
    }

    #[tokio::test]
    async fn a_stale_certificate_says_why_and_only_an_unexpired_one_is_revocable() {
        let (_dir, store) = store_with(&["a.example.com", "b.example.com"]).await;
        record_configured(store.as_ref(), ["a.example.com".to_owned()])
            .await
            .unwrap();
        let configured = configured(store.as_ref()).await.unwrap();
        let reasons = |found: &[StaleCert]| {
            let mut r: Vec<(String, &str, bool)> = found
                .iter()
                .map(|c| (c.key.clone(), c.reason(), c.revocable()))
                .collect();
            r.sort();
            r
        };
        let now = SystemTime::now();
        let found = find_stale(store.as_ref(), configured.as_ref(), true, true, now)
            .await
            .unwrap();
        assert_eq!(
            reasons(&found),
            [("b.example.com".to_owned(), "unmanaged", true)]
        );
        // 60 days on, both certificates (valid for 30) have expired.
        let later = now + Duration::from_secs(60 * 86_400);
        let found = find_stale(store.as_ref(), configured.as_ref(), true, true, later)
            .await
            .unwrap();
        assert_eq!(
            reasons(&found),
            [
                ("a.example.com".to_owned(), "expired", false),
                ("b.example.com".to_owned(), "expired, unmanaged", false),
            ]
        );
    }
}
