//! TLS-ALPN-01 (RFC 8737): self-signed `acmeIdentifier` certificates served to
//! handshakes that offer the `acme-tls/1` protocol.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use rcgen::{CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::crypto;
use crate::domain::DomainName;
use crate::error::CertError;

/// The ALPN protocol id of TLS-ALPN-01 (RFC 8737 §6.2). A server that answers the
/// challenge must list it in `ServerConfig::alpn_protocols`.
pub const ACME_TLS_ALPN_PROTOCOL: &[u8] = b"acme-tls/1";

/// Pending TLS-ALPN-01 challenge certificates by name, shared between the order flow and
/// the TLS server on :443. Cloning shares the same map.
///
/// ```
/// use berth_certs::DomainName;
/// use berth_certs::challenge::TlsAlpn01Responder;
///
/// let responder = TlsAlpn01Responder::new();
/// let name = DomainName::parse("example.com")?;
/// // SHA-256 of the key authorization, from the order flow.
/// responder.insert(&name, &[7; 32])?;
/// assert!(responder.get("example.com").is_some());
/// responder.remove(&name);
/// assert!(responder.get("example.com").is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct TlsAlpn01Responder {
    certs: Arc<RwLock<HashMap<String, Arc<CertifiedKey>>>>,
}

impl std::fmt::Debug for TlsAlpn01Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self
            .certs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("TlsAlpn01Responder")
            .field("pending", &pending)
            .finish()
    }
}

impl TlsAlpn01Responder {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the RFC 8737 §3 certificate for `name` — self-signed, the name as its only
    /// SAN (an IP address SAN for an IP identifier, RFC 8738 §6), and the critical
    /// `acmeIdentifier` extension holding the SHA-256 digest of the key authorization —
    /// and publishes it under the server name the CA will send
    /// ([`DomainName::tls_alpn_server_name`]: the reverse-DNS name for an IP).
    pub fn insert(
        &self,
        name: &DomainName,
        key_authorization_digest: &[u8],
    ) -> Result<(), CertError> {
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CertError::key_generation)?;
        let mut params = CertificateParams::new(vec![name.as_str().to_owned()])
            .map_err(CertError::key_generation)?;
        params.custom_extensions = vec![CustomExtension::new_acme_identifier(
            key_authorization_digest,
        )];
        let cert = params
            .self_signed(&key)
            .map_err(CertError::key_generation)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key = crypto::signing_key(&key_der)?;
        let certified =
            CertifiedKey::new(vec![CertificateDer::from(cert.der().to_vec())], signing_key);
        self.certs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.tls_alpn_server_name(), Arc::new(certified));
        Ok(())
    }

    /// Withdraws the certificate for `name` once its authorization is settled.
    pub fn remove(&self, name: &DomainName) {
        self.certs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&name.tls_alpn_server_name());
    }

    /// The challenge certificate for this handshake, if it offers `acme-tls/1` and a
    /// challenge for its server name is pending.
    pub fn resolve_hello(&self, client_hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let offers_acme = client_hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN_PROTOCOL));
        if !offers_acme {
            return None;
        }
        self.get(&client_hello.server_name()?.to_ascii_lowercase())
    }

    /// The pending challenge certificate for a lower-case TLS server name (for an IP
    /// identifier, its reverse-DNS name).
    pub fn get(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        self.certs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(server_name)
            .cloned()
    }

    /// Whether a handshake offers `acme-tls/1` (such a handshake must never get a normal
    /// certificate, RFC 8737 §4).
    pub fn is_challenge_hello(client_hello: &ClientHello<'_>) -> bool {
        client_hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN_PROTOCOL))
    }
}

/// A rustls certificate resolver that answers `acme-tls/1` handshakes from a
/// [`TlsAlpn01Responder`] and delegates every other handshake to `inner`.
#[derive(Debug)]
pub struct AlpnChallengeResolver<R> {
    challenges: TlsAlpn01Responder,
    inner: R,
}

impl<R> AlpnChallengeResolver<R> {
    /// Wraps `inner`.
    pub fn new(challenges: TlsAlpn01Responder, inner: R) -> Self {
        Self { challenges, inner }
    }
}

impl<R: ResolvesServerCert> ResolvesServerCert for AlpnChallengeResolver<R> {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if TlsAlpn01Responder::is_challenge_hello(&client_hello) {
            return self.challenges.resolve_hello(&client_hello);
        }
        self.inner.resolve(client_hello)
    }
}
