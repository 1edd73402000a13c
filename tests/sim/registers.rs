//! Registers: what a delete of nothing and a write off the replicas leave.

use crate::harness::{config, kv_key, kv_key_where, Ctx, Faults, Sim};
use edge_crdt::NodeId;

#[test]
fn a_delete_with_an_empty_context_stores_nothing() {
    // A client that read nothing deletes: that deletes nothing, and must not
    // leave a row either (an empty register is no tombstone, so no
    // collection would ever take it away).
    let mut sim = Sim::new(51, config(4), Faults::calm());
    let key = kv_key(0);
    let at = sim.replicas_of(&key)[0];
    assert!(sim.kv_request(at, &key, Ctx::Blind, true));
    sim.run(2_000);
    assert_eq!(sim.rows(&key), vec![], "an empty delete left rows");
}

#[test]
fn a_blind_write_at_a_node_that_handed_the_key_off_keeps_the_earlier_write() {
    // A node that is no replica takes a blind write, hands the key to its
    // replicas and forgets it; a second blind write there must leave the
    // first as a sibling: no client saw it.
    let mut sim = Sim::new(53, config(4), Faults::calm());
    let outsider = NodeId(3);
    let key = kv_key_where(4, |r| !r.contains(&outsider));
    assert!(sim.kv_request(outsider, &key, Ctx::Blind, false));
    sim.run(2_000);
    assert!(
        sim.disk(outsider).tables.row(&key, "").is_none(),
        "handed off"
    );
    assert!(sim.kv_request(outsider, &key, Ctx::Blind, false));
    sim.settle(10_000);
    let first = sim.replicas_of(&key)[0];
    let held = sim.read_register(first, &key).expect("up");
    assert_eq!(held.siblings().count(), 2, "{held:?}");
}
