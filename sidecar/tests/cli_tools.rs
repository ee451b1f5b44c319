//! `berth config check`, `berth secrets check` and `berth healthcheck` with the real
//! binary: each lint with its fix, secrets described but never shown, exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use berth_tests::free_port;
use support::{berth_bin, start_upstream};

struct Out {
    code: i32,
    text: String,
}

fn berth(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut command = Command::new(berth_bin());
    command.args(args).env("BERTH_LOG_FORMAT", "text");
    for var in [
        "BERTH_DOMAINS",
        "BERTH_CA",
        "BERTH_STORE",
        "BERTH_AGREE_TOS",
        "BERTH_CONFIG",
    ] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    Out {
        code: output.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// `config check` for one name with a good baseline, plus `extra` flags.
fn check(dir: &Path, extra: &[&str]) -> Out {
    let store = dir.join("acme.json").display().to_string();
    let upstream = format!("http://{}", start_upstream());
    let http = format!("127.0.0.1:{}", free_port());
    let tls = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["config", "check", "--agree-tos"];
    for (flag, value) in [
        ("-d", "app.example.com"),
        ("--store", store.as_str()),
        ("--upstream", upstream.as_str()),
        ("--http-addr", http.as_str()),
        ("--tls-addr", tls.as_str()),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    berth(&args, &[])
}

#[test]
fn a_good_configuration_passes_and_prints_the_effective_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.text);
    assert!(out.text.contains("configuration OK"), "{}", out.text);
    assert!(
        out.text.contains("domains = [\"app.example.com\"]"),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("ca = \"letsencrypt-staging\""),
        "the default CA is staging: {}",
        out.text
    );
}

#[test]
fn port_433_is_flagged_as_a_likely_typo() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), &["--https-port", "433"]);
    assert_eq!(out.code, 0, "a warning, not an error: {}", out.text);
    assert!(
        out.text
            .contains("warning: --https-port: port 433 is not HTTPS (443 is)"),
        "{}",
        out.text
    );
}

#[test]
fn an_http01_port_that_cannot_be_bound_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = check(dir.path(), &["--http-addr", &addr]);
    assert_eq!(out.code, 2, "{}", out.text);
    assert!(
        out.text
            .contains(&format!("error: --http-addr: cannot listen on {addr}")),
        "{}",
        out.text
    );
    assert!(out.text.contains("another server"), "{}", out.text);
}

#[test]
fn a_wildcard_needs_dns01() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), &["-d", "*.example.com"]);
    assert_eq!(out.code, 2, "{}", out.text);
    assert!(out.text.contains("--challenge dns-01"), "{}", out.text);
}

#[test]
fn skipping_staging_on_a_production_ca_never_proven_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), &["--ca", "letsencrypt", "--skip-staging"]);
    assert!(
        out.text.contains("warning: --skip-staging")
            && out.text.contains("never succeeded on staging"),
        "{}",
        out.text
    );
    let without = check(dir.path(), &["--ca", "letsencrypt"]);
    assert!(
        without.text.contains("goes to the staging CA"),
        "{}",
        without.text
    );
}

#[test]
fn a_store_others_can_read_or_a_directory_that_is_not_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    std::fs::write(&store, "{}").unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check(dir.path(), &[]);
    assert_eq!(out.code, 2, "{}", out.text);
    assert!(
        out.text.contains(&format!("chmod 600 {}", store.display())),
        "{}",
        out.text
    );

    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let inside = file.join("acme.json").display().to_string();
    let out = check(dir.path(), &["--store", &inside]);
    assert_eq!(out.code, 2, "{}", out.text);
    assert!(out.text.contains("error: --store"), "{}", out.text);
}

#[test]
fn an_unreachable_upstream_and_missing_terms_agreement_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json").display().to_string();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let tls = format!("127.0.0.1:{}", free_port());
    let out = berth(
        &[
            "config",
            "check",
            "-d",
            "app.example.com",
            "--store",
            &store,
            "--upstream",
            &nowhere,
            "--http-addr",
            &http,
            "--tls-addr",
            &tls,
        ],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.text);
    assert!(
        out.text
            .contains(&format!("warning: --upstream: {nowhere} is not reachable")),
        "{}",
        out.text
    );
    assert!(out.text.contains("error: --agree-tos"), "{}", out.text);
}

