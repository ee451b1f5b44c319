//! The rustls certificate resolver: one atomically swapped [`CertSet`] per reload.

use std::net::IpAddr;
use std::sync::Arc;

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

    /// A resolver for one connection accepted on `local`, if the current set holds an
    /// IP certificate for that address: it serves that certificate to handshakes without
    /// SNI (clients connecting by address send none, RFC 6066 §3) and answers the rest
    /// as `self` does. `None`, the usual case, costs one atomic load.
    pub(crate) fn for_local_address(
        self: &Arc<Self>,
        local: IpAddr,
    ) -> Option<Arc<dyn ResolvesServerCert>> {
        let set = self.certs.load();
        set.lookup_ip(local)?;
        Some(Arc::new(LocalAddressResolver {
            inner: Arc::clone(self),
            local,
        }))
    }

    /// The acceptor for a connection on `stream`: `acceptor` itself, or when the set has
    /// an IP certificate for the connection's local address, a copy of its configuration
    /// whose resolver is [`for_local_address`](Self::for_local_address)'s.
    pub(crate) fn acceptor_for(
        self: &Arc<Self>,
        acceptor: TlsAcceptor,
        stream: &TcpStream,
    ) -> TlsAcceptor {
        if !self.certs.load().has_ip_names() {
            return acceptor;
        }
        let Some(resolver) = stream
            .local_addr()
            .ok()
            .and_then(|local| self.for_local_address(local.ip()))
        else {
            return acceptor;
        };
        let mut config = ServerConfig::clone(acceptor.config());
        config.cert_resolver = resolver;
        TlsAcceptor::from(Arc::new(config))
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

/// [`CertResolver`] for one connection: a handshake without SNI gets the IP certificate
/// of the address the client connected to, before the default name.
#[derive(Debug)]
struct LocalAddressResolver {
    inner: Arc<CertResolver>,
    local: IpAddr,
}

impl ResolvesServerCert for LocalAddressResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if client_hello.server_name().is_none()
            && !TlsAlpn01Responder::is_challenge_hello(&client_hello)
            && let Some(found) = self.inner.certs.load().lookup_ip(self.local)
        {
            return Some(Arc::clone(found));
        }
        self.inner.resolve(client_hello)
    }
}
