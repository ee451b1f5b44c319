//! The `berth` binary against real Pebble: issue, certs, revoke, refusals and failures,
//! with exit codes and what ends up in the store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use berth_tests::{Pebble, free_port};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn berth(args: &[&str]) -> Run {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_DOMAINS")
        .env("BERTH_LOG_FORMAT", "text")
        .output()
        .expect("run berth");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `berth issue` flags for this Pebble, answering on its validation ports.
fn issue_args(pebble: &Pebble, store: &Path, challenge: &str) -> Vec<String> {
    vec![
        "issue".into(),
        "--ca".into(),
        pebble.directory_url(),
        "--ca-root".into(),
        pebble.tls_root_path().display().to_string(),
        "--agree-tos".into(),
        "--email".into(),
        "ops@example.com".into(),
        "--store".into(),
        store.display().to_string(),
        "--challenge".into(),
        challenge.into(),
        "--http-addr".into(),
        format!("127.0.0.1:{}", pebble.http_port()),
        "--tls-addr".into(),
        format!("127.0.0.1:{}", pebble.tls_port()),
    ]
}

fn run_with(base: &[String], extra: &[&str]) -> Run {
    let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    berth(&args)
}

#[tokio::test]
async fn issue_http01_stores_exports_and_reuses_the_account() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let export = dir.path().join("out");
    let base = issue_args(&pebble, &store, "http-01");
    let export_arg = export.display().to_string();
    let run = run_with(
        &base,
        &[
            "-d",
            "app.example.com",
            "-d",
            "www.example.com",
            "--export-dir",
            &export_arg,
            "--json",
        ],
    );
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(doc["status"], "issued");
    assert_eq!(
        doc["domains"],
        serde_json::json!(["app.example.com", "www.example.com"])
    );
    assert!(doc["days_left"].as_i64().unwrap() > 0);

    for file in [store.clone(), dir.path().join("acme.json.berth-state")] {
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            file.display()
        );
    }
    let privkey = export.join("live/app.example.com/privkey.pem");
    assert_eq!(
        std::fs::metadata(&privkey).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(export.join("app.example.com.pem").exists());

    // A second run finds the valid certificate and places no order.
    let again = run_with(&base, &["-d", "app.example.com", "-d", "www.example.com"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("already stored"), "{}", again.stdout);
    assert_eq!(pebble.orders_received(), 1);

    // A forced re-issue reuses the stored account.
    let forced = run_with(
        &base,
        &["-d", "app.example.com", "-d", "www.example.com", "--force"],
    );
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let accounts = pebble
        .log()
        .lines()
        .filter(|l| l.contains("accounts in memory"))
        .count();
    assert_eq!(accounts, 1, "a second account was registered");

    let store_arg = store.display().to_string();
    let list = berth(&["certs", "list", "--store", &store_arg, "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let listed: serde_json::Value = serde_json::from_str(list.stdout.trim()).unwrap();
    assert_eq!(listed["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(listed["certificates"][0]["main"], "app.example.com");

    let show = berth(&["certs", "show", "www.example.com", "--store", &store_arg]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(show.stdout.contains("app.example.com"), "{}", show.stdout);

    // Revocation at the CA, marked in the state file and shown by `certs list`.
    let mut revoke = vec![
        "revoke",
        "app.example.com",
        "--reason",
        "superseded",
        "--store",
        &store_arg,
    ];
    let dir_url = pebble.directory_url();
    let root = pebble.tls_root_path().display().to_string();
    revoke.extend_from_slice(&["--ca", &dir_url, "--ca-root", &root]);
    let revoked = berth(&revoke);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let list = berth(&["certs", "list", "--store", &store_arg]);
    assert!(list.stdout.contains("[revoked]"), "{}", list.stdout);
}

#[tokio::test]
async fn issue_tls_alpn01_via_the_binary() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let run = run_with(
        &issue_args(&pebble, &store, "tls-alpn-01"),
        &["-d", "alpn.example.com", "--key-type", "ec384"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("certificate issued: alpn.example.com"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn refusals_exit_2_before_any_order() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let base = issue_args(&pebble, &store, "http-01");
    let wildcard = run_with(&base, &["-d", "*.example.com"]);
    assert_eq!(wildcard.code, 2);
    assert!(
        wildcard.stderr.contains("use --challenge dns-01"),
        "{}",
        wildcard.stderr
    );
    let sni = berth(&["issue", "-d", "a.example.com", "--challenge", "tls-sni-01"]);
    assert_eq!(sni.code, 2);
    assert!(
        sni.stderr.contains("removed by the CAs in 2019"),
        "{}",
        sni.stderr
    );
    let bad_name = run_with(&base, &["-d", "exa_mple.com"]);
    assert_eq!(bad_name.code, 2);
    assert!(
        bad_name.stderr.contains("-d/--domain"),
        "{}",
        bad_name.stderr
    );
    let bad_key = run_with(&base, &["-d", "a.example.com", "--key-type", "dsa"]);
    assert_eq!(bad_key.code, 2);
    assert_eq!(pebble.orders_received(), 0);
    assert!(!store.exists(), "a refused run wrote the store");
}

#[tokio::test]
async fn validation_failure_backs_off_across_runs_and_shows_in_certs_list() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let mut base = issue_args(&pebble, &store, "http-01");
    // Answer on a port Pebble does not connect to: validation fails.
    let wrong = format!("127.0.0.1:{}", free_port());
    let at = base.iter().position(|a| a == "--http-addr").unwrap();
    base[at + 1] = wrong;
    let first = run_with(&base, &["-d", "down.example.com"]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(
        first.stderr.contains("could not validate down.example.com"),
        "{}",
        first.stderr
    );
    for _ in 0..3 {
        let again = run_with(&base, &["-d", "down.example.com"]);
        assert_eq!(again.code, 1);
        assert!(again.stderr.contains("not asking"), "{}", again.stderr);
    }
    assert_eq!(pebble.orders_received(), 1);
    let store_arg = store.display().to_string();
    let list = berth(&["certs", "list", "--store", &store_arg]);
    assert!(
        list.stdout.contains("backing off: down.example.com"),
        "{}",
        list.stdout
    );
}

#[tokio::test]
async fn unreachable_ca_and_untrusted_ca_exit_1_with_clear_errors() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json").display().to_string();
    let down = format!("https://127.0.0.1:{}/dir", free_port());
    let root = pebble.tls_root_path().display().to_string();
    let run = berth(&[
        "issue",
        "-d",
        "a.example.com",
        "--ca",
        &down,
        "--ca-root",
        &root,
        "--agree-tos",
        "--store",
        &store,
        "--http-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("cannot reach the CA"), "{}", run.stderr);

    // Trusting some other root: Pebble's certificate does not verify.
    let other = dir.path().join("other-root.pem");
    let unrelated = Pebble::start().await;
    std::fs::write(&other, unrelated.tls_root_pem()).unwrap();
    let other = other.display().to_string();
    let dir_url = pebble.directory_url();
    let run = berth(&[
        "issue",
        "-d",
        "a.example.com",
        "--ca",
        &dir_url,
        "--ca-root",
        &other,
        "--agree-tos",
        "--store",
        &store,
        "--http-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.to_lowercase().contains("trust"),
        "{}",
        run.stderr
    );
}

#[test]
fn eab_hmac_in_a_plain_env_var_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["issue", "-d", "a.example.com", "--eab-kid", "kid-1"])
        .env("BERTH_EAB_HMAC", "c2VjcmV0LWhtYWMta2V5")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("BERTH_EAB_HMAC_FILE"), "{stderr}");
    assert!(!stderr.contains("c2VjcmV0LWhtYWMta2V5"), "{stderr}");
}
