#!/usr/bin/env bash
# Scale: `berth run` serving a store of N certificates (issue 15), and issuing many at once.
#
# For each N in SIZES (and a 1-certificate store as the reference), tests/src/bin/gen-store.rs
# writes a local CA, N ECDSA P-256 certificates c<i>.scale.test (valid for 60 more days, so
# none is due for renewal) in Traefik's acme.json, and a --config file naming them all in
# [[certificates]] tables. berth runs on that store with a CA URL nothing listens on, so it
# must serve from the store alone. Measured:
#   ready         start of the process to /readyz = 200 (polled every 20 ms, given up
#                 after READY_TIMEOUT s; larger sizes are then skipped)
#   RSS           VmRSS 1 s after ready
#   handshakes    HS_PROCS Python clients (OpenSSL's client, as openssl s_time, which
#                 cannot send SNI) doing full TLS handshakes for random configured names
#                 for HS_DURATION s, verifying the certificate against the local CA, so a
#                 wrong certificate counts as a failure; rate, and berth's CPU per handshake
#                 (utime + stime from /proc): the clients cost more CPU than the server, so
#                 the rate is the clients' limit and the per-CPU figure compares berth.
#                 The 1-certificate berth keeps running as the reference: HS_REPEATS rounds
#                 of one run against it and one against the N-certificate berth, so drift in
#                 what else the machine does hits both sides of the ratio alike
#   admin         /metrics and /api/certs: median curl time_total of LAT_RUNS requests
#   change        one certificate in acme.json replaced (new key and serial, written to a
#                 temporary file and renamed over acme.json) until an `openssl s_client`
#                 handshake for that name shows the new serial; given up after
#                 CHANGE_TIMEOUT s
#   manager pass  berth's "renewal pass" log line (certificates=, elapsed_ms=), if it logs one
# berth runs on core 0 with one proxy worker, the clients on core 1. Before the handshake,
# admin and change runs the script waits (at most SETTLE_TIMEOUT s) for berth to go idle,
# so its first renewal pass does not share the core with them.
#
# With ISSUE=1 (the default), against one local Pebble: ISSUE_COUNT certificates through
# one `berth run` (ISSUE_COUNT [[certificates]], start to /readyz = 200), and ISSUE_COUNT
# `berth issue` processes started together (one name each, answering HTTP-01 on their own
# 127.0.1.<i>), both after a warm-up `berth issue` that registers the account they share.
#
# Writes the "scale" section of BENCHMARKS.md (or of BENCH_OUT). Everything on 127.0.0.1/8;
# every wait is bounded.
#
# Env: SIZES (default "100 1000 10000"), READY_TIMEOUT (s, 180), HS_DURATION (s, 5),
#      HS_REPEATS (3), HS_PROCS (4), LAT_RUNS (5), CHANGE_TIMEOUT (s, 30), SETTLE_TIMEOUT (s, 30),
#      TARGET_N (the size the targets are judged at, 10000), ISSUE (1), ISSUE_COUNT (200,
#      at most 250), ISSUE_TIMEOUT (s, 300), BENCH_OUT (default BENCHMARKS.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
source "$here/lib.sh"
cd "$bench_root"
read -r -a sizes <<<"${SIZES:-100 1000 10000}"
ready_timeout=${READY_TIMEOUT:-180}
hs_duration=${HS_DURATION:-5}
hs_repeats=${HS_REPEATS:-3}
hs_procs=${HS_PROCS:-4}
lat_runs=${LAT_RUNS:-5}
change_timeout=${CHANGE_TIMEOUT:-30}
settle_timeout=${SETTLE_TIMEOUT:-30}
target_n=${TARGET_N:-10000}
issue=${ISSUE:-1}
issue_count=${ISSUE_COUNT:-200}
issue_timeout=${ISSUE_TIMEOUT:-300}
[ "$issue_count" -le 250 ] || { echo "ISSUE_COUNT must be at most 250 (one 127.0.1.N address each)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores" >&2; exit 2; }
berth_cpus=0 client_cpus=1

bench_require pgrep:procps pebble:pebble pebble-challtestsrv:pebble curl:curl openssl:openssl \
  taskset:util-linux python3:python3
