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
use support::{berth, berth_bin, poll, served_serial, start_upstream};

/// One replica: its process, its ports and the arguments it was started with.
struct Replica {
    child: Child,
    http: SocketAddr,
    tls_port: u16,
    admin: SocketAddr,
    log: std::path::PathBuf,
    args: Vec<String>,
}

impl Replica {
    fn start(pebble: &Pebble, store: &str, dir: &Path, n: usize, upstream: SocketAddr) -> Self {
        Self::start_with(
            pebble,
            store,
            dir,
            n,
            upstream,
            &["-d", "cluster.example.com"],
        )
    }

    /// A replica managing what `names` says (`-d …` or `--config …`).
    fn start_with(
        pebble: &Pebble,
        store: &str,
        dir: &Path,
        n: usize,
        upstream: SocketAddr,
        names: &[&str],
    ) -> Self {
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let tls_port = free_port();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join(format!("replica{n}.log"));
        let mut args: Vec<String> = vec!["run".into()];
        args.extend(names.iter().map(|a| (*a).to_owned()));
        for (flag, value) in [
            ("--upstream", format!("http://{upstream}")),
            ("--ca", pebble.directory_url()),
            ("--ca-root", pebble.tls_root_path().display().to_string()),
            ("--store", store.to_owned()),
            ("--http-addr", http.to_string()),
            ("--tls-addr", format!("127.0.0.1:{tls_port}")),
            ("--admin-addr", admin.to_string()),
        ] {
            args.extend([flag.to_owned(), value]);
        }
        args.push("--agree-tos".into());
        let child = spawn_replica(&args, &log);
        Self {
            child,
            http,
            tls_port,
            admin,
            log,
            args,
        }
    }

    /// SIGKILLs the process.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process and starts it again with the same ports; the log goes on.
    fn restart(&mut self) {
        self.kill();
        self.child = spawn_replica(&self.args, &self.log);
    }

