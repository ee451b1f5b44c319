#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use super::*;
use crate::store::FileStore;

/// A leaf for `names` signed by a throwaway intermediate: (leaf PEM, intermediate PEM,
/// key PEM).
fn chain(names: &[&str], days: i64) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "import test intermediate");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let leaf = params.signed_by(&key, &issuer).unwrap();
    (leaf.pem(), ca_cert.pem(), key.serialize_pem())
}

fn entry(names: &[&str], leaf: &str, issuer: &str, key: &str, v1: bool) -> serde_json::Value {
    let (main, sans) = (names[0], &names[1..]);
    let chain = STANDARD.encode(format!("{leaf}{issuer}"));
    let key = STANDARD.encode(key);
    if v1 {
        serde_json::json!({"Domain": {"Main": main, "SANs": sans}, "Certificate": chain, "Key": key})
    } else {
        serde_json::json!({"domain": {"main": main, "sans": sans}, "certificate": chain, "key": key, "Store": "default"})
    }
}

#[test]
fn traefik_v1_acme_json_is_recognised_and_each_entry_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (leaf, issuer, key) = chain(&["a.example.com", "www.a.example.com"], 60);
    let (_, _, other_key) = chain(&["b.example.com"], 60);
    let (b_leaf, b_issuer, _) = chain(&["b.example.com"], 60);
    let doc = serde_json::json!({
        "Account": {"Email": "ops@example.com", "PrivateKey": "MIIE"},
        "Certificates": [
            entry(&["a.example.com", "www.a.example.com"], &leaf, &issuer, &key, true),
            entry(&["b.example.com"], &b_leaf, &b_issuer, &other_key, true),
        ],
        "HTTPChallenges": {},
        "TLSChallenges": {},
    });
    let path = dir.path().join("acme.json");
    fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();

    let scan = scan(&path).unwrap();
    assert_eq!(scan.format, Format::TraefikV1);
    assert_eq!(scan.found.len(), 1, "{:?}", scan.skipped);
    assert_eq!(
        scan.found[0].domains.to_string(),
        "a.example.com,www.a.example.com"
    );
    assert_eq!(scan.skipped.len(), 1);
    assert_eq!(scan.skipped[0].label, "b.example.com");
    assert!(
        scan.skipped[0].reason.contains("does not belong"),
        "{}",
        scan.skipped[0].reason
    );
}

#[test]
fn traefik_v2_sections_are_read_and_a_lone_leaf_or_expired_one_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (leaf, issuer, key) = chain(&["a.example.com"], 60);
    let (old_leaf, old_issuer, old_key) = chain(&["old.example.com"], -2);
    let doc = serde_json::json!({
        "le": {"Account": null, "Certificates": [
            entry(&["a.example.com"], &leaf, &issuer, &key, false),
            entry(&["old.example.com"], &old_leaf, &old_issuer, &old_key, false),
        ]},
        "other": {"Account": null, "Certificates": [entry(&["a.example.com"], &leaf, "", &key, false)]},
        "empty": {"Account": null, "Certificates": null},
    });
    let path = dir.path().join("acme.json");
    fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();

    let scan = scan(&path).unwrap();
    assert_eq!(scan.format, Format::Traefik);
    assert_eq!(scan.found.len(), 1);
    assert_eq!(scan.found[0].label, "le/a.example.com");
    let reasons: Vec<_> = scan
        .skipped
        .iter()
        .map(|s| (s.label.as_str(), s.reason.as_str()))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(l, r)| *l == "le/old.example.com" && r.contains("expired")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(l, r)| *l == "other/a.example.com" && r.contains("only the leaf")),
        "{reasons:?}"
    );
}

