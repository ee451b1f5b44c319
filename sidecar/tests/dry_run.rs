//! `berth renew [NAME…] --dry-run` and `berth issue --dry-run` against real Pebble: a
//! second Pebble plays the staging CA (`--staging-ca`), validating on the same port as
//! the first. A dry run orders exactly once from staging, never from production, and
//! leaves the real store byte for byte as it was — standalone and through `berth run`.
//! Real renewals by NAME, standalone and through `berth run`, are here too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_tests::{Pebble, PebbleOptions, free_port};
use support::{Sidecar, berth_bin};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn berth(args: &[String]) -> Run {
    berth_env(args, &[])
}

/// [`berth`] with extra environment variables.
fn berth_env(args: &[String], env: &[(&str, &Path)]) -> Run {
    let output = Command::new(berth_bin())
        .args(args)
        .envs(env.iter().copied())
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

/// Production and staging Pebbles validating HTTP-01 on one port, and a root file
/// trusting both of their API certificates.
async fn ca_pair(dir: &Path) -> (Pebble, Pebble, PathBuf) {
    let production = Pebble::start().await;
    let staging = Pebble::start_with(PebbleOptions {
        http_port: Some(production.http_port()),
        ..PebbleOptions::default()
    })
    .await;
    let roots = dir.join("roots.pem");
    std::fs::write(
        &roots,
        format!("{}{}", production.tls_root_pem(), staging.tls_root_pem()),
    )
    .unwrap();
    (production, staging, roots)
}

/// The CA and store flags of every command here.
fn common(production: &Pebble, staging: &Pebble, roots: &Path, store: &Path) -> Vec<String> {
    [
        "--ca",
        &production.directory_url(),
        "--staging-ca",
        &staging.directory_url(),
        "--ca-root",
        &roots.display().to_string(),
        "--agree-tos",
        "--store",
        &store.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn args(head: &[&str], common: &[String], tail: &[&str]) -> Vec<String> {
    head.iter()
        .map(|s| s.to_string())
        .chain(common.iter().cloned())
        .chain(tail.iter().map(|s| s.to_string()))
        .collect()
}

/// Every file of the store directory with its text (acme.json, berth's state file).
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter(|e| e.file_name().to_string_lossy().starts_with("acme.json"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn dry_runs_order_once_from_staging_and_leave_the_store_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (production, staging, roots) = ca_pair(dir.path()).await;
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let store = store_dir.join("acme.json");
    let common = common(&production, &staging, &roots, &store);
    let http = format!("127.0.0.1:{}", production.http_port());

    // Proven on staging first (an order and an account there), then production.
    let issued = berth(&args(
        &["issue", "-d", "app.example.com", "-d", "www.example.com"],
        &common,
        &["--http-addr", &http],
    ));
    assert_eq!(issued.code, 0, "{}{}", issued.stdout, issued.stderr);
    assert_eq!(staging.orders_received(), 1);
    assert_eq!(staging.accounts_registered(), 1);
    let before = snapshot(&store_dir);
    assert!(!before.is_empty());
    // The dry runs' throwaway stores go here, and are removed after each.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let tmp_env = [("TMPDIR", tmp.as_path())];

    // Standalone, selected by a name that is not the main one.
    let dry = berth_env(
        &args(
            &["renew", "www.example.com", "--standalone", "--dry-run"],
            &common,
            &["--http-addr", &http],
        ),
        &tmp_env,
    );
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout
            .contains("app.example.com,www.example.com: dry run succeeded")
            && dry.stdout.contains("nothing was stored"),
        "{}",
        dry.stdout
    );
    assert_eq!(staging.orders_received(), 2, "one order at staging");
    assert_eq!(
        staging.accounts_registered(),
        1,
        "the stored staging account is reused"
    );
    assert_eq!(production.orders_received(), 1, "none at production");
    assert_eq!(snapshot(&store_dir), before, "the store changed");

    // `issue --dry-run` for new names: proven on staging, not stored.
    let dry = berth(&args(
        &["issue", "-d", "new.example.com", "--dry-run", "--json"],
        &common,
        &["--http-addr", &http],
    ));
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    let doc: serde_json::Value = serde_json::from_str(dry.stdout.trim()).unwrap();
    assert_eq!(doc["results"][0]["status"], "dry-run", "{doc}");
    assert_eq!(staging.orders_received(), 3);
    assert_eq!(snapshot(&store_dir), before, "the store changed");

    // A name whose validation fails (nothing answers on the port the CA connects to).
    let wrong = format!("127.0.0.1:{}", free_port());
    let failed = berth_env(
        &args(
            &["issue", "-d", "broken.example.com", "--dry-run"],
            &common,
            &["--http-addr", &wrong],
        ),
        &tmp_env,
    );
    assert_ne!(failed.code, 0, "{}{}", failed.stdout, failed.stderr);
    assert!(
        failed.stdout.contains("broken.example.com: failed:")
            && failed.stdout.to_lowercase().contains("connect"),
        "the reason is missing: {}{}",
        failed.stdout,
        failed.stderr
    );
    assert!(
        failed.stderr.contains("the dry run failed"),
        "{}",
        failed.stderr
    );
    assert_eq!(snapshot(&store_dir), before, "the store changed");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "a dry run left its temporary store behind"
    );

    // A name no stored certificate carries.
    let unknown = berth(&args(
        &["renew", "other.example.com", "--standalone", "--dry-run"],
        &common,
        &["--http-addr", &http],
    ));
    assert_eq!(unknown.code, 2, "{}{}", unknown.stdout, unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("no managed certificate has the name other.example.com")
            && unknown.stderr.contains("app.example.com,www.example.com"),
        "{}",
        unknown.stderr
    );
    // A CA without a staging endpoint: refused, nothing ordered anywhere.
    let no_staging: Vec<String> = [
        "issue",
        "-d",
        "x.example.com",
        "--dry-run",
        "--ca",
        &production.directory_url(),
        "--ca-root",
        &roots.display().to_string(),
        "--agree-tos",
        "--store",
        &store.display().to_string(),
        "--http-addr",
        &http,
    ]
    .map(str::to_owned)
    .to_vec();
    let refused = berth(&no_staging);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("has no staging endpoint")
            && refused.stderr.contains("--staging-ca"),
        "{}",
        refused.stderr
    );
    assert_eq!(production.orders_received(), 1, "none at production");

    let orders_before_run = staging.orders_received();

    // Through a running `berth run`: its own listener answers the staging CA.
    // The sidecar harness trusts one root file: make it trust both Pebbles.
    std::fs::copy(&roots, production.tls_root_path()).unwrap();
    let upstream = format!("http://{}", support::start_upstream());
    let sidecar = Sidecar::start(
        &production,
        &store_dir,
        &[
            "-d",
            "app.example.com,www.example.com",
            "--staging-ca",
            &staging.directory_url(),
            "--skip-staging",
            "--agree-tos",
            "--upstream",
            &upstream,
        ],
    );
    sidecar.wait_ready(Duration::from_secs(30)).await;
    // berth run's first pass records its renewal check (no ARI at Pebble) after it is
    // ready; compare against the store once that is written.
    let mut before = snapshot(&store_dir);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = snapshot(&store_dir);
        if now == before && now.iter().any(|(_, text)| text.contains("check_again_at")) {
            break;
        }
        before = now;
    }
    let admin = sidecar.admin.to_string();
    let dry = berth(
        &[
            "renew",
            "app.example.com",
            "--dry-run",
            "--admin-addr",
            &admin,
        ]
        .map(str::to_owned),
    );
    assert_eq!(
        dry.code,
        0,
        "{}{}\n{}",
        dry.stdout,
        dry.stderr,
        sidecar.output()
    );
    assert!(dry.stdout.contains("dry run succeeded"), "{}", dry.stdout);
    assert_eq!(staging.orders_received(), orders_before_run + 1);
    assert_eq!(production.orders_received(), 1, "none at production");
    assert_eq!(snapshot(&store_dir), before, "the store changed");

    // Dry runs do not spend the forced-renewal budget (3 an hour): a fourth is served.
    for _ in 0..4 {
        let dry =
            berth(&["renew", "--dry-run", "--force", "--admin-addr", &admin].map(str::to_owned));
        assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    }
    assert_eq!(production.orders_received(), 1, "none at production");
    assert_eq!(snapshot(&store_dir), before, "the store changed");

    let unknown = berth(
        &[
            "renew",
            "nope.example.com",
            "--dry-run",
            "--admin-addr",
            &admin,
        ]
        .map(str::to_owned),
    );
    assert_eq!(unknown.code, 2, "{}{}", unknown.stdout, unknown.stderr);
    assert!(
        unknown.stderr.contains("404") && unknown.stderr.contains("nope.example.com"),
        "{}",
        unknown.stderr
    );

    // A real renewal by a name, through berth run: production orders, staging does not.
    let staging_orders = staging.orders_received();
    let renewed = berth(
        &[
            "renew",
            "www.example.com",
            "--force",
            "--admin-addr",
            &admin,
        ]
        .map(str::to_owned),
    );
    assert_eq!(renewed.code, 0, "{}{}", renewed.stdout, renewed.stderr);
    assert!(
        renewed
            .stdout
            .contains("app.example.com,www.example.com: renewed"),
        "{}",
        renewed.stdout
    );
    assert_eq!(production.orders_received(), 2);
    assert_eq!(staging.orders_received(), staging_orders);
}

