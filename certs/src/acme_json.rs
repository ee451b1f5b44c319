//! `acme.json` in Traefik's format: the certificate entries, so Traefik and berth can
//! read each other's files. Writing the file (atomically, under a lock, berth's own
//! resolver section) is `berth-acme-core`'s `store::AcmeJson`, built on this module.
//!
//! Verified against Traefik's source (`pkg/provider/acme/local_store.go`, `account.go`,
//! `store.go`, Traefik v2/v3): the file is a JSON object keyed by resolver name; each
//! resolver holds `Account` (`Email`, `Registration` {`body`, `uri`}, `PrivateKey` — Go
//! `[]byte`, i.e. base64 of an RSA-4096 PKCS#1 DER key — and `KeyType`) and
//! `Certificates`, a list of `CertAndStore`: `domain` {`main`, `sans`}, `certificate`
//! (base64 of the PEM chain, leaf first), `key` (base64 of a PEM private key, loaded with
//! Go's `tls.X509KeyPair`, so PKCS#8, SEC1 and PKCS#1 all work) and `Store`
//! (`"default"`). Go's JSON decoder matches keys case-insensitively, so berth reads any
//! case ([`field`]) and writes Traefik's exact spelling ([`entry`], [`set_field`]).
//!
//! ```
//! use base64::{Engine, engine::general_purpose::STANDARD};
//! use berth_certs::acme_json::Document;
//! # let generated = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()])?;
//! # let (chain_pem, key_pem) = (generated.cert.pem(), generated.signing_key.serialize_pem());
//!
//! // What Traefik writes: resolver `le`, PEM certificate and key in base64.
//! let text = format!(
//!     r#"{{"le": {{"Account": null, "Certificates": [{{"domain": {{"main": "example.com"}},
//!         "certificate": "{}", "key": "{}", "Store": "default"}}]}}}}"#,
//!     STANDARD.encode(chain_pem),
//!     STANDARD.encode(key_pem),
//! );
//! let document = Document::parse(text.as_bytes())?;
//! let (certs, unreadable) = document.all_certificates();
//! assert!(unreadable.is_empty());
//! assert_eq!(certs[0].resolver, "le");
//! assert_eq!(certs[0].domains.to_string(), "example.com");
//! assert!(Document::parse(b"[]").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_secrets::Secret;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::certificate::Certificate;
use crate::domain::DomainSet;

/// An `acme.json` document held in memory as JSON, so whatever a reader does not look at
/// (accounts, other fields, entries it cannot parse) stays as it was.
#[derive(Clone, Default)]
pub struct Document {
    root: Map<String, Value>,
}

