//! The one place that knows which rustls crypto provider is active (`ring` by default).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::SigningKey;
use rustls_pki_types::PrivateKeyDer;

use crate::error::Error;

/// The crypto provider berth builds TLS configs with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a private key (PKCS#8, SEC1 or PKCS#1) as a rustls signing key.
pub(crate) fn signing_key(key: &PrivateKeyDer<'_>) -> Result<Arc<dyn SigningKey>, Error> {
    provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| Error::InvalidKey {
            reason: e.to_string(),
        })
}
