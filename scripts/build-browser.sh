#!/usr/bin/env bash
# The browser replicas as an npm package, @edge-crdt/browser:
# - wasm-pack builds src/browser into three modules in target/wasm-pack/
#   (each its .js, _bg.wasm and .d.ts);
# - scripts/browser-package.mjs assembles them into the package, pkg/
#   (package.json with subpath exports, npm/README.md);
# - npm pack packs pkg/ into target/pkg/edge-crdt-browser-<version>.tgz;
# - the tarball is unpacked into www/pkg/, the copy of the package that the
#   pages import by name through their import maps (no bundler).
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
# wasm-pack's output (gitignored, like pkg/ and www/pkg/).
wasm_pack_out=target/wasm-pack
packed=target/pkg

# One module per page, so each page loads only its replicas: the counter
# page edge_crdt (feature browser), the address book edge_crdt_contacts
# (feature browser-contacts), the event stream edge_crdt_stream (feature
# browser-stream). wasm-pack passes everything after its own
# options to cargo, so --features comes last.
modules=(edge_crdt:browser edge_crdt_contacts:browser-contacts edge_crdt_stream:browser-stream)
# cargo recompiles the crate for each module (its features differ from the
# last build's), so wasm-pack is skipped when its output is newer than
# every source file and this script. src/bin holds native tools only.
stamp="$wasm_pack_out/.built"
if [ -f "$stamp" ] && [ -z "$(find src Cargo.toml Cargo.lock scripts/build-browser.sh -path src/bin -prune -o -newer "$stamp" -print -quit)" ]; then
    say "wasm-pack output is up to date ($wasm_pack_out)"
else
    rm -f "$stamp"
    for module in "${modules[@]}"; do
        args=(build --target web --release --out-dir "$wasm_pack_out" --out-name "${module%%:*}" ${opt[@]+"${opt[@]}"} --no-default-features --features "${module##*:}")
        say "wasm-pack ${args[*]}"
        wasm-pack "${args[@]}"
    done
    touch "$stamp"
fi

say "assembling the package in pkg/ (scripts/browser-package.mjs)"
node scripts/browser-package.mjs "$wasm_pack_out" pkg

say "npm pack pkg/ into $packed/"
rm -rf "$packed"
mkdir -p "$packed"
# --json: the tarball's name on stdout, without npm's notices.
tarball="$packed/$(npm pack ./pkg --pack-destination "$packed" --json --no-update-notifier | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8"))[0].filename)')"
[ -f "$tarball" ] || { echo "build-browser: npm pack wrote no $tarball" >&2; exit 1; }

say "unpacking $tarball into www/pkg/ (the pages' copy of the package)"
rm -rf www/pkg
mkdir -p www/pkg
tar -xzf "$tarball" -C www/pkg --strip-components=1

say "the package $(node -p 'const p = require("./www/pkg/package.json"); `${p.name}@${p.version}`'): $tarball, $(wc -c <"$tarball") bytes"
total=0
total_gz=0
say "$(printf '%9s %9s  %s' bytes 'gzip -9' file)"
for file in $(cd www/pkg && find . -type f | sed 's|^\./||' | sort); do
    raw=$(wc -c <"www/pkg/$file")
    gz=$(gzip -9c "www/pkg/$file" | wc -c)
    total=$((total + raw))
    total_gz=$((total_gz + gz))
    say "$(printf '%9d %9d  %s' "$raw" "$gz" "$file")"
done
say "$(printf '%9d %9d  %s' "$total" "$total_gz" 'in all')"
# What a page loads: its module's .js and .wasm.
for module in "${modules[@]%%:*}"; do
    js_gz=$(gzip -9c "www/pkg/$module.js" | wc -c)
    wasm_gz=$(gzip -9c "www/pkg/${module}_bg.wasm" | wc -c)
    say "$module: a page loads $((js_gz + wasm_gz)) bytes gzip -9 ($module.js $js_gz + ${module}_bg.wasm $wasm_gz)"
done
