//! `berth run` end to end against real Pebble, a real upstream, curl and openssl:
//! issuance in the background with readiness, HTTPS to the app, `berth renew --force`
//! hot-swapping the served certificate, SIGHUP re-reading the config file, SIGTERM
//! draining an in-flight request, JSON logs with no secret in them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use berth_tests::{Pebble, PebbleOptions};
use support::{
    Sidecar, berth_bin, curl, curl_command, eventually, issuing_root, metric, served_serial,
    start_upstream,
};

const EAB_KID: &str = "kid-run";
/// base64url of 32 random-looking bytes; must never appear in any output.
const EAB_HMAC: &str = "q4mYc8Xo1Bv9nJr2LwT7sEe5KdHu3ZpA6gFiN0xVbCM";

#[tokio::test]
async fn run_issues_serves_renews_reloads_and_drains() {
    let pebble = Pebble::start_with(PebbleOptions {
        eab_keys: vec![(EAB_KID.into(), EAB_HMAC.into())],
        ..PebbleOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let hmac_file = dir.path().join("eab_hmac");
    std::fs::write(&hmac_file, format!("{EAB_HMAC}\n")).unwrap();
    std::fs::set_permissions(&hmac_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("berth.toml");
    let write_config = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "domains = [\"app.example.com\"]\nupstream = \"http://{upstream}\"\nagree_tos = true\neab_kid = \"{EAB_KID}\"\neab_hmac_file = \"{}\"\n{extra}",
                hmac_file.display()
            ),
        )
        .unwrap();
    };
    write_config("");
    let config_arg = config.display().to_string();
    let mut sidecar = Sidecar::start(&pebble, dir.path(), &["--config", &config_arg]);

    // Not ready until the certificate is issued in the background, then ready.
    let seen = sidecar.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(
        seen.first(),
        Some(&503),
        "readiness before issuance: {seen:?}"
    );
    let root = issuing_root(&pebble, dir.path()).await;
    let (status, body) = curl("app.example.com", sidecar.tls_port, "/hello", &root);
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from upstream /hello"),
        "{}",
        sidecar.output()
    );

    let (_, metrics) = sidecar.admin_get("/metrics").await.unwrap();
    assert_eq!(
        metric(&metrics, "berth_orders_total{result=\"issued\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "berth_ready "), Some(1.0));
    assert!(metric(&metrics, "berth_proxy_tls_handshakes_total").unwrap() >= 1.0);
    let reloads_before = metric(&metrics, "berth_proxy_cert_reloads_total").unwrap();
    let (_, certs) = sidecar.admin_get("/api/certs").await.unwrap();
    let certs: serde_json::Value = serde_json::from_str(&certs).unwrap();
    assert_eq!(certs["certificates"][0]["domains"][0], "app.example.com");
    assert_eq!(certs["certificates"][0]["valid"], true);

    let health = Command::new(berth_bin())
        .args(["healthcheck", "--admin-addr", &sidecar.admin.to_string()])
        .output()
        .unwrap();
    assert!(health.status.success(), "{health:?}");

    // `berth renew --force` makes the running sidecar order anew and serve the result
    // without a restart.
    let first_serial = served_serial("app.example.com", sidecar.tls_port);
    assert!(first_serial.starts_with("serial="), "{first_serial}");
    let renew = Command::new(berth_bin())
        .args([
            "renew",
            "--force",
            "--admin-addr",
            &sidecar.admin.to_string(),
        ])
        .output()
        .unwrap();
    let renew_out = String::from_utf8_lossy(&renew.stdout);
    assert!(
        renew.status.success(),
        "{renew_out}{}",
        String::from_utf8_lossy(&renew.stderr)
    );
    assert!(
        renew_out.contains("app.example.com: renewed"),
        "{renew_out}"
    );
    let port = sidecar.tls_port;
    assert!(
        eventually(Duration::from_secs(10), || served_serial(
            "app.example.com",
            port
        ) != first_serial)
        .await,
        "the renewed certificate was not served"
    );
    let (_, metrics) = sidecar.admin_get("/metrics").await.unwrap();
    assert!(metric(&metrics, "berth_proxy_cert_reloads_total").unwrap() > reloads_before);

    // SIGHUP re-reads the file: a second certificate and a route for it.
    let api_upstream = start_upstream();
    write_config(&format!(
        "routes = [\"api.example.com=http://{api_upstream}\"]\n[[certificates]]\ndomains = [\"api.example.com\"]\n"
    ));
    sidecar.signal("HUP");
    let mut api = (0, String::new());
    for _ in 0..150 {
        api = curl("api.example.com", port, "/v1", &root);
        if api.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        api,
        (200, "hello from upstream /v1".to_owned()),
        "{}",
        sidecar.output()
    );
    assert_eq!(
        curl("app.example.com", port, "/still", &root).0,
        200,
        "the first name keeps serving after reload"
    );

    // SIGTERM: the request in flight completes, then berth exits 0.
    let slow = curl_command("app.example.com", port, "/slow", &root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    sidecar.signal("TERM");
    let slow = slow.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&slow.stdout),
        "hello from upstream /slow\n200"
    );
    assert_eq!(sidecar.wait_exit(Duration::from_secs(15)), Some(0));

    // Logs: one JSON object per line on stdout (not a terminal), every event there,
    // and never the EAB HMAC.
    let stdout = std::fs::read_to_string(dir.path().join("berth.stdout")).unwrap();
    for line in stdout.lines() {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    for event in [
        "certificate issued",
        "configuration reloaded",
        "draining",
        "berth stopped",
    ] {
        assert!(stdout.contains(event), "no {event:?} in:\n{stdout}");
    }
    assert!(!sidecar.output().contains(EAB_HMAC), "the EAB HMAC leaked");
}

#[tokio::test]
async fn a_broken_config_on_sighup_keeps_the_running_one() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!("domains = [\"keep.example.com\"]\nupstream = \"http://{upstream}\"\n"),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let sidecar = Sidecar::start(
        &pebble,
        dir.path(),
        &["--config", &config_arg, "--agree-tos"],
    );
    sidecar.wait_ready(Duration::from_secs(30)).await;
    std::fs::write(&config, "domains = [\"keep.example.com\"\nupstream = ").unwrap();
    sidecar.signal("HUP");
    let output_has = |text: &str| sidecar.output().contains(text);
    assert!(
        eventually(Duration::from_secs(5), || output_has("reload failed")).await,
        "{}",
        sidecar.output()
    );
    let root = issuing_root(&pebble, dir.path()).await;
    assert_eq!(
        curl("keep.example.com", sidecar.tls_port, "/", &root).0,
        200
    );
    assert_eq!(
        sidecar.admin_get("/healthz").await.map(|(s, _)| s),
        Some(200)
    );
}

