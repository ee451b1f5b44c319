#!/usr/bin/env bash
# Shared by the benchmarks: build berth once (release), install missing tools, pick free
# loopback ports, describe the machine, and replace one marked section of BENCHMARKS.md.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Builds the release binary once; later runs (and the other benchmark) reuse target/.
bench_build_berth() {
  echo "==> cargo build --release -p berth" >&2
  (cd "$bench_root" && cargo build --release -p berth --locked --quiet)
  BERTH="$bench_root/target/release/berth"
  export BERTH
}

# bench_require CMD:PACKAGE...: installs the Debian packages whose command is missing.
bench_require() {
  local missing=() dep
  for dep in "$@"; do
    local cmd=${dep%%:*} pkg=${dep#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "==> installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# A TCP port on 127.0.0.1 that nothing listens on now (other test runs may hold the
# usual Pebble ports, so the benchmarks never rely on fixed ones).
bench_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# shellcheck source=scripts/pebble-env.sh
source "$bench_root/scripts/pebble-env.sh"

# Makes the run's scratch directory $work (/tmp/berth-bench-NAME.*) with Pebble's
# directory inside and picks Pebble's ports (pebble_start then starts it there), and
# arranges for bench_cleanup at exit: processes the script starts go in $pids.
bench_pebble_workdir() {
  work=$(mktemp -d "/tmp/berth-bench-$1.XXXXXX")
  export PEBBLE_WORKDIR="$work/pebble"
  mkdir -p "$PEBBLE_WORKDIR"
  bench_pebble_ports
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# Stops every process in $pids with its children (nginx workers, wrappers) and Pebble,
# and removes $work.
bench_cleanup() {
  local pid
  for pid in "${pids[@]}"; do bench_kill_tree "$pid"; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pebble_stop || true
  rm -rf "$work"
}

# Kills a process and its descendants.
bench_kill_tree() {
  local child
  for child in $(pgrep -P "$1" || true); do bench_kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

# Exports free PEBBLE_{LISTEN,HTTP,TLS,DNS}_PORT for scripts/pebble-env.sh (which uses
# LISTEN+1 for Pebble's management API and DNS+1 for pebble-challtestsrv's).
bench_pebble_ports() {
  local ports
  ports=$(python3 - <<'PY'
import random, socket
def free(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True
picked = []
while len(picked) < 4:
    p = random.randrange(20000, 60000, 2)
    if free(p) and free(p + 1) and p not in picked:
        picked.append(p)
print(*picked)
PY
)
  read -r PEBBLE_LISTEN_PORT PEBBLE_HTTP_PORT PEBBLE_TLS_PORT PEBBLE_DNS_PORT <<<"$ports"
  export PEBBLE_LISTEN_PORT PEBBLE_HTTP_PORT PEBBLE_TLS_PORT PEBBLE_DNS_PORT
}

# One line describing the machine.
bench_machine() {
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
  echo "$(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
}

# The berth commit measured, with "+local changes" when the tree differs from it.
bench_berth_revision() {
  local rev
  rev=$(git -C "$bench_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if ! git -C "$bench_root" diff --quiet HEAD -- acme-core proxy secrets sidecar Cargo.lock 2>/dev/null; then
    rev="$rev+local changes"
  fi
  echo "$rev"
}

# Debian package version of a tool, or "?".
bench_pkg_version() {
  dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"
}

# Waits (up to 60 s) for the machine to be quiet, so a build or test run of someone else
# does not share the cores with a measurement; prints the 1-minute load average seen.
bench_wait_quiet() {
  local load
  for _ in $(seq 1 60); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$load" 'BEGIN { exit !(l < 0.5) }' && break
    sleep 1
  done
  load=$(cut -d' ' -f1 /proc/loadavg)
  awk -v l="$load" 'BEGIN { exit !(l >= 0.5) }' &&
    echo "warning: load average is $load; other work shares the cores with this benchmark" >&2
  echo "$load"
}

# bench_write_section NAME FILE: replaces the text between
# <!-- NAME:begin --> and <!-- NAME:end --> in BENCHMARKS.md (or the file named by
# BENCH_OUT, to try a script without touching the recorded results) with FILE's content.
bench_write_section() {
  local name=$1 content=$2 out=${BENCH_OUT:-$bench_root/BENCHMARKS.md}
  [ -f "$out" ] || printf '# Benchmarks\n\nMeasured by the scripts in `tests/bench/`; each script rewrites only its own section.\n' >"$out"
  python3 - "$out" "$name" "$content" <<'PY'
import sys
path, name, content = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
text = open(path).read()
block = f"{begin}\n{content.rstrip()}\n{end}"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + block + tail
else:
    text = text.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
}

# Wall-clock seconds of a command (output to the log file $1), millisecond resolution.
bench_time() {
  local log=$1 start end
  shift
  start=$(date +%s.%N)
  "$@" >"$log" 2>&1 || { echo "FAILED: $*; log:" >&2; tail -20 "$log" >&2; return 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}

# bench_with_hosts NAME CMD...: runs CMD with NAME resolving to 127.0.0.1. Clients such
# as wrk take the name they send as SNI from the URL they connect to (sent to 127.0.0.1
# they would put "127.0.0.1" in SNI), so CMD gets a private /etc/hosts in a throwaway
# mount namespace; the machine's file is untouched.
bench_with_hosts() {
  local name=$1 flags=(-m --propagation private)
  shift
  printf '127.0.0.1 %s\n' "$name" >"$work/hosts"
  [ "$(id -u)" -eq 0 ] || flags=(-r "${flags[@]}")
  unshare "${flags[@]}" sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$work/hosts" "$@"
}

# bench_issue_certificate WORK NAME: starts Pebble (scripts/pebble-env.sh, in the
# directory bench_pebble_workdir set up), has berth issue NAME into WORK/acme.json with the
# PEM files exported under WORK/pem, and stops Pebble again: berth then serves the stored
# certificate without asking the CA.
bench_issue_certificate() {
  local work=$1 name=$2
  pebble_start
  echo "==> issuing the certificate for $name" >&2
  "$BERTH" issue -d "$name" --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" --agree-tos \
    --skip-staging --http-addr "127.0.0.1:$PEBBLE_HTTP_PORT" --store "$work/acme.json" \
    --export-dir "$work/pem" --log-format json >"$work/issue.log" 2>&1 ||
    { cat "$work/issue.log" >&2; return 1; }
  pebble_stop
}

# bench_start_upstream DIR PORT CPUS: the benchmarks' app, an nginx on 127.0.0.1:PORT
# (pinned to CPUS) answering every request with the 13-byte "hello, bench\n"; sets
# upstream_pid, adds it to $pids (stopped at exit) and waits until it answers.
bench_start_upstream() {
  local dir=$1 port=$2 cpus=$3
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; location / { return 200 "hello, bench\n"; } }
}
CONF
  taskset -c "$cpus" nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;' &
  upstream_pid=$!
  pids+=("$upstream_pid")
  for _ in $(seq 1 50); do
    curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "upstream did not start" >&2
  return 1
}
