//! The admin server (127.0.0.1 by default): `/healthz`, `/readyz`, `/metrics`,
//! `/api/certs` and a small status page.
//!
//! Requests from web pages are refused: one carrying an `Origin` header, or (except the
//! probes and `/metrics`, which infrastructure reaches by service name) a `Host` that is
//! not the admin address — DNS rebinding makes a browser send an attacker's host name.
//! `/api/renew` also needs [`REQUEST_HEADER`], which a page cannot send cross-origin
//! without a CORS preflight this server never answers.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use berth_acme_core::store::{LATENCY_BUCKETS, StoreStats};
use berth_acme_core::{CertEvent, CertManager, ExpiryLevel};
use berth_proxy::Metrics;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::commands::{days_left, rfc3339};

/// Orders by result, counted from the manager's events.
#[derive(Debug, Default)]
pub(crate) struct OrderCounters {
    issued: AtomicU64,
    renewed: AtomicU64,
    failed: AtomicU64,
    backing_off: AtomicU64,
    refused: AtomicU64,
    staging_proven: AtomicU64,
}

impl OrderCounters {
    /// Counts events until the manager's event stream ends or `stop` fires.
    pub(crate) async fn count(
        self: Arc<Self>,
        mut events: broadcast::Receiver<CertEvent>,
        stop: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = events.recv() => event,
            };
            let counter = match event {
                Ok(CertEvent::Issued { .. }) => &self.issued,
                Ok(CertEvent::Renewed { .. }) => &self.renewed,
                Ok(CertEvent::Failed { .. }) => &self.failed,
                Ok(CertEvent::BackingOff { .. }) => &self.backing_off,
                Ok(CertEvent::Refused { .. }) => &self.refused,
                Ok(CertEvent::StagingProven { .. }) => &self.staging_proven,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "order metrics missed events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut String) {
        out.push_str("# HELP berth_orders_total Certificate orders and decisions by result.\n");
        out.push_str("# TYPE berth_orders_total counter\n");
        for (result, counter) in [
            ("issued", &self.issued),
            ("renewed", &self.renewed),
            ("failed", &self.failed),
            ("backing_off", &self.backing_off),
            ("refused_by_budget", &self.refused),
            ("staging_proven", &self.staging_proven),
        ] {
            let _ = writeln!(
                out,
                "berth_orders_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
    }
}

/// What the handlers read. The manager is swapped on SIGHUP.
#[derive(Clone)]
pub(crate) struct AdminState {
    manager: Arc<ArcSwap<CertManager>>,
    metrics: Metrics,
    orders: Arc<OrderCounters>,
    renewals: Arc<Mutex<RenewalGate>>,
}

impl AdminState {
    pub(crate) fn new(
        manager: Arc<ArcSwap<CertManager>>,
        metrics: Metrics,
        orders: Arc<OrderCounters>,
    ) -> Self {
        Self {
            manager,
            metrics,
            orders,
            renewals: Arc::default(),
        }
    }

    /// One row per managed domain set, from the manager's memory (no file is read).
    fn rows(&self) -> Vec<CertRow> {
        let manager = self.manager.load_full();
        let now = SystemTime::now();
        manager
            .status()
            .into_iter()
            .map(|status| {
                let cert = status.certificate.as_ref();
                CertRow {
                    domains: status.domains.to_string(),
                    key: status.domains.key(),
                    issuer: cert.map(|c| c.info().issuer.clone()),
                    not_before: cert.map(|c| c.info().not_before),
                    not_after: cert.map(|c| c.info().not_after),
                    renew_at: status.renew_at,
                    valid: cert.is_some_and(|c| c.is_valid_at(now)),
                    last_error: status.ledger.as_ref().map(|e| e.last_error.clone()),
                    backoff_until: status
                        .ledger
                        .as_ref()
                        .map(|e| e.next_attempt_at)
                        .filter(|t| *t > now),
                    stored: status.stored,
                }
            })
            .collect()
    }
}

struct CertRow {
    domains: String,
    /// The set's key in the store (its lease is `certs/<key>`).
    key: String,
    issuer: Option<String>,
    not_before: Option<SystemTime>,
    not_after: Option<SystemTime>,
    renew_at: Option<SystemTime>,
    valid: bool,
    last_error: Option<String>,
    backoff_until: Option<SystemTime>,
    /// `false` while the served certificate is only in memory (storing it failed, or the
    /// stored copy was unreadable); it is stored again on the next pass.
    stored: bool,
}

/// A running admin server.
pub(crate) struct AdminServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl AdminServer {
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has shut down (after the token passed to [`serve`]).
    pub(crate) async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Binds `addr` and serves until `shutdown`.
pub(crate) async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<AdminServer> {
    let router = Router::new()
        .route("/", get(status_page))
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

/// The header `berth renew` sends with a mutation; its value is not checked.
pub(crate) const REQUEST_HEADER: &str = "x-berth-request";

/// Forced renewals allowed in [`FORCED_WINDOW`]. A forced renewal orders every set anew
/// whether due or not; CAs without a preset budget (ZeroSSL, Google, a custom URL) would
/// otherwise let a loop of `berth renew --force` spend the account's real limits. Each one
/// renews every set, so this is also the limit per domain set.
const FORCED_PER_WINDOW: usize = 3;
const FORCED_WINDOW: Duration = Duration::from_secs(3600);

/// One renewal at a time, and the forced ones counted.
#[derive(Debug, Default)]
struct RenewalGate {
    running: Option<RunningRenewal>,
    forced: VecDeque<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct RunningRenewal {
    since: SystemTime,
    force: bool,
}

/// Why a renewal request was not started.
#[derive(Debug, PartialEq)]
enum GateRefusal {
    Running(SystemTime, bool),
    OverBudget { retry_after: Duration },
}

impl RenewalGate {
    /// Admits one renewal, or says what stands in its way.
    fn admit(&mut self, force: bool, now: Instant) -> Result<(), GateRefusal> {
        if let Some(running) = self.running {
            return Err(GateRefusal::Running(running.since, running.force));
        }
        if force {
            while self
                .forced
                .front()
                .is_some_and(|t| now.duration_since(*t) >= FORCED_WINDOW)
            {
                self.forced.pop_front();
            }
            if self.forced.len() >= FORCED_PER_WINDOW {
                let oldest = self.forced.front().copied().unwrap_or(now);
                return Err(GateRefusal::OverBudget {
                    retry_after: FORCED_WINDOW.saturating_sub(now.duration_since(oldest)),
                });
            }
            self.forced.push_back(now);
        }
        self.running = Some(RunningRenewal {
            since: SystemTime::now(),
            force,
        });
        Ok(())
    }
}

/// Clears the running renewal when the request ends, also when it is cancelled.
struct Admitted(Arc<Mutex<RenewalGate>>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .running = None;
    }
}

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
    let rows = state.rows();
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| !r.valid)
        .map(|r| r.domains.as_str())
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
    let mut out = state.metrics.render_prometheus();
    let rows = state.rows();
    let now = SystemTime::now();
    out.push_str(
        "# HELP berth_certificate_expiry_seconds Seconds until the served certificate expires.\n",
    );
    out.push_str("# TYPE berth_certificate_expiry_seconds gauge\n");
    for row in &rows {
        if let Some(not_after) = row.not_after {
            let secs = match not_after.duration_since(now) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            let _ = writeln!(
                out,
                "berth_certificate_expiry_seconds{{domains=\"{}\"}} {secs:.0}",
                row.domains
            );
        }
    }
    out.push_str("# HELP berth_certificate_backoff Whether orders for the domain set are backing off after a failure.\n");
    out.push_str("# TYPE berth_certificate_backoff gauge\n");
    for row in &rows {
        let _ = writeln!(
            out,
            "berth_certificate_backoff{{domains=\"{}\"}} {}",
            row.domains,
            u8::from(row.backoff_until.is_some())
        );
    }
    out.push_str(
        "# HELP berth_certificate_days_left Whole days until the served certificate expires.\n",
    );
    out.push_str("# TYPE berth_certificate_days_left gauge\n");
    for row in &rows {
        if let Some(not_after) = row.not_after {
            let _ = writeln!(
                out,
                "berth_certificate_days_left{{domains=\"{}\"}} {}",
                row.domains,
                days_left(not_after)
            );
        }
    }
    state.orders.render(&mut out);
    out.push_str(
        "# HELP berth_ready Whether every configured domain set has a valid certificate.\n",
    );
    out.push_str("# TYPE berth_ready gauge\n");
    let _ = writeln!(
        out,
        "berth_ready {}",
        u8::from(rows.iter().all(|r| r.valid))
    );
    if let Some(stats) = state.manager.load().store().stats() {
        store_metrics(&mut out, stats);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// How long the admin server waits for the store to say who holds which lease.
const LEASE_LOOKUP: Duration = Duration::from_secs(1);

/// Which replica holds each set's order lease now (set key → holder), from the store;
/// empty when the store does not answer within [`LEASE_LOOKUP`]. Handshakes never wait
/// on this: the proxy's workers run on their own threads.
async fn lease_holders(state: &AdminState) -> std::collections::BTreeMap<String, String> {
    let manager = state.manager.load_full();
    match tokio::time::timeout(LEASE_LOOKUP, manager.store().lock_holders()).await {
        Ok(Ok(held)) => held
            .into_iter()
            .filter_map(|(name, holder)| {
                let set = name.strip_prefix(berth_acme_core::store::records::CERTS)?;
                Some((set.to_owned(), holder))
            })
            .collect(),
        _ => std::collections::BTreeMap::new(),
    }
}

/// The shared store's counters (see [`StoreStats`]) in Prometheus text.
fn store_metrics(out: &mut String, stats: &StoreStats) {
    out.push_str("# HELP berth_store_operation_seconds Time the shared store took to answer, per operation.\n");
    out.push_str("# TYPE berth_store_operation_seconds histogram\n");
    let latencies = stats.latencies();
    for l in &latencies {
        let op = l.op.name();
        for (bound, count) in LATENCY_BUCKETS.iter().zip(l.buckets) {
            let _ = writeln!(
                out,
                "berth_store_operation_seconds_bucket{{op=\"{op}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "berth_store_operation_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}",
            l.count
        );
        let _ = writeln!(
            out,
            "berth_store_operation_seconds_sum{{op=\"{op}\"}} {}",
            l.total.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "berth_store_operation_seconds_count{{op=\"{op}\"}} {}",
            l.count
        );
    }
    out.push_str(
        "# HELP berth_store_operation_errors_total Operations the shared store did not answer.\n",
    );
    out.push_str("# TYPE berth_store_operation_errors_total counter\n");
    for l in &latencies {
        let _ = writeln!(
            out,
            "berth_store_operation_errors_total{{op=\"{}\"}} {}",
            l.op.name(),
            l.errors
        );
    }
    for (name, help, value) in [
        (
            "berth_store_leases_gained_total",
            "Order leases this replica took.",
            stats.leases_gained(),
        ),
        (
            "berth_store_leases_lost_total",
            "Order leases this replica lost before releasing them (expired, taken over, fenced).",
            stats.leases_lost(),
        ),
        (
            "berth_store_fenced_writes_total",
            "Writes the store refused because this replica's lease was no longer held.",
            stats.fenced_writes(),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
}

async fn api_certs(State(state): State<AdminState>) -> Response {
    let holders = lease_holders(&state).await;
    let certs: Vec<_> = state
        .rows()
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "domains": r.domains.split(',').collect::<Vec<_>>(),
                "issuer": r.issuer,
                "not_before": r.not_before.map(rfc3339),
                "not_after": r.not_after.map(rfc3339),
                "days_left": r.not_after.map(days_left),
                "next_renewal": r.renew_at.map(rfc3339),
                "valid": r.valid,
                "last_error": r.last_error,
                "backoff_until": r.backoff_until.map(rfc3339),
                "stored": r.stored,
                "lease_holder": holders.get(&r.key),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "certificates": certs })).into_response()
}

#[derive(serde::Deserialize)]
struct RenewQuery {
    #[serde(default)]
    force: bool,
    /// Order from the staging CA into a throwaway store (`berth renew --dry-run`).
    #[serde(default)]
    dry_run: bool,
    /// Comma-separated names: renew only the certificates carrying one of them.
    #[serde(default)]
    names: Option<String>,
}

/// Renews now (`berth renew`). Only loopback clients may ask: an exposed admin port must
/// not let anyone spend the account's rate limits.
async fn api_renew(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<RenewQuery>,
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
    let admitted = state
        .renewals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        // A dry run orders from staging only: it does not spend the forced budget.
        .admit(query.force && !query.dry_run, Instant::now());
    match admitted {
        Ok(()) => {}
        Err(GateRefusal::Running(since, force)) => {
            return (
                StatusCode::CONFLICT,
                format!(
                    "a renewal (force={force}) requested at {} is still running; its result goes to whoever asked, wait and ask again\n",
                    rfc3339(since)
                ),
            )
                .into_response();
        }
        Err(GateRefusal::OverBudget { retry_after }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after.as_secs().to_string())],
                format!(
                    "at most {FORCED_PER_WINDOW} forced renewals an hour (each orders every certificate anew); the next is allowed in {}; `berth renew` without --force renews what is due\n",
                    humantime::format_duration(Duration::from_secs(retry_after.as_secs()))
                ),
            )
                .into_response();
        }
    }
    let _admitted = Admitted(Arc::clone(&state.renewals));
    let manager = state.manager.load_full();
    tracing::info!(
        force = query.force,
        dry_run = query.dry_run,
        "renewal requested through the admin API"
    );
    let names: Vec<String> = query
        .names
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    let body = match crate::commands::renew::renew(&manager, &names, query.force, query.dry_run)
        .await
    {
        Ok(body) => body,
        Err(crate::commands::renew::Refusal::UnknownName(message)) => {
            return (StatusCode::NOT_FOUND, format!("{message}\n")).into_response();
        }
        Err(crate::commands::renew::Refusal::Failed(message)) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{message}\n")).into_response();
        }
        Err(crate::commands::renew::Refusal::NoStaging(message)) => {
            return (
                    StatusCode::BAD_REQUEST,
                    format!("{message}; start berth run with --staging-ca URL (BERTH_STAGING_CA) or a CA preset that has one\n"),
                )
                    .into_response();
        }
    };
    let failed = body.iter().any(|r| r["status"] == "failed");
    let code = if failed {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    (code, axum::Json(serde_json::json!({ "results": body }))).into_response()
}

