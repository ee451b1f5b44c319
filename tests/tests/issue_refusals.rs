//! What must fail, and how: refusals before any order, CA trouble, terms of service, EAB,
//! and a validation the CA cannot complete — all against a real Pebble.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issue_support;

use std::sync::Arc;

use berth_acme_core::challenge::{Http01Responder, Http01Solver};
use berth_acme_core::{
    AccountConfig, AcmeAccount, Ca, ChallengeError, ChallengeKind, Eab, Error, Issuer, Setting,
};
use berth_secrets::Secret;
use berth_tests::{Pebble, PebbleOptions, free_port, https_get};
use issue_support::*;

/// Pebble's EAB keys are base64url HMAC keys (its own test config uses this form).
const EAB_HMAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

#[tokio::test]
async fn wildcard_with_http01_is_refused_before_any_order() {
    bounded(async {
        let pebble = Pebble::start().await;
        let account = pebble_account(&pebble).await;
        let solver = Arc::new(CountingSolver::new(ChallengeKind::Http01));
        let issuer = Issuer::new(account, solver.clone());

        let err = issuer
            .issue(&order(&["example.com", "*.example.com"]))
            .await
            .unwrap_err();

        assert!(
            matches!(
                err,
                Error::Challenge(ChallengeError::WildcardNeedsDns { .. })
            ),
            "{err:?}"
        );
        assert!(err.to_string().ends_with("; use dns-01"), "{err}");
        assert_eq!(
            err.setting(),
            Some(Setting::Challenge(Some(ChallengeKind::Dns01)))
        );
        assert_eq!(pebble.orders_received(), 0);
        assert_eq!(solver.presented(), 0);
    })
    .await;
}

#[tokio::test]
async fn ip_address_with_dns01_is_refused_before_any_order() {
    bounded(async {
        let pebble = Pebble::start().await;
        let account = pebble_account(&pebble).await;
        let solver = Arc::new(CountingSolver::new(ChallengeKind::Dns01));
        let issuer = Issuer::new(account, solver.clone());

        let err = issuer.issue(&order(&["127.0.0.1"])).await.unwrap_err();

        assert!(
            matches!(
                err,
                Error::Challenge(ChallengeError::IpNeedsHttpOrTls { .. })
            ),
            "{err:?}"
        );
        assert_eq!(pebble.orders_received(), 0);
        assert_eq!(solver.presented(), 0);
    })
    .await;
}

