//! CertManager against real Pebble: the restart loop that gets accounts banned, staging
//! first, the rate budget, and renewal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issue_support;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_acme_core::budget::{RateLimits, Window};
use berth_acme_core::challenge::{
    ChallengeListener, Http01Responder, Http01Solver, Solver, serve_http01,
};
use berth_acme_core::store::AcmeJson;
use berth_acme_core::{
    AccountConfig, Ca, CertManager, ChallengeKind, DomainSet, Error, KeyType, ManagedCert,
    ManagerConfig, Outcome, Setting, renewal_due,
};
use berth_tests::{Pebble, PebbleOptions, file_store, read_state};
use issue_support::{bounded, pebble_config};
use tokio_util::sync::CancellationToken;

fn managed(names: &[&str]) -> ManagedCert {
    ManagedCert::new(
        DomainSet::parse(names).unwrap(),
        ChallengeKind::Http01,
        KeyType::Ec256,
    )
    .unwrap()
}

async fn listen(port: u16, responder: &Http01Responder) -> ChallengeListener {
    serve_http01(
        format!("127.0.0.1:{port}").parse().unwrap(),
        responder.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

fn manager(config: ManagerConfig, cert: &ManagedCert, responder: &Http01Responder) -> CertManager {
    let solver: Arc<dyn Solver> = Arc::new(Http01Solver::new(responder.clone()));
    CertManager::new(config, vec![cert.clone()], vec![solver])
}

#[tokio::test]
async fn restart_loop_inside_backoff_window_places_no_further_order() {
    bounded(async {
        let pebble = Pebble::start().await;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("acme.json");
        // Nothing listens on Pebble's HTTP-01 port: every validation fails.
        let responder = Http01Responder::new();
        let cert = managed(&["broken.example.com"]);

        let first = manager(
            ManagerConfig::new(file_store(&store).await, pebble_config(&pebble)),
            &cert,
            &responder,
        );
        let err = first.ensure(&cert, false).await.unwrap_err();
        assert!(matches!(err, Error::Validation { .. }), "{err}");

        // 19 restarts: each a fresh manager reading the persisted ledger.
        for _ in 0..19 {
            let restarted = manager(
                ManagerConfig::new(file_store(&store).await, pebble_config(&pebble)),
                &cert,
                &responder,
            );
            let err = restarted.ensure(&cert, false).await.unwrap_err();
            assert!(matches!(err, Error::BackingOff { .. }), "{err}");
            assert!(err.to_string().contains("or force the order"), "{err}");
            assert_eq!(err.setting(), Some(Setting::Force));
        }
        assert_eq!(
            pebble.orders_received(),
            1,
            "restarts inside the backoff window reached the CA"
        );

        let state = read_state(&store).await;
        let entry = state
            .ledger_entry(&pebble.directory_url(), "broken.example.com")
            .unwrap();
        assert_eq!(entry.consecutive_failures, 1);
        assert!(entry.last_error_type.ends_with("connection"), "{entry:?}");
        assert!(entry.next_attempt_at > SystemTime::now() + Duration::from_secs(200));

        // --force bypasses the window (and fails again, doubling the wait).
        let forced = manager(
            ManagerConfig::new(file_store(&store).await, pebble_config(&pebble)),
            &cert,
            &responder,
        );
        assert!(matches!(
            forced.ensure(&cert, true).await,
            Err(Error::Validation { .. })
        ));
        assert_eq!(pebble.orders_received(), 2);
        let state = read_state(&store).await;
        assert_eq!(
            state
                .ledger_entry(&pebble.directory_url(), "broken.example.com")
                .unwrap()
                .consecutive_failures,
            2
        );
    })
    .await;
}

#[tokio::test]
async fn new_domain_set_is_proven_on_staging_before_production() {
    bounded(async {
        let staging = Pebble::start().await;
        let production = Pebble::start().await;
        let responder = Http01Responder::new();
        let _a = listen(staging.http_port(), &responder).await;
        let _b = listen(production.http_port(), &responder).await;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("acme.json");
        // Both Pebbles' TLS roots are trusted.
        let roots = format!("{}{}", staging.tls_root_pem(), production.tls_root_pem());
        let ca = Ca::custom(&production.directory_url(), Some(&staging.directory_url())).unwrap();
        let account = AccountConfig {
            ca,
            ca_roots_pem: Some(roots),
            ..pebble_config(&production)
        };
        let cert = managed(&["new.example.com"]);

        let first = manager(
            ManagerConfig::new(file_store(&store).await, account.clone()),
            &cert,
            &responder,
        );
        let outcome = first.ensure(&cert, false).await.unwrap();
        assert!(matches!(outcome, Outcome::Issued(_)));
        assert_eq!(staging.orders_received(), 1);
        assert_eq!(production.orders_received(), 1);
        let state = read_state(&store).await;
        assert!(state.staging_proven(&production.directory_url(), "new.example.com"));

        // The stored certificate is from production.
        let root = production.issuing_root_pem().await;
        let (certs, _) = AcmeJson::read(&store).unwrap().certificates("berth");
        assert_eq!(certs.len(), 1);
        assert!(
            certs[0].certificate.info().issuer.contains("Pebble"),
            "{}",
            certs[0].certificate.info().issuer
        );
        assert!(!root.is_empty());

        // A second run (forced re-issue) goes straight to production.
        let second = manager(
            ManagerConfig::new(file_store(&store).await, account),
            &cert,
            &responder,
        );
        second.ensure(&cert, true).await.unwrap();
        assert_eq!(
            staging.orders_received(),
            1,
            "staging asked again after a recorded proof"
        );
        assert_eq!(production.orders_received(), 2);
    })
    .await;
}

#[tokio::test]
async fn tiny_budget_refuses_the_next_order_locally() {
    bounded(async {
        let pebble = Pebble::start().await;
        let responder = Http01Responder::new();
        let _listener = listen(pebble.http_port(), &responder).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = ManagerConfig::new(
            file_store(&dir.path().join("acme.json")).await,
            pebble_config(&pebble),
        );
        config.limits = Some(RateLimits {
            new_orders_per_account: Some(Window::new(NonZeroU32::MIN, Duration::from_secs(3600))),
            ..RateLimits::NONE
        });
        let cert = managed(&["budget.example.com"]);
        let m = manager(config, &cert, &responder);
        m.ensure(&cert, false).await.unwrap();
        let err = m.ensure(&cert, true).await.unwrap_err();
        let Error::Budget(refusal) = &err else {
            panic!("{err}")
        };
        assert_eq!(refusal.what, "new orders");
        assert!(refusal.frees_at > SystemTime::now() + Duration::from_secs(3000));
        assert!(err.to_string().contains("frees up at"), "{err}");
        assert_eq!(pebble.orders_received(), 1);
    })
    .await;
}

#[tokio::test]
async fn short_lived_certificate_is_renewed_and_published() {
    bounded(async {
        let pebble = Pebble::start_with(PebbleOptions {
            validity: Some(Duration::from_secs(30)),
            ..PebbleOptions::default()
        })
        .await;
        let responder = Http01Responder::new();
        let _listener = listen(pebble.http_port(), &responder).await;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("acme.json");
        let cert = managed(&["short.example.com"]);
        let m = Arc::new(manager(
            ManagerConfig::new(file_store(&store).await, pebble_config(&pebble)),
            &cert,
            &responder,
        ));
        let mut published = m.subscribe();

        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let m = m.clone();
            let shutdown = shutdown.clone();
            async move { m.run(shutdown).await }
        });

        let mut serials = Vec::new();
        while serials.len() < 2 {
            published.changed().await.unwrap();
            let set = published.borrow_and_update().clone();
            if let Some(c) = set.certificates().first() {
                let serial = c.info().serial_hex.clone();
                if serials.last() != Some(&serial) {
                    serials.push(serial);
                }
            }
        }
        shutdown.cancel();
        task.await.unwrap();
        assert_ne!(serials[0], serials[1]);
        let (certs, _) = AcmeJson::read(&store).unwrap().certificates("berth");
        assert_eq!(
            certs[0].certificate.info().serial_hex,
            serials[1],
            "acme.json holds the renewed certificate"
        );
        assert!(pebble.orders_received() >= 2);
        let state = read_state(&store).await;
        assert!(
            state.hint(&serials[0]).is_none(),
            "renewal advice about the replaced certificate is dropped"
        );
    })
    .await;
}

