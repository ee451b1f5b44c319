//! Requests built to make the proxy route, address or hold resources other than it
//! means to (issue 17): misdirected hosts, dot-segment paths, stream and connection
//! floods, PROXY protocol headers. Real TLS clients and raw bytes on the wire.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use berth_proxy::{Limits, Route, Routes, Upstream};
use http_body_util::BodyExt;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A proxy serving `www.example.com` (serial 1), `*.example.com` (2) and
/// `other.example.net` (3), every request routed to the test upstream.
async fn fixture(
    limits: Limits,
    configure: impl FnOnce(berth_proxy::ProxyBuilder, &support::Upstream) -> berth_proxy::ProxyBuilder,
) -> Fixture {
    Fixture::start(
        limits,
        &[
            (&["www.example.com"], 1),
            (&["*.example.com"], 2),
            (&["other.example.net"], 3),
        ],
        configure,
    )
    .await
}

impl Fixture {
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

#[tokio::test]
async fn http2_streams_share_a_capped_number_of_upstream_connections() {
    let mut limits = Limits::default();
    limits.max_upstream_connections = 2;
    let f = fixture(limits, |b, _| b).await;
    let h2 = f.h2("www.example.com").await;
    // Eight streams at once, each held at the upstream until released: without a cap
    // each would open an upstream connection of its own.
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let mut h2 = h2.clone();
            tokio::spawn(async move {
                let request = http::Request::builder()
                    .uri("https://www.example.com/gate")
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                let response = h2.send_request(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, body)
            })
        })
        .collect();
    let control = std::sync::Arc::clone(&f.upstream.control);
    let releaser = tokio::spawn(async move {
        loop {
            control.release.notify_one();
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    for request in requests {
        let (status, body) = tokio::time::timeout(DEADLINE, request)
            .await
            .expect("every stream was answered")
            .unwrap();
        assert_eq!((status.as_u16(), &body[..]), (200, &b"gate passed"[..]));
    }
    releaser.abort();
    let opened = f
        .upstream
        .control
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=2).contains(&opened),
        "{opened} upstream connections for 8 streams with a cap of 2"
    );
}

/// An HTTP/2 connection spoken frame by frame: the client preface and an empty
/// SETTINGS frame are sent (RFC 9113 §3.4).
async fn raw_h2(f: &Fixture) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = tls_connect(
        f.proxy.tls,
        "www.example.com",
        client_config(&f.ca.pem, &[b"h2"]),
    )
    .await
    .unwrap();
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    write_frame(&mut tls, 0x4, 0, &[]).await;
    tls
}

/// Writes one frame on stream 0 (RFC 9113 §4.1).
async fn write_frame<W: tokio::io::AsyncWrite + Unpin>(
    io: &mut W,
    kind: u8,
    flags: u8,
    payload: &[u8],
) {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    io.write_all(&frame).await.unwrap();
    io.flush().await.unwrap();
}

/// Reads one frame: (type, flags, payload); `None` at the end of the connection.
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(io: &mut R) -> Option<(u8, u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    io.read_exact(&mut head).await.ok()?;
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], payload))
}

#[tokio::test]
async fn http2_connections_advertise_a_stream_limit() {
    let f = fixture(Limits::default(), |b, _| b).await;
    let mut tls = raw_h2(&f).await;
    let (kind, _, payload) = tokio::time::timeout(DEADLINE, read_frame(&mut tls))
        .await
        .unwrap()
        .expect("the server's SETTINGS");
    assert_eq!(kind, 0x4, "the server's first frame is SETTINGS");
    let max_streams = payload
        .chunks_exact(6)
        .find(|setting| setting[..2] == [0, 0x3])
        .map(|setting| u32::from_be_bytes(setting[2..].try_into().unwrap()));
    assert_eq!(max_streams, Some(128), "SETTINGS_MAX_CONCURRENT_STREAMS");
}

