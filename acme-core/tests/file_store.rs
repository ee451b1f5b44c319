//! The file store on real files: memory index, advisory locking between writers,
//! changes by other processes, read-only opening that never touches a file, the
//! single-file bind mount refused before any order, and the format-1 state file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_acme_core::store::records::{self, CertState};
use berth_acme_core::store::{
    AcmeJson, Change, Expect, FileStore, StateSnapshot, Store, StoreError, state_path,
};
use zeroize::Zeroizing;

fn json(value: serde_json::Value) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(&value).unwrap())
}

fn entry(main: &str) -> serde_json::Value {
    serde_json::json!({"domain": {"main": main, "sans": []}, "certificate": "Y2VydA==", "key": "a2V5", "Store": "default"})
}

/// Every file in `dir` with its bytes and mode.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            let bytes = fs::read(&path).unwrap_or_default();
            (path, (bytes, mode))
        })
        .collect()
}

fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test]
async fn writes_land_in_traefiks_format_and_keep_foreign_sections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    write_private(
        &path,
        r#"{"letsencrypt": {"Account": {"Email": "ops@example.com"}, "Certificates": [{"domain": {"main": "traefik.example.com"}, "certificate": "eA==", "key": "eA==", "Store": "default"}]}}"#,
    );
    let store = FileStore::open(&path, "berth").await.unwrap();
    assert_eq!(
        store.list(records::CERTS).await.unwrap(),
        ["certs/traefik.example.com"],
        "a foreign resolver's certificate is readable"
    );
    let v1 = store
        .put(
            "certs/a.example.com",
            json(entry("a.example.com")),
            Expect::Absent,
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .put(
                "certs/a.example.com",
                json(entry("a.example.com")),
                Expect::Absent,
                None,
            )
            .await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .put(
            "certs/a.example.com",
            json(entry("a.example.com")),
            Expect::Version(v1),
            None,
        )
        .await
        .unwrap();
    store
        .put(
            "state/a.example.com",
            json(serde_json::json!({})),
            Expect::Any,
            None,
        )
        .await
        .unwrap();

    let on_disk: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        on_disk["letsencrypt"]["Account"]["Email"],
        "ops@example.com"
    );
    assert_eq!(on_disk["berth"]["Account"], serde_json::Value::Null);
    assert_eq!(
        on_disk["berth"]["Certificates"][0]["domain"]["main"],
        "a.example.com"
    );
    for file in [&path, &state_path(&path)] {
        assert_eq!(
            fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A fresh reader sees what was written.
    drop(store);
    let again = FileStore::open_read_only(&path, "berth").await.unwrap();
    assert!(again.get("state/a.example.com").await.unwrap().is_some());
    assert_eq!(
        again.list("certs/a").await.unwrap(),
        ["certs/a.example.com"]
    );
}

#[tokio::test]
async fn two_writers_on_one_store_lose_neither_update() {
    // `berth issue` beside `berth run`: two owners of the same files. The advisory lock
    // and the merge before every write keep both certificates.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    let run = FileStore::open(&path, "berth").await.unwrap();
    let issue = FileStore::open(&path, "berth").await.unwrap();
    let mut writes = Vec::new();
    for i in 0..20 {
        let (store, name) = if i % 2 == 0 {
            (run.clone(), format!("run{i}.example.com"))
        } else {
            (issue.clone(), format!("issue{i}.example.com"))
        };
        writes.push(tokio::spawn(async move {
            store
                .put(
                    &format!("certs/{name}"),
                    json(entry(&name)),
                    Expect::Any,
                    None,
                )
                .await
                .unwrap();
        }));
    }
    for write in writes {
        write.await.unwrap();
    }
    let reader = FileStore::open_read_only(&path, "berth").await.unwrap();
    assert_eq!(reader.list("certs/").await.unwrap().len(), 20);
}

#[tokio::test]
async fn another_processes_edit_is_noticed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    let watcher = FileStore::open(&path, "berth").await.unwrap();
    let mut changes = watcher.changes();
    let other = FileStore::open(&path, "berth").await.unwrap();
    other
        .put(
            "certs/new.example.com",
            json(entry("new.example.com")),
            Expect::Any,
            None,
        )
        .await
        .unwrap();
    let change = tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("the change is noticed within the poll interval")
        .unwrap();
    assert_eq!(change, Change::Put("certs/new.example.com".into()));
    assert!(
        watcher
            .get("certs/new.example.com")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn read_only_opening_leaves_broken_and_foreign_files_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    // Traefik caught mid-write (it writes in place), world-readable, and a state file
    // from a newer berth.
    fs::write(&path, r#"{"letsencrypt": {"Certificates": [{"domain""#).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    write_private(&state_path(&path), r#"{"version": 7, "records": "later"}"#);
    let before = snapshot(dir.path());

    let err = FileStore::open_read_only(&path, "berth").await.unwrap_err();
    assert!(matches!(err, StoreError::Unparsable { .. }), "{err}");
    assert!(err.to_string().contains("left untouched"), "{err}");
    assert!(AcmeJson::read(&path).is_err());
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a read-only open changed a file"
    );

    // A parseable store with the newer state: refused as newer, never as corrupt.
    write_private(&path, "{}");
    let before = snapshot(dir.path());
    let err = FileStore::open_read_only(&path, "berth").await.unwrap_err();
    assert!(matches!(err, StoreError::Version { found: 7, .. }), "{err}");
    let err = FileStore::open(&path, "berth").await.unwrap_err();
    assert!(matches!(err, StoreError::Version { found: 7, .. }), "{err}");
    // The owner's open leaves its lock file; nothing else changed.
    let after: BTreeMap<_, _> = snapshot(dir.path())
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().ends_with(".lock"))
        .collect();
    assert_eq!(after, before);
}

