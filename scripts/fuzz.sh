#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz) longer than `cargo test` does, in an
# optimized build that keeps overflow checks and debug assertions, and
# prints per target the inputs tried, inputs per second and crashes, with
# progress lines meanwhile. Exits non-zero on a crash; the report names
# the target and gives the input in hex and the command that replays it.
#
#   FUZZ_SECONDS  seconds per target (default 20, unless FUZZ_INPUTS is set)
#   FUZZ_INPUTS   inputs per target
#   FUZZ_SEED     the run's seed (default: the time; printed to replay it)
#   FUZZ_TARGET   run only the targets whose names contain this
#   FUZZ_PROGRESS seconds between progress lines (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${FUZZ_INPUTS:-}" ]]; then
  export FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
fi
export FUZZ_SEED="${FUZZ_SEED:-$(date +%s)}"
export FUZZ_PROGRESS="${FUZZ_PROGRESS:-5}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "fuzz: seed $FUZZ_SEED; per target: ${FUZZ_SECONDS:+$FUZZ_SECONDS s}${FUZZ_INPUTS:+ $FUZZ_INPUTS inputs}"
status=0
cargo test --profile fuzz --test fuzz -- --nocapture --test-threads=1 2>&1 | tee "$log" || status=$?

echo
echo "== fuzz summary (seed $FUZZ_SEED)"
grep -E '^fuzz ' "$log" || true
grep -E '^fuzz ' "$log" | awk '{ n++; inputs += $3; crashes += $(NF-1) }
  END { printf "%d targets, %d inputs, %d crashes\n", n, inputs, crashes }'
if [[ $status -ne 0 ]]; then
  echo "fuzz: FAILED (see the CRASH report above)" >&2
fi
exit "$status"
