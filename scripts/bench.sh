#!/usr/bin/env bash
# Benchmarks the local cluster under `wrangler dev` (workerd), about 2-3 minutes:
#   - throughput of POST /api/counters/bench/increment vs the naive baseline
#     POST /bench/naive/increment (wrk, same settings, alternating rounds),
#   - gossip bytes and frames per increment at a steady write rate,
#   - time for every node to read the acknowledged total after a burst,
#   - the Worker bundle's and the browser module's sizes, raw and gzip -9.
# Prints a summary table and writes the same figures to bench-results/latest.json.
#
# Usage: bash scripts/bench.sh
# Knobs (environment): BENCH_WRK_SECONDS (10), BENCH_WARMUP_SECONDS (3),
# BENCH_ROUNDS (2), BENCH_WRK_THREADS (2), BENCH_WRK_CONNECTIONS (16),
# BENCH_GOSSIP_INCREMENTS (2000), BENCH_GOSSIP_RATE (100), BENCH_GOSSIP_LOOPS (16),
# BENCH_CONVERGE_REPEATS (5), BENCH_BURST (200), BENCH_PORT (default: a free port).
#
# The server runs a snapshot of this build: build/ and www/ are copied to a
# temp dir and wrangler gets a copy of wrangler.toml without the [build]
# section, so wrangler neither rebuilds (the build already ran here) nor
# reloads when someone edits src/ or rebuilds during the run. All load goes
# to 127.0.0.1 only.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

for tool in wrk node gzip curl setsid; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done

TMP="$(mktemp -d -t edge-crdt-bench.XXXXXX)"
WRANGLER_PGID=""

