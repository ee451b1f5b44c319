//! `berth import` on real files: lego and certbot (the Debian packages) get certificates
//! from Pebble in the test, a Traefik v1 acme.json is built from one of them; berth
//! imports them through the store API, reports what it skipped and why, never touches
//! the sources, and `berth run` then serves an imported certificate and plans its renewal
//! instead of ordering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use berth_tests::{Pebble, PebbleOptions, Redis, require_tool};
use support::{Sidecar, berth_bin};

fn berth(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(berth_bin())
        .args(args)
        .env("BERTH_LOG_FORMAT", "text")
        .output()
        .expect("run berth");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a fixture tool to the end; panics with its output when it fails.
fn tool(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// lego's `run` against Pebble, answering HTTP-01 on Pebble's validation port.
fn lego(pebble: &Pebble, dir: &Path, domain: &str) -> PathBuf {
    let path = dir.join(".lego");
    let mut command = Command::new(require_tool("lego", "lego"));
    command
        .env("LEGO_CA_CERTIFICATES", pebble.tls_root_path())
        .args(["--server", &pebble.directory_url()])
        .args(["--email", "ops@example.com", "--accept-tos"])
        .args(["--path", &path.display().to_string()])
        .args(["--domains", domain, "--http"])
        .args(["--http.port", &format!("127.0.0.1:{}", pebble.http_port())])
        .arg("run");
    tool(command, "lego run");
    path
}

/// certbot's `certonly --standalone` against Pebble, everything in a temp directory.
fn certbot(pebble: &Pebble, dir: &Path, domain: &str) -> PathBuf {
    let config = dir.join("letsencrypt");
    let mut command = Command::new(require_tool("certbot", "certbot"));
    command
        .env("REQUESTS_CA_BUNDLE", pebble.tls_root_path())
        .args([
            "certonly",
            "--standalone",
            "--non-interactive",
            "--agree-tos",
        ])
        .args(["-m", "ops@example.com", "-d", domain])
        .args(["--server", &pebble.directory_url()])
        .args(["--http-01-port", &pebble.http_port().to_string()])
        .args(["--http-01-address", "127.0.0.1"])
        .args(["--config-dir", &config.display().to_string()])
        .args([
            "--work-dir",
            &dir.join("certbot-work").display().to_string(),
        ])
        .args([
            "--logs-dir",
            &dir.join("certbot-logs").display().to_string(),
        ]);
    tool(command, "certbot certonly");
    config
}

/// Every entry under `root` (links not followed) with its bytes and modification time.
fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let bytes = if meta.is_file() {
            std::fs::read(&path).unwrap()
        } else if meta.file_type().is_symlink() {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            Vec::new()
        };
        out.push((path, bytes, meta.modified().unwrap()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Base64 of a file's bytes, as Traefik writes Go `[]byte` fields (coreutils `base64`).
fn base64_of(path: &Path) -> String {
    let output = Command::new("base64")
        .arg("-w0")
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

/// A Traefik v1 acme.json: one good entry from lego's files, one whose key is another
/// certificate's.
fn traefik_v1(lego: &Path, certbot: &Path, out: &Path) {
    let certs = lego.join("certificates");
    let chain = base64_of(&certs.join("lego.example.com.crt"));
    let key = base64_of(&certs.join("lego.example.com.key"));
    let other_key = base64_of(&certbot.join("live/certbot.example.com/privkey.pem"));
    let entry = |key: &str| {
        serde_json::json!({
            "Domain": {"Main": "lego.example.com", "SANs": null},
            "Certificate": chain,
            "Key": key,
        })
    };
    let doc = serde_json::json!({
        "Account": {"Email": "ops@example.com", "Registration": null, "PrivateKey": "MIIE", "KeyType": "4096"},
        "Certificates": [entry(&key), entry(&other_key)],
        "HTTPChallenges": {},
        "TLSChallenges": {},
    });
    std::fs::write(out, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

#[tokio::test]
async fn lego_certbot_and_traefik_v1_files_are_imported_checked_and_left_untouched() {
    let pebble = Pebble::start_with(PebbleOptions {
        // The fixtures' own clients are not under test: no random badNonce for them.
        nonce_reject_percent: Some(0),
        ..PebbleOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("sources");
    std::fs::create_dir(&sources).unwrap();
    let lego = lego(&pebble, &sources, "lego.example.com");
    let certbot = certbot(&pebble, &sources, "certbot.example.com");
    let v1 = sources.join("traefik-v1-acme.json");
    traefik_v1(&lego, &certbot, &v1);
    let before = tree(&sources);
    let orders = pebble.orders_received();

    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let store = store_dir.join("acme.json");
    let store_arg = store.display().to_string();

    // --dry-run first: it says what would happen and writes no store file.
    let (code, out, err) = berth(&[
        "import",
        &lego.display().to_string(),
        "--store",
        &store_arg,
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("lego.example.com: would be imported") && out.contains("nothing was written"),
        "{out}"
    );
    assert!(!store.exists(), "--dry-run created the store");

    let (code, out, err) = berth(&[
        "import",
        &lego.display().to_string(),
        "--store",
        &store_arg,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(doc["format"], "lego");
    assert_eq!(doc["certificates"][0]["status"], "imported", "{doc}");
    assert_eq!(doc["certificates"][0]["domains"][0], "lego.example.com");

    let (code, out, err) = berth(&[
        "import",
        &certbot.display().to_string(),
        "--store",
        &store_arg,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("certbot from") && out.contains("certbot.example.com: imported"),
        "{out}"
    );
    assert!(
        out.contains(&format!("(CA {})", pebble.directory_url())),
        "certbot's renewal conf names the server: {out}"
    );

    // The v1 file: its good entry is the lego certificate, already stored; the other is
    // skipped because its key belongs to another certificate.
    let (code, out, err) = berth(&["import", &v1.display().to_string(), "--store", &store_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Traefik v1 acme.json"), "{out}");
    assert!(
        out.contains("lego.example.com: not imported: the store already holds"),
        "{out}"
    );
    assert!(
        out.contains("skipped lego.example.com") && out.contains("does not belong"),
        "{out}"
    );

    // Traefik v2/v3: the store written out as a Traefik acme.json and imported anew.
    let v2 = dir.path().join("traefik-v2-acme.json");
    let v2_arg = v2.display().to_string();
    let (code, out, err) = berth(&[
        "certs", "export", "--format", "traefik", "--out", &v2_arg, "--store", &store_arg,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let other = dir.path().join("other").join("acme.json");
    std::fs::create_dir(other.parent().unwrap()).unwrap();
    let (code, out, err) = berth(&["import", &v2_arg, "--store", &other.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Traefik v2/v3 acme.json")
            && out.contains("2 stored, 0 already in the store, 0 skipped"),
        "{out}"
    );

    // Any store backend: the same sources into Redis, through the store API.
    let redis = Redis::start();
    let (code, out, err) = berth(&[
        "import",
        &certbot.display().to_string(),
        "--store",
        &redis.url(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("certbot.example.com: imported"), "{out}");
    let (code, out, err) = berth(&["certs", "list", "--store", &redis.url(), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"main\":\"certbot.example.com\""), "{out}");

    assert_eq!(tree(&sources), before, "a source file changed");

    let (code, out, err) = berth(&["certs", "list", "--store", &store_arg, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let list: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let certs = list["certificates"].as_array().unwrap();
    let mains: Vec<&str> = certs.iter().map(|c| c["main"].as_str().unwrap()).collect();
    assert_eq!(certs.len(), 2, "{list}");
    assert!(mains.contains(&"lego.example.com") && mains.contains(&"certbot.example.com"));
    for cert in certs {
        assert_eq!(cert["resolver"], "berth");
        let renew_at = cert["renew_at"].as_str().unwrap();
        assert!(
            renew_at < cert["not_after"].as_str().unwrap() && cert["days_left"].as_i64() > Some(0),
            "{cert}"
        );
    }

    // berth run with an imported certificate's names serves it and orders nothing.
    let upstream = format!("http://{}", support::start_upstream());
    let sidecar = Sidecar::start(
        &pebble,
        &store_dir,
        &[
            "-d",
            "certbot.example.com",
            "--agree-tos",
            "--upstream",
            &upstream,
        ],
    );
    sidecar.wait_ready(Duration::from_secs(30)).await;
    let (status, body) = sidecar.admin_get("/api/certs").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("certbot.example.com") && body.contains("next_renewal"),
        "{body}"
    );
    assert_eq!(pebble.orders_received(), orders, "berth run ordered anew");
    let served = support::served_serial("certbot.example.com", sidecar.tls_port);
    let (_, out, _) = berth(&[
        "certs",
        "show",
        "certbot.example.com",
        "--store",
        &store_arg,
        "--json",
    ]);
    let shown: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        served
            .trim_start_matches("serial=")
            .to_ascii_lowercase()
            .trim_start_matches('0'),
        shown["serial"].as_str().unwrap().trim_start_matches('0'),
        "berth run does not serve the imported certificate"
    );
}

#[test]
fn a_source_of_no_known_layout_or_only_bad_certificates_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json").display().to_string();
    let (code, _, err) = berth(&[
        "import",
        &dir.path().display().to_string(),
        "--store",
        &store,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not a layout berth imports") && err.contains("live/"),
        "{err}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Certificates":[{"Domain":{"Main":"x.example.com"},"Certificate":"bm9wZQ==","Key":"bm9wZQ=="}]}"#,
    )
    .unwrap();
    let (code, out, err) = berth(&["import", &bad.display().to_string(), "--store", &store]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("skipped x.example.com"), "{out}");
    assert!(err.contains("nothing imported"), "{err}");
}
