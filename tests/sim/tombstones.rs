//! Tombstone collection: while clients write, and each way a collected
//! register could come back (a late copy, a failed send put back, a delta
//! buffered across a cut, a node still handing the key off) or never be
//! collected (a collector that restarts, a node that does not answer).

use crate::harness::{
    config, kv_key, placement, register_runs, ring_replicas, Ctx, Faults, Packet, Sim, Workload,
};
use edge_crdt::crdt::MvRegister;
use edge_crdt::engine::{Membership, Message, ObjectId, Partition, Status};
use edge_crdt::{NodeId, NodeSet};

#[test]
fn tombstones_are_collected_while_clients_write() {
    // Every node stays up and reachable, so collection runs during the
    // writes: stale contexts, late and duplicated messages and a resize
    // meet collected keys, and the oracle still finds every write.
    let workload = Workload {
        nodes: Some(8),
        set_share: 0,
        kv_share: 1000,
        resizes: Some((1, 1)),
        retry_ms: 0,
        steady: true,
    };
    let total = register_runs("collection", workload);
    if std::env::var("SIM_SEED").is_err() {
        assert!(
            total.collected_while_writing >= 200,
            "too few tombstones collected while clients wrote: {total:?}"
        );
    }
}

/// Every replica of `key` holds its tombstone: no value, a context.
fn assert_tombstones(sim: &Sim, key: &ObjectId) {
    for r in sim.replicas_of(key) {
        let held = sim.disk(r).tables.row(key, "");
        let reg: Option<MvRegister> = held.map(|s| postcard::from_bytes(s).unwrap());
        let tombstone = reg
            .as_ref()
            .is_some_and(|r| r.is_empty() && !r.context().is_empty());
        assert!(tombstone, "{r} holds no tombstone: {reg:?}");
    }
}

/// Runs until no node holds a row of `key`: its tombstone collected.
fn run_until_collected(sim: &mut Sim, key: &ObjectId) {
    let start = sim.now;
    while !sim.rows(key).is_empty() {
        assert!(
            sim.now - start < 20_000,
            "{key} not collected: {:?}",
            sim.rows(key)
        );
        sim.step(10, false);
    }
}

/// A gossip message carrying `state` of `key`.
fn gossip(key: &ObjectId, state: &MvRegister) -> Message {
    let rows = vec![(
        key.clone(),
        vec![(String::new(), postcard::to_allocvec(state).unwrap())],
    )];
    Message::Gossip {
        members: None,
        rows,
        want: Vec::new(),
    }
}

/// Node `a` writes `key`; `b` (another replica) deletes what it then
/// reads; returns the state `a` gossiped first.
fn written_then_deleted(sim: &mut Sim, key: &ObjectId, a: NodeId, b: NodeId) -> MvRegister {
    assert!(sim.kv_request(a, key, Ctx::Blind, false));
    let old = sim.read_register(a, key).expect("written");
    sim.run(500);
    assert!(sim.kv_request(b, key, Ctx::Given(old.context().clone()), true));
    sim.run(500);
    old
}

#[test]
fn a_write_after_a_collected_delete_never_reuses_a_dot() {
    // Replica a writes v1 and v2; a client reads after v1 only; everything
    // is deleted and the tombstone collected. The old client writes through
    // b with what it read, which names a's first dot and so tells a part of
    // its own dots back to a, which holds no row; then a writes blind: no
    // write may take the dot v2 had (every dot is checked new).
    let mut sim = Sim::new(54, config(4), Faults::calm());
    let key = kv_key(0);
    let replicas = sim.replicas_of(&key);
    let (a, b) = (replicas[0], replicas[1]);
    assert!(sim.kv_request(a, &key, Ctx::Blind, false));
    sim.run(500);
    let saw_v1 = sim.context_at(a, &key);
    assert!(sim.kv_request(a, &key, Ctx::Read, false));
    sim.run(500);
    assert!(sim.kv_request(a, &key, Ctx::Read, true));
    sim.run(500);
    assert_tombstones(&sim, &key);
    run_until_collected(&mut sim, &key);
    assert!(sim.kv_request(b, &key, Ctx::Given(saw_v1), false));
    sim.run(500);
    assert!(sim.kv_request(a, &key, Ctx::Blind, false));
    sim.settle(10_000);
}

