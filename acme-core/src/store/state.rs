//! berth's own state, kept beside `acme.json` (`<acme.json>.berth-state`) and never
//! inside it, so Traefik compatibility holds: ACME accounts, the failure ledger, the
//! issuance history the rate budget counts, staging proofs and revocations.
//!
//! JSON, mode 0600, written atomically like the store. Times are serde's `SystemTime`
//! encoding (seconds and nanoseconds since the Unix epoch).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_secrets::Secret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use super::StoreError;
use super::atomic::{self, PRIVATE_MODE};
use crate::budget::HistoryEvent;
use crate::renewal::RenewalHint;

/// The newest state format this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// Everything berth remembers between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// ACME accounts by CA directory URL.
    #[serde(default)]
    pub accounts: BTreeMap<String, StoredAccount>,
    /// The failure ledger by [`ledger_key`].
    #[serde(default)]
    pub ledger: BTreeMap<String, LedgerEntry>,
    /// Orders, issuances and failed validations, newest last (pruned to a week).
    #[serde(default)]
    pub history: Vec<HistoryEvent>,
    /// Domain sets proven on a CA's staging endpoint.
    #[serde(default)]
    pub staging_proofs: Vec<StagingProof>,
    /// Certificates berth revoked.
    #[serde(default)]
    pub revoked: Vec<RevokedCert>,
    /// The issuing CA's renewal advice (ARI) per stored certificate, by serial (lower-case
    /// hex).
    #[serde(default)]
    pub renewal_hints: BTreeMap<String, RenewalHint>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            accounts: BTreeMap::new(),
            ledger: BTreeMap::new(),
            history: Vec::new(),
            staging_proofs: Vec::new(),
            revoked: Vec::new(),
            renewal_hints: BTreeMap::new(),
        }
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

/// The ledger key of a domain set at a CA.
pub fn ledger_key(ca: &str, domains: &str) -> String {
    format!("{ca} {domains}")
}

/// The state file that belongs to an `acme.json`.
pub fn state_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".berth-state");
    PathBuf::from(name)
}

impl State {
    /// Loads the state file (missing → empty; corrupt → moved aside and reported;
    /// readable by others → refused).
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        atomic::check_private(path)?;
        let Some(bytes) = atomic::read_optional(path)?.map(Zeroizing::new) else {
            return Ok(Self::default());
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let state: Self = match serde_json::from_slice(&bytes) {
            Ok(state) => state,
            Err(e) => {
                return Err(atomic::quarantine(
                    path,
                    format!(
                        "line {} column {}: {}",
                        e.line(),
                        e.column(),
                        e.classify_name()
                    ),
                ));
            }
        };
        if state.version > STATE_VERSION {
            return Err(StoreError::Version {
                path: path.to_path_buf(),
                found: state.version,
                supported: STATE_VERSION,
            });
        }
        Ok(state)
    }

    /// Writes the state atomically, mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let bytes = Zeroizing::new(serde_json::to_vec_pretty(self).unwrap_or_default());
        atomic::write_atomic(path, &bytes, PRIVATE_MODE)
    }

    /// The ledger entry for a domain set at a CA.
    pub fn ledger_entry(&self, ca: &str, domains: &str) -> Option<&LedgerEntry> {
        self.ledger.get(&ledger_key(ca, domains))
    }

    /// The CA's renewal advice for the certificate with `serial_hex`, if berth asked.
    pub fn renewal_hint(&self, serial_hex: &str) -> Option<&RenewalHint> {
        self.renewal_hints.get(serial_hex)
    }

    /// Whether a domain set was proven on `ca`'s staging endpoint.
    pub fn staging_proven(&self, ca: &str, domains: &str) -> bool {
        self.staging_proofs
            .iter()
            .any(|p| p.ca == ca && p.domains == domains)
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    /// The kind of parse error only: serde's message may quote the (secret) input.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end of file",
        }
    }
}

fn expose_secret<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

fn secret_from_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    String::deserialize(deserializer).map(Secret::new)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;
    use crate::budget::HistoryKind;

    #[test]
    fn round_trips_and_never_debug_prints_the_account_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir.path().join("acme.json"));
        assert!(path.ends_with("acme.json.berth-state"));
        let now = SystemTime::now();
        let mut state = State::default();
        state.accounts.insert(
            "https://ca/dir".into(),
            StoredAccount {
                credentials: Secret::new("{\"key_pkcs8\":\"SECRETKEYMATERIAL\"}".into()),
                email: None,
                created_at: now,
            },
        );
        state.ledger.insert(
            ledger_key("https://ca/dir", "a.example.com"),
            LedgerEntry {
                ca: "https://ca/dir".into(),
                domains: "a.example.com".into(),
                consecutive_failures: 2,
                last_error_type: "urn:ietf:params:acme:error:connection".into(),
                last_error: "connection refused".into(),
                last_failure_at: now,
                next_attempt_at: now + Duration::from_secs(600),
            },
        );
        state.history.push(HistoryEvent {
            at: now,
            ca: "https://ca/dir".into(),
            domains: "a.example.com".into(),
            kind: HistoryKind::OrderPlaced,
        });
        state.save(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let loaded = State::load(&path).unwrap();
        assert_eq!(
            loaded.accounts["https://ca/dir"].credentials.expose(),
            "{\"key_pkcs8\":\"SECRETKEYMATERIAL\"}"
        );
        assert_eq!(
            loaded
                .ledger_entry("https://ca/dir", "a.example.com")
                .unwrap()
                .consecutive_failures,
            2
        );
        assert_eq!(loaded.history, state.history);
        assert!(!format!("{loaded:?}").contains("SECRETKEYMATERIAL"));
    }

    #[test]
    fn corrupt_state_is_moved_aside_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json.berth-state");
        fs::write(
            &path,
            "{\"version\": 1, \"accounts\": {\"x\": {\"credentials\": 5, \"hunter2\": 1}}}",
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = State::load(&path).unwrap_err().to_string();
        assert!(err.contains("moved to"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        fs::write(&path, "{\"version\": 99}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            State::load(&path),
            Err(StoreError::Version { found: 99, .. })
        ));
    }
}
