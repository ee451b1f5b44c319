#!/usr/bin/env bash
# TLS-terminating reverse proxy: berth vs nginx vs Caddy vs HAProxy on the same work.
# Each server in turn terminates TLS with the same ECDSA P-256 certificate (issued by
# berth from a local Pebble) and proxies to the same upstream (a separate nginx returning
# a 13-byte body). Measured per server:
#   - keep-alive HTTP/1.1 requests/s and p99 latency (wrk, 50 connections),
#   - new connection per request (wrk with "Connection: close": a full TLS handshake
#     each time, so requests/s = handshakes/s),
#   - HTTP/2 requests/s (h2load, 10 connections x 10 streams),
#   - RSS idle after start and the peak while loaded (sum over the server's processes).
# CPU: every server is pinned to core 0 with one worker (nginx worker_processes 1,
# HAProxy nbthread 1, Caddy GOMAXPROCS=1, berth TOKIO_WORKER_THREADS=1); the clients and
# the upstream share core 1, so the servers compete for the same single core.
# Writes the "proxy" section of BENCHMARKS.md. Everything on 127.0.0.1, bounded by
# DURATION seconds per run.
#
# Env: DURATION (default 10), CONNECTIONS (default 50).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
source "$here/lib.sh"
cd "$bench_root"
duration=${DURATION:-10}
connections=${CONNECTIONS:-50}
name=bench.example.test

bench_require pebble:pebble nginx:nginx caddy:caddy haproxy:haproxy wrk:wrk h2load:nghttp2-client curl:curl
bench_build_berth

work=$(mktemp -d /tmp/berth-bench-proxy.XXXXXX)
export PEBBLE_WORKDIR="$work/pebble"
mkdir -p "$PEBBLE_WORKDIR"
# shellcheck source=scripts/pebble-env.sh
source scripts/pebble-env.sh
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pebble_stop
  rm -rf "$work"
}
trap cleanup EXIT
pebble_start

echo "==> issuing the certificate every server uses" >&2
"$BERTH" issue -d "$name" --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" --agree-tos \
  --skip-staging --http-addr "127.0.0.1:$PEBBLE_HTTP_PORT" --store "$work/acme.json" \
  --export-dir "$work/pem" >/dev/null
cert="$work/pem/live/$name/fullchain.pem"
key="$work/pem/live/$name/privkey.pem"
combined="$work/pem/$name.pem"
pebble_stop   # berth run below serves from the store and needs no CA

up_port=18080
tls_port=18443
mkdir -p "$work/upstream"
cat >"$work/upstream/nginx.conf" <<EOF
worker_processes 1;
pid $work/upstream/nginx.pid;
error_log $work/upstream/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$up_port; location / { return 200 "hello, bench\n"; } }
}
EOF
taskset -c 1 nginx -c "$work/upstream/nginx.conf" -p "$work/upstream" -g 'daemon off;' &
pids+=($!)

# --- each server's start command -------------------------------------------------------
start_berth() {
  TOKIO_WORKER_THREADS=1 BERTH_LOG=warn taskset -c 0 "$BERTH" run -d "$name" \
    --store "$work/acme.json" --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" --agree-tos \
    --upstream "http://127.0.0.1:$up_port" --tls-addr "127.0.0.1:$tls_port" \
    --http-addr 127.0.0.1:18081 --admin-addr 127.0.0.1:18082 >"$work/berth.log" 2>&1 &
  server_pid=$!
}
start_nginx() {
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  upstream app { server 127.0.0.1:$up_port; keepalive 64; }
  ssl_session_cache shared:SSL:10m;
  server {
    listen 127.0.0.1:$tls_port ssl http2;
    server_name $name;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
EOF
  taskset -c 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
  server_pid=$!
}
start_caddy() {
  mkdir -p "$work/caddy"
  cat >"$work/caddy/Caddyfile" <<EOF
{
  admin off
  auto_https off
  default_sni $name
  log {
    level ERROR
  }
}
https://$name:$tls_port {
  bind 127.0.0.1
  tls $cert $key
  reverse_proxy 127.0.0.1:$up_port
}
EOF
  HOME="$work/caddy" XDG_DATA_HOME="$work/caddy" XDG_CONFIG_HOME="$work/caddy" GOMAXPROCS=1 \
    taskset -c 0 caddy run --config "$work/caddy/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
  server_pid=$!
}
start_haproxy() {
  mkdir -p "$work/haproxy"
  cat >"$work/haproxy/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend tls
  bind 127.0.0.1:$tls_port ssl crt $combined alpn h2,http/1.1
  option forwardfor
  default_backend app
backend app
  server app 127.0.0.1:$up_port
EOF
  taskset -c 0 haproxy -f "$work/haproxy/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
  server_pid=$!
}

