//! What every shared store must do, written once and run against each backend (Redis,
//! etcd) with real servers.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::challenge::{Http01Responder, Http01Solver, Solver, serve_http01};
use berth_acme_core::store::{Change, Expect, Store, StoreError};
use berth_acme_core::{
    AccountConfig, Ca, CertManager, ChallengeKind, DomainSet, KeyType, ManagedCert, ManagerConfig,
    Outcome,
};
use berth_tests::Pebble;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

pub fn bytes(text: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(text.as_bytes().to_vec())
}

/// Compare-and-set on versions, reads, lists by prefix, deletes.
pub async fn values_versions_and_lists(store: &dyn Store) {
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

/// One holder at a time; the lease outlives its TTL while renewed; once `expire` removes
/// the lock (as expiry of a paused holder's lease would) and `b` takes over, `a`'s fenced
/// write is refused and `a` is told.
pub async fn one_lock_holder_and_a_taken_over_lease_cannot_write(
    a: &dyn Store,
    b: &dyn Store,
    ttl: Duration,
    expire: impl AsyncFnOnce(),
) {
    let lease = a.try_lock("certs/x", ttl).await.unwrap().unwrap();
    assert!(b.try_lock("certs/x", ttl).await.unwrap().is_none());
    tokio::time::sleep(ttl * 2 + ttl / 3).await;
    assert!(
        b.try_lock("certs/x", ttl).await.unwrap().is_none(),
        "renewed past its TTL"
    );
    assert!(!lease.lost().is_cancelled());
    a.put(
        "certs/x",
        bytes("{\"by\":\"a\"}"),
        Expect::Any,
        Some(&lease),
    )
    .await
    .unwrap();

    expire().await;
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
    // The old holder releasing its lost lease leaves the new holder's lock alone.
    a.unlock(lease).await.unwrap();
    assert!(a.try_lock("certs/x", ttl).await.unwrap().is_none());
    b.unlock(taken).await.unwrap();
    assert!(a.try_lock("certs/x", ttl).await.unwrap().is_some());
}

/// What an [`Instrumented`](berth_stores::Instrumented) `a` counted in
/// [`one_lock_holder_and_a_taken_over_lease_cannot_write`]: two leases taken, one lost,
/// one fenced write refused, and every operation timed.
pub fn takeover_counted(a: &dyn Store) {
    let stats = a.stats().expect("an instrumented store counts");
    assert_eq!(stats.leases_gained(), 2);
    assert_eq!(stats.leases_lost(), 1);
    assert_eq!(stats.fenced_writes(), 1);
    let ops: Vec<(&str, u64, u64)> = stats
        .latencies()
        .iter()
        .map(|l| (l.op.name(), l.count, l.errors))
        .collect();
    assert_eq!(
        &ops[..],
        &[
            ("get", 0, 0),
            ("put", 2, 0),
            ("delete", 0, 0),
            ("list", 0, 0),
            ("lock", 3, 0),
            ("unlock", 1, 0)
        ]
    );
}

/// A write by one replica reaches another's change stream.
pub async fn another_replicas_write_is_announced(watcher: &dyn Store, writer: &dyn Store) {
    let mut changes = watcher.changes();
    // The subscription may still be coming up: write until the watcher hears it.
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

/// A certificate issued by Pebble through one replica's store is found by a second
/// replica without a second order.
pub async fn a_certificate_is_issued_and_found_by_a_second_replica(
    connect: impl AsyncFn() -> Arc<dyn Store>,
    name: &str,
) {
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
        DomainSet::parse([name]).unwrap(),
        ChallengeKind::Http01,
        KeyType::Ec256,
    )
    .unwrap();
    let manager = |store: Arc<dyn Store>| {
        let solver: Arc<dyn Solver> = Arc::new(Http01Solver::new(responder.clone()));
        CertManager::new(
            ManagerConfig::new(store, account.clone()),
            vec![cert.clone()],
            vec![solver],
        )
    };
    let issued = manager(connect().await).ensure(&cert, false).await.unwrap();
    assert!(matches!(issued, Outcome::Issued(_)), "{issued:?}");
    let second = manager(connect().await);
    assert!(
        second
            .publish_from_store()
            .await
            .unwrap()
            .lookup(name)
            .is_some()
    );
    let kept = second.ensure(&cert, false).await.unwrap();
    assert!(matches!(kept, Outcome::Valid { .. }), "{kept:?}");
    assert_eq!(
        kept.certificate().info().serial_hex,
        issued.certificate().info().serial_hex
    );
    assert_eq!(pebble.orders_received(), 1);
    let store = connect().await;
    assert_eq!(
        store
            .list(berth_acme_core::store::records::ACCOUNTS)
            .await
            .unwrap()
            .len(),
        1,
        "the account is shared"
    );
}
