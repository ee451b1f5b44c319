//! `acme.json` as berth's file store writes it: the file operations (read-only display,
//! owner loads that move a corrupt file aside, atomic 0600 saves) and the edits of a
//! resolver section. The format itself — field names, base64 PEM, Go's case-insensitive
//! keys — is [`berth_certs::acme_json`], which the proxy reads files with too.
//!
//! berth keeps its ACME account in its own state file (instant-acme's accounts are P-256,
//! Traefik's are RSA), writes `"Account": null` for a resolver section it creates — Traefik
//! then registers its own account on first use and keeps renewing berth's certificates —
//! and never rewrites an account, resolver or field it did not create.

use std::path::Path;

use berth_certs::acme_json::{Document, field as get_ci, field_mut, set_field as set_ci};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::StoreError;
use super::atomic::{self, PRIVATE_MODE};
use crate::certificate::Certificate;
use crate::domain::DomainSet;

pub use berth_certs::acme_json::{StoredCert, UnreadableCert};
pub(crate) use berth_certs::acme_json::{entry as entry_json, entry_domains, read_entry, wipe};

/// The default resolver section berth writes to.
pub const DEFAULT_RESOLVER: &str = "berth";

/// An `acme.json` file held in memory as JSON, so everything berth does not manage
/// round-trips untouched.
///
/// ```
/// use base64::{Engine, engine::general_purpose::STANDARD};
/// use berth_acme_core::store::{AcmeJson, DEFAULT_RESOLVER};
/// # let generated = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()])?;
/// # let (chain_pem, key_pem) = (generated.cert.pem(), generated.signing_key.serialize_pem());
///
/// // What Traefik writes: resolver `le`, PEM certificate and key in base64.
/// let text = format!(
///     r#"{{"le": {{"Account": null, "Certificates": [{{"domain": {{"main": "example.com"}},
///         "certificate": "{}", "key": "{}", "Store": "default"}}]}}}}"#,
///     STANDARD.encode(chain_pem),
///     STANDARD.encode(key_pem),
/// );
/// let mut store = AcmeJson::parse(text.as_bytes())?;
/// let (certs, unreadable) = store.certificates("le");
/// assert!(unreadable.is_empty());
/// assert_eq!(certs[0].domains.to_string(), "example.com");
///
/// // berth writes its own resolver section and leaves Traefik's as it was.
/// store.upsert(DEFAULT_RESOLVER, &certs[0].domains, &certs[0].certificate);
/// let dir = tempfile::tempdir()?;
/// store.save(&dir.path().join("acme.json"))?; // atomically, mode 0600
/// let reread = AcmeJson::read(&dir.path().join("acme.json"))?;
/// assert_eq!(reread.all_certificates().0.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct AcmeJson {
    /// Wipes every string (keys included) when dropped.
    doc: Document,
}

/// Names the resolvers only: the document holds private keys.
impl std::fmt::Debug for AcmeJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeJson")
            .field("resolvers", &self.doc.fields().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// How [`AcmeJson::load_with`] treats a file that others can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permissions {
    /// Refuse a world-readable file; set a group-readable one back to 0600 with a
    /// warning (commands that write, and `berth run`).
    Strict,
    /// Read it with a warning (read-only commands such as `berth certs list`).
    WarnOnly,
}

impl AcmeJson {
    /// Reads `path` for display without ever moving, rewriting or chmodding it: a file
    /// others can read is read with a warning, one that does not parse is an error that
    /// says where it breaks and leaves the file as it is.
    pub fn read(path: &Path) -> Result<Self, StoreError> {
        match atomic::read_private(path, atomic::ACME_JSON_CAP, atomic::Access::ReadOnly)? {
            None => Ok(Self::default()),
            Some(bytes) => Self::parse(&bytes).map_err(|reason| StoreError::Unparsable {
                path: path.to_path_buf(),
                reason,
            }),
        }
    }

