//! Forwarding one request to its upstream: header rewriting, streaming bodies,
//! WebSocket (HTTP/1.1 Upgrade) tunnels, and the 502/504/413 answers.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::routes::Routes;

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;
/// Bodies sent to clients: the upstream's streamed body or a small local one.
pub(crate) type ResponseBody = BoxBody<Bytes, hyper::Error>;
type UpstreamBody = BoxBody<Bytes, BoxError>;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Idle upstream connections are kept this long for reuse.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Sends requests to upstreams over a pooled HTTP/1.1 client.
pub(crate) struct Forwarder {
    /// Swapped whole on reload ([`crate::BoundProxy::replace_routes`]); requests in
    /// flight keep the table they started with.
    routes: Arc<ArcSwap<Routes>>,
    client: Client<HttpConnector, UpstreamBody>,
    upstream_timeout: Duration,
    max_request_body: Option<u64>,
    hsts: Option<HeaderValue>,
    metrics: Metrics,
    /// Owns the WebSocket tunnels, so shutdown waits for (or cuts) them too.
    tunnels: TaskTracker,
    hard_stop: CancellationToken,
}

/// Where a request came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    pub(crate) https: bool,
}

impl Forwarder {
    pub(crate) fn new(
        routes: Arc<ArcSwap<Routes>>,
        limits: &Limits,
        hsts: Option<Duration>,
        metrics: Metrics,
        tunnels: TaskTracker,
        hard_stop: CancellationToken,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(limits.upstream_connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            routes,
            client,
            upstream_timeout: limits.upstream_timeout,
            max_request_body: limits.max_request_body,
            hsts: hsts
                .and_then(|age| HeaderValue::from_str(&format!("max-age={}", age.as_secs())).ok()),
            metrics,
            tunnels,
            hard_stop,
        }
    }

    /// Answers one client request, counting the response.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        peer: Peer,
    ) -> Response<ResponseBody> {
        let mut response = self.forward(req, peer).await;
        if peer.https
            && let Some(hsts) = &self.hsts
        {
            // RFC 6797 §7.2: HSTS only over secure transport; the app's own wins.
            response
                .headers_mut()
                .entry(header::STRICT_TRANSPORT_SECURITY)
                .or_insert_with(|| hsts.clone());
        }
        self.metrics.response(response.status());
        response
    }

    async fn forward(&self, mut req: Request<Incoming>, peer: Peer) -> Response<ResponseBody> {
        let host = request_host(&req);
        let routes = self.routes.load_full();
        let Some(route) = routes.find(host.as_deref(), req.uri().path()) else {
            return local(StatusCode::NOT_FOUND, "no route for this host and path\n");
        };
        if let (Some(max), Some(length)) = (self.max_request_body, content_length(req.headers()))
            && length > max
        {
            return local(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        let upgrade = upgrade_protocol(&req);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        let Ok(uri) = route
            .upstream()
            .uri(route.rewrite(parts.uri.path_and_query()))
        else {
            return local(
                StatusCode::BAD_REQUEST,
                "request target cannot be forwarded\n",
            );
        };
        let original_authority = parts.uri.authority().cloned();
        remove_hop_by_hop(&mut parts.headers);
        if !parts.headers.contains_key(header::HOST) {
            // HTTP/2 clients send :authority instead; HTTP/1.1 upstreams need Host.
            if let Some(value) = original_authority
                .as_ref()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(header::HOST, value);
            }
        }
        set_forwarding_headers(&mut parts.headers, peer);
        if let Some(protocol) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let body: UpstreamBody = match self.max_request_body {
            Some(max) => Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)).boxed(),
            None => body.map_err(BoxError::from).boxed(),
        };

        let started = Instant::now();
        let sent = tokio::time::timeout(
            self.upstream_timeout,
            self.client.request(Request::from_parts(parts, body)),
        )
        .await;
        let mut response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return self.failed(&error, route.upstream()),
            Err(_elapsed) => {
                tracing::warn!(
                    upstream = %route.upstream(),
                    timeout_ms = self.upstream_timeout.as_millis(),
                    "upstream sent no response headers in time"
                );
                return local(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n");
            }
        };
        self.metrics.upstream_latency(started.elapsed());

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                tracing::warn!(upstream = %route.upstream(), "upstream switched protocols without being asked");
                return local(
                    StatusCode::BAD_GATEWAY,
                    "upstream switched protocols unasked\n",
                );
            };
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let upstream = route.upstream().to_string();
            let hard_stop = self.hard_stop.clone();
            self.tunnels.spawn(async move {
                let (client, server) = tokio::join!(client_upgrade, upstream_upgrade);
                let (client, server) = match (client, server) {
                    (Ok(c), Ok(s)) => (c, s),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::debug!(%upstream, error = %e, "upgrade did not complete");
                        return;
                    }
                };
                let mut client = TokioIo::new(client);
                let mut server = TokioIo::new(server);
                tokio::select! {
                    () = hard_stop.cancelled() => {}
                    copied = tokio::io::copy_bidirectional(&mut client, &mut server) => {
                        if let Err(error) = copied {
                            tracing::debug!(%upstream, %error, "upgraded connection ended with an error");
                        }
                    }
                }
            });
            let upgrade_to = response.headers().get(header::UPGRADE).cloned();
            let (mut parts, _) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(protocol) = upgrade_to {
                parts.headers.insert(header::UPGRADE, protocol);
            }
            return Response::from_parts(parts, empty());
        }

        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        Response::from_parts(parts, body.boxed())
    }

    /// The answer when the upstream request failed before response headers.
    fn failed(
        &self,
        error: &hyper_util::client::legacy::Error,
        upstream: &crate::routes::Upstream,
    ) -> Response<ResponseBody> {
        if caused_by::<LengthLimitError>(error) {
            return local(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        let timed_out = caused_by_io(error, std::io::ErrorKind::TimedOut);
        tracing::warn!(
            %upstream,
            error = %ErrorChain(error),
            "upstream request failed"
        );
        if timed_out {
            local(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
        } else {
            local(StatusCode::BAD_GATEWAY, "upstream unavailable\n")
        }
    }
}

/// A small plain-text response made by the proxy itself.
pub(crate) fn local(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn empty() -> ResponseBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// The host a request is for, lower case, without port or trailing dot: from the
/// request target (HTTP/2 `:authority`, absolute-form) or else the Host header.
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<String> {
    let authority = match req.uri().authority() {
        Some(a) => a.clone(),
        None => {
            let value = req.headers().get(header::HOST)?.to_str().ok()?;
            value.parse::<Authority>().ok()?
        }
    };
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The protocol an HTTP/1.1 request asks to switch to (RFC 9110 §7.8), e.g. WebSocket.
fn upgrade_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let asks = connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"));
    if !asks {
        return None;
    }
    req.headers().get(header::UPGRADE).cloned()
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes the headers that describe one connection rather than the message
/// (RFC 9110 §7.6.1), including any the Connection header names.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &header::PROXY_AUTHORIZATION,
        &header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
}

/// Tells the upstream who asked and how: `X-Forwarded-For` (appended), `-Proto`,
/// `-Host`, and the standard `Forwarded` (RFC 7239 §4, appended).
fn set_forwarding_headers(headers: &mut HeaderMap, peer: Peer) {
    let ip = peer.addr.ip().to_canonical();
    let proto = if peer.https { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);

    let xff = match joined(headers, &X_FORWARDED_FOR) {
        Some(previous) => format!("{previous}, {ip}"),
        None => ip.to_string(),
    };
    insert_text(headers, &X_FORWARDED_FOR, &xff);
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    match &host {
        Some(host) => insert_text(headers, &X_FORWARDED_HOST, host),
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }

    // RFC 7239 §6: IPv6 addresses are bracketed and quoted; a host with a port is not
    // a token, so it is quoted too (§4).
    let node = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut element = format!("for={node};proto={proto}");
    if let Some(host) = &host {
        element.push_str(";host=");
        element.push_str(&quote_if_needed(host));
    }
    let forwarded = match joined(headers, &FORWARDED) {
        Some(previous) => format!("{previous}, {element}"),
        None => element,
    };
    insert_text(headers, &FORWARDED, &forwarded);
}

/// All values of a header joined with `", "`, if it is present and textual.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn insert_text(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), value);
    }
}

fn quote_if_needed(value: &str) -> String {
    let is_token = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if is_token {
        value.to_owned()
    } else {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    }
}

fn caused_by<E: StdError + 'static>(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<E>() {
            return true;
        }
        current = e.source();
    }
    false
}

