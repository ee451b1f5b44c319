//! Forwarding one request to its upstream: header rewriting, streaming bodies,
//! WebSocket (HTTP/1.1 Upgrade) tunnels, and the 502/504/413 answers.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::pool::{Pool, RequestBody, SendError, UpstreamBody};
use crate::resolver::CertResolver;
use crate::routes::{Routes, Upstream, has_dot_segment};
use crate::trusted::TrustedProxies;

/// Bodies sent to clients: the upstream's streamed body or a small local one.
pub(crate) type ResponseBody = Either<UpstreamBody, Full<Bytes>>;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1).
static HOP_BY_HOP: [&HeaderName; 9] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHORIZATION,
    &header::PROXY_AUTHENTICATE,
];

/// End-to-end headers the proxy sets or vouches for. A client's `Connection` header
/// must not remove them (RFC 9110 §7.6.1 lets it name any header): `Connection: Host`
/// would otherwise send the upstream its own address as the Host, and naming a
/// forwarding header would drop what a trusted load balancer said about the client.
static PROTECTED: [&HeaderName; 8] = [
    &header::HOST,
    &X_FORWARDED_FOR,
    &X_FORWARDED_PROTO,
    &X_FORWARDED_HOST,
    &X_FORWARDED_PORT,
    &X_FORWARDED_PREFIX,
    &X_REAL_IP,
    &FORWARDED,
];

/// The forwarding headers a client may set only through a trusted proxy.
static FORWARDING: [&HeaderName; 7] = [
    &X_FORWARDED_FOR,
    &X_FORWARDED_PROTO,
    &X_FORWARDED_HOST,
    &X_FORWARDED_PORT,
    &X_FORWARDED_PREFIX,
    &X_REAL_IP,
    &FORWARDED,
];

/// Sends requests to upstreams over pooled HTTP/1.1 connections.
pub(crate) struct Forwarder {
    /// Swapped whole on reload ([`crate::BoundProxy::replace_routes`]); requests in
    /// flight keep the table they started with.
    routes: Arc<ArcSwap<Routes>>,
    pool: Pool,
    upstream_timeout: Duration,
    max_request_body: Option<u64>,
    hsts: Option<HeaderValue>,
    metrics: Metrics,
    /// Owns the WebSocket tunnels, so shutdown waits for (or cuts) them too.
    tunnels: TaskTracker,
    hard_stop: CancellationToken,
    /// The TLS listener's certificates, to answer 421 to misdirected requests.
    certs: Option<Arc<CertResolver>>,
}

/// Where a request came from, with the forwarding header values that depend only on
/// that, made once per connection.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    pub(crate) https: bool,
    /// The peer is a trusted proxy ([`TrustedProxies`]): its forwarding headers are kept.
    trusted: bool,
    /// The client's address as `X-Forwarded-For` lists it.
    forwarded_for: HeaderValue,
    /// `for=…;proto=…`, this hop's `Forwarded` element without the host.
    forwarded_element: String,
    /// The server name the client's TLS handshake asked for.
    sni: Option<Box<str>>,
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr, https: bool, trusted: &TrustedProxies) -> Self {
        let ip = addr.ip().to_canonical();
        let proto = proto(https);
        // RFC 7239 §6: IPv6 addresses are bracketed and quoted.
        let node = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        Self {
            addr,
            https,
            trusted: trusted.contains(ip),
            forwarded_for: HeaderValue::from_maybe_shared(Bytes::from(ip.to_string()))
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            forwarded_element: format!("for={node};proto={proto}"),
            sni: None,
        }
    }

    /// Notes the server name the TLS handshake asked for (SNI).
    pub(crate) fn with_sni(mut self, sni: Option<&str>) -> Self {
        self.sni = sni.map(Box::from);
        self
    }

    fn proto(&self) -> &'static str {
        proto(self.https)
    }
}

fn proto(https: bool) -> &'static str {
    if https { "https" } else { "http" }
}

