//! The rustls certificate resolver: one atomically swapped [`CertSet`] per reload.

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use berth_certs::CertSet;
use berth_certs::challenge::TlsAlpn01Responder;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::metrics::Metrics;

/// Picks the certificate for each TLS handshake from the current [`CertSet`]: the exact
/// server name first, then a wildcard covering one label, then the configured default
/// name. Handshakes offering `acme-tls/1` are answered only from the TLS-ALPN-01
/// challenge map (RFC 8737 §4: they must never see a normal certificate).
///
/// The set lives behind an [`ArcSwap`]: a reload is one pointer swap, lookups take no
/// lock, and a handshake that already loaded the old set finishes with it.
///
/// A server name nothing matches (with no default) makes rustls abort the handshake
/// with a fatal alert; it is counted in [`Metrics`] as an unknown SNI.
///
/// ```
/// use std::sync::Arc;
/// use berth_certs::{CertSet, Certificate};
/// use berth_proxy::CertResolver;
/// # let generated = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()])?;
/// # let chain_pem = generated.cert.pem();
/// # let key_pem = berth_secrets::Secret::new(generated.signing_key.serialize_pem());
///
/// let certificate = Certificate::from_pem(&chain_pem, key_pem)?;
/// let certs = CertSet::new(vec![certificate]);
/// let resolver = Arc::new(CertResolver::new(certs.clone()).with_default_name("example.com"));
/// // A rustls configuration taking every certificate from the resolver; wrap it in a
/// // `tokio_rustls::TlsAcceptor` (or `ServerConfig::builder().with_cert_resolver(..)`).
/// let config = berth_proxy::server_config(Arc::clone(&resolver))?;
/// assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
///
/// // After a renewal (`CertManager::subscribe` reports it): one swap, no restart.
/// resolver.replace(certs);
/// assert!(resolver.current().lookup("example.com").is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CertResolver {
    certs: ArcSwap<CertSet>,
    /// Acceptors for connections on addresses that have an IP certificate; emptied by
    /// [`replace`](Self::replace), so they are rebuilt for the new set.
    acceptors: ArcSwap<Acceptors>,
    default_name: Option<String>,
    challenges: Option<TlsAlpn01Responder>,
    metrics: Metrics,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("certificates", &self.certs.load().certificates().len())
            .field("default_name", &self.default_name)
            .field("challenges", &self.challenges)
            .finish_non_exhaustive()
    }
}

impl CertResolver {
    /// A resolver serving `initial` until the first [`replace`](Self::replace).
    pub fn new(initial: CertSet) -> Self {
        Self {
            certs: ArcSwap::from_pointee(initial),
            acceptors: ArcSwap::from_pointee(Acceptors::default()),
            default_name: None,
            challenges: None,
            metrics: Metrics::new(),
        }
    }

    /// Serves the certificate for `name` to handshakes whose server name matches nothing
    /// (or that send no SNI, such as clients connecting by IP address). The name is
    /// looked up in the current set on every such handshake, so it follows reloads.
    pub fn with_default_name(mut self, name: impl Into<String>) -> Self {
        self.default_name = Some(name.into());
        self
    }

    /// Answers `acme-tls/1` handshakes from this TLS-ALPN-01 challenge map.
    pub fn with_challenges(mut self, challenges: TlsAlpn01Responder) -> Self {
        self.challenges = Some(challenges);
        self
    }

    /// Counts handshakes outcomes and reloads into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Swaps in a new certificate set for every handshake that starts from now on.
    pub fn replace(&self, certs: CertSet) {
        self.certs.store(Arc::new(certs));
        self.acceptors.store(Arc::default());
        self.metrics.reloaded();
    }

    /// The set handshakes are served from now.
    pub fn current(&self) -> Arc<CertSet> {
        self.certs.load_full()
    }

    /// Whether this resolver answers TLS-ALPN-01 challenges (and so the server should
    /// offer `acme-tls/1`).
    pub(crate) fn answers_challenges(&self) -> bool {
        self.challenges.is_some()
    }

    /// The acceptor for a connection on `stream`: `acceptor` itself, or when the set has
    /// an IP certificate for the connection's local address, the one for that address
    /// (see [`acceptor_on`](Self::acceptor_on)). Without IP certificates, the usual case,
    /// this costs one atomic load.
    pub(crate) fn acceptor_for(
        self: &Arc<Self>,
        acceptor: TlsAcceptor,
        stream: &TcpStream,
    ) -> TlsAcceptor {
        if !self.certs.load().has_ip_names() {
            return acceptor;
        }
        match stream.local_addr() {
            Ok(local) => self.acceptor_on(acceptor, local.ip()),
            Err(_) => acceptor,
        }
    }