    /// Loads `path` for writing: refuses a file others can read. A missing or empty file
    /// (Traefik leaves empty ones after crashes) is an empty store; a corrupt one is moved
    /// aside and reported, never overwritten.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        Self::load_with(path, Permissions::Strict)
    }

    /// Loads `path` with the given permission policy.
    pub fn load_with(path: &Path, permissions: Permissions) -> Result<Self, StoreError> {
        let access = match permissions {
            Permissions::Strict => atomic::Access::Owner,
            Permissions::WarnOnly => atomic::Access::ReadOnly,
        };
        let Some(bytes) = atomic::read_private(path, atomic::ACME_JSON_CAP, access)? else {
            return Ok(Self::default());
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            if !bytes.is_empty() || path.exists() {
                tracing::warn!(path = %path.display(), "acme.json is empty; starting with no certificates");
            }
            return Ok(Self::default());
        }
        Self::parse(&bytes).map_err(|reason| atomic::quarantine(path, reason))
    }

    /// Parses the bytes of a store without touching any file: for readers that do not
    /// own the file (the proxy watching a store another process writes), which must not
    /// move it aside. Empty input is an empty store; the error says where the JSON breaks.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        Document::parse(bytes).map(|doc| Self { doc })
    }

    /// Writes the store atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        atomic::write_atomic(path, &self.to_bytes(path)?, PRIVATE_MODE)
    }

    /// The file's bytes (pretty JSON, as Traefik writes it).
    pub(crate) fn to_bytes(&self, path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        serde_json::to_vec_pretty(self.doc.fields())
            .map(Zeroizing::new)
            .map_err(|e| StoreError::io("serialising", path, std::io::Error::other(e)))
    }

    /// The file's bytes with `resolver`'s certificate list set to `unkeyed` followed by
    /// `certs` (entries kept as JSON text), without building a tree of them: the file
    /// store writes 10,000 certificates this way.
    pub(crate) fn to_bytes_with(
        &self,
        resolver: &str,
        unkeyed: &[Value],
        certs: &[&serde_json::value::RawValue],
        path: &Path,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let out = WithSection {
            root: self.doc.fields(),
            resolver,
            unkeyed,
            certs,
        };
        serde_json::to_vec_pretty(&out)
            .map(Zeroizing::new)
            .map_err(|e| StoreError::io("serialising", path, std::io::Error::other(e)))
    }

    /// Takes the certificate entries of `resolver` out of the document: those whose
    /// names parse by [`DomainSet::key`] (a later duplicate wins), and the others, which
    /// must be put back unchanged by [`put_section`](Self::put_section).
    pub(crate) fn take_section(&mut self, resolver: &str) -> (Vec<(String, Value)>, Vec<Value>) {
        let mut keyed = Vec::new();
        let mut unkeyed = Vec::new();
        let Some(list) = self.section_list_mut(resolver) else {
            return (keyed, unkeyed);
        };
        for entry in std::mem::take(list) {
            match entry_domains(&entry) {
                Some(domains) => keyed.push((domains.key(), entry)),
                None => unkeyed.push(entry),
            }
        }
        (keyed, unkeyed)
    }

    /// Sets the certificate list of `resolver`, creating the section (with
    /// `"Account": null`) if needed.
    pub(crate) fn put_section(&mut self, resolver: &str, entries: Vec<Value>) {
        if let Some(list) = self.section_list_or_create(resolver) {
            *list = entries;
        }
    }

    /// The certificate list of `resolver`. A missing section is created with
    /// `"Account": null`, a section that is not an object replaced by one, and a list
    /// that is missing or not a list becomes an empty one (keeping the key's spelling).
    fn section_list_or_create(&mut self, resolver: &str) -> Option<&mut Vec<Value>> {
        if self.section_list_mut(resolver).is_none() {
            let section = self
                .doc
                .fields_mut()
                .entry(resolver.to_owned())
                .or_insert_with(|| serde_json::json!({ "Account": null }));
            if !section.is_object() {
                *section = serde_json::json!({ "Account": null });
            }
            if let Some(object) = section.as_object_mut() {
                set_ci(object, "Certificates", Value::Array(Vec::new()));
            }
        }
        self.section_list_mut(resolver)
    }

    /// Every entry outside `resolver` whose names parse, by [`DomainSet::key`]: an
    /// imported Traefik `acme.json`'s certificates, served until berth has its own.
    pub(crate) fn foreign_entries(&self, resolver: &str) -> Vec<(String, Value)> {
        self.doc
            .fields()
            .iter()
            .filter(|(name, _)| name.as_str() != resolver)
            .filter_map(|(_, section)| get_ci(section, "Certificates")?.as_array())
            .flatten()
            .filter_map(|entry| Some((entry_domains(entry)?.key(), entry.clone())))
            .collect()
    }

    /// The certificate list of `resolver`, if it has one.
    fn section_list_mut(&mut self, resolver: &str) -> Option<&mut Vec<Value>> {
        let section = self.doc.fields_mut().get_mut(resolver)?.as_object_mut()?;
        field_mut(section, "Certificates")?.as_array_mut()
    }

    /// The resolver names in the file.
    pub fn resolvers(&self) -> Vec<String> {
        self.doc.resolvers()
    }

    /// Every readable certificate of every resolver, and the entries that were not.
    pub fn all_certificates(&self) -> (Vec<StoredCert>, Vec<UnreadableCert>) {
        self.doc.all_certificates()
    }

    /// The certificates of one resolver, and the entries that could not be read.
    pub fn certificates(&self, resolver: &str) -> (Vec<StoredCert>, Vec<UnreadableCert>) {
        self.doc.certificates(resolver)
    }

    /// Adds or replaces the certificate for `domains` in `resolver`, creating the
    /// resolver section (with `"Account": null`) if needed. An existing entry for the
    /// same names keeps its other fields.
    pub fn upsert(&mut self, resolver: &str, domains: &DomainSet, certificate: &Certificate) {
        let Some(list) = self.section_list_or_create(resolver) else {
            return;
        };
        let fresh = entry_json(domains, certificate);
        let position = list
            .iter()
            .position(|entry| entry_domains(entry).is_some_and(|d| d.same_names(domains)));
        if let Some(entry) = position
            .and_then(|i| list.get_mut(i))
            .and_then(Value::as_object_mut)
        {
            if let Value::Object(fields) = fresh {
                for (key, value) in fields.into_iter().filter(|(k, _)| k != "Store") {
                    set_ci(entry, &key, value);
                }
            }
        } else {
            list.push(fresh);
        }
    }

    /// Removes the certificate for exactly `domains` from `resolver`; whether one was.
    pub fn remove(&mut self, resolver: &str, domains: &DomainSet) -> bool {
        let Some(list) = self.section_list_mut(resolver) else {
            return false;
        };
        let before = list.len();
        list.retain(|entry| !entry_domains(entry).is_some_and(|d| d.same_names(domains)));
        list.len() != before
    }
}

