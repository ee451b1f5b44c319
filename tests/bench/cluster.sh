#!/usr/bin/env bash
# Cluster (issue 16): REPLICAS `berth run` replicas sharing one Redis, a local Pebble whose
# HTTP-01 requests reach the replicas round-robin through a small Python forwarder (the
# routing mesh; a replica that refuses the connection is skipped). Measured:
#   failover      ROUNDS times, on a fresh key prefix and name: the replica that placed the
#                 order is SIGKILLed as soon as its log says so; time from the kill until
#                 every survivor's /readyz is 200 (it serves the certificate). The lease
#                 (9 s TTL) must run out before a survivor takes the order over.
#   propagation   CERTS certificates ready on every replica; ROUNDS forced renewals (each
#                 through another replica's admin API); a poller handshakes with every
#                 replica in turn (about 3 ms a round) and records when each first serves
#                 the renewed certificate of the first name: last replica minus first one.
#   store ops     at steady state (everything valid, nothing due): Redis' INFO commandstats
#                 reset, WINDOW s later summed, extrapolated to a day, per certificate.
#   handshakes    replica 0 (Redis store) and a berth on a file store holding the same
#                 certificates (`berth store migrate` out of Redis), each pinned to core 0,
#                 HS_PROCS Python clients on core 1 doing full handshakes for HS_DURATION s,
#                 HS_REPEATS rounds alternating; rate and ratio.
# Writes the "cluster" section of BENCHMARKS.md (or of BENCH_OUT). Everything on 127.0.0.1;
# every wait is bounded.
#
# Env: REPLICAS (3), ROUNDS (3), CERTS (5), WINDOW (s, 60), HS_DURATION (s, 5),
#      HS_REPEATS (3), HS_PROCS (2), BENCH_OUT (default BENCHMARKS.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
source "$here/lib.sh"
cd "$bench_root"
replicas=${REPLICAS:-3}
rounds=${ROUNDS:-3}
certs=${CERTS:-5}
window=${WINDOW:-60}
hs_duration=${HS_DURATION:-5}
hs_repeats=${HS_REPEATS:-3}
hs_procs=${HS_PROCS:-2}
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores" >&2; exit 2; }

bench_require pgrep:procps pebble:pebble pebble-challtestsrv:pebble curl:curl openssl:openssl \
  taskset:util-linux python3:python3 redis-server:redis-server redis-cli:redis-tools
bench_build_berth
bench_pebble_workdir cluster
cleanup() {
  local child
  for child in $(pgrep -P $$ || true); do bench_kill_tree "$child"; done
  bench_cleanup
}
trap cleanup EXIT

seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
port() { bench_free_port; }

# --- the pieces ----------------------------------------------------------------------------
redis_port=$(port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
store="redis://127.0.0.1:$redis_port/0"
pebble_start
curl -fsS --cacert "$PEBBLE_TLS_ROOT" "$PEBBLE_MGMT/roots/0" >"$work/issuing-root.pem"
up_port=$(port)
bench_start_upstream "$work/upstream" "$up_port" 1

declare -a http_port tls_port admin_port rpid
for i in $(seq 0 $((replicas - 1))); do
  http_port[i]=$(port) tls_port[i]=$(port) admin_port[i]=$(port)
done
cat >"$work/forward.py" <<'PY'
# Round-robin TCP forwarder: each connection to the first port goes to the next backend
# that accepts it.
import itertools, socket, sys, threading
listen, backends = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
turn = itertools.count()
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_WR)
            except OSError: pass
def serve(client):
    start = next(turn)
    for k in range(len(backends)):
        try:
            server = socket.create_connection(("127.0.0.1", backends[(start + k) % len(backends)]), timeout=2)
            break
        except OSError:
            continue
    else:
        client.close(); return
    threading.Thread(target=pipe, args=(client, server), daemon=True).start()
    pipe(server, client)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", listen)); s.listen(128)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
python3 "$work/forward.py" "$PEBBLE_HTTP_PORT" "${http_port[@]}" &
pids+=($!)

