//! `berth issue --challenge dns-01` against a real BIND 9 and a Pebble that validates
//! through it: wildcard + apex, a crash mid-order whose leftover record the next run
//! removes, and the refusals that need no server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_tests::{Bind, BindZone, Pebble, PebbleOptions};
use support::{Sidecar, curl, issuing_root, start_upstream};

const KEY: &str = "berth-acme";

fn zone() -> BindZone {
    BindZone {
        name: "example.test".into(),
        records: vec![],
        update_policy: vec![format!(
            "grant {KEY}. name _acme-challenge.example.test. TXT"
        )],
    }
}

fn berth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .env_remove("BERTH_DOMAINS")
        .env("BERTH_LOG_FORMAT", "text");
    command
}

/// `berth issue --challenge dns-01` for this Pebble and BIND, checking propagation on
/// `propagation`.
fn issue(pebble: &Pebble, bind: &Bind, store: &Path, propagation: &str) -> Command {
    let mut command = berth();
    command
        .args(["issue", "--challenge", "dns-01", "--agree-tos"])
        .args(["--ca", &pebble.directory_url()])
        .arg("--ca-root")
        .arg(pebble.tls_root_path())
        .arg("--store")
        .arg(store)
        .args(["--dns-server", &bind.addr().to_string()])
        .arg("--dns-tsig-secret-file")
        .arg(bind.key_file(KEY))
        .args(["--dns-resolver", &bind.addr().to_string()])
        .args(["--dns-propagation-servers", propagation])
        .args(["--dns-propagation-interval", "200ms"])
        .args(["-d", "example.test", "-d", "*.example.test"]);
    command
}

async fn start() -> (Bind, Pebble, tempfile::TempDir) {
    let bind = Bind::start(&[zone()], &[KEY]);
    let pebble = Pebble::start_with(PebbleOptions {
        dns_server: Some(bind.addr()),
        ..PebbleOptions::default()
    })
    .await;
    (bind, pebble, tempfile::tempdir().unwrap())
}

#[tokio::test]
async fn issue_wildcard_and_apex_with_rfc2136() {
    let (bind, pebble, dir) = start().await;
    let store = dir.path().join("acme.json");
    let out = issue(&pebble, &bind, &store, &bind.addr().to_string())
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "issued", "{doc}");
    let domains = doc["domains"].to_string();
    assert!(domains.contains("*.example.test"), "{doc}");
    assert_eq!(
        bind.txt("_acme-challenge.example.test"),
        Vec::<String>::new()
    );
    assert!(!dir.path().join("acme.json.berth-dns").exists());
    assert!(stderr.contains("added TXT record"), "{stderr}");
    assert!(stderr.contains("removed TXT record"), "{stderr}");
    let secret = std::fs::read_to_string(bind.key_file(KEY)).unwrap();
    let secret = secret.split('"').nth(3).unwrap();
    assert!(
        !stderr.contains(secret),
        "the TSIG secret never reaches the log"
    );
}

#[tokio::test]
async fn a_record_left_by_a_crash_is_removed_by_the_next_run() {
    let (bind, pebble, dir) = start().await;
    let store = dir.path().join("acme.json");
    // A secondary that never gets the update keeps the first run waiting.
    let secondary = Bind::start(&[zone()], &[]);
    let mut first = issue(
        &pebble,
        &bind,
        &store,
        &format!("{},{}", bind.addr(), secondary.addr()),
    )
    .args(["--dns-propagation-timeout", "60s"])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut published = Vec::new();
    for _ in 0..300 {
        published = bind.txt("_acme-challenge.example.test");
        if published.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        published.len(),
        2,
        "wildcard and apex values both published"
    );
    first.kill().unwrap(); // SIGKILL: no cleanup runs
    first.wait().unwrap();
    let mut still = bind.txt("_acme-challenge.example.test");
    still.sort();
    published.sort();
    assert_eq!(still, published, "the killed run left its records");
    let journal = std::fs::read_to_string(dir.path().join("acme.json.berth-dns")).unwrap();
    assert!(
        journal.contains(&published[0]),
        "the journal remembers the record"
    );

    let out = issue(&pebble, &bind, &store, &bind.addr().to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("left behind"), "{stderr}");
    assert_eq!(
        bind.txt("_acme-challenge.example.test"),
        Vec::<String>::new(),
        "the leftovers and this run's records are all gone"
    );
    assert!(!dir.path().join("acme.json.berth-dns").exists());
}

