#!/usr/bin/env bash
# Installs the Debian packages berth's tests and demo need, when missing.
# Idempotent: a machine that has everything installs nothing.
# Usage: scripts/install-deps.sh [command...]   (default: everything the tests need)
set -euo pipefail

# command → Debian package that provides it
declare -A package=(
  [pebble]=pebble                   # Let's Encrypt's test CA (+ pebble-challtestsrv)
  [curl]=curl                       # real HTTPS client in end-to-end tests and the demo
  [openssl]=openssl                 # openssl s_client in TLS tests; certificates in the demo
  [named]=bind9                     # RFC 2136 DNS-01 tests
  [nsupdate]=bind9-dnsutils         # nsupdate / dig for DNS-01 tests (tsig-keygen is in bind9)
  [chromium]=chromium               # status page test (headless)
  [python3]=python3                 # the demo's stand-in app
  [redis-server]=redis-server       # cluster mode: the Redis store's tests
  [etcd]=etcd-server                # cluster mode: the etcd store's tests
  [protoc]=protobuf-compiler        # builds the etcd client's gRPC code
  [lego]=lego                       # berth import tests: real lego files, made against Pebble
  [certbot]=certbot                 # berth import tests: real certbot files, made against Pebble
  [testssl]=testssl.sh              # TLS scan of a running berth (sidecar/tests/testssl.rs)
)
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(pebble curl openssl named nsupdate chromium redis-server etcd protoc lego certbot testssl)

missing=()
for cmd in "${wanted[@]}"; do
  pkg=${package[$cmd]:?"unknown dependency $cmd"}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done

# protoc needs the well-known .proto files too (google/protobuf/descriptor.proto).
for cmd in "${wanted[@]}"; do
  if [ "$cmd" = protoc ] && [ ! -f /usr/include/google/protobuf/descriptor.proto ]; then
    missing+=(libprotobuf-dev)
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