# --- measuring -------------------------------------------------------------------------
rss_kb() { # RSS of a process and its children, in KiB
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
url="https://$name:$tls_port/"
wait_ready() {
  for _ in $(seq 1 100); do
    curl -fsk --resolve "$name:$tls_port:127.0.0.1" "$url" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server did not answer on $url" >&2
  return 1
}
# wrk resolves the URL's host itself and takes SNI from it: give it a private /etc/hosts
# in a throwaway mount namespace (the machine's file is untouched).
printf '127.0.0.1 %s\n' "$name" >"$work/hosts"
wrk_run() {
  unshare -m --propagation private sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' \
    "$work/hosts" taskset -c 1 wrk -t1 -c "$connections" -d "${duration}s" --latency "$@" "$url"
}
rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1 == "99%" {print $2}'; }
to_ms() { # wrk latency like 1.23ms / 456.00us / 1.02s -> ms
  awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.2f", v }'
}

declare -A keepalive latency handshakes h2 idle loaded
for server in nginx berth caddy haproxy; do
  echo "==> $server" >&2
  "start_$server"
  pids+=("$server_pid")
  wait_ready
  sleep 1
  idle[$server]=$(rss_kb "$server_pid")
  # Peak RSS while the keep-alive run is going.
  ( peak=0; while kill -0 "$server_pid" 2>/dev/null && [ ! -f "$work/stop-sampling" ]; do
      r=$(rss_kb "$server_pid"); [ "$r" -gt "$peak" ] && peak=$r; echo "$peak" >"$work/peak"; sleep 0.2
    done ) &
  sampler=$!
  out=$(wrk_run)
  touch "$work/stop-sampling"; wait "$sampler" 2>/dev/null || true; rm -f "$work/stop-sampling"
  loaded[$server]=$(cat "$work/peak")
  keepalive[$server]=$(echo "$out" | rps)
  latency[$server]=$(echo "$out" | p99 | to_ms)
  out=$(wrk_run -H "Connection: close")
  handshakes[$server]=$(echo "$out" | rps)
  out=$(taskset -c 1 h2load -D "$duration" -c 10 -m 10 -t 1 --connect-to="127.0.0.1:$tls_port" "$url" 2>&1)
  h2[$server]=$(echo "$out" | awk '/^finished in/ {gsub(",", "", $4); print $4}')
  echo "    keep-alive ${keepalive[$server]} req/s (p99 ${latency[$server]} ms), close ${handshakes[$server]} req/s, h2 ${h2[$server]} req/s, RSS idle ${idle[$server]} KiB / loaded ${loaded[$server]} KiB" >&2
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  sleep 0.5
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
out="$work/section.md"
{
  echo "## TLS reverse proxy (\`tests/bench/proxy.sh\`)"
  echo
  echo "$(date -u +%Y-%m-%d), $(bench_machine). Each server pinned to core 0 with one worker;"
  echo "wrk/h2load and the upstream (nginx, 13-byte body) on core 1. Same ECDSA P-256"
  echo "certificate, TLS 1.3, ${duration} s per run, $connections connections for wrk, 10×10 streams for h2load."
  echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), Caddy $(caddy version | awk '{print $1}'), HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), berth release build."
  echo
  echo "| server | keep-alive req/s | p99 (ms) | new-connection req/s (= handshakes/s) | HTTP/2 req/s | RSS idle (MiB) | RSS loaded (MiB) |"
  echo "|---|---|---|---|---|---|---|"
  for s in berth nginx caddy haproxy; do
    echo "| $s | ${keepalive[$s]} ($(ratio "${keepalive[$s]}" "${keepalive[nginx]}")) | ${latency[$s]} ($(ratio "${latency[$s]}" "${latency[nginx]}")) | ${handshakes[$s]} ($(ratio "${handshakes[$s]}" "${handshakes[nginx]}")) | ${h2[$s]} ($(ratio "${h2[$s]}" "${h2[nginx]}")) | $(mb "${idle[$s]}") ($(ratio "${idle[$s]}" "${idle[nginx]}")) | $(mb "${loaded[$s]}") ($(ratio "${loaded[$s]}" "${loaded[nginx]}")) |"
  done
  echo
  echo "Ratios are to nginx. Targets for berth:"
  echo
  t1=$(awk -v a="${keepalive[berth]}" -v b="${keepalive[nginx]}" 'BEGIN { print (a >= b) ? "met" : "missed" }')
  t2=$(awk -v a="${handshakes[berth]}" -v b="${handshakes[nginx]}" 'BEGIN { print (a >= 1.2 * b) ? "met" : "missed" }')
  t3=$(awk -v a="${idle[berth]}" 'BEGIN { print (a <= 10240) ? "met" : "missed" }')
  echo "- throughput ≥ 1.0× nginx (keep-alive): **$t1** ($(ratio "${keepalive[berth]}" "${keepalive[nginx]}"))"
  echo "- handshakes/s ≥ 1.2× nginx: **$t2** ($(ratio "${handshakes[berth]}" "${handshakes[nginx]}"))"
  echo "- idle RSS ≤ 10 MB: **$t3** ($(mb "${idle[berth]}") MiB)"
  echo
  echo "Rerun: \`tests/bench/proxy.sh\` (\`DURATION=30\` for longer runs)."
} >"$out"
bench_write_section proxy "$out"
cat "$out"