#[tokio::test]
async fn http2_connections_kept_busy_only_by_pings_still_idle_out() {
    let mut limits = Limits::default();
    limits.idle_timeout = std::time::Duration::from_millis(400);
    let f = fixture(limits, |b, _| b).await;
    let tls = raw_h2(&f).await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    let started = std::time::Instant::now();
    // Reads until the server says GOAWAY or closes; answers its SETTINGS.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
    let closed = tokio::spawn(async move {
        while let Some((kind, flags, _)) = read_frame(&mut reader).await {
            match kind {
                0x4 if flags & 0x1 == 0 => {
                    let _ = ack_tx.send(());
                }
                0x7 => return "goaway",
                _ => {}
            }
        }
        "closed"
    });
    // A PING every 50 ms, well inside the idle timeout, and no request.
    while !closed.is_finished() && started.elapsed() < std::time::Duration::from_secs(5) {
        if ack_rx.try_recv().is_ok() {
            write_frame(&mut writer, 0x4, 0x1, &[]).await;
        }
        write_frame(&mut writer, 0x6, 0, &[0, 1, 2, 3, 4, 5, 6, 7]).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        closed.is_finished(),
        "a connection sending only PINGs was still open after 5 s (idle timeout 400 ms)"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    eventually("the connection to be released", || {
        f.proxy.metrics.snapshot().connections_active == 0
    })
    .await;
}

#[tokio::test]
async fn a_host_naming_another_certificate_than_the_sni_gets_421() {
    let f = fixture(Limits::default(), |b, _| b).await;
    // SNI www.example.com (its own certificate); Host names the wildcard's or another
    // certificate's: the client is on the wrong connection for that name.
    for host in [
        "api.example.com",
        "other.example.net",
        "OTHER.example.net:443",
    ] {
        let answer = f.raw("www.example.com", &raw_get("/headers", host)).await;
        assert!(answer.starts_with("HTTP/1.1 421"), "{host}: {answer}");
    }
    // The same certificate, a name no certificate covers, or the SNI itself: served.
    for (sni, host) in [
        ("www.example.com", "www.example.com"),
        ("www.example.com", "WWW.example.com.:443"),
        ("a.example.com", "b.example.com"),
        ("www.example.com", "unconfigured.example.org"),
        ("www.example.com", "127.0.0.1"),
    ] {
        let answer = f.raw(sni, &raw_get("/headers", host)).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{sni} / {host}: {answer}"
        );
    }
    // HTTP/2: a connection for www.example.com reused for other.example.net.
    let mut h2 = f.h2("www.example.com").await;
    let request = http::Request::builder()
        .uri("https://other.example.net/headers")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = h2.send_request(request).await.unwrap();
    assert_eq!(response.status(), 421);
}

#[tokio::test]
async fn the_http_redirect_is_only_for_names_with_a_certificate() {
    let f = fixture(Limits::default(), |b, _| b).await;
    let mut plain = http1(tokio::net::TcpStream::connect(f.proxy.http).await.unwrap()).await;
    let tls_port = f.proxy.tls.port();
    for (host, location) in [
        (
            "www.example.com",
            format!("https://www.example.com:{tls_port}/x?y"),
        ),
        (
            "API.example.com:80",
            format!("https://api.example.com:{tls_port}/x?y"),
        ),
    ] {
        let (status, headers, _) = send(&mut plain, get(host, "/x?y")).await;
        assert_eq!(status, 308, "{host}");
        assert_eq!(headers["location"], location.as_str(), "{host}");
    }
    for host in ["evil.example.org", "a.b.example.com", "127.0.0.1", "[::1]"] {
        let (status, headers, _) = send(&mut plain, get(host, "/x?y")).await;
        assert_eq!(status, 404, "{host}");
        assert!(!headers.contains_key("location"), "{host}: {headers:?}");
    }
}

