//! `berth run --proxy-protocol` behind a stand-in L4 load balancer: a TCP relay that
//! writes a PROXY v1 header and then passes curl's TLS through, as AWS NLB or HAProxy
//! `send-proxy` do (issue 17 point 1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use berth_tests::Pebble;
use support::{Sidecar, berth, curl, issuing_root, read_request_head};

/// An HTTP/1.1 app on 127.0.0.1 that answers every request with its request head.
fn start_echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Some(head) = read_request_head(&mut stream) else {
                    return;
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    head.len()
                );
                let _ = stream.write_all(&head);
            });
        }
    });
    addr
}

/// A TCP relay on 127.0.0.1 to `target` that first sends `header` on each connection.
fn start_relay(target: SocketAddr, header: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(mut server) = TcpStream::connect(target) else {
                continue;
            };
            if server.write_all(header).is_err() {
                continue;
            }
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut server_out);
                let _ = server_out.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut server, mut client) = (server, client);
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

#[tokio::test]
async fn the_client_address_comes_from_a_trusted_load_balancers_proxy_header() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::serving(
        &pebble,
        dir.path(),
        start_echo_upstream(),
        &["pp.example.com"],
        &["--trusted-proxies", "127.0.0.1", "--proxy-protocol"],
    )
    .await;
    let root = issuing_root(&pebble, dir.path()).await;
    let berth_tls: SocketAddr = format!("127.0.0.1:{}", sidecar.tls_port).parse().unwrap();

    let relay = start_relay(berth_tls, b"PROXY TCP4 192.0.2.7 127.0.0.1 51234 443\r\n");
    let (status, body) = curl("pp.example.com", relay, "/headers", &root);
    assert_eq!(status, 200, "{body}\n{}", sidecar.output());
    let body = body.to_ascii_lowercase();
    assert!(body.contains("x-forwarded-for: 192.0.2.7\r\n"), "{body}");
    assert!(body.contains("x-real-ip: 192.0.2.7\r\n"), "{body}");

    // Straight to berth, no header: the peer's own address.
    let (status, body) = curl("pp.example.com", sidecar.tls_port, "/headers", &root);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("x-forwarded-for: 127.0.0.1\r\n"),
        "{body}"
    );
}

#[test]
fn proxy_protocol_without_trusted_proxies_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let done = berth(&[
        "run",
        "-d",
        "pp.example.com",
        "--upstream",
        "http://127.0.0.1:9",
        "--agree-tos",
        "--proxy-protocol",
        "--store",
        store.to_str().unwrap(),
        "--tls-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(done.code, 2, "{}{}", done.stdout, done.stderr);
    assert!(
        done.stderr
            .contains("--proxy-protocol needs --trusted-proxies"),
        "{}",
        done.stderr
    );
    assert!(!store.exists(), "the store was opened before the refusal");
}
