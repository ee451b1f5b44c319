//! The plain-HTTP listener and the reverse proxy, driven by real clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_certs::challenge::Http01Responder;
use berth_proxy::{CertSource, Limits, Proxy, Route, Routes, TrustedProxies, Upstream};
use http_body_util::BodyExt;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WWW: &str = "www.example.com";

/// A proxy for `www.example.com` in front of the test upstream, with these limits.
async fn fixture(
    limits: Limits,
    configure: impl FnOnce(berth_proxy::ProxyBuilder) -> berth_proxy::ProxyBuilder,
) -> Fixture {
    Fixture::start(limits, &[(&[WWW], 1)], |b, _| configure(b)).await
}

impl Fixture {
    async fn client(
        &self,
    ) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
        http1(self.tls(WWW).await).await
    }
}

#[tokio::test]
async fn plain_http_answers_challenges_and_redirects_everything_else_with_308() {
    let http01 = Http01Responder::new();
    http01.insert("tok123", "tok123.thumbprint");
    let f = fixture(Limits::default(), |b| {
        b.http01(http01.clone()).hsts(Duration::from_secs(600))
    })
    .await;
    let mut plain = http1(tokio::net::TcpStream::connect(f.proxy.http).await.unwrap()).await;

    let (status, headers, body) = send(
        &mut plain,
        get("www.example.com", "/.well-known/acme-challenge/tok123"),
    )
    .await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "tok123.thumbprint"));
    assert!(!headers.contains_key("strict-transport-security"));
    let (status, _, _) = send(
        &mut plain,
        get("www.example.com", "/.well-known/acme-challenge/other"),
    )
    .await;
    assert_eq!(status, 404);

    let (status, headers, _) = send(&mut plain, get("www.example.com:80", "/a/b?c=d")).await;
    assert_eq!(status, 308);
    assert_eq!(
        headers["location"],
        format!("https://www.example.com:{}/a/b?c=d", f.proxy.tls.port()).as_str()
    );
    assert!(!headers.contains_key("strict-transport-security"));

    // curl follows the redirect to the HTTPS side and reaches the upstream.
    let curl = berth_tests::require_tool("curl", "curl");
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &f.ca.pem).unwrap();
    let resolve_http = format!("www.example.com:{}:127.0.0.1", f.proxy.http.port());
    let resolve_tls = format!("www.example.com:{}:127.0.0.1", f.proxy.tls.port());
    let url = format!("http://www.example.com:{}/", f.proxy.http.port());
    let (ok, stdout, stderr) = run_tool(
        &curl,
        &[
            "-sS",
            "-L",
            "-D",
            "-",
            "--cacert",
            ca_file.path().to_str().unwrap(),
            "--resolve",
            &resolve_http,
            "--resolve",
            &resolve_tls,
            &url,
        ],
    )
    .await;
    assert!(ok, "curl failed: {stderr}");
    assert!(stdout.starts_with("HTTP/1.1 308"), "{stdout}");
    assert!(
        stdout.contains("strict-transport-security: max-age=600"),
        "{stdout}"
    );
    assert!(stdout.ends_with("hello from upstream\n"), "{stdout}");
}

