//! TLS termination seen by real clients: rustls, curl and openssl s_client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use berth_certs::DomainName;
use berth_certs::challenge::TlsAlpn01Responder;
use berth_proxy::{CertSource, Proxy, Routes, Upstream};
use rustls::HandshakeKind;
use support::*;
use tokio::io::AsyncReadExt;

struct Fixture {
    ca: TestCa,
    proxy: Running,
    _upstream: support::Upstream,
    ca_file: tempfile::NamedTempFile,
}

/// A proxy serving `www.example.com` (serial 1), `*.example.com` (serial 2) and
/// `default.example.net` + `127.0.0.1` (serial 3), in front of the test upstream.
async fn fixture(default_name: Option<&str>, alpn: Option<TlsAlpn01Responder>) -> Fixture {
    let ca = TestCa::new();
    let www = ca.leaf(&["www.example.com"], 1);
    let wildcard = ca.leaf(&["*.example.com"], 2);
    let default = ca.leaf(&["default.example.net", "127.0.0.1"], 3);
    let upstream = start_upstream().await;
    let mut builder = Proxy::builder()
        .routes(Routes::single(Upstream::parse(&upstream.url()).unwrap()))
        .cert_source(CertSource::Static(cert_set(&[&www, &wildcard, &default])));
    if let Some(name) = default_name {
        builder = builder.default_server_name(name);
    }
    if let Some(responder) = alpn {
        builder = builder.tls_alpn01(responder);
    }
    let proxy = start_proxy(builder).await;
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &ca.pem).unwrap();
    Fixture {
        ca,
        proxy,
        _upstream: upstream,
        ca_file,
    }
}

#[tokio::test]
async fn sni_picks_exact_then_wildcard_then_the_default_name() {
    let f = fixture(Some("default.example.net"), None).await;
    let addr = f.proxy.tls;
    assert_eq!(served_serial(addr, "www.example.com", &f.ca.pem).await, 1);
    assert_eq!(served_serial(addr, "api.example.com", &f.ca.pem).await, 2);
    // Two labels below example.com: no wildcard covers it, so the default answers.
    let deep = tls_connect(addr, "a.b.example.com", inspect_only_config(&[]))
        .await
        .unwrap();
    assert_eq!(serial_of(&served(&deep)), 3);
    // A client connecting by IP address sends no SNI at all.
    assert_eq!(served_serial(addr, "127.0.0.1", &f.ca.pem).await, 3);

    let openssl = berth_tests::require_tool("openssl", "openssl");
    let connect = addr.to_string();
    let (ok, _, stderr) = run_tool(
        &openssl,
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "api.example.com",
            "-verify_hostname",
            "api.example.com",
            "-CAfile",
            f.ca_file.path().to_str().unwrap(),
            "-verify_return_error",
            "-brief",
        ],
    )
    .await;
    assert!(ok, "openssl s_client failed: {stderr}");
    assert!(stderr.contains("CN = *.example.com"), "{stderr}");
    assert!(stderr.contains("Verification: OK"), "{stderr}");

    let curl = berth_tests::require_tool("curl", "curl");
    let resolve = format!("www.example.com:{}:127.0.0.1", addr.port());
    let url = format!("https://www.example.com:{}/", addr.port());
    let (ok, stdout, stderr) = run_tool(
        &curl,
        &[
            "-sS",
            "--cacert",
            f.ca_file.path().to_str().unwrap(),
            "--resolve",
            &resolve,
            &url,
        ],
    )
    .await;
    assert!(ok, "curl failed: {stderr}");
    assert_eq!(stdout, "hello from upstream\n");
}

