//! Crashes and restarts: a node that was down a long time catches up, and
//! a restarted node stamps its writes after what it stored.

use crate::harness::{blog, config, home, kv_key, set_key, Ctx, Faults, Sim};
use crate::oracle::SetOp;
use edge_crdt::crdt::Element;
use edge_crdt::NodeId;
use std::collections::BTreeSet;

/// Calm network; node 3 is down a long time while the others write.
/// `flush_first`: node 3's last write leaves its gossip buffer before the
/// crash (else the buffered delta dies with it).
fn long_crash(faults: Faults, flush_first: bool, seed: u64) -> (Sim, u64) {
    let mut sim = Sim::new(seed, config(4), faults);
    let three = NodeId(3);
    for i in 0..40u32 {
        sim.step(10, false);
        assert!(sim.increment(NodeId(i % 4), &home(), 1 + i64::from(i)));
    }
    sim.step(100, false);
    assert!(sim.increment(three, &home(), 1_000));
    if flush_first {
        sim.step(60, false);
    }
    sim.crash(three, u64::MAX);
    for i in 0..300u32 {
        sim.step(20, false);
        assert!(
            !sim.increment(three, &home(), 5),
            "a crashed node acknowledges nothing"
        );
        let key = if i % 2 == 0 { home() } else { blog() };
        assert!(sim.increment(NodeId(i % 3), &key, 3));
    }
    sim.run(200);
    assert_eq!(
        sim.count(three, &blog()),
        0,
        "node 3 saw nothing while down"
    );
    if !flush_first {
        assert_eq!(sim.count(NodeId(0), &home()), sim.count(NodeId(1), &home()));
        let expected = sim.counters.total(&home());
        assert_eq!(
            sim.count(NodeId(0), &home()) + 1_000,
            expected,
            "node 3's last write is only on its disk"
        );
    }
    sim.restart(three);
    let start = sim.now;
    while let Err(why) = sim.converged(true) {
        assert!(sim.now - start < 10_000, "node 3 did not catch up: {why}");
        sim.step(10, false);
    }
    let took = sim.now - start;
    (sim, took)
}

#[test]
fn crashed_node_catches_up_by_rebuffered_sends() {
    // No anti-entropy at all: the failed sends that were put back into the
    // senders' buffers must carry everything.
    let faults = Faults {
        block_anti_entropy: true,
        ..Faults::calm()
    };
    let (sim, took) = long_crash(faults, true, 7);
    assert!(
        sim.stats.failed > 100,
        "sends to the crashed node failed: {:?}",
        sim.stats
    );
    eprintln!(
        "caught up by re-buffered sends in {took} ms; {:?}",
        sim.stats
    );
}

#[test]
fn crashed_node_catches_up_by_anti_entropy() {
    // Messages to the crashed node vanish without a failure report, and the
    // write node 3 made just before crashing never left its buffer: only
    // anti-entropy can repair both directions.
    let faults = Faults {
        report_failures: false,
        ..Faults::calm()
    };
    let (sim, took) = long_crash(faults, false, 8);
    assert_eq!(sim.stats.failed, 0);
    eprintln!("caught up by anti-entropy in {took} ms; {:?}", sim.stats);
}

#[test]
fn a_restarted_node_stamps_writes_after_the_stamps_it_stored() {
    // Node 1's clock runs 5 s ahead (or a browser replica pushed stamps
    // within the allowed drift). Node 0 stores its adds of x and y, so its
    // clock moves past them. Node 2, which never restarted, removes y: the
    // remove wins. Node 0 crashes and restarts, and a client removes x
    // there, after seeing x: the node acknowledges the remove, and must
    // stamp it after the add it restored, not from its wall clock alone.
    let mut sim = Sim::new(41, config(3), Faults::calm());
    sim.sync_clocks();
    sim.slots.get_mut(&NodeId(1)).expect("node 1").skew = 5_000;
    let key = set_key("clock");
    let [x, y] = ["x", "y"].map(|s| Element::Str(s.into()));
    sim.set_write(NodeId(1), &key, SetOp::Insert(vec![x.clone(), y.clone()]))
        .expect("acknowledged");
    sim.run(200);
    let both = BTreeSet::from([x.clone(), y.clone()]);
    assert_eq!(sim.members_at(NodeId(0), &key), both);
    sim.set_write(NodeId(2), &key, SetOp::Remove(vec![y.clone()]))
        .expect("acknowledged");
    sim.crash(NodeId(0), 0);
    sim.restart(NodeId(0));
    assert_eq!(sim.members_at(NodeId(0), &key), both, "restored from disk");
    sim.set_write(NodeId(0), &key, SetOp::Remove(vec![x.clone()]))
        .expect("acknowledged");
    assert_eq!(
        sim.stats.stale_after_restart, 0,
        "node 0 stamped a write before a stamp it had stored"
    );
    assert!(
        !sim.members_at(NodeId(0), &key).contains(&x),
        "an acknowledged remove of a present element has no effect"
    );
}

#[test]
fn every_node_killed_at_once_loses_no_acknowledged_register() {
    // Every node crashes in the same instant (kill -9 of the one process
    // holding them all): whatever sat in gossip buffers is gone, and only
    // anti-entropy can bring each acknowledged write to all its replicas.
    let mut sim = Sim::new(11, config(4), Faults::calm());
    for i in 0..40u64 {
        assert!(sim.kv_request(NodeId((i % 4) as u32), &kv_key(i), Ctx::Blind, false));
    }
    for id in sim.ids() {
        sim.crash(id, u64::MAX);
    }
    let lost = sim.net.take(|_| true).len();
    assert!(lost > 0, "gossip was in flight when the process died");
    for id in sim.ids() {
        sim.restart(id);
    }
    let start = sim.now;
    while let Err(why) = sim.converged(true) {
        assert!(
            sim.now - start < 30_000,
            "not repaired after the crash: {why}"
        );
        sim.step(10, false);
    }
}