async fn status_page(State(state): State<AdminState>) -> Html<String> {
    let mut rows = String::new();
    for r in state.rows() {
        let days = r.not_after.map(days_left);
        // Relative to the certificate's lifetime: a 6-day certificate is not
        // "expiring soon" all its life (Traefik #12946).
        let level = match (r.not_before, r.not_after) {
            (Some(from), Some(until)) if r.valid => ExpiryLevel::at(from, until, SystemTime::now()),
            _ => ExpiryLevel::Critical,
        };
        let class = match level {
            ExpiryLevel::Fine => "ok",
            ExpiryLevel::Soon => "warn",
            _ => "bad",
        };
        let _ = write!(
            rows,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.domains),
            days.map_or("none".into(), |d| format!("{d} days")),
            r.not_after.map_or("-".into(), rfc3339),
            r.renew_at.map_or("-".into(), rfc3339),
            escape(match (&r.last_error, r.stored) {
                (_, false) => "not in the store: served from memory, stored again on the next pass",
                (Some(error), true) => error,
                (None, true) => "-",
            }),
            r.backoff_until.map_or("-".into(), rfc3339),
        );
    }
    // Stored certificates of sets this berth is not configured with: listed so that
    // nobody wonders why they are never renewed.
    let unmanaged = state
        .manager
        .load_full()
        .unmanaged()
        .await
        .unwrap_or_default();
    for cert in unmanaged {
        let not_after = cert.certificate.info().not_after;
        let _ = write!(
            rows,
            "<tr class=\"unmanaged\"><td>{}</td><td>{} days</td><td>{}</td><td>unmanaged: never renewed</td><td>-</td><td>-</td></tr>",
            escape(&cert.domains.to_string()),
            days_left(not_after),
            rfc3339(not_after),
        );
    }
    let mut leases = String::new();
    for (set, holder) in lease_holders(&state).await {
        let _ = write!(
            leases,
            "<li>{}: being ordered by {}</li>",
            escape(&set),
            escape(&holder)
        );
    }
    if !leases.is_empty() {
        leases = format!("<h2>Order leases</h2><ul>{leases}</ul>");
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>berth status</title><style>\
body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}td,th{{padding:.4rem .8rem;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}}\
tr.unmanaged td{{color:#6b7280}}tr.ok td:nth-child(2){{color:#176f2c}}tr.warn td:nth-child(2){{color:#9a6700}}tr.bad td:nth-child(2){{color:#b42318;font-weight:bold}}</style></head>\
<body><h1>berth</h1><p>CA: {}</p><table><thead><tr><th>Domains</th><th>Expires in</th><th>Not after</th><th>Next renewal</th><th>Last error</th><th>Backoff until</th></tr></thead>\
<tbody>{rows}</tbody></table>{leases}</body></html>",
        escape(state.manager.load().ca().directory())
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

    #[test]
    fn a_second_renewal_waits_for_the_running_one() {
        let mut gate = RenewalGate::default();
        let now = Instant::now();
        gate.admit(false, now).unwrap();
        assert!(matches!(
            gate.admit(true, now),
            Err(GateRefusal::Running(_, false))
        ));
        gate.running = None;
        gate.admit(false, now).unwrap();
    }

    #[test]
    fn forced_renewals_are_limited_per_hour() {
        let mut gate = RenewalGate::default();
        let start = Instant::now();
        for i in 0..FORCED_PER_WINDOW {
            gate.admit(true, start + Duration::from_secs(i as u64))
                .unwrap();
            gate.running = None;
        }
        let later = start + Duration::from_secs(600);
        assert_eq!(
            gate.admit(true, later),
            Err(GateRefusal::OverBudget {
                retry_after: Duration::from_secs(3000)
            })
        );
        // Renewing what is due is not limited here (the CA budget and the ledger apply).
        gate.admit(false, later).unwrap();
        gate.running = None;
        gate.admit(true, start + FORCED_WINDOW).unwrap();
    }
}
