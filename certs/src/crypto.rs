//! The one place that names the rustls crypto provider. berth has one: `ring` (no C
//! toolchain, no cmake). Everything that builds a TLS configuration or loads a key goes
//! through here, so a change of provider is a change to this file and the workspace
//! dependency features.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::ProducesTickets;
use rustls::sign::SigningKey;
use rustls_pki_types::PrivateKeyDer;

use crate::error::CertError;

/// The crypto provider berth builds TLS configurations with.
///
/// ```
/// let config = rustls::ServerConfig::builder_with_provider(berth_certs::crypto::provider())
///     .with_safe_default_protocol_versions()?
///     .with_no_client_auth()
///     .with_cert_resolver(std::sync::Arc::new(rustls::server::ResolvesServerCertUsingSni::new()));
/// assert!(!config.crypto_provider().cipher_suites.is_empty());
/// # Ok::<(), rustls::Error>(())
/// ```
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A session-ticket encrypter on the same provider (rustls has no provider-neutral
/// constructor for one), rotating its key every six hours.
pub fn ticketer() -> Result<Arc<dyn ProducesTickets>, rustls::Error> {
    rustls::crypto::ring::Ticketer::new()
}

/// Loads a private key (PKCS#8, SEC1 or PKCS#1) as a rustls signing key.
pub(crate) fn signing_key(key: &PrivateKeyDer<'_>) -> Result<Arc<dyn SigningKey>, CertError> {
    provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| CertError::InvalidKey {
            reason: e.to_string(),
        })
}
