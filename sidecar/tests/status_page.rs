//! The admin status page in a real browser: headless Chromium loads `/` from a running
//! `berth run`, the rendered DOM must show the certificate, and a screenshot is kept
//! under the target directory for a person to look at.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::{Pebble, require_tool};
use support::{Sidecar, start_upstream};

/// Headless Chromium with the flags that keep it off the (absent) network.
fn chromium(profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    require_tool("chromium", "chromium");
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--timeout=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

#[tokio::test]
async fn status_page_renders_certificates_in_chromium() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::serving(
        &pebble,
        dir.path(),
        start_upstream(),
        &["status.example.com", "www.status.example.com"],
        &[],
    )
    .await;
    let url = format!("http://{}/", sidecar.admin);

    let profile = dir.path().join("chromium-profile");
    let dom = chromium(&profile, &["--dump-dom"], &url);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("status.example.com,www.status.example.com"),
        "DOM: {html}\nstderr: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    assert!(
        html.contains("<tr class=\"ok\">"),
        "a fresh certificate is green: {html}"
    );
    assert!(html.contains(" days</td>"), "{html}");
    assert!(html.contains(&pebble.directory_url()), "{html}");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let shot = shots.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let taken = chromium(
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,420",
        ],
        &url,
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}): {}",
            shot.display(),
            String::from_utf8_lossy(&taken.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 5_000, "suspiciously small screenshot");
    eprintln!("status page screenshot: {}", shot.display());
}
