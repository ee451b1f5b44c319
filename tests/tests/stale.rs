//! Stale certificates against real Pebble: `berth run` records which sets it manages,
//! never renews a stored certificate it is not configured with (even one due for
//! renewal), lists it as unmanaged, and removal goes through the store under the set's
//! order lock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issue_support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_acme_core::challenge::{Http01Responder, Http01Solver, Solver, serve_http01};
use berth_acme_core::stale;
use berth_acme_core::store::CertState;
use berth_acme_core::store::records::{cert_key, state_key, update_json};
use berth_acme_core::{
    CertManager, ChallengeKind, DomainSet, Error, KeyType, ManagedCert, ManagerConfig, RenewalHint,
};
use berth_tests::{Pebble, file_store};
use issue_support::{bounded, pebble_config};
use tokio_util::sync::CancellationToken;

const HOUR: Duration = Duration::from_secs(3600);

fn managed(name: &str) -> ManagedCert {
    ManagedCert::new(
        DomainSet::parse([name]).unwrap(),
        ChallengeKind::Http01,
        KeyType::Ec256,
    )
    .unwrap()
}

fn manager(
    pebble: &Pebble,
    store: Arc<dyn berth_acme_core::store::Store>,
    certs: &[&ManagedCert],
    responder: &Http01Responder,
) -> CertManager {
    let solver: Arc<dyn Solver> = Arc::new(Http01Solver::new(responder.clone()));
    CertManager::new(
        ManagerConfig::new(store, pebble_config(pebble)),
        certs.iter().map(|c| (*c).clone()).collect(),
        vec![solver],
    )
}

#[tokio::test]
async fn berth_run_never_renews_a_due_certificate_it_is_not_configured_with() {
    bounded(async {
        let pebble = Pebble::start().await;
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir.path().join("acme.json")).await;
        let responder = Http01Responder::new();
        let _listener = serve_http01(
            format!("127.0.0.1:{}", pebble.http_port()).parse().unwrap(),
            responder.clone(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let (kept, dropped) = (managed("kept.example.com"), managed("dropped.example.com"));
        let both = manager(&pebble, Arc::clone(&store), &[&kept, &dropped], &responder);
        both.ensure_all(false).await;
        assert_eq!(pebble.orders_received(), 2);

        // The dropped set's certificate is due now (as if the CA's ARI window said so).
        let serial = both.status()[1]
            .certificate
            .as_ref()
            .unwrap()
            .info()
            .serial_hex
            .clone();
        let now = SystemTime::now();
        update_json::<CertState, _>(
            store.as_ref(),
            &state_key("dropped.example.com"),
            None,
            |s| {
                s.hints.insert(
                    serial.clone(),
                    RenewalHint {
                        domains: "dropped.example.com".into(),
                        renew_at: Some(now - HOUR),
                        window: Some((now - 2 * HOUR, now - HOUR)),
                        explanation_url: None,
                        check_again_at: now + 24 * HOUR,
                    },
                );
            },
        )
        .await
        .unwrap();

        // berth run configured with the kept set only.
        let only_kept = manager(&pebble, Arc::clone(&store), &[&kept], &responder);
        let shutdown = CancellationToken::new();
        let running = {
            let shutdown = shutdown.clone();
            async move {
                only_kept.run(shutdown).await;
                only_kept
            }
        };
        let task = tokio::spawn(running);
        let recorded = loop {
            if let Some(found) = stale::configured(store.as_ref()).await.unwrap() {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(recorded.manages("kept.example.com"));
        assert!(!recorded.manages("dropped.example.com"));
        // Its first pass (nothing due among its sets) has time to finish.
        tokio::time::sleep(Duration::from_secs(2)).await;
        shutdown.cancel();
        let only_kept = task.await.unwrap();
        assert_eq!(
            pebble.orders_received(),
            2,
            "the unmanaged, due certificate was ordered"
        );

        let unmanaged = only_kept.unmanaged().await.unwrap();
        assert_eq!(unmanaged.len(), 1);
        assert_eq!(unmanaged[0].key, "dropped.example.com");
        assert!(unmanaged[0].unmanaged && !unmanaged[0].expired);

        // Control: configured again (a fresh berth run), the same certificate is due
        // and renewed.
        drop(both);
        manager(&pebble, Arc::clone(&store), &[&kept, &dropped], &responder)
            .ensure_all(false)
            .await;
        assert_eq!(pebble.orders_received(), 3);
    })
    .await;
}

#[tokio::test]
async fn removal_deletes_certificate_and_state_and_waits_for_an_order_in_flight() {
    bounded(async {
        let pebble = Pebble::start().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme.json");
        let store = file_store(&path).await;
        let responder = Http01Responder::new();
        let _listener = serve_http01(
            format!("127.0.0.1:{}", pebble.http_port()).parse().unwrap(),
            responder.clone(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let gone = managed("gone.example.com");
        manager(&pebble, Arc::clone(&store), &[&gone], &responder)
            .ensure(&gone, false)
            .await
            .unwrap();
        stale::record_configured(store.as_ref(), ["other.example.com".to_owned()])
            .await
            .unwrap();
        let configured = stale::configured(store.as_ref()).await.unwrap();
        let found = stale::find_stale(
            store.as_ref(),
            configured.as_ref(),
            false,
            true,
            SystemTime::now(),
        )
        .await
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, "gone.example.com");
        // Not expired: --expired alone finds nothing.
        assert!(
            stale::find_stale(
                store.as_ref(),
                configured.as_ref(),
                true,
                false,
                SystemTime::now()
            )
            .await
            .unwrap()
            .is_empty()
        );

        // Another berth is ordering the set: removal refuses rather than racing it.
        let lease = store
            .try_lock(&cert_key("gone.example.com"), HOUR)
            .await
            .unwrap()
            .unwrap();
        let err = stale::remove(store.as_ref(), "gone.example.com")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::OrderInProgress { .. }), "{err:?}");
        store.unlock(lease).await.unwrap();

        stale::remove(store.as_ref(), "gone.example.com")
            .await
            .unwrap();
        assert!(
            store
                .get(&cert_key("gone.example.com"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get(&state_key("gone.example.com"))
                .await
                .unwrap()
                .is_none()
        );
        let reopened = file_store(&path).await;
        assert!(
            reopened.list("certs/").await.unwrap().is_empty(),
            "gone from acme.json too"
        );
    })
    .await;
}