    /// How many times the log says `text`.
    fn said(&self, text: &str) -> usize {
        self.output().matches(text).count()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn ready(&self) -> bool {
        let url = format!("http://{}/readyz", self.admin);
        matches!(berth_tests::https_get(&url, "").await, Ok(r) if r.status == 200)
    }
}

/// `berth args`, appending its output to `log`.
fn spawn_replica(args: &[String], log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(berth_bin())
        .args(args)
        .env("BERTH_LOG", "info")
        .env("BERTH_LOG_FORMAT", "text")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
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

/// While `holder` orders, another replica's `/api/certs` and status page name it
/// (`host:pid`) as the holder of the certificate's lease.
async fn assert_lease_shown(replicas: &[Replica], holder: usize) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let expected = format!("{}:{}", host.trim(), replicas[holder].child.id());
    let other = &replicas[(holder + 1) % replicas.len()];
    let api = berth_tests::https_get(&format!("http://{}/api/certs", other.admin), "")
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(
        doc["certificates"][0]["lease_holder"], expected,
        "/api/certs does not name the holder: {doc}"
    );
    let page = berth_tests::https_get(&format!("http://{}/", other.admin), "")
        .await
        .unwrap();
    assert!(
        page.body
            .contains(&format!("cluster.example.com: being ordered by {expected}")),
        "{}",
        page.body
    );
}

async fn scrape_metrics(replica: &Replica) -> String {
    berth_tests::https_get(&format!("http://{}/metrics", replica.admin), "")
        .await
        .unwrap()
        .body
}

async fn all_ready(replicas: &[Replica], limit: Duration) {
    let mut ready = 0;
    let all = poll(limit, Duration::from_millis(100), async || {
        ready = 0;
        for replica in replicas {
            if replica.ready().await {
                ready += 1;
            }
        }
        (ready == replicas.len()).then_some(())
    })
    .await;
    if all.is_none() {
        panic!(
            "{ready} of {} replicas ready after {limit:?}\n{}",
            replicas.len(),
            logs(replicas)
        );
    }
}

/// Every replica's log, for a failure message.
fn logs(replicas: &[Replica]) -> String {
    let logs: Vec<String> = replicas.iter().map(Replica::output).collect();
    logs.join("\n-----\n")
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
    let holder = poll(
        Duration::from_secs(60),
        Duration::from_millis(5),
        async || (0..3).find(|&i| replicas[i].output().contains("placed order")),
    )
    .await
    .expect("nobody ordered");
    assert_lease_shown(&replicas, holder).await;
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
        logs(&replicas)
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
    let holder = wait_for(&replicas, Duration::from_secs(60), "nobody ordered", || {
        (0..3).find(|&i| replicas[i].said("placed order") > 0)
    })
    .await;
    assert_lease_shown(&replicas, holder).await;
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

/// The shared store a scenario runs on; every scenario runs on both.
enum Shared {
    Redis(Redis),
    Etcd(Etcd),
}

impl Shared {
    fn start(etcd: bool) -> Self {
        if etcd {
            Self::Etcd(Etcd::start())
        } else {
            Self::Redis(Redis::start())
        }
    }

    fn url(&self) -> String {
        match self {
            Self::Redis(r) => r.url(),
            Self::Etcd(e) => e.url(),
        }
    }

    fn stop(&mut self) {
        match self {
            Self::Redis(r) => r.stop(),
            Self::Etcd(e) => e.stop(),
        }
    }

    /// Back on the same port with the same data.
    fn restart(&mut self) {
        match self {
            Self::Redis(r) => r.restart(),
            Self::Etcd(e) => e.restart(),
        }
    }

    /// A client of the store, for writing into it as another program would.
    async fn client(&self) -> std::sync::Arc<dyn berth_acme_core::store::Store> {
        match self {
            Self::Redis(r) => {
                berth_stores::RedisStore::connect(&r.url(), berth_stores::RedisOptions::default())
                    .await
                    .unwrap()
            }
            Self::Etcd(e) => berth_stores::EtcdStore::connect(
                &[e.addr().to_string()],
                false,
                berth_stores::EtcdOptions::default(),
            )
            .await
            .unwrap(),
        }
    }
}

/// Polls `found` every 50 ms for up to `limit`; panics with `what` and the logs if it
/// never returns something.
async fn wait_for<T>(
    replicas: &[Replica],
    limit: Duration,
    what: &str,
    mut found: impl FnMut() -> Option<T>,
) -> T {
    match poll(limit, Duration::from_millis(50), async || found()).await {
        Some(value) => value,
        None => panic!("{what} after {limit:?}\n{}", logs(replicas)),
    }
}

const BACKING_OFF: &str = "backing off after an earlier failure";

/// The shared ledger's next attempt for `cluster.example.com`, from `berth certs list`.
fn shared_next_attempt(store: &str) -> String {
    let out = berth(&["certs", "list", "--json", "--store", store]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let entry = &doc["backoff"][0];
    assert_eq!(entry["domains"], "cluster.example.com", "{doc}");
    entry["next_attempt"].as_str().unwrap().to_owned()
}

/// Validation fails (nothing answers Pebble's HTTP-01 port); the holder is SIGKILLed right
/// after placing the order and then every replica is killed and restarted twice (a crash
/// loop): the one failed order in the shared ledger holds all of them back.
async fn crash_looping_replicas_respect_the_shared_backoff(etcd: bool) {
    let store = Shared::start(etcd);
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|n| Replica::start(&pebble, &store.url(), dir.path(), n, upstream))
        .collect();

    let holder = wait_for(&replicas, Duration::from_secs(60), "nobody ordered", || {
        (0..3).find(|&i| replicas[i].said("placed order") > 0)
    })
    .await;
    replicas[holder].restart();
    // Whoever finishes the order records the failure; the others then back off.
    wait_for(
        &replicas,
        Duration::from_secs(60),
        "not every replica saw the failure",
        || {
            replicas
                .iter()
                .all(|r| r.said("order failed") + r.said(BACKING_OFF) > 0)
                .then_some(())
        },
    )
    .await;
    let next_attempt = shared_next_attempt(&store.url());
    assert_eq!(pebble.orders_received(), 1);

    for round in 0..2 {
        let before: Vec<usize> = replicas.iter().map(|r| r.said(BACKING_OFF)).collect();
        for replica in &mut replicas {
            replica.restart();
        }
        wait_for(
            &replicas,
            Duration::from_secs(30),
            &format!("round {round}: a restarted replica did not back off"),
            || {
                (0..3)
                    .all(|i| replicas[i].said(BACKING_OFF) > before[i])
                    .then_some(())
            },
        )
        .await;
    }
    assert_eq!(
        pebble.orders_received(),
        1,
        "a replica ordered before the shared next attempt {next_attempt}"
    );
    assert_eq!(
        shared_next_attempt(&store.url()),
        next_attempt,
        "backing off is not a failure: the next attempt stays where the failure put it"
    );
}

#[tokio::test]
async fn crash_looping_replicas_respect_the_shared_backoff_on_redis() {
    crash_looping_replicas_respect_the_shared_backoff(false).await;
}

#[tokio::test]
async fn crash_looping_replicas_respect_the_shared_backoff_on_etcd() {
    crash_looping_replicas_respect_the_shared_backoff(true).await;
}

/// The store is down for 30 s: every replica keeps answering HTTPS and stays ready; when
/// it is back, a renewal ordered by one replica is stored and reaches the others.
async fn replicas_serve_through_a_store_outage_and_resume(etcd: bool) {
    let mut store = Shared::start(etcd);
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let replicas: Vec<Replica> = (0..3)
        .map(|n| Replica::start(&pebble, &store.url(), dir.path(), n, upstream))
        .collect();
    let _mesh = mesh_avoiding_the_holder(&pebble, &replicas);
    all_ready(&replicas, Duration::from_secs(90)).await;
    let root = support::issuing_root(&pebble, dir.path()).await;
    let before = served_serial("cluster.example.com", replicas[0].tls_port);

    store.stop();
    let outage = tokio::time::Instant::now();
    let mut answered = 0;
    while outage.elapsed() < Duration::from_secs(30) {
        for replica in &replicas {
            let (status, body) =
                support::curl("cluster.example.com", replica.tls_port, "/outage", &root);
            assert_eq!(
                status, 200,
                "a client got an error during the outage: {body}"
            );
            assert!(replica.ready().await, "readiness dropped during the outage");
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{answered} requests answered during the 30 s outage");
    store.restart();

    // A forced renewal (at most 3 an hour) may meet a connection still being re-made.
    let port = replicas[0].admin.port();
    let renew = format!(
        "POST /api/renew?force=true HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Berth-Request: 1"
    );
    let metrics_before = scrape_metrics(&replicas[0]).await;
    let mut renewed = false;
    for _ in 0..3 {
        let (status, body) = support::admin_request(port, &renew);
        if status == 200 && body.contains("renewed") {
            renewed = true;
            break;
        }
        eprintln!("renewal after the outage: {status} {body}");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert!(renewed, "no renewal after the store came back");
    let after = served_serial("cluster.example.com", replicas[0].tls_port);
    assert_ne!(after, before);
    // The renewal took a lease and wrote through it: the store metrics moved.
    let metrics_after = scrape_metrics(&replicas[0]).await;
    for name in [
        "berth_store_leases_gained_total",
        "berth_store_operation_seconds_count{op=\"lock\"}",
        "berth_store_operation_seconds_count{op=\"put\"}",
        "berth_store_operation_seconds_bucket{op=\"put\",le=\"+Inf\"}",
    ] {
        let (was, is) = (
            support::metric(&metrics_before, name),
            support::metric(&metrics_after, name),
        );
        assert!(
            is.unwrap_or(0.0) > was.unwrap_or(0.0),
            "{name}: {was:?} -> {is:?}\n{metrics_after}"
        );
    }
    for name in [
        "berth_store_leases_lost_total ",
        "berth_store_fenced_writes_total ",
    ] {
        assert!(
            metrics_after.contains(name),
            "{name} missing\n{metrics_after}"
        );
    }
    wait_for(
        &replicas,
        Duration::from_secs(15),
        "the renewed certificate did not reach every replica",
        || {
            replicas
                .iter()
                .all(|r| served_serial("cluster.example.com", r.tls_port) == after)
                .then_some(())
        },
    )
    .await;
    assert_eq!(pebble.orders_received(), 2);
}

#[tokio::test]
async fn replicas_serve_through_a_store_outage_and_resume_on_redis() {
    replicas_serve_through_a_store_outage_and_resume(false).await;
}

#[tokio::test]
async fn replicas_serve_through_a_store_outage_and_resume_on_etcd() {
    replicas_serve_through_a_store_outage_and_resume(true).await;
}

/// Someone writes garbage under one certificate's key: that certificate is reported (logs,
/// `certs list`), the other one keeps being served by every replica.
async fn garbage_under_one_key_is_reported_and_the_rest_keep_working(etcd: bool) {
    let store = Shared::start(etcd);
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        "[[certificates]]\ndomains = [\"good.example.com\"]\n[[certificates]]\ndomains = [\"bad.example.com\"]\n",
    )
    .unwrap();
    let names = ["--config", config.to_str().unwrap()];
    let replicas: Vec<Replica> = (0..2)
        .map(|n| Replica::start_with(&pebble, &store.url(), dir.path(), n, upstream, &names))
        .collect();
    let _mesh = mesh_avoiding_the_holder(&pebble, &replicas);
    all_ready(&replicas, Duration::from_secs(90)).await;
    let root = support::issuing_root(&pebble, dir.path()).await;
    let good = served_serial("good.example.com", replicas[0].tls_port);

    let client = store.client().await;
    client
        .put(
            "certs/bad.example.com",
            b"\x00not json {{".to_vec().into(),
            berth_acme_core::store::Expect::Any,
            None,
        )
        .await
        .unwrap();
    wait_for(
        &replicas,
        Duration::from_secs(10),
        "no replica reported the unreadable certificate",
        || {
            replicas
                .iter()
                .all(|r| r.said("stored certificate is unreadable") > 0)
                .then_some(())
        },
    )
    .await;
    for replica in &replicas {
        let log = replica.output();
        let line = log
            .lines()
            .find(|l| l.contains("stored certificate is unreadable"))
            .unwrap();
        assert!(line.contains("bad.example.com"), "{line}");
        assert_eq!(
            served_serial("good.example.com", replica.tls_port),
            good,
            "the good certificate changed"
        );
        let (status, body) = support::curl("good.example.com", replica.tls_port, "/", &root);
        assert_eq!(status, 200, "{body}");
        assert!(replica.ready().await, "{}", replica.output());
        // Still served from memory, and the API says it is not in the store.
        let api = berth_tests::https_get(&format!("http://{}/api/certs", replica.admin), "")
            .await
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&api.body).unwrap();
        let stored = |name: &str| {
            doc["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["domains"][0] == name)
                .map(|c| c["stored"].clone())
        };
        assert_eq!(stored("bad.example.com"), Some(false.into()), "{doc}");
        assert_eq!(stored("good.example.com"), Some(true.into()), "{doc}");
        assert!(
            !served_serial("bad.example.com", replica.tls_port).is_empty(),
            "the certificate under the garbage is no longer served"
        );
    }
    let list = berth(&["certs", "list", "--store", &store.url()]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains("good.example.com"), "{}", list.stdout);
    assert!(
        format!("{}{}", list.stdout, list.stderr).contains("bad.example.com"),
        "certs list does not name the unreadable certificate:\n{}\n{}",
        list.stdout,
        list.stderr
    );
}

#[tokio::test]
async fn garbage_under_one_key_is_reported_and_the_rest_keep_working_on_redis() {
    garbage_under_one_key_is_reported_and_the_rest_keep_working(false).await;
}

#[tokio::test]
async fn garbage_under_one_key_is_reported_and_the_rest_keep_working_on_etcd() {
    garbage_under_one_key_is_reported_and_the_rest_keep_working(true).await;
}

/// A store that checks clients' certificates: refused without `--store-cert`, with a
/// message saying so; accepted with it (flags or `BERTH_STORE_CERT`/`BERTH_STORE_KEY`);
/// the key file's content never printed, nor taken from the variable itself.
fn a_store_checking_client_certificates_takes_store_cert_and_store_key(
    url: &str,
    ca: &Path,
    (cert, key): (std::path::PathBuf, std::path::PathBuf),
) {
    let ca = ca.display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let key_text = std::fs::read_to_string(&key).unwrap();
    let key_body = key_text.lines().nth(1).unwrap().to_owned();
    let url = url.to_owned();

    let without = berth(&["certs", "list", "--store", &url, "--store-ca", &ca]);
    assert_eq!(without.code, 1, "{}", without.stderr);
    assert!(without.stderr.contains(&url), "{}", without.stderr);
    assert!(
        without.stderr.contains("--store-cert"),
        "the refusal does not name the fix: {}",
        without.stderr
    );

    let with = berth(&[
        "certs",
        "list",
        "--store",
        &url,
        "--store-ca",
        &ca,
        "--store-cert",
        &cert,
        "--store-key",
        &key,
    ]);
    assert_eq!(with.code, 0, "{}", with.stderr);
    assert!(with.stdout.contains("no certificates"), "{}", with.stdout);

    let by_env = support::berth_command(&["certs", "list", "--store", &url])
        .env("BERTH_STORE_CA", &ca)
        .env("BERTH_STORE_CERT", &cert)
        .env("BERTH_STORE_KEY", &key)
        .output()
        .unwrap();
    assert_eq!(
        by_env.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&by_env.stderr)
    );

    let key_in_env = support::berth_command(&["certs", "list", "--store", &url])
        .env("BERTH_STORE_CA", &ca)
        .env("BERTH_STORE_CERT", &cert)
        .env("BERTH_STORE_KEY", &key_text)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&key_in_env.stderr);
    assert_eq!(key_in_env.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("path of a file"), "{stderr}");
    for out in [
        &without.stderr,
        &with.stderr,
        &with.stdout,
        &stderr.to_string(),
    ] {
        assert!(!out.contains(&key_body), "the key was printed: {out}");
    }
}

#[test]
fn a_redis_checking_client_certificates_takes_store_cert_and_store_key() {
    let redis = Redis::start_tls_client_auth();
    a_store_checking_client_certificates_takes_store_cert_and_store_key(
        &redis.url(),
        &redis.ca().unwrap(),
        redis.client_cert().unwrap(),
    );
}

#[test]
fn an_etcd_checking_client_certificates_takes_store_cert_and_store_key() {
    let etcd = Etcd::start_tls_client_auth();
    a_store_checking_client_certificates_takes_store_cert_and_store_key(
        &etcd.url(),
        &etcd.ca().unwrap(),
        etcd.client_cert().unwrap(),
    );
}