# start_replica I PREFIX ARGS...: berth run replica I on keys under PREFIX.
start_replica() {
  local i=$1 prefix=$2
  shift 2
  BERTH_LOG=info BERTH_LOG_FORMAT=text "$BERTH" run "$@" --store "$store" --store-prefix "$prefix" \
    --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" --agree-tos \
    --upstream "http://127.0.0.1:$up_port" --http-addr "127.0.0.1:${http_port[i]}" \
    --tls-addr "127.0.0.1:${tls_port[i]}" --admin-addr "127.0.0.1:${admin_port[i]}" \
    >>"$work/r$i.log" 2>&1 &
  rpid[i]=$!
}
stop_replicas() {
  local i
  for i in "${!rpid[@]}"; do kill -9 "${rpid[i]}" 2>/dev/null || true; wait "${rpid[i]}" 2>/dev/null || true; done
  rpid=()
}
ready() { curl -fs -o /dev/null "http://127.0.0.1:${admin_port[$1]}/readyz"; }
# wait_ready TIMEOUT I...: until each replica I is ready; fails after TIMEOUT s.
wait_ready() {
  local limit=$1 start i
  shift
  start=$(date +%s)
  for i in "$@"; do
    until ready "$i"; do
      [ $(($(date +%s) - start)) -lt "$limit" ] || { echo "replica $i not ready after $limit s" >&2; tail -5 "$work/r$i.log" >&2; return 1; }
      sleep 0.02
    done
  done
}

# --- failover ------------------------------------------------------------------------------
failovers=()
for r in $(seq 1 "$rounds"); do
  echo "==> failover round $r" >&2
  for i in $(seq 0 $((replicas - 1))); do : >"$work/r$i.log"; start_replica "$i" "fo$r/" -d "fo$r.cluster.test"; done
  holder=""
  for _ in $(seq 1 3000); do
    for i in $(seq 0 $((replicas - 1))); do
      grep -q "placed order" "$work/r$i.log" && { holder=$i; break 2; }
    done
    sleep 0.01
  done
  [ -n "$holder" ] || { echo "nobody ordered" >&2; exit 1; }
  kill -9 "${rpid[holder]}"
  killed=$(date +%s.%N)
  wait "${rpid[holder]}" 2>/dev/null || true
  survivors=()
  for i in $(seq 0 $((replicas - 1))); do [ "$i" = "$holder" ] || survivors+=("$i"); done
  wait_ready 60 "${survivors[@]}"
  failovers+=("$(seconds_since "$killed")")
  echo "    survivors serve ${failovers[-1]} s after the holder was killed" >&2
  stop_replicas
done

