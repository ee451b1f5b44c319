#!/usr/bin/env bash
# TLS-terminating reverse proxy: berth vs nginx vs Caddy vs HAProxy on the same work.
#
# Every server terminates TLS with the same ECDSA P-256 certificate (issued by berth from
# a local Pebble; berth serves it from its acme.json, the others from the exported PEM
# files) and proxies to the same upstream: a separate nginx answering every request with
# a fixed 13-byte body. For each server, per CPU layout (below):
#   keep-alive   wrk, HTTP/1.1 over TLS, CONNECTIONS connections: requests/s, p99 latency
#   resumed      wrk with "Connection: close": a new TCP+TLS connection per request.
#                wrk keeps its TLS session across reconnects (SSL_clear), so these are
#                TLS 1.3 resumptions (PSK + X25519, no certificate signature)
#   full         STIME_PROCS parallel `openssl s_time -new -www /`: a new connection and
#                a full handshake (X25519 + ECDSA P-256 signature) per HTTP/1.0 request
#   h2           h2load, 10 connections x 10 concurrent streams
#   RSS          sum of VmRSS (and of RssAnon) over the server's processes from /proc:
#                idle (1 s after the first request) and peak while loaded
#   server CPU   utime+stime of the server's processes during each run, so each result
#                also reads as CPU time per request: a server that leaves its core idle
#                because the client is the bottleneck shows it here
# CPU layouts (MODES):
#   pinned  every server gets core 0 alone with one worker (nginx worker_processes 1,
#           HAProxy nbthread 1, Caddy GOMAXPROCS=1, berth --workers 1);
#           clients and the upstream share core 1
#   capped  as pinned, but the server runs in a CPU cgroup limited to CAP of a core (CFS
#           quota) while clients and upstream use both cores, so the server is always the
#           bottleneck: every rate is throughput on a fixed CPU budget. Needs root (or a
#           delegated cgroup); skipped with a message otherwise
#   shared  nothing pinned, two workers each (berth `--workers auto` on 2 cores), two
#           client threads: server, client and upstream compete for both cores
# Writes the "proxy" section of BENCHMARKS.md. Everything on 127.0.0.1; each client run is
# bounded by DURATION seconds (plus a hard timeout).
#
# Every server is measured REPEATS times per layout, the servers taking turns, and the
# median of each number is reported (the single runs are listed too).
#
# Env: DURATION (s, default 10), REPEATS (default 3), CONNECTIONS (wrk, default 50), STIME_PROCS (default 8),
#      MODES (default "pinned capped shared"), CAP (default 0.2), SERVERS (default "nginx berth caddy haproxy";
#      nginx is the reference and always runs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
source "$here/lib.sh"
cd "$bench_root"
duration=${DURATION:-10}
connections=${CONNECTIONS:-50}
stime_procs=${STIME_PROCS:-8}
repeats=${REPEATS:-3}
cap=${CAP:-0.2}
read -r -a modes <<<"${MODES:-pinned capped shared}"
read -r -a servers <<<"${SERVERS:-nginx berth caddy haproxy}"
[[ " ${servers[*]} " == *" nginx "* ]] || servers=(nginx "${servers[@]}")
name=bench.example.test
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores" >&2; exit 2; }

bench_require pgrep:procps pebble:pebble nginx:nginx caddy:caddy haproxy:haproxy wrk:wrk nm:binutils \
  h2load:nghttp2-client curl:curl openssl:openssl taskset:util-linux unshare:util-linux python3:python3
bench_build_berth
# How much of berth's code layout (sidecar/build.rs) still names functions in the binary.
order_file=sidecar/berth.order
order_found=$(nm "$BERTH" | awk '{ print $NF }' | sort -u | comm -12 - <(grep -v '^#' "$order_file" | sort -u) | wc -l)
order_listed=$(grep -v '^#' "$order_file" | sort -u | wc -l)

bench_pebble_workdir proxy
cgroup=""
cleanup() {
  bench_cleanup
  [ -z "$cgroup" ] || rmdir "$cgroup" 2>/dev/null || true
}
trap cleanup EXIT

bench_issue_certificate "$work" "$name"
cert="$work/pem/live/$name/fullchain.pem"
key="$work/pem/live/$name/privkey.pem"
combined="$work/pem/$name.pem"