/// `berth issue --challenge dns-01 -d *.example.test` with `extra`, expected to be
/// refused with exit code 2 before any network use; returns stderr.
fn refused(extra: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = berth()
        .args(["issue", "--challenge", "dns-01", "-d", "*.example.test"])
        .args(extra)
        .arg("--store")
        .arg(dir.path().join("acme.json"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn dns01_without_a_provider_says_what_to_add() {
    let stderr = refused(&[], &[]);
    assert!(
        stderr.contains("--dns-server") && stderr.contains("--dns-exec"),
        "{stderr}"
    );
}

#[test]
fn a_tsig_secret_in_a_plain_variable_is_refused_without_echoing_it() {
    let stderr = refused(
        &["--dns-server", "127.0.0.1"],
        &[(
            "BERTH_DNS_TSIG_SECRET",
            "c3VwZXItc2VjcmV0LXRzaWcta2V5LXZhbHVl",
        )],
    );
    assert!(stderr.contains("BERTH_DNS_TSIG_SECRET"), "{stderr}");
    assert!(!stderr.contains("c3VwZXItc2VjcmV0"), "{stderr}");
}

#[test]
fn a_bad_tsig_key_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("tsig.key");
    std::fs::write(
        &key,
        "not-base64!!
",
    )
    .unwrap();
    let key_arg = key.display().to_string();
    let stderr = refused(
        &[
            "--dns-server",
            "127.0.0.1",
            "--dns-tsig-key",
            "k",
            "--dns-tsig-secret-file",
            &key_arg,
        ],
        &[],
    );
    assert!(
        stderr.contains(&key_arg) && stderr.contains("base64"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-base64!!"), "{stderr}");
}

#[tokio::test]
async fn run_serves_a_wildcard_issued_with_dns01_from_the_config_file() {
    let (bind, pebble, dir) = start().await;
    let upstream = start_upstream();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            r#"domains = ["example.test", "*.example.test"]
challenge = "dns-01"
agree_tos = true
upstream = "http://{upstream}"

[dns]
server = "{bind}"
tsig_secret_file = "{key}"
resolver = "{bind}"
propagation_servers = ["{bind}"]
propagation_interval = "200ms"
"#,
            bind = bind.addr(),
            key = bind.key_file(KEY).display(),
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    // One worker: the single-threaded runtime serves, issues and answers the admin API.
    let sidecar = Sidecar::start(
        &pebble,
        dir.path(),
        &["--config", &config_arg, "--workers", "1"],
    );
    sidecar.wait_ready(Duration::from_secs(60)).await;
    let root = issuing_root(&pebble, dir.path()).await;
    for name in ["example.test", "anything.example.test"] {
        let (status, _) = curl(name, sidecar.tls_port, "/hello", &root);
        assert_eq!(status, 200, "{name}\n{}", sidecar.output());
    }
    assert_eq!(
        bind.txt("_acme-challenge.example.test"),
        Vec::<String>::new()
    );
}

#[test]
fn config_check_finds_the_zone_and_names_a_dns_server_that_does_not_answer() {
    let bind = Bind::start(&[zone()], &[KEY]);
    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("http://{}", start_upstream());
    let check = |resolver: &str| {
        berth()
            .args(["config", "check", "--agree-tos", "--challenge", "dns-01"])
            .args(["-d", "example.test", "-d", "*.example.test"])
            .args(["--upstream", &upstream])
            .arg("--store")
            .arg(dir.path().join("acme.json"))
            .args(["--dns-server", &bind.addr().to_string()])
            .arg("--dns-tsig-secret-file")
            .arg(bind.key_file(KEY))
            .args(["--dns-resolver", resolver])
            .args(["--http-addr", "127.0.0.1:0", "--tls-addr", "127.0.0.1:0"])
            .output()
            .unwrap()
    };
    let good = check(&bind.addr().to_string());
    let text = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "dns-01 for example.test: TXT _acme-challenge.example.test. in zone example.test."
        ),
        "{text}"
    );
    assert!(
        !text.contains("dns-01 for *.example.test"),
        "a wildcard shares its base name's record: {text}"
    );

    let dead = format!("127.0.0.1:{}", berth_tests::free_port());
    let bad = check(&dead);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(2), "{text}");
    assert!(text.contains("error") && text.contains(&dead), "{text}");
    assert_eq!(
        bind.txt("_acme-challenge.example.test"),
        Vec::<String>::new()
    );
}
