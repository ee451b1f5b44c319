//! The admin API through its own client, on a file store (nothing is ordered): the rows
//! of `/api/certs`, and how `/api/renew` refuses what it cannot do — as statuses the
//! client turns into errors a caller can act on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_acme_core::store::FileStore;
use berth_acme_core::{
    AccountConfig, Ca, CertManager, ChallengeKind, DomainName, DomainSet, KeyType, ManagedCert,
    ManagerConfig,
};
use berth_admin::api::RenewRequest;
use berth_admin::{AdminClient, AdminServer, AdminState, ClientError, OrderCounters};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn start(dir: &std::path::Path, ca: Ca) -> (AdminServer, CancellationToken) {
    let store = FileStore::open(&dir.join("acme.json"), "berth")
        .await
        .unwrap();
    let domains = DomainSet::parse(["api.example.com", "www.api.example.com"]).unwrap();
    let managed = ManagedCert::new(domains, ChallengeKind::Http01, KeyType::Ec256).unwrap();
    let manager = CertManager::new(
        ManagerConfig::new(store, AccountConfig::new(ca)),
        vec![managed],
        Vec::new(),
    );
    let state = AdminState::new(
        Arc::new(ArcSwap::from_pointee(manager)),
        berth_proxy::Metrics::default(),
        Arc::new(OrderCounters::default()),
    );
    let shutdown = CancellationToken::new();
    let server = berth_admin::serve("127.0.0.1:0".parse().unwrap(), state, shutdown.clone())
        .await
        .unwrap();
    (server, shutdown)
}

#[tokio::test]
async fn rows_and_refusals_reach_the_client_typed() {
    let dir = tempfile::tempdir().unwrap();
    // A custom CA has no staging endpoint, so a dry run has nowhere to order.
    let ca = Ca::custom("https://acme.invalid/directory", None).unwrap();
    let (server, shutdown) = start(dir.path(), ca).await;
    let client = AdminClient::new(server.local_addr());

    let list = client.certificates(TIMEOUT).await.unwrap();
    assert_eq!(list.certificates.len(), 1);
    let row = &list.certificates[0];
    assert_eq!(
        row.domains.to_string(),
        "api.example.com,www.api.example.com"
    );
    assert!(!row.valid && row.not_after.is_none() && row.lease_holder.is_none());

    // A name no certificate carries: 404, the caller's to fix, naming what there is.
    let unknown = RenewRequest {
        names: vec![DomainName::parse("other.example.com").unwrap()],
        ..RenewRequest::default()
    };
    let error = client.renew(&unknown, TIMEOUT).await.unwrap_err();
    assert!(error.is_bad_request(), "{error}");
    assert!(
        matches!(&error, ClientError::Answered { status: 404, message, .. }
            if message.contains("no managed certificate has the name other.example.com")
                && message.contains("api.example.com,www.api.example.com")),
        "{error}"
    );

    // A dry run without a staging CA: 400, with what to configure.
    let dry_run = RenewRequest {
        dry_run: true,
        ..RenewRequest::default()
    };
    let error = client.renew(&dry_run, TIMEOUT).await.unwrap_err();
    assert!(error.is_bad_request(), "{error}");
    assert!(error.to_string().contains("no staging endpoint"), "{error}");

    shutdown.cancel();
    server.stopped().await;
}

#[tokio::test]
async fn a_malformed_name_in_the_query_is_a_bad_request_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (server, shutdown) = start(dir.path(), Ca::default()).await;
    let client = AdminClient::new(server.local_addr());
    let url = client.url("/api/renew?names=api.example.com,not%20a%20name");
    let (status, body) = post(&url).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"not a name\" is not a name"), "{body}");

    shutdown.cancel();
    server.stopped().await;
}

/// `POST url` with the request header, as `berth renew` sends it; status and body.
async fn post(url: &str) -> (u16, String) {
    let uri: hyper::Uri = url.parse().unwrap();
    let authority = uri.authority().unwrap().to_string();
    let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {authority}\r\nX-Berth-Request: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        uri.path_and_query().unwrap()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}
