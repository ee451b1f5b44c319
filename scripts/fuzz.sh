#!/usr/bin/env bash
# The long mode of berth's parser fuzz tests (issue 17; SECURITY.md has the figures).
#
# Every property of every parser that reads outside input tries FUZZ_CASES inputs
# (default 1,000,000), structured valid ones and mutated bytes of them, in an optimised
# build that keeps overflow checks and debug assertions (cargo profile `fuzz`, in
# target/fuzz). `cargo test` runs the same properties with a few hundred inputs each.
#
#   scripts/fuzz.sh                 # 1,000,000 inputs per property, every parser
#   scripts/fuzz.sh 20000           # a quicker pass
#   scripts/fuzz.sh 1000000 TSIG    # only the parsers whose name holds this text
#
# Prints one line per parser: inputs per property, tests run (its properties, plus any
# regression test the filter also matches), seconds. Exits non-zero at the first
# property that fails; proptest prints the smallest failing input.
set -euo pipefail
cd "$(dirname "$0")/.."

export FUZZ_CASES="${1:-${FUZZ_CASES:-1000000}}"
only="${2:-}"
threads="${FUZZ_THREADS:-2}"

# parser name | cargo package and target | test name filter | properties
parsers=(
  "domain names and IP identifiers|-p berth-acme-core --lib|fuzz::domain_|2"
  "domain name text (valid names)|-p berth-acme-core --lib|fuzz::valid_names|1"
  "acme.json (Traefik v1/v2/v3, store and import)|-p berth-acme-core --lib|fuzz::acme_json|3"
  "state file (formats 1, 2, newer)|-p berth-acme-core --lib|fuzz::state_file|1"
  "TSIG key files|-p berth-acme-core --lib|fuzz::tsig|2"
  "DNS hook stderr|-p berth-acme-core --lib|fuzz::hook_stderr|2"
  "secret files|-p berth-secrets --test fuzz_secrets|secret_file|2"
  "route specs and upstream URLs|-p berth-proxy --test fuzz_routes|_|3"
  "config file (berth run --config)|-p berth-config --test fuzz_config|_|2"
)

echo "building (profile fuzz): only the test binaries holding fuzz properties..."
for target in "-p berth-acme-core --lib" "-p berth-secrets --test fuzz_secrets" \
  "-p berth-proxy --test fuzz_routes" "-p berth-config --test fuzz_config"; do
  # shellcheck disable=SC2086 # target holds several words on purpose
  cargo test --profile fuzz --locked --no-run -q $target
done

echo "FUZZ_CASES=$FUZZ_CASES, $threads test threads"
printf '%-50s %12s %6s %9s\n' parser inputs/prop tests seconds
for entry in "${parsers[@]}"; do
  IFS='|' read -r name target filter props <<<"$entry"
  if [[ -n "$only" && "$name" != *"$only"* ]]; then
    continue
  fi
  start=$(date +%s)
  # shellcheck disable=SC2086 # target holds several words on purpose
  if ! out=$(cargo test --profile fuzz --locked -q $target -- "$filter" --test-threads "$threads" 2>&1); then
    echo "$out"
    echo "FAILED: $name"
    exit 1
  fi
  passed=$(grep -o '[0-9]* passed' <<<"$out" | awk '{s += $1} END {print s + 0}')
  if [[ "$passed" -lt "$props" ]]; then
    echo "$out"
    echo "FAILED: $name ran $passed properties, expected $props"
    exit 1
  fi
  printf '%-50s %12s %6s %9s\n' "$name" "$FUZZ_CASES" "$passed" "$(($(date +%s) - start))"
done
