//! The manager's file I/O stays off its runtime: `berth run` serves the admin API on the
//! same single-threaded runtime as the manager, so a slow disk must not stall it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_acme_core::store::FileStore;
use berth_acme_core::{
    AccountConfig, Ca, CertManager, ChallengeKind, DomainSet, KeyType, ManagedCert, ManagerConfig,
};

/// Where the manager keeps the rescue file for `key` (FNV-1a of the key, as
/// `CertManager::rescue_path` names it).
fn rescue_file(dir: &Path, key: &str) -> PathBuf {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    dir.join(format!(".berth-unstored-{hash:016x}.json"))
}

/// Feeds `fifo` to whoever opens it for reading, every 600 ms until `stop`: a file that
/// takes that long to open.
fn slow_writer(fifo: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(600));
            if stop.load(Ordering::Acquire) {
                return;
            }
            // Read-write never blocks on a FIFO (fifo(7)); closing it ends the reader's read.
            let mut pipe = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo)
                .unwrap();
            std::io::Write::write_all(&mut pipe, b"{}").unwrap();
        }
    })
}

#[test]
fn a_slow_rescue_file_does_not_stall_the_managers_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(&dir.path().join("acme.json"), "berth")
            .await
            .unwrap();
        let ca = Ca::custom("https://127.0.0.1:9/dir", None).unwrap();
        let mut config = ManagerConfig::new(store, AccountConfig::new(ca));
        config.rescue_dir = Some(dir.path().to_path_buf());
        let domains = DomainSet::parse(["slow.example.com"]).unwrap();
        let fifo = rescue_file(dir.path(), &domains.key());
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let cert = ManagedCert::new(domains, ChallengeKind::Http01, KeyType::Ec256).unwrap();
        let manager = Arc::new(CertManager::new(config, vec![cert], Vec::new()));

        let stop = Arc::new(AtomicBool::new(false));
        let writer = slow_writer(fifo, Arc::clone(&stop));
        let done = Arc::new(AtomicBool::new(false));
        let ticker = tokio::spawn({
            let done = Arc::clone(&done);
            async move {
                let mut longest = Duration::ZERO;
                while !done.load(Ordering::Acquire) {
                    let before = Instant::now();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    longest = longest.max(before.elapsed());
                }
                longest
            }
        });
        let loading = tokio::spawn({
            let manager = Arc::clone(&manager);
            async move {
                manager
                    .publish_from_store()
                    .await
                    .map(|set| set.certificates().len())
            }
        });
        let published = loading.await.unwrap().unwrap();
        done.store(true, Ordering::Release);
        stop.store(true, Ordering::Release);
        let longest = ticker.await.unwrap();
        writer.join().unwrap();

        assert_eq!(published, 0, "the rescue file held no certificate");
        assert!(
            longest < Duration::from_millis(300),
            "the runtime stalled for {longest:?} while the manager read a rescue file"
        );
    });
}
