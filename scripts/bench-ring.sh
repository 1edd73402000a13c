#!/usr/bin/env bash
# Benchmarks gossip bytes per register write at steady state with R = 3
# (benches/ring_gossip/), in virtual time, no server: 8 Engine nodes, gossip
# every 250 ms, anti-entropy every 2 s, 200 writes/s with 100-byte values,
# 60 s warm-up then 120 s measured, once over 2,000 kv: keys and once over
# 10,000 (anti-entropy's cost per write should not grow with the key
# count). Compares, on the same seeded workload, our traffic (every peer
# message, anti-entropy included) with the seed's whole-register gossip to
# replicas and with the lower bound (each write's delta once to each other
# replica), then measures tombstone collection. The runs take about 10 s
# and 25 s on this 2-core machine; the release build (lto) takes a few
# minutes the first time.
# Prints the figures of both runs and writes them to
# bench-results/ring-gossip.txt.
#
# Usage: bash scripts/bench-ring.sh
# Knobs (environment): BENCH_RING_SEED (42), BENCH_RING_SIZES ("2000 10000").
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

out="$(mktemp -t edge-crdt-bench-ring.XXXXXX)"
trap 'rm -f "$out"' EXIT

step "cargo bench --bench ring_gossip --no-run"
cargo bench --bench ring_gossip --no-run

for keys in ${BENCH_RING_SIZES:-2000 10000}; do
    step "cargo bench --bench ring_gossip, $keys keys"
    run="$(mktemp -t edge-crdt-bench-ring-run.XXXXXX)"
    BENCH_RING_KEYS="$keys" cargo bench --bench ring_gossip >"$run"
    grep -q '^ring gossip: ours .* B/write, seed .* lower bound ' "$run" \
        || { rm -f "$run"; echo "bench-ring: no summary line at $keys keys" >&2; exit 1; }
    cat "$run" >>"$out"
    rm -f "$run"
done

mkdir -p bench-results
cp "$out" bench-results/ring-gossip.txt
step "figures (also in bench-results/ring-gossip.txt)"
cat "$out"