bench_build_berth
echo "==> cargo build -p berth-tests --bin gen-store" >&2
# The dev profile builds dependencies optimised (rcgen, ring, serde_json do the work) and
# shares its artefacts with `cargo test`; 10,000 certificates take a few seconds.
cargo build -p berth-tests --bin gen-store --locked --quiet
gen_store="$bench_root/target/debug/gen-store"

bench_pebble_workdir scale
# Besides berth ($pids) the script starts short-lived clients and `berth issue` processes;
# an interrupted run stops those too.
cleanup() {
  local child
  for child in $(pgrep -P $$ || true); do bench_kill_tree "$child"; done
  bench_cleanup
}
trap cleanup EXIT
clk_tck=$(getconf CLK_TCK)

# --- measuring one store -------------------------------------------------------------------
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# pick_ports: free ports for the next berth (picked before its clock starts: each pick
# is a Python start).
pick_ports() {
  read -r tls_port admin_port http_port ca_port up_port <<<"$(python3 - <<'PY'
import socket
held = [socket.socket() for _ in range(5)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))
PY
)"
}

# start_berth DIR: berth run on DIR/acme.json with DIR/berth.toml on the pick_ports ports;
# sets berth_pid. The CA URL is a port nothing listens on: every certificate is valid and
# not due, so nothing may need the CA.
start_berth() {
  local dir=$1
  BERTH_WORKERS=1 BERTH_LOG=info taskset -c "$berth_cpus" "$BERTH" run --config "$dir/berth.toml" \
    --store "$dir/acme.json" --ca "https://127.0.0.1:$ca_port/dir" --agree-tos --skip-staging \
    --upstream "http://127.0.0.1:$up_port" --tls-addr "127.0.0.1:$tls_port" \
    --http-addr "127.0.0.1:$http_port" --admin-addr "127.0.0.1:$admin_port" \
    --log-format json >"$dir/berth.log" 2>&1 &
  berth_pid=$!
  pids+=("$berth_pid")
}

# stop_berth: SIGTERM, then SIGKILL if it has not exited after 15 s; takes it off $pids
# so the clean-up at exit never signals a recycled process id.
stop_berth() {
  local pid rest=()
  kill "$berth_pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$berth_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$berth_pid" 2>/dev/null || true
  wait "$berth_pid" 2>/dev/null || true
  for pid in "${pids[@]}"; do [ "$pid" = "$berth_pid" ] || rest+=("$pid"); done
  pids=("${rest[@]}")
}

# wait_ready PORT TIMEOUT START: seconds from START until /readyz on the admin PORT
# answers 200; empty when it did not within TIMEOUT s or berth exited.
wait_ready() {
  local port=$1 timeout=$2 start=$3
  while awk -v s="$(seconds_since "$start")" -v t="$timeout" 'BEGIN { exit !(s < t) }'; do
    if curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz"; then
      seconds_since "$start"
      return 0
    fi
    kill -0 "$berth_pid" 2>/dev/null || return 0
    sleep 0.02
  done
}

# wait_idle PID TIMEOUT: waits until the process uses at most 4 % of a core over half a
# second; prints the seconds waited (or TIMEOUT+ when it never settled).
wait_idle() {
  local start t0 t1
  start=$(date +%s.%N)
  while awk -v s="$(seconds_since "$start")" -v t="$2" 'BEGIN { exit !(s < t) }'; do
    t0=$(cpu_ticks "$1"); sleep 0.5; t1=$(cpu_ticks "$1")
    [ $((t1 - t0)) -le $((clk_tck / 50)) ] && { seconds_since "$start"; return 0; }
  done
  echo "$2+"
}

cat >"$work/handshakes.py" <<'PY'
# Full TLS handshakes (no session reuse: Python offers a session only when given one) for
# random names c<i>.scale.test, verified against the local CA, until the time is up.
import random, socket, ssl, sys, time
port, count, cafile, seconds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
context = ssl.create_default_context(cafile=cafile)
ok = failed = 0
last_error = ""
end = time.monotonic() + seconds
while time.monotonic() < end:
    name = f"c{random.randrange(count)}.scale.test"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name):
                ok += 1
    except (OSError, ssl.SSLError) as error:
        failed += 1
        last_error = f"{name}: {error}"
print(ok, failed)
if last_error:
    print(last_error, file=sys.stderr)
PY

