//! Graceful shutdown: stop accepting, let requests in flight finish, then close.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use berth_proxy::Limits;
use support::*;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn in_flight_requests_finish_after_shutdown_starts_and_new_connections_are_refused() {
    let ca = TestCa::new();
    let upstream = start_upstream().await;
    let proxy = start_proxy(www_in_front_of(&ca, &upstream.url())).await;
    let config = client_config(&ca.pem, &[b"http/1.1"]);

    // An idle kept-alive connection, and one with a request the upstream holds.
    let mut idle = tls_connect(proxy.tls, "www.example.com", config.clone())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut idle,
        b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(read_head(&mut idle).await.starts_with("HTTP/1.1 200"));
    let slow = request_held_at_gate(proxy.tls, config, &upstream).await;

    proxy.shutdown.cancel();
    eventually_async("both listeners to refuse connections", || async {
        refused(proxy.tls).await && refused(proxy.http).await
    })
    .await;
    // The idle connection is closed rather than kept until the deadline.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "idle connection kept open during shutdown");
    assert!(
        !proxy.task.is_finished(),
        "serve returned with a request in flight"
    );

    release_gate(&upstream, slow).await;
    proxy.returned("once drained").await;
}

#[tokio::test]
async fn requests_still_running_at_the_deadline_are_cut_off() {
    let ca = TestCa::new();
    let upstream = start_upstream().await;
    let mut limits = Limits::default();
    limits.drain_timeout = Duration::from_millis(200);
    let proxy = start_proxy(www_in_front_of(&ca, &upstream.url()).limits(limits)).await;
    let stream = tls_connect(
        proxy.tls,
        "www.example.com",
        client_config(&ca.pem, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let mut sender = http1(stream).await;
    let hung =
        tokio::spawn(async move { sender.send_request(get("www.example.com", "/hang")).await });
    tokio::time::timeout(DEADLINE, upstream.control.arrived.notified())
        .await
        .expect("the request reached the upstream");

    proxy.shutdown.cancel();
    let metrics = proxy.returned("after the deadline").await;
    let outcome = tokio::time::timeout(DEADLINE, hung).await.unwrap().unwrap();
    assert!(
        outcome.is_err(),
        "the hung request got a response: {outcome:?}"
    );
    assert_eq!(metrics.snapshot().connections_active, 0);
}