impl Forwarder {
    pub(crate) fn new(
        routes: Arc<ArcSwap<Routes>>,
        limits: &Limits,
        hsts: Option<Duration>,
        metrics: Metrics,
        tunnels: TaskTracker,
        hard_stop: CancellationToken,
        certs: Option<Arc<CertResolver>>,
    ) -> Self {
        Self {
            routes,
            pool: Pool::new(
                limits.upstream_connect_timeout,
                limits.max_upstream_connections,
            ),
            upstream_timeout: limits.upstream_timeout,
            max_request_body: limits.max_body_bytes,
            hsts: hsts
                .and_then(|age| HeaderValue::from_str(&format!("max-age={}", age.as_secs())).ok()),
            metrics,
            tunnels,
            hard_stop,
            certs,
        }
    }

    /// Answers one client request, counting the response.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        peer: &Peer,
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

    /// The proxy's own answer to a request it must not route: a path holding
    /// dot-segments (400), or a host this connection's certificate is not for (421).
    fn refusal(
        &self,
        path: &str,
        host: Option<&str>,
        peer: &Peer,
    ) -> Option<Response<ResponseBody>> {
        if has_dot_segment(path) {
            return Some(local(
                StatusCode::BAD_REQUEST,
                "the path holds a dot-segment (/./ or /../, also as %2e); send it resolved (RFC 3986 §5.2.4)\n",
            ));
        }
        if let (Some(certs), Some(host)) = (&self.certs, host)
            && peer.https
            && certs.misdirected(peer.sni.as_deref(), host)
        {
            return Some(local(
                StatusCode::MISDIRECTED_REQUEST,
                "this host has its own certificate; connect again with it as the TLS server name\n",
            ));
        }
        None
    }

    async fn forward(&self, mut req: Request<Incoming>, peer: &Peer) -> Response<ResponseBody> {
        let host = request_host(&req);
        if let Some(refused) = self.refusal(req.uri().path(), host, peer) {
            return refused;
        }
        let routes = self.routes.load();
        let Some(route) = routes.find(host, req.uri().path()) else {
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
        let target = route.rewrite(parts.uri.path_and_query());
        let upstream = route.upstream();
        // The route was chosen by the target's authority (absolute-form, HTTP/2
        // :authority), so that is the Host the upstream gets: RFC 9112 §3.2.2 has a
        // proxy replace a differing Host with it, RFC 9113 §8.3.1 makes them one.
        if let Some(authority) = parts.uri.authority() {
            set_host(&mut parts.headers, Some(authority));
        }
        remove_hop_by_hop(&mut parts.headers);
        set_forwarding_headers(&mut parts.headers, peer);
        // HTTP/1.0 clients may send no host at all, but HTTP/1.1 upstreams need one.
        if !parts.headers.contains_key(header::HOST) {
            set_host(&mut parts.headers, Some(upstream.authority_ref()));
        }
        if let Some(protocol) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        // Origin form: the upstream connection already says where the request goes.
        parts.uri = Uri::from(target);
        parts.version = Version::HTTP_11;
        let body: RequestBody = match self.max_request_body {
            Some(max) => Either::Right(Limited::new(
                body,
                usize::try_from(max).unwrap_or(usize::MAX),
            )),
            None => Either::Left(body),
        };

        let started = Instant::now();
        let sent = tokio::time::timeout(
            self.upstream_timeout,
            self.pool
                .send(upstream.authority_ref(), Request::from_parts(parts, body)),
        )
        .await;
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return failed(&error, upstream),
            Err(_elapsed) => {
                tracing::warn!(
                    %upstream,
                    timeout_ms = self.upstream_timeout.as_millis(),
                    "upstream sent no response headers in time"
                );
                return local(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n");
            }
        };
        self.metrics.upstream_latency(started.elapsed());

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return self.switched(response, client_upgrade, upstream);
        }

        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        Response::from_parts(parts, Either::Left(body))
    }

