//! Several workers: each accepts on its own socket on the shared port, all serve, and
//! shutdown drains them all.
//!
//! In a binary of their own: the first test counts the process's worker threads, which
//! a multi-worker proxy serving in another test beside it would disturb (the second
//! only binds; it starts no workers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::num::NonZeroUsize;

use support::*;

/// Names of this process's threads that are proxy workers.
fn worker_threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("berth-worker-"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn three_workers_serve_concurrent_clients_and_all_drain_on_shutdown() {
    let ca = TestCa::new();
    let upstream = start_upstream().await;
    let proxy =
        start_proxy(www_in_front_of(&ca, &upstream.url()).workers(NonZeroUsize::new(3).unwrap()))
            .await;
    eventually("two worker threads beside the caller's", || {
        worker_threads() == ["berth-worker-2", "berth-worker-3"]
    })
    .await;

    // Concurrent kept-alive clients, TLS and plain HTTP (which redirects): every request
    // is answered, whichever worker accepted its connection.
    let config = client_config(&ca.pem, &[b"http/1.1"]);
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let config = config.clone();
            let tls = proxy.tls;
            tokio::spawn(async move {
                let mut sender = http1(tls_connect(tls, "www.example.com", config).await?).await;
                let mut bodies = Vec::new();
                for _ in 0..4 {
                    let (status, _, body) = send(&mut sender, get("www.example.com", "/")).await;
                    bodies.push((status.as_u16(), body));
                }
                Ok::<_, std::io::Error>(bodies)
            })
        })
        .collect();
    for client in clients {
        let bodies = tokio::time::timeout(DEADLINE, client)
            .await
            .expect("a client finished")
            .unwrap()
            .unwrap();
        for (status, body) in bodies {
            assert_eq!((status, body.as_str()), (200, "hello from upstream\n"));
        }
    }
    for _ in 0..6 {
        let mut sender = http1(tokio::net::TcpStream::connect(proxy.http).await.unwrap()).await;
        let (status, headers, _) = send(&mut sender, get("www.example.com", "/page")).await;
        assert_eq!(status.as_u16(), 308);
        assert_eq!(
            headers["location"],
            format!("https://www.example.com:{}/page", proxy.tls.port())
        );
    }
    let served = proxy.metrics.snapshot();
    assert_eq!(served.connections_total, 30, "{served:?}");
    assert_eq!(served.responses_by_class[2], 24 * 4, "{served:?}");
    assert_eq!(served.responses_by_class[3], 6, "{served:?}");

    // A request in flight on some worker when shutdown starts still gets its answer;
    // no worker keeps its handle on the listeners open.
    let slow = request_held_at_gate(proxy.tls, config, &upstream).await;
    proxy.shutdown.cancel();
    eventually_async("every worker to stop accepting", || async {
        refused(proxy.tls).await && refused(proxy.http).await
    })
    .await;
    release_gate(&upstream, slow).await;
    proxy.returned("once every worker drained").await;
    assert!(
        worker_threads().is_empty(),
        "worker threads outlived serve: {:?}",
        worker_threads()
    );
}

/// The workers share their port through `SO_REUSEPORT`, which would let a second proxy
/// of the same user bind it too and silently take a share of the clients; it must fail
/// as it does with one worker.
#[tokio::test]
async fn a_port_in_use_fails_bind_even_when_the_holder_has_several_workers() {
    let ca = TestCa::new();
    let two = NonZeroUsize::new(2).unwrap();
    let builder = || www_in_front_of(&ca, "http://127.0.0.1:9").workers(two);
    let first = builder()
        .tls_addr("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap();
    let taken = first.tls_addr().unwrap();

    let second = builder().tls_addr(taken).build().unwrap().bind().await;
    let error = second.expect_err("the port is taken");
    assert!(
        matches!(&error, berth_proxy::Error::Bind { addr, .. } if *addr == taken),
        "{error:?}"
    );
    assert!(error.to_string().contains(&taken.to_string()), "{error}");
}
