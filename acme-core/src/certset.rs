//! The set of certificates being served, published to TLS servers as one value.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::certificate::Certificate;

/// Every certificate a server should offer. Published whole through a
/// `tokio::sync::watch` channel and swapped atomically by resolvers: a reload is one
/// pointer swap, and handshakes in flight keep the set they started with.
///
/// Lookups are hash-map lookups, built once per set: a handshake costs the same with
/// one certificate or ten thousand.
#[derive(Debug, Clone, Default)]
pub struct CertSet {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    certs: Vec<Certificate>,
    /// Lower-case exact name → index of the certificate valid longest for it.
    exact: HashMap<String, usize>,
    /// Lower-case parent of a wildcard (`example.com` for `*.example.com`) → index.
    wildcard: HashMap<String, usize>,
}

impl CertSet {
    /// A set of the given certificates. Where several cover a name, the one valid
    /// longest is served for it.
    pub fn new(certs: Vec<Certificate>) -> Self {
        let mut exact: HashMap<String, usize> = HashMap::new();
        let mut wildcard: HashMap<String, usize> = HashMap::new();
        for (i, cert) in certs.iter().enumerate() {
            for name in cert.info().domains.names() {
                let name = name.as_str().to_ascii_lowercase();
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent.to_owned()),
                    None => (&mut exact, name),
                };
                let slot = map.entry(key).or_insert(i);
                if certs[*slot].info().not_after < cert.info().not_after {
                    *slot = i;
                }
            }
        }
        Self {
            inner: Arc::new(Inner {
                certs,
                exact,
                wildcard,
            }),
        }
    }

    /// The certificates.
    pub fn certificates(&self) -> &[Certificate] {
        &self.inner.certs
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.certs.is_empty()
    }

    /// The certificate for a TLS server name: an exact name match first, then a wildcard
    /// covering one label; among several, the one valid longest.
    pub fn lookup(&self, server_name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        let inner = &*self.inner;
        inner
            .exact
            .get(&name)
            .or_else(|| {
                let (_, parent) = name.split_once('.')?;
                inner.wildcard.get(parent)
            })
            .and_then(|&i| inner.certs.get(i))
            .map(Certificate::certified_key)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use berth_secrets::Secret;
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    fn cert(names: &[&str], days: i64) -> Certificate {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let pem = params.self_signed(&key).unwrap().pem();
        Certificate::from_pem(&pem, Secret::new(key.serialize_pem())).unwrap()
    }

    #[test]
    fn exact_beats_wildcard_and_the_longest_valid_wins() {
        let wild = cert(&["*.example.com"], 90);
        let short = cert(&["a.example.com"], 10);
        let long = cert(&["a.example.com", "b.example.com"], 60);
        let set = CertSet::new(vec![wild.clone(), short, long.clone()]);
        let served = |name| set.lookup(name).map(Arc::as_ptr);
        assert_eq!(
            served("A.Example.com"),
            Some(Arc::as_ptr(long.certified_key()))
        );
        assert_eq!(
            served("c.example.com"),
            Some(Arc::as_ptr(wild.certified_key()))
        );
        assert_eq!(served("example.com"), None);
        assert_eq!(
            served("x.c.example.com"),
            None,
            "a wildcard covers one label"
        );
    }

    #[test]
    fn lookup_does_not_grow_with_the_set() {
        // Generous bound: catches a linear scan over 5,000 certificates per lookup, not
        // a slow machine.
        let base = cert(&["one.example.com"], 30);
        let mut certs = vec![base.clone(); 5_000];
        certs.push(cert(&["last.example.com"], 30));
        let set = CertSet::new(certs);
        let started = Instant::now();
        for _ in 0..20_000 {
            assert!(set.lookup("last.example.com").is_some());
            assert!(set.lookup("missing.example.com").is_none());
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
