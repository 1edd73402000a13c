#!/usr/bin/env bash
# The event streams, side by side in one run:
#   - catch-up of a replica that missed 1 000 events, on a chain and on a
#     wide DAG: round trips and bytes of the closure backfill against
#     walking one link at a time (benches/stream_catchup.rs, native engines);
#   - under `wrangler dev`: appended events per second, against a naive
#     single object appending every event to one table (POST
#     /bench/naive/push), and the time from an append at one replica to
#     the event on another replica's SSE.
# Prints the figures and writes bench-results/streams.json.
#
# Usage: bash scripts/bench-streams.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$ROOT/scripts/bench-server.sh"
cd "$ROOT"

bench_init bench-streams node curl setsid
step "catch-up of 1 000 missed events (cargo bench --bench stream_catchup)"
cargo bench --bench stream_catchup | tee "$TMP/catchup.txt"
bash scripts/build-worker.sh
bench_snapshot
bench_server_start wrangler-streams.log "/api/streams/warmup/heads?node=node-0" --var BENCH_BASELINE:on
for n in 0 1 2 3; do curl -s -o /dev/null --max-time 10 "$BASE/api/streams/warmup/heads?node=node-$n" || true; done

status=0
BENCH_BASE="$BASE" BENCH_CATCHUP="$TMP/catchup.txt" BENCH_OUT="$ROOT/bench-results/streams.json" \
    node scripts/bench-streams.mjs || status=$?
bench_server_errors
bench_done "$status"
