//! The proxy as a whole: builder, bound listeners, accept loops and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_acme_core::challenge::{Http01Responder, TlsAlpn01Responder};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::conn::{self, Shared};
use crate::error::Error;
use crate::forward::{Forwarder, Peer};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::plain::{Otherwise, PlainHttp};
use crate::resolver::CertResolver;
use crate::routes::Routes;
use crate::source::{CertSource, Feed};
use crate::tls;

/// After a failed `accept` (usually out of file descriptors), wait this long before
/// the next, rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A configured, not yet listening proxy: TLS termination on one address, the
/// challenge/redirect listener on another, and the reverse proxy behind them.
/// Build it with [`Proxy::builder`], then [`bind`](Proxy::bind) and
/// [`serve`](BoundProxy::serve).
#[derive(Debug)]
pub struct Proxy {
    config: Config,
}

#[derive(Debug)]
struct Config {
    tls_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    routes: Routes,
    cert_source: Option<CertSource>,
    default_name: Option<String>,
    http01: Option<Http01Responder>,
    tls_alpn01: Option<TlsAlpn01Responder>,
    https_port: Option<u16>,
    hsts: Option<Duration>,
    limits: Limits,
    metrics: Metrics,
}

/// Collects the proxy's settings; [`build`](ProxyBuilder::build) checks them.
#[derive(Debug, Default)]
#[must_use]
pub struct ProxyBuilder {
    tls_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    routes: Routes,
    cert_source: Option<CertSource>,
    default_name: Option<String>,
    http01: Option<Http01Responder>,
    tls_alpn01: Option<TlsAlpn01Responder>,
    https_port: Option<u16>,
    hsts: Option<Duration>,
    limits: Limits,
    metrics: Option<Metrics>,
}

impl Proxy {
    /// Starts configuring a proxy.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    /// Loads the first certificates, starts watching their source, and opens the
    /// listening sockets (port 0 picks a free port; read it from the result). Nothing
    /// is served until [`BoundProxy::serve`].
    pub async fn bind(self) -> Result<BoundProxy, Error> {
        let Config {
            tls_addr,
            http_addr,
            routes,
            cert_source,
            default_name,
            http01,
            tls_alpn01,
            https_port,
            hsts,
            limits,
            metrics,
        } = self.config;

        let tracker = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        let routes = Arc::new(ArcSwap::from_pointee(routes));
        let forwarder = Arc::new(Forwarder::new(
            Arc::clone(&routes),
            &limits,
            hsts,
            metrics.clone(),
            tracker.clone(),
            hard_stop.clone(),
        ));

        let mut tls = None;
        let mut feed = None;
        if let (Some(addr), Some(source)) = (tls_addr, cert_source) {
            let (first, started) = tokio::task::spawn_blocking(move || Feed::start(source))
                .await
                .map_err(|e| Error::InvalidConfig {
                    setting: "cert_source",
                    reason: format!("loading the certificates stopped: {e}"),
                })??;
            let mut resolver = CertResolver::new(first).with_metrics(metrics.clone());
            if let Some(name) = default_name {
                resolver = resolver.with_default_name(name);
            }
            if let Some(challenges) = tls_alpn01 {
                resolver = resolver.with_challenges(challenges);
            }
            let resolver = Arc::new(resolver);
            let config = tls::server_config(Arc::clone(&resolver))?;
            let (listener, local) = bind(addr).await?;
            tls = Some(TlsListener {
                listener,
                local,
                acceptor: TlsAcceptor::from(Arc::new(config)),
                resolver,
            });
            feed = Some(started);
        }

        let http = match http_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let otherwise = match &tls {
            Some(tls) => Otherwise::RedirectTo {
                https_port: match https_port {
                    Some(port) => port,
                    None => tls.local.port(),
                },
            },
            None => Otherwise::Forward(Arc::clone(&forwarder)),
        };
        let plain = Arc::new(PlainHttp {
            http01,
            otherwise,
            metrics: metrics.clone(),
        });
        let shared = Arc::new(Shared {
            http: conn::http_builder(&limits),
            forwarder,
            plain,
            limits,
            metrics,
            hard_stop,
        });
        Ok(BoundProxy {
            tls_local: tls.as_ref().map(|t| t.local),
            http_local: http.as_ref().map(|(_, local)| *local),
            tls,
            http: http.map(|(listener, _)| listener),
            feed,
            shared,
            tracker,
            routes,
        })
    }
}

