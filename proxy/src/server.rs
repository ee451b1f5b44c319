//! The proxy as a whole: builder, bound listeners, accept loops and shutdown.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_certs::challenge::{Http01Responder, TlsAlpn01Responder};
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
use crate::trusted::TrustedProxies;

/// After a failed `accept` (usually out of file descriptors), wait this long before
/// the next, rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Pending connections the kernel queues per listening socket (what tokio and std use).
const LISTEN_BACKLOG: i32 = 1024;

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
    workers: NonZeroUsize,
    trusted_proxies: TrustedProxies,
    proxy_protocol: bool,
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
    workers: Option<NonZeroUsize>,
    trusted_proxies: TrustedProxies,
    proxy_protocol: bool,
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
            workers,
            trusted_proxies,
            proxy_protocol,
        } = self.config;
        // Each worker keeps its own upstream connections: the cap is split between them.
        let mut limits = limits;
        limits.max_upstream_connections = (limits.max_upstream_connections / workers.get()).max(1);

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
            tls = Some(TlsListener {
                listener: bind(addr, workers)?,
                acceptor: TlsAcceptor::from(Arc::new(config)),
                resolver,
            });
            feed = Some(started);
        }

        let http = match http_addr {
            Some(addr) => Some(bind(addr, workers)?),
            None => None,
        };
        let template = Template {
            routes: Arc::new(ArcSwap::from_pointee(routes)),
            limits,
            hsts,
            metrics,
            hard_stop: CancellationToken::new(),
            http01,
            trusted_proxies,
            proxy_protocol,
            tls_resolver: tls.as_ref().map(|tls| Arc::clone(&tls.resolver)),
            // Without TLS the plain listener forwards like the HTTPS side would.
            redirect_port: tls
                .as_ref()
                .map(|tls| https_port.unwrap_or(tls.listener.local.port())),
        };
        Ok(BoundProxy {
            tls,
            http,
            feed,
            template,
            workers,
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

    /// Serves connections on this many threads (default 1). Each extra worker is a
    /// thread of its own with a single-threaded runtime, its own listening sockets on
    /// the shared ports (`SO_REUSEPORT`: the kernel spreads new connections over the
    /// workers) and its own upstream connections, so a connection and everything it
    /// waits for stay on one thread, as in nginx's worker processes. Worker 1 is the
    /// task that runs [`BoundProxy::serve`], on the caller's runtime.
    pub fn workers(mut self, workers: NonZeroUsize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Keeps the forwarding headers (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`,
    /// `X-Forwarded-Proto`/`-Host`/`-Port`/`-Prefix`) of connections from these
    /// addresses, appending to `X-Forwarded-For` and `Forwarded`: the load balancers in
    /// front of the proxy. From any other peer they are replaced with what the proxy
    /// saw. Default: no one is trusted.
    pub fn trusted_proxies(mut self, trusted: TrustedProxies) -> Self {
        self.trusted_proxies = trusted;
        self
    }

    /// Reads a PROXY protocol header (HAProxy's v1 text or v2 binary) at the start of
    /// TLS connections from [trusted proxies](Self::trusted_proxies): the address it
    /// names is the client's, for `X-Forwarded-For` and the rest, as if the client had
    /// connected directly. For L4 load balancers (AWS NLB, HAProxy in `mode tcp`).
    /// Connections from trusted peers without a header are served as they are; a header
    /// from any other peer closes the connection. Off by default; needs trusted proxies.
    pub fn proxy_protocol(mut self, enabled: bool) -> Self {
        self.proxy_protocol = enabled;
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
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return Err(bad(
                "proxy_protocol",
                "needs trusted proxies: only the load balancers listed there may send a PROXY header",
            ));
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
                workers: self.workers.unwrap_or(NonZeroUsize::MIN),
                trusted_proxies: self.trusted_proxies,
                proxy_protocol: self.proxy_protocol,
            },
        })
    }
}

struct TlsListener {
    listener: Listener,
    acceptor: TlsAcceptor,
    resolver: Arc<CertResolver>,
}

/// A proxy whose sockets are open (so their addresses are known) and whose first
/// certificates are loaded; [`serve`](Self::serve) runs it.
pub struct BoundProxy {
    tls: Option<TlsListener>,
    http: Option<Listener>,
    feed: Option<Feed>,
    template: Template,
    workers: NonZeroUsize,
}

impl std::fmt::Debug for BoundProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundProxy")
            .field("tls_addr", &self.tls_addr())
            .field("http_addr", &self.http_addr())
            .finish_non_exhaustive()
    }
}

impl BoundProxy {
    /// The address the TLS listener is bound to, if there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|tls| tls.listener.local)
    }

    /// The address the plain-HTTP listener is bound to, if there is one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|http| http.local)
    }

    /// The proxy's counters.
    pub fn metrics(&self) -> Metrics {
        self.template.metrics.clone()
    }

    /// The certificate resolver, for callers that swap certificates by hand
    /// ([`CertResolver::replace`]) or inspect the current set.
    pub fn resolver(&self) -> Option<Arc<CertResolver>> {
        self.tls.as_ref().map(|t| Arc::clone(&t.resolver))
    }

    /// A handle that swaps the route table while serving (configuration reloads).
    pub fn route_table(&self) -> RouteTable {
        RouteTable {
            routes: Arc::clone(&self.template.routes),
        }
    }

    /// Serves until `shutdown` is cancelled, then shuts down gracefully: stops
    /// accepting (new connections are refused), lets requests in flight finish for up
    /// to [`Limits::drain_timeout`], then closes what is left and returns.
    ///
    /// With more than one [worker](ProxyBuilder::workers), the others run on threads
    /// started here, and this returns once all of those threads have ended.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), Error> {
        let Self {
            tls,
            http,
            feed,
            template,
            workers,
            ..
        } = self;
        // If this future is dropped (or fails) instead of shutting down, connections,
        // the other workers and the certificate feed must not outlive it.
        let _close_all_on_drop = template.hard_stop.clone().drop_guard();
        let stop_accepting = shutdown.child_token();
        let _stop_workers_on_drop = stop_accepting.clone().drop_guard();
        let feed_task = match (feed, &tls) {
            (Some(feed), Some(tls)) => Some(AbortOnDropHandle::new(tokio::spawn(feed.run(
                Arc::clone(&tls.resolver),
                template.metrics.clone(),
                shutdown.clone(),
            )))),
            _ => None,
        };
        let first = Worker {
            tls: tls.map(|tls| (tls.listener, tls.acceptor)),
            http,
            slots: Arc::new(Semaphore::new(template.limits.max_connections)),
            shutdown: stop_accepting,
            tracker: TaskTracker::new(),
        };
        let mut others = Vec::with_capacity(workers.get() - 1);
        for index in 2..=workers.get() {
            match spawn_worker(index, &first, &template) {
                Ok(thread) => others.push(thread),
                Err(error) => {
                    // Not serving after all: the workers already started close at once.
                    first.shutdown.cancel();
                    template.hard_stop.cancel();
                    join_workers(others).await;
                    return Err(error);
                }
            }
        }
        let shared = template.worker_shared(&first.tracker);
        first.run(shared).await;
        join_workers(others).await;
        if let Some(task) = feed_task {
            // It watches the same token and has returned or is returning.
            let _ = task.await;
        }
        tracing::info!("proxy stopped");
        Ok(())
    }
}

/// What every worker builds its own [`Shared`] from: the settings, and the state all
/// workers have in common (routes, counters, the hard-stop signal).
struct Template {
    routes: Arc<ArcSwap<Routes>>,
    limits: Limits,
    hsts: Option<Duration>,
    metrics: Metrics,
    /// Cancelled when the drain deadline has passed: connections close at once.
    hard_stop: CancellationToken,
    http01: Option<Http01Responder>,
    /// Where the plain listener redirects to; `None` (no TLS listener): it forwards.
    redirect_port: Option<u16>,
    trusted_proxies: TrustedProxies,
    proxy_protocol: bool,
    /// The TLS listener's resolver, for IP certificates chosen by local address.
    tls_resolver: Option<Arc<CertResolver>>,
}

impl Template {
    /// One worker's connection state, with its own upstream connection pool.
    /// `tracker` is the worker's: WebSocket tunnels are its tasks too.
    fn worker_shared(&self, tracker: &TaskTracker) -> Arc<Shared> {
        let forwarder = Arc::new(Forwarder::new(
            Arc::clone(&self.routes),
            &self.limits,
            self.hsts,
            self.metrics.clone(),
            tracker.clone(),
            self.hard_stop.clone(),
            self.tls_resolver.clone(),
        ));
        let otherwise = match self.redirect_port {
            Some(https_port) => Otherwise::RedirectTo { https_port },
            None => Otherwise::Forward(Arc::clone(&forwarder)),
        };
        Arc::new(Shared {
            http: conn::http_builder(&self.limits),
            forwarder,
            plain: Arc::new(PlainHttp {
                http01: self.http01.clone(),
                otherwise,
                metrics: self.metrics.clone(),
                certs: self.tls_resolver.clone(),
            }),
            limits: self.limits.clone(),
            metrics: self.metrics.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            hard_stop: self.hard_stop.clone(),
            proxy_protocol: self.proxy_protocol,
            tls_resolver: self.tls_resolver.clone(),
        })
    }
}

/// One worker: its handles on the listeners and the connections it accepted.
struct Worker {
    tls: Option<(Listener, TlsAcceptor)>,
    http: Option<Listener>,
    /// Shared by all workers: `max_connections` counts the whole proxy.
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Worker {
    /// Another worker with listening sockets of its own on the same addresses, for the
    /// runtime entered now.
    fn sibling(&self) -> std::io::Result<Self> {
        let tls = match &self.tls {
            Some((listener, acceptor)) => Some((listener.sibling()?, acceptor.clone())),
            None => None,
        };
        let http = match &self.http {
            Some(listener) => Some(listener.sibling()?),
            None => None,
        };
        Ok(Self {
            tls,
            http,
            slots: Arc::clone(&self.slots),
            shutdown: self.shutdown.clone(),
            tracker: TaskTracker::new(),
        })
    }

    /// Accepts until shutdown, then drains this worker's connections.
    async fn run(self, shared: Arc<Shared>) {
        let Self {
            tls,
            http,
            slots,
            shutdown,
            tracker,
        } = self;
        let accept = Accept {
            shared: &shared,
            tracker: &tracker,
            slots: &slots,
            shutdown: &shutdown,
        };
        let tls_loop = async {
            if let Some((listener, acceptor)) = tls {
                accept
                    .until_shutdown(listener.socket, |stream, peer| {
                        conn::serve_tls(
                            Arc::clone(&shared),
                            acceptor.clone(),
                            stream,
                            peer,
                            shutdown.clone(),
                        )
                    })
                    .await;
            }
        };
        let http_loop = async {
            if let Some(listener) = http {
                accept
                    .until_shutdown(listener.socket, |stream, peer| {
                        conn::serve_http(
                            Arc::clone(&shared),
                            stream,
                            Peer::new(peer, false, &shared.trusted_proxies),
                            shutdown.clone(),
                        )
                    })
                    .await;
            }
        };
        tokio::join!(tls_loop, http_loop);
        // Both listeners are closed now; drain.
        tracker.close();
        let deadline = shared.limits.drain_timeout;
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
    }
}

/// Starts worker `index` on a thread of its own with a single-threaded runtime; the
/// thread ends when the worker has drained and its runtime is gone.
fn spawn_worker(
    index: usize,
    first: &Worker,
    template: &Template,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let failed = |source| Error::Worker { index, source };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(failed)?;
    // The listeners register with the runtime that is entered.
    let worker = {
        let _entered = runtime.enter();
        first.sibling().map_err(failed)?
    };
    let shared = template.worker_shared(&worker.tracker);
    std::thread::Builder::new()
        .name(format!("berth-worker-{index}"))
        .spawn(move || {
            runtime.block_on(worker.run(shared));
            // Dropping the runtime ends what is left on it (idle upstream connections).
            drop(runtime);
        })
        .map_err(failed)
}

/// Waits until each worker thread has ended, joining them on the blocking pool so
/// that the caller's runtime keeps running while they drain.
///
/// Only a join says that a thread has ended: a message sent as its closure's last
/// act arrives while the thread still runs its thread-local destructors, and a
/// `serve` that returned on it left the threads to outlive it.
async fn join_workers(threads: Vec<std::thread::JoinHandle<()>>) {
    if threads.is_empty() {
        return;
    }
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let name = thread.thread().name().unwrap_or_default().to_owned();
            if thread.join().is_err() {
                tracing::error!(worker = %name, "proxy worker panicked");
            }
        }
    });
    // Fails only when the caller's runtime shuts down, which ends `serve` as well.
    let _ = joined.await;
}

/// One worker's accept loops: what they need to start connection tasks.
struct Accept<'a> {
    shared: &'a Shared,
    tracker: &'a TaskTracker,
    slots: &'a Arc<Semaphore>,
    shutdown: &'a CancellationToken,
}

impl Accept<'_> {
    /// Accepts connections until `shutdown`, each served by a tracked task holding one
    /// connection slot. Returning drops (closes) this handle on the listener.
    ///
    /// The slot is taken after `accept`: the listeners share the slots, and a loop that
    /// took one first would hold it idle while waiting for a client. With every slot in
    /// use, each loop holds at most one accepted connection and the rest wait in the
    /// kernel's accept queue.
    async fn until_shutdown<F, Fut>(&self, listener: TcpListener, serve: F)
    where
        F: Fn(TcpStream, SocketAddr) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            let (stream, peer) = tokio::select! {
                () = self.shutdown.cancelled() => return,
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
                () = self.shutdown.cancelled() => return,
                permit = Arc::clone(self.slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let _ = stream.set_nodelay(true);
            let guard = self.shared.metrics.connection_opened();
            let connection = serve(stream, peer);
            self.tracker.spawn(async move {
                connection.await;
                drop(guard);
                drop(permit);
            });
        }
    }
}

/// One worker's listening socket and the address it is bound to.
struct Listener {
    socket: TcpListener,
    local: SocketAddr,
}

impl Listener {
    /// Another socket on the same address for another worker, registered with the
    /// runtime entered now. The kernel spreads new connections over the sockets
    /// (`SO_REUSEPORT`), so a burst of clients does not all land on whichever worker
    /// woke first, as it would with one shared accept queue.
    fn sibling(&self) -> std::io::Result<Self> {
        Ok(Self {
            socket: listen(self.local, true)?,
            local: self.local,
        })
    }
}

/// Opens a listener for the runtime entered now and reads back its address (the real
/// port when `addr` has port 0).
///
/// With several workers the sockets share the port through `SO_REUSEPORT`, which would
/// also let another process of the same user bind it and take a share of the clients
/// unnoticed. So the port is first bound on its own: if anything else holds it, this
/// fails as it does with one worker.
fn bind(addr: SocketAddr, workers: NonZeroUsize) -> Result<Listener, Error> {
    let failed = |source| Error::Bind { addr, source };
    let exclusive = listen(addr, false).map_err(failed)?;
    let local = exclusive.local_addr().map_err(failed)?;
    if workers.get() == 1 {
        return Ok(Listener {
            socket: exclusive,
            local,
        });
    }
    drop(exclusive);
    let socket = listen(local, true).map_err(failed)?;
    Ok(Listener { socket, local })
}

/// A listening TCP socket on `addr`, as [`TcpListener::bind`] makes it, optionally
/// with `SO_REUSEPORT` so that each worker can have one.
fn listen(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio and std do: a restarted proxy can bind while old connections linger in
    // TIME_WAIT.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
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
