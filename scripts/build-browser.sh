#!/usr/bin/env bash
# The browser replica: wasm-pack builds src/browser (feature `browser`) into
# www/pkg/edge_crdt.js, edge_crdt_bg.wasm and edge_crdt.d.ts, which
# www/app.js imports as an ES module (no bundler).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -f "$ROOT/scripts/env.sh" ]; then
    # Local tool paths (node_modules/.bin, ~/.cargo/bin), so nothing downloads binaries.
    source "$ROOT/scripts/env.sh"
else
    export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
fi
cd "$ROOT"

# A target directory of its own: the Worker build (feature `edge`) writes the
# same target/wasm32-unknown-unknown/release/edge_crdt.wasm, and wasm-pack
# reads that file after cargo returns, so sharing it could mix up the builds.
export CARGO_TARGET_DIR="${BROWSER_TARGET_DIR:-$ROOT/target/browser}"

say() { printf '[build-browser] %s\n' "$*"; }

opt=()
if command -v wasm-opt >/dev/null 2>&1; then
    say "wasm-opt: $(command -v wasm-opt) ($(wasm-opt --version))"
else
    # wasm-pack would otherwise try to download binaryen.
    say "no wasm-opt on PATH (run npm install for binaryen): building without it"
    opt+=(--no-opt)
fi

say "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
# One module per page, so each page loads only its replicas: the counter
# page edge_crdt (feature browser), the address book edge_crdt_contacts
# (feature browser-contacts), the event stream edge_crdt_stream (feature
# browser-stream). wasm-pack passes everything after its own
# options to cargo, so --features comes last.
for module in edge_crdt:browser edge_crdt_contacts:browser-contacts edge_crdt_stream:browser-stream; do
    args=(build --target web --release --out-dir www/pkg --out-name "${module%%:*}" ${opt[@]+"${opt[@]}"} --no-default-features --features "${module##*:}")
    say "wasm-pack ${args[*]}"
    wasm-pack "${args[@]}"
done

# wasm-pack also writes npm packaging files; the page does not use them and
# /www/pkg/ is gitignored at the top level.
for f in package.json README.md .gitignore; do
    if [ -e "www/pkg/$f" ]; then
        say "removing www/pkg/$f"
        rm -f "www/pkg/$f"
    fi
done

say "built:"
ls -l www/pkg/
for wasm in www/pkg/edge_crdt_bg.wasm www/pkg/edge_crdt_contacts_bg.wasm www/pkg/edge_crdt_stream_bg.wasm; do
    say "$wasm: $(wc -c <"$wasm") bytes, $(gzip -9c "$wasm" | wc -c) bytes gzipped"
done
