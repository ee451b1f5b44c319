//! The admin server's connection limits (issue 17 point 8): a client that sends its
//! headers too slowly, or connects and says nothing, is disconnected after the header
//! timeout; connections beyond the cap are answered 503 and closed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use berth_tests::Pebble;
use support::{Sidecar, poll, start_upstream};

/// The admin server's limits (see `admin/src/server.rs`).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 64;

/// Reads until the server closes; how long that took, and what it sent.
fn until_closed(mut stream: TcpStream) -> (Duration, String) {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(HEADER_READ_TIMEOUT * 3))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected_and_connections_are_capped() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::serving(
        &pebble,
        dir.path(),
        start_upstream(),
        &["limits.example.com"],
        &[],
    )
    .await;
    let admin = sidecar.admin;
    // wait_ready's HTTP client leaves kept-alive connections behind; they close when this
    // runtime gets to run their tasks. Until then they hold slots of the cap.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A slowloris client: a request line and one header, then nothing.
    let mut slow = TcpStream::connect(admin).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    // A client that connects and says nothing; then enough idle ones to fill the cap.
    let silent = TcpStream::connect(admin).unwrap();
    let idle: Vec<TcpStream> = (2..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(admin).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, body) = sidecar.admin_raw("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1");
    assert_eq!(
        status,
        503,
        "connection {} was served: {body}",
        MAX_CONNECTIONS + 1
    );
    assert!(body.contains("too many admin connections"), "{body}");

    let slow = std::thread::spawn(move || until_closed(slow));
    let silent = std::thread::spawn(move || until_closed(silent));
    for (what, waiter) in [("slowloris", slow), ("silent", silent)] {
        let (took, answer) = waiter.join().unwrap();
        assert!(
            took < HEADER_READ_TIMEOUT + Duration::from_secs(5),
            "the {what} connection stayed open {took:?}"
        );
        assert!(!answer.contains("200 OK"), "{what}: {answer}");
    }
    drop(idle);
    // The slots are free again.
    let mut last = (0, String::new());
    let served = poll(
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || {
            last = sidecar.admin_raw("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1");
            (last.0 == 200).then_some(())
        },
    )
    .await;
    assert!(served.is_some(), "still refused: {} {}", last.0, last.1);
}