#[tokio::test]
async fn without_renewal_information_the_two_thirds_schedule_holds() {
    bounded(async {
        // Debian's Pebble 2.4 has no ARI endpoint: the fallback path, end to end.
        let pebble = Pebble::start().await;
        let responder = Http01Responder::new();
        let _listener = listen(pebble.http_port(), &responder).await;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("acme.json");
        let cert = managed(&["ari.example.com"]);
        let m = manager(
            ManagerConfig::new(file_store(&store).await, pebble_config(&pebble)),
            &cert,
            &responder,
        );
        let issued = m.ensure(&cert, false).await.unwrap();
        assert!(matches!(issued, Outcome::Issued(_)), "{issued:?}");

        let before = SystemTime::now();
        let Outcome::Valid {
            certificate,
            renew_at,
        } = m.ensure(&cert, false).await.unwrap()
        else {
            panic!("a fresh certificate is kept");
        };
        assert_eq!(renew_at, renewal_due(&certificate));
        let state = read_state(&store).await;
        let hint = state
            .hint(&certificate.info().serial_hex)
            .expect("the answer is remembered");
        assert_eq!(hint.renew_at, None);
        assert!(
            hint.check_again_at >= before + Duration::from_secs(23 * 3600),
            "a CA without ARI is asked again in a day, not every pass"
        );
        assert_eq!(pebble.orders_received(), 1);
    })
    .await;
}

