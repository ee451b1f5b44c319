//! What berth keeps under which key of a [`Store`], and the typed values.
//!
//! | key | value |
//! |---|---|
//! | `certs/<set>` | a certificate and its key, as one Traefik `acme.json` entry |
//! | `state/<set>` | [`CertState`]: failure ledger, ARI advice, staging proofs, order in flight |
//! | `accounts/<CA directory URL>` | [`StoredAccount`] |
//! | `history/<CA directory URL>` | the issuance history the rate budget counts |
//! | `revoked` | certificates berth revoked |
//!
//! `<set>` is [`DomainSet::key`]: the names sorted and joined by commas.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use berth_secrets::Secret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use super::StoreError;
use super::kv::{Bytes, Expect, Lease, Store, Version};
use crate::certificate::Certificate;
use crate::domain::DomainSet;
use crate::key::KeyType;
use crate::renewal::RenewalHint;

/// Key prefix of certificates.
pub const CERTS: &str = "certs/";
/// Key prefix of per-certificate state.
pub const STATES: &str = "state/";
/// Key prefix of ACME accounts.
pub const ACCOUNTS: &str = "accounts/";
/// Key prefix of issuance histories.
pub const HISTORIES: &str = "history/";
/// Key of the revocation list.
pub const REVOKED: &str = "revoked";

/// The key of a domain set's certificate.
pub fn cert_key(set: &str) -> String {
    format!("{CERTS}{set}")
}

/// The key of a domain set's state.
pub fn state_key(set: &str) -> String {
    format!("{STATES}{set}")
}

/// The key of the account at a CA.
pub fn account_key(ca: &str) -> String {
    format!("{ACCOUNTS}{ca}")
}

/// The key of the issuance history at a CA.
pub fn history_key(ca: &str) -> String {
    format!("{HISTORIES}{ca}")
}

/// Everything berth remembers about one domain set besides the certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertState {
    /// The failure ledger by CA directory URL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ledger: BTreeMap<String, LedgerEntry>,
    /// The CA's renewal advice (ARI) by certificate serial (lower-case hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hints: BTreeMap<String, RenewalHint>,
    /// Production CAs whose staging endpoint issued this set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staging: Vec<StagingProof>,
    /// The order in flight, stored before any challenge is answered so a restart (or
    /// another replica) resumes it instead of placing a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<PendingOrder>,
    /// The certificate profile the stored certificate was issued with
    /// (draft-ietf-acme-profiles); renewals request it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The serial (lower-case hex) of the stored certificate when its order was accepted
    /// as an ARI renewal of the one before (`replaces`, RFC 9773 §5): exempt from some
    /// of the CA's rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_renewal: Option<String>,
}

impl CertState {
    /// Whether nothing is remembered (the key can be deleted).
    pub fn is_empty(&self) -> bool {
        self.ledger.is_empty()
            && self.hints.is_empty()
            && self.staging.is_empty()
            && self.order.is_none()
            && self.profile.is_none()
            && self.ari_renewal.is_none()
    }

    /// Whether the set was proven on `ca`'s staging endpoint with the CA's default
    /// profile.
    pub fn staging_proven(&self, ca: &str) -> bool {
        self.staging_proven_for(ca, None)
    }

    /// Whether the set was proven on `ca`'s staging endpoint with `profile` (a proof
    /// with one profile says nothing about another: `shortlived` allows IP addresses
    /// `classic` refuses).
    pub fn staging_proven_for(&self, ca: &str, profile: Option<&str>) -> bool {
        self.staging
            .iter()
            .any(|p| p.ca == ca && p.profile.as_deref() == profile)
    }
}

/// An order placed and not yet finished.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingOrder {
    /// The CA directory URL the order was placed at.
    pub ca: String,
    /// The order URL (RFC 8555 §7.1.3).
    pub url: String,
    /// The certificate's private key (PEM), generated for this order.
    #[serde(
        serialize_with = "expose_secret",
        deserialize_with = "secret_from_string"
    )]
    pub key_pem: Secret,
    /// The key's type.
    pub key_type: KeyType,
    /// When it was placed.
    pub placed_at: SystemTime,
    /// The CA accepted it as the replacement of the stored certificate (RFC 9773
    /// `replaces`), which exempts it from some rate limits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replaces_accepted: bool,
}

