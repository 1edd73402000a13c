//! Membership at scale: nodes added and retired one after another in a
//! cluster of 64, under loss, duplicates and delays, while clients write.

use crate::harness::{config, Faults, Sim};

#[test]
fn adding_and_retiring_one_after_another_at_64_nodes_loses_nothing() {
    let faults = Faults {
        crash: 0,
        partition: 0,
        ..Faults::chaos()
    };
    let mut sim = Sim::new(64, config(64), faults);
    sim.clients.kv_share = 150;
    sim.admin.retry_ms = 300;
    sim.admin.add_at = vec![500, 1_500, 2_500];
    sim.admin.retire_at = vec![3_000, 4_000, 5_000];
    while sim.now < 8_000 || sim.admin.busy() || !sim.admin.add_at.is_empty() {
        assert!(sim.now < 30_000, "the admin is not done: {:?}", sim.admin);
        let dt = sim.rng.range(1, 10);
        sim.step(dt, true);
    }
    // `settle` checks every acknowledged write, at every replica.
    let took = sim.settle(30_000);
    assert_eq!((sim.admin.added.len(), sim.admin.retired.len()), (3, 3));
    assert!(sim.stats.acked >= 300, "{:?}", sim.stats);
    eprintln!(
        "64 nodes, added {:?}, retired {:?}: converged {took} ms after the faults; {:?}",
        sim.admin.added, sim.admin.retired, sim.stats
    );
}