# --- propagation ---------------------------------------------------------------------------
echo "==> $certs certificates on $replicas replicas" >&2
config="$work/cluster.toml"
: >"$config"
for c in $(seq 1 "$certs"); do printf '[[certificates]]\ndomains = ["c%d.cluster.test"]\n' "$c" >>"$config"; done
for i in $(seq 0 $((replicas - 1))); do : >"$work/r$i.log"; start_replica "$i" "steady/" --config "$config"; done
wait_ready 120 $(seq 0 $((replicas - 1)))
cat >"$work/propagation.py" <<'PY'
# Handshakes with every replica in turn until each serves a certificate for NAME other than
# the one it served at the start; prints each replica's first-seen time (monotonic s).
import socket, ssl, sys, time
name, cafile, limit, ports = sys.argv[1], sys.argv[2], float(sys.argv[3]), [int(p) for p in sys.argv[4:]]
context = ssl.create_default_context(cafile=cafile)
def serial(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return tls.getpeercert()["serialNumber"]
old = {p: serial(p) for p in ports}
print("start", file=sys.stderr, flush=True)
seen, end = {}, time.monotonic() + limit
while len(seen) < len(ports) and time.monotonic() < end:
    for p in ports:
        if p not in seen and serial(p) != old[p]:
            seen[p] = time.monotonic()
print(" ".join(f"{seen[p]:.4f}" if p in seen else "-" for p in ports))
PY
propagations=()
for r in $(seq 1 "$rounds"); do
  j=$(((r - 1) % replicas))
  python3 "$work/propagation.py" c1.cluster.test "$work/issuing-root.pem" 120 "${tls_port[@]}" \
    >"$work/prop.out" 2>"$work/prop.err" &
  poller=$!
  for _ in $(seq 1 500); do grep -q start "$work/prop.err" && break; sleep 0.01; done
  curl -fsS -X POST -H "X-Berth-Request: 1" "http://127.0.0.1:${admin_port[j]}/api/renew?force=true" >"$work/renew.out" ||
    { echo "forced renewal failed: $(cat "$work/renew.out")" >&2; exit 1; }
  wait "$poller"
  spread=$(awk '{ min = 1e18; max = 0; for (i = 1; i <= NF; i++) { if ($i == "-") { print "-"; exit } if ($i < min) min = $i; if ($i > max) max = $i } printf "%.3f\n", max - min }' "$work/prop.out")
  [ "$spread" != "-" ] || { echo "a replica never served the renewed certificate" >&2; exit 1; }
  propagations+=("$spread")
  echo "    renewed through replica $j: every replica served it within $spread s of the first" >&2
done

# --- store operations at steady state --------------------------------------------------------
echo "==> store operations over $window s at steady state" >&2
sleep 5
redis-cli -p "$redis_port" CONFIG RESETSTAT >/dev/null
sleep "$window"
redis-cli -p "$redis_port" INFO commandstats >"$work/commandstats"
# CONFIG RESETSTAT itself is counted; leave it out.
grep '^cmdstat_' "$work/commandstats" | grep -v '^cmdstat_config' >"$work/commands" || true
calls=$(grep -o 'calls=[0-9]*' "$work/commands" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }')
breakdown=$(awk -F'[_:=,]' '{ printf "%s%s %s", sep, $2, $4; sep = ", " }' "$work/commands")
per_day=$(awk -v c="$calls" -v w="$window" 'BEGIN { printf "%.0f", c * 86400 / w }')
per_cert_day=$(awk -v d="$per_day" -v n="$certs" 'BEGIN { printf "%.0f", d / n }')
echo "    $calls commands in $window s ($breakdown): $per_day a day, $per_cert_day per certificate" >&2

# --- handshakes: Redis replica vs file store -----------------------------------------------------
echo "==> handshakes: replica 0 vs a file store" >&2
mkdir -p "$work/file"
"$BERTH" store migrate --from "$store" --to "$work/file/acme.json" --store-prefix steady/ >"$work/migrate.log" 2>&1 ||
  { cat "$work/migrate.log" >&2; exit 1; }
file_tls=$(port) file_admin=$(port) file_http=$(port)
BERTH_LOG=warn "$BERTH" run --config "$config" --store "$work/file/acme.json" --ca "$PEBBLE_DIRECTORY" \
  --ca-root "$PEBBLE_TLS_ROOT" --agree-tos --upstream "http://127.0.0.1:$up_port" \
  --http-addr "127.0.0.1:$file_http" --tls-addr "127.0.0.1:$file_tls" --admin-addr "127.0.0.1:$file_admin" \
  >"$work/file.log" 2>&1 &
file_pid=$!
pids+=("$file_pid")
for _ in $(seq 1 500); do curl -fs -o /dev/null "http://127.0.0.1:$file_admin/readyz" && break; sleep 0.02; done
taskset -apc 0 "$file_pid" >/dev/null
taskset -apc 0 "${rpid[0]}" >/dev/null
cat >"$work/handshakes.py" <<'PY'
# Full TLS handshakes for random names c<i>.cluster.test, verified, until the time is up.
import random, socket, ssl, sys, time
port, count, cafile, seconds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
context = ssl.create_default_context(cafile=cafile)
ok = failed = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    name = f"c{random.randrange(count) + 1}.cluster.test"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name):
                ok += 1
    except (OSError, ssl.SSLError):
        failed += 1