#[tokio::test]
async fn standalone_renew_by_name_keeps_a_valid_certificate_and_renews_when_forced() {
    let dir = tempfile::tempdir().unwrap();
    let (production, staging, roots) = ca_pair(dir.path()).await;
    let store = dir.path().join("acme.json");
    let common = common(&production, &staging, &roots, &store);
    let http = format!("127.0.0.1:{}", production.http_port());
    for names in [["-d", "a.example.com"], ["-d", "b.example.com"]] {
        let issued = berth(&args(
            &["issue", names[0], names[1], "--skip-staging"],
            &common,
            &["--http-addr", &http],
        ));
        assert_eq!(issued.code, 0, "{}{}", issued.stdout, issued.stderr);
    }
    assert_eq!(production.orders_received(), 2);
    let serial = |name: &str| {
        let shown = berth(
            &[
                "certs",
                "show",
                name,
                "--store",
                &store.display().to_string(),
                "--json",
            ]
            .map(str::to_owned),
        );
        let doc: serde_json::Value = serde_json::from_str(shown.stdout.trim()).unwrap();
        doc["serial"].as_str().unwrap().to_owned()
    };
    let (a, b) = (serial("a.example.com"), serial("b.example.com"));

    let not_due = berth(&args(
        &["renew", "a.example.com", "--standalone"],
        &common,
        &["--http-addr", &http],
    ));
    assert_eq!(not_due.code, 0, "{}{}", not_due.stdout, not_due.stderr);
    assert!(
        not_due.stdout.contains("a.example.com: valid until") && not_due.stdout.contains("not due"),
        "{}",
        not_due.stdout
    );
    assert_eq!(
        production.orders_received(),
        2,
        "a valid certificate was renewed"
    );

    let forced = berth(&args(
        &[
            "renew",
            "a.example.com",
            "--standalone",
            "--force",
            "--json",
        ],
        &common,
        &["--http-addr", &http],
    ));
    assert_eq!(forced.code, 0, "{}{}", forced.stdout, forced.stderr);
    let doc: serde_json::Value = serde_json::from_str(forced.stdout.trim()).unwrap();
    assert_eq!(doc["results"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["results"][0]["status"], "renewed", "{doc}");
    assert_eq!(production.orders_received(), 3);
    assert_eq!(staging.orders_received(), 0);
    assert_ne!(serial("a.example.com"), a, "a.example.com was not replaced");
    assert_eq!(serial("b.example.com"), b, "b.example.com was not selected");

    // Once a berth run on this store is configured with a.example.com only, renewing
    // "all" leaves b.example.com (unmanaged) alone; naming it still renews it.
    let upstream = format!("http://{}", support::start_upstream());
    {
        let sidecar = Sidecar::start(
            &production,
            dir.path(),
            &[
                "-d",
                "a.example.com",
                "--agree-tos",
                "--upstream",
                &upstream,
            ],
        );
        sidecar.wait_ready(Duration::from_secs(30)).await;
        let state = dir.path().join("acme.json.berth-state");
        let recorded = support::eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&state).is_ok_and(|t| t.contains("\"configured\""))
        })
        .await;
        assert!(recorded, "berth run did not record its sets");
    }
    let all = berth(&args(
        &["renew", "--standalone", "--force"],
        &common,
        &["--http-addr", &http],
    ));
    assert_eq!(all.code, 0, "{}{}", all.stdout, all.stderr);
    assert!(
        all.stdout.contains("a.example.com: renewed")
            && all
                .stdout
                .contains("b.example.com: not renewed: berth run on this store is not configured"),
        "{}",
        all.stdout
    );
    assert_eq!(production.orders_received(), 4);
    let named = berth(&args(
        &["renew", "b.example.com", "--standalone", "--force"],
        &common,
        &["--http-addr", &http],
    ));
    assert_eq!(named.code, 0, "{}{}", named.stdout, named.stderr);
    assert!(
        named.stdout.contains("b.example.com: renewed"),
        "{}",
        named.stdout
    );
    assert_eq!(production.orders_received(), 5);
}
