#!/usr/bin/env bash
# The address books under `wrangler dev`, side by side in one run:
#   - the bytes a new client downloads for a book of 1 000 contacts and
#     50 000 historical edits, against replaying the whole log;
#   - pushed deltas per second, against a naive single object appending
#     every delta to one log (POST /bench/naive/push, the seed's relay);
#   - the time from a push at one node to the change on another node's SSE.
# Prints the figures and writes bench-results/contacts.json.
#
# Usage: bash scripts/bench-contacts.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$ROOT/scripts/bench-server.sh"
cd "$ROOT"

bench_init bench-contacts node curl setsid
bash scripts/build-worker.sh
bench_snapshot
bench_server_start wrangler-contacts.log "/api/contacts/warmup?node=node-0" --var BENCH_BASELINE:on
for n in 0 1 2 3; do curl -s -o /dev/null --max-time 10 "$BASE/api/contacts/warmup?node=node-$n" || true; done

status=0
BENCH_BASE="$BASE" BENCH_OUT="$ROOT/bench-results/contacts.json" node scripts/bench-contacts.mjs || status=$?
bench_server_errors
bench_done "$status"