#[tokio::test]
async fn unknown_sni_without_a_default_fails_the_handshake_and_is_counted() {
    let f = fixture(None, None).await;
    let err = tls_connect(f.proxy.tls, "other.org", inspect_only_config(&[]))
        .await
        .expect_err("no certificate covers other.org");
    // rustls answers with a fatal alert rather than dropping the connection.
    assert!(
        err.to_string().contains("AccessDenied") || err.to_string().contains("alert"),
        "{err}"
    );
    eventually("the failed handshake to be counted", || {
        let s = f.proxy.metrics.snapshot();
        s.unknown_sni == 1 && s.handshake_failures == 1
    })
    .await;

    let openssl = berth_tests::require_tool("openssl", "openssl");
    let connect = f.proxy.tls.to_string();
    let (ok, _, stderr) = run_tool(
        &openssl,
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "other.org",
            "-brief",
        ],
    )
    .await;
    assert!(!ok, "openssl connected to an unknown name: {stderr}");
    assert!(stderr.contains("alert"), "{stderr}");
    eventually("the second failure to be counted", || {
        f.proxy.metrics.snapshot().unknown_sni == 2
    })
    .await;

    // The listener is unharmed.
    assert_eq!(
        served_serial(f.proxy.tls, "www.example.com", &f.ca.pem).await,
        1
    );
    assert!(
        f.proxy
            .metrics
            .render_prometheus()
            .contains("berth_proxy_tls_unknown_sni_total 2")
    );
}

#[tokio::test]
async fn alpn_negotiates_h2_for_h2_clients_and_http11_otherwise() {
    let f = fixture(None, None).await;
    let addr = f.proxy.tls;

    let stream = tls_connect(
        addr,
        "www.example.com",
        client_config(&f.ca.pem, &[b"h2", b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = http2(stream).await;
    let request = http::Request::builder()
        .uri(format!("https://www.example.com:{}/headers", addr.port()))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = h2.send_request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let seen = String::from_utf8_lossy(&body);
    // The upstream gets HTTP/1.1 with a Host header made from :authority.
    assert!(
        seen.contains(&format!("host: www.example.com:{}", addr.port())),
        "{seen}"
    );

    let stream = tls_connect(
        addr,
        "www.example.com",
        client_config(&f.ca.pem, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    let curl = berth_tests::require_tool("curl", "curl");
    let resolve = format!("www.example.com:{}:127.0.0.1", addr.port());
    let url = format!("https://www.example.com:{}/", addr.port());
    let (ok, stdout, stderr) = run_tool(
        &curl,
        &[
            "-sS",
            "--http2",
            "--cacert",
            f.ca_file.path().to_str().unwrap(),
            "--resolve",
            &resolve,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &url,
        ],
    )
    .await;
    assert!(ok, "curl failed: {stderr}");
    assert_eq!(stdout, "2 200");
}

#[tokio::test]
async fn tls_1_1_is_refused_while_1_2_and_1_3_connect() {
    let f = fixture(None, None).await;
    let openssl = berth_tests::require_tool("openssl", "openssl");
    let connect = f.proxy.tls.to_string();
    let ca = f.ca_file.path().to_str().unwrap().to_owned();
    let attempt = |version: &'static str| {
        let (openssl, connect, ca) = (openssl.clone(), connect.clone(), ca.clone());
        async move {
            run_tool(
                &openssl,
                &[
                    "s_client",
                    "-connect",
                    &connect,
                    "-servername",
                    "www.example.com",
                    "-CAfile",
                    &ca,
                    "-verify_return_error",
                    version,
                    // OpenSSL 3 disables TLS 1.1 itself at the default security level;
                    // level 0 lets it offer 1.1, so the refusal seen is the server's.
                    "-cipher",
                    "DEFAULT@SECLEVEL=0",
                    "-brief",
                ],
            )
            .await
        }
    };
    let (ok, _, stderr) = attempt("-tls1_2").await;
    assert!(
        ok && stderr.contains("Protocol version: TLSv1.2"),
        "{stderr}"
    );
    let (ok, _, stderr) = attempt("-tls1_3").await;
    assert!(
        ok && stderr.contains("Protocol version: TLSv1.3"),
        "{stderr}"
    );
    let before = f.proxy.metrics.snapshot().handshake_failures;
    let (ok, _, stderr) = attempt("-tls1_1").await;
    assert!(!ok, "TLS 1.1 was accepted: {stderr}");
    // The refusal is the server's: a fatal alert in answer to the 1.1 ClientHello.
    assert!(stderr.contains("alert"), "{stderr}");
    eventually("the refused handshake to be counted by the server", || {
        f.proxy.metrics.snapshot().handshake_failures == before + 1
    })
    .await;
}

#[tokio::test]
async fn sessions_resume_in_tls13_and_tls12() {
    let f = fixture(None, None).await;
    for config in [
        client_config(&f.ca.pem, &[b"http/1.1"]),
        tls12_client_config(&f.ca.pem),
    ] {
        // A full handshake, then a request so TLS 1.3 tickets (sent after the
        // handshake) reach the client.
        let first = tls_connect(f.proxy.tls, "www.example.com", config.clone())
            .await
            .unwrap();
        assert_eq!(
            first.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Full)
        );
        let mut sender = http1(first).await;
        let (status, _, _) = send(&mut sender, get("www.example.com", "/")).await;
        assert_eq!(status, 200);
        drop(sender);
        let second = tls_connect(f.proxy.tls, "www.example.com", config)
            .await
            .unwrap();
        assert_eq!(
            second.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Resumed)
        );
    }
}

#[tokio::test]
async fn acme_tls_alpn_handshakes_get_only_the_challenge_certificate() {
    let responder = TlsAlpn01Responder::new();
    let name = DomainName::parse("acme.example.org").unwrap();
    responder.insert(&name, &[7u8; 32]).unwrap();
    let f = fixture(None, Some(responder.clone())).await;
    let acme = inspect_only_config(&[b"acme-tls/1"]);

    let mut stream = tls_connect(f.proxy.tls, "acme.example.org", acme.clone())
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"acme-tls/1"[..]));
    let info = served(&stream);
    assert_eq!(info.domains.main().as_str(), "acme.example.org");
    // RFC 8737 §3: no application data; the server closes after the handshake.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // A name with a normal certificate but no pending challenge: refused, never the
    // normal certificate (RFC 8737 §4).
    assert!(
        tls_connect(f.proxy.tls, "www.example.com", acme.clone())
            .await
            .is_err()
    );
    responder.remove(&name);
    assert!(
        tls_connect(f.proxy.tls, "acme.example.org", acme)
            .await
            .is_err()
    );
    let s = f.proxy.metrics.snapshot();
    assert_eq!(s.acme_tls_alpn_handshakes, 1);
    // Ordinary clients are unaffected.
    assert_eq!(
        served_serial(f.proxy.tls, "www.example.com", &f.ca.pem).await,
        1
    );
}

