#!/usr/bin/env bash
# The simulator's scale figures (tests/sim/scale.rs, `scale_figures`): the
# chaos workload on clusters of N nodes, with convergence percentiles,
# frames (subrequests) per invocation and bytes per write, as a Markdown
# table on stdout and JSON in target/sim-scale.json.
#
#   bash scripts/sim-scale.sh                                  # N = 8 32 128, 100 seeds
#   SIM_SCALE_NODES=128 SIM_SCALE_SEEDS=20 bash scripts/sim-scale.sh   # a soak
#
# Knobs: SIM_SCALE_NODES (default "8 32 128"), SIM_SCALE_SEEDS (default
# 100), SIM_SEED (a seed or a range a..b, instead of SIM_SCALE_SEEDS),
# SIM_SCALE_LIMIT_MS (how long convergence may take, default 30000),
# SIM_SCALE_MIX (chaos; counters or registers: one kind only),
# SIM_SCALE_OUT (the JSON file), SIM_SCALE_FULL_CHECKS=1 (every check
# after every step, slower).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

export SIM_SCALE_NODES="${SIM_SCALE_NODES:-8 32 128}"
export SIM_SCALE_SEEDS="${SIM_SCALE_SEEDS:-100}"
export SIM_SCALE_OUT="${SIM_SCALE_OUT:-$ROOT/target/sim-scale.json}"

step "build: the simulator, release"
cargo test --release --test simulator --no-run

step "simulate: N = $SIM_SCALE_NODES, ${SIM_SEED:-$SIM_SCALE_SEEDS seeds}"
cargo test --release --test simulator scale_figures -- --ignored --nocapture --test-threads=1

step "figures written to $SIM_SCALE_OUT"