/// The document with one resolver's certificate list replaced (see
/// [`AcmeJson::to_bytes_with`]).
struct WithSection<'a> {
    root: &'a Map<String, Value>,
    resolver: &'a str,
    unkeyed: &'a [Value],
    certs: &'a [&'a serde_json::value::RawValue],
}

impl serde::Serialize for WithSection<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let section = Section {
            base: self.root.get(self.resolver),
            unkeyed: self.unkeyed,
            certs: self.certs,
        };
        let mut map = serializer.serialize_map(None)?;
        let mut written = false;
        for (name, value) in self.root {
            if name == self.resolver {
                map.serialize_entry(name, &section)?;
                written = true;
            } else {
                map.serialize_entry(name, value)?;
            }
        }
        if !written {
            map.serialize_entry(self.resolver, &section)?;
        }
        map.end()
    }
}

/// A resolver section: its own fields as they are (an `"Account": null` if it has none),
/// and the certificate list.
struct Section<'a> {
    base: Option<&'a Value>,
    unkeyed: &'a [Value],
    certs: &'a [&'a serde_json::value::RawValue],
}

impl serde::Serialize for Section<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct List<'a>(&'a [Value], &'a [&'a serde_json::value::RawValue]);
        impl serde::Serialize for List<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len() + self.1.len()))?;
                for entry in self.0 {
                    seq.serialize_element(entry)?;
                }
                for entry in self.1 {
                    seq.serialize_element(entry)?;
                }
                seq.end()
            }
        }
        let mut map = serializer.serialize_map(None)?;
        let mut list_key = "Certificates";
        match self.base.and_then(Value::as_object) {
            Some(fields) => {
                for (name, value) in fields {
                    if name.eq_ignore_ascii_case("Certificates") {
                        list_key = name;
                    } else {
                        map.serialize_entry(name, value)?;
                    }
                }
            }
            None => map.serialize_entry("Account", &Value::Null)?,
        }
        map.serialize_entry(list_key, &List(self.unkeyed, self.certs))?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use berth_secrets::Secret;
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    fn cert(names: &[&str]) -> Certificate {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Certificate::from_pem(&pem, Secret::new(key.serialize_pem())).unwrap()
    }

    /// Written by hand from Traefik's types: `StoredData{Account, Certificates []*CertAndStore}`,
    /// `Account{Email, Registration, PrivateKey []byte, KeyType}`,
    /// `CertAndStore{Certificate{Domain, Certificate, Key}, Store}`.
    fn traefik_fixture(c: &Certificate) -> String {
        let chain = STANDARD.encode(c.chain_pem());
        let key = STANDARD.encode(c.key_pem().expose());
        format!(
            r#"{{
  "letsencrypt": {{
    "Account": {{
      "Email": "ops@example.com",
      "Registration": {{
        "body": {{ "status": "valid", "contact": ["mailto:ops@example.com"] }},
        "uri": "https://acme-v02.api.letsencrypt.org/acme/acct/123456"
      }},
      "PrivateKey": "MIIJKQIBAAKCAgEAtest",
      "KeyType": "4096"
    }},
    "Certificates": [
      {{
        "domain": {{ "main": "app.example.com", "sans": ["www.example.com"] }},
        "certificate": "{chain}",
        "key": "{key}",
        "Store": "default"
      }}
    ]
  }}
}}"#
        )
    }

    fn write_private(path: &Path, text: &str) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn debug_never_prints_a_key() {
        let mut store = AcmeJson::default();
        let c = cert(&["debug.example.com"]);
        store.upsert(
            "berth",
            &DomainSet::parse(["debug.example.com"]).unwrap(),
            &c,
        );
        let printed = format!("{store:?}");
        let key_b64 = STANDARD.encode(c.key_pem().expose());
        assert!(!printed.contains(&key_b64[..40]), "{printed}");
        assert!(printed.contains("berth"), "{printed}");
    }

    #[test]
    fn reads_a_file_traefik_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        let c = cert(&["app.example.com", "www.example.com"]);
        write_private(&path, &traefik_fixture(&c));
        let store = AcmeJson::load(&path).unwrap();
        assert_eq!(store.resolvers(), vec!["letsencrypt".to_string()]);
        let (certs, unreadable) = store.certificates("letsencrypt");
        assert!(unreadable.is_empty(), "{unreadable:?}");
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].domains.main().as_str(), "app.example.com");
        assert_eq!(certs[0].certificate.chain_pem(), c.chain_pem());
    }

    #[test]
    fn berth_output_has_every_field_traefik_reads_and_keeps_foreign_sections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        let foreign = cert(&["app.example.com", "www.example.com"]);
        write_private(&path, &traefik_fixture(&foreign));
        let before: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();

        let mut store = AcmeJson::load(&path).unwrap();
        let ours = cert(&["berth.example.com"]);
        let domains = DomainSet::parse(["berth.example.com"]).unwrap();
        store.upsert(DEFAULT_RESOLVER, &domains, &ours);
        store.save(&path).unwrap();

        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let after: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            after["letsencrypt"], before["letsencrypt"],
            "foreign resolver changed"
        );
        let section = &after["berth"];
        assert!(section["Account"].is_null(), "{section}");
        let entry = &section["Certificates"][0];
        assert_eq!(entry["domain"]["main"], "berth.example.com");
        assert_eq!(entry["domain"]["sans"], serde_json::json!([]));
        assert_eq!(entry["Store"], "default");
        let chain = STANDARD
            .decode(entry["certificate"].as_str().unwrap())
            .unwrap();
        assert!(
            String::from_utf8(chain)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        let key = STANDARD.decode(entry["key"].as_str().unwrap()).unwrap();
        assert!(String::from_utf8(key).unwrap().contains("PRIVATE KEY-----"));
    }

    #[test]
    fn upsert_replaces_same_names_and_keeps_unknown_fields() {
        let mut store = AcmeJson::default();
        let domains = DomainSet::parse(["a.example.com", "b.example.com"]).unwrap();
        store.upsert(
            "berth",
            &domains,
            &cert(&["a.example.com", "b.example.com"]),
        );
        store.doc.fields_mut()["berth"]["Certificates"][0]["Extra"] = "kept".into();
        let newer = cert(&["a.example.com", "b.example.com"]);
        let reordered = DomainSet::parse(["b.example.com", "a.example.com"]).unwrap();
        store.upsert("berth", &reordered, &newer);
        let (certs, _) = store.certificates("berth");
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].certificate.chain_pem(), newer.chain_pem());
        assert_eq!(
            store.doc.fields_mut()["berth"]["Certificates"][0]["Extra"],
            "kept"
        );
        assert!(store.remove("berth", &domains));
        assert!(!store.remove("berth", &domains));
    }

    #[test]
    fn keys_are_matched_ignoring_case_like_go() {
        let c = cert(&["x.example.com"]);
        let text = traefik_fixture(&c)
            .replace("\"domain\"", "\"Domain\"")
            .replace("\"certificate\"", "\"Certificate\"");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        write_private(&path, &text);
        let (certs, unreadable) = AcmeJson::load(&path).unwrap().certificates("letsencrypt");
        assert!(unreadable.len() + certs.len() == 1);
        assert_eq!(certs.len(), 1, "{unreadable:?}");
    }

    #[test]
    fn unreadable_entries_are_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        write_private(
            &path,
            r#"{"berth":{"Account":null,"Certificates":[{"domain":{"main":"bad.example.com"},"certificate":"!!","key":"","Store":"default"}]}}"#,
        );
        let mut store = AcmeJson::load(&path).unwrap();
        let (certs, unreadable) = store.certificates("berth");
        assert!(certs.is_empty());
        assert_eq!(unreadable[0].main.as_deref(), Some("bad.example.com"));
        assert!(
            unreadable[0].reason.contains("base64"),
            "{:?}",
            unreadable[0]
        );
        store.upsert(
            "berth",
            &DomainSet::parse(["ok.example.com"]).unwrap(),
            &cert(&["ok.example.com"]),
        );
        store.save(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("bad.example.com"),
            "unreadable entry was dropped"
        );
    }

    #[test]
    fn corrupt_file_is_moved_aside_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        write_private(&path, "{\"berth\": {\"Certificates\": [");
        let err = AcmeJson::load(&path).unwrap_err();
        let StoreError::Corrupt { moved_to, .. } = &err else {
            panic!("{err}")
        };
        assert!(!path.exists());
        assert_eq!(
            fs::read_to_string(moved_to).unwrap(),
            "{\"berth\": {\"Certificates\": ["
        );
        assert!(err.to_string().contains("moved to"), "{err}");
    }

    #[test]
    fn missing_and_empty_files_are_empty_stores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        assert!(AcmeJson::load(&path).unwrap().resolvers().is_empty());
        write_private(&path, "");
        assert!(AcmeJson::load(&path).unwrap().resolvers().is_empty());
    }

    #[test]
    fn world_readable_store_is_refused_unless_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = AcmeJson::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(AcmeJson::load_with(&path, Permissions::WarnOnly).is_ok());
    }
}