    /// The acceptor for a connection accepted on `local`: `acceptor` itself, or when the
    /// set has an IP certificate for `local`, a copy of its configuration that serves that
    /// certificate to handshakes without SNI (clients connecting by address send none,
    /// RFC 6066 §3) and answers the rest as `self` does. The copy is made once per
    /// listener configuration, address and certificate set, not per connection; past
    /// [`CACHED_ACCEPTORS`] addresses it is made for the connection alone.
    fn acceptor_on(self: &Arc<Self>, acceptor: TlsAcceptor, local: IpAddr) -> TlsAcceptor {
        if self.certs.load().lookup_ip(local).is_none() {
            return acceptor;
        }
        let base = acceptor.config();
        if let Some(found) = self.acceptors.load().find(base, local) {
            return found.clone();
        }
        let mut config = ServerConfig::clone(base);
        config.cert_resolver = Arc::new(LocalAddressResolver {
            inner: Arc::downgrade(self),
            local,
        });
        let built = TlsAcceptor::from(Arc::new(config));
        self.acceptors.rcu(|cached| {
            let mut entries = cached.entries.clone();
            // A listener whose configuration is gone (a rebuilt proxy) needs no entry.
            entries.retain(|e| e.base.strong_count() > 0);
            if entries.len() < CACHED_ACCEPTORS && cached.find(base, local).is_none() {
                entries.push(CachedAcceptor {
                    base: Arc::downgrade(base),
                    local,
                    acceptor: built.clone(),
                });
            }
            Arc::new(Acceptors { entries })
        });
        built
    }

    /// Whether a request for `host` arrived on the wrong connection: `host` has a
    /// certificate of its own in the current set, and it is not the one a handshake for
    /// `sni` gets (RFC 9110 §15.5.20: answer 421 Misdirected Request, and the client
    /// retries on a connection of its own). HTTP/2 clients reuse a connection for every
    /// name its certificate covers (RFC 9113 §9.1.1), so a certificate naming both is
    /// fine. A host no certificate names (an IP literal, another alias) is not refused
    /// here; routes decide. Both names are looked up in the current set, so a reload
    /// between handshake and request changes nothing.
    pub(crate) fn misdirected(&self, sni: Option<&str>, host: &str) -> bool {
        if sni.is_some_and(|sni| sni.trim_end_matches('.').eq_ignore_ascii_case(host)) {
            return false;
        }
        // A client connecting by address sends no SNI (RFC 6066 §3) and may have been
        // given that address's certificate rather than the default.
        if sni.is_none() && host.parse::<std::net::IpAddr>().is_ok() {
            return false;
        }
        let set = self.certs.load();
        let Some(for_host) = set.lookup(host) else {
            return false;
        };
        let for_sni = sni.and_then(|name| set.lookup(name)).or_else(|| {
            self.default_name
                .as_deref()
                .and_then(|name| set.lookup(name))
        });
        !for_sni.is_some_and(|served| Arc::ptr_eq(served, for_host))
    }

    /// Whether the current set has a certificate for `host` (exact or wildcard name,
    /// not the default).
    pub(crate) fn covers(&self, host: &str) -> bool {
        self.certs.load().lookup(host).is_some()
    }

    /// The lookup without metrics or challenge handling, for one server name.
    fn lookup(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let set = self.certs.load();
        server_name
            .and_then(|name| set.lookup(name))
            .or_else(|| {
                self.default_name
                    .as_deref()
                    .and_then(|name| set.lookup(name))
            })
            .cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if TlsAlpn01Responder::is_challenge_hello(&client_hello) {
            let found = self
                .challenges
                .as_ref()
                .and_then(|c| c.resolve_hello(&client_hello));
            match &found {
                Some(_) => self.metrics.acme_tls_alpn_handshake(),
                None => tracing::info!(
                    sni = ?client_hello.server_name(),
                    "acme-tls/1 handshake for a name with no pending TLS-ALPN-01 challenge; refused"
                ),
            }
            return found;
        }
        let found = self.lookup(client_hello.server_name());
        if found.is_none() {
            self.metrics.unknown_sni();
            tracing::info!(
                sni = ?client_hello.server_name(),
                "no certificate for this server name and no default; handshake refused"
            );
        }
        found
    }
}

/// At most this many (listener, local address) pairs keep a cached acceptor; a
/// connection on any further one gets an acceptor built for it alone. A server listens
/// on a handful of addresses, but a wildcard listener sees every address of the host.
const CACHED_ACCEPTORS: usize = 16;

/// The acceptors for addresses with an IP certificate, built since the last
/// [`replace`](CertResolver::replace).
#[derive(Default)]
struct Acceptors {
    entries: Vec<CachedAcceptor>,
}

