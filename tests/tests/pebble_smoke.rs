//! The harness itself: Pebble starts, its directory answers, and it stops on drop.

use berth_tests::{Pebble, https_get};

#[tokio::test]
async fn pebble_starts_and_serves_its_directory() {
    let pebble = Pebble::start().await;
    let response = https_get(&pebble.directory_url(), pebble.tls_root_pem())
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let directory: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    for field in ["newAccount", "newNonce", "newOrder", "revokeCert"] {
        assert!(
            directory[field].is_string(),
            "directory lacks {field}: {directory}"
        );
    }
    let root = pebble.issuing_root_pem().await;
    assert!(root.contains("BEGIN CERTIFICATE"), "{root}");
}

#[tokio::test]
async fn two_pebbles_run_side_by_side_as_staging_and_production() {
    let staging = Pebble::start().await;
    let production = Pebble::start().await;
    assert_ne!(staging.directory_url(), production.directory_url());
    let a = staging.issuing_root_pem().await;
    let b = production.issuing_root_pem().await;
    assert_ne!(a, b, "each Pebble generates its own issuing root");
}

#[tokio::test]
async fn pebble_stops_when_dropped() {
    let pebble = Pebble::start().await;
    let url = pebble.directory_url();
    let root = pebble.tls_root_pem().to_owned();
    drop(pebble);
    assert!(
        https_get(&url, &root).await.is_err(),
        "pebble still answers after drop"
    );
}