impl ProxyBuilder {
    /// Terminates TLS on this address (usually `[::]:443`). Needs a
    /// [`cert_source`](Self::cert_source).
    pub fn tls_addr(mut self, addr: SocketAddr) -> Self {
        self.tls_addr = Some(addr);
        self
    }

    /// Serves HTTP-01 challenges and redirects to HTTPS on this address (usually
    /// `[::]:80`). Without a TLS address, it forwards requests to the routes instead.
    pub fn http_addr(mut self, addr: SocketAddr) -> Self {
        self.http_addr = Some(addr);
        self
    }

    /// Where requests go. Without routes every request gets a 404.
    pub fn routes(mut self, routes: Routes) -> Self {
        self.routes = routes;
        self
    }

    /// Where the certificates come from.
    pub fn cert_source(mut self, source: CertSource) -> Self {
        self.cert_source = Some(source);
        self
    }

    /// The certificate for this name is served when the client's server name matches
    /// nothing or it sends none. Without a default such handshakes are refused.
    pub fn default_server_name(mut self, name: impl Into<String>) -> Self {
        self.default_name = Some(name.into());
        self
    }

    /// Answers HTTP-01 challenges on the plain-HTTP listener from this map.
    pub fn http01(mut self, responder: Http01Responder) -> Self {
        self.http01 = Some(responder);
        self
    }

    /// Answers TLS-ALPN-01 challenges (`acme-tls/1` handshakes) from this map.
    pub fn tls_alpn01(mut self, responder: TlsAlpn01Responder) -> Self {
        self.tls_alpn01 = Some(responder);
        self
    }

    /// The port the HTTPS redirect points to, when clients reach TLS on another port
    /// than the proxy listens on (a container publishing 8443 as 443). Default: the
    /// bound TLS port.
    pub fn https_redirect_port(mut self, port: u16) -> Self {
        self.https_port = Some(port);
        self
    }

    /// Adds `Strict-Transport-Security: max-age=<seconds>` to HTTPS responses that do
    /// not set it themselves. Off by default: once a browser has seen it, the site
    /// cannot go back to plain HTTP until it expires.
    pub fn hsts(mut self, max_age: Duration) -> Self {
        self.hsts = Some(max_age);
        self
    }

    /// Timeouts and size limits; see [`Limits`] for the defaults.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Counts into these metrics (e.g. ones the admin server already renders).
    /// Default: fresh counters, available from [`BoundProxy::metrics`].
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Proxy, Error> {
        let bad = |setting, reason: &str| Error::InvalidConfig {
            setting,
            reason: reason.to_owned(),
        };
        if self.tls_addr.is_none() && self.http_addr.is_none() {
            return Err(bad(
                "tls_addr",
                "set tls_addr and/or http_addr; with neither the proxy listens nowhere",
            ));
        }
        match (&self.tls_addr, &self.cert_source) {
            (Some(_), None) => {
                return Err(bad(
                    "cert_source",
                    "required with tls_addr; pass CertSource::Watch from the certificate manager, or CertSource::File with a PEM directory or acme.json",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "tls_addr",
                    "a certificate source was given but no TLS address to serve it on",
                ));
            }
            _ => {}
        }
        if self.https_port == Some(0) {
            return Err(bad("https_redirect_port", "must be a port from 1 to 65535"));
        }
        self.limits.check()?;
        Ok(Proxy {
            config: Config {
                tls_addr: self.tls_addr,
                http_addr: self.http_addr,
                routes: self.routes,
                cert_source: self.cert_source,
                default_name: self.default_name,
                http01: self.http01,
                tls_alpn01: self.tls_alpn01,
                https_port: self.https_port,
                hsts: self.hsts,
                limits: self.limits,
                metrics: self.metrics.unwrap_or_default(),
            },
        })
    }
}

struct TlsListener {
    listener: TcpListener,
    local: SocketAddr,
    acceptor: TlsAcceptor,
    resolver: Arc<CertResolver>,
}

/// A proxy whose sockets are open (so their addresses are known) and whose first
/// certificates are loaded; [`serve`](Self::serve) runs it.
pub struct BoundProxy {
    tls: Option<TlsListener>,
    http: Option<TcpListener>,
    tls_local: Option<SocketAddr>,
    http_local: Option<SocketAddr>,
    feed: Option<Feed>,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    routes: Arc<ArcSwap<Routes>>,
}

