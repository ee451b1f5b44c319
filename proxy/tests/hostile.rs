//! Requests built to make the proxy route, address or hold resources other than it
//! means to (issue 17): misdirected hosts, dot-segment paths, stream and connection
//! floods, PROXY protocol headers. Real TLS clients and raw bytes on the wire.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use berth_proxy::{CertSource, Limits, Proxy, Route, Routes, Upstream};
use http_body_util::BodyExt;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    ca: TestCa,
    proxy: Running,
    upstream: support::Upstream,
}

/// A proxy serving `www.example.com` (serial 1), `*.example.com` (2) and
/// `other.example.net` (3), every request routed to the test upstream.
async fn fixture(
    limits: Limits,
    configure: impl FnOnce(berth_proxy::ProxyBuilder, &support::Upstream) -> berth_proxy::ProxyBuilder,
) -> Fixture {
    let ca = TestCa::new();
    let certs = cert_set(&[
        &ca.leaf(&["www.example.com"], 1),
        &ca.leaf(&["*.example.com"], 2),
        &ca.leaf(&["other.example.net"], 3),
    ]);
    let upstream = start_upstream().await;
    let builder = Proxy::builder()
        .routes(Routes::single(Upstream::parse(&upstream.url()).unwrap()))
        .cert_source(CertSource::Static(certs))
        .limits(limits);
    let proxy = start_proxy(configure(builder, &upstream)).await;
    Fixture {
        ca,
        proxy,
        upstream,
    }
}

impl Fixture {
    async fn tls(&self, sni: &str) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        tls_connect(
            self.proxy.tls,
            sni,
            client_config(&self.ca.pem, &[b"http/1.1"]),
        )
        .await
        .unwrap()
    }

    async fn h2(
        &self,
        sni: &str,
    ) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>> {
        let stream = tls_connect(self.proxy.tls, sni, client_config(&self.ca.pem, &[b"h2"]))
            .await
            .unwrap();
        http2(stream).await
    }

    /// Writes `request` as raw bytes on a new connection for `sni` and reads the whole
    /// answer (the request asks the proxy to close).
    async fn raw(&self, sni: &str, request: &str) -> String {
        let mut tls = self.tls(sni).await;
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut answer))
            .await
            .expect("the proxy answered and closed in time");
        String::from_utf8_lossy(&answer).into_owned()
    }
}

/// `GET <target>` with `Host: <host>` and `Connection: close`.
fn raw_get(target: &str, host: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn absolute_form_requests_reach_the_upstream_with_the_targets_host() {
    let f = fixture(Limits::default(), |b, _| b).await;
    let answer = f
        .raw(
            "www.example.com",
            &raw_get("https://www.example.com/headers", "evil.example.org"),
        )
        .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("host: www.example.com\n"), "{answer}");
    assert!(!answer.contains("evil.example.org"), "{answer}");
    // userinfo is not part of a Host.
    let answer = f
        .raw(
            "www.example.com",
            &raw_get("https://user@www.example.com/headers", "www.example.com"),
        )
        .await;
    assert!(answer.contains("host: www.example.com\n"), "{answer}");
    assert!(!answer.contains("user@"), "{answer}");
}

#[tokio::test]
async fn http2_requests_with_a_host_header_beside_authority_forward_the_authority() {
    let f = fixture(Limits::default(), |b, _| b).await;
    let mut h2 = f.h2("www.example.com").await;
    let request = http::Request::builder()
        .uri("https://www.example.com/headers")
        .header("host", "evil.example.org")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = h2.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = response.into_body().collect().await.unwrap().to_bytes();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("host: www.example.com\n"), "{seen}");
    assert!(!seen.contains("evil.example.org"), "{seen}");
}

#[tokio::test]
async fn paths_with_dot_segments_are_refused_before_prefix_routes_match() {
    let admin = start_upstream().await;
    // `/api` goes to the test upstream, `/admin` to one that must never be reached
    // through `/api`.
    let admin_url = admin.url();
    let f = fixture(Limits::default(), |b, api| {
        b.routes(
            Routes::new()
                .with(Route::new(Upstream::parse(&admin_url).unwrap()).path_prefix("/admin"))
                .with(Route::new(Upstream::parse(&api.url()).unwrap()).path_prefix("/api")),
        )
    })
    .await;
    for path in [
        "/api/../admin/headers",
        "/api/./../admin/headers",
        "/api/%2e%2e/admin/headers",
        "/api/%2E%2e/admin/headers",
        "/api/..%2fadmin/headers",
        "/api%2f..%2fadmin/headers",
        "/api/..;/admin/headers",
        "/api/..%5cadmin/headers",
    ] {
        let answer = f
            .raw("www.example.com", &raw_get(path, "www.example.com"))
            .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("dot-segment"), "{path}: {answer}");
    }
    assert_eq!(
        admin
            .control
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a dot-segment path reached the admin upstream"
    );
    // Dots inside names and encoded slashes alone still pass.
    for path in ["/api/v1.2/file..txt", "/api/a%2fb", "/api/.well-known"] {
        let answer = f
            .raw("www.example.com", &raw_get(path, "www.example.com"))
            .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
    }
}
