//! The Redis store against a real `redis-server`: compare-and-set, fenced writes after a
//! lease is taken over, lock renewal, changes seen by another replica, outages and bad
//! credentials — and a certificate issued by Pebble through it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::Setting;
use berth_acme_core::store::{Expect, Store, StoreError};
use berth_secrets::Secret;
use berth_stores::{RedisOptions, RedisStore};
use berth_tests::Redis;
use conformance::bytes;

async fn connect(redis: &Redis) -> Arc<RedisStore> {
    RedisStore::connect(&redis.url(), RedisOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn values_versions_and_lists() {
    let redis = Redis::start();
    conformance::values_versions_and_lists(connect(&redis).await.as_ref()).await;
}

#[tokio::test]
async fn one_lock_holder_and_a_taken_over_lease_cannot_write() {
    let redis = Redis::start();
    let (a, b) = (
        berth_stores::Instrumented::wrap(connect(&redis).await),
        connect(&redis).await,
    );
    let url = redis.url();
    conformance::one_lock_holder_and_a_taken_over_lease_cannot_write(
        a.as_ref(),
        b.as_ref(),
        Duration::from_secs(2),
        async || {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut raw = client.get_multiplexed_async_connection().await.unwrap();
            let _: i64 = redis::cmd("DEL")
                .arg("{berth/}lock:certs/x")
                .query_async(&mut raw)
                .await
                .unwrap();
        },
    )
    .await;
    conformance::takeover_counted(a.as_ref());
}

#[tokio::test]
async fn another_replicas_write_is_announced() {
    let redis = Redis::start();
    let (watcher, writer) = (connect(&redis).await, connect(&redis).await);
    conformance::another_replicas_write_is_announced(watcher.as_ref(), writer.as_ref()).await;
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
    assert_eq!(err.setting(), Some(Setting::StorePassword));
    let text = err.to_string();
    assert!(text.contains("check the password"), "{text}");
    assert!(!text.contains("nope"), "{text}");
    let none = RedisStore::connect(&redis.url(), RedisOptions::default())
        .await
        .unwrap_err();
    assert_eq!(none.setting(), Some(Setting::StorePassword), "{none}");
    let right = RedisOptions {
        password: Some(Secret::new("s3cret-pass".into())),
        ..RedisOptions::default()
    };
    RedisStore::connect(&redis.url(), right).await.unwrap();

    let in_url = format!("redis://:s3cret-pass@{}/0", redis.addr());
    let err = RedisStore::connect(&in_url, RedisOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.setting(), Some(Setting::StorePassword));
    let err = err.to_string();
    assert!(
        err.contains("`password` option") && !err.contains("s3cret"),
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
    conformance::a_certificate_is_issued_and_found_by_a_second_replica(
        async || connect(&redis).await as Arc<dyn Store>,
        "redis.example.com",
    )
    .await;
}
