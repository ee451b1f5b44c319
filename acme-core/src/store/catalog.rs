//! What a store holds, as a reader wants it: every stored certificate with what berth
//! knows about it (when it renews, whether it is backing off, revoked, managed), and one
//! certificate found by a name it carries. `berth certs`, `revoke` and `import` read the
//! store through this; an application embedding the crates can list its store the same
//! way.

use std::time::SystemTime;

use crate::renewal::{ExpiryLevel, due_at};
use crate::stale::{self, ConfiguredSets};
use crate::store::{
    AcmeJson, LedgerEntry, RevokedCert, StateSnapshot, Store, StoreError, StoredCert,
    UnreadableCert,
};

impl AcmeJson {
    /// The stored certificate whose main name is `name`, or failing that one that covers
    /// it (a wildcard covers one label); `resolver`'s section before the others, and the
    /// one that expires last among equals. `None` when no certificate carries the name.
    pub fn find(&self, resolver: &str, name: &str) -> Option<StoredCert> {
        let (mut certs, _) = self.all_certificates();
        certs.sort_by_key(|c| (c.resolver == resolver, c.certificate.info().not_after));
        let wanted = name.trim().to_ascii_lowercase();
        let exact = certs
            .iter()
            .rposition(|c| c.domains.main().as_str() == wanted);
        let covering = || {
            certs
                .iter()
                .rposition(|c| c.domains.names().iter().any(|n| n.matches(&wanted)))
        };
        exact.or_else(covering).map(|i| certs.swap_remove(i))
    }
}

/// A store's certificates and berth's records about them, read once.
#[derive(Debug)]
pub struct Catalog {
    acme: AcmeJson,
    state: StateSnapshot,
    configured: Option<ConfiguredSets>,
    resolver: String,
}

/// One stored certificate and what berth knows about it at one moment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CatalogEntry {
    /// The certificate, its names and the `acme.json` resolver section it is in.
    pub cert: StoredCert,
    /// How much of its lifetime is left, relative to that lifetime (a 6-day certificate
    /// is not always "expiring").
    pub expiry: ExpiryLevel,
    /// The certificate profile it was ordered with, if any.
    pub profile: Option<String>,
    /// When berth renews it: the CA's suggestion (ARI) if it has one, else two thirds
    /// into its validity.
    pub renew_at: SystemTime,
    /// The renewal window the CA suggested (ACME Renewal Information), if any.
    pub renewal_window: Option<(SystemTime, SystemTime)>,
    /// berth's record of revoking it, if it did.
    pub revoked: Option<RevokedCert>,
    /// Ordered as an ARI renewal (RFC 9773 `replaces`) and accepted by the CA.
    pub ari_renewal: bool,
    /// Whether the last `berth run` manages it: `None` for another resolver's certificate,
    /// or when no `berth run` recorded its configuration in the store.
    pub managed: Option<bool>,
    /// Its failures since the last success (the ledger entry), if any.
    pub failures: Option<LedgerEntry>,
    /// Until when those failures hold back its next order, while that is still ahead.
    pub backoff_until: Option<SystemTime>,
}

impl Catalog {
    /// Reads berth's records (state, revocations, the configured sets) from `store` for
    /// the certificates in `acme`. A file store's `acme.json` holds other resolvers'
    /// sections too ([`FileStore::acme_json`](crate::store::FileStore::acme_json)); for any
    /// other store, [`records::traefik_json`](crate::store::records::traefik_json).
    /// `resolver` is berth's section.
    pub async fn read(
        store: &dyn Store,
        acme: AcmeJson,
        resolver: &str,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            acme,
            state: StateSnapshot::read(store).await?,
            configured: stale::configured(store).await?,
            resolver: resolver.to_owned(),
        })
    }

    /// berth's state records as read.
    pub fn state(&self) -> &StateSnapshot {
        &self.state
    }

    /// The certificates as stored, each of which could be read.
    pub fn acme_json(&self) -> &AcmeJson {
        &self.acme
    }

    /// Every stored certificate as of `now`, and the entries that could not be read
    /// (with the reason).
    pub fn entries(&self, now: SystemTime) -> (Vec<CatalogEntry>, Vec<UnreadableCert>) {
        let (certs, unreadable) = self.acme.all_certificates();
        let entries = certs.into_iter().map(|c| self.entry(c, now)).collect();
        (entries, unreadable)
    }

    /// The certificate `name` picks ([`AcmeJson::find`]), as of `now`.
    pub fn find(&self, name: &str, now: SystemTime) -> Option<CatalogEntry> {
        let cert = self.acme.find(&self.resolver, name)?;
        Some(self.entry(cert, now))
    }

    fn entry(&self, cert: StoredCert, now: SystemTime) -> CatalogEntry {
        let info = cert.certificate.info();
        let key = cert.domains.key();
        let set = self.state.cert(&key);
        let hint = self.state.hint(&info.serial_hex);
        let failures = self.state.ledger().find(|e| e.domains == key);
        CatalogEntry {
            expiry: ExpiryLevel::at(info.not_before, info.not_after, now),
            renew_at: due_at(&cert.certificate, hint),
            renewal_window: hint.and_then(|h| h.window),
            revoked: self.state.revoked(&info.serial_hex).cloned(),
            ari_renewal: set.ari_renewal.as_deref() == Some(info.serial_hex.as_str()),
            managed: (cert.resolver == self.resolver)
                .then_some(self.configured.as_ref())
                .flatten()
                .map(|c| c.manages(&key)),
            failures: failures.cloned(),
            backoff_until: failures.map(|e| e.next_attempt_at).filter(|at| *at > now),
            profile: set.profile,
            cert,
        }
    }
}
