//! The etcd store against a real etcd: compare-and-set on revisions, a fenced write after
//! a lock is taken over, lease renewal past the TTL, changes seen by another replica, an
//! outage, and a certificate issued by Pebble through it and found by a second replica.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use berth_acme_core::store::{Expect, Store, StoreError};
use berth_stores::{EtcdOptions, EtcdStore};
use berth_tests::Etcd;
use conformance::bytes;

async fn connect(etcd: &Etcd) -> Arc<EtcdStore> {
    EtcdStore::connect(&[etcd.addr().to_string()], false, EtcdOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn values_revisions_and_lists() {
    let etcd = Etcd::start();
    conformance::values_versions_and_lists(connect(&etcd).await.as_ref()).await;
}

#[tokio::test]
async fn one_lock_holder_and_a_taken_over_lease_cannot_write() {
    let etcd = Etcd::start();
    let (a, b) = (
        berth_stores::Instrumented::wrap(connect(&etcd).await),
        connect(&etcd).await,
    );
    let addr = etcd.addr();
    conformance::one_lock_holder_and_a_taken_over_lease_cannot_write(
        a.as_ref(),
        b.as_ref(),
        Duration::from_secs(3),
        async || {
            let mut raw = etcd_client::Client::connect([format!("http://{addr}")], None)
                .await
                .unwrap();
            raw.delete("berth/lock/certs/x", None).await.unwrap();
        },
    )
    .await;
    conformance::takeover_counted(a.as_ref());
}

#[tokio::test]
async fn another_replicas_write_is_announced() {
    let etcd = Etcd::start();
    let (watcher, writer) = (connect(&etcd).await, connect(&etcd).await);
    conformance::another_replicas_write_is_announced(watcher.as_ref(), writer.as_ref()).await;
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
    conformance::a_certificate_is_issued_and_found_by_a_second_replica(
        async || connect(&etcd).await as Arc<dyn Store>,
        "etcd.example.com",
    )
    .await;
}
