//! The proxy serves certificates; it does not order them. Its normal dependencies must
//! not pull the ACME client stack back in (berth-acme-core and, through it, instant-acme,
//! hickory, rsa and psl: about 80 crates the proxy would compile and link for nothing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

/// Crates of the ACME client stack, by package name or name prefix.
const FORBIDDEN: &[&str] = &["berth-acme-core", "instant-acme", "hickory", "rsa", "psl"];

#[test]
fn the_proxy_builds_without_the_acme_client() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "berth-proxy",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cargo tree failed: {stderr}");
    let tree = String::from_utf8(output.stdout).unwrap();
    assert!(
        tree.lines().any(|line| line.starts_with("berth-certs ")),
        "not the tree expected:\n{tree}"
    );
    let found: Vec<&str> = tree
        .lines()
        .filter(|line| {
            let name = line.split(' ').next().unwrap_or_default();
            FORBIDDEN
                .iter()
                .any(|bad| name == *bad || name.starts_with(&format!("{bad}-")))
        })
        .collect();
    assert!(
        found.is_empty(),
        "berth-proxy depends on the ACME client stack again (move what it needs to berth-certs):\n{}",
        found.join("\n")
    );
}
