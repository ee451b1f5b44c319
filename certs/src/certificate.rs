//! An issued certificate: its PEM chain, its private key, and what we read from the leaf.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_secrets::Secret;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::crypto;
use crate::domain::{DomainName, DomainSet};
use crate::error::CertError;

/// A certificate chain (leaf first) with its private key, checked to belong together.
///
/// The key is a [`Secret`]: zeroized on drop and never printed. Cloning is cheap (one
/// shared allocation): the manager's index and every published set hold the same one.
#[derive(Clone)]
pub struct Certificate {
    inner: Arc<Parsed>,
}

struct Parsed {
    key_pem: Secret,
    info: CertInfo,
    certified_key: Arc<CertifiedKey>,
}

/// What berth reads from a leaf certificate: the names it covers, its validity, issuer
/// and serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The names the certificate covers; the main name is the subject CN when it has
    /// one, else the first SAN.
    pub domains: DomainSet,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The issuer's distinguished name, as text.
    pub issuer: String,
    /// The serial number, lower-case hex.
    pub serial_hex: String,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("info", &self.inner.info)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Parses a PEM chain (leaf first) and a PEM private key (PKCS#8, SEC1 or PKCS#1),
    /// and checks that the key belongs to the leaf.
    pub fn from_pem(chain_pem: &str, key_pem: Secret) -> Result<Self, CertError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(None, format!("certificate PEM does not parse: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(invalid(
                None,
                "no CERTIFICATE block in the chain PEM".into(),
            ));
        };
        let info = CertInfo::from_der(leaf)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes()).map_err(|_| {
            // The pem error can quote the input; say only what kind of problem it is.
            CertError::InvalidKey {
                reason: "private key PEM does not parse (expected PKCS#8, SEC1 or PKCS#1)".into(),
            }
        })?;
        let signing_key = crypto::signing_key(&key)?;
        let certified_key = CertifiedKey::new(chain, signing_key);
        certified_key.keys_match().map_err(|e| {
            invalid(
                Some(info.domains.main().to_string()),
                format!("the private key does not belong to the certificate ({e})"),
            )
        })?;
        Ok(Self {
            inner: Arc::new(Parsed {
                key_pem,
                info,
                certified_key: Arc::new(certified_key),
            }),
        })
    }

    /// The PEM chain, leaf first. Encoded from the DER when asked (not kept: at 10,000
    /// certificates the text would be a second copy of every chain in memory).
    pub fn chain_pem(&self) -> String {
        use base64::Engine;
        let mut pem = String::new();
        for der in &self.inner.certified_key.cert {
            let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            pem.push_str("-----BEGIN CERTIFICATE-----\n");
            for line in body.as_bytes().chunks(64) {
                pem.push_str(&String::from_utf8_lossy(line));
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
        }
        pem
    }

    /// The private key as PEM.
    pub fn key_pem(&self) -> &Secret {
        &self.inner.key_pem
    }

    /// What the leaf says.
    pub fn info(&self) -> &CertInfo {
        &self.inner.info
    }

    /// The chain and signing key, ready for a rustls resolver.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.inner.certified_key
    }

    /// Whether every name of `domains` is covered by this certificate.
    pub fn covers(&self, domains: &DomainSet) -> bool {
        domains.names().iter().all(|want| {
            self.inner
                .info
                .domains
                .names()
                .iter()
                .any(|have| have == want || (!want.is_wildcard() && have.matches(want.as_str())))
        })
    }

    /// Whether the certificate is valid at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.inner.info.not_before <= now && now < self.inner.info.not_after
    }
}

impl CertInfo {
    /// Reads a DER leaf certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| invalid(None, format!("certificate DER does not parse: {e}")))?;
        let mut names: Vec<DomainName> = Vec::new();
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            && let Ok(name) = DomainName::parse(cn)
        {
            names.push(name);
        }
        for ext in cert.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for general in &san.general_names {
                    let parsed = match general {
                        GeneralName::DNSName(dns) => DomainName::parse(dns).ok(),
                        GeneralName::IPAddress(bytes) => {
                            ip_from_bytes(bytes).and_then(|ip| DomainName::parse(&ip).ok())
                        }
                        _ => None,
                    };
                    names.extend(parsed);
                }
            }
        }
        let domains = DomainSet::new(names)
            .map_err(|e| invalid(None, format!("certificate names no usable domain: {e}")))?;
        Ok(Self {
            not_before: asn1_to_system_time(cert.validity().not_before.timestamp()),
            not_after: asn1_to_system_time(cert.validity().not_after.timestamp()),
            issuer: cert.issuer().to_string(),
            serial_hex: cert.raw_serial_as_string().replace(':', ""),
            domains,
        })
    }

    /// How long the certificate is valid in total.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

fn asn1_to_system_time(unix_seconds: i64) -> SystemTime {
    match u64::try_from(unix_seconds) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}

fn invalid(context: Option<String>, reason: String) -> CertError {
    CertError::InvalidCertificate { context, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn self_signed(names: &[&str]) -> (String, Secret) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Secret::new(key.serialize_pem()))
    }

    #[test]
    fn parses_names_and_validity_and_covers_wildcards() {
        let (chain, key) = self_signed(&["example.com", "*.example.com", "127.0.0.1"]);
        let cert = Certificate::from_pem(&chain, key).unwrap();
        let names: Vec<&str> = cert
            .info()
            .domains
            .names()
            .iter()
            .map(DomainName::as_str)
            .collect();
        assert!(
            names.contains(&"example.com")
                && names.contains(&"*.example.com")
                && names.contains(&"127.0.0.1")
        );
        assert!(cert.covers(&DomainSet::parse(["www.example.com", "example.com"]).unwrap()));
        assert!(!cert.covers(&DomainSet::parse(["a.b.example.com"]).unwrap()));
        assert!(cert.is_valid_at(SystemTime::now()));
        assert!(cert.info().lifetime() > Duration::ZERO);
    }

    #[test]
    fn mismatched_key_is_refused() {
        let (chain, _) = self_signed(&["example.com"]);
        let (_, other_key) = self_signed(&["example.com"]);
        let err = Certificate::from_pem(&chain, other_key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn garbage_is_refused_without_echoing_the_key() {
        let (chain, _) = self_signed(&["example.com"]);
        let err = Certificate::from_pem(&chain, Secret::new("not-a-key-hunter2".into()))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(Certificate::from_pem("nothing here", Secret::new(String::new())).is_err());
    }

    #[test]
    fn debug_never_prints_the_key() {
        let (chain, key) = self_signed(&["example.com"]);
        let key_text = key.expose().to_owned();
        let cert = Certificate::from_pem(&chain, key).unwrap();
        let debug = format!("{cert:?}");
        assert!(!debug.contains(&key_text[40..80]), "{debug}");
    }
}