/// Names the resolvers only: the document holds private keys.
impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("resolvers", &self.root.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The document holds private keys (`key` of every certificate, a Traefik account's
/// `PrivateKey`): every string in it is overwritten when it is dropped.
impl Drop for Document {
    fn drop(&mut self) {
        self.root.values_mut().for_each(wipe);
    }
}

impl Document {
    /// Parses the bytes of a file without touching it. Empty input (Traefik leaves empty
    /// files after crashes) is an empty document; the error says where the JSON breaks
    /// and never quotes it.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(root)) => Ok(Self { root }),
            Ok(_) => Err("the top level is not a JSON object".into()),
            Err(e) => Err(format!("line {} column {}", e.line(), e.column())),
        }
    }

    /// The resolver names in the file.
    pub fn resolvers(&self) -> Vec<String> {
        self.root.keys().cloned().collect()
    }

    /// Every readable certificate of every resolver, and the entries that were not.
    pub fn all_certificates(&self) -> (Vec<StoredCert>, Vec<UnreadableCert>) {
        let mut certs = Vec::new();
        let mut unreadable = Vec::new();
        for resolver in self.root.keys() {
            let (c, u) = self.certificates(resolver);
            certs.extend(c);
            unreadable.extend(u);
        }
        (certs, unreadable)
    }

    /// The certificates of one resolver, and the entries that could not be read.
    pub fn certificates(&self, resolver: &str) -> (Vec<StoredCert>, Vec<UnreadableCert>) {
        let mut certs = Vec::new();
        let mut unreadable = Vec::new();
        let entries = self
            .root
            .get(resolver)
            .and_then(|r| field(r, "Certificates"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for entry in entries {
            match read_entry(entry) {
                Ok((domains, certificate)) => certs.push(StoredCert {
                    resolver: resolver.to_owned(),
                    domains,
                    certificate,
                }),
                Err(reason) => unreadable.push(UnreadableCert {
                    resolver: resolver.to_owned(),
                    main: field(entry, "domain")
                        .and_then(|d| field(d, "main"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    reason,
                }),
            }
        }
        (certs, unreadable)
    }

    /// The top-level object (resolver name → section), for writers.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.root
    }

    /// The top-level object, for writers: what they change is wiped on drop like the rest.
    pub fn fields_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.root
    }
}

/// A certificate read from `acme.json`.
#[derive(Debug, Clone)]
pub struct StoredCert {
    /// The resolver section it is in.
    pub resolver: String,
    /// The names from its `domain` field (main first).
    pub domains: DomainSet,
    /// The parsed certificate and key.
    pub certificate: Certificate,
}

/// An entry that could not be read; it stays in the file untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableCert {
    /// The resolver section it is in.
    pub resolver: String,
    /// Its `domain.main`, if readable.
    pub main: Option<String>,
    /// Why it could not be used.
    pub reason: String,
}

/// Overwrites every string in `value` with zeros (keys of objects are field names and
/// stay). Recursion is bounded by serde_json's nesting limit (128) on parsed input.
pub fn wipe(value: &mut Value) {
    use zeroize::Zeroize;
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(fields) => fields.values_mut().for_each(wipe),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A field of an object by name, ignoring case like Go's JSON decoder.
pub fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A field of an object by name, for changing it: the first key equal to `name` when
/// case is ignored, as Go's JSON decoder reads it.
pub fn field_mut<'a>(object: &'a mut Map<String, Value>, name: &str) -> Option<&'a mut Value> {
    object
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Sets a field, reusing the spelling of an existing key that differs only in case.
pub fn set_field(object: &mut Map<String, Value>, name: &str, value: Value) {
    let existing = object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned();
    object.insert(existing.unwrap_or_else(|| name.to_owned()), value);
}

/// One certificate entry as Traefik writes it: `domain` {`main`, `sans`}, base64 PEM
/// `certificate` and `key`, `Store` `"default"`.
pub fn entry(domains: &DomainSet, certificate: &Certificate) -> Value {
    let names = Value::Object(Map::from_iter([
        ("main".into(), Value::String(domains.main().to_string())),
        (
            "sans".into(),
            Value::Array(
                domains
                    .sans()
                    .iter()
                    .map(|n| Value::String(n.to_string()))
                    .collect(),
            ),
        ),
    ]));
    Value::Object(Map::from_iter([
        ("domain".into(), names),
        (
            "certificate".into(),
            Value::String(STANDARD.encode(certificate.chain_pem())),
        ),
        (
            "key".into(),
            Value::String(STANDARD.encode(certificate.key_pem().expose())),
        ),
        ("Store".into(), Value::String("default".into())),
    ]))
}

/// The names of an entry's `domain` field (main first), if they parse.
pub fn entry_domains(entry: &Value) -> Option<DomainSet> {
    let domain = field(entry, "domain")?;
    let main = field(domain, "main")?.as_str()?;
    let sans = field(domain, "sans")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let names = std::iter::once(main).chain(sans.iter().filter_map(Value::as_str));
    DomainSet::parse(names).ok()
}

/// An entry's names and certificate, or why it cannot be used (never quoting the key).
pub fn read_entry(entry: &Value) -> Result<(DomainSet, Certificate), String> {
    let domains = entry_domains(entry).ok_or("missing or invalid domain.main / domain.sans")?;
    let decode = |name: &str| -> Result<Zeroizing<Vec<u8>>, String> {
        let text = field(entry, name)
            .and_then(Value::as_str)
            .ok_or(format!("missing {name}"))?;
        STANDARD
            .decode(text.trim())
            .map(Zeroizing::new)
            .map_err(|_| format!("{name} is not base64"))
    };
    let chain = decode("certificate")?;
    let key = decode("key")?;
    let chain =
        String::from_utf8(chain.to_vec()).map_err(|_| "certificate is not PEM text".to_owned())?;
    let key = String::from_utf8(key.to_vec()).map_err(|_| "key is not PEM text".to_owned())?;
    let certificate = Certificate::from_pem(&chain, Secret::new(key)).map_err(|e| e.to_string())?;
    Ok((domains, certificate))
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn an_entry_reads_back_as_written_in_any_key_case() {
        let c = cert(&["a.example.com", "b.example.com"]);
        let domains = DomainSet::parse(["a.example.com", "b.example.com"]).unwrap();
        let written = entry(&domains, &c);
        let (names, read) = read_entry(&written).unwrap();
        assert!(names.same_names(&domains));
        assert_eq!(read.chain_pem(), c.chain_pem());

        let shouted = serde_json::to_string(&written)
            .unwrap()
            .replace("\"domain\"", "\"Domain\"")
            .replace("\"main\"", "\"Main\"")
            .replace("\"certificate\"", "\"Certificate\"");
        let shouted: Value = serde_json::from_str(&shouted).unwrap();
        assert!(read_entry(&shouted).is_ok());

        let mut object = Map::new();
        object.insert("certificates".into(), Value::Null);
        set_field(&mut object, "Certificates", Value::Array(Vec::new()));
        assert_eq!(object.len(), 1, "the existing spelling is kept");
        assert!(object["certificates"].is_array());
    }

    #[test]
    fn unreadable_entries_say_why_without_the_key() {
        let text = r#"{"berth":{"Account":null,"Certificates":[
            {"domain":{"main":"bad.example.com"},"certificate":"!!","key":"c2VjcmV0","Store":"default"},
            {"domain":{"main":"-"},"certificate":"","key":""}]}}"#;
        let document = Document::parse(text.as_bytes()).unwrap();
        let (certs, unreadable) = document.certificates("berth");
        assert!(certs.is_empty());
        assert_eq!(unreadable[0].main.as_deref(), Some("bad.example.com"));
        assert!(unreadable[0].reason.contains("base64"), "{unreadable:?}");
        assert!(
            unreadable[1].reason.contains("domain.main"),
            "{unreadable:?}"
        );
        assert!(!format!("{document:?}").contains("c2VjcmV0"));
        assert_eq!(document.resolvers(), ["berth"]);
    }

    #[test]
    fn broken_json_is_located_not_quoted_and_empty_is_empty() {
        let err = Document::parse(b"{\"berth\": {\"key\": \"hunter2\"").unwrap_err();
        assert!(err.starts_with("line 1 column"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(Document::parse(b" \n").unwrap().resolvers().is_empty());
        assert!(Document::parse(b"\"text\"").is_err());
    }
}