impl std::fmt::Debug for PendingOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingOrder")
            .field("ca", &self.ca)
            .field("url", &self.url)
            .field("key_type", &self.key_type)
            .field("placed_at", &self.placed_at)
            .finish_non_exhaustive()
    }
}

impl PendingOrder {
    /// CAs keep an unfinished order for a week at most (Let's Encrypt: 7 days); after
    /// that it is not worth asking.
    pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

    /// Whether the order is young enough to resume.
    pub fn resumable(&self, now: SystemTime) -> bool {
        now.duration_since(self.placed_at)
            .is_ok_and(|age| age < Self::MAX_AGE)
    }
}

/// An ACME account: instant-acme's credentials JSON (it holds the account private key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAccount {
    /// The credentials, as a secret.
    #[serde(
        serialize_with = "expose_secret",
        deserialize_with = "secret_from_string"
    )]
    pub credentials: Secret,
    /// Contact email it was created with.
    #[serde(default)]
    pub email: Option<String>,
    /// When it was created.
    pub created_at: SystemTime,
}

/// The ledger entry of one domain set at one CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// CA directory URL.
    pub ca: String,
    /// The domain set's key.
    pub domains: String,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The last failure's problem type (`urn:ietf:params:acme:error:…` or a berth kind).
    pub last_error_type: String,
    /// The last failure's detail.
    pub last_error: String,
    /// When it failed.
    pub last_failure_at: SystemTime,
    /// No order before this time.
    pub next_attempt_at: SystemTime,
}

impl LedgerEntry {
    /// When the next order may be placed, while that is still after `now`; `None` once
    /// the set may be ordered again.
    pub fn backing_off_until(&self, now: SystemTime) -> Option<SystemTime> {
        (self.next_attempt_at > now).then_some(self.next_attempt_at)
    }
}

/// Proof that a domain set was issued by a CA's staging endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingProof {
    /// The production CA directory this proof unlocks.
    pub ca: String,
    /// The staging directory that issued.
    pub staging: String,
    /// The domain set's key.
    pub domains: String,
    /// When.
    pub at: SystemTime,
    /// The certificate profile the staging certificate was ordered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A certificate berth revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCert {
    /// Serial number, lower-case hex.
    pub serial_hex: String,
    /// The names it covered.
    pub domains: String,
    /// When it was revoked.
    pub at: SystemTime,
    /// The RFC 5280 reason given.
    pub reason: String,
}

/// A certificate as stored: the names it was ordered for and the certificate with key.
#[derive(Debug, Clone)]
pub struct CertRecord {
    /// The names (main first).
    pub domains: DomainSet,
    /// The certificate and its key.
    pub certificate: Certificate,
}

impl CertRecord {
    /// The value stored under [`cert_key`]: one Traefik `acme.json` certificate entry.
    pub fn encode(&self) -> Bytes {
        let entry = super::acme_json::entry_json(&self.domains, &self.certificate);
        Zeroizing::new(serde_json::to_vec(&entry).unwrap_or_default())
    }

    /// Parses a value stored under [`cert_key`]; the error names what is wrong, never
    /// the content.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let entry: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("not JSON: {}", e.classify_name()))?;
        let (domains, certificate) = super::acme_json::read_entry(&entry)?;
        Ok(Self {
            domains,
            certificate,
        })
    }
}

/// Everything berth remembers besides certificates, read at once for display
/// (`berth certs list`, `config check`).
#[derive(Debug, Default)]
pub struct StateSnapshot {
    /// Per domain-set key.
    pub certs: BTreeMap<String, CertState>,
    /// Revoked certificates.
    pub revoked: Vec<RevokedCert>,
    /// The CA directory URLs berth has an account at.
    pub accounts: std::collections::BTreeSet<String>,
}

