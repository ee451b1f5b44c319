#!/usr/bin/env bash
# Regenerates sidecar/berth.order, the code layout of the release `berth` binary (see
# sidecar/build.rs): the functions berth runs while it starts, serves the kinds of request
# the proxy benchmark sends (HTTP/1.1 with and without SNI, HTTP/2, keep-alive, resumed
# and full handshakes, the :80 redirect, the admin health check) and idles, hottest first.
#
# It runs the release binary under callgrind (valgrind) in front of the benchmarks' nginx
# upstream, with a certificate from a local Pebble, and lists every function of the
# binary that executed, by instructions spent in it. Symbol names carry hashes of the
# toolchain, Cargo.lock and berth's own crate metadata, so re-run this after changing any
# of them; the linker skips names it no longer finds, and the proxy benchmark reports how
# many still match. Everything on 127.0.0.1; each load step is bounded by
# SECONDS_PER_STEP (default 2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
source "$here/lib.sh"
cd "$bench_root"
seconds=${SECONDS_PER_STEP:-2}
name=bench.example.test
order="$bench_root/sidecar/berth.order"

bench_require pgrep:procps valgrind:valgrind callgrind_annotate:valgrind callgrind_control:valgrind pebble:pebble nginx:nginx wrk:wrk \
  h2load:nghttp2-client curl:curl openssl:openssl unshare:util-linux python3:python3 nm:binutils
bench_build_berth

bench_pebble_workdir symbol-order
bench_issue_certificate "$work" "$name"

up_port=$(bench_free_port)
tls_port=$(bench_free_port)
http_port=$(bench_free_port)
admin_port=$(bench_free_port)
url="https://$name:$tls_port/"
bench_start_upstream "$work/upstream" "$up_port" 0-"$(($(nproc) - 1))"

echo "==> berth run under callgrind" >&2
BERTH_WORKERS=1 BERTH_LOG=warn valgrind --tool=callgrind --demangle=no \
  --callgrind-out-file="$work/callgrind.out" "$BERTH" run -d "$name" \
  --store "$work/acme.json" --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" --agree-tos \
  --skip-staging --upstream "http://127.0.0.1:$up_port" --tls-addr "127.0.0.1:$tls_port" \
  --http-addr "127.0.0.1:$http_port" --admin-addr "127.0.0.1:$admin_port" \
  --log-format json >"$work/berth.log" 2>&1 &
berth_pid=$!
pids+=("$berth_pid")
ready=""
for _ in $(seq 1 120); do
  curl -sk --resolve "$name:$tls_port:127.0.0.1" -o /dev/null "$url" && { ready=1; break; }
  sleep 0.5
done
[ -n "$ready" ] || { echo "berth did not start under valgrind; log:" >&2; tail -20 "$work/berth.log" >&2; exit 1; }

wrk_run() {
  bench_with_hosts "$name" timeout $((seconds + 30)) wrk -t1 -c4 -d"${seconds}s" "$@" "$url"
}
# Phase 1, what the proxy benchmark does before it reads idle RSS: the first requests
# (HTTP/1.1 with SNI, HTTP/1.0 without SNI or Host, HTTP/2), then a second of idling; plus
# the :80 redirect and the health check an orchestrator polls.
curl -sk --resolve "$name:$tls_port:127.0.0.1" -o /dev/null "$url"
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -quiet -connect "127.0.0.1:$tls_port" >/dev/null 2>&1
curl -sk --http2 --resolve "$name:$tls_port:127.0.0.1" -o /dev/null "$url"
curl -s -o /dev/null "http://127.0.0.1:$http_port/"
curl -s -o /dev/null "http://127.0.0.1:$admin_port/healthz"
sleep 1
callgrind_control --dump=idle "$berth_pid" >/dev/null 2>&1
# Phase 2, load: keep-alive, resumed and full handshakes, HTTP/2; then idle timers.
wrk_run >/dev/null
wrk_run -H 'Connection: close' >/dev/null
timeout $((seconds + 30)) openssl s_time -connect "127.0.0.1:$tls_port" -new -www / -time "$seconds" >/dev/null 2>&1
timeout $((seconds + 30)) h2load -D "$seconds" -c 2 -m 4 --connect-to="127.0.0.1:$tls_port" "$url" >/dev/null
sleep 2
kill "$berth_pid"
wait "$berth_pid" || true
# callgrind wrote phase 1 to callgrind.out.1 and the rest (counters reset) to callgrind.out.
for f in callgrind.out.1 callgrind.out; do
  [ -s "$work/$f" ] || { echo "callgrind wrote no $f; log:" >&2; tail -20 "$work/berth.log" >&2; exit 1; }
done

# The binary's functions (text symbols) that ran: phase 1's, then phase 2's not already
# listed; within each, first those callgrind_annotate ranks by instructions (self cost),
# then the rest it saw called.
nm "$BERTH" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u >"$work/symbols"
bin=$(basename "$BERTH")
ran() { # PROFILE: function names, most instructions first
  callgrind_annotate --threshold=100 --inclusive=no "$1" 2>/dev/null |
    grep "/$bin\]\$" | sed -E 's/^ *[0-9,]+ \([ 0-9.]+%\)  [^:]*:(.*) \[.*$/\1/'
  grep -oE '^c?fn=\([0-9]+\) .*' "$1" | sed -E 's/^c?fn=\([0-9]+\) //'
}
{ ran "$work/callgrind.out.1"; ran "$work/callgrind.out"; } |
  awk 'NR == FNR { known[$0] = 1; next } ($0 in known) && !seen[$0]++' "$work/symbols" - >"$work/order"
[ -s "$work/order" ] || { echo "no berth functions found in the profile" >&2; exit 1; }
# The stamp a test checks (sidecar/tests/order_file.rs): symbol names change with the
# toolchain and Cargo.lock, so the file says what it was made for. The linker takes the
# line for a symbol it cannot find and skips it.
{
  echo "# made by tests/bench/symbol-order.sh with $(rustc --version) for Cargo.lock sha256 $(sha256sum Cargo.lock | cut -d' ' -f1)"
  cat "$work/order"
} >"$order"
kib=$(nm -S "$BERTH" | python3 -c '
import sys
listed = set(open(sys.argv[1]).read().split())
sizes = (int(f[1], 16) for f in map(str.split, sys.stdin) if len(f) == 4 and f[3] in listed)
print(sum(sizes) // 1024)' "$order")
echo "==> $(grep -vc '^#' "$order") functions ($kib KiB of code) written to ${order#"$bench_root/"}; rebuild to use them" >&2
