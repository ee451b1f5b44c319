//! testssl.sh against a running `berth run` serving a Pebble certificate on loopback:
//! the TLS setup an outside scanner sees (issue 17 point 13).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::Pebble;
use support::{Sidecar, start_upstream};

/// Findings about the test CA, not about berth: Pebble's chain is not in any trust
/// store, its certificates carry no CRL or OCSP URL (so nothing to staple), and they
/// are valid for five years (testssl: MEDIUM above 398 days).
const TEST_CA_FINDINGS: &[&str] = &[
    "cert_validityPeriod",
    "cert_chain_of_trust",
    "cert_trust",
    "cert_crlDistributionPoints",
    "cert_ocspURL",
    "OCSP_stapling",
    "cert_revocation",
    "cert_caIssuers",
    "DNS_CAArecord",
    "cert_commonName_wo_SNI",
];

/// What testssl.sh reports above LOW.
const TOO_SEVERE: &[&str] = &["MEDIUM", "HIGH", "CRITICAL"];

#[tokio::test]
async fn testssl_finds_tls_12_and_13_only_and_nothing_above_low() {
    let testssl = berth_tests::require_tool("testssl", "testssl.sh");
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::serving(
        &pebble,
        dir.path(),
        start_upstream(),
        &["tls.example.com"],
        &[],
    )
    .await;

    let json = dir.path().join("testssl.json");
    let started = Instant::now();
    // Protocols, cipher categories, the server's cipher order, its defaults
    // (certificate, resumption) and the classic vulnerabilities: what a scanner grades.
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(&testssl)
            .args([
                "--quiet",
                "--color",
                "0",
                "--warnings",
                "off",
                "--ip",
                "127.0.0.1",
                "--openssl-timeout",
                "5",
                "--protocols",
                "--std",
                "--server-preference",
                "--server-defaults",
                "--vulnerable",
                "--jsonfile",
            ])
            .arg(&json)
            .arg(format!("tls.example.com:{}", sidecar.tls_port))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("testssl finished within 180 s")
    .unwrap();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&output.stdout);
    let findings: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
            .unwrap_or_else(|e| panic!("testssl wrote no JSON ({e}): {text}"));
    let field = |f: &serde_json::Value, name: &str| f[name].as_str().unwrap_or("").to_owned();
    let of = |id: &str| {
        findings
            .iter()
            .find(|f| field(f, "id") == id)
            .map(|f| field(f, "finding"))
            .unwrap_or_else(|| panic!("testssl reported no {id}: {text}"))
    };

    // TLS 1.2 and 1.3 offered, nothing older (testssl says "not offered").
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(of(old).starts_with("not offered"), "{old}: {}", of(old));
    }
    assert!(of("TLS1_2").starts_with("offered"), "{}", of("TLS1_2"));
    assert!(of("TLS1_3").starts_with("offered"), "{}", of("TLS1_3"));

    let severe: Vec<String> = findings
        .iter()
        .filter(|f| TOO_SEVERE.contains(&field(f, "severity").as_str()))
        .filter(|f| !TEST_CA_FINDINGS.contains(&field(f, "id").as_str()))
        .map(|f| {
            format!(
                "{} [{}]: {}",
                field(f, "id"),
                field(f, "severity"),
                field(f, "finding")
            )
        })
        .collect();
    assert!(
        severe.is_empty(),
        "testssl findings above LOW:\n{}\n(took {took:?})",
        severe.join("\n")
    );
    println!(
        "testssl: {} findings, none above LOW, in {took:?}",
        findings.len()
    );
}
