#!/usr/bin/env bash
# The Worker build (wrangler.toml's [build] command): worker-build with local
# tools, skipped when build/ is newer than every source file.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
out=build/worker/shim.mjs
# src/bin holds native tools (the chaos clients), not Worker code.
if [ -f "$out" ] && [ -z "$(find src Cargo.toml Cargo.lock -path src/bin -prune -o -newer "$out" -print -quit)" ]; then
  step "Worker build is up to date ($out)"
  exit 0
fi
step "building the Worker (worker-build --release --features edge)"
RUST_BACKTRACE=0 worker-build --release --features edge
