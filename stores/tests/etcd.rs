//! The etcd store against a real etcd: compare-and-set on revisions, a fenced write after
//! a lock is taken over, lease renewal past the TTL, changes seen by another replica, an
//! outage, and a certificate issued by Pebble through it and found by a second replica.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::challenge::{Http01Responder, Http01Solver, Solver, serve_http01};
use berth_acme_core::store::{Change, Expect, Store, StoreError};
use berth_acme_core::{
    AccountConfig, Ca, CertManager, ChallengeKind, DomainSet, KeyType, ManagedCert, ManagerConfig,
    Outcome,
};
use berth_stores::{EtcdOptions, EtcdStore};
use berth_tests::{Etcd, Pebble};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

fn bytes(text: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(text.as_bytes().to_vec())
}

async fn connect(etcd: &Etcd) -> Arc<EtcdStore> {
    EtcdStore::connect(&[etcd.addr().to_string()], false, EtcdOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn values_revisions_and_lists() {
    let etcd = Etcd::start();
    let store = connect(&etcd).await;
    assert!(store.get("certs/a").await.unwrap().is_none());
    let v1 = store
        .put("certs/a", bytes("{\"n\":1}"), Expect::Absent, None)
        .await
        .unwrap();
    assert!(matches!(
        store
            .put("certs/a", bytes("{}"), Expect::Absent, None)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let v2 = store
        .put("certs/a", bytes("{\"n\":2}"), Expect::Version(v1), None)
        .await
        .unwrap();
    assert!(v2 > v1);
    assert!(matches!(
        store
            .put("certs/a", bytes("{}"), Expect::Version(v1), None)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let got = store.get("certs/a").await.unwrap().unwrap();
    assert_eq!(&*got.value, b"{\"n\":2}");
    assert_eq!(got.version, v2);
    for key in ["certs/b", "state/a"] {
        store
            .put(key, bytes("{}"), Expect::Any, None)
            .await
            .unwrap();
    }
    assert_eq!(store.list("certs/").await.unwrap(), ["certs/a", "certs/b"]);
    assert!(store.delete("certs/b", Expect::Any, None).await.unwrap());
    assert!(!store.delete("certs/b", Expect::Any, None).await.unwrap());
    assert_eq!(store.list("certs/").await.unwrap(), ["certs/a"]);
}

#[tokio::test]
async fn one_lock_holder_and_a_taken_over_lease_cannot_write() {
    let etcd = Etcd::start();
    let a = connect(&etcd).await;
    let b = connect(&etcd).await;
    let ttl = Duration::from_secs(3);
    let lease = a.try_lock("certs/x", ttl).await.unwrap().unwrap();
    assert!(b.try_lock("certs/x", ttl).await.unwrap().is_none());
    // Kept alive at a third of the TTL: still held well past it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(b.try_lock("certs/x", ttl).await.unwrap().is_none());
    assert!(!lease.lost().is_cancelled());
    a.put(
        "certs/x",
        bytes("{\"by\":\"a\"}"),
        Expect::Any,
        Some(&lease),
    )
    .await
    .unwrap();

    // The lock goes away (as if A's lease expired while A was paused); B takes over: A's
    // next write is refused and A is told.
    let mut raw = etcd_client::Client::connect([format!("http://{}", etcd.addr())], None)
        .await
        .unwrap();
    raw.delete("berth/lock/certs/x", None).await.unwrap();
    let taken = b.try_lock("certs/x", ttl).await.unwrap().unwrap();
    b.put(
        "certs/x",
        bytes("{\"by\":\"b\"}"),
        Expect::Any,
        Some(&taken),
    )
    .await
    .unwrap();
    let err = a
        .put(
            "certs/x",
            bytes("{\"by\":\"a\"}"),
            Expect::Any,
            Some(&lease),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert!(lease.lost().is_cancelled());
    assert_eq!(
        &*b.get("certs/x").await.unwrap().unwrap().value,
        b"{\"by\":\"b\"}"
    );
    b.unlock(taken).await.unwrap();
    assert!(a.try_lock("certs/x", ttl).await.unwrap().is_some());
}

#[tokio::test]
async fn another_replicas_write_is_announced() {
    let etcd = Etcd::start();
    let watcher = connect(&etcd).await;
    let mut changes = watcher.changes();
    let writer = connect(&etcd).await;
    let heard = async {
        loop {
            writer
                .put("certs/new", bytes("{}"), Expect::Any, None)
                .await
                .unwrap();
            let deadline = tokio::time::sleep(Duration::from_millis(500));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    change = changes.recv() => {
                        if change.unwrap() == Change::Put("certs/new".into()) {
                            return;
                        }
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), heard)
        .await
        .expect("the change reaches the other replica");
}

#[tokio::test]
async fn an_outage_fails_calls_and_the_store_recovers() {
    let mut etcd = Etcd::start();
    let store = connect(&etcd).await;
    store
        .put("certs/a", bytes("{}"), Expect::Any, None)
        .await
        .unwrap();
    etcd.stop();
    let err = store.get("certs/a").await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err}");
    assert!(err.to_string().contains("etcd://127.0.0.1"), "{err}");
    etcd.restart();
    let back = async {
        loop {
            if let Ok(Some(_)) = store.get("certs/a").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), back)
        .await
        .expect("the store reconnects and the data is still there");
}

#[tokio::test]
async fn a_certificate_is_issued_through_etcd_and_found_by_a_second_replica() {
    let etcd = Etcd::start();
    let pebble = Pebble::start().await;
    let responder = Http01Responder::new();
    let _listener = serve_http01(
        format!("127.0.0.1:{}", pebble.http_port()).parse().unwrap(),
        responder.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let account = AccountConfig {
        agree_tos: true,
        ca_roots_pem: Some(pebble.tls_root_pem().to_owned()),
        ..AccountConfig::new(Ca::custom(&pebble.directory_url(), None).unwrap())
    };
    let cert = ManagedCert::new(
        DomainSet::parse(["etcd.example.com"]).unwrap(),
        ChallengeKind::Http01,
        KeyType::Ec256,
    )
    .unwrap();
    let manager = |store: Arc<EtcdStore>| {
        let solver: Arc<dyn Solver> = Arc::new(Http01Solver::new(responder.clone()));
        CertManager::new(
            ManagerConfig::new(store, account.clone()),
            vec![cert.clone()],
            vec![solver],
        )
    };
    let issued = manager(connect(&etcd).await)
        .ensure(&cert, false)
        .await
        .unwrap();
    assert!(matches!(issued, Outcome::Issued(_)), "{issued:?}");
    let second = manager(connect(&etcd).await);
    let kept = second.ensure(&cert, false).await.unwrap();
    assert!(matches!(kept, Outcome::Valid { .. }), "{kept:?}");
    assert_eq!(
        kept.certificate().info().serial_hex,
        issued.certificate().info().serial_hex
    );
    assert_eq!(pebble.orders_received(), 1);
}
