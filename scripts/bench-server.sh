# Sourced by scripts/bench*.sh (after env.sh): runs wrangler's dev server
# on a snapshot of the build (build/ and www/ copied to a temp dir,
# wrangler.toml without its [build] section, so wrangler neither rebuilds
# nor reloads during the run), on 127.0.0.1, with fresh state, in a process
# group of its own that the exit trap kills (and nothing else). The server
# runs without the DevTools inspector (scripts/bench-dev.mjs), for every
# route alike, baselines included; BENCH_INSPECTOR=on runs `wrangler dev`
# itself, inspector and all, as before.

# bench_init <name> <tool>...: checks the tools, makes $TMP, sets the traps.
# <name> prefixes the messages.
bench_init() {
    BENCH_NAME="$1"
    shift
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$BENCH_NAME: $tool is not installed" >&2; exit 1; }
    done
    TMP="$(mktemp -d -t "edge-crdt-$BENCH_NAME.XXXXXX")"
    WRANGLER_PGID=""
    BENCH_SERVER_LOG=""
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    START=$SECONDS
}

bench_server_stop() {
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

# Exit trap: stops the server, keeps its log in bench-results/, removes $TMP.
bench_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    bench_server_stop
    if [ -f "$TMP/wrangler.log" ]; then
        mkdir -p bench-results
        cp "$TMP/wrangler.log" "bench-results/$BENCH_SERVER_LOG"
        [ "$rc" -eq 0 ] || echo "$BENCH_NAME: failed (exit $rc); wrangler's log: bench-results/$BENCH_SERVER_LOG" >&2
    fi
    rm -rf "$TMP"
    exit "$rc"
}

# Copies build/ and www/ to $TMP and writes $CONFIG for them.
bench_snapshot() {
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
        || { echo "$BENCH_NAME: could not derive the wrangler config from wrangler.toml:" >&2; cat "$CONFIG" >&2; exit 1; }
}

free_port() {
    node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

bench_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# bench_server_wait <path>: until $BASE<path> answers 200 (90 s at most).
bench_server_wait() {
    local deadline=$((SECONDS + 90))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE$1" || true)" = 200 ]; do
        if ! kill -0 "$WRANGLER_PGID" 2>/dev/null; then
            echo "$BENCH_NAME: wrangler dev exited:" >&2
            tail -n 40 "$TMP/wrangler.log" >&2
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "$BENCH_NAME: wrangler dev did not answer within 90 s:" >&2
            tail -n 40 "$TMP/wrangler.log" >&2
            exit 1
        fi
        sleep 0.3
    done
}

# bench_server_start <log-name> <ready-path> [--var KEY:VALUE...]: starts
# the server with a random ADMIN_TOKEN and waits until <ready-path> answers
# 200. Sets PORT, BASE, ADMIN (the token) and WRANGLER_PGID; the exit trap
# keeps the log as bench-results/<log-name>.
bench_server_start() {
    BENCH_SERVER_LOG="$1"
    local ready="$2" inspector_port note="" arg
    shift 2
    PORT="${BENCH_PORT:-$(free_port)}"
    inspector_port="$(free_port)"
    if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
        echo "$BENCH_NAME: port $PORT is already in use" >&2
        exit 1
    fi
    ADMIN="$(bench_token)"
    BASE="http://127.0.0.1:$PORT"
    # The message names the extra --var values, except tokens.
    for arg in "$@"; do
        case "$arg" in *_TOKEN:*) ;; [A-Z]*:*) note+=", ${arg/:/=}" ;; esac
    done
    # The load comes from one address: no per-client write limit.
    if [ "${BENCH_INSPECTOR:-off}" = on ]; then
        step "starting wrangler dev on $BASE (fresh state in $TMP/state$note, WRITE_RATE_LIMIT=off, with the inspector)"
        setsid wrangler dev -c "$CONFIG" --ip 127.0.0.1 --port "$PORT" \
            --inspector-port "$inspector_port" --persist-to "$TMP/state" \
            --var "ADMIN_TOKEN:$ADMIN" --var WRITE_RATE_LIMIT:off "$@" \
            --show-interactive-dev-session=false --log-level warn \
            </dev/null >"$TMP/wrangler.log" 2>&1 &
    else
        # wrangler's dev server without the DevTools inspector, for every
        # route alike (scripts/bench-dev.mjs says why).
        step "starting wrangler's dev server on $BASE (fresh state in $TMP/state$note, WRITE_RATE_LIMIT=off, no inspector: BENCH_INSPECTOR=on for wrangler dev's)"
        setsid node "$ROOT/scripts/bench-dev.mjs" -c "$CONFIG" --ip 127.0.0.1 --port "$PORT" \
            --persist-to "$TMP/state" \
            --var "ADMIN_TOKEN:$ADMIN" --var WRITE_RATE_LIMIT:off "$@" \
            --log-level warn \
            </dev/null >"$TMP/wrangler.log" 2>&1 &
    fi
    WRANGLER_PGID=$!
    bench_server_wait "$ready"
    echo "[$(date +%H:%M:%S)] answering (pid/pgid $WRANGLER_PGID)"
}

# Offline, wrangler's update and telemetry look-ups fail; that is noise.
BENCH_OFFLINE_NOISE='ENOTFOUND (workers\.cloudflare\.com|registry\.npmjs\.org|sparrow\.cloudflare\.com)'

# Prints the errors wrangler logged, if any, other than that noise.
bench_server_errors() {
    if grep -iE 'error|uncaught|panic' "$TMP/wrangler.log" | grep -qvE "$BENCH_OFFLINE_NOISE"; then
        echo
        echo "wrangler dev logged errors (first 20 lines; full log in bench-results/$BENCH_SERVER_LOG):"
        grep -iE 'error|uncaught|panic' "$TMP/wrangler.log" | grep -vE "$BENCH_OFFLINE_NOISE" | head -n 20
    fi
}

# bench_done <status>: prints the run's duration and exits with <status>.
bench_done() {
    echo
    echo "[$(date +%H:%M:%S)] $BENCH_NAME took $((SECONDS - START)) s"
    exit "$1"
}