# handshake_run PID PORT N DIR: one HS_DURATION run against the berth PID serving DIR's
# N certificates on PORT; prints "handshakes seconds berth-CPU-ticks failed".
handshake_run() {
  local pid=$1 port=$2 n=$3 dir=$4 i list=() start t0 t1 seconds ok failed
  rm -f "$dir"/hs.*
  t0=$(cpu_ticks "$pid")
  start=$(date +%s.%N)
  for i in $(seq 1 "$hs_procs"); do
    timeout $((hs_duration + 30)) taskset -c "$client_cpus" python3 "$work/handshakes.py" \
      "$port" "$n" "$dir/ca.pem" "$hs_duration" >"$dir/hs.$i.out" 2>"$dir/hs.$i.err" &
    list+=($!)
  done
  wait "${list[@]}" || true
  seconds=$(seconds_since "$start")
  t1=$(cpu_ticks "$pid")
  read -r ok failed < <(cat "$dir"/hs.*.out | awk '{ o += $1; f += $2 } END { print o + 0, f + 0 }')
  [ "$failed" -eq 0 ] || echo "    handshake failures, e.g. $(cat "$dir"/hs.*.err | head -1)" >&2
  echo "$ok $seconds $((t1 - t0)) $failed"
}

# handshakes N DIR: HS_REPEATS rounds, each a run against the 1-certificate reference
# berth (none for N = 1) and one against this berth; sets R[N.hs] (rate), R[N.hs_cpu] (µs
# of berth CPU per handshake), R[N.hs_failed] and the same for the reference's runs
# alongside (R[N.ref_hs], R[N.ref_hs_cpu]).
handshakes() {
  local n=$1 dir=$2 own="0 0 0 0" ref="0 0 0 0"
  for _ in $(seq 1 "$hs_repeats"); do
    [ "$n" = 1 ] || ref=$(runs_add "$ref" "$(handshake_run "$ref_pid" "$ref_tls_port" 1 "$ref_dir")")
    own=$(runs_add "$own" "$(handshake_run "$berth_pid" "$tls_port" "$n" "$dir")")
  done
  [ "$n" != 1 ] || ref=$own
  R[$n.hs]=$(runs_rate "$own") R[$n.hs_cpu]=$(runs_cpu_us "$own") R[$n.hs_failed]=${own##* }
  R[$n.ref_hs]=$(runs_rate "$ref") R[$n.ref_hs_cpu]=$(runs_cpu_us "$ref")
}
# Totals of handshake_run lines ("handshakes seconds ticks failed"), and what they give.
runs_add() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x); split(b, y); print x[1] + y[1], x[2] + y[2], x[3] + y[3], x[4] + y[4] }'; }
runs_rate() { awk -v t="$1" 'BEGIN { split(t, x); printf "%.0f", (x[2] > 0 ? x[1] / x[2] : 0) }'; }
runs_cpu_us() { awk -v t="$1" -v h="$clk_tck" 'BEGIN { split(t, x); printf "%.1f", (x[1] > 0 ? x[3] / h * 1e6 / x[1] : 0) }'; }

