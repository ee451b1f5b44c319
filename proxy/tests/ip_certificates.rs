//! IP-address certificates (RFC 8738) served to clients that connect by address: such
//! clients send no SNI (RFC 6066 §3 allows only host names there), so the proxy picks
//! the certificate by the address the connection arrived on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use berth_proxy::{CertSource, Proxy, Routes, Upstream};
use support::*;

/// A proxy on `addr` serving an IP certificate for 127.0.0.1 (serial 1) and
/// `default.example.net` (serial 2), with or without that default name.
async fn proxy_on(addr: &str, ca: &TestCa, default_name: bool) -> (Running, support::Upstream) {
    let upstream = start_upstream().await;
    let ip = ca.leaf(&["127.0.0.1"], 1);
    let named = ca.leaf(&["default.example.net"], 2);
    let mut builder = Proxy::builder()
        .routes(Routes::single(Upstream::parse(&upstream.url()).unwrap()))
        .cert_source(CertSource::Static(cert_set(&[&ip, &named])))
        .tls_addr(format!("{addr}:0").parse().unwrap())
        .http_addr(format!("{addr}:0").parse().unwrap());
    if default_name {
        builder = builder.default_server_name("default.example.net");
    }
    let bound = builder.build().unwrap().bind().await.unwrap();
    (run(bound), upstream)
}

#[tokio::test]
async fn a_client_without_sni_gets_the_certificate_of_the_address_it_connected_to() {
    let ca = TestCa::new();
    let (proxy, _upstream) = proxy_on("127.0.0.1", &ca, true).await;
    // `127.0.0.1` as the server name: rustls sends no SNI and verifies the IP SAN.
    assert_eq!(served_serial(proxy.tls, "127.0.0.1", &ca.pem).await, 1);
    // Named clients are unaffected.
    assert_eq!(
        served_serial(proxy.tls, "default.example.net", &ca.pem).await,
        2
    );
}

#[tokio::test]
async fn no_default_name_is_needed_for_the_ip_certificate() {
    let ca = TestCa::new();
    let (proxy, _upstream) = proxy_on("127.0.0.1", &ca, false).await;
    assert_eq!(served_serial(proxy.tls, "127.0.0.1", &ca.pem).await, 1);
}

#[tokio::test]
async fn an_address_without_an_ip_certificate_falls_back_to_the_default_name() {
    let ca = TestCa::new();
    // Also loopback, but no certificate names 127.0.0.2.
    let (proxy, _upstream) = proxy_on("127.0.0.2", &ca, true).await;
    let stream = tls_connect(proxy.tls, "127.0.0.2", inspect_only_config(&[]))
        .await
        .unwrap();
    assert_eq!(serial_of(&served(&stream)), 2);
}