impl std::fmt::Debug for BoundProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundProxy")
            .field("tls_addr", &self.tls_local)
            .field("http_addr", &self.http_local)
            .finish_non_exhaustive()
    }
}

impl BoundProxy {
    /// The address the TLS listener is bound to, if there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_local
    }

    /// The address the plain-HTTP listener is bound to, if there is one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_local
    }

    /// The proxy's counters.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }

    /// The certificate resolver, for callers that swap certificates by hand
    /// ([`CertResolver::replace`]) or inspect the current set.
    pub fn resolver(&self) -> Option<Arc<CertResolver>> {
        self.tls.as_ref().map(|t| Arc::clone(&t.resolver))
    }

    /// A handle that swaps the route table while serving (configuration reloads).
    pub fn route_table(&self) -> RouteTable {
        RouteTable {
            routes: Arc::clone(&self.routes),
        }
    }

    /// Serves until `shutdown` is cancelled, then shuts down gracefully: stops
    /// accepting (new connections are refused), lets requests in flight finish for up
    /// to [`Limits::shutdown_timeout`], then closes what is left and returns.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), Error> {
        let Self {
            tls,
            http,
            feed,
            shared,
            tracker,
            ..
        } = self;
        // If this future is dropped instead of shut down, connections and the
        // certificate feed must not outlive it.
        let _close_all_on_drop = shared.hard_stop.clone().drop_guard();
        let slots = Arc::new(Semaphore::new(shared.limits.max_connections));
        let feed_task = match (feed, &tls) {
            (Some(feed), Some(tls)) => Some(AbortOnDropHandle::new(tokio::spawn(feed.run(
                Arc::clone(&tls.resolver),
                shared.metrics.clone(),
                shutdown.clone(),
            )))),
            _ => None,
        };
        let tls_loop = async {
            if let Some(TlsListener {
                listener, acceptor, ..
            }) = tls
            {
                accept_loop(
                    listener,
                    &shared,
                    &tracker,
                    &slots,
                    &shutdown,
                    |stream, peer| {
                        conn::serve_tls(
                            Arc::clone(&shared),
                            acceptor.clone(),
                            stream,
                            peer,
                            shutdown.clone(),
                        )
                    },
                )
                .await;
            }
        };
        let http_loop = async {
            if let Some(listener) = http {
                accept_loop(
                    listener,
                    &shared,
                    &tracker,
                    &slots,
                    &shutdown,
                    |stream, peer| {
                        conn::serve_http(
                            Arc::clone(&shared),
                            stream,
                            Peer::new(peer, false),
                            shutdown.clone(),
                        )
                    },
                )
                .await;
            }
        };
        tokio::join!(tls_loop, http_loop);
        // Both listeners are closed now; drain.
        tracker.close();
        let deadline = shared.limits.shutdown_timeout;
        if tokio::time::timeout(deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = tracker.len(),
                deadline_ms = deadline.as_millis(),
                "shutdown deadline passed; closing the remaining connections"
            );
            shared.hard_stop.cancel();
            tracker.wait().await;
        }
        if let Some(task) = feed_task {
            // It watches the same token and has returned or is returning.
            let _ = task.await;
        }
        tracing::info!("proxy stopped");
        Ok(())
    }
}

/// Accepts connections until `shutdown`, each served by a tracked task holding one
/// connection slot. Returning drops (closes) the listener.
///
/// The slot is taken after `accept`: both listeners share the slots, and a loop that
/// took one first would hold it idle while waiting for a client. With every slot in
/// use, each loop holds at most one accepted connection and the rest wait in the
/// kernel's accept queue.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shared: &Shared,
    tracker: &TaskTracker,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            permit = Arc::clone(slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let _ = stream.set_nodelay(true);
        let guard = shared.metrics.connection_opened();
        let connection = serve(stream, peer);
        tracker.spawn(async move {
            connection.await;
            drop(guard);
            drop(permit);
        });
    }
}

/// Opens a listener and reads back its address (the real port when `addr` has port 0).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    Ok((listener, local))
}

/// Replaces the routes of a running proxy; from [`BoundProxy::route_table`].
///
/// New requests use the new table at once; requests in flight finish on the old one.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Arc<ArcSwap<Routes>>,
}

impl RouteTable {
    /// Serves `routes` from now on.
    pub fn replace(&self, routes: Routes) {
        self.routes.store(Arc::new(routes));
    }

    /// The routes in use now.
    pub fn current(&self) -> Arc<Routes> {
        self.routes.load_full()
    }
}