/// A request claiming, in every forwarding header, to come from 203.0.113.9 through
/// another proxy.
fn spoofing(path: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::builder()
        .uri(path)
        .header("host", "www.example.com")
        .header("x-forwarded-for", "203.0.113.9")
        .header("forwarded", "for=203.0.113.9")
        .header("x-real-ip", "203.0.113.9")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "admin.internal")
        .header("x-forwarded-port", "8080")
        .header("x-forwarded-prefix", "/admin")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_stripped() {
    let f = fixture(Limits::default(), |b| b).await;
    let mut client = f.client().await;
    let mut request = spoofing("/headers");
    for (name, value) in [
        ("connection", "x-custom-hop"),
        ("x-custom-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("x-end-to-end", "kept"),
    ] {
        request
            .headers_mut()
            .insert(name, http::HeaderValue::from_static(value));
    }
    let (status, headers, seen) = send(&mut client, request).await;
    assert_eq!(status, 200);
    let seen = seen.to_ascii_lowercase();
    // berth is the edge: what the client claimed is replaced with what berth saw.
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\n"), "{seen}");
    assert!(seen.contains("x-real-ip: 127.0.0.1\n"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: https\n"), "{seen}");
    assert!(
        seen.contains("x-forwarded-host: www.example.com\n"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-port: 443\n"), "{seen}");
    assert!(
        seen.contains("forwarded: for=127.0.0.1;proto=https;host=www.example.com\n"),
        "{seen}"
    );
    for spoofed in [
        "203.0.113.9",
        "admin.internal",
        "8080",
        "x-forwarded-prefix",
    ] {
        assert!(
            !seen.contains(spoofed),
            "{spoofed} reached the upstream: {seen}"
        );
    }
    assert!(seen.contains("host: www.example.com\n"), "{seen}");
    assert!(seen.contains("x-end-to-end: kept\n"), "{seen}");
    for hop in ["x-custom-hop", "keep-alive", "proxy-authorization"] {
        assert!(
            !seen.contains(&format!("{hop}:")),
            "{hop} reached the upstream: {seen}"
        );
    }
    // No HSTS unless configured.
    assert!(!headers.contains_key("strict-transport-security"));

    // The upstream's own hop-by-hop headers do not reach the client.
    let (status, headers, body) = send(&mut client, get("www.example.com", "/")).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "hello from upstream\n")
    );
    assert_eq!(headers["x-kept"], "1");
    assert!(!headers.contains_key("x-drop-me"));
    assert!(!headers.contains_key("keep-alive"));
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_are_kept_and_appended_to() {
    let loopback: TrustedProxies = "127.0.0.0/8, ::1".parse().unwrap();
    let f = fixture(Limits::default(), |b| b.trusted_proxies(loopback)).await;
    let mut client = f.client().await;
    let (status, _, seen) = send(&mut client, spoofing("/headers")).await;
    assert_eq!(status, 200);
    let seen = seen.to_ascii_lowercase();
    for expected in [
        "x-forwarded-for: 203.0.113.9, 127.0.0.1\n",
        "forwarded: for=203.0.113.9, for=127.0.0.1;proto=https;host=www.example.com\n",
        "x-real-ip: 203.0.113.9\n",
        "x-forwarded-proto: http\n",
        "x-forwarded-host: admin.internal\n",
        "x-forwarded-port: 8080\n",
        "x-forwarded-prefix: /admin\n",
        "host: www.example.com\n",
    ] {
        assert!(seen.contains(expected), "{expected}{seen}");
    }

    // A trusted list that does not hold the peer trusts nothing.
    let elsewhere: TrustedProxies = "10.0.0.0/8".parse().unwrap();
    let f = fixture(Limits::default(), |b| b.trusted_proxies(elsewhere)).await;
    let mut client = f.client().await;
    let (_, _, seen) = send(&mut client, spoofing("/headers")).await;
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\n"), "{seen}");
    assert!(!seen.contains("203.0.113.9"), "{seen}");
}

#[tokio::test]
async fn connection_header_cannot_strip_host_or_forwarding_headers() {
    let f = fixture(Limits::default(), |b| b).await;
    let mut client = f.client().await;
    let request = http::Request::builder()
        .uri("/headers")
        .header("host", "www.example.com")
        .header(
            "connection",
            "Host, X-Forwarded-Host, X-Forwarded-For, Forwarded, X-Real-IP",
        )
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let (status, _, seen) = send(&mut client, request).await;
    assert_eq!(status, 200);
    let seen = seen.to_ascii_lowercase();
    for expected in [
        "host: www.example.com\n",
        "x-forwarded-host: www.example.com\n",
        "x-forwarded-for: 127.0.0.1\n",
        "forwarded: for=127.0.0.1;proto=https;host=www.example.com\n",
        "x-real-ip: 127.0.0.1\n",
    ] {
        assert!(seen.contains(expected), "{expected}{seen}");
    }
}

#[tokio::test]
async fn upgrades_other_than_websocket_are_forwarded_as_plain_requests() {
    let f = fixture(Limits::default(), |b| b).await;
    let mut client = f.client().await;
    let request = http::Request::builder()
        .uri("/headers")
        .header("host", "www.example.com")
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let (status, _, seen) = send(&mut client, request).await;
    assert_eq!(status, 200);
    let seen = seen.to_ascii_lowercase();
    for dropped in ["upgrade:", "connection:", "http2-settings:"] {
        assert!(
            !seen.contains(dropped),
            "{dropped} reached the upstream: {seen}"
        );
    }
    // The connection is still plain HTTP/1.1 and carries the next request.
    let (status, _, body) = send(&mut client, get("www.example.com", "/")).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "hello from upstream\n")
    );
}

#[tokio::test]
async fn http10_requests_without_host_reach_the_upstream_with_its_own_host() {
    let f = fixture(Limits::default(), |b| b).await;
    let mut tls = f.tls(WWW).await;
    tls.write_all(b"GET /headers HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, tls.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    // HTTP/1.1 needs a Host; without one from the client, the upstream's is sent.
    let host = format!("host: {}\n", f.upstream.addr);
    assert!(answer.contains(&host), "{answer}");
    assert!(
        answer.contains("forwarded: for=127.0.0.1;proto=https\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn http2_requests_reach_the_upstream_with_their_authority_as_host() {
    let f = fixture(Limits::default(), |b| b).await;
    let mut h2 = f.h2(WWW).await;
    let authority = format!("www.example.com:{}", f.proxy.tls.port());
    let request = http::Request::builder()
        .uri(format!("https://{authority}/headers"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = h2.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = response.into_body().collect().await.unwrap().to_bytes();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("GET /headers\n"), "{seen}");
    assert!(seen.contains(&format!("host: {authority}\n")), "{seen}");
    assert!(
        seen.contains(&format!("x-forwarded-host: {authority}\n")),
        "{seen}"
    );
}

#[tokio::test]
async fn upstream_down_is_502_upstream_silence_is_504_and_no_route_is_404() {
    let mut limits = Limits::default();
    limits.upstream_timeout = Duration::from_millis(300);
    let ca = TestCa::new();
    let www = ca.leaf(&["www.example.com"], 1);
    let upstream = start_upstream().await;
    let dead = format!("http://127.0.0.1:{}", berth_tests::free_port());
    let routes = Routes::new()
        .with(Route::new(Upstream::parse(&upstream.url()).unwrap()).host("www.example.com"))
        .with(
            Route::new(Upstream::parse(&dead).unwrap())
                .host("www.example.com")
                .path_prefix("/down"),
        );
    let proxy = start_proxy(
        Proxy::builder()
            .routes(routes)
            .cert_source(CertSource::Static(cert_set(&[&www])))
            .limits(limits),
    )
    .await;
    let stream = tls_connect(
        proxy.tls,
        "www.example.com",
        client_config(&ca.pem, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let mut client = http1(stream).await;

    let (status, _, body) = send(&mut client, get("www.example.com", "/down/x")).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (502, "upstream unavailable\n")
    );
    let (status, _, body) = send(&mut client, get("www.example.com", "/hang")).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (504, "upstream timed out\n")
    );
    let (status, _, _) = send(&mut client, get("other.example.com", "/")).await;
    assert_eq!(status, 404);
    // The connection survived all three and still forwards.
    let (status, _, _) = send(&mut client, get("www.example.com", "/")).await;
    assert_eq!(status, 200);
    let counts = proxy.metrics.snapshot().responses_by_class;
    assert_eq!((counts[2], counts[4], counts[5]), (1, 1, 2));
}

#[tokio::test]
async fn slow_clients_are_cut_off_after_the_header_timeout() {
    let mut limits = Limits::default();
    limits.header_timeout = Duration::from_millis(300);
    let f = fixture(limits, |b| b).await;

    // Slowloris: a request head that never ends.
    let mut stream = f.tls(WWW).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the proxy kept a slowloris connection open");
    assert!(
        !String::from_utf8_lossy(&received).contains(" 200 "),
        "{}",
        String::from_utf8_lossy(&received)
    );

    // A TCP connection that never starts the TLS handshake is closed too.
    let before = f.proxy.metrics.snapshot().handshake_failures;
    let mut tcp = tokio::net::TcpStream::connect(f.proxy.tls).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(DEADLINE, tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    eventually("the handshake timeout to be counted", || {
        f.proxy.metrics.snapshot().handshake_failures == before + 1
    })
    .await;

    // A client that sends its request promptly is served.
    let mut client = f.client().await;
    let (status, _, _) = send(&mut client, get("www.example.com", "/")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let mut limits = Limits::default();
    limits.max_header_bytes = 16 * 1024;
    let f = fixture(limits, |b| b).await;
    let request = |filler: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: www.example.com\r\nX-Filler: {}\r\n\r\n",
            "a".repeat(filler)
        )
    };
    let mut stream = f.tls(WWW).await;
    stream
        .write_all(request(20 * 1024).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    let mut stream = f.tls(WWW).await;
    stream
        .write_all(request(4 * 1024).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn oversized_bodies_get_413_with_or_without_a_content_length() {
    let mut limits = Limits::default();
    limits.max_body_bytes = Some(1024);
    let f = fixture(limits, |b| b).await;
    let mut client = f.client().await;
    let post = |size: usize| {
        http::Request::builder()
            .method("POST")
            .uri("/body")
            .header("host", "www.example.com")
            .body(http_body_util::Full::new(bytes::Bytes::from(vec![
                b'x';
                size
            ])))
            .unwrap()
    };
    let (status, _, body) = send(&mut client, post(512)).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "512"));
    let (status, _, _) = send(&mut client, post(2048)).await;
    assert_eq!(status, 413);

    // Chunked: the size is only known while streaming.
    let mut stream = f.tls(WWW).await;
    let chunk = "y".repeat(2048);
    let request = format!(
        "POST /body HTTP/1.1\r\nHost: www.example.com\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

#[tokio::test]
async fn websocket_upgrades_are_tunnelled_both_ways() {
    let f = fixture(Limits::default(), |b| b).await;
    let mut stream = f.tls(WWW).await;
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: www.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    for message in ["hello berth", "second frame"] {
        write_ws_frame(&mut stream, message.as_bytes(), true).await;
        let echoed = tokio::time::timeout(DEADLINE, read_ws_frame(&mut stream))
            .await
            .unwrap()
            .expect("an echoed frame");
        assert_eq!(echoed, message.as_bytes());
    }
}

#[tokio::test]
async fn response_bodies_stream_before_the_upstream_finishes() {
    let f = fixture(Limits::default(), |b| b).await;
    let mut client = f.client().await;
    let response = tokio::time::timeout(
        DEADLINE,
        client.send_request(get("www.example.com", "/stream")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // The upstream holds the rest until released, so this chunk can only arrive if the
    // proxy passes it on without waiting for the end of the body.
    let first = tokio::time::timeout(DEADLINE, body.frame())
        .await
        .expect("first chunk before the upstream finished")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");
    f.upstream.control.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second\n");
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused_across_clients() {
    let f = fixture(Limits::default(), |b| b).await;
    for _ in 0..3 {
        let mut client = f.client().await;
        for _ in 0..5 {
            let (status, _, body) = send(&mut client, get("www.example.com", "/")).await;
            assert_eq!(
                (status.as_u16(), body.as_str()),
                (200, "hello from upstream\n")
            );
        }
    }
    // Fifteen requests from three client connections, one after another: one upstream
    // connection carried them all.
    assert_eq!(f.upstream.control.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn upstream_connections_the_upstream_closes_or_a_client_abandons_are_not_reused() {
    let f = fixture(Limits::default(), |b| b).await;
    let mut client = f.client().await;
    let connections = || f.upstream.control.connections.load(Ordering::SeqCst);

    // The upstream says `Connection: close`; the client's connection stays open and
    // the next request gets a new upstream connection.
    let (status, headers, body) = send(&mut client, get("www.example.com", "/close")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "closing"));
    assert!(headers.get("connection").is_none());
    let (status, _, _) = send(&mut client, get("www.example.com", "/")).await;
    assert_eq!(status, 200);
    assert_eq!(connections(), 2);

    // A client that leaves in the middle of a body: that upstream connection still
    // owes the rest of the body, so it must not carry the next request.
    let mut leaving = f.client().await;
    let response = tokio::time::timeout(
        DEADLINE,
        leaving.send_request(get("www.example.com", "/stream")),
    )
    .await
    .unwrap()
    .unwrap();
    let mut body = response.into_body();
    let first = tokio::time::timeout(DEADLINE, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");
    drop(body);
    drop(leaving);
    for _ in 0..3 {
        let (status, _, body) = send(&mut client, get("www.example.com", "/")).await;
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "hello from upstream\n")
        );
    }
    // /close's connection, the one reused after it (busy with /stream, then given
    // up), and one new one for the last three requests.
    assert_eq!(connections(), 3);
    f.upstream.control.release.notify_one();
}

#[tokio::test]
async fn idle_http2_connections_are_closed_after_the_idle_timeout() {
    let mut limits = Limits::default();
    limits.idle_timeout = Duration::from_millis(300);
    let f = fixture(limits, |b| b).await;
    let mut h2 = f.h2(WWW).await;
    let request = http::Request::builder()
        .uri(format!("https://www.example.com:{}/", f.proxy.tls.port()))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = h2.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    eventually("the idle HTTP/2 connection to be closed", || h2.is_closed()).await;
    eventually("the connection to be released", || {
        f.proxy.metrics.snapshot().connections_active == 0
    })
    .await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let mut limits = Limits::default();
    limits.max_connections = 1;
    let f = fixture(limits, |b| b).await;
    let mut first = f.client().await;
    let (status, _, _) = send(&mut first, get("www.example.com", "/")).await;
    assert_eq!(status, 200);

    let (addr, config) = (f.proxy.tls, client_config(&f.ca.pem, &[b"http/1.1"]));
    let second = tokio::spawn(async move { tls_connect(addr, "www.example.com", config).await });
    // While the first connection holds the only slot, the second is not even accepted.
    let (status, _, _) = send(&mut first, get("www.example.com", "/")).await;
    assert_eq!(status, 200);
    assert!(
        !second.is_finished(),
        "a second connection was served beyond the limit"
    );
    assert_eq!(f.proxy.metrics.snapshot().connections_total, 1);

    drop(first);
    let second = tokio::time::timeout(DEADLINE, second)
        .await
        .unwrap()
        .unwrap();
    let mut second = http1(second.expect("served once the slot was free")).await;
    let (status, _, _) = send(&mut second, get("www.example.com", "/")).await;
    assert_eq!(status, 200);
    assert_eq!(f.proxy.metrics.snapshot().connections_total, 2);
}
