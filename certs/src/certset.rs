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
    /// Whether any certificate names an IP address (RFC 8738), so a TLS server knows
    /// whether a handshake without SNI needs the connection's local address.
    has_ip: bool,
}

impl CertSet {
    /// A set of the given certificates. Where several cover a name, the one valid
    /// longest is served for it.
    pub fn new(certs: Vec<Certificate>) -> Self {
        let mut exact: HashMap<String, usize> = HashMap::new();
        let mut wildcard: HashMap<String, usize> = HashMap::new();
        let mut has_ip = false;
        for (i, cert) in certs.iter().enumerate() {
            for name in cert.info().domains.names() {
                has_ip |= name.is_ip();
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
                has_ip,
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

    /// Whether any certificate in the set names an IP address.
    pub fn has_ip_names(&self) -> bool {
        self.inner.has_ip
    }

    /// The certificate naming the IP address `ip` (an IP certificate, RFC 8738): what a
    /// client that connects to that address without sending SNI should get (RFC 6066 §3
    /// forbids IP literals in SNI, so clients connecting by address send none).
    pub fn lookup_ip(&self, ip: std::net::IpAddr) -> Option<&Arc<CertifiedKey>> {
        if !self.inner.has_ip {
            return None;
        }
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        self.lookup(&ip.to_string())
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
    fn ip_certificates_are_found_by_address_including_v4_mapped() {
        let named = cert(&["a.example.com"], 30);
        assert!(!CertSet::new(vec![named.clone()]).has_ip_names());
        let ip = cert(&["127.0.0.1"], 30);
        let set = CertSet::new(vec![named, ip.clone()]);
        assert!(set.has_ip_names());
        let v4 = "127.0.0.1".parse().unwrap();
        let mapped = "::ffff:127.0.0.1".parse().unwrap();
        for addr in [v4, mapped] {
            assert_eq!(
                set.lookup_ip(addr).map(Arc::as_ptr),
                Some(Arc::as_ptr(ip.certified_key())),
                "{addr}"
            );
        }
        assert!(set.lookup_ip("127.0.0.2".parse().unwrap()).is_none());
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