    /// An upstream's `101 Switching Protocols`: starts the tunnel and answers the client
    /// (a `101` nobody asked for is a 502).
    fn switched(
        &self,
        mut response: Response<UpstreamBody>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        upstream: &Upstream,
    ) -> Response<ResponseBody> {
        let Some(client_upgrade) = client_upgrade else {
            tracing::warn!(%upstream, "upstream switched protocols without being asked");
            return local(
                StatusCode::BAD_GATEWAY,
                "upstream switched protocols unasked\n",
            );
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        self.tunnel(client_upgrade, upstream_upgrade, upstream);
        let upgrade_to = response.headers().get(header::UPGRADE).cloned();
        let (mut parts, body) = response.into_parts();
        body.into_detached();
        remove_hop_by_hop(&mut parts.headers);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(protocol) = upgrade_to {
            parts.headers.insert(header::UPGRADE, protocol);
        }
        Response::from_parts(parts, Either::Right(Full::new(Bytes::new())))
    }

    /// Copies bytes both ways between the upgraded client and upstream connections
    /// until either side closes or the hard stop.
    fn tunnel(
        &self,
        client: hyper::upgrade::OnUpgrade,
        server: hyper::upgrade::OnUpgrade,
        upstream: &Upstream,
    ) {
        let upstream = upstream.to_string();
        let hard_stop = self.hard_stop.clone();
        self.tunnels.spawn(async move {
            let (client, server) = tokio::join!(client, server);
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
    }
}

/// The answer when the upstream request failed before response headers.
fn failed(error: &SendError, upstream: &Upstream) -> Response<ResponseBody> {
    if caused_by::<LengthLimitError>(error) {
        return local(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    tracing::warn!(
        %upstream,
        error = %ErrorChain(error),
        "upstream request failed"
    );
    if matches!(error, SendError::ConnectTimeout) {
        local(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
    } else {
        local(StatusCode::BAD_GATEWAY, "upstream unavailable\n")
    }
}

/// A small plain-text response made by the proxy itself.
pub(crate) fn local(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The host a request is for, without port or trailing dot (case as sent): from the
/// request target (HTTP/2 `:authority`, absolute-form) or else the Host header.
/// `None` when there is none or it is not a valid `host[:port]`.
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<&str> {
    let host = match req.uri().authority() {
        Some(authority) => authority.host(),
        None => host_of(req.headers().get(header::HOST)?.to_str().ok()?)?,
    };
    let host = host.trim_end_matches('.');
    (!host.is_empty()).then_some(host)
}

/// The host part of a Host header value, `uri-host [":" port]` (RFC 9110 §7.2); IPv6
/// literals keep their brackets.
fn host_of(value: &str) -> Option<&str> {
    let (host, port) = if value.starts_with('[') {
        let end = value.find(']')? + 1;
        let (literal, rest) = value.split_at(end);
        let inside = &literal[1..end - 1];
        if inside.is_empty()
            || !inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b":.".contains(&b))
        {
            return None;
        }
        (literal, rest.strip_prefix(':'))
    } else {
        let (host, port) = match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        };
        // reg-name: unreserved, percent-encoded and sub-delims characters.
        let reg_name = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b));
        if !reg_name {
            return None;
        }
        (host, port)
    };
    match port {
        Some(port) if !port.bytes().all(|b| b.is_ascii_digit()) => None,
        None if host.len() < value.len() => None,
        _ => Some(host),
    }
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

/// `Upgrade: websocket` when an HTTP/1.1 request asks to switch to WebSocket
/// (RFC 9110 §7.8, RFC 6455 §4.1), the only protocol tunnelled.
///
/// Any other upgrade is ignored, as RFC 9110 §7.8 lets a server do: the `Upgrade`
/// header goes with the other hop-by-hop headers and the request is forwarded as
/// plain HTTP/1.1, so a client offering `h2c` carries on with HTTP/1.1. Tunnelling it
/// would hand the client a raw connection to the upstream past the proxy's routing
/// and headers ("h2c smuggling"); answering 400 would break clients that offer an
/// upgrade only opportunistically.
fn upgrade_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let asks = connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"));
    if !asks {
        return None;
    }
    // A protocol is `name[/version]` (RFC 9110 §7.8); WebSocket names no version.
    let websocket = req
        .headers()
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(tokens)
        .any(|protocol| protocol.eq_ignore_ascii_case("websocket"));
    websocket.then(|| HeaderValue::from_static("websocket"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(tokens)
}

/// The non-empty items of a comma-separated header value.
fn tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Removes the headers that describe one connection rather than the message
/// (RFC 9110 §7.6.1), including any the Connection header names.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Usually there is nothing to remove; find that out without hashing every name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(&name)) {
        return;
    }
    let mut value = 0;
    while let Some(connection) = headers
        .get_all(header::CONNECTION)
        .iter()
        .nth(value)
        .cloned()
    {
        value += 1;
        let Ok(connection) = connection.to_str() else {
            continue;
        };
        for token in tokens(connection) {
            let protected = token.eq_ignore_ascii_case("connection")
                || PROTECTED
                    .iter()
                    .any(|name| token.eq_ignore_ascii_case(name.as_str()));
            if !protected {
                headers.remove(token);
            }
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Tells the upstream who asked and how: `X-Forwarded-For`, `-Proto`, `-Host`,
/// `-Port`, `X-Real-IP` and the standard `Forwarded` (RFC 7239 §4).
///
/// The proxy is the edge unless told otherwise: what a client sent in these headers is
/// replaced with what the proxy saw (and `X-Forwarded-Prefix` dropped), so a client
/// cannot pick the address an app logs, allow-lists or rate-limits. From a trusted
/// proxy ([`TrustedProxies`]) `X-Forwarded-For` and `Forwarded` are appended to and the
/// others kept when present, as Traefik's `forwardedHeaders.trustedIPs` and Caddy's
/// `trusted_proxies` do.
fn set_forwarding_headers(headers: &mut HeaderMap, peer: &Peer) {
    if !peer.trusted {
        for name in FORWARDING {
            headers.remove(name);
        }
    }
    let xff = match joined(headers, &X_FORWARDED_FOR) {
        Some(previous) => text_value(format!("{previous}, {}", peer.addr.ip().to_canonical())),
        None => Some(peer.forwarded_for.clone()),
    };
    if let Some(xff) = xff {
        headers.insert(&X_FORWARDED_FOR, xff);
    }
    let host = headers.get(header::HOST).cloned();

    // A host with a port is not a token, so it is quoted (RFC 7239 §4).
    let host_text = host.as_ref().and_then(|h| h.to_str().ok());
    let mut element =
        String::with_capacity(peer.forwarded_element.len() + host_text.map_or(0, |h| h.len() + 8));
    element.push_str(&peer.forwarded_element);
    if let Some(host) = host_text {
        element.push_str(";host=");
        push_quoted_if_needed(&mut element, host);
    }
    let forwarded = match joined(headers, &FORWARDED) {
        Some(previous) => format!("{previous}, {element}"),
        None => element,
    };
    if let Some(forwarded) = text_value(forwarded) {
        headers.insert(&FORWARDED, forwarded);
    }

    // The port the client asked for: the Host's, else its scheme's default (as Traefik
    // does), which is right behind port mapping where the bound port is not.
    let port = match host_text.and_then(port_of) {
        Some(port) => HeaderValue::from_str(port).ok(),
        None if peer.https => Some(HeaderValue::from_static("443")),
        None => Some(HeaderValue::from_static("80")),
    };
    let ours = [
        (
            &X_FORWARDED_PROTO,
            Some(HeaderValue::from_static(peer.proto())),
        ),
        (&X_FORWARDED_HOST, host),
        (&X_FORWARDED_PORT, port),
        (&X_REAL_IP, Some(peer.forwarded_for.clone())),
    ];
    for (name, value) in ours {
        let Some(value) = value else { continue };
        if peer.trusted {
            headers.entry(name).or_insert(value);
        } else {
            headers.insert(name, value);
        }
    }
}

/// The port of a Host header value, `uri-host [":" port]`, when it has one.
fn port_of(host: &str) -> Option<&str> {
    let after_host = match host.strip_prefix('[') {
        Some(literal) => &literal[literal.find(']')? + 1..],
        None => host,
    };
    let (_, port) = after_host.split_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}

/// Sets `Host` to `authority` without any `userinfo@` (RFC 9110 §7.2: Host is
/// `uri-host [":" port]`).
fn set_host(headers: &mut HeaderMap, authority: Option<&Authority>) {
    let host = authority.map(|a| a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, h)| h));
    if let Some(value) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(header::HOST, value);
    }
}

/// All values of a header joined with `", "`, if it is present and textual.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
    let mut out = values.next()?.to_owned();
    for value in values {
        out.push_str(", ");
        out.push_str(value);
    }
    Some(out)
}

/// A header value made from `text` without copying it, if it is a valid value.
fn text_value(text: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(text)).ok()
}

fn push_quoted_if_needed(out: &mut String, value: &str) {
    let is_token = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if is_token {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
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

    /// A header map with these fields, in this order.
    fn header_map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for &(name, value) in fields {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    /// The names of `fields` left after removing hop-by-hop headers, sorted.
    fn end_to_end(fields: &[(&'static str, &'static str)]) -> Vec<String> {
        let mut headers = header_map(fields);
        remove_hop_by_hop(&mut headers);
        let mut left: Vec<String> = headers.keys().map(|n| n.as_str().to_owned()).collect();
        left.sort_unstable();
        left
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let left = end_to_end(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
            ("content-length", "3"),
        ]);
        assert_eq!(left, ["accept", "content-length"]);
    }

    #[test]
    fn connection_cannot_name_host_or_forwarding_headers_away() {
        let left = end_to_end(&[
            (
                "connection",
                "Host, X-Forwarded-For, forwarded, X-Real-IP, x-forwarded-host, x-other",
            ),
            ("host", "www.example.com"),
            ("x-forwarded-for", "192.0.2.1"),
            ("forwarded", "for=192.0.2.1"),
            ("x-real-ip", "192.0.2.1"),
            ("x-forwarded-host", "www.example.com"),
            ("x-other", "1"),
        ]);
        assert_eq!(
            left,
            [
                "forwarded",
                "host",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-real-ip"
            ]
        );
    }

    fn spoofed() -> HeaderMap {
        header_map(&[
            ("host", "example.com:8443"),
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "admin.internal"),
            ("x-forwarded-port", "8080"),
            ("x-forwarded-prefix", "/admin"),
        ])
    }

    #[test]
    fn forwarding_headers_from_untrusted_peers_are_replaced_with_what_the_proxy_saw() {
        let mut headers = spoofed();
        let peer = Peer::new(
            "[::ffff:192.0.2.7]:5000".parse().unwrap(),
            true,
            &TrustedProxies::none(),
        );
        set_forwarding_headers(&mut headers, &peer);
        assert_eq!(headers[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(headers[&X_REAL_IP], "192.0.2.7");
        assert_eq!(headers[&X_FORWARDED_PROTO], "https");
        assert_eq!(headers[&X_FORWARDED_HOST], "example.com:8443");
        assert_eq!(headers[&X_FORWARDED_PORT], "8443");
        assert!(!headers.contains_key(&X_FORWARDED_PREFIX));
        assert_eq!(
            headers[&FORWARDED],
            "for=192.0.2.7;proto=https;host=\"example.com:8443\""
        );
        // A trusted range that does not hold the peer changes nothing.
        let mut headers = spoofed();
        let elsewhere: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let peer = Peer::new("192.0.2.7:5000".parse().unwrap(), true, &elsewhere);
        set_forwarding_headers(&mut headers, &peer);
        assert_eq!(headers[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(headers[&X_FORWARDED_HOST], "example.com:8443");
    }

    #[test]
    fn forwarding_headers_from_trusted_proxies_are_kept_and_appended_to() {
        let mut headers = spoofed();
        let trusted: TrustedProxies = "192.0.2.0/24".parse().unwrap();
        let peer = Peer::new("[::ffff:192.0.2.7]:5000".parse().unwrap(), true, &trusted);
        set_forwarding_headers(&mut headers, &peer);
        assert_eq!(headers[&X_FORWARDED_FOR], "203.0.113.9, 192.0.2.7");
        assert_eq!(
            headers[&FORWARDED],
            "for=203.0.113.9, for=192.0.2.7;proto=https;host=\"example.com:8443\""
        );
        assert_eq!(headers[&X_REAL_IP], "203.0.113.9");
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");
        assert_eq!(headers[&X_FORWARDED_HOST], "admin.internal");
        assert_eq!(headers[&X_FORWARDED_PORT], "8080");
        assert_eq!(headers[&X_FORWARDED_PREFIX], "/admin");
        // What the trusted proxy did not say, the proxy fills in.
        let mut bare = HeaderMap::new();
        bare.insert(header::HOST, HeaderValue::from_static("example.com"));
        set_forwarding_headers(&mut bare, &peer);
        assert_eq!(bare[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(bare[&X_REAL_IP], "192.0.2.7");
        assert_eq!(bare[&X_FORWARDED_PROTO], "https");
        assert_eq!(bare[&X_FORWARDED_PORT], "443");

        let mut v6 = HeaderMap::new();
        v6.insert(header::HOST, HeaderValue::from_static("example.com"));
        let peer = Peer::new(
            "[2001:db8::1]:5000".parse().unwrap(),
            false,
            &TrustedProxies::none(),
        );
        set_forwarding_headers(&mut v6, &peer);
        assert_eq!(v6[&X_FORWARDED_PORT], "80");
        assert_eq!(
            v6[&FORWARDED],
            "for=\"[2001:db8::1]\";proto=http;host=example.com"
        );
    }

    /// The host `request_host` reads from a request for `uri` with this Host header.
    fn host_of(uri: &str, host: Option<&str>) -> Option<String> {
        let mut req = Request::builder().uri(uri);
        if let Some(host) = host {
            req = req.header("host", host);
        }
        request_host(&req.body(()).unwrap()).map(str::to_owned)
    }

    #[test]
    fn request_host_prefers_the_target_and_drops_port_and_trailing_dot() {
        let host = |uri, host| host_of(uri, Some(host));
        assert_eq!(
            host("https://WWW.Example.com:8443/x", "other.org").as_deref(),
            Some("WWW.Example.com")
        );
        assert_eq!(
            host("/x", "Example.com.:80").as_deref(),
            Some("Example.com")
        );
        assert_eq!(
            host("/x", "[2001:db8::1]:8443").as_deref(),
            Some("[2001:db8::1]")
        );
        assert_eq!(host_of("/x", None), None);
        for bad in [
            "bad host",
            "a:b",
            "[zz]",
            "[::1]x",
            "[]",
            "user@host",
            ":80",
            ".",
        ] {
            assert_eq!(host("/x", bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarding_headers_quote_hosts_that_are_not_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("[::1]:8443"));
        let peer = Peer::new(
            "127.0.0.1:5000".parse().unwrap(),
            true,
            &TrustedProxies::none(),
        );
        set_forwarding_headers(&mut headers, &peer);
        assert_eq!(
            headers[&FORWARDED],
            "for=127.0.0.1;proto=https;host=\"[::1]:8443\""
        );
        assert_eq!(headers[&X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(headers[&X_FORWARDED_HOST], "[::1]:8443");
        assert_eq!(headers[&X_FORWARDED_PORT], "8443");

        let mut without_host = HeaderMap::new();
        without_host.insert(&X_FORWARDED_HOST, HeaderValue::from_static("spoofed"));
        set_forwarding_headers(&mut without_host, &peer);
        assert_eq!(without_host[&FORWARDED], "for=127.0.0.1;proto=https");
        assert!(!without_host.contains_key(&X_FORWARDED_HOST));
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

    #[test]
    fn only_websocket_upgrades_are_tunnelled() {
        let upgrade = |protocol: &'static str| {
            let req = Request::builder()
                .header("connection", "Upgrade")
                .header("upgrade", protocol)
                .body(())
                .unwrap();
            upgrade_protocol(&req)
        };
        assert_eq!(upgrade("WebSocket").unwrap(), "websocket");
        assert_eq!(upgrade("h2c, websocket").unwrap(), "websocket");
        for other in ["h2c", "TLS/1.2", "HTTP/2.0", "websocketx", "IRC/6.9"] {
            assert!(upgrade(other).is_none(), "{other}");
        }
    }
}