fn caused_by_io(error: &(dyn StdError + 'static), kind: std::io::ErrorKind) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Displays an error with its causes, `outer: inner: root`.
struct ErrorChain<'a>(&'a (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
            ("content-length", "3"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        remove_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "content-length"]);
    }

    #[test]
    fn forwarding_headers_append_to_earlier_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("example.com:8443"));
        headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        let peer = Peer {
            addr: "[::ffff:192.0.2.7]:5000".parse().unwrap(),
            https: true,
        };
        set_forwarding_headers(&mut headers, peer);
        assert_eq!(headers[&X_FORWARDED_FOR], "203.0.113.9, 192.0.2.7");
        assert_eq!(headers[&X_FORWARDED_PROTO], "https");
        assert_eq!(headers[&X_FORWARDED_HOST], "example.com:8443");
        assert_eq!(
            headers[&FORWARDED],
            "for=192.0.2.7;proto=https;host=\"example.com:8443\""
        );

        let mut v6 = HeaderMap::new();
        v6.insert(header::HOST, HeaderValue::from_static("example.com"));
        let peer = Peer {
            addr: "[2001:db8::1]:5000".parse().unwrap(),
            https: false,
        };
        set_forwarding_headers(&mut v6, peer);
        assert_eq!(
            v6[&FORWARDED],
            "for=\"[2001:db8::1]\";proto=http;host=example.com"
        );
    }

    #[test]
    fn request_host_prefers_the_target_and_drops_port_and_case() {
        let req = Request::builder()
            .uri("https://WWW.Example.com:8443/x")
            .header("host", "other.org")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req).as_deref(), Some("www.example.com"));
        let req = Request::builder()
            .uri("/x")
            .header("host", "Example.com.:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req).as_deref(), Some("example.com"));
        let req = Request::builder().uri("/x").body(()).unwrap();
        assert_eq!(request_host(&req), None);
        let req = Request::builder()
            .uri("/x")
            .header("host", "bad host")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), None);
    }

    #[test]
    fn only_http11_requests_with_connection_upgrade_upgrade() {
        let ws = Request::builder()
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert_eq!(upgrade_protocol(&ws).unwrap(), "websocket");
        let no_connection = Request::builder()
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert!(upgrade_protocol(&no_connection).is_none());
        let h2 = Request::builder()
            .version(Version::HTTP_2)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert!(upgrade_protocol(&h2).is_none());
    }
}
