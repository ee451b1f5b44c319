//! Property/fuzz test of secret files: whatever bytes a secret file holds, reading it
//! never panics, a value that reads comes back exactly as written (minus the documented
//! trim), and an error never shows any part of the content.
//!
//! `cargo test` tries a short run; `scripts/fuzz.sh` sets `FUZZ_CASES` for the long one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The workspace's fuzz helpers (berth-tests depends on this crate, so the file is
// included rather than the crate).
#[path = "../../tests/src/fuzz.rs"]
#[allow(dead_code, unreachable_pub)]
mod fuzz;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use berth_secrets::{Loader, TrimMode};
use fuzz::{assert_hidden, config, mutated, secret};
use proptest::prelude::*;

thread_local! {
    /// One private file per test thread, rewritten for every input (a directory per
    /// input would cost more than the read under test).
    static FILE: (tempfile::TempDir, PathBuf) = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        (dir, path)
    };
}

fn write(bytes: &[u8]) -> PathBuf {
    let path = FILE.with(|(_, path)| path.clone());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    file.write_all(bytes).unwrap();
    path
}

/// A secret file as people write them: the value, maybe a BOM, maybe line ends.
fn secret_file_bytes() -> impl Strategy<Value = (Vec<u8>, String)> {
    secret().prop_flat_map(|value| {
        let ending = prop::sample::select(vec!["", "\n", "\r\n", "\n\n", " \n", "\t"]);
        let valid = (any::<bool>(), ending).prop_map({
            let value = value.clone();
            move |(bom, end)| {
                let mut bytes = if bom {
                    b"\xEF\xBB\xBF".to_vec()
                } else {
                    Vec::new()
                };
                bytes.extend_from_slice(value.as_bytes());
                bytes.extend_from_slice(end.as_bytes());
                bytes
            }
        });
        (
            prop_oneof![1 => valid.clone(), 3 => mutated(valid)],
            Just(value),
        )
    })
}

/// The documented trim: one leading BOM, every trailing `\r` / `\n`.
fn trimmed(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn secret_files_read_exactly_or_fail_without_showing_content(
        (bytes, value) in secret_file_bytes()
    ) {
        let path = write(&bytes);
        match Loader::new().read_file(&path) {
            Ok(secret) => {
                prop_assert_eq!(secret.expose().as_bytes(), trimmed(&bytes));
                assert_hidden(&format!("{secret:?} {secret}"), &value)?;
            }
            Err(e) => {
                prop_assert!(
                    std::str::from_utf8(trimmed(&bytes)).is_err() || trimmed(&bytes).is_empty(),
                    "{e}"
                );
                assert_hidden(&format!("{e} {e:?}"), &value)?;
            }
        }
        let raw = Loader::new().with_mode(TrimMode::Raw).read_file_bytes(&path);
        if !bytes.is_empty() {
            let raw = raw.unwrap();
            prop_assert_eq!(raw.expose(), &bytes[..]);
        }
    }

    #[test]
    fn any_bytes_in_a_secret_file_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let path = write(&bytes);
        let _ = Loader::new().read_file(&path);
        let loader = Loader::new().with_max_bytes(16);
        if let Err(e) = loader.read_file(&path) {
            let shown = format!("{e} {e:?}");
            prop_assert!(!shown.is_empty());
        }
    }
}
