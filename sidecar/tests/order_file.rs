//! `sidecar/berth.order` lays out the release binary's code by use (see `build.rs`):
//! idle RSS 9.9 → 6.4 MiB. Its symbol names carry hashes of the toolchain and of the
//! dependency graph, so a file made for another `Cargo.lock` or compiler silently stops
//! helping (half its names gone: idle RSS back above 11 MiB). The file's first line says
//! what it was made for; this test fails when that is no longer what builds berth, with
//! the command that remakes it.

#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sidecar/ is inside the workspace")
        .to_path_buf()
}

/// What the order file's stamp line says: (compiler, Cargo.lock sha256).
fn stamp() -> (String, String) {
    let order = std::fs::read_to_string(workspace().join("sidecar/berth.order"))
        .expect("read sidecar/berth.order");
    let first = order.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# made by tests/bench/symbol-order.sh with ")
        .unwrap_or_else(|| {
            panic!("sidecar/berth.order has no stamp line (got {first:?}); run tests/bench/symbol-order.sh")
        });
    let (rustc, lock) = rest
        .split_once(" for Cargo.lock sha256 ")
        .expect("stamp names the Cargo.lock hash");
    (rustc.to_owned(), lock.trim().to_owned())
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn the_order_file_was_made_for_this_cargo_lock_and_compiler() {
    let (made_with, made_for) = stamp();
    let lock = output("sha256sum", &["Cargo.lock"]);
    let lock = lock.split_whitespace().next().unwrap_or_default();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let compiler = output(&rustc, &["--version"]);
    let fix = "run tests/bench/symbol-order.sh (a release build and a short callgrind run) and commit sidecar/berth.order";
    assert_eq!(
        made_for, lock,
        "sidecar/berth.order was made for another Cargo.lock: the dependencies changed, and with them the symbol names; {fix}"
    );
    assert_eq!(
        made_with,
        compiler.trim(),
        "sidecar/berth.order was made with another compiler, whose symbol names differ; {fix}"
    );
}
