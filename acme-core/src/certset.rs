//! The set of certificates being served, published to TLS servers as one value.

use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::certificate::Certificate;

/// Every certificate a server should offer. Published whole through a
/// `tokio::sync::watch` channel and swapped atomically by resolvers: a reload is one
/// pointer swap, and handshakes in flight keep the set they started with.
#[derive(Debug, Clone, Default)]
pub struct CertSet {
    certs: Vec<Certificate>,
}

impl CertSet {
    /// A set of the given certificates, in order of preference for overlapping names.
    pub fn new(certs: Vec<Certificate>) -> Self {
        Self { certs }
    }

    /// The certificates.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certs
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The certificate for a TLS server name: an exact name match first, then a wildcard
    /// covering one label; among several, the one valid longest.
    pub fn lookup(&self, server_name: &str) -> Option<&Arc<CertifiedKey>> {
        let best = |exact: bool| {
            self.certs
                .iter()
                .filter(|c| {
                    c.info().domains.names().iter().any(|n| {
                        if exact {
                            n.as_str().eq_ignore_ascii_case(server_name)
                        } else {
                            n.is_wildcard() && n.matches(server_name)
                        }
                    })
                })
                .max_by_key(|c| c.info().not_after)
        };
        best(true)
            .or_else(|| best(false))
            .map(Certificate::certified_key)
    }
}