#[test]
fn a_late_copy_of_a_deleted_register_does_not_bring_it_back() {
    // The network delivers a copy of a gossip message after the value it
    // carries was deleted everywhere, as late as a frame is accepted: the
    // tombstone shadows it, and is collected all the same. A copy due one
    // millisecond later (delivered at the next step) is refused as stale.
    let mut sim = Sim::new(55, config(4), Faults::calm());
    sim.sync_clocks();
    let key = kv_key(0);
    let replicas = sim.replicas_of(&key);
    let (a, b) = (replicas[0], replicas[1]);
    assert!(sim.kv_request(a, &key, Ctx::Blind, false));
    sim.run(500);
    let old = sim.read_register(a, &key).expect("written");
    assert!(sim.kv_request(a, &key, Ctx::Read, true));
    sim.run(500);
    assert_tombstones(&sim, &key);
    let stale = sim.stats.stale;
    let oldest = sim.config.max_frame_age();
    let late = Packet::new(a, b, sim.wall(a), gossip(&key, &old));
    sim.net.insert(sim.now + oldest, late.clone());
    sim.net.insert(sim.now + oldest + 1, late);
    run_until_collected(&mut sim, &key);
    assert_eq!(sim.stats.stale, stale + 1, "one copy was refused as stale");
    // The oracle: the deleted value must not be live again.
    sim.settle(10_000);
    assert_eq!(sim.rows(&key), Vec::new());
}

#[test]
fn a_send_that_fails_after_the_collection_is_not_sent_again() {
    // A gossip call of a's, carrying the old value, fails only after every
    // node agreed and the tombstone was collected (a call can hang that
    // long): a must not buffer it again, or b would get the value back.
    let mut sim = Sim::new(60, config(4), Faults::calm());
    let key = kv_key(0);
    let replicas = sim.replicas_of(&key);
    let (a, b) = (replicas[1], replicas[2]);
    let old = written_then_deleted(&mut sim, &key, a, b);
    run_until_collected(&mut sim, &key);
    let failed = Packet::new(a, b, sim.wall(a), gossip(&key, &old));
    sim.report_failure(failed);
    sim.settle(10_000);
    assert_eq!(sim.rows(&key), Vec::new());
}

#[test]
fn a_delta_buffered_across_a_one_sided_cut_does_not_outlive_the_collection() {
    // a cannot reach b (only a's side is cut), so its write's delta waits
    // in its buffer for b; every node, a included, reaches the collector.
    // When a agrees the key is a tombstone, the buffered delta must go:
    // sent after the collection, it would bring the value back at b.
    let mut sim = Sim::new(61, config(4), Faults::calm());
    let key = kv_key(0);
    let replicas = sim.replicas_of(&key);
    let (a, b) = (replicas[1], replicas[2]);
    let others: NodeSet = sim.ids().into_iter().filter(|n| *n != b).collect();
    sim.set_partition_on(a, Partition::new(vec![others]));
    written_then_deleted(&mut sim, &key, a, b);
    // The collector's Forget reaches b, and reaches a only after a's cut
    // heals and it has flushed its buffers.
    let mut held = Vec::new();
    let forget_to_a = |p: &Packet| p.to == a && matches!(p.message(), Message::Forget { .. });
    let start = sim.now;
    while sim.disk(b).tables.row(&key, "").is_some() {
        assert!(sim.now - start < 20_000, "b never collected {key}");
        sim.step(1, false);
        held.extend(sim.net.take(forget_to_a));
    }
    sim.set_partition_on(a, Partition::default());
    for _ in 0..300 {
        sim.step(1, false);
        held.extend(sim.net.take(forget_to_a));
    }
    assert!(!held.is_empty(), "a Forget to a was held back");
    for p in held {
        sim.net.insert(sim.now + 1, p);
    }
    sim.settle(10_000);
    assert_eq!(sim.rows(&key), Vec::new());
}

