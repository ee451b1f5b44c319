//! TLS-ALPN-01 issuance against a real Pebble through the standalone listener.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issue_support;

use berth_tests::Pebble;
use issue_support::*;

#[tokio::test]
async fn tls_alpn01_certificate_for_two_names_verifies_against_pebbles_root() {
    bounded(async {
        let pebble = Pebble::start().await;
        let account = pebble_account(&pebble).await;
        let (issuer, listener) = tls_alpn01_issuer(&pebble, account).await;

        let cert = issuer
            .issue(&order(&["alpn.example.com", "www.alpn.example.com"]))
            .await
            .unwrap();

        let root = pebble.issuing_root_pem().await;
        handshake(&cert, &root, "alpn.example.com").await.unwrap();
        handshake(&cert, &root, "www.alpn.example.com")
            .await
            .unwrap();
        listener.stop().await;
    })
    .await;
}

#[tokio::test]
async fn tls_alpn01_without_a_listener_fails_validation_with_the_cas_problem() {
    bounded(async {
        let pebble = Pebble::start().await;
        let account = pebble_account(&pebble).await;
        let (issuer, listener) = tls_alpn01_issuer(&pebble, account).await;
        listener.stop().await;

        let err = issuer
            .issue(&order(&["nolistener.example.com"]))
            .await
            .unwrap_err();

        match &err {
            berth_acme_core::Error::Validation {
                identifier,
                challenge,
                problem,
                ..
            } => {
                assert_eq!(identifier, "nolistener.example.com");
                assert_eq!(*challenge, berth_acme_core::ChallengeKind::TlsAlpn01);
                assert!(
                    problem
                        .problem_type
                        .as_deref()
                        .unwrap_or("")
                        .starts_with("urn:ietf:params:acme:error:"),
                    "{problem}"
                );
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
        assert!(err.to_string().contains("port 443 reaches berth"), "{err}");
        assert!(
            pebble.log().contains("POST /chalZ/"),
            "validation was requested"
        );
    })
    .await;
}

#[tokio::test]
async fn ip_address_with_tls_alpn01_is_validated_under_its_reverse_dns_name() {
    bounded(async {
        let pebble = Pebble::start().await;
        let account = pebble_account(&pebble).await;
        let (issuer, listener) = tls_alpn01_issuer(&pebble, account).await;

        // Pebble connects to 127.0.0.1 with SNI 1.0.0.127.in-addr.arpa and checks that
        // the challenge certificate's only SAN is the address (RFC 8738 §6).
        let cert = issuer.issue(&order(&["127.0.0.1"])).await.unwrap();

        let ip = cert.info().domains.main();
        assert!(ip.is_ip(), "{ip}");
        assert_eq!(ip.as_str(), "127.0.0.1");
        let root = pebble.issuing_root_pem().await;
        handshake(&cert, &root, "127.0.0.1").await.unwrap();
        listener.stop().await;
    })
    .await;
}

#[tokio::test]
async fn ipv6_address_with_tls_alpn01_is_validated_under_its_ip6_arpa_name() {
    bounded(async {
        let pebble = Pebble::start().await;
        let account = pebble_account(&pebble).await;
        // Pebble connects to the address itself: [::1] on its TLS-ALPN-01 port, SNI
        // 1.0.0.0.…0.ip6.arpa (RFC 8738 §6).
        let responder = berth_acme_core::challenge::TlsAlpn01Responder::new();
        let addr = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, pebble.tls_port()));
        let listener = berth_acme_core::challenge::serve_tls_alpn01(
            addr,
            responder.clone(),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
        let issuer = berth_acme_core::Issuer::new(
            account,
            std::sync::Arc::new(berth_acme_core::challenge::TlsAlpn01Solver::new(responder)),
        );

        let cert = issuer.issue(&order(&["::1"])).await.unwrap();

        assert_eq!(cert.info().domains.main().as_str(), "::1");
        listener.stop().await;
    })
    .await;
}
