#!/usr/bin/env bash
# The Worker build (wrangler.toml's [build] command): worker-build with local tools.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
step "building the Worker (worker-build --release)"
RUST_BACKTRACE=0 worker-build --release --features edge
