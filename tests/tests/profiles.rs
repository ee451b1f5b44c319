//! Certificate profiles (draft-ietf-acme-profiles) against a real Pebble. Debian's
//! Pebble 2.4 lists no profiles in its directory, so what it can show is the refusal:
//! a profile asked of a CA without profiles is refused before any order, and a renewal
//! asks for the stored certificate's profile again. The accepting side (a directory
//! that lists profiles) is tested on Let's Encrypt's recorded directory in
//! `acme-core/src/ca.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issue_support;

use std::sync::Arc;

use berth_acme_core::challenge::{Http01Responder, Http01Solver, Solver, serve_http01};
use berth_acme_core::store::CertState;
use berth_acme_core::store::records::{state_key, update_json};
use berth_acme_core::{
    CertManager, ChallengeKind, DomainSet, Error, KeyType, ManagedCert, ManagerConfig,
};
use berth_tests::{Pebble, ProfilesFront, file_store, read_state};
use issue_support::*;
use tokio_util::sync::CancellationToken;

fn managed(name: &str, profile: Option<&str>) -> ManagedCert {
    ManagedCert::new(
        DomainSet::parse([name]).unwrap(),
        ChallengeKind::Http01,
        KeyType::Ec256,
    )
    .unwrap()
    .with_profile(profile.map(str::to_owned))
}

fn manager(config: ManagerConfig, cert: &ManagedCert, responder: &Http01Responder) -> CertManager {
    let solver: Arc<dyn Solver> = Arc::new(Http01Solver::new(responder.clone()));
    CertManager::new(config, vec![cert.clone()], vec![solver])
}

#[tokio::test]
async fn pebble_without_profiles_refuses_a_profile_before_any_order() {
    bounded(async {
        let pebble = Pebble::start().await;
        let account = pebble_account(&pebble).await;
        let (issuer, _responder, _listener) = http01_issuer(&pebble, account).await;
        let mut request = order(&["profile.example.com"]);
        request.profile = Some("shortlived".into());

        let err = issuer.issue(&request).await.unwrap_err();

        assert!(
            matches!(&err, Error::ProfileUnavailable { profile, offered, .. } if profile == "shortlived" && offered.is_empty()),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("offers no certificate profiles"), "{text}");
        assert!(text.contains(&pebble.directory_url()), "{text}");
        assert_eq!(pebble.orders_received(), 0, "refused before ordering");
    })
    .await;
}

#[tokio::test]
async fn renewal_asks_for_the_stored_certificates_profile_again() {
    bounded(async {
        let pebble = Pebble::start().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        let responder = Http01Responder::new();
        let _listener = serve_http01(
            format!("127.0.0.1:{}", pebble.http_port()).parse().unwrap(),
            responder.clone(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let cert = managed("keep.example.com", None);
        let store = file_store(&path).await;
        let first = manager(
            ManagerConfig::new(Arc::clone(&store), pebble_config(&pebble)),
            &cert,
            &responder,
        );
        first.ensure(&cert, false).await.unwrap();
        assert_eq!(pebble.orders_received(), 1);
        assert_eq!(
            read_state(&path).await.cert("keep.example.com").profile,
            None
        );

        // As if the certificate had come from a CA's `shortlived` profile.
        update_json::<CertState, _>(store.as_ref(), &state_key("keep.example.com"), None, |s| {
            s.profile = Some("shortlived".into());
        })
        .await
        .unwrap();
        drop(first);
        drop(store);

        // The configuration names no profile; the renewal must not fall back to the
        // CA's default (Traefik's renewals lost the profile until v3.6.7).
        let restarted = manager(
            ManagerConfig::new(file_store(&path).await, pebble_config(&pebble)),
            &cert,
            &responder,
        );
        let err = restarted.ensure(&cert, true).await.unwrap_err();
        assert!(
            matches!(&err, Error::ProfileUnavailable { profile, .. } if profile == "shortlived"),
            "{err:?}"
        );
        assert_eq!(pebble.orders_received(), 1, "no order without the profile");
    })
    .await;
}

/// The account settings for Pebble behind `front`.
fn front_config(pebble: &Pebble, front: &ProfilesFront) -> berth_acme_core::AccountConfig {
    berth_acme_core::AccountConfig {
        ca: berth_acme_core::Ca::custom(&front.directory_url(), None).unwrap(),
        ca_roots_pem: Some(front.tls_root_pem().to_owned()),
        ..pebble_config(pebble)
    }
}

#[tokio::test]
async fn pebble_behind_a_front_listing_profiles_gets_the_profile_in_every_order_and_renewal() {
    bounded(async {
        let pebble = Pebble::start().await;
        let front = ProfilesFront::start(
            &pebble,
            &[
                ("classic", "https://letsencrypt.org/docs/profiles#classic"),
                (
                    "shortlived",
                    "https://letsencrypt.org/docs/profiles#shortlived",
                ),
            ],
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        let responder = Http01Responder::new();
        let _listener = serve_http01(
            format!("127.0.0.1:{}", pebble.http_port()).parse().unwrap(),
            responder.clone(),
            CancellationToken::new(),
        )
        .await
        .unwrap();

        let short = managed("short.example.com", Some("shortlived"));
        let first = manager(
            ManagerConfig::new(file_store(&path).await, front_config(&pebble, &front)),
            &short,
            &responder,
        );
        first.ensure(&short, false).await.unwrap();
        // (More than one payload when Pebble turned a nonce down and the POST was
        // repeated.)
        let orders = front.new_orders();
        assert!(!orders.is_empty());
        assert!(
            orders.iter().all(|o| o["profile"] == "shortlived"),
            "{orders:?}"
        );
        let posted = orders.len();
        assert_eq!(
            read_state(&path)
                .await
                .cert("short.example.com")
                .profile
                .as_deref(),
            Some("shortlived")
        );
        drop(first);

        // The configuration no longer names a profile: the renewal asks for the
        // stored certificate's again.
        let plain = managed("short.example.com", None);
        let restarted = manager(
            ManagerConfig::new(file_store(&path).await, front_config(&pebble, &front)),
            &plain,
            &responder,
        );
        restarted.ensure(&plain, true).await.unwrap();
        let orders = front.new_orders();
        assert!(orders.len() > posted, "{orders:?}");
        assert!(
            orders[posted..]
                .iter()
                .all(|o| o["profile"] == "shortlived"),
            "{orders:?}"
        );
        let posted = orders.len();

        // A profile the directory does not list: refused with the list, nothing posted.
        let typo = managed("typo.example.com", Some("tlsserver"));
        let err = manager(
            ManagerConfig::new(file_store(&path).await, front_config(&pebble, &front)),
            &typo,
            &responder,
        )
        .ensure(&typo, false)
        .await
        .unwrap_err();
        assert!(
            err.to_string().ends_with("it offers: classic, shortlived"),
            "{err}"
        );
        assert_eq!(front.new_orders().len(), posted);
    })
    .await;
}