up_port=$(bench_free_port)
tls_port=$(bench_free_port)
berth_http_port=$(bench_free_port)
berth_admin_port=$(bench_free_port)
url="https://$name:$tls_port/"
clk_tck=$(getconf CLK_TCK)

# --- one CPU layout ----------------------------------------------------------------------
set_mode() {
  launch=()
  case $1 in
    pinned) server_cpus=0 client_cpus=1 workers=1 client_threads=1 server_cores=1 ;;
    capped)
      server_cpus=0 client_cpus=0-1 workers=1 client_threads=2 server_cores=$cap
      launch=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cgroup") ;;
    shared) server_cpus=0-1 client_cpus=0-1 workers=2 client_threads=2 server_cores=2 ;;
    *) echo "unknown mode $1" >&2; exit 2 ;;
  esac
}

# The capped layout runs each server in a CPU cgroup limited to CAP of a core (CFS quota),
# with a high weight so the clients sharing its core never take its quota away.
cgroup_create() {
  local quota period=20000
  quota=$(awk -v c="$cap" -v p="$period" 'BEGIN { printf "%d", c * p }')
  if [ -w /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control; then
    cgroup=/sys/fs/cgroup/berth-bench-$$
    mkdir "$cgroup" && echo "$quota $period" >"$cgroup/cpu.max" && echo 10000 >"$cgroup/cpu.weight"
  elif [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
    cgroup=/sys/fs/cgroup/cpu/berth-bench-$$
    mkdir "$cgroup" && echo "$period" >"$cgroup/cpu.cfs_period_us" &&
      echo "$quota" >"$cgroup/cpu.cfs_quota_us" && echo 262144 >"$cgroup/cpu.shares"
  else
    return 1
  fi
}

# --- each server's start command (sets server_pid) --------------------------------------
start_berth() {
  BERTH_WORKERS=$workers BERTH_LOG=warn "${launch[@]}" taskset -c "$server_cpus" "$BERTH" run -d "$name" \
    --store "$work/acme.json" --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" --agree-tos \
    --skip-staging --upstream "http://127.0.0.1:$up_port" --tls-addr "127.0.0.1:$tls_port" \
    --http-addr "127.0.0.1:$berth_http_port" --admin-addr "127.0.0.1:$berth_admin_port" \
    --log-format json >"$work/berth.log" 2>&1 &
  server_pid=$!
}
start_nginx() {
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<EOF
worker_processes $workers;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
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
  "${launch[@]}" taskset -c "$server_cpus" nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
  server_pid=$!
}
start_caddy() {
  mkdir -p "$work/caddy"
  # A site on the port (not the name) also answers HTTP/1.0 requests without Host
  # (s_time); default_sni serves the certificate to clients that send no SNI.
  cat >"$work/caddy/Caddyfile" <<EOF
{
  admin off
  auto_https off
  default_sni $name
  log {
    level ERROR
  }
}
https://:$tls_port {
  bind 127.0.0.1
  tls $cert $key
  reverse_proxy 127.0.0.1:$up_port
}
EOF
  HOME="$work/caddy" XDG_DATA_HOME="$work/caddy" XDG_CONFIG_HOME="$work/caddy" GOMAXPROCS=$workers \
    "${launch[@]}" taskset -c "$server_cpus" caddy run --config "$work/caddy/Caddyfile" --adapter caddyfile \
    >"$work/caddy.log" 2>&1 &
  server_pid=$!
}
start_haproxy() {
  mkdir -p "$work/haproxy"
  cat >"$work/haproxy/haproxy.cfg" <<EOF
global
  nbthread $workers
  maxconn 4096
  tune.ssl.cachesize 20000
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
  "${launch[@]}" taskset -c "$server_cpus" haproxy -f "$work/haproxy/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
  server_pid=$!
}

# --- measuring -----------------------------------------------------------------------------
server_procs() { echo "$1" $(pgrep -P "$1" || true); }
sum_status() { # sum_status PID FIELD: a /proc/<pid>/status field (kB) over the server's processes
  local total=0 pid
  for pid in $(server_procs "$1"); do
    total=$((total + $(awk -v f="$2:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
cpu_ticks() { # utime + stime of the server's processes (all threads)
  local total=0 pid
  for pid in $(server_procs "$1"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
wait_ready() {
  for _ in $(seq 1 100); do
    curl -fsk --resolve "$name:$tls_port:127.0.0.1" "$url" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not answer on $url; its log:" >&2
  tail -20 "$work/$current_server.log" "$work/$current_server/error.log" 2>/dev/null >&2 || true
  return 1
}
# Each server must answer the benchmark's requests with the upstream's body, with SNI
# and Host (wrk, h2load) and without either (s_time's HTTP/1.0 request to an address).
check_answers() {
  local got
  got=$(curl -sk --resolve "$name:$tls_port:127.0.0.1" "$url")
  [ "$got" = "hello, bench" ] || { echo "$1 answered '$got' with SNI" >&2; return 1; }
  got=$(printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 openssl s_client -quiet -connect "127.0.0.1:$tls_port" 2>/dev/null | tail -1)
  [ "$got" = "hello, bench" ] || { echo "$1 answered '$got' without SNI and Host" >&2; return 1; }
  h2load -n 1 --connect-to="127.0.0.1:$tls_port" "$url" 2>&1 | grep -q '^status codes: 1 2xx' ||
    { echo "$1 did not answer over HTTP/2" >&2; return 1; }
}
negotiated() {
  timeout 5 openssl s_client -connect "127.0.0.1:$tls_port" -servername "$name" -brief </dev/null 2>&1 |
    awk -F': ' '/^Protocol version/ {p=$2} /^Ciphersuite/ {c=$2} /^(Server|Peer) Temp Key/ {split($2, k, ","); t=k[1]} END {print p, c, t}'
}
# wrk sends the URL's host as SNI (rustls ignores an IP there, with a warning per
# handshake), so it runs where $name resolves to 127.0.0.1.
wrk_run() {
  bench_with_hosts "$name" timeout $((duration + 30)) \
    taskset -c "$client_cpus" wrk -t"$client_threads" -c "$connections" -d "${duration}s" --latency "$@" "$url"
}
h2_run() {
  timeout $((duration + 30)) taskset -c "$client_cpus" h2load -D "$duration" -c 10 -m 10 \
    -t "$client_threads" --connect-to="127.0.0.1:$tls_port" "$url"
}
stime_run() { # prints "connections seconds"
  local i start end list=()
  start=$(date +%s.%N)
  for i in $(seq 1 "$stime_procs"); do
    timeout $((duration + 30)) taskset -c "$client_cpus" openssl s_time \
      -connect "127.0.0.1:$tls_port" -new -www / -time "$duration" -CAfile "$cert" >"$work/stime.$i" 2>&1 &
    list+=($!)
  done
  wait "${list[@]}"
  end=$(date +%s.%N)
  awk '/connections in .* real seconds/ {n += $1} END {print n + 0}' "$work"/stime.*
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
to_ms() { # wrk latency like 1.23ms / 456.00us / 1.02s -> ms
  awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.2f", v }'
}
# Results, keyed "<mode>.<server>.<metric>".
declare -A R
# Each repeat is stored as "<key>#<repeat>"; combine_repeats then keeps the median as
# "<key>".
record() { R["$1#$rep"]=$2; }
got() { echo "${R["$1#$rep"]}"; }
# after a run: record KEY's rate, requests and server CPU (µs per request, core busy %)
record_run() {
  local key=$1 requests=$2 seconds=$3 ticks=$4 cores=$5
  record "$key.rate" "$(awk -v n="$requests" -v s="$seconds" 'BEGIN { printf "%.0f", n / s }')"
  record "$key.requests" "$requests"
  record "$key.cpu_us" "$(awk -v t="$ticks" -v h="$clk_tck" -v n="$requests" 'BEGIN { printf "%.1f", (n > 0 ? t / h * 1e6 / n : 0) }')"
  record "$key.busy" "$(awk -v t="$ticks" -v h="$clk_tck" -v s="$seconds" -v c="$cores" 'BEGIN { printf "%.0f", 100 * t / h / s / c }')"
}

measure() { # measure MODE SERVER
  local mode=$1 server=$2 k="$1.$2" out t0 t1 n s
  current_server=$server
  "start_$server"
  pids+=("$server_pid")
  wait_ready
  check_answers "$server"
  record "$k.tls" "$(negotiated)"
  sleep 1
  record "$k.idle" "$(sum_status "$server_pid" VmRSS)"
  record "$k.idle_anon" "$(sum_status "$server_pid" RssAnon)"
  # Peak RSS over all the loaded runs.
  rm -f "$work/stop-sampling"
  echo "0 0" >"$work/peak"
  ( peak=0 peak_anon=0
    while kill -0 "$server_pid" 2>/dev/null && [ ! -f "$work/stop-sampling" ]; do
      r=$(sum_status "$server_pid" VmRSS); a=$(sum_status "$server_pid" RssAnon)
      [ "$r" -gt "$peak" ] && peak=$r
      [ "$a" -gt "$peak_anon" ] && peak_anon=$a
      echo "$peak $peak_anon" >"$work/peak"
      sleep 0.2
    done ) &
  local sampler=$!
  pids+=("$sampler")
  local cores=$server_cores

  t0=$(cpu_ticks "$server_pid"); out=$(wrk_run); t1=$(cpu_ticks "$server_pid")
  echo "$out" >"$work/$k.keepalive.txt"
  n=$(awk '/requests in/ {print $1}' <<<"$out"); s=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' <<<"$out")
  record_run "$k.keepalive" "$n" "$s" $((t1 - t0)) "$cores"
  record "$k.keepalive.p99" "$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)"
  record "$k.keepalive.errors" "$(awk '/Socket errors|Non-2xx/' <<<"$out" | tr -s ' ' | paste -sd';' -)"

  t0=$(cpu_ticks "$server_pid"); out=$(wrk_run -H "Connection: close"); t1=$(cpu_ticks "$server_pid")
  echo "$out" >"$work/$k.resumed.txt"
  n=$(awk '/requests in/ {print $1}' <<<"$out"); s=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' <<<"$out")
  record_run "$k.resumed" "$n" "$s" $((t1 - t0)) "$cores"
  record "$k.resumed.errors" "$(awk '/Socket errors|Non-2xx/' <<<"$out" | tr -s ' ' | paste -sd';' -)"

  t0=$(cpu_ticks "$server_pid"); out=$(stime_run); t1=$(cpu_ticks "$server_pid")
  read -r n s <<<"$(echo $out)"
  record_run "$k.full" "$n" "$s" $((t1 - t0)) "$cores"

  t0=$(cpu_ticks "$server_pid"); out=$(h2_run 2>&1); t1=$(cpu_ticks "$server_pid")
  echo "$out" >"$work/$k.h2.txt"
  n=$(awk '/^requests:/ {print $8}' <<<"$out")   # succeeded
  s=$(awk '/^finished in/ {sub(/s,$/, "", $3); print $3}' <<<"$out")
  record_run "$k.h2" "$n" "$s" $((t1 - t0)) "$cores"
  record "$k.h2.errors" "$(awk '/^requests:/ {print $10, "failed,", $12, "errored,", $14, "timeout"}' <<<"$out")"

  touch "$work/stop-sampling"; wait "$sampler" 2>/dev/null || true
  read -r n s <"$work/peak"
  record "$k.loaded" "$n"
  record "$k.loaded_anon" "$s"
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  echo "    $server #$rep: keep-alive $(got "$k.keepalive.rate")/s (p99 $(got "$k.keepalive.p99") ms, $(got "$k.keepalive.cpu_us") µs CPU/req), resumed $(got "$k.resumed.rate")/s ($(got "$k.resumed.cpu_us") µs), full $(got "$k.full.rate")/s ($(got "$k.full.cpu_us") µs), h2 $(got "$k.h2.rate")/s ($(got "$k.h2.cpu_us") µs), RSS idle $(got "$k.idle") KiB, loaded $(got "$k.loaded") KiB" >&2
  sleep 0.5
}

load_at_start=$(bench_wait_quiet)
ran_modes=()
for mode in "${modes[@]}"; do
  if [ "$mode" = capped ] && ! cgroup_create; then
    echo "==> capped: skipped (needs a writable CPU cgroup, as root)" >&2
    continue
  fi
  ran_modes+=("$mode")
  set_mode "$mode"
  echo "==> $mode: servers on CPU $server_cpus with $workers worker(s); clients and upstream on CPU $client_cpus" >&2
  bench_start_upstream "$work/upstream" "$up_port" "$client_cpus"
  for rep in $(seq 1 "$repeats"); do
    for server in "${servers[@]}"; do measure "$mode" "$server"; done
  done
  kill "$upstream_pid" 2>/dev/null || true
  wait "$upstream_pid" 2>/dev/null || true
done

# The median of each number over the repeats (the lower middle one for an even count, so
# integers stay integers); text (TLS parameters, errors) from every repeat, deduplicated.
combine_repeats() {
  local key base r values
  for key in "${!R[@]}"; do
    [[ $key == *"#1" ]] || continue
    base=${key%#1}
    values=()
    for r in $(seq 1 "$repeats"); do values+=("${R["$base#$r"]:-}"); done
    if printf '%s\n' "${values[@]}" | grep -qvE '^-?[0-9]+(\.[0-9]+)?$'; then
      R[$base]=$(printf '%s\n' "${values[@]}" | awk 'NF && !seen[$0]++' | paste -sd'/' -)
    else
      R[$base]=$(printf '%s\n' "${values[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    fi
  done
}
combine_repeats

# --- the BENCHMARKS.md section -------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f×", a / b; else print "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# A rate cell: value, † when the server's CPU (its core, or its cap) was < 90 % busy, and
# the ratio to nginx.
rate_cell() { # rate_cell MODE SERVER METRIC
  local k="$1.$2.$3" ref="$1.nginx.$3" mark=""
  awk -v b="${R[$k.busy]}" 'BEGIN { exit !(b < 90) }' && mark="†"
  echo "${R[$k.rate]}$mark ($(ratio "${R[$k.rate]}" "${R[$ref.rate]}"))"
}
cpu_cell() { # µs of server CPU per request, busy %, and capacity ratio to nginx (nginx µs / this µs)
  local k="$1.$2.$3" ref="$1.nginx.$3"
  echo "${R[$k.cpu_us]} µs, ${R[$k.busy]} % ($(ratio "${R[$ref.cpu_us]}" "${R[$k.cpu_us]}"))"
}
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print ((v >= t) ? "met" : "missed") }'; }
has_mode() { [[ " ${ran_modes[*]} " == *" $1 "* ]]; }
out="$work/section.md"
{
  echo "## TLS reverse proxy (\`tests/bench/proxy.sh\`)"
  echo
  echo "$(date -u +%Y-%m-%d), $(bench_machine), load average $load_at_start at start."
  echo "berth $(bench_berth_revision) (release build), nginx $(bench_pkg_version nginx), Caddy $(bench_pkg_version caddy),"
  echo "HAProxy $(bench_pkg_version haproxy); clients wrk $(bench_pkg_version wrk), h2load (nghttp2 $(bench_pkg_version nghttp2-client)),"
  echo "openssl s_time ($(openssl version | awk '{print $2}'))."
  echo
  echo "**Method.** Every server terminates TLS with the same ECDSA P-256 certificate (berth issues"
  echo "it from a local Pebble and serves it from its \`acme.json\`; the others load the exported PEM"
  echo "files) and proxies to the same upstream, a separate nginx returning a 13-byte body over"
  echo "pooled HTTP/1.1 connections. ${duration} s per run, everything on 127.0.0.1. Each server was"
  echo "measured $repeats times per layout, the servers taking turns; the tables show the median of each"
  echo "number (single runs at the end)."
  echo
  echo "- *keep-alive*: \`wrk -c $connections --latency\` over HTTPS/1.1 (SNI $name): requests/s and p99."
  echo "- *resumed*: the same with \`-H 'Connection: close'\`, a new TCP + TLS connection per request."
  echo "  wrk keeps its TLS session across reconnects (\`SSL_clear\`), so these are TLS 1.3"
  echo "  resumptions (PSK + X25519, no certificate signature): nginx logs \`\$ssl_session_reused\` = r."
  echo "- *full*: $stime_procs parallel \`openssl s_time -new -www /\` (no session reuse, no SNI, HTTP/1.0):"
  echo "  one full handshake (X25519 + ECDSA P-256 signature) per request — the handshakes/s of the"
  echo "  target."
  echo "- *HTTP/2*: \`h2load -c 10 -m 10\`."
  echo "- *server CPU*: utime + stime of the server's processes during the run (the kernel accounts"
  echo "  loopback softirq work apart, so it is not in it), per request served, and how busy that kept the"
  echo "  server's core(s). A rate marked † was measured with the server < 90 % busy: the client was"
  echo "  the bottleneck (OpenSSL 3.0's client side of a handshake costs more CPU than the server"
  echo "  side), so that rate compares the client, not the servers."
  echo "- *RSS*: sum of VmRSS over the server's processes, 1 s after the first request (idle) and"
  echo "  the peak sampled every 0.2 s while loaded; in brackets the RssAnon part (heap, stacks);"
  echo "  the rest is file-backed (executable and libraries, shared with the page cache). berth's"
  echo "  code is laid out by use (\`sidecar/berth.order\`, made by \`tests/bench/symbol-order.sh\`;"
  echo "  $order_found of its $order_listed functions found in this binary), so what it runs at idle sits together."
  echo
  echo "CPU layouts, equal worker counts in each:"
  echo
  has_mode pinned && echo "- **pinned**: each server alone on core 0 with one worker (nginx \`worker_processes 1\`, HAProxy
  \`nbthread 1\`, Caddy \`GOMAXPROCS=1\`, berth \`--workers 1\`); clients and upstream on core 1."
  has_mode capped && echo "- **capped**: as pinned, but each server in a CPU cgroup limited to $cap of a core (CFS quota,
  high weight), clients and upstream on both cores: the server is always the bottleneck, so
  every rate is the server's throughput on a fixed CPU budget. p99 is meaningless under
  throttling and not shown."
  has_mode shared && echo "- **shared**: nothing pinned, two workers per server (berth \`--workers auto\` on 2 cores), two
  client threads: server, clients and upstream compete for both cores, so CPU a server saves
  goes to the client."
  echo
  for mode in "${ran_modes[@]}"; do
    set_mode "$mode"
    echo "### $mode"
    echo
    case $mode in
      capped)
        echo "| server | keep-alive req/s | resumed conn/s | full handshakes/s | HTTP/2 req/s |"
        echo "|---|---|---|---|---|"
        for s in "${servers[@]}"; do
          echo "| $s | $(rate_cell "$mode" "$s" keepalive) | $(rate_cell "$mode" "$s" resumed) | $(rate_cell "$mode" "$s" full) | $(rate_cell "$mode" "$s" h2) |"
        done
        echo
        echo "Busy % of the cap: $(for s in "${servers[@]}"; do printf '%s %s/%s/%s/%s; ' "$s" "${R[$mode.$s.keepalive.busy]}" "${R[$mode.$s.resumed.busy]}" "${R[$mode.$s.full.busy]}" "${R[$mode.$s.h2.busy]}"; done | sed 's/; $//') (keep-alive/resumed/full/HTTP/2)."
        ;;
      *)
        echo "| server | keep-alive req/s | p99 ms | resumed conn/s | full handshakes/s | HTTP/2 req/s | RSS idle MiB (anon) | RSS loaded MiB (anon) |"
        echo "|---|---|---|---|---|---|---|---|"
        for s in "${servers[@]}"; do
          k="$mode.$s"
          echo "| $s | $(rate_cell "$mode" "$s" keepalive) | ${R[$k.keepalive.p99]} ($(ratio "${R[$k.keepalive.p99]}" "${R[$mode.nginx.keepalive.p99]}")) | $(rate_cell "$mode" "$s" resumed) | $(rate_cell "$mode" "$s" full) | $(rate_cell "$mode" "$s" h2) | $(mib "${R[$k.idle]}") ($(mib "${R[$k.idle_anon]}")) $(ratio "${R[$k.idle]}" "${R[$mode.nginx.idle]}") | $(mib "${R[$k.loaded]}") ($(mib "${R[$k.loaded_anon]}")) $(ratio "${R[$k.loaded]}" "${R[$mode.nginx.loaded]}") |"
        done
        echo
        echo "Server CPU per request, how busy the server's $( [ "$server_cores" = 1 ] && echo core was || echo "$server_cores cores were"), (capacity ratio to nginx = nginx's µs / this µs):"
        echo
        echo "| server | keep-alive | resumed | full handshake | HTTP/2 | TLS negotiated |"
        echo "|---|---|---|---|---|---|"
        for s in "${servers[@]}"; do
          echo "| $s | $(cpu_cell "$mode" "$s" keepalive) | $(cpu_cell "$mode" "$s" resumed) | $(cpu_cell "$mode" "$s" full) | $(cpu_cell "$mode" "$s" h2) | ${R[$mode.$s.tls]} |"
        done
        ;;
    esac
    echo
  done
  if [[ " ${servers[*]} " == *" berth "* ]] && has_mode pinned; then
    ka=$(ratio "${R[pinned.berth.keepalive.rate]}" "${R[pinned.nginx.keepalive.rate]}")
    ka_cap=$(ratio "${R[pinned.nginx.keepalive.cpu_us]}" "${R[pinned.berth.keepalive.cpu_us]}")
    full=$(ratio "${R[pinned.berth.full.rate]}" "${R[pinned.nginx.full.rate]}")
    full_cap=$(ratio "${R[pinned.nginx.full.cpu_us]}" "${R[pinned.berth.full.cpu_us]}")
    echo "### Targets for berth"
    echo
    if has_mode capped; then
      ka_c=$(ratio "${R[capped.berth.keepalive.rate]}" "${R[capped.nginx.keepalive.rate]}")
      full_c=$(ratio "${R[capped.berth.full.rate]}" "${R[capped.nginx.full.rate]}")
      echo "- throughput ≥ 1.0× nginx: **$(verdict "${ka%×}" 1.0)** — keep-alive requests/s $ka pinned, $ka_c capped; $ka_cap per CPU-second"
      echo "- handshakes/s ≥ 1.2× nginx: **$(verdict "${full_c%×}" 1.2)** — full handshakes/s $full_c capped (server-bound); $full_cap per"
      echo "  CPU-second pinned, where the measured rate ($full) is the client's limit"
    else
      echo "- throughput ≥ 1.0× nginx: **$(verdict "${ka%×}" 1.0)** — keep-alive requests/s $ka pinned; $ka_cap per CPU-second"
      echo "- handshakes/s ≥ 1.2× nginx: **$(verdict "${full_cap%×}" 1.2)** — full handshakes per server CPU-second $full_cap (pinned; the"
      echo "  measured rate, $full, is the client's limit)"
    fi
    echo "- idle RSS ≤ 10 MB: **$(verdict 10000000 "$((R[pinned.berth.idle] * 1024))")** — $(mib "${R[pinned.berth.idle]}") MiB ($(awk -v k="${R[pinned.berth.idle]}" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }') MB) pinned, of which $(mib "${R[pinned.berth.idle_anon]}") MiB anonymous"
    echo
  fi
  echo "<details><summary>single runs (req/s or conn/s: keep-alive / resumed / full / HTTP/2)</summary>"
  echo
  echo "| layout | server | $(for r in $(seq 1 "$repeats"); do printf 'run %s | ' "$r"; done | sed 's/ | $//') |"
  echo "|---|---|$(for r in $(seq 1 "$repeats"); do printf -- '---|'; done)"
  for mode in "${ran_modes[@]}"; do
    for s in "${servers[@]}"; do
      k="$mode.$s"
      echo "| $mode | $s | $(for r in $(seq 1 "$repeats"); do printf '%s / %s / %s / %s | ' "${R[$k.keepalive.rate#$r]}" "${R[$k.resumed.rate#$r]}" "${R[$k.full.rate#$r]}" "${R[$k.h2.rate#$r]}"; done | sed 's/ | $//') |"
    done
  done
  echo
  echo "</details>"
  echo
  echo "<details><summary>client-reported errors (empty: none)</summary>"
  echo
  echo "| run | keep-alive | resumed | HTTP/2 |"
  echo "|---|---|---|---|"
  for mode in "${ran_modes[@]}"; do
    for s in "${servers[@]}"; do
      k="$mode.$s"
      echo "| $mode $s | ${R[$k.keepalive.errors]} | ${R[$k.resumed.errors]} | ${R[$k.h2.errors]} |"
    done
  done
  echo
  echo "</details>"
  echo
  echo "Rerun: \`tests/bench/proxy.sh\` (env: \`DURATION=30\`, \`MODES=\"pinned capped shared\"\`,"
  echo "\`SERVERS=\"nginx berth\"\`, \`REPEATS=3\`, \`CAP=0.2\`, \`CONNECTIONS=50\`, \`STIME_PROCS=8\`); it installs what is missing."
} >"$out"
bench_write_section proxy "$out"
cat "$out"
