//! Certificate reloads while clients keep connecting: from the certificate manager's
//! watch channel and from PEM files rewritten by another process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_proxy::{CertSource, Error, Proxy, Routes, Upstream};
use support::*;
use tokio::sync::{Mutex, watch};

/// Load bounds: never more than this many requests or this long.
const MAX_REQUESTS: usize = 20_000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(20);
const CLIENTS: usize = 8;
/// Requests per kept-alive connection before it reconnects.
const REQUESTS_PER_CONNECTION: usize = 25;

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    requests: AtomicUsize,
    new_connections: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// HTTPS clients against `addr` until `stop` (or the bounds): even-numbered clients make
/// a new connection (full handshake) per request, odd ones keep connections alive.
fn start_load(addr: SocketAddr, ca_pem: &str) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load::default());
    let started = Instant::now();
    let tasks = (0..CLIENTS)
        .map(|client| {
            let load = Arc::clone(&load);
            let config = if client % 2 == 0 {
                fresh_client_config(ca_pem)
            } else {
                client_config(ca_pem, &[b"http/1.1"])
            };
            let per_connection = if client % 2 == 0 {
                1
            } else {
                REQUESTS_PER_CONNECTION
            };
            tokio::spawn(async move {
                'connections: while !load.stop.load(Ordering::Relaxed)
                    && started.elapsed() < MAX_LOAD_TIME
                {
                    let stream = match tls_connect(addr, "www.example.com", config.clone()).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            load.failures.lock().await.push(format!("connect: {e}"));
                            continue;
                        }
                    };
                    load.new_connections.fetch_add(1, Ordering::Relaxed);
                    let mut sender = http1(stream).await;
                    for _ in 0..per_connection {
                        if load.requests.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS
                            || load.stop.load(Ordering::Relaxed)
                        {
                            break 'connections;
                        }
                        let response = tokio::time::timeout(
                            DEADLINE,
                            sender.send_request(get("www.example.com", "/")),
                        )
                        .await;
                        match response {
                            Ok(Ok(r)) if r.status() == 200 => {
                                let body = http_body_util::BodyExt::collect(r.into_body()).await;
                                if body.is_err() {
                                    load.failures.lock().await.push("body cut off".into());
                                }
                            }
                            Ok(Ok(r)) => {
                                load.failures
                                    .lock()
                                    .await
                                    .push(format!("status {}", r.status()));
                            }
                            Ok(Err(e)) => load.failures.lock().await.push(format!("request: {e}")),
                            Err(_) => load.failures.lock().await.push("request timed out".into()),
                        }
                    }
                }
            })
        })
        .collect();
    (load, tasks)
}

async fn finish_load(load: &Load, tasks: Vec<tokio::task::JoinHandle<()>>) {
    load.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    }
    let failures = load.failures.lock().await;
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failures.len(),
        load.requests.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );
}