/// A client trusting the test CA that offers only these cipher suites, in this order.
fn client_preferring(
    ca_pem: &str,
    suites: &[rustls::SupportedCipherSuite],
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: suites.to_vec(),
        ..rustls::crypto::ring::default_provider()
    };
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    std::sync::Arc::new(config)
}

#[tokio::test]
async fn the_server_picks_the_cipher_suite_by_its_own_order_not_the_clients() {
    use rustls::crypto::ring::cipher_suite as suite;
    let f = fixture(None, None).await;
    // rustls' order puts AES-GCM before ChaCha20 (hardware AES on servers); a client
    // listing ChaCha20 first must still get AES-GCM (testssl.sh: "has server cipher
    // order? yes").
    for (offered, expected) in [
        (
            [
                suite::TLS13_CHACHA20_POLY1305_SHA256,
                suite::TLS13_AES_128_GCM_SHA256,
            ],
            suite::TLS13_AES_128_GCM_SHA256,
        ),
        (
            [
                suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ],
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
    ] {
        let config = client_preferring(&f.ca.pem, &offered);
        let stream = tls_connect(f.proxy.tls, "www.example.com", config)
            .await
            .unwrap();
        let (_, session) = stream.get_ref();
        assert_eq!(
            session.negotiated_cipher_suite().unwrap().suite(),
            expected.suite(),
            "offered {offered:?}"
        );
    }
}
