//! The admin server against a real Redis store: a burst of `/api/certs` requests asks the
//! store who holds the leases once (one `SCAN`), every answer names the holder, and the
//! store is asked again once its answer is two seconds old.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_acme_core::store::Store;
use berth_acme_core::{
    AccountConfig, Ca, CertManager, ChallengeKind, DomainSet, KeyType, ManagedCert, ManagerConfig,
};
use berth_admin::{AdminClient, AdminState, OrderCounters};
use berth_stores::{RedisOptions, RedisStore};
use berth_tests::Redis;
use tokio_util::sync::CancellationToken;

/// How many `SCAN` commands Redis has run (its `INFO commandstats`).
async fn scans(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_scan:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

#[tokio::test]
async fn a_burst_of_api_requests_asks_the_store_for_lease_holders_once() {
    let redis = Redis::start();
    let store: Arc<dyn Store> = RedisStore::connect(&redis.url(), RedisOptions::default())
        .await
        .unwrap();
    let domains = DomainSet::parse(["cache.example.com"]).unwrap();
    let managed = ManagedCert::new(domains.clone(), ChallengeKind::Http01, KeyType::Ec256).unwrap();
    let manager = CertManager::new(
        ManagerConfig::new(Arc::clone(&store), AccountConfig::new(Ca::default())),
        vec![managed],
        Vec::new(),
    );
    // Another replica is ordering the set.
    let lease = store
        .try_lock(&format!("certs/{}", domains.key()), Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the lock was free");
    let state = AdminState::new(
        Arc::new(ArcSwap::from_pointee(manager)),
        berth_proxy::Metrics::default(),
        Arc::new(OrderCounters::default()),
    );
    let shutdown = CancellationToken::new();
    let server = berth_admin::serve("127.0.0.1:0".parse().unwrap(), state, shutdown.clone())
        .await
        .unwrap();
    let client = AdminClient::new(server.local_addr());
    let timeout = Duration::from_secs(5);

    let before = scans(&redis.url()).await;
    let answers =
        futures_util::future::join_all((0..20).map(|_| client.certificates(timeout))).await;
    let after_burst = scans(&redis.url()).await;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let holder = format!("{}:{}", host.trim(), std::process::id());
    for answer in answers {
        let list = answer.unwrap();
        assert_eq!(list.certificates.len(), 1);
        assert_eq!(list.certificates[0].domains, domains);
        assert_eq!(
            list.certificates[0].lease_holder.as_deref(),
            Some(holder.as_str())
        );
    }
    assert_eq!(
        after_burst - before,
        1,
        "20 requests, SCANs: {}",
        after_burst - before
    );

    // Two seconds later the store is asked again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let list = client.certificates(timeout).await.unwrap();
    assert_eq!(scans(&redis.url()).await - after_burst, 1);
    assert_eq!(
        list.certificates[0].lease_holder.as_deref(),
        Some(holder.as_str())
    );
    drop(lease);

    shutdown.cancel();
    server.stopped().await;
}