#[test]
fn lego_without_bundle_takes_the_issuer_file_and_the_json_main_name() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join(".lego/certificates");
    fs::create_dir_all(&certs).unwrap();
    let (leaf, issuer, key) = chain(&["www.example.org", "example.org"], 60);
    fs::write(certs.join("example.org.crt"), &leaf).unwrap();
    fs::write(certs.join("example.org.issuer.crt"), &issuer).unwrap();
    fs::write(certs.join("example.org.key"), &key).unwrap();
    fs::write(
        certs.join("example.org.json"),
        r#"{"domain":"example.org","certUrl":"https://ca.test:14000/certZ/1"}"#,
    )
    .unwrap();
    fs::write(certs.join("nokey.test.crt"), &leaf).unwrap();

    let scan = scan(&dir.path().join(".lego")).unwrap();
    assert_eq!(scan.format, Format::Lego);
    assert_eq!(scan.found.len(), 1);
    let found = &scan.found[0];
    assert_eq!(found.domains.main().as_str(), "example.org");
    assert_eq!(found.ca.as_deref(), Some("https://ca.test:14000"));
    assert_eq!(found.certificate.certified_key().cert.len(), 2);
    assert_eq!(scan.skipped.len(), 1);
    assert!(scan.skipped[0].reason.contains("nokey.test.key is missing"));
}

#[test]
fn certbot_lineages_name_the_server_and_missing_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live/example.net");
    fs::create_dir_all(&live).unwrap();
    fs::create_dir_all(dir.path().join("live/broken")).unwrap();
    fs::create_dir_all(dir.path().join("renewal")).unwrap();
    let (leaf, issuer, key) = chain(&["example.net"], 60);
    fs::write(live.join("fullchain.pem"), format!("{leaf}{issuer}")).unwrap();
    fs::write(live.join("privkey.pem"), &key).unwrap();
    fs::write(
        dir.path().join("renewal/example.net.conf"),
        "version = 2.1.0\n[renewalparams]\nauthenticator = standalone\nserver = https://ca.test/dir\n",
    )
    .unwrap();

    let scan = scan(dir.path()).unwrap();
    assert_eq!(scan.format, Format::Certbot);
    assert_eq!(scan.found.len(), 1);
    assert_eq!(scan.found[0].ca.as_deref(), Some("https://ca.test/dir"));
    assert_eq!(scan.skipped.len(), 1);
    assert_eq!(scan.skipped[0].label, "broken");
    assert!(scan.skipped[0].reason.contains("fullchain.pem is missing"));
}

#[test]
fn an_unknown_directory_says_which_layouts_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let err = scan(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("live/") && err.contains("certificates/"),
        "{err}"
    );
}

#[tokio::test]
async fn import_stores_new_certificates_and_keeps_a_longer_stored_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(&dir.path().join("acme.json"), "berth")
        .await
        .unwrap();
    let found = |days: i64| {
        let (leaf, issuer, key) = chain(&["a.example.com"], days);
        let certificate = verify(
            &format!("{leaf}{issuer}"),
            Secret::new(key),
            SystemTime::now(),
        )
        .unwrap();
        Found {
            label: "a.example.com".into(),
            path: Path::new("src").to_path_buf(),
            domains: certificate.info().domains.clone(),
            certificate,
            ca: None,
        }
    };
    let short = [found(30)];
    let planned = preview(store.as_ref(), &short).await.unwrap();
    assert_eq!(planned[0].1, ImportOutcome::Imported);
    assert!(
        store
            .get(&records::cert_key("a.example.com"))
            .await
            .unwrap()
            .is_none(),
        "preview wrote to the store"
    );
    let first = import(store.as_ref(), &short).await.unwrap();
    assert_eq!(first[0].1, ImportOutcome::Imported);
    let again = import(store.as_ref(), &short).await.unwrap();
    assert!(
        matches!(again[0].1, ImportOutcome::Kept { .. }),
        "{:?}",
        again[0].1
    );
    let long = [found(80)];
    let replaced = import(store.as_ref(), &long).await.unwrap();
    assert!(matches!(replaced[0].1, ImportOutcome::Replaced { .. }));
    let stored = store
        .get(&records::cert_key("a.example.com"))
        .await
        .unwrap()
        .unwrap();
    let record = CertRecord::decode(&stored.value).unwrap();
    let diff = record
        .certificate
        .info()
        .not_after
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(diff > Duration::from_secs(70 * 86400));
}
