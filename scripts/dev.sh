#!/usr/bin/env bash
# The main job: install what is missing, build, and run the local cluster
# with the live counter page at http://localhost:8787/ (PORT to change it).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build-browser.sh
step "wrangler dev: 4 node Durable Objects, state kept in .wrangler/state"
exec wrangler dev --port "${PORT:-8787}" --ip 127.0.0.1 --persist-to .wrangler/state "$@"