#[tokio::test]
async fn the_owner_moves_a_corrupt_store_aside_keeping_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    write_private(&path, "{\"berth\": [");
    let err = FileStore::open(&path, "berth").await.unwrap_err();
    let StoreError::Corrupt { moved_to, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(fs::read(moved_to).unwrap(), b"{\"berth\": [");
    assert!(!path.exists());
}

#[tokio::test]
async fn format_1_state_is_read_and_kept_as_a_copy_when_converted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    let at = serde_json::to_value(std::time::SystemTime::now()).unwrap();
    let v1 = serde_json::json!({
        "version": 1,
        "ledger": {"https://ca/dir a.example.com": {
            "ca": "https://ca/dir", "domains": "a.example.com", "consecutive_failures": 3,
            "last_error_type": "x", "last_error": "refused", "last_failure_at": at, "next_attempt_at": at}},
    })
    .to_string();
    write_private(&state_path(&path), &v1);
    let store = FileStore::open(&path, "berth").await.unwrap();
    let state = StateSnapshot::read(store.as_ref()).await.unwrap();
    assert_eq!(
        state
            .ledger_entry("https://ca/dir", "a.example.com")
            .unwrap()
            .consecutive_failures,
        3
    );
    records::update_json::<CertState, _>(store.as_ref(), "state/b.example.com", None, |_| {})
        .await
        .unwrap();
    let mut copy = state_path(&path).into_os_string();
    copy.push(".v1");
    assert_eq!(fs::read_to_string(copy).unwrap(), v1);
    let now: serde_json::Value =
        serde_json::from_slice(&fs::read(state_path(&path)).unwrap()).unwrap();
    assert_eq!(now["version"], 2);
}

#[tokio::test]
async fn one_lock_holder_at_a_time_and_a_released_lock_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    let a = FileStore::open(&path, "berth").await.unwrap();
    let b = FileStore::open(&path, "berth").await.unwrap();
    let ttl = Duration::from_secs(60);
    let lease = a
        .try_lock("certs/x.example.com", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(
        b.try_lock("certs/x.example.com", ttl)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        b.try_lock("certs/y.example.com", ttl)
            .await
            .unwrap()
            .is_some()
    );
    a.unlock(lease).await.unwrap();
    assert!(
        b.try_lock("certs/x.example.com", ttl)
            .await
            .unwrap()
            .is_some()
    );
}

