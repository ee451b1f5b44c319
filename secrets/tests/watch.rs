//! Rotation watching with real files: in-place rewrites, rename-replace, the Kubernetes
//! projected-volume `..data` swap, no noise for unchanged content, errors and recovery,
//! and many concurrent replacements without ever reporting a partial value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::Duration;

use berth_secrets::{Loader, Secret, SecretWatcher, WatchOptions, watch};

const WAIT: Duration = Duration::from_secs(5);

fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Writes beside `path` and renames over it, as editors, `kubectl cp` and config
/// management do.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    write_private(&tmp, bytes);
    std::fs::rename(&tmp, path).unwrap();
}

fn start(path: &Path) -> SecretWatcher {
    watch(
        path,
        Loader::new(),
        WatchOptions::default().with_debounce(Duration::from_millis(50)),
    )
    .unwrap()
}

async fn next_value(watcher: &mut SecretWatcher) -> String {
    match tokio::time::timeout(WAIT, watcher.changed()).await {
        Ok(Some(Ok(secret))) => secret.expose().to_owned(),
        other => panic!("expected a new value, got {other:?}"),
    }
}

async fn nothing_within(watcher: &mut SecretWatcher, wait: Duration) {
    if let Ok(change) = tokio::time::timeout(wait, watcher.changed()).await {
        panic!("unexpected change: {change:?}");
    }
}

#[tokio::test]
async fn an_in_place_rewrite_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    write_private(&file, b"one\n");
    let mut watcher = start(&file);
    assert_eq!(watcher.current().expose(), "one");
    std::fs::write(&file, b"two\n").unwrap();
    assert_eq!(next_value(&mut watcher).await, "two");
    assert_eq!(watcher.current().expose(), "two");
}

#[tokio::test]
async fn a_rename_replace_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    write_private(&file, b"one");
    let mut watcher = start(&file);
    replace(&file, b"two");
    assert_eq!(next_value(&mut watcher).await, "two");
    replace(&file, b"three");
    assert_eq!(next_value(&mut watcher).await, "three");
}

#[tokio::test]
async fn the_kubernetes_data_symlink_swap_is_reported() {
    // The layout kubelet writes for a projected Secret volume:
    //   password -> ..data/password,  ..data -> ..2024_01_01_v1/
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("..2024_01_01_v1");
    std::fs::create_dir(&v1).unwrap();
    write_private(&v1.join("password"), b"v1-secret\n");
    symlink("..2024_01_01_v1", dir.path().join("..data")).unwrap();
    symlink("..data/password", dir.path().join("password")).unwrap();
    let mut watcher = start(&dir.path().join("password"));
    assert_eq!(watcher.current().expose(), "v1-secret");

    // Update: a new timestamped dir, a `..data_tmp` link, renamed over `..data`.
    let v2 = dir.path().join("..2024_01_02_v2");
    std::fs::create_dir(&v2).unwrap();
    write_private(&v2.join("password"), b"v2-secret\n");
    symlink("..2024_01_02_v2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    assert_eq!(next_value(&mut watcher).await, "v2-secret");
}

#[tokio::test]
async fn unchanged_content_is_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    write_private(&file, b"same\n");
    let mut watcher = start(&file);
    replace(&file, b"same\n");
    std::fs::write(&file, b"same\r\n").unwrap(); // trims to the same value
    std::fs::write(dir.path().join("unrelated"), b"x").unwrap();
    nothing_within(&mut watcher, Duration::from_millis(600)).await;
}

#[tokio::test]
async fn a_broken_file_is_reported_once_then_recovery_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    write_private(&file, b"good");
    let mut watcher = start(&file);
    std::fs::remove_file(&file).unwrap();
    match tokio::time::timeout(WAIT, watcher.changed()).await {
        Ok(Some(Err(e))) => assert!(e.to_string().contains("does not exist"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // The last good value stays current while the file is broken.
    assert_eq!(watcher.current().expose(), "good");
    std::fs::write(dir.path().join("unrelated"), b"x").unwrap();
    nothing_within(&mut watcher, Duration::from_millis(400)).await;
    replace(&file, b"good");
    assert_eq!(
        next_value(&mut watcher).await,
        "good",
        "recovery is reported even with the old content"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replacements_never_report_a_partial_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let value = |i: usize| format!("token-{i:03}-{}", "x".repeat(4096));
    write_private(&file, value(0).as_bytes());
    let mut watcher = start(&file);
    let writer = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            for i in 1..=50 {
                replace(&file, value(i).as_bytes());
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    writer.await.unwrap();
    let last = value(50);
    let mut seen = Vec::new();
    loop {
        let change = tokio::time::timeout(WAIT, watcher.changed())
            .await
            .expect("the final value is reported")
            .unwrap();
        let secret: Secret = change.unwrap();
        let text = secret.expose().to_owned();
        assert!(
            (1..=50).any(|i| value(i) == text),
            "a value that was never written whole: {} bytes",
            text.len()
        );
        seen.push(text.clone());
        if text == last {
            break;
        }
    }
    assert!(
        seen.len() < 50,
        "debouncing coalesces bursts: {} reports",
        seen.len()
    );
}

#[tokio::test]
async fn dropping_the_watcher_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    write_private(&file, b"one");
    let watcher = start(&file);
    drop(watcher);
    // Nothing to observe directly but that no task keeps the directory busy and a new
    // watcher on the same file still works.
    replace(&file, b"two");
    let mut again = start(&file);
    assert_eq!(again.current().expose(), "two");
    replace(&file, b"three");
    assert_eq!(next_value(&mut again).await, "three");
}

#[tokio::test]
async fn watching_a_missing_file_fails_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = watch(&missing, Loader::new(), WatchOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}
