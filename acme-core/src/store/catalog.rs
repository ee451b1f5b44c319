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
            backoff_until: failures.and_then(|e| e.backing_off_until(now)),
            profile: set.profile,
            cert,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use berth_secrets::Secret;
    use rcgen::{CertificateParams, KeyPair};

    use super::*;
    use crate::store::records::{self, CertRecord, REVOKED};
    use crate::store::{Expect, FileStore};
    use crate::{Certificate, DomainSet};

    const DAY: Duration = Duration::from_secs(86_400);

    /// A self-signed certificate for `names`, valid from a day ago for `days` days.
    fn cert(names: &[&str], days: u64) -> Certificate {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = (SystemTime::now() - DAY).into();
        params.not_after = (SystemTime::now() + DAY * u32::try_from(days).unwrap()).into();
        let pem = params.self_signed(&key).unwrap().pem();
        Certificate::from_pem(&pem, Secret::new(key.serialize_pem())).unwrap()
    }

    fn set(names: &[&str]) -> DomainSet {
        DomainSet::parse(names.iter().copied()).unwrap()
    }

    fn acme(entries: &[(&str, &[&str], u64)]) -> AcmeJson {
        let mut acme = AcmeJson::parse(b"{}").unwrap();
        for (resolver, names, days) in entries {
            acme.upsert(resolver, &set(names), &cert(names, *days));
        }
        acme
    }

    fn main_name(cert: Option<StoredCert>) -> Option<(String, String)> {
        cert.map(|c| (c.resolver, c.domains.main().as_str().to_owned()))
    }

    #[test]
    fn find_takes_the_main_name_before_a_covering_certificate_and_berths_section_first() {
        let acme = acme(&[
            ("berth", &["*.example.com", "example.com"], 90),
            ("berth", &["www.example.com"], 90),
            ("traefik", &["api.example.com"], 90),
            ("berth", &["api.example.com", "other.example.net"], 30),
        ]);
        let found = |name| main_name(acme.find("berth", name));
        let pair = |r: &str, n: &str| Some((r.to_owned(), n.to_owned()));
        // The main name wins over the wildcard that also covers it.
        assert_eq!(found("www.example.com"), pair("berth", "www.example.com"));
        assert_eq!(found(" WWW.example.com"), pair("berth", "www.example.com"));
        // berth's own section before another resolver's, even expiring sooner.
        assert_eq!(found("api.example.com"), pair("berth", "api.example.com"));
        assert_eq!(
            main_name(acme.find("traefik", "api.example.com")),
            pair("traefik", "api.example.com")
        );
        // A name only covered: by a wildcard (one label), or as a second name.
        assert_eq!(found("shop.example.com"), pair("berth", "*.example.com"));
        assert_eq!(found("other.example.net"), pair("berth", "api.example.com"));
        assert_eq!(found("a.b.example.com"), None);
        assert_eq!(found("example.org"), None);
    }

    #[tokio::test]
    async fn catalog_entries_say_managed_and_revoked_from_the_stores_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(&dir.path().join("acme.json"), "berth")
            .await
            .unwrap();
        for names in [&["kept.example.com"][..], &["dropped.example.com"]] {
            let record = CertRecord {
                domains: set(names),
                certificate: cert(names, 90),
            };
            let key = records::cert_key(&record.domains.key());
            store
                .put(&key, record.encode(), Expect::Any, None)
                .await
                .unwrap();
        }
        let read = || async { Catalog::read(store.as_ref(), store.acme_json(), "berth").await };
        let now = SystemTime::now();
        // No berth run recorded its configuration: nobody can say what is managed.
        let catalog = read().await.unwrap();
        assert!(catalog.entries(now).0.iter().all(|e| e.managed.is_none()));

        stale::record_configured(store.as_ref(), [set(&["kept.example.com"]).key()])
            .await
            .unwrap();
        let dropped = catalog.find("dropped.example.com", now).unwrap();
        let serial = dropped.cert.certificate.info().serial_hex.clone();
        records::update_json::<Vec<RevokedCert>, _>(store.as_ref(), REVOKED, None, |list| {
            list.push(RevokedCert {
                serial_hex: serial.clone(),
                domains: dropped.cert.domains.key(),
                at: now,
                reason: "superseded".into(),
            });
        })
        .await
        .unwrap();

        let catalog = read().await.unwrap();
        let kept = catalog.find("kept.example.com", now).unwrap();
        assert_eq!(kept.managed, Some(true));
        assert!(kept.revoked.is_none() && kept.failures.is_none());
        assert!(kept.renew_at > now && kept.renew_at < kept.cert.certificate.info().not_after);
        let dropped = catalog.find("dropped.example.com", now).unwrap();
        assert_eq!(dropped.managed, Some(false));
        assert_eq!(dropped.revoked.map(|r| r.reason), Some("superseded".into()));
        assert_eq!(catalog.entries(now).0.len(), 2);
    }
}
