//! Serving one accepted client connection: TLS handshake, HTTP/1.1 or HTTP/2, idle and
//! header timeouts, and graceful or hard shutdown.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::forward::{Forwarder, Peer};
use crate::lifecycle::{Activity, Event, Signal, Signals, Tracked, next_event};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::plain::PlainHttp;
use crate::proxy_protocol;
use crate::resolver::CertResolver;
use crate::tls;
use crate::trusted::TrustedProxies;

/// Everything a connection task needs, shared by all connections of one proxy.
pub(crate) struct Shared {
    pub(crate) http: auto::Builder<TokioExecutor>,
    pub(crate) forwarder: Arc<Forwarder>,
    pub(crate) plain: Arc<PlainHttp>,
    pub(crate) limits: Limits,
    pub(crate) metrics: Metrics,
    /// Peers whose forwarding headers are kept.
    pub(crate) trusted_proxies: TrustedProxies,
    /// Cancelled when the drain deadline has passed: connections close at once.
    pub(crate) hard_stop: CancellationToken,
    /// TLS connections may start with a PROXY protocol header (trusted peers only).
    pub(crate) proxy_protocol: bool,
    /// The TLS listener's resolver: picks IP certificates by local address.
    pub(crate) tls_resolver: Option<Arc<CertResolver>>,
}

/// Streams one HTTP/2 client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
const MAX_CONCURRENT_STREAMS: u32 = 128;

/// The HTTP server settings both listeners use.
pub(crate) fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // A request head that does not fit the read buffer is answered with 431.
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    // No HTTP/2 keep-alive pings: the idle timeout closes connections without requests
    // (a client's own pings do not keep one open either).
    builder
        .http2()
        .timer(TokioTimer::new())
        // Explicit rather than hyper's default (200, which could change): each stream
        // is a request the proxy forwards. nginx's default; RFC 9113 §6.5.2 asks for
        // at least 100.
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Handshakes TLS on `stream`, then serves HTTP on it. ACME TLS-ALPN-01 validation
/// connections are closed right after the handshake. With the PROXY protocol on, a
/// header before the handshake names the client (from trusted peers only).
pub(crate) async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    mut stream: TcpStream,
    mut peer: std::net::SocketAddr,
    shutdown: CancellationToken,
) {
    // One deadline for the PROXY header and the handshake together.
    let deadline = tokio::time::Instant::now() + shared.limits.header_timeout;
    if shared.proxy_protocol {
        let trusted = shared.trusted_proxies.contains(peer.ip());
        let read = proxy_protocol::read_client_address(&mut stream, peer, trusted);
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(client)) => peer = client,
            Ok(Err(refused)) => {
                shared.metrics.handshake_failed();
                tracing::info!(%peer, reason = %refused, "connection refused");
                return;
            }
            Err(_) => {
                shared.metrics.handshake_failed();
                tracing::debug!(%peer, "PROXY protocol header timed out");
                return;
            }
        }
    }
    let acceptor = match &shared.tls_resolver {
        Some(resolver) => resolver.acceptor_for(acceptor, &stream),
        None => acceptor,
    };
    let handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream));
    let tls = tokio::select! {
        () = shared.hard_stop.cancelled() => return,
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                shared.metrics.handshake_failed();
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                shared.metrics.handshake_failed();
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    shared.metrics.handshake_ok();
    let (_, session) = tls.get_ref();
    if tls::is_acme_challenge(session.alpn_protocol()) {
        tracing::info!(%peer, sni = ?session.server_name(), "answered a TLS-ALPN-01 challenge handshake");
        let mut tls = tls;
        let _ = tls.shutdown().await;
        return;
    }
    let peer = Peer::new(peer, true, &shared.trusted_proxies).with_sni(session.server_name());
    serve_http(shared, tls, peer, shutdown).await;
}

/// Serves HTTP/1.1 or HTTP/2 (detected from the first bytes) on `io` until the client
/// closes, the connection idles out, or shutdown.
pub(crate) async fn serve_http<I>(
    shared: Arc<Shared>,
    io: I,
    peer: Peer,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer_addr = peer.addr;
    let peer = Arc::new(peer);
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(io);
    let service = {
        let shared = Arc::clone(&shared);
        let activity = Arc::clone(&activity);
        service_fn(move |req| {
            let shared = Arc::clone(&shared);
            let peer = Arc::clone(&peer);
            let in_flight = activity.request();
            async move {
                let response = if peer.https {
                    shared.forwarder.handle(req, &peer).await
                } else {
                    shared.plain.handle(req, &peer).await
                };
                Ok::<_, Infallible>(response.map(|body| Tracked::new(body, in_flight)))
            }
        })
    };
    let conn = shared.http.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut signals = Signals::new(
        &shared.hard_stop,
        &shutdown,
        shared.limits.idle_timeout,
        activity,
    );
    loop {
        match next_event(conn.as_mut(), &mut signals).await {
            Event::Done(result) => {
                if let Err(error) = result {
                    tracing::debug!(peer = %peer_addr, %error, "connection ended with an error");
                }
                return;
            }
            Event::Signal(Signal::HardStop) => return,
            Event::Signal(Signal::IdleCloseIgnored) => {
                tracing::debug!(peer = %peer_addr, "idle connection did not close; closing it");
                return;
            }
            // HTTP/1.1: finish the request in flight, then close; HTTP/2: GOAWAY.
            Event::Signal(Signal::Shutdown) => conn.as_mut().graceful_shutdown(),
            Event::Signal(Signal::Idle) => {
                tracing::debug!(peer = %peer_addr, "closing idle connection");
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
