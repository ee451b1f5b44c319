#!/usr/bin/env bash
# Shared by the benchmarks: build berth once (release), machine description, and
# replacing one marked section of BENCHMARKS.md.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Builds the release binary once; later runs reuse target/.
bench_build_berth() {
  (cd "$bench_root" && cargo build --release -p berth --locked --quiet)
  BERTH="$bench_root/target/release/berth"
  export BERTH
}

# Installs the Debian packages a benchmark needs, when missing.
bench_require() {
  local missing=()
  local dep
  for dep in "$@"; do
    local cmd=${dep%%:*} pkg=${dep#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

# One line describing the machine.
bench_machine() {
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
  echo "$(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
}

# bench_write_section NAME FILE: replaces the text between
# <!-- NAME:begin --> and <!-- NAME:end --> in BENCHMARKS.md with FILE's content.
bench_write_section() {
  local name=$1 content=$2 out="$bench_root/BENCHMARKS.md"
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

# Wall-clock seconds of a command, with nanosecond resolution.
bench_time() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; return 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