# admin_latency PATH: median curl time_total (ms) of LAT_RUNS requests, and the body size (KiB).
admin_latency() {
  local i samples=()
  for i in $(seq 1 "$lat_runs"); do
    samples+=("$(taskset -c "$client_cpus" curl -fs -o /dev/null --max-time 30 -w '%{time_total} %{size_download}' \
      "http://127.0.0.1:$admin_port$1" || echo "n/a 0")")
  done
  printf '%s\n' "${samples[@]}" | awk '$1 != "n/a" { print $1 * 1000, $2 }' | sort -g |
    awk '{ v[NR] = $1; b = $2 } END { if (NR) printf "%.1f %.0f\n", v[int((NR + 1) / 2)], b / 1024; else print "n/a 0" }'
}

# served_serial NAME: the serial berth serves for NAME, upper-case hex without leading zeros.
served_serial() {
  { timeout 5 openssl s_client -connect "127.0.0.1:$tls_port" -servername "$1" </dev/null 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null || true; } | sed 's/^serial=//; s/^0*//' | tr 'a-f' 'A-F'
}

# change_served N DIR: replaces certificate N/2 in DIR/acme.json and prints the seconds
# until a handshake for its name shows the new serial (or "not served after T s").
change_served() {
  local index=$(($1 / 2)) dir=$2 name old new renamed_at deadline
  name="c$index.scale.test"
  old=$(served_serial "$name")
  [ -n "$old" ] || { echo "no certificate served for $name"; return 0; }
  # On the clients' core: rewriting a 25 MB acme.json must not take berth's.
  read -r new renamed_at < <(taskset -c "$client_cpus" "$gen_store" replace "$dir" "$index" || true)
  [ -n "$new" ] || { echo "gen-store replace failed"; return 0; }
  [ "$new" != "$old" ] || { echo "replacement has the old serial"; return 0; }
  deadline=$(awk -v r="$renamed_at" -v t="$change_timeout" 'BEGIN { printf "%.3f", r + t }')
  while awk -v d="$deadline" -v now="$(date +%s.%N)" 'BEGIN { exit !(now < d) }'; do
    if [ "$(served_serial "$name")" = "$new" ]; then
      seconds_since "$renamed_at"
      return 0
    fi
    sleep 0.05
  done
  echo "not served after $change_timeout s"
}

# manager_pass LOG: "certificates elapsed_ms [cpu_ms]" from berth's first "renewal pass"
# line (JSON or text log), or "n/a".
manager_pass() {
  python3 - "$1" <<'PY'
import re, sys
def field(line, name):
    m = re.search(r'"?\b' + name + r'"?\s*[=:]\s*"?(\d+(?:\.\d+)?)', line)
    return m.group(1) if m else None
for line in open(sys.argv[1], errors="replace"):
    if "renewal pass" in line:
        n, ms = field(line, "certificates"), field(line, "elapsed_ms")
        if n and ms:
            print(n, ms, field(line, "cpu_ms") or "")
            break
else:
    print("n/a")
PY
}

# Results, keyed "<N>.<metric>".
declare -A R
# measure N: generates the store, runs berth on it and records every number.
measure() {
  local n=$1 dir="$work/store-$1" start ready ms kib settle
  "$gen_store" new "$dir" "$n" 2>"$dir.gen.log" ||
    { cat "$dir.gen.log" >&2; R[$n.ready]="gen-store failed"; return 1; }
  R[$n.gen]=$(sed -n 's/.*(\([0-9.]*\) s,.*/\1/p' "$dir.gen.log")
  R[$n.size]=$(awk -v b="$(stat -c %s "$dir/acme.json")" 'BEGIN { printf "%.1f", b / 1048576 }')
  echo "==> $n certificates (acme.json ${R[$n.size]} MiB, generated in ${R[$n.gen]} s)" >&2
  pick_ports
  start=$(date +%s.%N)
  start_berth "$dir"
  ready=$(wait_ready "$admin_port" "$ready_timeout" "$start")
  if [ -z "$ready" ]; then
    if kill -0 "$berth_pid" 2>/dev/null; then
      R[$n.ready]="not ready after $ready_timeout s"
    else
      R[$n.ready]="exited"
      tail -5 "$dir/berth.log" >&2
    fi
    R[$n.rss]=$(rss_kib "$berth_pid")
    echo "    ${R[$n.ready]} (RSS $((R[$n.rss] / 1024)) MiB)" >&2
    stop_berth
    return 1
  fi
  R[$n.ready]=$ready
  sleep 1
  R[$n.rss]=$(rss_kib "$berth_pid")
  settle=$(wait_idle "$berth_pid" "$settle_timeout")
  R[$n.settle]=$settle
  read -r ms kib <<<"$(admin_latency /metrics)"
  R[$n.metrics]=$ms R[$n.metrics_kib]=$kib
  read -r ms kib <<<"$(admin_latency /api/certs)"
  R[$n.api]=$ms R[$n.api_kib]=$kib
  handshakes "$n" "$dir"
  R[$n.change]=$(change_served "$n" "$dir")
  R[$n.pass]=$(manager_pass "$dir/berth.log")
  echo "    ready ${R[$n.ready]} s, RSS $((R[$n.rss] / 1024)) MiB, idle ${settle} s after ready," \
    "handshakes ${R[$n.hs]}/s (${R[$n.hs_cpu]} µs berth CPU each, ${R[$n.hs_failed]} failed;" \
    "reference alongside ${R[$n.ref_hs]}/s, ${R[$n.ref_hs_cpu]} µs)," \
    "/metrics ${R[$n.metrics]} ms, /api/certs ${R[$n.api]} ms, change served ${R[$n.change]}," \
    "manager pass ${R[$n.pass]}" >&2
  # The 1-certificate berth stays up as the handshake reference.
  [ "$n" = 1 ] && return 0
  stop_berth
  rm -rf "$dir"
}

load_at_start=$(bench_wait_quiet)
measure 1 || { echo "berth did not serve a 1-certificate store" >&2; exit 1; }
ref_pid=$berth_pid ref_tls_port=$tls_port ref_dir="$work/store-1"
measured=(1)
skipped=""
for n in "${sizes[@]}"; do
  if [ -n "$skipped" ]; then
    R[$n.ready]="skipped ($skipped)"
  elif ! measure "$n"; then
    skipped="$n: ${R[$n.ready]}"
  fi
  measured+=("$n")
done
berth_pid=$ref_pid
stop_berth

# --- issuing many certificates --------------------------------------------------------------
if [ "$issue" = 1 ]; then
  # Fresh ports: those picked at the start may have been taken since (they lie in the
  # kernel's ephemeral range).
  bench_pebble_ports
  pebble_start
  pebble_http=$PEBBLE_HTTP_PORT
  challtestsrv="http://127.0.0.1:$((PEBBLE_DNS_PORT + 1))"
  email=bench@example.test
  berth_issue() { # NAME ADDR STORE
    timeout 120 "$BERTH" issue -d "$1" --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" \
      --agree-tos --email "$email" --skip-staging --http-addr "$2:$pebble_http" --store "$3" --log-format json
  }
  mkdir -p "$work/issue/warmup" "$work/issue/run" "$work/issue/logs"
  echo "==> issuing: warm-up (account registration)" >&2
  berth_issue warmup.scale-issue.test 127.0.0.1 "$work/issue/warmup/acme.json" >"$work/issue/logs/warmup.log" 2>&1 ||
    { tail -20 "$work/issue/logs/warmup.log" >&2; exit 1; }
  state="$work/issue/warmup/acme.json.berth-state"
  [ -f "$state" ] || { echo "berth keeps no state file beside its store; cannot share the account" >&2; exit 1; }

  echo "==> issuing: $issue_count certificates through one berth run" >&2
  pick_ports
  {
    echo "upstream = \"http://127.0.0.1:$up_port\""
    for i in $(seq 1 "$issue_count"); do
      printf '\n[[certificates]]\ndomains = ["r%d.run.scale-issue.test"]\n' "$i"
    done
  } >"$work/issue/run/berth.toml"
  cp -p "$state" "$work/issue/run/"
  start=$(date +%s.%N)
  BERTH_LOG=warn "$BERTH" run --config "$work/issue/run/berth.toml" --ca "$PEBBLE_DIRECTORY" \
    --ca-root "$PEBBLE_TLS_ROOT" --agree-tos --email "$email" --skip-staging \
    --store "$work/issue/run/acme.json" --http-addr "127.0.0.1:$pebble_http" \
    --tls-addr "127.0.0.1:$tls_port" --admin-addr "127.0.0.1:$admin_port" \
    --log-format json >"$work/issue/logs/run.log" 2>&1 &
  berth_pid=$!
  pids+=("$berth_pid")
  run_ready=$(wait_ready "$admin_port" "$issue_timeout" "$start")
  # How many have a certificate: /readyz lists the sets still without one.
  readyz=$(curl -s --max-time 5 "http://127.0.0.1:$admin_port/readyz" || true)
  case $readyz in
    ready*) run_issued=$issue_count ;;
    "no valid certificate yet for: "*) run_issued=$((issue_count - $(wc -w <<<"${readyz#*: }"))) ;;
    *) run_issued="?" ;;
  esac
  stop_berth
  if [ -n "$run_ready" ]; then
    echo "    ${run_ready} s, $run_issued of $issue_count issued" >&2
  else
    run_ready="not ready after $issue_timeout s"
    echo "    $run_ready, $run_issued of $issue_count issued; the log ends:" >&2
    tail -3 "$work/issue/logs/run.log" | cut -c1-400 >&2
  fi

  echo "==> issuing: $issue_count berth issue processes at once" >&2
  for i in $(seq 1 "$issue_count"); do
    curl -fsS -X POST -d "{\"host\":\"i$i.many.scale-issue.test\",\"addresses\":[\"127.0.1.$i\"]}" \
      "$challtestsrv/add-a" >/dev/null
    mkdir -p "$work/issue/many/$i"
    cp -p "$state" "$work/issue/many/$i/"
  done
  list=()
  start=$(date +%s.%N)
  for i in $(seq 1 "$issue_count"); do
    berth_issue "i$i.many.scale-issue.test" "127.0.1.$i" "$work/issue/many/$i/acme.json" \
      >"$work/issue/logs/many-$i.log" 2>&1 &
    list+=($!)
  done
  many_failed=0
  for pid in "${list[@]}"; do wait "$pid" || many_failed=$((many_failed + 1)); done
  many_s=$(seconds_since "$start")
  echo "    ${many_s} s, $many_failed failed" >&2
  pebble_stop
