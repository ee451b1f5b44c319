//! Store files as Kubernetes and other hands leave them, with the real binary: a
//! group-readable store (`fsGroup`) is a warning for read-only commands, which change
//! nothing, and `certs export` never writes through a symbolic link.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_tests::free_port;
use support::{berth, start_upstream};

/// `berth config check` for one name with a good baseline and `store`.
fn config_check(store: &Path) -> support::Finished {
    let store_arg = store.display().to_string();
    let upstream = format!("http://{}", start_upstream());
    let http = format!("127.0.0.1:{}", free_port());
    let tls = format!("127.0.0.1:{}", free_port());
    berth(&[
        "config",
        "check",
        "--agree-tos",
        "-d",
        "app.example.com",
        "--store",
        &store_arg,
        "--upstream",
        &upstream,
        "--http-addr",
        &http,
        "--tls-addr",
        &tls,
    ])
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn read_only_commands_warn_about_an_fsgroup_store_and_leave_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    std::fs::write(&store, "{}").unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o660)).unwrap();
    let store_arg = store.display().to_string();
    let out = config_check(&store);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(
        out.code, 2,
        "a group-readable store is not an error: {text}"
    );
    assert!(
        text.contains("readable by its group") && text.contains("fsGroupChangePolicy"),
        "{text}"
    );
    assert_eq!(mode(&store), 0o660, "config check changed the mode");

    let out = berth(&["certs", "list", "--store", &store_arg]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(mode(&store), 0o660, "certs list changed the mode");
}

/// `config check` says what `berth run` would refuse: a symlinked store.
#[test]
fn config_check_refuses_a_symlinked_store_naming_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real-acme.json");
    std::fs::write(&target, "{}").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let store = dir.path().join("acme.json");
    std::os::unix::fs::symlink(&target, &store).unwrap();
    let out = config_check(&store);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 2, "{text}");
    assert!(
        text.contains("symbolic link") && text.contains("real-acme.json"),
        "{text}"
    );
    assert!(
        std::fs::symlink_metadata(&store)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn certs_export_refuses_to_write_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme.json");
    std::fs::write(&store, "{}").unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = dir.path().join("elsewhere.json");
    std::fs::write(&target, "not berth's").unwrap();
    let link = dir.path().join("export.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = berth(&[
        "certs",
        "export",
        "--format",
        "traefik",
        "--store",
        &store.display().to_string(),
        "--out",
        &link.display().to_string(),
    ]);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(out.code, 0, "{text}");
    assert!(
        text.contains("symbolic link") && text.contains("elsewhere.json"),
        "{text}"
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not berth's");
}
