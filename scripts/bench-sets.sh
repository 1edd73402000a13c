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
# As in scripts/bench.sh, the server runs a snapshot of the build (build/
# and www/ copied to a temp dir, wrangler.toml without its [build]
# section), with wrangler.toml's [vars] (gossip every 250 ms, anti-entropy
# every 2 s), fresh state, and random ADMIN_TOKEN and SYNC_TOKEN. All load
# goes to 127.0.0.1 only.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

SECONDS_OF_LOAD="${BENCH_SETS_SECONDS:-20}"
NORMAL="${BENCH_SETS_NORMAL:-4}"
OFFLINE="${BENCH_SETS_OFFLINE:-2}"
VIEWERS="${BENCH_SETS_VIEWERS:-2}"
BIAS="${BENCH_SETS_BIAS:-remove-wins}"

for tool in node curl setsid; do
    command -v "$tool" >/dev/null || { echo "bench-sets: $tool is not installed" >&2; exit 1; }
done

TMP="$(mktemp -d -t edge-crdt-bench-sets.XXXXXX)"
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
        cp "$TMP/wrangler.log" bench-results/wrangler-sets.log
        [ "$rc" -eq 0 ] || echo "bench-sets: failed (exit $rc); wrangler's log: bench-results/wrangler-sets.log" >&2
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
step "building the chaos clients (cargo build --release --bin monkeys)"
cargo build --release --bin monkeys
MONKEYS="$ROOT/target/release/monkeys"

cp -R build "$TMP/build"
mkdir -p www
cp -R www "$TMP/www"
CONFIG="$TMP/wrangler.toml"
awk -v tmp="$TMP" '
    /^\[/ { skip = ($0 == "[build]") }
    skip { next }
    /^main *=/ { print "main = \"" tmp "/build/worker/shim.mjs\""; next }
    /^directory *=/ { print "directory = \"" tmp "/www\""; next }
    { print }
' wrangler.toml >"$CONFIG"
grep -q "^main = \"$TMP/" "$CONFIG" && grep -q "^directory = \"$TMP/" "$CONFIG" && ! grep -q '^\[build\]' "$CONFIG" \
    || { echo "bench-sets: could not derive the wrangler config from wrangler.toml:" >&2; cat "$CONFIG" >&2; exit 1; }

# ---------------------------------------------------------------- server
free_port() {
    node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
PORT="${BENCH_PORT:-$(free_port)}"
INSPECTOR_PORT="$(free_port)"
if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
    echo "bench-sets: port $PORT is already in use" >&2
    exit 1
fi
token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
ADMIN="$(token)"
SYNC="$(token)"
BASE="http://127.0.0.1:$PORT"

step "starting wrangler dev on $BASE (fresh state in $TMP/state)"
setsid wrangler dev -c "$CONFIG" --ip 127.0.0.1 --port "$PORT" \
    --inspector-port "$INSPECTOR_PORT" --persist-to "$TMP/state" \
    --var "ADMIN_TOKEN:$ADMIN" --var "SYNC_TOKEN:$SYNC" \
    --show-interactive-dev-session=false --log-level warn \
    </dev/null >"$TMP/wrangler.log" 2>&1 &
WRANGLER_PGID=$!

deadline=$((SECONDS + 90))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/api/sets/warmup?node=node-0" || true)" = 200 ]; do
    if ! kill -0 "$WRANGLER_PGID" 2>/dev/null; then
        echo "bench-sets: wrangler dev exited:" >&2
        tail -n 40 "$TMP/wrangler.log" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "bench-sets: wrangler dev did not answer within 90 s:" >&2
        tail -n 40 "$TMP/wrangler.log" >&2
        exit 1
    fi
    sleep 0.3
done
echo "[$(date +%H:%M:%S)] answering (pid/pgid $WRANGLER_PGID)"
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

offline_noise='ENOTFOUND (workers\.cloudflare\.com|registry\.npmjs\.org|sparrow\.cloudflare\.com)'
if grep -iE 'error|uncaught|panic' "$TMP/wrangler.log" | grep -qvE "$offline_noise"; then
    echo
    echo "wrangler dev logged errors (first 20 lines; full log in bench-results/wrangler-sets.log):"
    grep -iE 'error|uncaught|panic' "$TMP/wrangler.log" | grep -vE "$offline_noise" | head -n 20
fi
echo
echo "[$(date +%H:%M:%S)] bench-sets took $((SECONDS - START)) s"
exit "$status"
