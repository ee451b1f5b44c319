//! The Redis store against a real `redis-server`: compare-and-set, fenced writes after a
//! lease is taken over, lock renewal, changes seen by another replica, outages and bad
//! credentials — and a certificate issued by Pebble through it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::challenge::{Http01Responder, Http01Solver, Solver, serve_http01};
use berth_acme_core::store::{Change, Expect, Store, StoreError, records};
use berth_acme_core::{
    AccountConfig, Ca, CertManager, ChallengeKind, DomainSet, KeyType, ManagedCert, ManagerConfig,
    Outcome,
};
use berth_secrets::Secret;
use berth_stores::{RedisOptions, RedisStore};
use berth_tests::{Pebble, Redis};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

fn bytes(text: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(text.as_bytes().to_vec())
}

async fn connect(redis: &Redis) -> Arc<RedisStore> {
    RedisStore::connect(&redis.url(), RedisOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn values_versions_and_lists() {
    let redis = Redis::start();
    let store = connect(&redis).await;
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
    store
        .put("certs/b", bytes("{}"), Expect::Any, None)
        .await
        .unwrap();
    store
        .put("state/a", bytes("{}"), Expect::Any, None)
        .await
        .unwrap();
    assert_eq!(store.list("certs/").await.unwrap(), ["certs/a", "certs/b"]);
    assert!(store.delete("certs/b", Expect::Any, None).await.unwrap());
    assert!(!store.delete("certs/b", Expect::Any, None).await.unwrap());
    assert_eq!(store.list("certs/").await.unwrap(), ["certs/a"]);
}

#[tokio::test]
async fn one_lock_holder_and_a_taken_over_lease_cannot_write() {
    let redis = Redis::start();
    let a = connect(&redis).await;
    let b = connect(&redis).await;
    let ttl = Duration::from_secs(2);
    let lease = a.try_lock("certs/x", ttl).await.unwrap().unwrap();
    assert!(b.try_lock("certs/x", ttl).await.unwrap().is_none());

    // Renewed at a third of the TTL: still held well past it.
    tokio::time::sleep(Duration::from_millis(4500)).await;
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

    // A paused holder's lock expires and B takes over (simulated by deleting the key,
    // as expiry would): A's next write is refused and A is told.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg("{berth/}lock:certs/x")
        .query_async(&mut raw)
        .await
        .unwrap();
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
    let redis = Redis::start();
    let watcher = connect(&redis).await;
    let mut changes = watcher.changes();
    let writer = connect(&redis).await;
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

#[tokio::test]
async fn an_outage_fails_calls_and_the_store_recovers() {
    let mut redis = Redis::start();
    let store = connect(&redis).await;
    store
        .put("certs/a", bytes("{}"), Expect::Any, None)
        .await
        .unwrap();
    redis.stop();
    let err = store.get("certs/a").await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err}");
    assert!(err.to_string().contains("redis://127.0.0.1"), "{err}");
    redis.restart();
    // Data is gone (no persistence in the test server), but the store works again.
    let back = async {
        loop {
            if store
                .put("certs/b", bytes("{}"), Expect::Any, None)
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), back)
        .await
        .expect("the store reconnects after the outage");
}

#[tokio::test]
async fn bad_credentials_and_addresses_are_named_with_the_fix() {
    let redis = Redis::start_with_password("s3cret-pass");
    let wrong = RedisOptions {
        password: Some(Secret::new("nope".into())),
        ..RedisOptions::default()
    };
    let err = RedisStore::connect(&redis.url(), wrong).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("--store-password-file"), "{text}");
    assert!(!text.contains("nope"), "{text}");
    let none = RedisStore::connect(&redis.url(), RedisOptions::default())
        .await
        .unwrap_err();
    assert!(none.to_string().contains("--store-password-file"), "{none}");
    let right = RedisOptions {
        password: Some(Secret::new("s3cret-pass".into())),
        ..RedisOptions::default()
    };
    RedisStore::connect(&redis.url(), right).await.unwrap();

    let in_url = format!("redis://:s3cret-pass@{}/0", redis.addr());
    let err = RedisStore::connect(&in_url, RedisOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--store-password-file") && !err.contains("s3cret"),
        "{err}"
    );

    drop(redis);
    let port = berth_tests::free_port();
    let err = RedisStore::connect(
        &format!("redis://127.0.0.1:{port}/0"),
        RedisOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn a_certificate_is_issued_and_kept_through_redis() {
    let redis = Redis::start();
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
        DomainSet::parse(["redis.example.com"]).unwrap(),
        ChallengeKind::Http01,
        KeyType::Ec256,
    )
    .unwrap();
    let manager = |store: Arc<RedisStore>| {
        let solver: Arc<dyn Solver> = Arc::new(Http01Solver::new(responder.clone()));
        CertManager::new(
            ManagerConfig::new(store, account.clone()),
            vec![cert.clone()],
            vec![solver],
        )
    };
    let first = manager(connect(&redis).await);
    let issued = first.ensure(&cert, false).await.unwrap();
    assert!(matches!(issued, Outcome::Issued(_)), "{issued:?}");

    // A second replica finds it without ordering.
    let second = manager(connect(&redis).await);
    let set = second.publish_from_store().await.unwrap();
    assert!(set.lookup("redis.example.com").is_some());
    let kept = second.ensure(&cert, false).await.unwrap();
    assert!(matches!(kept, Outcome::Valid { .. }), "{kept:?}");
    assert_eq!(
        kept.certificate().info().serial_hex,
        issued.certificate().info().serial_hex
    );
    assert_eq!(pebble.orders_received(), 1);
    let store = connect(&redis).await;
    assert_eq!(
        store.list(records::ACCOUNTS).await.unwrap().len(),
        1,
        "the account is shared"
    );
}
