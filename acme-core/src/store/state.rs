//! berth's own state file, kept beside `acme.json` (`<acme.json>.berth-state`) and never
//! inside it, so Traefik compatibility holds: every [`records`](super::records) key that
//! is not a certificate (accounts, per-certificate state, histories, revocations).
//!
//! JSON, mode 0600, written atomically like the store: `{"version": 2, "records": {key:
//! value}}`. Format 1 (one object with `accounts`, `ledger`, `history`, … fields) is read
//! and converted; the first write keeps the old file as `<state>.v1` for a downgrade.
//! Times are serde's `SystemTime` encoding (seconds and nanoseconds since the epoch).

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

use super::StoreError;
use super::records::{
    self, CertState, ClassifyName, LedgerEntry, REVOKED, RevokedCert, StagingProof, StoredAccount,
};
use crate::budget::HistoryEvent;
use crate::renewal::RenewalHint;

/// The newest state format this build reads and writes.
pub const STATE_VERSION: u32 = 2;

/// The state file that belongs to an `acme.json`.
pub fn state_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".berth-state");
    PathBuf::from(name)
}

/// The state file's records by key.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct StateDoc {
    pub(crate) records: BTreeMap<String, Value>,
    /// The file was format 1 and is converted on the next write.
    pub(crate) from_v1: bool,
}

/// Why a state file was not read.
#[derive(Debug)]
pub(crate) enum StateParseError {
    /// Written by a newer berth: leave it alone.
    Newer(u32),
    /// Not a state file (position and kind of the error, never content).
    Syntax(String),
}

impl StateDoc {
    /// Parses a state file. The version is read before anything else, so a newer
    /// berth's file is refused as newer, never taken for a corrupt one.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, StateParseError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let mut root: Value = serde_json::from_slice(bytes).map_err(|e| {
            StateParseError::Syntax(format!(
                "line {} column {}: {}",
                e.line(),
                e.column(),
                e.classify_name()
            ))
        })?;
        let version = root
            .get("version")
            .and_then(Value::as_u64)
            .ok_or_else(|| StateParseError::Syntax("no \"version\" number".into()))?;
        let version = u32::try_from(version).unwrap_or(u32::MAX);
        match version {
            v if v > STATE_VERSION => Err(StateParseError::Newer(v)),
            STATE_VERSION => match root.get_mut("records").map(Value::take) {
                Some(Value::Object(map)) => Ok(Self {
                    records: map.into_iter().collect(),
                    from_v1: false,
                }),
                None | Some(Value::Null) => Ok(Self::default()),
                Some(_) => Err(StateParseError::Syntax(
                    "\"records\" is not an object".into(),
                )),
            },
            _ => {
                let v1: StateV1 = serde_json::from_value(root).map_err(|e| {
                    StateParseError::Syntax(format!("format 1: {}", e.classify_name()))
                })?;
                Ok(Self {
                    records: v1.into_records(),
                    from_v1: true,
                })
            }
        }
    }

    /// The file's bytes.
    pub(crate) fn to_bytes(&self, path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let doc = serde_json::json!({ "version": STATE_VERSION, "records": self.records });
        serde_json::to_vec_pretty(&doc)
            .map(Zeroizing::new)
            .map_err(|e| StoreError::io("serialising", path, std::io::Error::other(e)))
    }
}

impl StateParseError {
    pub(crate) fn into_error(self, path: &Path) -> StoreError {
        match self {
            Self::Newer(found) => StoreError::Version {
                path: path.to_path_buf(),
                found,
                supported: STATE_VERSION,
            },
            Self::Syntax(reason) => StoreError::Unparsable {
                path: path.to_path_buf(),
                reason,
            },
        }
    }
}

/// Format 1, read only to convert it.
#[derive(Deserialize)]
struct StateV1 {
    #[serde(default)]
    accounts: BTreeMap<String, StoredAccount>,
    #[serde(default)]
    ledger: BTreeMap<String, LedgerEntry>,
    #[serde(default)]
    history: Vec<HistoryEvent>,
    #[serde(default)]
    staging_proofs: Vec<StagingProof>,
    #[serde(default)]
    revoked: Vec<RevokedCert>,
    #[serde(default)]
    renewal_hints: BTreeMap<String, RenewalHint>,
}