/// A solver that never finishes presenting: the order is placed and stored, then the
/// process "dies" (the task is aborted) before any challenge is answered.
#[derive(Debug)]
struct StuckSolver;

impl Solver for StuckSolver {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Http01
    }
    fn present<'a>(
        &'a self,
        _: &'a berth_acme_core::challenge::PendingChallenge,
    ) -> berth_acme_core::challenge::SolverFuture<'a> {
        Box::pin(std::future::pending())
    }
    fn cleanup<'a>(
        &'a self,
        _: &'a berth_acme_core::challenge::PendingChallenge,
    ) -> berth_acme_core::challenge::SolverFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn an_order_interrupted_by_a_crash_is_resumed_not_placed_again() {
    bounded(async {
        let pebble = Pebble::start().await;
        let responder = Http01Responder::new();
        let _listener = listen(pebble.http_port(), &responder).await;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("acme.json");
        let cert = managed(&["resume.example.com"]);

        let first = Arc::new(CertManager::new(
            ManagerConfig::new(file_store(&store).await, pebble_config(&pebble)),
            vec![cert.clone()],
            vec![Arc::new(StuckSolver) as Arc<dyn Solver>],
        ));
        let running = tokio::spawn({
            let (first, cert) = (Arc::clone(&first), cert.clone());
            async move { first.ensure(&cert, false).await }
        });
        // The order is stored before any challenge is answered.
        let stored = async {
            loop {
                let state = read_state(&store).await;
                if state.cert("resume.example.com").order.is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), stored)
            .await
            .expect("the placed order is recorded");
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        drop(first);
        assert_eq!(pebble.orders_received(), 1);

        let second = manager(
            ManagerConfig::new(file_store(&store).await, pebble_config(&pebble)),
            &cert,
            &responder,
        );
        let outcome = second.ensure(&cert, false).await.unwrap();
        assert!(matches!(outcome, Outcome::Issued(_)), "{outcome:?}");
        assert_eq!(
            pebble.orders_received(),
            1,
            "the restart placed a new order instead of resuming"
        );
        let state = read_state(&store).await;
        assert!(
            state.cert("resume.example.com").order.is_none(),
            "finished orders are forgotten"
        );
    })
    .await;
}

#[tokio::test]
async fn ten_thousand_stored_certificates_load_and_pass_without_turning_quadratic() {
    use base64::Engine;
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = rcgen::CertificateParams::new(vec!["scale.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem();
    let b64 = base64::engine::general_purpose::STANDARD;
    let (cert_b64, key_b64) = (b64.encode(&pem), b64.encode(key.serialize_pem()));
    const N: usize = 10_000;
    let entries: Vec<_> = (0..N)
        .map(|i| serde_json::json!({"domain": {"main": format!("c{i}.scale.test"), "sans": []}, "certificate": cert_b64, "key": key_b64, "Store": "default"}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    std::fs::write(
        &store,
        serde_json::json!({"berth": {"Account": null, "Certificates": entries}}).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let certs: Vec<_> = (0..N)
        .map(|i| managed(&[&format!("c{i}.scale.test")]))
        .collect();
    let account = AccountConfig::new(Ca::custom("https://127.0.0.1:9/dir", None).unwrap());

    // Generous: the benchmark holds the 2 s target; this catches start-up re-reading the
    // store per certificate again (that took minutes at 1,000).
    let started = std::time::Instant::now();
    let responder = Http01Responder::new();
    let solver: Arc<dyn Solver> = Arc::new(Http01Solver::new(responder));
    let m = CertManager::new(
        ManagerConfig::new(file_store(&store).await, account),
        certs,
        vec![solver],
    );
    let served = m.publish_from_store().await.unwrap();
    assert_eq!(served.certificates().len(), N);
    let results = m.ensure_all(false).await;
    assert!(
        results
            .iter()
            .all(|(_, r)| matches!(r, Ok(Outcome::Valid { .. })))
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(90),
        "10,000 certificates took {elapsed:?}"
    );
    eprintln!("10,000 certificates: loaded and one pass in {elapsed:?}");
}

/// Answers HTTP-01 like the real solver, but first makes the store unwritable — after the
/// order was placed and recorded, as a volume that fails mid-order would.
#[derive(Debug)]
struct StoreBreakingSolver {
    inner: Http01Solver,
    store: std::path::PathBuf,
}

impl Solver for StoreBreakingSolver {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Http01
    }
    fn present<'a>(
        &'a self,
        challenge: &'a berth_acme_core::challenge::PendingChallenge,
    ) -> berth_acme_core::challenge::SolverFuture<'a> {
        // A non-empty directory where acme.json was: nothing can be renamed over it,
        // even by root (file modes would not stop root).
        let _ = std::fs::remove_file(&self.store);
        let _ = std::fs::create_dir(&self.store);
        let _ = std::fs::write(self.store.join("blocker"), "x");
        self.inner.present(challenge)
    }
    fn cleanup<'a>(
        &'a self,
        challenge: &'a berth_acme_core::challenge::PendingChallenge,
    ) -> berth_acme_core::challenge::SolverFuture<'a> {
        self.inner.cleanup(challenge)
    }
}