/// `docker run -v ./acme.json:/data/acme.json`, with a real bind mount (root only, as
/// on CI): refused at open — before any order — with the fix.
#[tokio::test]
async fn a_single_file_bind_mount_is_refused_before_ordering() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host-acme.json");
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let target = data.join("acme.json");
    write_private(&host, "{}");
    write_private(&target, "");
    let Some(_mounted) = berth_tests::BindMount::file(&host, &target) else {
        return;
    };

    let err = FileStore::open(&target, "berth").await.unwrap_err();
    assert!(matches!(err, StoreError::SingleFileMount { .. }), "{err}");
    assert_eq!(err.setting(), Some(berth_acme_core::Setting::StorePath));
    let text = err.to_string();
    assert!(
        text.contains("mount the directory that holds acme.json instead"),
        "{text}"
    );
    // Reading it is fine.
    assert!(FileStore::open_read_only(&target, "berth").await.is_ok());
    assert_eq!(fs::read(&host).unwrap(), b"{}");
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Kubernetes `fsGroup` makes every file on the volume 0660 at each mount: the owner
/// sets its files back to 0600 and starts; a reader only warns; world-readable is still
/// refused.
#[tokio::test]
async fn owner_starts_on_an_fsgroup_store_and_sets_it_back_to_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    let state = state_path(&path);
    fs::write(&path, serde_json::to_vec(&serde_json::json!({"berth": {"Account": null, "Certificates": [entry("a.example.com")]}})).unwrap()).unwrap();
    fs::write(&state, br#"{"version": 2, "records": {}}"#).unwrap();
    for file in [&path, &state] {
        fs::set_permissions(file, fs::Permissions::from_mode(0o660)).unwrap();
    }
    let before = snapshot(dir.path());
    let read_only = FileStore::open_read_only(&path, "berth").await.unwrap();
    assert_eq!(read_only.list(records::CERTS).await.unwrap().len(), 1);
    assert_eq!(snapshot(dir.path()), before, "a reader changed a mode");

    let store = FileStore::open(&path, "berth").await.unwrap();
    assert_eq!(store.list(records::CERTS).await.unwrap().len(), 1);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&state), 0o600);
    drop(store);

    fs::set_permissions(&path, fs::Permissions::from_mode(0o664)).unwrap();
    let err = FileStore::open(&path, "berth").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Permissions { mode: 0o664, .. }),
        "{err}"
    );
    assert_eq!(mode(&path), 0o664);
}

/// A symlinked acme.json is refused before anything is written, and stays a link to an
/// unchanged target; `certs export --format traefik` (`AcmeJson::save`) refuses a link
/// at its output path too.
#[tokio::test]
async fn a_symlinked_store_is_refused_never_replaced_by_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real-acme.json");
    write_private(&target, "{}");
    let link = dir.path().join("acme.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = FileStore::open(&link, "berth").await.unwrap_err();
    assert!(matches!(err, StoreError::Symlink { .. }), "{err}");
    assert!(
        err.to_string().contains("real-acme.json") && err.to_string().contains("symbolic link"),
        "{err}"
    );
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&target).unwrap(), b"{}");
    // Reading through it is fine.
    assert!(FileStore::open_read_only(&link, "berth").await.is_ok());
    let err = AcmeJson::default().save(&link).unwrap_err();
    assert!(matches!(err, StoreError::Symlink { .. }), "{err}");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// A FIFO where the state file belongs is refused, not waited on forever.
#[tokio::test]
async fn a_fifo_as_the_state_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    write_private(&path, "{}");
    let status = std::process::Command::new("mkfifo")
        .arg(state_path(&path))
        .status()
        .unwrap();
    assert!(status.success());
    let opened = tokio::time::timeout(
        Duration::from_secs(10),
        FileStore::open_read_only(&path, "berth"),
    )
    .await
    .expect("opening the store blocked on a FIFO");
    let err = opened.unwrap_err();
    assert!(matches!(err, StoreError::NotRegular { .. }), "{err}");
    assert!(err.to_string().contains("FIFO"), "{err}");
}
