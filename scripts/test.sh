#!/usr/bin/env bash
# Every test: lints, native tests (unit, property, simulator), wasm tests in
# headless Chromium, end-to-end tests, the chaos clients and the page test
# on `wrangler dev`.
# Installs what is missing first (scripts/setup.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() { "$@" 2>&1 | tee -a "$log"; }

bash scripts/setup.sh

step "lint: rustfmt"
cargo fmt --all -- --check
step "lint: clippy, native"
cargo clippy --all-targets --features contacts-cli -- -D warnings
step "lint: clippy, wasm32 with feature edge"
cargo clippy --target wasm32-unknown-unknown --features edge -- -D warnings
step "lint: clippy, wasm32 with feature edge and only counters, sets and registers (WORKER_KINDS=)"
cargo clippy --target wasm32-unknown-unknown --no-default-features --features edge -- -D warnings
step "lint: clippy, wasm32 with the browser features"
cargo clippy --target wasm32-unknown-unknown --features "browser-contacts browser-stream" --all-targets -- -D warnings

step "native tests: unit, doc, property laws, cluster simulator"
run cargo test

step "wasm tests in headless Chromium (wasm-pack test)"
CARGO_TARGET_DIR="$ROOT/target/browser" run wasm-pack test --headless --chrome --features "browser-contacts browser-stream"

step "build: Worker and browser module"
bash scripts/build-worker.sh
bash scripts/build-browser.sh
step "build: the chaos clients and the address-book client (target/release/monkeys and contacts, run by tests/e2e/)"
cargo build --release --bin monkeys
cargo build --release --features contacts-cli --bin contacts

step "end to end on wrangler dev, and the page in headless Chromium"
run node --test --test-concurrency=1 --test-reporter=spec tests/e2e/

sum() { grep -hoE "$1" "$log" | grep -oE '[0-9]+' | awk '{ s += $1 } END { print s + 0 }'; }
echo
echo "all: $(sum 'test result: ok\. [0-9]+ passed|^ℹ pass [0-9]+') passed, $(sum '[0-9]+ failed|^ℹ fail [0-9]+') failed"