print(ok, failed)
PY
# hs_rate PORT: full handshakes per second against PORT over HS_DURATION s (failures fail).
hs_rate() {
  local k list=() ok failed
  for k in $(seq 1 "$hs_procs"); do
    taskset -c 1 python3 "$work/handshakes.py" "$1" "$certs" "$work/issuing-root.pem" "$hs_duration" >"$work/hs.$k" &
    list+=($!)
  done
  wait "${list[@]}"
  read -r ok failed < <(cat "$work"/hs.* | awk '{ o += $1; f += $2 } END { print o + 0, f + 0 }')
  rm -f "$work"/hs.*
  [ "$failed" -eq 0 ] || { echo "$failed handshakes failed on port $1" >&2; exit 1; }
  awk -v o="$ok" -v d="$hs_duration" 'BEGIN { printf "%.0f", o / d }'
}
load=$(bench_wait_quiet)
redis_rates=() file_rates=()
for _ in $(seq 1 "$hs_repeats"); do
  redis_rates+=("$(hs_rate "${tls_port[0]}")")
  file_rates+=("$(hs_rate "$file_tls")")
done
redis_hs=$(printf '%s\n' "${redis_rates[@]}" | median)
file_hs=$(printf '%s\n' "${file_rates[@]}" | median)
hs_ratio=$(awk -v a="$redis_hs" -v b="$file_hs" 'BEGIN { printf "%.2f", a / b }')
echo "    replica on Redis $redis_hs/s, file store $file_hs/s (${hs_ratio}x)" >&2
stop_replicas

# --- the section ---------------------------------------------------------------------------
fo_median=$(printf '%s\n' "${failovers[@]}" | median)
prop_median=$(printf '%s\n' "${propagations[@]}" | median)
out="$work/section.md"
{
  echo "## Cluster: replicas sharing a Redis (\`tests/bench/cluster.sh\`)"
  echo
  echo "$(date -u +%Y-%m-%d), $(bench_machine); berth $(bench_berth_revision) (release build), Redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2), Pebble $(bench_pkg_version pebble) (no validation sleep); load average $load before the handshakes."
  echo
  echo "$replicas \`berth run\` replicas on one machine, one Redis; Pebble's HTTP-01 requests reach them round-robin through a TCP forwarder that skips a replica refusing connections."
  echo
  echo "| measure | result | rounds |"
  echo "|---|---|---|"
  echo "| failover: order holder SIGKILLed right after placing its order → every survivor serves | median **${fo_median} s** | $(IFS=,; echo "${failovers[*]}" | sed 's/,/ s, /g') s |"
  echo "| renewal propagation: first replica serving the renewed certificate → the last | median **${prop_median} s** | $(IFS=,; echo "${propagations[*]}" | sed 's/,/ s, /g') s |"
  echo "| store operations at steady state ($certs certificates, $replicas replicas, ${window} s window) | **$per_day a day**, $per_cert_day per certificate per day | $calls commands: $breakdown |"
  echo "| full handshakes/s, replica 0 (Redis) vs a berth on a file store with the same certificates | **${hs_ratio}×** ($redis_hs/s vs $file_hs/s) | $hs_repeats × ${hs_duration} s each, $hs_procs clients |"
  echo
  echo "- *failover*: the lease's TTL is 9 s and survivors look again every 2 s, so most of the time is the dead holder's lease running out; the survivor then resumes the recorded order (no second order)."
  echo "- *propagation*: a poller handshakes with each replica in turn (a few ms per round), so the figure is accurate to a few ms; the renewing replica is usually first, the others learn through Redis pub/sub."
  echo "- *store operations*: at steady state each replica reads the change counter every 2 s (pub/sub can drop messages); nothing else. That cost is per replica, not per certificate: with more certificates the per-certificate figure falls in proportion."
  echo "- *handshakes*: both berths pinned to core 0 with the clients on core 1; a handshake never touches the store, so the ratio should be 1 within noise."
} >"$out"
bench_write_section cluster "$out"
echo "==> wrote the cluster section of ${BENCH_OUT:-BENCHMARKS.md}" >&2
