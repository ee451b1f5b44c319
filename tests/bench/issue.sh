#!/usr/bin/env bash
# Issuance speed: berth vs lego vs certbot against one local Pebble (PEBBLE_VA_NOSLEEP=1),
# one certificate per run with a fresh name each time and the account reused (each tool
# registers once in a warm-up run), then berth issuing 50 distinct certificates
# concurrently (`berth run` with 50 [[certificates]], until /readyz). Writes the
# "issue" section of BENCHMARKS.md. Everything on 127.0.0.1; bounded by RUNS.
#
# Env: RUNS (default 5).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
source "$here/lib.sh"
cd "$bench_root"
runs=${RUNS:-5}

bench_require pebble:pebble lego:lego certbot:certbot curl:curl
bench_build_berth

work=$(mktemp -d /tmp/berth-bench-issue.XXXXXX)
export PEBBLE_WORKDIR="$work/pebble"
mkdir -p "$PEBBLE_WORKDIR"
# shellcheck source=scripts/pebble-env.sh
source scripts/pebble-env.sh
sidecar_pid=""
cleanup() {
  [ -n "$sidecar_pid" ] && kill "$sidecar_pid" 2>/dev/null
  pebble_stop
  rm -rf "$work"
}
trap cleanup EXIT
pebble_start
addr="127.0.0.1:$PEBBLE_HTTP_PORT"

berth_issue() {
  "$BERTH" issue -d "$1" --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" --agree-tos \
    --email bench@example.test --skip-staging --http-addr "$addr" --store "$work/berth/acme.json"
}
lego_issue() {
  LEGO_CA_CERTIFICATES="$PEBBLE_TLS_ROOT" lego --server "$PEBBLE_DIRECTORY" --accept-tos \
    --email bench@example.test --path "$work/lego" --domains "$1" --http --http.port "$addr" run
}
certbot_issue() {
  REQUESTS_CA_BUNDLE="$PEBBLE_TLS_ROOT" certbot certonly --standalone --non-interactive \
    --agree-tos -m bench@example.test --server "$PEBBLE_DIRECTORY" \
    --http-01-address 127.0.0.1 --http-01-port "$PEBBLE_HTTP_PORT" \
    --config-dir "$work/certbot/config" --work-dir "$work/certbot/work" \
    --logs-dir "$work/certbot/logs" -d "$1"
}

mkdir -p "$work/berth"
declare -A times
for tool in berth lego certbot; do
  echo "==> $tool: warm-up (account registration)" >&2
  "${tool}_issue" "warmup.$tool.example.test" >"$work/$tool-warmup.log" 2>&1 || {
    echo "$tool failed its warm-up run:" >&2
    cat "$work/$tool-warmup.log" >&2
    exit 1
  }
  list=""
  for i in $(seq 1 "$runs"); do
    t=$(bench_time "${tool}_issue" "run$i.$tool.example.test")
    list="$list $t"
    echo "    $tool run $i: ${t}s" >&2
  done
  times[$tool]=$list
done

stats() { # mean and min of the numbers given
  printf '%s\n' "$@" | awk '{ s += $1; if (min == "" || $1 < min) min = $1 } END { printf "%.3f %.3f\n", s / NR, min }'
}
read -r berth_mean berth_min < <(stats ${times[berth]})
read -r lego_mean lego_min < <(stats ${times[lego]})
read -r certbot_mean certbot_min < <(stats ${times[certbot]})

echo "==> berth: 50 certificates at once through berth run" >&2
config="$work/fifty.toml"
upstream_port=$((PEBBLE_HTTP_PORT + 100))
{
  echo "upstream = \"http://127.0.0.1:$upstream_port\""
  for i in $(seq 1 50); do
    printf '[[certificates]]\ndomains = ["c%02d.fifty.example.test"]\n' "$i"
  done
} >"$config"
admin_port=$((PEBBLE_HTTP_PORT + 101))
start=$(date +%s.%N)
BERTH_LOG=warn "$BERTH" run --config "$config" --ca "$PEBBLE_DIRECTORY" --ca-root "$PEBBLE_TLS_ROOT" \
  --agree-tos --skip-staging --store "$work/fifty/acme.json" --http-addr "$addr" \
  --tls-addr "127.0.0.1:$((PEBBLE_HTTP_PORT + 102))" --admin-addr "127.0.0.1:$admin_port" \
  >"$work/fifty.log" 2>&1 &
sidecar_pid=$!
mkdir -p "$work/fifty"
fifty=""
for _ in $(seq 1 1200); do
  if curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1; then
    end=$(date +%s.%N)
    fifty=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    break
  fi
  sleep 0.05
done
kill "$sidecar_pid" 2>/dev/null || true
wait "$sidecar_pid" 2>/dev/null || true
sidecar_pid=""
[ -n "$fifty" ] || { echo "berth run did not get 50 certificates within 60 s" >&2; tail -20 "$work/fifty.log" >&2; exit 1; }

ratio=$(awk -v b="$berth_mean" -v l="$lego_mean" 'BEGIN { printf "%.2f", b / l }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 0.5) ? "met" : "missed" }')
out="$work/section.md"
cat >"$out" <<EOF
## Issuing certificates (\`tests/bench/issue.sh\`)

$(date -u +%Y-%m-%d), $(bench_machine). One Pebble ($(dpkg-query -W -f='${Version}' pebble 2>/dev/null || echo '?'), \`PEBBLE_VA_NOSLEEP=1\`, default 5 % bad-nonce injection
left on), HTTP-01 on 127.0.0.1. Each tool registers its account in a warm-up run, then
issues $runs certificates for fresh names one after another (wall time per process, start to
exit, certificate on disk). berth: release build, \`berth issue --skip-staging\`;
lego $(lego --version | awk '{print $3}') (Debian); certbot $(certbot --version 2>&1 | awk '{print $2}') (Debian, standalone).

| tool | mean (s) | best (s) | vs lego |
|---|---|---|---|
| berth | $berth_mean | $berth_min | $(awk -v b="$berth_mean" -v l="$lego_mean" 'BEGIN { printf "%.2f×", b / l }') |
| lego | $lego_mean | $lego_min | 1.00× |
| certbot | $certbot_mean | $certbot_min | $(awk -v b="$certbot_mean" -v l="$lego_mean" 'BEGIN { printf "%.2f×", b / l }') |

Target: berth at most half of lego's wall time for one certificate — **$verdict** ($ratio×).
lego's slow runs are its fixed wait between authorization polls; its best run matches
berth's, so the mean is what differs. berth polls with the CA's Retry-After and a short
first interval.

50 distinct certificates with one \`berth run\` (50 \`[[certificates]]\`, 4 orders in flight,
one account), from process start to \`/readyz\` answering 200: **${fifty} s**.

Rerun: \`tests/bench/issue.sh\` (\`RUNS=10\` for more runs).
EOF
bench_write_section issue "$out"
cat "$out"
