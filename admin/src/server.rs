//! The server: routes, the guards against web pages, connection limits, and the
//! handlers of the probes and the JSON API.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_acme_core::CertManager;
use berth_acme_core::timestamp::rfc3339;
use berth_proxy::Metrics;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{CertList, CertRow, REQUEST_HEADER, RenewRequest};
use crate::cache::StoreCache;
use crate::gate::{FORCED_PER_WINDOW, GateRefusal, RenewalGate};
use crate::metrics::OrderCounters;
use crate::renew::RenewRefusal;

/// What the handlers read: the manager (swapped on a reload), the proxy's counters and
/// the order counters.
#[derive(Clone)]
pub struct AdminState {
    pub(crate) manager: Arc<ArcSwap<CertManager>>,
    metrics: Metrics,
    orders: Arc<OrderCounters>,
    renewals: Arc<Mutex<RenewalGate>>,
    pub(crate) cache: Arc<StoreCache>,
}

impl AdminState {
    /// State over the manager `manager` holds now (a reload stores a new one there).
    pub fn new(
        manager: Arc<ArcSwap<CertManager>>,
        metrics: Metrics,
        orders: Arc<OrderCounters>,
    ) -> Self {
        Self {
            manager,
            metrics,
            orders,
            renewals: Arc::default(),
            cache: Arc::default(),
        }
    }
}

/// One row per managed domain set, from the manager's memory (no file is read), with
/// the lease holders when given.
pub(crate) fn cert_rows(
    manager: &CertManager,
    holders: Option<&BTreeMap<String, String>>,
    now: SystemTime,
) -> Vec<CertRow> {
    manager
        .status()
        .iter()
        .map(|status| {
            let holder = holders.and_then(|h| h.get(&status.domains.key()).cloned());
            CertRow::new(status, holder, now)
        })
        .collect()
}

/// A running admin server.
pub struct AdminServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// The address it listens on (the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has shut down (after the token passed to [`serve`]).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Binds `addr` and serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<AdminServer> {
    let router = Router::new()
        .route("/", get(crate::page::status_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/certs", get(api_certs))
        .route("/api/renew", post(api_renew))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let router = router.layer(axum::middleware::from_fn(move |request, next| {
        refuse_web_pages(local_addr, request, next)
    }));
    let task = tokio::spawn(accept_loop(listener, router, shutdown));
    Ok(AdminServer { local_addr, task })
}

/// Longest a client may take to send a request's headers — also the first request's,
/// and the next one's on a kept-alive connection — before the connection is closed: an
/// idle or slowloris client cannot hold a connection open.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; one more is answered 503 and closed (the admin server is
/// for a few operators and probes, and must not become a way to exhaust file descriptors).
const MAX_CONNECTIONS: usize = 64;
/// How long connections in flight may finish after shutdown is asked.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves connections until `shutdown`, at most [`MAX_CONNECTIONS`] at once, each with
/// [`HEADER_READ_TIMEOUT`].
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "admin server could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(
            router.clone().layer(axum::Extension(ConnectInfo(peer))),
        );
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("admin connections still open after the drain; closing them");
    }
}

/// Answers a connection over [`MAX_CONNECTIONS`] with 503 and closes it.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = "too many admin connections; try again\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
    // Read what the client sent, so that closing does not reset the connection and
    // discard the answer before the client reads it.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        use tokio::io::AsyncReadExt;
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Refuses requests from web pages: one carrying an `Origin` header, or (except the
/// probes and `/metrics`, which infrastructure reaches by service name) a `Host` that is
/// not the admin address — DNS rebinding makes a browser send an attacker's host name.
async fn refuse_web_pages(admin: SocketAddr, request: Request, next: Next) -> Response {
    if request.headers().contains_key(header::ORIGIN) {
        return (
            StatusCode::FORBIDDEN,
            "requests from web pages are refused (the request has an Origin header); use `berth renew`, curl or the status page\n",
        )
            .into_response();
    }
    let probe = matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics");
    if !probe && !host_is_admin_addr(request.headers(), admin) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this admin server answers only as http://{admin}/ (or localhost); the Host header names something else\n"
            ),
        )
            .into_response();
    }
    next.run(request).await
}

/// Whether `Host` is the admin address, or a loopback name for it. Any IP literal is
/// accepted when the server listens on all addresses: DNS rebinding needs a host name.
fn host_is_admin_addr(headers: &HeaderMap, admin: SocketAddr) -> bool {
    let Some(authority) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
    else {
        return false;
    };
    if authority.port_u16().unwrap_or(80) != admin.port() {
        return false;
    }
    let host = authority.host();
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback() || ip == admin.ip().to_canonical() || admin.ip().is_unspecified()
        }
        Err(_) => false,
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let rows = cert_rows(&state.manager.load_full(), None, SystemTime::now());
    let missing: Vec<String> = rows
        .iter()
        .filter(|r| !r.valid)
        .map(|r| r.domains.to_string())
        .collect();
    if missing.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no valid certificate yet for: {}\n", missing.join(" ")),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let manager = state.manager.load_full();
    let now = SystemTime::now();
    let mut out = state.metrics.render_prometheus();
    let rows = cert_rows(&manager, None, now);
    crate::metrics::render(&mut out, &rows, &state.orders, manager.store().stats(), now);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn api_certs(State(state): State<AdminState>) -> Response {
    let manager = state.manager.load_full();
    let holders = state.cache.lease_holders(&manager).await;
    let certificates = cert_rows(&manager, Some(&holders), SystemTime::now());
    json_response(StatusCode::OK, &CertList { certificates })
}