stop_wrangler() {
    [ -n "$WRANGLER_PGID" ] || return 0
    if kill -0 -- "-$WRANGLER_PGID" 2>/dev/null; then
        step "stopping wrangler dev (process group $WRANGLER_PGID)"
        kill -TERM -- "-$WRANGLER_PGID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 -- "-$WRANGLER_PGID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$WRANGLER_PGID" 2>/dev/null || true
    fi
    WRANGLER_PGID=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_wrangler
    if [ -f "$TMP/wrangler.log" ]; then
        mkdir -p bench-results
        cp "$TMP/wrangler.log" bench-results/wrangler.log
        [ "$rc" -eq 0 ] || echo "bench: failed (exit $rc); wrangler's log: bench-results/wrangler.log" >&2
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

START=$SECONDS

# ---------------------------------------------------------------- build
bash scripts/build-worker.sh
step "building the browser module (scripts/build-browser.sh)"
bash scripts/build-browser.sh

# Snapshot the build for the server and the dry-run.
cp -R build "$TMP/build"
cp -R www "$TMP/www"
BROWSER_WASM="$TMP/www/pkg/edge_crdt_bg.wasm"
[ -f "$BROWSER_WASM" ] || { echo "bench: $BROWSER_WASM missing after the build" >&2; exit 1; }
CONFIG="$TMP/wrangler.toml"
awk -v tmp="$TMP" '
    /^\[/ { skip = ($0 == "[build]") }
    skip { next }
    /^main *=/ { print "main = \"" tmp "/build/worker/shim.mjs\""; next }
    /^directory *=/ { print "directory = \"" tmp "/www\""; next }
    { print }
' wrangler.toml >"$CONFIG"
grep -q "^main = \"$TMP/" "$CONFIG" && grep -q "^directory = \"$TMP/" "$CONFIG" && ! grep -q '^\[build\]' "$CONFIG" \
    || { echo "bench: could not derive the wrangler config from wrangler.toml:" >&2; cat "$CONFIG" >&2; exit 1; }

# ---------------------------------------------------------------- bundle sizes
step "wrangler deploy --dry-run --outdir (bundle for the size figures)"
WRANGLER_LOG=log wrangler deploy --dry-run -c "$CONFIG" --outdir "$TMP/bundle" >"$TMP/dryrun.log" 2>&1 \
    || { cat "$TMP/dryrun.log" >&2; exit 1; }
grep -E 'Total Upload' "$TMP/dryrun.log" || true

# ---------------------------------------------------------------- server
free_port() {
    node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
PORT="${BENCH_PORT:-$(free_port)}"
INSPECTOR_PORT="$(free_port)"
if ss -Hltn "sport = :$PORT" | grep -q .; then
    echo "bench: port $PORT is already in use" >&2
    exit 1
fi
TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
BASE="http://127.0.0.1:$PORT"

step "starting wrangler dev on $BASE (fresh state in $TMP/state, BENCH_BASELINE=on)"
# setsid: wrangler and workerd get a process group of their own, which the
# trap kills (and nothing else).
setsid wrangler dev -c "$CONFIG" --ip 127.0.0.1 --port "$PORT" \
    --inspector-port "$INSPECTOR_PORT" --persist-to "$TMP/state" \
    --var BENCH_BASELINE:on --var "ADMIN_TOKEN:$TOKEN" \
    --show-interactive-dev-session=false --log-level warn \
    </dev/null >"$TMP/wrangler.log" 2>&1 &
WRANGLER_PGID=$!

deadline=$((SECONDS + 90))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/api/counters/warmup?node=node-0" || true)" = 200 ]; do
    if ! kill -0 "$WRANGLER_PGID" 2>/dev/null; then
        echo "bench: wrangler dev exited:" >&2
        tail -n 40 "$TMP/wrangler.log" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "bench: wrangler dev did not answer within 90 s:" >&2
        tail -n 40 "$TMP/wrangler.log" >&2
        exit 1
    fi
    sleep 0.3
done
echo "[$(date +%H:%M:%S)] answering (pid/pgid $WRANGLER_PGID)"
# The admin route the gossip figures need, and the baseline route.
curl -sf -o /dev/null -H "authorization: Bearer $TOKEN" "$BASE/admin/nodes/node-0" \
    || { echo "bench: GET /admin/nodes/node-0 failed (is the router's admin route built?)" >&2; exit 1; }
curl -sf -o /dev/null -X POST "$BASE/bench/naive/increment" \
    || { echo "bench: POST /bench/naive/increment failed (BENCH_BASELINE not on?)" >&2; exit 1; }

# ---------------------------------------------------------------- measure
status=0
BENCH_BASE="$BASE" BENCH_TOKEN="$TOKEN" BENCH_LUA="$ROOT/scripts/bench-post.lua" \
BENCH_BUNDLE="$TMP/bundle" BENCH_DRYRUN_LOG="$TMP/dryrun.log" \
BENCH_BROWSER_WASM="$BROWSER_WASM" BENCH_CONFIG="$CONFIG" BENCH_SERVER_PGID="$WRANGLER_PGID" \
BENCH_OUT="$ROOT/bench-results/latest.json" \
    node scripts/bench.mjs || status=$?

# Offline, wrangler's update and telemetry look-ups fail; that is noise.
offline='ENOTFOUND (workers\.cloudflare\.com|registry\.npmjs\.org|sparrow\.cloudflare\.com)'
noise=$(grep -cE "$offline" "$TMP/wrangler.log" || true)
if grep -iE 'error|uncaught|panic' "$TMP/wrangler.log" | grep -qvE "$offline"; then
    echo
    echo "wrangler dev logged errors (first 20 lines; full log in bench-results/wrangler.log):"
    grep -iE 'error|uncaught|panic' "$TMP/wrangler.log" | grep -vE "$offline" | head -n 20
fi
[ "$noise" = 0 ] || echo "(wrangler logged $noise failed look-up(s) of Cloudflare/npm hosts: no internet here, harmless)"
echo
echo "[$(date +%H:%M:%S)] bench took $((SECONDS - START)) s"
exit "$status"
