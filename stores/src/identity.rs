//! [`ClientIdentity`]: the certificate berth presents to a TLS store that checks its
//! clients (Redis `--tls-auth-clients yes`, etcd `--client-cert-auth`).

use berth_secrets::Secret;

/// A client certificate chain and its private key, both PEM. The key is a [`Secret`]:
/// redacted in `Debug`, zeroized when dropped.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate chain, leaf first.
    pub cert_pem: Vec<u8>,
    /// The private key of the leaf.
    pub key_pem: Secret,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_bytes", &self.cert_pem.len())
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

/// The fix for a TLS alert about the client's certificate, from the error's text.
pub(crate) fn tls_fix(error: &str) -> Option<&'static str> {
    if error.contains("CertificateRequired") || error.contains("certificate required") {
        Some("the store wants a client certificate: pass --store-cert and --store-key")
    } else if error.contains("BadCertificate")
        || error.contains("UnknownCA")
        || error.contains("unknown ca")
        || error.contains("bad certificate")
    {
        Some(
            "the store refused the client certificate: check --store-cert and --store-key (signed by a CA the store trusts, for client authentication)",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_shows_in_debug() {
        let identity = ClientIdentity {
            cert_pem: b"-----BEGIN CERTIFICATE-----".to_vec(),
            key_pem: Secret::new("-----BEGIN PRIVATE KEY-----\nsecret-key-bytes".into()),
        };
        let shown = format!("{identity:?}");
        assert!(!shown.contains("secret-key-bytes"), "{shown}");
    }
}