impl StateSnapshot {
    /// Reads every `state/` key and the revocation list. An unreadable key is reported
    /// in the log and left out; the others are still shown.
    pub async fn read(store: &dyn Store) -> Result<Self, StoreError> {
        let mut snapshot = Self::default();
        for key in store.list(STATES).await? {
            match get_json::<CertState>(store, &key).await {
                Ok(Some((state, _))) => {
                    let set = key.strip_prefix(STATES).unwrap_or(&key).to_owned();
                    snapshot.certs.insert(set, state);
                }
                Ok(None) => {}
                Err(e @ StoreError::BadRecord { .. }) => tracing::warn!(error = %e, "skipped"),
                Err(e) => return Err(e),
            }
        }
        snapshot.accounts = store
            .list(ACCOUNTS)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(ACCOUNTS).map(str::to_owned))
            .collect();
        if let Some((revoked, _)) = get_json(store, REVOKED).await? {
            snapshot.revoked = revoked;
        }
        Ok(snapshot)
    }

    /// The state of one domain set (empty when there is none).
    pub fn cert(&self, set: &str) -> CertState {
        self.certs.get(set).cloned().unwrap_or_default()
    }

    /// The ledger entry of one domain set at one CA.
    pub fn ledger_entry(&self, ca: &str, set: &str) -> Option<&LedgerEntry> {
        self.certs.get(set)?.ledger.get(ca)
    }

    /// Whether a domain set was proven on `ca`'s staging endpoint.
    pub fn staging_proven(&self, ca: &str, set: &str) -> bool {
        self.certs.get(set).is_some_and(|s| s.staging_proven(ca))
    }

    /// The CA's renewal advice for a certificate serial, whichever set it belongs to.
    pub fn hint(&self, serial_hex: &str) -> Option<&RenewalHint> {
        self.certs.values().find_map(|s| s.hints.get(serial_hex))
    }

    /// Every failure ledger entry.
    pub fn ledger(&self) -> impl Iterator<Item = &LedgerEntry> {
        self.certs.values().flat_map(|s| s.ledger.values())
    }

    /// Whether the certificate with this serial was revoked by berth.
    pub fn revoked(&self, serial_hex: &str) -> Option<&RevokedCert> {
        self.revoked.iter().find(|r| r.serial_hex == serial_hex)
    }
}

/// Every certificate in `store` as a Traefik `acme.json` with one resolver section:
/// for display, and to hand a shared store's certificates to Traefik.
pub async fn traefik_json(
    store: &dyn Store,
    resolver: &str,
) -> Result<super::AcmeJson, StoreError> {
    let mut entries = Vec::new();
    for key in store.list(CERTS).await? {
        let Some(found) = store.get(&key).await? else {
            continue;
        };
        match serde_json::from_slice::<serde_json::Value>(&found.value) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                tracing::warn!(store = %store.describe(), key = %key, reason = e.classify_name(), "unreadable certificate left out")
            }
        }
    }
    let mut acme = super::AcmeJson::default();
    acme.put_section(resolver, entries);
    Ok(acme)
}

/// Reads the JSON value of `key`.
pub async fn get_json<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<(T, Version)>, StoreError> {
    let Some(found) = store.get(key).await? else {
        return Ok(None);
    };
    let value = serde_json::from_slice(&found.value).map_err(|e| StoreError::BadRecord {
        store: store.describe(),
        key: key.to_owned(),
        reason: e.classify_name().to_owned(),
    })?;
    Ok(Some((value, found.version)))
}

/// Writes `value` as JSON under `key`.
pub async fn put_json<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
    expect: Expect,
    fence: Option<&Lease>,
) -> Result<Version, StoreError> {
    store
        .put(key, encode_json(store, key, value)?, expect, fence)
        .await
}

/// Serialises a record; a value that cannot be serialised is an error, never an empty
/// file.
fn encode_json<T: Serialize>(store: &dyn Store, key: &str, value: &T) -> Result<Bytes, StoreError> {
    serde_json::to_vec(value)
        .map(Zeroizing::new)
        .map_err(|e| StoreError::BadRecord {
            store: store.describe(),
            key: key.to_owned(),
            reason: format!("cannot be serialised: {}", e.classify_name()),
        })
}

/// Reads `key` (or the default), applies `change` and writes it back if nobody wrote it
/// in between; retries on a conflict. Returns the value written.
pub async fn update_json<T, F>(
    store: &dyn Store,
    key: &str,
    fence: Option<&Lease>,
    mut change: F,
) -> Result<T, StoreError>
where
    T: Serialize + DeserializeOwned + Default,
    F: FnMut(&mut T),
{
    const ATTEMPTS: usize = 16;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let (mut value, expect) = match get_json::<T>(store, key).await? {
            Some((value, version)) => (value, Expect::Version(version)),
            None => (T::default(), Expect::Absent),
        };
        change(&mut value);
        match store
            .put(key, encode_json(store, key, &value)?, expect, fence)
            .await
        {
            Ok(_) => return Ok(value),
            Err(e @ StoreError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| StoreError::Conflict {
        store: store.describe(),
        key: key.to_owned(),
    }))
}