/// Polls fresh handshakes until one sees `serial`, up to `within`; returns how long it
/// took.
async fn wait_for_serial(
    addr: SocketAddr,
    ca_pem: &str,
    serial: u64,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let seen = served_serial(addr, "www.example.com", ca_pem).await;
        if seen == serial {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "still serving serial {seen} {within:?} after switching to {serial}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_certificates_100_times_under_load_fails_no_request() {
    let ca = TestCa::new();
    let sets: Vec<_> = (0..=100u64)
        .map(|i| cert_set(&[&ca.leaf(&["www.example.com"], 1000 + i)]))
        .collect();
    let (tx, rx) = watch::channel(sets[0].clone());
    let upstream = start_upstream().await;
    let proxy = start_proxy(
        Proxy::builder()
            .routes(Routes::single(Upstream::parse(&upstream.url()).unwrap()))
            .cert_source(CertSource::Watch(rx)),
    )
    .await;
    assert_eq!(
        served_serial(proxy.tls, "www.example.com", &ca.pem).await,
        1000
    );

    let (load, tasks) = start_load(proxy.tls, &ca.pem);
    for (i, set) in sets.iter().enumerate().skip(1) {
        // Let a few requests run against every set, so swaps and traffic interleave.
        let before = load.requests.load(Ordering::Relaxed);
        eventually("the load to make progress", || {
            load.requests.load(Ordering::Relaxed) >= before + 20
        })
        .await;
        tx.send_replace(set.clone());
        wait_for_serial(proxy.tls, &ca.pem, 1000 + i as u64, DEADLINE).await;
    }
    finish_load(&load, tasks).await;

    let requests = load.requests.load(Ordering::Relaxed);
    let connections = load.new_connections.load(Ordering::Relaxed);
    eprintln!("100 swaps under load: {requests} requests over {connections} connections, 0 failed");
    assert!(
        requests >= 2000 && connections > 100,
        "the load did not run: {requests}"
    );
    let metrics = proxy.metrics.snapshot();
    assert_eq!(metrics.reloads, 100);
    assert_eq!(metrics.reload_failures, 0);
}

/// Replaces `path` the way careful writers do: a temporary file, then a rename.
fn atomic_write(path: &Path, contents: &str) {
    let tmp = path.with_extension("pem.tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewritten_pem_files_are_served_within_a_second_under_load() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("www.pem");
    atomic_write(&file, &ca.leaf(&["www.example.com"], 2000).combined_pem());
    let upstream = start_upstream().await;
    let proxy = start_proxy(
        Proxy::builder()
            .routes(Routes::single(Upstream::parse(&upstream.url()).unwrap()))
            .cert_source(CertSource::File(dir.path().to_path_buf())),
    )
    .await;
    assert_eq!(
        served_serial(proxy.tls, "www.example.com", &ca.pem).await,
        2000
    );

    let (load, tasks) = start_load(proxy.tls, &ca.pem);
    let mut slowest = Duration::ZERO;
    for i in 1..=20u64 {
        let leaf = ca.leaf(&["www.example.com"], 2000 + i);
        atomic_write(&file, &leaf.combined_pem());
        let took = wait_for_serial(proxy.tls, &ca.pem, 2000 + i, Duration::from_secs(1)).await;
        slowest = slowest.max(took);
    }
    finish_load(&load, tasks).await;
    eprintln!(
        "20 file rewrites under load ({} requests): slowest until served {slowest:?}",
        load.requests.load(Ordering::Relaxed)
    );
    assert_eq!(proxy.metrics.snapshot().reload_failures, 0);
}

#[tokio::test]
async fn a_broken_rewrite_keeps_the_previous_certificate_serving() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    // A single combined file: the watch is on its directory.
    let file = dir.path().join("site.pem");
    atomic_write(&file, &ca.leaf(&["www.example.com"], 1).combined_pem());
    let upstream = start_upstream().await;
    let proxy = start_proxy(
        Proxy::builder()
            .routes(Routes::single(Upstream::parse(&upstream.url()).unwrap()))
            .cert_source(CertSource::File(file.clone())),
    )
    .await;
    assert_eq!(
        served_serial(proxy.tls, "www.example.com", &ca.pem).await,
        1
    );

    let good = ca.leaf(&["www.example.com"], 2);
    let other = ca.leaf(&["www.example.com"], 3);
    let broken = [
        // Cut off mid-way, as a crashed non-atomic writer leaves it.
        good.combined_pem()[..200].to_owned(),
        // A key that belongs to another certificate.
        format!("{}{}", good.chain_pem, other.key_pem),
        // No key at all.
        good.chain_pem.clone(),
    ];
    for (n, contents) in broken.iter().enumerate() {
        atomic_write(&file, contents);
        eventually("the broken file to be noticed", || {
            proxy.metrics.snapshot().reload_failures == n as u64 + 1
        })
        .await;
        assert_eq!(
            served_serial(proxy.tls, "www.example.com", &ca.pem).await,
            1
        );
    }

    // Written in place (not renamed), as Traefik does: picked up once complete.
    std::fs::write(&file, good.combined_pem()).unwrap();
    wait_for_serial(proxy.tls, &ca.pem, 2, DEADLINE).await;
}

#[tokio::test]
async fn a_cert_and_key_pair_reloads_once_both_files_match() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let first = ca.leaf(&["www.example.com"], 1);
    atomic_write(&cert, &first.chain_pem);
    atomic_write(&key, &first.key_pem);
    let upstream = start_upstream().await;
    let proxy = start_proxy(
        Proxy::builder()
            .routes(Routes::single(Upstream::parse(&upstream.url()).unwrap()))
            .cert_source(CertSource::PemPair {
                cert: cert.clone(),
                key: key.clone(),
            }),
    )
    .await;
    assert_eq!(
        served_serial(proxy.tls, "www.example.com", &ca.pem).await,
        1
    );

    let second = ca.leaf(&["www.example.com"], 2);
    atomic_write(&key, &second.key_pem);
    atomic_write(&cert, &second.chain_pem);
    wait_for_serial(proxy.tls, &ca.pem, 2, DEADLINE).await;
}