fi

# --- the BENCHMARKS.md section -------------------------------------------------------------
is_number() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
mib() { is_number "$1" && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' || echo "—"; }
# Handshakes per second of berth CPU, relative to the 1-certificate berth's runs alongside.
capacity_ratio() {
  awk -v a="${R[$1.ref_hs_cpu]:-}" -v b="${R[$1.hs_cpu]:-}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "" }'
}
rate_ratio() {
  awk -v a="${R[$1.hs]:-}" -v b="${R[$1.ref_hs]:-}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "" }'
}
seconds_cell() { is_number "${1:-}" && echo "$1 s" || echo "${1:-—}"; }
pass_cell() {
  local n ms cpu
  read -r n ms cpu <<<"${1:-n/a}"
  if [ "$n" = n/a ] || [ -z "$ms" ]; then echo "n/a"; else echo "$ms ms${cpu:+ ($cpu ms CPU)} for $n"; fi
}
# verdict VALUE LIMIT le|ge: met/missed; "not measured" without a value, "missed" for a
# text such as "not ready after 180 s".
verdict() {
  [ -n "${1:-}" ] || { echo "not measured"; return 0; }
  is_number "$1" || { echo "missed"; return 0; }
  awk -v v="$1" -v l="$2" -v op="$3" 'BEGIN { ok = (op == "le") ? (v <= l) : (v >= l); print (ok ? "met" : "missed") }'
}
per_s() { is_number "$2" && awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s }' || echo "—"; }

out="$work/section.md"
t=$target_n
{
  echo "## Scale: many certificates in one store (\`tests/bench/scale.sh\`)"
  echo
  echo "$(date -u +%Y-%m-%d), $(bench_machine), load average $load_at_start at start."
  echo "berth $(bench_berth_revision) (release build), OpenSSL $(openssl version | awk '{print $2}') clients (Python $(python3 -c 'import platform; print(platform.python_version())') \`ssl\`, \`s_client\`), curl $(bench_pkg_version curl)."
  echo
  echo "**Method.** \`tests/src/bin/gen-store.rs\` writes a local CA and N ECDSA P-256 certificates"
  echo "\`c<i>.scale.test\` (valid for 60 more days, none due for renewal) into a Traefik \`acme.json\`,"
  echo "and a \`--config\` file with one \`[[certificates]]\` table per name. \`berth run\` serves it"
  echo "with a CA URL nothing listens on, on core 0 with one proxy worker; the clients run on core 1."
  echo
  echo "- *ready*: process start to \`/readyz\` = 200 (polled every 20 ms, given up after $ready_timeout s; larger"
  echo "  sizes are then skipped). *RSS*: VmRSS 1 s after ready."
  echo "- *handshakes*: $hs_procs Python \`ssl\` clients (OpenSSL's client; \`openssl s_time\` cannot send SNI),"
  echo "  $hs_repeats × ${hs_duration} s of full TLS handshakes (no session reuse) for random configured names, each"
  echo "  certificate verified against the local CA. The clients need more CPU than berth, so the rate"
  echo "  is their limit; berth's CPU per handshake (utime + stime) is the comparison. The 1-certificate"
  echo "  berth stays up as the reference, and each round runs against it and then the N-certificate"
  echo "  berth: *vs 1 cert* is handshakes per berth CPU-second against the reference's runs in the"
  echo "  same rounds (rate ratio in brackets)."
  echo "- *change served*: one certificate (c<N/2>) replaced in \`acme.json\` with a new key and serial,"
  echo "  written to a temporary file and renamed over it, until \`openssl s_client -servername\` sees"
  echo "  the new serial (polled, given up after $change_timeout s)."
  echo "- *\`/metrics\`*, *\`/api/certs\`*: median \`curl\` time of $lat_runs requests."
  echo "- *manager pass*: berth's own \"renewal pass\" log line (\`elapsed_ms\` for \`certificates\`), if logged."
  echo "- Before handshakes, admin requests and the change, the script waited (≤ $settle_timeout s) for berth"
  echo "  to go idle, so its first renewal pass does not share the core with them (*idle after*)."
  echo
  echo "| certificates (acme.json MiB) | ready | idle RSS MiB | idle after | full handshakes/s | berth µs/handshake | vs 1 cert | change served | \`/metrics\` ms (KiB) | \`/api/certs\` ms (KiB) | manager pass |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for n in "${measured[@]}"; do
    hs="${R[$n.hs]:-—}"
    [ "${R[$n.hs_failed]:-0}" = 0 ] || hs="$hs (${R[$n.hs_failed]} failed)"
    vs="—"
    [ "$n" = 1 ] && vs="1.00 (reference)"
    [ "$n" != 1 ] && [ -n "$(capacity_ratio "$n")" ] && vs="$(capacity_ratio "$n")× ($(rate_ratio "$n")×)"
    echo "| $n (${R[$n.size]:-—}) | $(seconds_cell "${R[$n.ready]:-}") | $(mib "${R[$n.rss]:-}") | $(seconds_cell "${R[$n.settle]:-}") | $hs | ${R[$n.hs_cpu]:-—} | $vs | $(seconds_cell "${R[$n.change]:-}") | ${R[$n.metrics]:-—} (${R[$n.metrics_kib]:-—}) | ${R[$n.api]:-—} (${R[$n.api_kib]:-—}) | $(pass_cell "${R[$n.pass]:-}") |"
  done
  echo
  echo "### Targets at $t certificates"
  echo
  rss_mib="" hs_ratio=$(capacity_ratio "$t")
  is_number "${R[$t.rss]:-}" && rss_mib=$(mib "${R[$t.rss]}")
  echo "- ready ≤ 2 s: **$(verdict "${R[$t.ready]:-}" 2 le)**${R[$t.ready]:+ — $(seconds_cell "${R[$t.ready]}")}"
  echo "- idle RSS ≤ 64 MiB: **$(verdict "$rss_mib" 64 le)**${rss_mib:+ — $rss_mib MiB}"
  echo "- full handshakes ≥ 0.95× the 1-certificate store: **$(verdict "$hs_ratio" 0.95 ge)**${hs_ratio:+ — ${hs_ratio}× per berth CPU-second, $(rate_ratio "$t")× in rate}"
  echo "- changed certificate served ≤ 1 s: **$(verdict "${R[$t.change]:-}" 1 le)**${R[$t.change]:+ — $(seconds_cell "${R[$t.change]}")}"
  echo
  if [ "$issue" = 1 ]; then
    echo "### Issuing $issue_count certificates"
    echo
    echo "One local Pebble $(bench_pkg_version pebble) (\`PEBBLE_VA_NOSLEEP=1\`, its other fault injection left on),"
    echo "HTTP-01, one ACME account registered by a warm-up \`berth issue\` and shared by both methods."
    echo
    echo "| method | wall s | certificates/s | issued |"
    echo "|---|---|---|---|"
    echo "| one \`berth run\` with $issue_count \`[[certificates]]\`, start to \`/readyz\` = 200 | $run_ready | $(per_s "$run_issued" "$run_ready") | $run_issued of $issue_count |"
    echo "| $issue_count \`berth issue\` processes at once (own store each, own 127.0.1.N listener) | $many_s | $(per_s $((issue_count - many_failed)) "$many_s") | $((issue_count - many_failed)) of $issue_count |"
    echo
  fi
  echo "Rerun: \`tests/bench/scale.sh\` (env: \`SIZES=\"100 1000 10000\"\`, \`READY_TIMEOUT=180\`, \`HS_DURATION=5\`,"
  echo "\`HS_REPEATS=3\`, \`HS_PROCS=4\`, \`CHANGE_TIMEOUT=30\`, \`ISSUE=1\`, \`ISSUE_COUNT=200\`); it installs what is missing."
} >"$out"
bench_write_section scale "$out"
cat "$out"