/// The kind of a JSON error only: serde's message may quote the (secret) input.
pub(crate) trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end of input",
        }
    }
}

fn expose_secret<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

fn secret_from_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    String::deserialize(deserializer).map(Secret::new)
}

/// A [`DomainSet`] stored as its key (`a.example.com,b.example.com`), the form records
/// have always used; read back it is parsed once, so code holding a record works with
/// names, never with the joined string. Read back, the names are in key order.
pub(crate) mod set_key {
    use serde::de::Error as _;

    use super::{Deserialize, Deserializer, DomainSet, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        set: &DomainSet,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&set.key())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DomainSet, D::Error> {
        let key = String::deserialize(deserializer)?;
        DomainSet::parse(key.split(','))
            .map_err(|e| D::Error::custom(format!("domain set {key:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_entry_backs_off_until_its_next_attempt_and_not_at_it() {
        let next = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let entry = LedgerEntry {
            ca: "https://ca/dir".into(),
            domains: "a.example.com".into(),
            consecutive_failures: 2,
            last_error_type: "urn:ietf:params:acme:error:rateLimited".into(),
            last_error: "too many".into(),
            last_failure_at: SystemTime::UNIX_EPOCH,
            next_attempt_at: next,
        };
        let before = next - Duration::from_secs(1);
        assert_eq!(entry.backing_off_until(before), Some(next));
        assert_eq!(entry.backing_off_until(next), None);
        assert_eq!(entry.backing_off_until(next + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_staging_proof_counts_only_for_its_profile() {
        let proof = |profile: Option<&str>| StagingProof {
            ca: "https://ca/dir".into(),
            staging: "https://staging/dir".into(),
            domains: "a.example.com".into(),
            at: SystemTime::UNIX_EPOCH,
            profile: profile.map(str::to_owned),
        };
        let mut state = CertState {
            staging: vec![proof(None)],
            ..CertState::default()
        };
        assert!(state.staging_proven("https://ca/dir"));
        assert!(!state.staging_proven_for("https://ca/dir", Some("shortlived")));
        state.staging.push(proof(Some("shortlived")));
        assert!(state.staging_proven_for("https://ca/dir", Some("shortlived")));
        assert!(!state.staging_proven_for("https://other/dir", Some("shortlived")));
        // A proof written before profiles existed reads as the default profile's.
        let old: StagingProof = serde_json::from_str(
            r#"{"ca":"https://ca/dir","staging":"https://staging/dir","domains":"a.example.com","at":{"secs_since_epoch":0,"nanos_since_epoch":0}}"#,
        )
        .unwrap();
        assert_eq!(old.profile, None);
    }

    #[test]
    fn pending_order_debug_hides_the_key_and_round_trips() {
        let order = PendingOrder {
            ca: "https://ca/dir".into(),
            url: "https://ca/order/1".into(),
            key_pem: Secret::new("-----BEGIN PRIVATE KEY-----SECRETKEY".into()),
            key_type: KeyType::Ec256,
            placed_at: SystemTime::now(),
            replaces_accepted: false,
        };
        assert!(!format!("{order:?}").contains("SECRETKEY"));
        let state = CertState {
            order: Some(order),
            ..CertState::default()
        };
        let text = serde_json::to_string(&state).unwrap();
        let back: CertState = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.order.unwrap().key_pem.expose(),
            "-----BEGIN PRIVATE KEY-----SECRETKEY"
        );
        assert!(CertState::default().is_empty());
    }

    #[test]
    fn an_order_older_than_a_week_is_not_resumed() {
        let now = SystemTime::now();
        let order = |age: u64| PendingOrder {
            ca: String::new(),
            url: String::new(),
            key_pem: Secret::new(String::new()),
            key_type: KeyType::Ec256,
            placed_at: now - Duration::from_secs(age),
            replaces_accepted: false,
        };
        assert!(order(3600).resumable(now));
        assert!(!order(8 * 24 * 3600).resumable(now));
    }
}