#[test]
fn a_node_still_handing_a_key_off_holds_its_collection_back() {
    // x drains while it cannot reach y (only x's side is cut), the key's
    // new replica, so x keeps the key's old value in a leaf it is handing
    // off. The key is deleted; x is no replica and hears nothing of it. It
    // must not agree to the collection: once the cut heals, its transfer
    // would bring the old value to replicas that collected the tombstone.
    let mut sim = Sim::new(62, config(4), Faults::calm());
    let x = NodeId(3);
    let initial = Membership::initial(4);
    let mut drained = initial.clone();
    drained.set(x, Status::Draining { heir: NodeId(0) });
    let (now, then) = (placement(), placement());
    let moves = |k: &ObjectId| {
        let (before, after) = (
            ring_replicas(&now, k, &initial),
            ring_replicas(&then, k, &drained),
        );
        before.contains(&x) && before.contains(&after[0])
    };
    let key = (0..).map(kv_key).find(moves).expect("some key");
    let after = ring_replicas(&then, &key, &drained);
    let before = sim.replicas_of(&key);
    let y = *after
        .iter()
        .find(|n| !before.contains(n))
        .expect("a new replica");
    let collector = after[0];
    assert!(sim.kv_request(x, &key, Ctx::Blind, false));
    sim.run(500);
    let others: NodeSet = sim.ids().into_iter().filter(|n| *n != y).collect();
    sim.set_partition_on(x, Partition::new(vec![others]));
    sim.admin.current = Some((x, sim.now));
    sim.run(500);
    assert!(sim.kv_request(collector, &key, Ctx::Read, true));
    sim.run(15_000);
    assert!(
        sim.disk(x).tables.row(&key, "").is_some(),
        "x still holds the old value"
    );
    let rows = sim.rows(&key);
    assert!(
        !rows.iter().all(|(n, _)| *n == x),
        "collected while x still hands the key off: {rows:?}"
    );
    sim.set_partition_on(x, Partition::default());
    sim.settle(20_000);
    assert_eq!(sim.rows(&key), Vec::new());
}

#[test]
fn a_collector_that_restarts_finds_its_tombstones_again() {
    // The first replica holds tombstones, restarts (it loads rows lazily,
    // so it knows them only from its leaves' counts) and collects them.
    let mut sim = Sim::new(58, config(4), Faults::calm());
    // More tombstone leaves per collector than it loads at once.
    let keys: Vec<ObjectId> = (0..40).map(kv_key).collect();
    for key in &keys {
        let first = sim.replicas_of(key)[0];
        assert!(sim.kv_request(first, key, Ctx::Blind, false));
    }
    sim.run(500);
    for key in &keys {
        let first = sim.replicas_of(key)[0];
        assert!(sim.kv_request(first, key, Ctx::Read, true));
    }
    sim.run(300);
    for id in sim.ids() {
        sim.crash(id, 0);
        sim.restart(id);
    }
    for key in &keys {
        assert_tombstones(&sim, key);
    }
    for key in &keys {
        run_until_collected(&mut sim, key);
    }
    sim.settle(10_000);
}

#[test]
fn a_node_that_does_not_answer_holds_collection_back() {
    // While one node is down, nobody collects: it could hold the old value.
    let mut sim = Sim::new(59, config(4), Faults::calm());
    let key = kv_key(0);
    let first = sim.replicas_of(&key)[0];
    assert!(sim.kv_request(first, &key, Ctx::Blind, false));
    sim.run(500);
    assert!(sim.kv_request(first, &key, Ctx::Read, true));
    sim.run(300);
    let down = *sim
        .ids()
        .iter()
        .find(|id| **id != first)
        .expect("another node");
    sim.crash(down, u64::MAX);
    sim.run(15_000);
    assert!(
        !sim.rows(&key).is_empty(),
        "collected while {down} was down"
    );
    sim.restart(down);
    run_until_collected(&mut sim, &key);
    sim.settle(10_000);
}