#[test]
fn a_config_file_is_merged_below_flags_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.toml");
    std::fs::write(
        &file,
        "domains = [\"file.example.com\"]\nca = \"letsencrypt\"\nemail = \"file@example.com\"\n",
    )
    .unwrap();
    let file_arg = file.display().to_string();
    let store = dir.path().join("acme.json").display().to_string();
    let out = berth(
        &[
            "config",
            "check",
            "--config",
            &file_arg,
            "--store",
            &store,
            "--upstream",
            "http://127.0.0.1:9",
            "--email",
            "flag@example.com",
        ],
        &[("BERTH_CA", "google-staging")],
    );
    assert!(
        out.text.contains("email = \"flag@example.com\""),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("dv.acme-v02.test-api.pki.goog"),
        "env beats file: {}",
        out.text
    );
    assert!(
        out.text.contains("domains = [\"file.example.com\"]"),
        "{}",
        out.text
    );
}

#[test]
fn secrets_check_describes_source_and_trimming_never_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hmac");
    std::fs::write(&file, "\u{feff}s3cr3t-value-xyz\r\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let docker = dir.path().join("secrets");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(docker.join("db_password"), "another-secret-abc\n").unwrap();
    let file_arg = file.display().to_string();
    let docker_arg = docker.display().to_string();
    let out = berth(
        &["secrets", "check", "EAB_HMAC", "DB_PASSWORD", "MISSING_ONE"],
        &[
            ("EAB_HMAC_FILE", file_arg.as_str()),
            ("BERTH_SECRETS_DIR", docker_arg.as_str()),
        ],
    );
    assert_eq!(out.code, 1, "one secret is missing: {}", out.text);
    assert!(
        out.text.contains(&format!(
            "EAB_HMAC: from file {file_arg} (from EAB_HMAC_FILE), 16 bytes; trimmed a UTF-8 BOM and 2 trailing newline byte(s)"
        )),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("DB_PASSWORD: from Docker secret") && out.text.contains("18 bytes"),
        "{}",
        out.text
    );
    assert!(out.text.contains("MISSING_ONE: not set"), "{}", out.text);
    assert!(!out.text.contains("s3cr3t"), "{}", out.text);
    assert!(!out.text.contains("another-secret"), "{}", out.text);

    let both = berth(
        &["secrets", "check", "EAB_HMAC", "--json"],
        &[
            ("EAB_HMAC", "plain-value-123"),
            ("EAB_HMAC_FILE", file_arg.as_str()),
        ],
    );
    assert_eq!(both.code, 1);
    assert!(
        both.text
            .contains("both EAB_HMAC and EAB_HMAC_FILE are set"),
        "{}",
        both.text
    );
    assert!(!both.text.contains("plain-value-123"), "{}", both.text);
}

#[test]
fn healthcheck_fails_clearly_when_nothing_answers() {
    let addr = format!("127.0.0.1:{}", free_port());
    let out = berth(&["healthcheck", "--admin-addr", &addr], &[]);
    assert_eq!(out.code, 1, "{}", out.text);
    assert!(out.text.contains("Connection refused"), "{}", out.text);
    assert!(out.text.contains("--admin-addr"), "{}", out.text);
}

#[test]
fn renew_without_a_running_sidecar_says_so() {
    let addr = format!("127.0.0.1:{}", free_port());
    let out = berth(&["renew", "--admin-addr", &addr], &[]);
    assert_eq!(out.code, 1, "{}", out.text);
    assert!(out.text.contains("is `berth run` running"), "{}", out.text);
}

#[test]
fn a_log_filter_that_does_not_parse_is_reported_not_ignored() {
    let addr = format!("127.0.0.1:{}", free_port());
    let out = berth(
        &["renew", "--admin-addr", &addr],
        &[("BERTH_LOG", "info,berth=loud")],
    );
    // The command still runs, at the default level, and says what was wrong.
    assert_eq!(out.code, 1, "{}", out.text);
    assert!(out.text.contains("is `berth run` running"), "{}", out.text);
    assert!(
        out.text
            .contains(r#"BERTH_LOG="info,berth=loud" is not a log filter"#),
        "{}",
        out.text
    );
    assert!(out.text.contains("info,berth_proxy=debug"), "{}", out.text);
}
