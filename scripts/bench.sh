#!/usr/bin/env bash
# Benchmarks the local cluster under `wrangler dev` (workerd), about 3-4 minutes:
#   - throughput of POST /api/counters/bench/increment vs the naive baseline
#     POST /bench/naive/increment (wrk, same settings, alternating rounds),
#   - gossip bytes and frames per increment at a steady write rate,
#   - time for every node to read the acknowledged total after a burst,
#   - the Worker bundle's sizes, raw and gzip -9, with every kind and with
#     counters, sets and registers only, and the browser module's.
# Prints a summary table and writes the same figures to bench-results/latest.json.
#
# Usage: bash scripts/bench.sh
# Knobs (environment): BENCH_WRK_SECONDS (10), BENCH_WARMUP_SECONDS (3),
# BENCH_ROUNDS (4), BENCH_WRK_THREADS (2), BENCH_WRK_CONNECTIONS (16),
# BENCH_GOSSIP_INCREMENTS (2000), BENCH_GOSSIP_RATE (100), BENCH_GOSSIP_LOOPS (16),
# BENCH_CONVERGE_REPEATS (5), BENCH_BURST (200), BENCH_PORT (default: a free port).
#
# The server (scripts/bench-server.sh) runs a snapshot of this build with
# BENCH_BASELINE=on. All load goes to 127.0.0.1 only.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$ROOT/scripts/bench-server.sh"
cd "$ROOT"

bench_init bench wrk node gzip curl setsid

# ---------------------------------------------------------------- build
# The Worker with the kinds of issue 10's baseline (counters, sets and
# registers: WORKER_KINDS empty), then the default build with every kind.
step "wrangler deploy --dry-run, counters, sets and registers only (WORKER_KINDS=)"
WORKER_KINDS= WRANGLER_LOG=log wrangler deploy --dry-run --outdir "$TMP/bundle-core" >"$TMP/dryrun-core.log" 2>&1 \
    || { cat "$TMP/dryrun-core.log" >&2; exit 1; }
grep -E 'Total Upload' "$TMP/dryrun-core.log" || true
bash scripts/build-worker.sh
step "building the browser module (scripts/build-browser.sh)"
bash scripts/build-browser.sh

# Snapshot the build for the server and the dry-run.
bench_snapshot
BROWSER_WASM="$TMP/www/pkg/edge_crdt_bg.wasm"
[ -f "$BROWSER_WASM" ] || { echo "bench: $BROWSER_WASM missing after the build" >&2; exit 1; }

# ---------------------------------------------------------------- bundle sizes
step "wrangler deploy --dry-run --outdir (bundle for the size figures)"
WRANGLER_LOG=log wrangler deploy --dry-run -c "$CONFIG" --outdir "$TMP/bundle" >"$TMP/dryrun.log" 2>&1 \
    || { cat "$TMP/dryrun.log" >&2; exit 1; }
grep -E 'Total Upload' "$TMP/dryrun.log" || true

# ---------------------------------------------------------------- server
bench_server_start wrangler.log "/api/counters/warmup?node=node-0" --var BENCH_BASELINE:on
# The admin route the gossip figures need, and the baseline route.
curl -sf -o /dev/null -H "authorization: Bearer $ADMIN" "$BASE/admin/nodes/node-0" \
    || { echo "bench: GET /admin/nodes/node-0 failed (is the router's admin route built?)" >&2; exit 1; }
curl -sf -o /dev/null -X POST "$BASE/bench/naive/increment" \
    || { echo "bench: POST /bench/naive/increment failed (BENCH_BASELINE not on?)" >&2; exit 1; }

# ---------------------------------------------------------------- measure
status=0
BENCH_BASE="$BASE" BENCH_TOKEN="$ADMIN" BENCH_LUA="$ROOT/scripts/bench-post.lua" \
BENCH_BUNDLE="$TMP/bundle" BENCH_DRYRUN_LOG="$TMP/dryrun.log" \
BENCH_BUNDLE_CORE="$TMP/bundle-core" BENCH_DRYRUN_CORE_LOG="$TMP/dryrun-core.log" \
BENCH_BROWSER_WASM="$BROWSER_WASM" BENCH_CONFIG="$CONFIG" BENCH_SERVER_PGID="$WRANGLER_PGID" \
BENCH_OUT="$ROOT/bench-results/latest.json" \
    node scripts/bench.mjs || status=$?

bench_server_errors
noise=$(grep -cE "$BENCH_OFFLINE_NOISE" "$TMP/wrangler.log" || true)
[ "$noise" = 0 ] || echo "(wrangler logged $noise failed look-up(s) of Cloudflare/npm hosts: no internet here, harmless)"
bench_done "$status"