impl Acceptors {
    /// The acceptor made from the listener configuration `base` for `local`.
    fn find(&self, base: &Arc<ServerConfig>, local: IpAddr) -> Option<&TlsAcceptor> {
        self.entries
            .iter()
            .find(|e| e.local == local && e.base.as_ptr() == Arc::as_ptr(base))
            .map(|e| &e.acceptor)
    }
}

/// One cached acceptor: a copy of a listener's configuration with a
/// [`LocalAddressResolver`] for `local`.
#[derive(Clone)]
struct CachedAcceptor {
    /// The listener's configuration it copies. Weak: that configuration holds the
    /// resolver that holds this cache; the allocation it keeps makes the pointer
    /// comparison safe from reuse.
    base: Weak<ServerConfig>,
    local: IpAddr,
    acceptor: TlsAcceptor,
}

/// [`CertResolver`] for connections on one local address: a handshake without SNI gets
/// the IP certificate of the address the client connected to, before the default name.
/// The set is looked up per handshake, so a cached one follows reloads.
#[derive(Debug)]
struct LocalAddressResolver {
    /// Weak: the resolver caches the acceptor whose configuration holds this.
    inner: Weak<CertResolver>,
    local: IpAddr,
}

impl ResolvesServerCert for LocalAddressResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let inner = self.inner.upgrade()?;
        if client_hello.server_name().is_none()
            && !TlsAlpn01Responder::is_challenge_hello(&client_hello)
            && let Some(found) = inner.certs.load().lookup_ip(self.local)
        {
            return Some(Arc::clone(found));
        }
        inner.resolve(client_hello)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use berth_certs::Certificate;

    fn self_signed(names: &[&str]) -> Certificate {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let generated = rcgen::generate_simple_self_signed(names).unwrap();
        let key = berth_secrets::Secret::new(generated.signing_key.serialize_pem());
        Certificate::from_pem(&generated.cert.pem(), key).unwrap()
    }

    fn with_ip_certificate() -> CertSet {
        CertSet::new(vec![
            self_signed(&["127.0.0.1"]),
            self_signed(&["example.com"]),
        ])
    }

    fn resolver_and_acceptor(certs: CertSet) -> (Arc<CertResolver>, TlsAcceptor) {
        let resolver = Arc::new(CertResolver::new(certs));
        let config = crate::server_config(Arc::clone(&resolver)).unwrap();
        (resolver, TlsAcceptor::from(Arc::new(config)))
    }

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn connections_on_one_address_share_an_acceptor_until_the_certificates_change() {
        let (resolver, base) = resolver_and_acceptor(with_ip_certificate());
        let first = resolver.acceptor_on(base.clone(), LOOPBACK);
        let second = resolver.acceptor_on(base.clone(), LOOPBACK);
        assert!(!Arc::ptr_eq(first.config(), base.config()));
        assert!(Arc::ptr_eq(first.config(), second.config()));

        resolver.replace(with_ip_certificate());
        let renewed = resolver.acceptor_on(base.clone(), LOOPBACK);
        assert!(!Arc::ptr_eq(renewed.config(), first.config()));
        let again = resolver.acceptor_on(base.clone(), LOOPBACK);
        assert!(Arc::ptr_eq(renewed.config(), again.config()));
    }

    #[test]
    fn addresses_without_an_ip_certificate_get_the_listeners_acceptor() {
        let (resolver, base) = resolver_and_acceptor(with_ip_certificate());
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert!(Arc::ptr_eq(
            resolver.acceptor_on(base.clone(), other).config(),
            base.config()
        ));
        let (resolver, base) =
            resolver_and_acceptor(CertSet::new(vec![self_signed(&["example.com"])]));
        assert!(Arc::ptr_eq(
            resolver.acceptor_on(base.clone(), LOOPBACK).config(),
            base.config()
        ));
    }

    #[test]
    fn the_cache_is_bounded_and_holds_no_reference_cycle() {
        let (resolver, _) = resolver_and_acceptor(with_ip_certificate());
        // More listener configurations than the cache holds, each kept alive.
        let bases: Vec<TlsAcceptor> = (0..CACHED_ACCEPTORS + 4)
            .map(|_| resolver_and_acceptor(with_ip_certificate()).1)
            .collect();
        for base in &bases {
            let built = resolver.acceptor_on(base.clone(), LOOPBACK);
            assert!(!Arc::ptr_eq(built.config(), base.config()));
        }
        assert_eq!(resolver.acceptors.load().entries.len(), CACHED_ACCEPTORS);

        let (resolver, base) = resolver_and_acceptor(with_ip_certificate());
        let cached = resolver.acceptor_on(base.clone(), LOOPBACK);
        let weak = Arc::downgrade(&resolver);
        drop((resolver, base, cached));
        assert!(
            weak.upgrade().is_none(),
            "the cache keeps its resolver alive"
        );
    }
}
