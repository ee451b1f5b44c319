#!/usr/bin/env bash
# berth's main job, end to end on one machine: start a local Pebble ACME CA, run
# `berth run` for a test domain in front of a tiny app, and fetch the app over HTTPS with
# the certificate berth just issued. Everything listens on 127.0.0.1 and stops at exit.
#
# Env: BERTH_DEMO_DOMAIN (default demo.berth.test), BERTH_DEMO_TLS_PORT (8443),
# BERTH_DEMO_ADMIN_PORT (8081), BERTH_DEMO_APP_PORT (3000), BERTH_DEMO_KEEP=1 to keep
# everything running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

domain=${BERTH_DEMO_DOMAIN:-demo.berth.test}
tls_port=${BERTH_DEMO_TLS_PORT:-8443}
admin_port=${BERTH_DEMO_ADMIN_PORT:-8081}
app_port=${BERTH_DEMO_APP_PORT:-3000}

scripts/install-deps.sh pebble curl openssl python3 protoc   # protoc: the etcd client is generated at build time
echo "==> building berth" >&2
cargo build -p berth --locked --quiet
berth=target/debug/berth

# shellcheck source=scripts/pebble-env.sh
source scripts/pebble-env.sh
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
PEBBLE_WORKDIR="$work/pebble"
mkdir -p "$PEBBLE_WORKDIR"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pebble_stop
  rm -rf "$work"
}
trap cleanup EXIT
echo "==> starting Pebble" >&2
pebble_start

echo "==> starting the app on 127.0.0.1:$app_port" >&2
mkdir -p "$work/app"
echo "hello from the app behind berth" >"$work/app/index.html"
python3 -m http.server --bind 127.0.0.1 --directory "$work/app" "$app_port" >"$work/app.log" 2>&1 &
pids+=($!)

# Pebble validates HTTP-01 by connecting to PEBBLE_HTTP_PORT on 127.0.0.1 (its DNS answers
# 127.0.0.1 for every name), so berth's :80 listener sits there.
echo "==> berth run -d $domain (CA: $PEBBLE_DIRECTORY)" >&2
BERTH_LOG_FORMAT=text "$berth" run \
  -d "$domain" \
  --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" --agree-tos --email demo@berth.test \
  --store "$work/acme.json" \
  --upstream "http://127.0.0.1:$app_port" \
  --http-addr "127.0.0.1:$PEBBLE_HTTP_PORT" --tls-addr "127.0.0.1:$tls_port" \
  --https-port "$tls_port" --admin-addr "127.0.0.1:$admin_port" \
  >"$work/berth.log" 2>&1 &
pids+=($!)

ready=""
for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "berth did not become ready in 30 s; its log:" >&2
  cat "$work/berth.log" >&2
  exit 1
fi
sed 's/^/    berth | /' "$work/berth.log" >&2

# The certificate chains to Pebble's issuing root, which Pebble generates at start.
curl -fsS --cacert "$PEBBLE_TLS_ROOT" "$PEBBLE_MGMT/roots/0" >"$work/issuing-root.pem"
echo "==> curl --resolve $domain:$tls_port:127.0.0.1 https://$domain:$tls_port/" >&2
body=$(curl -fsS --cacert "$work/issuing-root.pem" --resolve "$domain:$tls_port:127.0.0.1" \
  "https://$domain:$tls_port/")
echo "$body"
[ "$body" = "hello from the app behind berth" ] || { echo "unexpected body" >&2; exit 1; }

echo "==> the certificate berth issued and serves:" >&2
"$berth" certs list --store "$work/acme.json" >&2
echo "==> status: http://127.0.0.1:$admin_port/ (metrics at /metrics)" >&2
if [ -n "${BERTH_DEMO_KEEP:-}" ]; then
  echo "==> running; Ctrl-C to stop" >&2
  wait "${pids[1]}"
fi
