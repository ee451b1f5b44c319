//! Cluster mode end to end: three `berth run` replicas share a real Redis, Pebble's
//! HTTP-01 requests reach them round-robin (a routing mesh in miniature) — exactly one
//! orders, every one serves, and a store outage does not stop serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_tests::{Etcd, Pebble, Redis, RoundRobin, free_port};
use support::{berth, berth_bin, served_serial, start_upstream};

/// One replica: its process and its ports.
struct Replica {
    child: Child,
    http: SocketAddr,
    tls_port: u16,
    admin: SocketAddr,
    log: std::path::PathBuf,
}

impl Replica {
    fn start(pebble: &Pebble, store: &str, dir: &Path, n: usize, upstream: SocketAddr) -> Self {
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let tls_port = free_port();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join(format!("replica{n}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(berth_bin())
            .arg("run")
            .args(["-d", "cluster.example.com"])
            .args(["--upstream", &format!("http://{upstream}")])
            .args(["--ca", &pebble.directory_url()])
            .args(["--ca-root", &pebble.tls_root_path().display().to_string()])
            .args(["--agree-tos", "--store", store])
            .args(["--http-addr", &http.to_string()])
            .args(["--tls-addr", &format!("127.0.0.1:{tls_port}")])
            .args(["--admin-addr", &admin.to_string()])
            .env("BERTH_LOG", "info")
            .env("BERTH_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self {
            child,
            http,
            tls_port,
            admin,
            log,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn ready(&self) -> bool {
        let url = format!("http://{}/readyz", self.admin);
        matches!(berth_tests::https_get(&url, "").await, Ok(r) if r.status == 200)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pebble's HTTP-01 port, forwarded to the replicas: each connection goes to the first
/// replica that has not placed the order, so only an answer shared through the store
/// can satisfy the CA.
fn mesh_avoiding_the_holder(pebble: &Pebble, replicas: &[Replica]) -> RoundRobin {
    let logs: Vec<_> = replicas.iter().map(|r| r.log.clone()).collect();
    RoundRobin::choosing(
        format!("127.0.0.1:{}", pebble.http_port()).parse().unwrap(),
        replicas.iter().map(|r| r.http).collect(),
        move |n| {
            let ordered = |i: usize| {
                std::fs::read_to_string(&logs[i]).is_ok_and(|log| log.contains("placed order"))
            };
            (0..n).find(|&i| !ordered(i)).unwrap_or(0)
        },
    )
}

async fn all_ready(replicas: &[Replica], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut ready = 0;
        for replica in replicas {
            if replica.ready().await {
                ready += 1;
            }
        }
        if ready == replicas.len() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let logs: Vec<String> = replicas.iter().map(Replica::output).collect();
            panic!(
                "{ready} of {} replicas ready after {limit:?}\n{}",
                replicas.len(),
                logs.join("\n-----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn three_replicas_order_once_serve_everywhere_and_survive_a_store_outage() {
    let mut redis = Redis::start();
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let replicas: Vec<Replica> = (0..3)
        .map(|n| Replica::start(&pebble, &redis.url(), dir.path(), n, upstream))
        .collect();
    let mesh = mesh_avoiding_the_holder(&pebble, &replicas);

    all_ready(&replicas, Duration::from_secs(90)).await;
    assert_eq!(
        pebble.orders_received(),
        1,
        "three replicas placed more than one order"
    );
    let serials: Vec<String> = replicas
        .iter()
        .map(|r| served_serial("cluster.example.com", r.tls_port))
        .collect();
    assert!(!serials[0].is_empty(), "no certificate served");
    assert!(
        serials.iter().all(|s| s == &serials[0]),
        "replicas serve different certificates: {serials:?}"
    );
    let holders: Vec<usize> = (0..3)
        .filter(|&i| replicas[i].output().contains("placed order"))
        .collect();
    assert_eq!(holders.len(), 1, "one replica orders");
    let counts = mesh.counts();
    assert!(
        counts.iter().sum::<usize>() >= 1 && counts[holders[0]] == 0,
        "the CA's validation reached only other replicas: {counts:?}"
    );

    // The store goes away: every replica keeps serving and stays ready.
    redis.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for replica in &replicas {
        assert_eq!(
            served_serial("cluster.example.com", replica.tls_port),
            serials[0],
            "a replica stopped serving during the store outage"
        );
        assert!(
            replica.ready().await,
            "readiness dropped during the store outage"
        );
    }
    redis.restart();
    assert_eq!(pebble.orders_received(), 1);
}

#[tokio::test]
async fn a_wrong_store_password_is_refused_at_start_with_the_fix() {
    let redis = Redis::start_with_password("right-password");
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("password");
    std::fs::write(&wrong, "wrong-password\n").unwrap();
    let out = berth(&[
        "certs",
        "list",
        "--store",
        &redis.url(),
        "--store-password-file",
        &wrong.display().to_string(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(&redis.url()), "{}", out.stderr);
    assert!(
        out.stderr.contains("--store-password-file"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("wrong-password"), "{}", out.stderr);

    let plain = support::berth_command(&["certs", "list", "--store", &redis.url()])
        .env("BERTH_STORE_PASSWORD", "right-password")
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(stderr.contains("BERTH_STORE_PASSWORD_FILE"), "{stderr}");
    assert!(!stderr.contains("right-password"), "{stderr}");
}

/// A store with one certificate issued by Pebble, for the migration tests.
async fn issued_store(pebble: &Pebble, dir: &Path) -> std::path::PathBuf {
    let store = dir.join("acme.json");
    let out = berth(&[
        "issue",
        "-d",
        "moved.example.com",
        "--ca",
        &pebble.directory_url(),
        "--ca-root",
        &pebble.tls_root_path().display().to_string(),
        "--agree-tos",
        "--store",
        &store.display().to_string(),
        "--http-addr",
        &format!("127.0.0.1:{}", pebble.http_port()),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    store
}

#[tokio::test]
async fn a_file_store_moves_to_redis_and_back_without_loss_and_idempotently() {
    let redis = Redis::start();
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = issued_store(&pebble, dir.path()).await;
    let before = std::fs::read(&store).unwrap();
    let state_before = std::fs::read(berth_acme_core::store::state_path(&store)).unwrap();

    let to_redis = |from: &str, to: &str| berth(&["store", "migrate", "--from", from, "--to", to]);
    let first = to_redis(&store.display().to_string(), &redis.url());
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("copied"), "{}", first.stdout);
    assert_eq!(
        std::fs::read(&store).unwrap(),
        before,
        "the source is only read"
    );
    assert_eq!(
        std::fs::read(berth_acme_core::store::state_path(&store)).unwrap(),
        state_before
    );
    let again = to_redis(&store.display().to_string(), &redis.url());
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("copied 0 keys"), "{}", again.stdout);

    // The cluster store lists it, and hands it back as a Traefik acme.json and as a store.
    let list = berth(&["certs", "list", "--store", &redis.url()]);
    assert!(list.stdout.contains("moved.example.com"), "{}", list.stdout);
    let exported = dir.path().join("traefik/acme.json");
    std::fs::create_dir_all(exported.parent().unwrap()).unwrap();
    let export = berth(&[
        "certs",
        "export",
        "--store",
        &redis.url(),
        "--format",
        "traefik",
        "--out",
        &exported.display().to_string(),
    ]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let (certs, _) = berth_acme_core::store::AcmeJson::read(&exported)
        .unwrap()
        .certificates("berth");
    assert_eq!(certs.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&exported).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let back = dir.path().join("back/acme.json");
    std::fs::create_dir_all(back.parent().unwrap()).unwrap();
    let home = to_redis(&redis.url(), &back.display().to_string());
    assert_eq!(home.code, 0, "{}", home.stderr);
    let original = berth(&[
        "certs",
        "list",
        "--json",
        "--store",
        &store.display().to_string(),
    ]);
    let returned = berth(&[
        "certs",
        "list",
        "--json",
        "--store",
        &back.display().to_string(),
    ]);
    let serials = |json: &str| -> Vec<String> {
        let doc: serde_json::Value = serde_json::from_str(json).unwrap();
        doc["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["serial"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(serials(&returned.stdout), serials(&original.stdout));
    let again_home = to_redis(&redis.url(), &back.display().to_string());
    assert_eq!(again_home.code, 0, "{}", again_home.stderr);
}

#[tokio::test]
async fn a_migration_never_overwrites_a_different_value() {
    let redis = Redis::start();
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = issued_store(&pebble, dir.path()).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let out = berth(&[
        "store",
        "migrate",
        "--from",
        &store.display().to_string(),
        "--to",
        &redis.url(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Another deployment changed the account in the target since.
    let _: () = redis::cmd("HSET")
        .arg("{berth/}v:accounts/".to_owned() + &pebble.directory_url())
        .arg("d")
        .arg("{\"other\":true}")
        .query_async(&mut raw)
        .await
        .unwrap();
    let out = berth(&[
        "store",
        "migrate",
        "--from",
        &store.display().to_string(),
        "--to",
        &redis.url(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("kept the target's different value of accounts/"),
        "{}",
        out.stdout
    );
    let kept: String = redis::cmd("HGET")
        .arg("{berth/}v:accounts/".to_owned() + &pebble.directory_url())
        .arg("d")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(kept, "{\"other\":true}");
}

#[tokio::test]
async fn a_replica_killed_mid_order_is_taken_over_and_its_order_resumed() {
    let redis = Redis::start();
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|n| Replica::start(&pebble, &redis.url(), dir.path(), n, upstream))
        .collect();
    let _mesh = mesh_avoiding_the_holder(&pebble, &replicas);

    // The holder is killed as soon as its order is placed (and recorded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let holder = loop {
        if let Some(i) = (0..3).find(|&i| replicas[i].output().contains("placed order")) {
            break i;
        }
        assert!(tokio::time::Instant::now() < deadline, "nobody ordered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    replicas[holder].child.kill().unwrap();
    replicas[holder].child.wait().unwrap();
    let killed = tokio::time::Instant::now();
    let dead = replicas.remove(holder);

    all_ready(&replicas, Duration::from_secs(60)).await;
    let took = killed.elapsed();
    eprintln!("survivors served {took:?} after the holder was killed");
    assert_eq!(
        pebble.orders_received(),
        1,
        "the survivor placed a new order instead of resuming\n{}\n{}",
        dead.output(),
        replicas
            .iter()
            .map(Replica::output)
            .collect::<Vec<_>>()
            .join("\n-----\n")
    );
    assert!(
        replicas
            .iter()
            .any(|r| r.output().contains("resuming the interrupted order")),
        "no survivor resumed the order"
    );
    // The lease runs out after 9 s and survivors look again every 2 s.
    assert!(took < Duration::from_secs(25), "took {took:?}");
    let serials: Vec<String> = replicas
        .iter()
        .map(|r| served_serial("cluster.example.com", r.tls_port))
        .collect();
    assert!(
        !serials[0].is_empty() && serials[0] == serials[1],
        "{serials:?}"
    );
}

#[tokio::test]
async fn three_replicas_on_etcd_order_once_and_serve_everywhere() {
    let etcd = Etcd::start();
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let replicas: Vec<Replica> = (0..3)
        .map(|n| Replica::start(&pebble, &etcd.url(), dir.path(), n, upstream))
        .collect();
    let _mesh = mesh_avoiding_the_holder(&pebble, &replicas);
    all_ready(&replicas, Duration::from_secs(90)).await;
    assert_eq!(pebble.orders_received(), 1);
    let serials: Vec<String> = replicas
        .iter()
        .map(|r| served_serial("cluster.example.com", r.tls_port))
        .collect();
    assert!(
        !serials[0].is_empty() && serials.iter().all(|s| s == &serials[0]),
        "{serials:?}"
    );
    let list = berth(&["certs", "list", "--store", &etcd.url()]);
    assert!(
        list.stdout.contains("cluster.example.com"),
        "{}",
        list.stdout
    );
}
