#!/usr/bin/env bash
# Benchmarks the LWW element set under the chaos clients (src/bin/monkeys.rs)
# against a fresh `wrangler dev`, about a minute: acknowledged operations
# per second of random writers and offline-then-online replicas with
# viewers watching, and the time for every node to agree once the load
# stops; the run also checks every node and viewer against the oracle of
# acknowledged operations. Prints the figures and writes them to
# bench-results/sets.json.
#
# Usage: bash scripts/bench-sets.sh
# Knobs (environment): BENCH_SETS_SECONDS (20), BENCH_SETS_NORMAL (4),
# BENCH_SETS_OFFLINE (2), BENCH_SETS_VIEWERS (2), BENCH_SETS_BIAS (remove-wins),
# BENCH_SETS_SEED (default: the clock), BENCH_PORT (default: a free port).
#
# The server (scripts/bench-server.sh) runs a snapshot of the build with
# wrangler.toml's [vars] (gossip every 250 ms, anti-entropy every 2 s) and
# random ADMIN_TOKEN and SYNC_TOKEN. All load goes to 127.0.0.1 only.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$ROOT/scripts/bench-server.sh"
cd "$ROOT"

SECONDS_OF_LOAD="${BENCH_SETS_SECONDS:-20}"
NORMAL="${BENCH_SETS_NORMAL:-4}"
OFFLINE="${BENCH_SETS_OFFLINE:-2}"
VIEWERS="${BENCH_SETS_VIEWERS:-2}"
BIAS="${BENCH_SETS_BIAS:-remove-wins}"

bench_init bench-sets node curl setsid

# ---------------------------------------------------------------- build
bash scripts/build-worker.sh
step "building the chaos clients (cargo build --release --bin monkeys)"
cargo build --release --bin monkeys
MONKEYS="$ROOT/target/release/monkeys"
bench_snapshot

# ---------------------------------------------------------------- server
SYNC="$(bench_token)"
bench_server_start wrangler-sets.log "/api/sets/warmup?node=node-0" --var "SYNC_TOKEN:$SYNC"
# Wake every node before the clock starts.
for n in 0 1 2 3; do curl -s -o /dev/null --max-time 10 "$BASE/api/sets/warmup?node=node-$n" || true; done

# ---------------------------------------------------------------- measure
step "monkeys: $NORMAL normal, $OFFLINE offline-online, $VIEWERS viewers for $SECONDS_OF_LOAD s"
args=(--url "$BASE" --normal "$NORMAL" --offline-online "$OFFLINE" --viewer "$VIEWERS"
      --seconds "$SECONDS_OF_LOAD" --bias "$BIAS")
[ -z "${BENCH_SETS_SEED:-}" ] || args+=(--seed "$BENCH_SETS_SEED")
status=0
SYNC_TOKEN="$SYNC" "$MONKEYS" "${args[@]}" | tee "$TMP/monkeys.log" || status=$?

summary="$(grep '^summary: ' "$TMP/monkeys.log" | tail -n 1 || true)"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${summary#summary: }"; }
if [ -n "$summary" ]; then
    mkdir -p bench-results
    {
        echo "{"
        echo "  \"when\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
        echo "  \"seconds\": $SECONDS_OF_LOAD, \"normal\": $NORMAL, \"offline_online\": $OFFLINE, \"viewers\": $VIEWERS, \"bias\": \"$BIAS\","
        echo "  \"seed\": $(sed -n 's/^monkeys: seed \([0-9]*\).*/\1/p' "$TMP/monkeys.log"),"
        echo "  \"acked\": $(field acked), \"acked_per_s\": $(field ops_per_s),"
        echo "  \"normal_writes\": $(field normal), \"offline_changes\": $(field offline), \"syncs\": $(field syncs),"
        echo "  \"errors\": $(field errors), \"uncertain\": $(field uncertain),"
        echo "  \"converged\": \"$(field converged)\", \"converge_ms\": $(field converge_ms),"
        echo "  \"viewers_ok\": \"$(field viewers_ok)\", \"mismatches\": $(field mismatches),"
        echo "  \"exit\": $status"
        echo "}"
    } >bench-results/sets.json
    echo
    echo "| figure | value |"
    echo "|---|---|"
    echo "| chaos clients: acknowledged ops/s ($NORMAL random writers, $OFFLINE offline-online replicas, $VIEWERS viewers, ${SECONDS_OF_LOAD} s) | $(field ops_per_s) ($(field normal) writes + $(field offline) offline changes in $(field syncs) syncs; $(field errors) errors) |"
    echo "| time for all nodes to agree after the chaos load stops | $(field converge_ms) ms (converged: $(field converged); viewers holding the set: $(field viewers_ok); mismatches: $(field mismatches)) |"
    echo "(written to bench-results/sets.json)"
else
    echo "bench-sets: the monkeys printed no summary" >&2
    [ "$status" -ne 0 ] || status=1
fi

bench_server_errors
bench_done "$status"
