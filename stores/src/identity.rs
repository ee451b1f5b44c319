//! [`ClientIdentity`]: the certificate berth presents to a TLS store that checks its
//! clients (Redis `--tls-auth-clients yes`, etcd `--client-cert-auth`).

use berth_acme_core::Setting;
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

/// The fix for a TLS alert about the client's certificate, from the error's text; the
/// setting at fault is [`Setting::StoreIdentity`](berth_acme_core::Setting::StoreIdentity).
pub(crate) fn tls_fix(error: &str) -> Option<&'static str> {
    if error.contains("CertificateRequired") || error.contains("certificate required") {
        Some("the store wants a client certificate: give one and its key (`identity`)")
    } else if error.contains("BadCertificate")
        || error.contains("UnknownCA")
        || error.contains("unknown ca")
        || error.contains("bad certificate")
    {
        Some(
            "the store refused the client certificate: check the certificate and key given as `identity` (signed by a CA the store trusts, for client authentication)",
        )
    } else {
        None
    }
}

/// What to add to a failure to connect over TLS (`error` being the whole error text) when
/// berth showed no client certificate: a store that checks clients refuses one only after
/// a TLS 1.3 handshake, so its alert is often lost and the client sees the connection
/// closed. The setting at fault is the client certificate, as for [`tls_fix`].
pub(crate) fn connect_hint(error: &str, tls: bool, identity: bool) -> Option<&'static str> {
    if !tls || identity || tls_fix(error).is_some() {
        return None;
    }
    let closed = [
        "connection closed",
        "Canceled",
        "reset by peer",
        "Connection reset",
        "broken pipe",
        "Broken pipe",
        "end of file",
        "UnexpectedEof",
    ]
    .iter()
    .any(|marker| error.contains(marker));
    closed.then_some(
        "the store closed the TLS connection; if it checks client certificates, give one and its key (`identity`)",
    )
}

/// A failure to connect explained as `explained` (its text and the setting at fault),
/// with [`connect_hint`]'s advice added when it applies; `debug` is the error's `{:?}`.
pub(crate) fn with_connect_hint(
    explained: (String, Option<Setting>),
    debug: &str,
    tls: bool,
    identity: bool,
) -> (String, Option<Setting>) {
    match connect_hint(debug, tls, identity) {
        Some(hint) => (
            format!("{}; {hint}", explained.0),
            Some(Setting::StoreIdentity),
        ),
        None => explained,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_tls_connection_without_a_client_certificate_gets_the_hint() {
        let closed = "grpc request error: Transport(hyper::Error(Canceled, \"connection closed\"))";
        assert!(
            connect_hint(closed, true, false)
                .unwrap()
                .ends_with("give one and its key (`identity`)")
        );
        assert_eq!(connect_hint(closed, false, false), None);
        assert_eq!(connect_hint(closed, true, true), None);
        assert_eq!(
            connect_hint("received fatal alert: CertificateRequired", true, false),
            None
        );
        assert_eq!(connect_hint("connection refused", true, false), None);
    }

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
