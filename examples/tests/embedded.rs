//! The embedded example against real Pebble: it issues its own certificate and serves
//! the axum app over HTTPS to curl.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_tests::{Pebble, free_port, require_tool};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_embedded_app_serves_itself_over_https() {
    require_tool("curl", "curl");
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_embedded"))
            .args([
                "--domain",
                "embedded.example.com",
                "--ca",
                &pebble.directory_url(),
            ])
            .arg("--ca-root")
            .arg(pebble.tls_root_path())
            .args(["--http-addr", &format!("127.0.0.1:{}", pebble.http_port())])
            .args(["--tls-addr", &format!("127.0.0.1:{tls_port}")])
            .arg("--store")
            .arg(dir.path().join("acme.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("ready: "))
    });
    let line = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("the example announced readiness within 30 s")
        .unwrap()
        .expect("a ready line");
    assert!(line.contains("https://embedded.example.com:"), "{line}");

    let root = dir.path().join("root.pem");
    std::fs::write(&root, pebble.issuing_root_pem().await).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&root)
        .args([
            "--resolve",
            &format!("embedded.example.com:{tls_port}:127.0.0.1"),
            &format!("https://embedded.example.com:{tls_port}/"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the embedded app\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
