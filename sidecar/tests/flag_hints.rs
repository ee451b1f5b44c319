//! The libraries' errors name the setting at fault in their own terms; the `berth`
//! binary still tells its user which flag to pass (sidecar/src/failure.rs maps one to the
//! other). Real Pebble and BIND where the error comes from them; and the secrets
//! directory, which the binary (not berth-secrets) takes from `BERTH_SECRETS_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use berth_tests::{Bind, BindZone, Pebble, PebbleOptions};
use support::{Finished, Sidecar, berth, eventually, start_upstream};

const KEY: &str = "berth-acme";

/// `berth issue` for `name` against `pebble`, with `extra` flags; the store in a
/// temporary directory.
fn issue(pebble: &Pebble, name: &str, extra: &[&str]) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json").display().to_string();
    let directory = pebble.directory_url();
    let http = format!("127.0.0.1:{}", pebble.http_port());
    let mut args = vec![
        "issue",
        "--ca",
        &directory,
        "--store",
        &store,
        "--http-addr",
        &http,
        "-d",
        name,
    ];
    args.extend_from_slice(extra);
    berth(&args)
}

#[tokio::test]
async fn issue_without_agree_tos_is_told_to_pass_it() {
    let pebble = Pebble::start().await;
    let root = pebble.tls_root_path().display().to_string();
    let out = issue(&pebble, "tos.example.com", &["--ca-root", &root]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("requires agreeing to its terms of service"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("hint: read them, then pass --agree-tos (BERTH_AGREE_TOS=true)"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_private_ca_without_ca_root_is_told_to_pass_it() {
    let pebble = Pebble::start().await;
    let out = issue(&pebble, "root.example.com", &["--agree-tos"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("is not trusted"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("hint: pass the CA's root certificate (a PEM file) with --ca-root"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_wildcard_over_http01_is_told_to_use_challenge_dns01() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json").display().to_string();
    let out = berth(&["issue", "--store", &store, "-d", "*.example.com"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("hint: use --challenge dns-01"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_password_in_the_store_url_is_told_to_use_store_password_file() {
    let out = berth(&["certs", "list", "--store", "etcd://berth:pw@127.0.0.1:1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("holds a password"), "{}", out.stderr);
    assert!(
        out.stderr.contains("pass --store-password-file"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("pw@"), "{}", out.stderr);
}

fn zone() -> BindZone {
    BindZone {
        name: "example.test".into(),
        records: vec![],
        update_policy: vec![format!(
            "grant {KEY}. name _acme-challenge.example.test. TXT"
        )],
    }
}

async fn pebble_through(bind: &Bind) -> Pebble {
    Pebble::start_with(PebbleOptions {
        dns_server: Some(bind.addr()),
        ..PebbleOptions::default()
    })
    .await
}

/// The dns-01 flags for `bind`, with `--dns-zone` naming a zone that does not hold
/// `example.test`.
fn wrong_zone(bind: &Bind) -> Vec<String> {
    let server = bind.addr().to_string();
    vec![
        "--challenge".into(),
        "dns-01".into(),
        "--dns-server".into(),
        server.clone(),
        "--dns-tsig-secret-file".into(),
        bind.key_file(KEY).display().to_string(),
        "--dns-resolver".into(),
        server,
        "--dns-zone".into(),
        "other.test".into(),
    ]
}

#[tokio::test]
async fn a_dns_zone_that_does_not_hold_the_name_is_named_by_issue_run_and_config_check() {
    let bind = Bind::start(&[zone()], &[KEY]);
    let pebble = pebble_through(&bind).await;
    let root = pebble.tls_root_path().display().to_string();
    let dns = wrong_zone(&bind);
    let mut extra = vec!["--agree-tos", "--ca-root", &root];
    extra.extend(dns.iter().map(String::as_str));

    let out = issue(&pebble, "example.test", &extra);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("is not inside the configured zone other.test"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: set --dns-zone"),
        "{}",
        out.stderr
    );

    // `berth config check` finds it without ordering.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json").display().to_string();
    let upstream = format!("http://{}", start_upstream());
    let mut args = vec!["config", "check", "--agree-tos", "-d", "example.test"];
    args.extend(["--upstream", &upstream, "--store", &store]);
    args.extend(["--http-addr", "127.0.0.1:0", "--tls-addr", "127.0.0.1:0"]);
    args.extend(dns.iter().map(String::as_str));
    let checked = berth(&args);
    assert_eq!(checked.code, 2, "{}", checked.stdout);
    assert!(
        checked
            .stdout
            .contains("is not inside the configured zone other.test"),
        "{}",
        checked.stdout
    );
    assert!(
        checked.stdout.contains("\n  hint: set --dns-zone"),
        "{}",
        checked.stdout
    );

    // `berth run` logs the failed order in the library's words, then the flag.
    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("http://{}", start_upstream());
    let mut extra = vec!["--agree-tos", "-d", "example.test", "--upstream", &upstream];
    extra.extend(dns.iter().map(String::as_str));
    let sidecar = Sidecar::start(&pebble, dir.path(), &extra);
    let hinted = eventually(Duration::from_secs(60), || {
        sidecar.output().contains("hint: set --dns-zone")
    })
    .await;
    assert!(hinted, "{}", sidecar.output());
    assert!(
        sidecar.output().contains("not inside the configured zone"),
        "{}",
        sidecar.output()
    );
}

#[test]
fn docker_secrets_are_looked_for_in_berth_secrets_dir() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().display().to_string();
    std::fs::write(dir.path().join("api_token"), "t0ken\n").unwrap();

    let moved = support::berth_command(&["secrets", "check", "API_TOKEN", "NOT_THERE"])
        .env("BERTH_SECRETS_DIR", &dir_arg)
        .spawn()
        .unwrap();
    let moved = support::finish(moved, Duration::from_secs(30));
    let text = format!("{}{}", moved.stdout, moved.stderr);
    assert!(text.contains("API_TOKEN: from Docker secret"), "{text}");
    assert!(
        text.contains(&format!("{dir_arg}/not_there")),
        "the missing one is looked for there too: {text}"
    );

    let default = berth(&["secrets", "check", "NOT_THERE"]);
    let text = format!("{}{}", default.stdout, default.stderr);
    assert!(text.contains("/run/secrets/not_there"), "{text}");
}
