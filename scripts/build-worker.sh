#!/usr/bin/env bash
# The Worker build (wrangler.toml's [build] command): worker-build with local
# tools, skipped when build/ is newer than every source file and was built
# with the same kinds.
#
# WORKER_KINDS: the optional kinds compiled in, as cargo features (default
# "contacts streams"; empty for counters, sets and key-value registers only).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
kinds="${WORKER_KINDS-contacts streams}"
for kind in $kinds; do
  case "$kind" in
    contacts | streams) ;;
    *) echo "build-worker: unknown kind '$kind' in WORKER_KINDS (known: contacts streams)" >&2; exit 2 ;;
  esac
done
out=build/worker/shim.mjs
stamp=build/kinds
# src/bin holds native tools (the chaos clients), not Worker code.
if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$kinds" ] \
  && [ -z "$(find src Cargo.toml Cargo.lock -path src/bin -prune -o -newer "$out" -print -quit)" ]; then
  step "Worker build is up to date ($out, kinds: ${kinds:-none beyond counters, sets, registers})"
  exit 0
fi
# A build that stops half way must not pass for one with its kinds.
rm -f "$stamp"
step "building the Worker (worker-build --release, features: edge ${kinds}; opt-level z)"
# Smallest code for the Worker only: native release builds (the simulator's
# soak, the benchmarks) keep the release profile's speed.
CARGO_PROFILE_RELEASE_OPT_LEVEL=z RUST_BACKTRACE=0 \
  worker-build --release --no-default-features --features "edge $kinds"
# The module with names stays in target/, for scripts/wasm-sizes.mjs
# (as worker-build left it: before the passes below).
named="${CARGO_TARGET_DIR:-target}/index_bg.named.wasm"
mkdir -p "$(dirname "$named")"
cp build/index_bg.wasm "$named"
# Code the module keeps but can never run: f64's Display, which only
# serde's messages name and serde_json never lets them reach
# (scripts/wasm-snip.mjs checks the module and explains), 8 KiB gzipped.
node scripts/wasm-snip.mjs build/index_bg.wasm
# worker-build ran wasm-opt -Oz once. Its passes again until they stop
# shrinking the module take another 3 KiB off (gzipped), for about twenty
# seconds of build; whole-module flow analysis first (--gufa: constants
# and unreachable code it proves across calls) nearly 1 KiB more, for half
# a minute. The name section (function names for stack traces) is a fifth
# of the gzipped module: it goes. A panic still logs its message and
# location.
step "optimizing again, without the name section (wasm-opt --gufa -Oz --converge --strip-debug)"
"$WASM_OPT_BIN" --gufa -Oz --converge --low-memory-unused --strip-debug build/index_bg.wasm -o build/index_bg.wasm
printf '%s' "$kinds" >"$stamp"
