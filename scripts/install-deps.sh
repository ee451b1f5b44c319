#!/usr/bin/env bash
# Installs the Debian packages berth's tests and demo need, when missing.
# Idempotent: a machine that has everything installs nothing.
set -euo pipefail

# command → Debian package that provides it
deps=(
  "pebble:pebble"                   # Let's Encrypt's test CA (+ pebble-challtestsrv)
  "curl:curl"                       # real HTTPS client in end-to-end tests
  "openssl:openssl"                 # openssl s_client in TLS tests
  "named:bind9"                     # RFC 2136 DNS-01 tests
  "nsupdate:bind9-dnsutils"         # tsig-keygen / nsupdate for DNS-01 tests
  "chromium:chromium"               # status page test (headless)
)

missing=()
for dep in "${deps[@]}"; do
  cmd=${dep%%:*}
  pkg=${dep#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