impl StateV1 {
    fn into_records(self) -> BTreeMap<String, Value> {
        let mut records = BTreeMap::new();
        let mut put = |key: String, value: Result<Value, serde_json::Error>| {
            if let Ok(value) = value {
                records.insert(key, value);
            }
        };
        for (ca, account) in self.accounts {
            put(records::account_key(&ca), serde_json::to_value(account));
        }
        let mut states: BTreeMap<String, CertState> = BTreeMap::new();
        for entry in self.ledger.into_values() {
            states
                .entry(entry.domains.clone())
                .or_default()
                .ledger
                .insert(entry.ca.clone(), entry);
        }
        for (serial, hint) in self.renewal_hints {
            states
                .entry(hint.domains.clone())
                .or_default()
                .hints
                .insert(serial, hint);
        }
        for proof in self.staging_proofs {
            states
                .entry(proof.domains.clone())
                .or_default()
                .staging
                .push(proof);
        }
        for (set, state) in states {
            put(records::state_key(&set), serde_json::to_value(state));
        }
        let mut histories: BTreeMap<String, Vec<HistoryEvent>> = BTreeMap::new();
        for event in self.history {
            histories.entry(event.ca.clone()).or_default().push(event);
        }
        for (ca, events) in histories {
            put(records::history_key(&ca), serde_json::to_value(events));
        }
        if !self.revoked.is_empty() {
            put(REVOKED.to_owned(), serde_json::to_value(self.revoked));
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::budget::HistoryKind;

    fn stored_time(at: SystemTime) -> Value {
        serde_json::to_value(at).unwrap()
    }

    #[test]
    fn format_1_is_converted_to_per_certificate_records() {
        let now = SystemTime::now();
        let at = stored_time(now);
        let next = stored_time(now + Duration::from_secs(600));
        let v1 = serde_json::json!({
            "version": 1,
            "accounts": {"https://ca/dir": {"credentials": "{\"k\":\"SECRET\"}", "email": null, "created_at": at}},
            "ledger": {"https://ca/dir a.example.com": {
                "ca": "https://ca/dir", "domains": "a.example.com", "consecutive_failures": 2,
                "last_error_type": "x", "last_error": "connection refused",
                "last_failure_at": at, "next_attempt_at": next}},
            "history": [{"at": at, "ca": "https://ca/dir", "domains": "a.example.com", "kind": "order_placed"}],
            "staging_proofs": [{"ca": "https://ca/dir", "staging": "https://staging/dir", "domains": "a.example.com", "at": at}],
            "revoked": [],
            "renewal_hints": {}
        });
        let doc = StateDoc::parse(v1.to_string().as_bytes()).unwrap();
        assert!(doc.from_v1);
        let state: CertState =
            serde_json::from_value(doc.records["state/a.example.com"].clone()).unwrap();
        assert_eq!(state.ledger["https://ca/dir"].consecutive_failures, 2);
        assert!(state.staging_proven("https://ca/dir"));
        let history: Vec<HistoryEvent> =
            serde_json::from_value(doc.records["history/https://ca/dir"].clone()).unwrap();
        assert_eq!(history[0].kind, HistoryKind::OrderPlaced);
        assert!(doc.records.contains_key("accounts/https://ca/dir"));
    }

    #[test]
    fn a_newer_file_is_refused_before_its_fields_are_read() {
        // Fields this build does not know, and one of the wrong type: still "newer".
        let text = r#"{"version": 99, "records": 5, "accounts": "later"}"#;
        assert!(matches!(
            StateDoc::parse(text.as_bytes()),
            Err(StateParseError::Newer(99))
        ));
    }

    #[test]
    fn a_parse_error_names_the_position_never_the_content() {
        let text = r#"{"version": 2, "records": {"accounts/x": hunter2}}"#;
        let Err(StateParseError::Syntax(reason)) = StateDoc::parse(text.as_bytes()) else {
            panic!("parsed")
        };
        assert!(reason.contains("line 1"), "{reason}");
        assert!(!reason.contains("hunter2"), "{reason}");
    }

    #[test]
    fn round_trips_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut doc = StateDoc::default();
        doc.records
            .insert("revoked".into(), serde_json::json!([{"x": 1}]));
        let bytes = doc.to_bytes(&path).unwrap();
        assert_eq!(StateDoc::parse(&bytes).unwrap(), doc);
    }
}
