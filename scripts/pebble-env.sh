#!/usr/bin/env bash
# Sourced by scripts/demo.sh and the benchmarks: starts a local Pebble ACME CA (with
# pebble-challtestsrv as its DNS, answering 127.0.0.1 for every name) on loopback and
# exports PEBBLE_DIRECTORY, PEBBLE_TLS_ROOT, PEBBLE_MGMT, PEBBLE_HTTP_PORT, PEBBLE_TLS_PORT.
# Stop it with `pebble_stop` (the caller's EXIT trap).
#
# Inputs (env): PEBBLE_HTTP_PORT / PEBBLE_TLS_PORT (ports Pebble's validator connects to,
# default 5002 / 5001), PEBBLE_LISTEN_PORT (default 14000), PEBBLE_WORKDIR (default mktemp).

pebble_start() {
  local work=${PEBBLE_WORKDIR:-$(mktemp -d /tmp/berth-pebble.XXXXXX)}
  export PEBBLE_WORKDIR=$work
  export PEBBLE_HTTP_PORT=${PEBBLE_HTTP_PORT:-5002}
  export PEBBLE_TLS_PORT=${PEBBLE_TLS_PORT:-5001}
  local listen_port=${PEBBLE_LISTEN_PORT:-14000}
  local mgmt_port=$((listen_port + 1))
  local dns_port=${PEBBLE_DNS_PORT:-8053}

  # A throwaway CA for Pebble's own HTTPS listener; clients trust it with --ca-root.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=berth demo Pebble TLS root" -keyout "$work/root.key" -out "$work/root.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' > "$work/san.ext"
  openssl x509 -req -in "$work/tls.csr" -CA "$work/root.pem" -CAkey "$work/root.key" \
    -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/tls.pem" 2>/dev/null

  cat > "$work/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$listen_port",
  "managementListenAddress": "127.0.0.1:$mgmt_port",
  "certificate": "$work/tls.pem", "privateKey": "$work/tls.key",
  "httpPort": $PEBBLE_HTTP_PORT, "tlsPort": $PEBBLE_TLS_PORT,
  "ocspResponderURL": "", "externalAccountBindingRequired": false
}}
JSON
  pebble-challtestsrv -management "127.0.0.1:$((dns_port + 1))" -dns01 "127.0.0.1:$dns_port" \
    -http01 "" -https01 "" -tlsalpn01 "" -defaultIPv6 "" >"$work/challtestsrv.log" 2>&1 &
  PEBBLE_CHALLTESTSRV_PID=$!
  PEBBLE_VA_NOSLEEP=1 pebble -config "$work/pebble.json" -dnsserver "127.0.0.1:$dns_port" \
    >"$work/pebble.log" 2>&1 &
  PEBBLE_PID=$!

  export PEBBLE_DIRECTORY="https://127.0.0.1:$listen_port/dir"
  export PEBBLE_MGMT="https://127.0.0.1:$mgmt_port"
  export PEBBLE_TLS_ROOT="$work/root.pem"
  for _ in $(seq 1 100); do
    if curl -fsS --cacert "$PEBBLE_TLS_ROOT" "$PEBBLE_DIRECTORY" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "pebble did not answer at $PEBBLE_DIRECTORY; log:" >&2
  cat "$work/pebble.log" >&2
  return 1
}

pebble_stop() {
  [ -n "${PEBBLE_PID:-}" ] && kill "$PEBBLE_PID" 2>/dev/null
  [ -n "${PEBBLE_CHALLTESTSRV_PID:-}" ] && kill "$PEBBLE_CHALLTESTSRV_PID" 2>/dev/null
  wait 2>/dev/null || true
}
