#!/usr/bin/env bash
# Runs berth's whole test suite on this machine: installs the real components the tests
# start (Pebble, BIND, Redis, etcd, lego, certbot, testssl.sh, curl, openssl, chromium) when missing, then one shared cargo build
# for every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo test --workspace --locked
