#!/usr/bin/env bash
# Benchmarks gossip bytes per register write at steady state with R = 3
# (benches/ring_gossip.rs), in virtual time, no server: 8 nodes, gossip every
# 250 ms, anti-entropy every 2 s, 200 writes/s over 2,000 kv: keys with
# 100-byte values, 60 s warm-up then 120 s measured. Compares, on the same
# seeded workload, our traffic (every peer message, anti-entropy included)
# with the seed's whole-register gossip to replicas and with the lower bound
# (each write's delta once to each other replica). The run itself takes a
# second or two; the release build (lto) takes longer the first time.
# Prints the figures and writes them to bench-results/ring-gossip.txt.
#
# Usage: bash scripts/bench-ring.sh
# Knobs (environment): BENCH_RING_SEED (42).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

out="$(mktemp -t edge-crdt-bench-ring.XXXXXX)"
trap 'rm -f "$out"' EXIT

step "cargo bench --bench ring_gossip"
cargo bench --bench ring_gossip >"$out"

mkdir -p bench-results
cp "$out" bench-results/ring-gossip.txt
step "figures (also in bench-results/ring-gossip.txt)"
cat "$out"
grep -q '^ring gossip: ours .* B/write, seed .* lower bound ' "$out" \
    || { echo "bench-ring: no summary line in the output" >&2; exit 1; }