/// Connects to the TLS listener, writes `preface` (a PROXY header) first, then
/// handshakes and asks `/headers`; the answer, or `None` if the proxy closed.
async fn headers_behind_proxy_header(f: &Fixture, preface: &[u8]) -> Option<String> {
    let mut tcp = tokio::net::TcpStream::connect(f.proxy.tls).await.unwrap();
    tcp.write_all(preface).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("www.example.com").unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&f.ca.pem, &[b"http/1.1"]));
    let mut tls = tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .expect("handshake finished or failed in time")
        .ok()?;
    tls.write_all(raw_get("/headers", "www.example.com").as_bytes())
        .await
        .ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, tls.read_to_end(&mut answer))
        .await
        .unwrap()
        .ok()?;
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// A v2 PROXY header for a TCP connection from `source` to 127.0.0.1:443.
fn v2_header(source: std::net::SocketAddr) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    match source {
        std::net::SocketAddr::V4(v4) => {
            header.extend_from_slice(&[0x21, 0x11, 0, 12]);
            header.extend_from_slice(&v4.ip().octets());
            header.extend_from_slice(&[127, 0, 0, 1]);
        }
        std::net::SocketAddr::V6(v6) => {
            header.extend_from_slice(&[0x21, 0x21, 0, 36]);
            header.extend_from_slice(&v6.ip().octets());
            header.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        }
    }
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&443u16.to_be_bytes());
    header
}

#[tokio::test]
async fn proxy_protocol_headers_from_trusted_peers_set_the_client_address() {
    let f = fixture(Limits::default(), |b, _| {
        b.trusted_proxies("127.0.0.1".parse().unwrap())
            .proxy_protocol(true)
    })
    .await;
    let v1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 51234 443\r\n";
    let answer = headers_behind_proxy_header(&f, v1).await.expect("served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("x-forwarded-for: 192.0.2.7\n"), "{answer}");
    assert!(answer.contains("x-real-ip: 192.0.2.7\n"), "{answer}");
    assert!(
        answer.contains("forwarded: for=192.0.2.7;proto=https"),
        "{answer}"
    );

    let v2 = v2_header("[2001:db8::9]:40000".parse().unwrap());
    let answer = headers_behind_proxy_header(&f, &v2).await.expect("served");
    assert!(
        answer.contains("x-forwarded-for: 2001:db8::9\n"),
        "{answer}"
    );
    let v2 = v2_header("198.51.100.4:40000".parse().unwrap());
    let answer = headers_behind_proxy_header(&f, &v2).await.expect("served");
    assert!(
        answer.contains("x-forwarded-for: 198.51.100.4\n"),
        "{answer}"
    );

    // A health check (v2 LOCAL) and a direct client without a header: the peer.
    let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    let answer = headers_behind_proxy_header(&f, local)
        .await
        .expect("served");
    assert!(answer.contains("x-forwarded-for: 127.0.0.1\n"), "{answer}");
    let answer = headers_behind_proxy_header(&f, b"").await.expect("served");
    assert!(answer.contains("x-forwarded-for: 127.0.0.1\n"), "{answer}");

    // A broken header closes the connection.
    let broken = b"PROXY TCP4 192.0.2.999 127.0.0.1 51234 443\r\n";
    assert!(headers_behind_proxy_header(&f, broken).await.is_none());
}

#[tokio::test]
async fn proxy_protocol_headers_from_untrusted_peers_close_the_connection() {
    let f = fixture(Limits::default(), |b, _| {
        b.trusted_proxies("10.0.0.0/8".parse().unwrap())
            .proxy_protocol(true)
    })
    .await;
    let v1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 51234 443\r\n";
    assert!(headers_behind_proxy_header(&f, v1).await.is_none());
    let v2 = v2_header("192.0.2.7:40000".parse().unwrap());
    assert!(headers_behind_proxy_header(&f, &v2).await.is_none());
    // The same client talking TLS directly is served, as itself.
    let answer = headers_behind_proxy_header(&f, b"").await.expect("served");
    assert!(answer.contains("x-forwarded-for: 127.0.0.1\n"), "{answer}");
}
