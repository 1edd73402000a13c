//! Adding nodes: a newcomer that missed the news of its own addition.

use crate::harness::{config, home, Faults, Sim};
use edge_crdt::NodeId;

#[test]
fn a_node_that_missed_the_news_of_its_addition_learns_it() {
    // The newcomer is down while every node learns of it and tells it (the
    // messages vanish without an error), then comes back knowing nothing,
    // and the membership changes no more. Anti-entropy must bring it the
    // membership that names it: until then it only listens.
    let faults = Faults {
        report_failures: false,
        ..Faults::calm()
    };
    let mut sim = Sim::new(57, config(4), faults);
    for i in 0..20u32 {
        sim.step(10, false);
        assert!(sim.increment(NodeId(i % 4), &home(), 1));
    }
    sim.admin.add_at = vec![sim.now];
    sim.step(1, false);
    let newcomer = NodeId(4);
    assert_eq!(sim.admin.added, vec![newcomer]);
    sim.crash(newcomer, u64::MAX);
    sim.run(2_000);
    let took = sim.settle(10_000);
    eprintln!("the newcomer learnt it was added {took} ms after it came back");
}