/// Renews now (`berth renew`). Only loopback clients may ask: an exposed admin port must
/// not let anyone spend the account's rate limits.
async fn api_renew(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<RenewRequest>, QueryRejection>,
) -> Response {
    // A dual-stack listener sees IPv4 clients as ::ffff:127.0.0.1.
    if !peer.ip().to_canonical().is_loopback() {
        return (
            StatusCode::FORBIDDEN,
            "renewals may only be requested from this host (run `berth renew` inside the container)\n",
        )
            .into_response();
    }
    if !headers.contains_key(REQUEST_HEADER) {
        return (
            StatusCode::FORBIDDEN,
            "renewals need the header X-Berth-Request: 1 (`berth renew` sends it)\n",
        )
            .into_response();
    }
    let request = match query {
        Ok(Query(request)) => request,
        Err(rejection) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("{}\n", rejection.body_text()),
            )
                .into_response();
        }
    };
    // A dry run orders from staging only: it does not spend the forced budget.
    let _admitted = match crate::gate::admit(&state.renewals, request.force && !request.dry_run) {
        Ok(admitted) => admitted,
        Err(refusal) => return gate_refusal(refusal),
    };
    tracing::info!(
        force = request.force,
        dry_run = request.dry_run,
        "renewal requested through the admin API"
    );
    let manager = state.manager.load_full();
    match crate::renew::renew(&manager, &request).await {
        // 502 when an order failed: the CA (or the challenge) did, not this request.
        Ok(response) if response.failed() > 0 => json_response(StatusCode::BAD_GATEWAY, &response),
        Ok(response) => json_response(StatusCode::OK, &response),
        Err(refusal) => renew_refusal(&refusal),
    }
}

fn gate_refusal(refusal: GateRefusal) -> Response {
    match refusal {
        GateRefusal::Running(since, force) => (
            StatusCode::CONFLICT,
            format!(
                "a renewal (force={force}) requested at {} is still running; its result goes to whoever asked, wait and ask again\n",
                rfc3339(since)
            ),
        )
            .into_response(),
        GateRefusal::OverBudget { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.as_secs().to_string())],
            format!(
                "at most {FORCED_PER_WINDOW} forced renewals an hour (each orders every certificate anew); the next is allowed in {}; `berth renew` without --force renews what is due\n",
                humantime::format_duration(Duration::from_secs(retry_after.as_secs()))
            ),
        )
            .into_response(),
    }
}

fn renew_refusal(refusal: &RenewRefusal) -> Response {
    let (status, hint) = match refusal {
        RenewRefusal::UnknownName { .. } => (StatusCode::NOT_FOUND, ""),
        RenewRefusal::NoStaging(_) => (
            StatusCode::BAD_REQUEST,
            "; start berth run with --staging-ca URL (BERTH_STAGING_CA) or a CA preset that has one",
        ),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, ""),
    };
    (status, format!("{refusal}{hint}\n")).into_response()
}

/// A JSON answer.
fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json_text(body),
    )
        .into_response()
}

/// The JSON text of an answer, its object keys in alphabetical order (as the API has
/// always written them: through a `serde_json::Value`).
pub(crate) fn json_text(body: &impl Serialize) -> String {
    match serde_json::to_value(body) {
        Ok(value) => value.to_string(),
        // The API's types always serialize (string keys, no failing serializer).
        Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, value.parse().unwrap());
        headers
    }

    #[test]
    fn host_must_name_the_admin_address_or_loopback() {
        let admin: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        for ok in ["127.0.0.1:9090", "localhost:9090", "[::1]:9090"] {
            assert!(host_is_admin_addr(&host(ok), admin), "{ok}");
        }
        for refused in ["attacker.example:9090", "127.0.0.1:9091", "10.0.0.5:9090"] {
            assert!(!host_is_admin_addr(&host(refused), admin), "{refused}");
        }
        assert!(!host_is_admin_addr(&HeaderMap::new(), admin));
        // Listening on all addresses: any IP literal, still no host name.
        let all: SocketAddr = "[::]:9090".parse().unwrap();
        assert!(host_is_admin_addr(&host("10.0.0.5:9090"), all));
        assert!(!host_is_admin_addr(&host("rebound.example:9090"), all));
    }
}
