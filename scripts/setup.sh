#!/usr/bin/env bash
# Installs what the project needs, skipping whatever is already there at the
# right version. Only package registries are used (crates.io, npm, PyPI,
# Debian).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

WORKER_BUILD_VERSION=0.8.7
WASM_PACK_VERSION=0.15.1
BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)

need_cargo_tool() { # binary, wanted version
  local have
  have=$("$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)
  [ "$have" != "$2" ]
}

step "rust target wasm32-unknown-unknown"
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "present"
else
  rustup target add wasm32-unknown-unknown
fi

for spec in "wasm-bindgen wasm-bindgen-cli $BINDGEN_VERSION" \
            "worker-build worker-build $WORKER_BUILD_VERSION" \
            "wasm-pack wasm-pack $WASM_PACK_VERSION"; do
  set -- $spec
  step "cargo tool $2 $3"
  if need_cargo_tool "$1" "$3"; then
    echo "installing $2 $3 from crates.io (several minutes on 2 cores; cargo prints each crate)"
    # --locked fails for wasm-bindgen-cli: one locked dependency is not on the registry.
    cargo install "$2" --version "=$3" --force
  else
    echo "present"
  fi
done

step "npm packages from package-lock.json"
if [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json node_modules/.package-lock.json 2>/dev/null \
   || { [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; }; then
  echo "present"
else
  npm ci --no-audit --no-fund
fi

step "apt packages chromium, chromium-driver, wrk, sqlite3"
missing=()
for pkg in chromium chromium-driver wrk sqlite3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# A python3 without ensurepip (Debian's own) makes venvs with python3-venv.
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -eq 0 ]; then
  echo "present"
else
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

# The contract test's schemathesis, from PyPI at the versions pinned in
# tests/contract/requirements.txt, in its own venv; reinstalled when the
# pins change.
CONTRACT_VENV=.venv
CONTRACT_PINS=tests/contract/requirements.txt
ST_VERSION=$(sed -n 's/^schemathesis==//p' "$CONTRACT_PINS")
step "python: schemathesis $ST_VERSION in $CONTRACT_VENV (from $CONTRACT_PINS)"
if [ "$("$CONTRACT_VENV/bin/st" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+')" = "$ST_VERSION" ] \
   && cmp -s "$CONTRACT_PINS" "$CONTRACT_VENV/pins.txt"; then
  echo "present"
else
  echo "installing from PyPI (about a minute)"
  rm -rf "$CONTRACT_VENV"
  python3 -m venv "$CONTRACT_VENV"
  "$CONTRACT_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$CONTRACT_PINS"
  cp "$CONTRACT_PINS" "$CONTRACT_VENV/pins.txt"
fi

for secret in ADMIN_TOKEN SYNC_TOKEN WRITE_TOKEN; do
  step "$secret in .dev.vars"
  if [ -f .dev.vars ] && grep -q "^$secret=" .dev.vars; then
    echo "present"
  else
    echo "$secret=\"$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')\"" >> .dev.vars
    echo "written (a random token; wrangler dev reads it as a secret)"
  fi
done