#[tokio::test]
async fn unusable_certificate_files_fail_bind_with_the_path() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let leaf = ca.leaf(&["www.example.com"], 1);
    let missing = dir.path().join("missing.pem");
    let no_key = dir.path().join("nokey.pem");
    std::fs::write(&no_key, &leaf.chain_pem).unwrap();
    let pem_dir = dir.path().join("certs");
    std::fs::create_dir(&pem_dir).unwrap();
    std::fs::write(pem_dir.join("good.pem"), leaf.combined_pem()).unwrap();
    std::fs::write(
        pem_dir.join("bad.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n",
    )
    .unwrap();

    for (source, path, says) in [
        (CertSource::File(missing.clone()), missing, "cannot read"),
        (CertSource::File(no_key.clone()), no_key, "no private key"),
        (
            CertSource::File(pem_dir.clone()),
            pem_dir.join("bad.pem"),
            "no END line",
        ),
    ] {
        let err = Proxy::builder()
            .tls_addr("127.0.0.1:0".parse().unwrap())
            .cert_source(source)
            .build()
            .unwrap()
            .bind()
            .await
            .unwrap_err();
        match &err {
            Error::CertFile { path: at, .. } => assert_eq!(at, &path),
            other => panic!("unexpected error {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(says) && text.contains(&path.display().to_string()),
            "{text}"
        );
        assert!(!text.contains("PRIVATE KEY-----"), "{text}");
    }
}

#[tokio::test]
async fn a_watched_acme_json_is_served_and_a_broken_one_is_left_alone() {
    use berth_acme_core::store::AcmeJson;
    use berth_certs::DomainSet;

    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    let names = DomainSet::parse(["www.example.com"]).unwrap();
    // Written as Traefik (or `berth run` in another container) would: its own resolver.
    let mut store = AcmeJson::default();
    store.upsert(
        "letsencrypt",
        &names,
        &ca.leaf(&["www.example.com"], 41).certificate(),
    );
    store.save(&path).unwrap();
    let upstream = start_upstream().await;
    let proxy = start_proxy(
        Proxy::builder()
            .routes(Routes::single(Upstream::parse(&upstream.url()).unwrap()))
            .cert_source(CertSource::File(path.clone())),
    )
    .await;
    assert_eq!(
        served_serial(proxy.tls, "www.example.com", &ca.pem).await,
        41
    );

    store.upsert(
        "letsencrypt",
        &names,
        &ca.leaf(&["www.example.com"], 42).certificate(),
    );
    store.save(&path).unwrap();
    wait_for_serial(proxy.tls, &ca.pem, 42, DEADLINE).await;

    let broken = "{\"letsencrypt\": {\"Certificates\": [";
    atomic_write(&path, broken);
    eventually("the broken store to be noticed", || {
        proxy.metrics.snapshot().reload_failures >= 1
    })
    .await;
    assert_eq!(
        served_serial(proxy.tls, "www.example.com", &ca.pem).await,
        42
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        broken,
        "a reader must not move or rewrite a store it does not own"
    );
}
