//! Lays out the release `berth` binary's code by use.
//!
//! `berth.order` lists the functions that run while berth starts, serves and idles,
//! hottest first (written by `tests/bench/symbol-order.sh` from a callgrind run). Given to
//! the linker, it puts that code together at the front of `.text`, so the pages the kernel
//! maps in around each first touch (64 KiB fault-around) hold code that runs rather than
//! cold code beside it: idle RSS follows what berth runs, not the size of the binary
//! (proxy benchmark: idle RSS 9.9 → 6.4 MiB, requests/s unchanged).
//!
//! Only for release builds linked by rust-lld, Rust's default linker on x86_64 Linux
//! since 1.90; any other set-up links as before. Names in the file that are no longer in
//! the binary are skipped, so a stale file costs memory, never a failed build; its first
//! line records the compiler and `Cargo.lock` it was made for, and
//! `sidecar/tests/order_file.rs` fails when either changed (the fix: re-run the script).

use std::env;
use std::path::Path;
use std::process::Command;

/// The first Rust release whose x86_64 Linux (GNU) target links with rust-lld by default.
const FIRST_LLD_DEFAULT_MINOR: u32 = 90;

fn main() {
    println!("cargo:rerun-if-changed=berth.order");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if env::var("PROFILE").as_deref() == Ok("release")
        && links_with_default_lld()
        && let Ok(dir) = env::var("CARGO_MANIFEST_DIR")
        && let order = Path::new(&dir).join("berth.order")
        && order.is_file()
    {
        let order = order.display();
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether `berth` will be linked by rust-lld: the target is x86_64 Linux (GNU), the
/// compiler is new enough to use it by default, and nothing chose another linker.
fn links_with_default_lld() -> bool {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu")
        && env::var_os("RUSTC_LINKER").is_none()
        && !flags.contains("linker")
        && !flags.contains("fuse-ld")
        && rustc_minor().is_some_and(|minor| minor >= FIRST_LLD_DEFAULT_MINOR)
}

/// The minor version of the compiler building berth (`rustc 1.95.0 (…)` → 95).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let output = Command::new(rustc).arg("--version").output().ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    version
        .split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