/// The admin API against what a web page on the same host can do (a cross-site POST, DNS
/// rebinding), with the admin server on `[::]` so IPv4 loopback clients arrive as
/// `::ffff:127.0.0.1`; concurrent forced renewals are coalesced and counted.
#[tokio::test]
async fn admin_api_refuses_web_pages_and_limits_forced_renewals() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("http://{}", start_upstream());
    let admin: std::net::SocketAddr = format!("[::]:{}", berth_tests::free_port())
        .parse()
        .unwrap();
    let sidecar = Sidecar::start_with_admin(
        &pebble,
        dir.path(),
        admin,
        &[
            "-d",
            "admin.example.com",
            "--upstream",
            &upstream,
            "--agree-tos",
        ],
    );
    sidecar.wait_ready(Duration::from_secs(30)).await;
    let port = admin.port();
    let host = format!("Host: 127.0.0.1:{port}");
    let renew = format!("POST /api/renew?force=true HTTP/1.1\r\n{host}\r\nX-Berth-Request: 1");

    // A form a web page posts: no custom header.
    let (status, body) =
        sidecar.admin_raw(&format!("POST /api/renew?force=true HTTP/1.1\r\n{host}"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("X-Berth-Request"), "{body}");
    // A page's fetch, even with the header (which would need a preflight).
    let (status, body) = sidecar.admin_raw(&format!("{renew}\r\nOrigin: http://evil.example"));
    assert_eq!(status, 403, "{body}");
    // DNS rebinding: the browser names the attacker's host.
    let (status, body) = sidecar.admin_raw(&format!(
        "GET /api/certs HTTP/1.1\r\nHost: rebound.evil.example:{port}"
    ));
    assert_eq!(status, 421, "{body}");
    let (status, body) = sidecar.admin_raw(&format!("GET /api/certs HTTP/1.1\r\n{host}"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("admin.example.com"), "{body}");

    // Two forced renewals at once: one runs, the other is told about it.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let both: Vec<_> = (0..2)
        .map(|_| {
            let barrier = std::sync::Arc::clone(&barrier);
            let renew = renew.clone();
            std::thread::spawn(move || {
                barrier.wait();
                support::admin_request(port, &renew)
            })
        })
        .collect();
    let mut answers: Vec<(u16, String)> = both.into_iter().map(|t| t.join().unwrap()).collect();
    answers.sort();
    assert_eq!(answers[0].0, 200, "{answers:?}\n{}", sidecar.output());
    assert!(answers[0].1.contains("\"renewed\""), "{answers:?}");
    assert_eq!(answers[1].0, 409, "{answers:?}");
    assert!(answers[1].1.contains("still running"), "{answers:?}");

    // `berth renew` sends the header (and, by IPv4, arrives as ::ffff:127.0.0.1).
    let out = Command::new(berth_bin())
        .args([
            "renew",
            "--force",
            "--admin-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (status, body) = sidecar.admin_raw(&renew);
    assert_eq!(status, 200, "{body}");
    // The fourth forced renewal within the hour is refused before any order.
    let (status, body) = sidecar.admin_raw(&renew);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("at most 3 forced renewals an hour"), "{body}");
}
