//! Issue 19 through the binary against real Pebble: IP certificates over TLS-ALPN-01
//! and their refusals, a profile Pebble 2.4 does not offer, and `certs prune`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use berth_acme_core::stale;
use berth_acme_core::store::{DEFAULT_RESOLVER, FileStore};
use berth_tests::Pebble;
use support::{Finished, berth};

/// `berth issue` flags for this Pebble, answering on its validation ports.
fn issue(pebble: &Pebble, store: &Path, challenge: &str, extra: &[&str]) -> Finished {
    let ca_root = pebble.tls_root_path().display().to_string();
    let store = store.display().to_string();
    let http = format!("127.0.0.1:{}", pebble.http_port());
    let tls = format!("127.0.0.1:{}", pebble.tls_port());
    let directory = pebble.directory_url();
    let mut args = vec![
        "issue",
        "--ca",
        &directory,
        "--ca-root",
        &ca_root,
        "--agree-tos",
        "--email",
        "ops@example.com",
        "--store",
        &store,
        "--challenge",
        challenge,
        "--http-addr",
        &http,
        "--tls-addr",
        &tls,
    ];
    args.extend_from_slice(extra);
    berth(&args)
}

fn certs_json(store: &Path) -> serde_json::Value {
    let store = store.display().to_string();
    let run = berth(&["certs", "list", "--json", "--store", &store]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

#[tokio::test]
async fn berth_issue_gets_an_ip_certificate_over_tls_alpn01() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let run = issue(&pebble, &store, "tls-alpn-01", &["-d", "127.0.0.1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = certs_json(&store);
    assert_eq!(listed["certificates"][0]["domains"][0], "127.0.0.1");
}

#[tokio::test]
async fn ip_addresses_with_dns01_or_as_wildcards_are_refused_before_any_order() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let run = issue(&pebble, &store, "dns-01", &["-d", "127.0.0.1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot be validated with dns-01; use http-01 or tls-alpn-01"),
        "{}",
        run.stderr
    );
    let run = issue(&pebble, &store, "http-01", &["-d", "*.127.0.0.1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("wildcard over an IP address"),
        "{}",
        run.stderr
    );
    assert_eq!(pebble.orders_received(), 0);
}

#[tokio::test]
async fn a_profile_pebble_does_not_list_exits_2_before_any_order() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let run = issue(
        &pebble,
        &store,
        "http-01",
        &["-d", "p.example.com", "--profile", "shortlived"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("offers no certificate profiles"),
        "{}",
        run.stderr
    );
    assert_eq!(pebble.orders_received(), 0);
    assert!(!store.exists(), "nothing was written");
}

#[tokio::test]
async fn certs_prune_removes_only_unmanaged_certificates_and_dry_run_changes_nothing() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let store_arg = store.display().to_string();
    for name in ["kept.example.com", "old.example.com"] {
        let run = issue(&pebble, &store, "http-01", &["-d", name]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    // No berth run recorded its configuration yet: --unmanaged cannot decide.
    let run = berth(&["certs", "prune", "--unmanaged", "--store", &store_arg]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("start berth run with this store once"),
        "{}",
        run.stderr
    );

    // What berth run records when configured with kept.example.com only.
    {
        let owner = FileStore::open(&store, DEFAULT_RESOLVER).await.unwrap();
        stale::record_configured(owner.as_ref(), ["kept.example.com".to_owned()])
            .await
            .unwrap();
    }
    let listed = certs_json(&store);
    let managed: Vec<(String, serde_json::Value)> = listed["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["main"].as_str().unwrap().to_owned(), c["managed"].clone()))
        .collect();
    assert!(
        managed.contains(&("kept.example.com".into(), true.into())),
        "{managed:?}"
    );
    assert!(
        managed.contains(&("old.example.com".into(), false.into())),
        "{managed:?}"
    );
    let table = berth(&["certs", "list", "--store", &store_arg]);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.contains("old.example.com") && l.contains("[unmanaged]")),
        "{}",
        table.stdout
    );

    let before = std::fs::read(&store).unwrap();
    let dry = berth(&[
        "certs",
        "prune",
        "--unmanaged",
        "--dry-run",
        "--store",
        &store_arg,
    ]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout
            .contains("would remove old.example.com (unmanaged)"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        std::fs::read(&store).unwrap(),
        before,
        "a dry run wrote the store"
    );

    let run = berth(&["certs", "prune", "--unmanaged", "--store", &store_arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("removed old.example.com (unmanaged)"),
        "{}",
        run.stdout
    );
    let left: Vec<String> = certs_json(&store)["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["main"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["kept.example.com"]);
    // Nothing expired: --expired removes nothing.
    let run = berth(&["certs", "prune", "--expired", "--store", &store_arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("nothing to prune"), "{}", run.stdout);
    assert_eq!(pebble.orders_received(), 2, "prune never orders");
}

#[tokio::test]
async fn config_check_explains_ip_identifiers_and_refuses_a_profile_the_ca_does_not_list() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json").display().to_string();
    let upstream = format!("http://{}", support::start_upstream());
    let http = format!("127.0.0.1:{}", berth_tests::free_port());
    let tls = format!("127.0.0.1:{}", berth_tests::free_port());
    let directory = pebble.directory_url();
    let ca_root = pebble.tls_root_path().display().to_string();
    let check = |extra: &[&str]| {
        let mut args = vec![
            "config",
            "check",
            "--agree-tos",
            "--ca",
            &directory,
            "--ca-root",
            &ca_root,
            "--store",
            &store,
            "--upstream",
            &upstream,
            "--http-addr",
            &http,
            "--tls-addr",
            &tls,
            "-d",
            "127.0.0.1",
        ];
        args.extend_from_slice(extra);
        berth(&args)
    };
    let run = check(&[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("note: --domain: 127.0.0.1 is an IP address"),
        "{}",
        run.stdout
    );

    let run = check(&["--profile", "shortlived"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("error: --profile: the CA")
            && run.stdout.contains("offers no certificate profiles"),
        "{}",
        run.stdout
    );
    assert_eq!(pebble.orders_received(), 0);
}

#[tokio::test]
async fn certs_prune_revoke_revokes_at_the_ca_before_removing() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let store_arg = store.display().to_string();
    let run = issue(&pebble, &store, "http-01", &["-d", "revoke.example.com"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    {
        let owner = FileStore::open(&store, DEFAULT_RESOLVER).await.unwrap();
        stale::record_configured(owner.as_ref(), Vec::new())
            .await
            .unwrap();
    }
    let directory = pebble.directory_url();
    let ca_root = pebble.tls_root_path().display().to_string();
    let run = berth(&[
        "certs",
        "prune",
        "--unmanaged",
        "--revoke",
        "--json",
        "--store",
        &store_arg,
        "--ca",
        &directory,
        "--ca-root",
        &ca_root,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let pruned = &doc["certificates"][0];
    assert_eq!(pruned["domains"][0], "revoke.example.com", "{doc}");
    assert_eq!(pruned["revoked"], true, "{doc}");
    assert_eq!(pruned["removed"], true, "{doc}");
    assert!(
        pebble.log().contains("POST /revoke-cert"),
        "the CA was asked to revoke: {}",
        pebble.log()
    );
    assert!(
        certs_json(&store)["certificates"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn berth_run_records_its_sets_and_shows_a_stored_unmanaged_certificate_on_the_status_page() {
    let pebble = Pebble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    let run = issue(&pebble, &store, "http-01", &["-d", "old.example.com"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let upstream = format!("http://{}", support::start_upstream());
    let sidecar = support::Sidecar::start(
        &pebble,
        dir.path(),
        &[
            "-d",
            "new.example.com",
            "--upstream",
            &upstream,
            "--agree-tos",
        ],
    );
    sidecar.wait_ready(std::time::Duration::from_secs(30)).await;
    let (status, page) = sidecar.admin_get("/").await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<tr class=\"unmanaged\"><td>old.example.com</td>")
            && page.contains("unmanaged: never renewed"),
        "{page}"
    );
    // A fresh certificate is green, whatever its lifetime.
    assert!(
        page.contains("<tr class=\"ok\"><td>new.example.com</td>"),
        "{page}"
    );
    let listed = certs_json(&store);
    for cert in listed["certificates"].as_array().unwrap() {
        let expected = cert["main"] == "new.example.com";
        assert_eq!(cert["managed"], expected, "{listed}");
        assert_eq!(cert["expiry"], "fine", "{listed}");
    }
    assert_eq!(
        pebble.orders_received(),
        2,
        "old.example.com was not renewed"
    );
}

#[tokio::test]
async fn berth_run_gets_an_ip_certificate_over_tls_alpn01_and_serves_it_to_clients_without_sni() {
    let tls_port = berth_tests::free_port();
    let pebble = Pebble::start_with(berth_tests::PebbleOptions {
        tls_port: Some(tls_port),
        ..berth_tests::PebbleOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("http://{}", support::start_upstream());
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", berth_tests::free_port())
        .parse()
        .unwrap();
    // The first set is the default name for clients without SNI; the IP certificate
    // must still win for a client that connected to 127.0.0.1.
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        "[[certificates]]\ndomains = [\"app.example.com\"]\n[[certificates]]\ndomains = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    // As support::Sidecar::start, but on the port Pebble validates TLS-ALPN-01 on.
    let child = std::process::Command::new(support::berth_bin())
        .arg("run")
        .args(["--ca", &pebble.directory_url()])
        .args(["--ca-root", &pebble.tls_root_path().display().to_string()])
        .args([
            "--store",
            &dir.path().join("acme.json").display().to_string(),
        ])
        .args(["--http-addr", &format!("127.0.0.1:{}", pebble.http_port())])
        .args(["--tls-addr", &format!("127.0.0.1:{tls_port}")])
        .args(["--admin-addr", &admin.to_string()])
        .args(["--config", &config.display().to_string()])
        .args(["--challenge", "tls-alpn-01"])
        .args(["--upstream", &upstream, "--agree-tos"])
        .env_remove("BERTH_LOG_FORMAT")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("berth.stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("berth.stderr")).unwrap())
        .spawn()
        .unwrap();
    let sidecar = support::Sidecar {
        child,
        tls_port,
        admin,
        dir: dir.path().to_path_buf(),
    };
    sidecar.wait_ready(std::time::Duration::from_secs(30)).await;
    // curl to https://127.0.0.1:port sends no SNI and checks the IP SAN.
    let root = support::issuing_root(&pebble, dir.path()).await;
    let (status, body) = support::curl("127.0.0.1", tls_port, "/", &root);
    assert_eq!(status, 200, "{body}\n{}", sidecar.output());
}