#[tokio::test]
async fn tls_sni_01_is_refused_by_name_and_never_reaches_the_ca() {
    bounded(async {
        let pebble = Pebble::start().await;
        let err = "tls-sni-01".parse::<ChallengeKind>().unwrap_err();
        assert!(matches!(err, ChallengeError::Removed { .. }), "{err:?}");
        assert!(err.to_string().contains("use tls-alpn-01"), "{err}");
        assert_eq!(pebble.orders_received(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_ca_that_is_down_is_reported_as_unreachable() {
    bounded(async {
        let url = format!("https://127.0.0.1:{}/dir", free_port());
        let config = AccountConfig {
            agree_tos: true,
            ..AccountConfig::new(Ca::custom(&url, None).unwrap())
        };

        let err = AcmeAccount::load_or_create(&config, None)
            .await
            .unwrap_err();

        assert!(matches!(err, Error::CaUnreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&url), "{text}");
        assert!(text.to_lowercase().contains("connection refused"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_wrong_ca_root_is_reported_as_an_untrusted_certificate() {
    bounded(async {
        let pebble = Pebble::start().await;
        let other_root = {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(&key).unwrap().pem()
        };
        let wrong_root = AccountConfig {
            ca_roots_pem: Some(other_root),
            ..pebble_config(&pebble)
        };
        // The platform trust store does not know Pebble's throwaway root either.
        let platform_roots = AccountConfig {
            ca_roots_pem: None,
            ..pebble_config(&pebble)
        };

        for config in [wrong_root, platform_roots] {
            let err = AcmeAccount::load_or_create(&config, None)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::CaUntrusted { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("not trusted") && text.contains("add its root certificate"),
                "{text}"
            );
            assert_eq!(err.setting(), Some(Setting::CaRoots));
            assert!(text.contains("UnknownIssuer"), "{text}");
        }
        assert_eq!(accounts_created(&pebble), 0);
    })
    .await;
}

#[tokio::test]
async fn terms_not_agreed_shows_the_terms_url_and_creates_no_account() {
    bounded(async {
        let pebble = Pebble::start().await;
        let directory = https_get(&pebble.directory_url(), pebble.tls_root_pem())
            .await
            .unwrap();
        let directory: serde_json::Value = serde_json::from_str(&directory.body).unwrap();
        let tos_url = directory["meta"]["termsOfService"]
            .as_str()
            .expect("pebble has terms");
        let config = AccountConfig {
            agree_tos: false,
            ..pebble_config(&pebble)
        };

        let err = AcmeAccount::load_or_create(&config, None)
            .await
            .unwrap_err();

        match &err {
            Error::TermsNotAgreed { tos_url: url, .. } => assert_eq!(url, tos_url),
            other => panic!("expected TermsNotAgreed, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(tos_url) && text.contains("agree to them in the account settings"),
            "{text}"
        );
        assert_eq!(err.setting(), Some(Setting::AgreeTos));
        assert_eq!(accounts_created(&pebble), 0);
    })
    .await;
}

#[tokio::test]
async fn validation_failure_carries_the_cas_problem_and_withdraws_the_token() {
    bounded(async {
        let pebble = Pebble::start().await;
        let account = pebble_account(&pebble).await;
        // Nothing listens on Pebble's HTTP-01 port.
        let responder = Http01Responder::new();
        let issuer = Issuer::new(account, Arc::new(Http01Solver::new(responder.clone())));

        let err = issuer
            .issue(&order(&["unreachable.example.com"]))
            .await
            .unwrap_err();

        match &err {
            Error::Validation {
                identifier,
                challenge,
                problem,
                ca,
            } => {
                assert_eq!(identifier, "unreachable.example.com");
                assert_eq!(*challenge, ChallengeKind::Http01);
                assert_eq!(problem.short_type(), Some("connection"), "{problem}");
                assert!(problem.detail.is_some(), "{problem}");
                assert!(ca.contains(&pebble.directory_url()), "{ca}");
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("http://unreachable.example.com/.well-known/acme-challenge/")
                && text.contains("port 80 reaches berth"),
            "{text}"
        );
        assert!(
            responder.is_empty(),
            "the token is withdrawn after the failure"
        );
    })
    .await;
}

#[tokio::test]
async fn eab_is_required_when_the_ca_says_so_and_works_when_given() {
    bounded(async {
        let pebble = Pebble::start_with(PebbleOptions {
            eab_keys: vec![("kid-1".into(), EAB_HMAC.into())],
            ..PebbleOptions::default()
        })
        .await;

        let without = AcmeAccount::load_or_create(&pebble_config(&pebble), None)
            .await
            .unwrap_err();
        assert!(matches!(without, Error::EabRequired { .. }), "{without:?}");
        assert!(
            without.to_string().contains("key id and HMAC key"),
            "{without}"
        );
        assert_eq!(without.setting(), Some(Setting::Eab));

        let garbled = AccountConfig {
            eab: Some(Eab {
                kid: "kid-1".into(),
                hmac: Secret::new("not*base64url!".into()),
            }),
            ..pebble_config(&pebble)
        };
        let err = AcmeAccount::load_or_create(&garbled, None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidEab { .. }), "{err:?}");
        assert!(!err.to_string().contains("not*base64url"), "{err}");

        let with = AccountConfig {
            eab: Some(Eab {
                kid: "kid-1".into(),
                hmac: Secret::new(format!("{EAB_HMAC}\n")),
            }),
            ..pebble_config(&pebble)
        };
        let (account, credentials) = AcmeAccount::load_or_create(&with, None).await.unwrap();
        assert!(credentials.is_some());
        assert_eq!(accounts_created(&pebble), 1);
        let (issuer, _responder, _listener) = http01_issuer(&pebble, account).await;
        issuer.issue(&order(&["eab.example.com"])).await.unwrap();
    })
    .await;
}
