//! Chaos: counters, sets and registers under every fault while the
//! cluster is resized, over many seeds.

use crate::harness::{chaos_run, register_runs, seeds, Convergence, SetSummary, Workload};

#[test]
fn chaos_converges_to_the_acknowledged_totals() {
    // Counters and sets, and a few registers.
    let workload = Workload {
        nodes: None,
        set_share: 300,
        kv_share: 150,
        resizes: None,
        retry_ms: 300,
        steady: false,
    };
    let mut convergence = Convergence::default();
    for seed in seeds() {
        eprintln!("simulating seed {seed} (replay with SIM_SEED={seed})");
        convergence.add(chaos_run(seed, workload).took);
    }
    convergence.report("chaos");
}

#[test]
fn chaos_sets_on_eight_nodes_converge_to_the_oracle() {
    // Mostly set writes, on 8 nodes, with every fault of the counter run.
    let workload = Workload {
        nodes: Some(8),
        set_share: 750,
        kv_share: 0,
        resizes: None,
        retry_ms: 300,
        steady: false,
    };
    let mut total = SetSummary::default();
    let mut convergence = Convergence::default();
    for seed in seeds() {
        eprintln!("simulating sets, seed {seed} (replay with SIM_SEED={seed})");
        let run = chaos_run(seed, workload);
        total.add(&run.sets);
        convergence.add(run.took);
    }
    eprintln!("sets over all seeds: {total:?}");
    convergence.report("sets");
    if std::env::var("SIM_SEED").is_err() {
        // The default seeds must exercise what the oracle is there for.
        assert!(total.equal_pairs >= 20, "too few equal stamps: {total:?}");
        assert!(total.ties >= 5, "too few ties at the end: {total:?}");
        assert!(
            total.remove_wins >= 5,
            "too few remove-wins sets: {total:?}"
        );
    }
}

#[test]
fn chaos_registers_on_a_resizing_ring_keep_every_acknowledged_write() {
    // R=3 on 8 nodes, grown to 10 and shrunk to 6 during the faults; most
    // writes go to registers, the others to counters and sets.
    let workload = Workload {
        nodes: Some(8),
        set_share: 300,
        kv_share: 700,
        resizes: Some((2, 4)),
        retry_ms: 0,
        steady: false,
    };
    let total = register_runs("registers", workload);
    if std::env::var("SIM_SEED").is_err() {
        // The default seeds must exercise what the oracle is there for.
        assert!(total.writes >= 2_000, "too few register writes: {total:?}");
        assert!(
            total.end.superseded >= 200,
            "too few superseded writes: {total:?}"
        );
        assert!(
            total.end.deleted >= 20,
            "too few registers deleted to the end: {total:?}"
        );
        assert!(
            total.off_replica >= 10,
            "too few writes off the replicas: {total:?}"
        );
        assert!(total.transfers >= 100, "too few transfers: {total:?}");
    }
}