#[tokio::test]
async fn a_certificate_the_store_cannot_take_is_served_kept_and_stored_later() {
    bounded(async {
        let pebble = Pebble::start().await;
        let responder = Http01Responder::new();
        let _listener = listen(pebble.http_port(), &responder).await;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("acme.json");
        let mut config = ManagerConfig::new(file_store(&store).await, pebble_config(&pebble));
        config.rescue_dir = Some(dir.path().to_path_buf());
        let cert = managed(&["unstored.example.com"]);
        let solver: Arc<dyn Solver> = Arc::new(StoreBreakingSolver {
            inner: Http01Solver::new(responder.clone()),
            store: store.clone(),
        });
        let m = CertManager::new(config, vec![cert.clone()], vec![solver]);

        let outcome = m.ensure(&cert, false).await.unwrap();
        assert!(matches!(outcome, Outcome::Issued(_)), "{outcome:?}");
        assert!(
            m.subscribe()
                .borrow()
                .lookup("unstored.example.com")
                .is_some(),
            "an issued certificate that could not be stored is still served"
        );
        assert!(!m.status()[0].stored);
        let rescued: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".berth-unstored-"))
            .collect();
        assert_eq!(rescued.len(), 1, "kept in a file beside the store");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&rescued[0]).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // The volume is back: the next pass stores the same certificate, orders nothing.
        std::fs::remove_dir_all(&store).unwrap();
        let outcome = m.ensure(&cert, false).await.unwrap();
        assert!(matches!(outcome, Outcome::Valid { .. }), "{outcome:?}");
        assert!(m.status()[0].stored);
        let (certs, _) = AcmeJson::read(&store).unwrap().certificates("berth");
        assert_eq!(certs.len(), 1);
        assert_eq!(
            certs[0].certificate.info().serial_hex,
            outcome.certificate().info().serial_hex
        );
        assert!(
            !rescued[0].exists(),
            "the rescue file is removed once stored"
        );
        assert_eq!(pebble.orders_received(), 1);
    })
    .await;
}

#[tokio::test]
async fn concurrent_first_orders_register_one_account_and_resume_with_it() {
    bounded(async {
        let pebble = Pebble::start().await;
        let responder = Http01Responder::new();
        let _listener = listen(pebble.http_port(), &responder).await;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("acme.json");
        let certs: Vec<_> = (0..4)
            .map(|i| managed(&[&format!("concurrent{i}.example.com")]))
            .collect();
        let mut config = ManagerConfig::new(file_store(&store).await, pebble_config(&pebble));
        config.concurrency = 4;
        let solver: Arc<dyn Solver> = Arc::new(Http01Solver::new(responder.clone()));
        let m = CertManager::new(config, certs, vec![solver]);
        for (names, result) in m.ensure_all(false).await {
            assert!(matches!(result, Ok(Outcome::Issued(_))), "{names}: {result:?}");
        }
        assert_eq!(
            pebble.accounts_registered(),
            1,
            "every order of a first run must use the one stored account (orders of other accounts cannot be resumed)"
        );
    })
    .await;
}
