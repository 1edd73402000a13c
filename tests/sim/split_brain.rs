//! A cluster split in two halves that write, and retire, on their own,
//! then heal.

use crate::harness::{config, home, set_key, Cut, Faults, Sim};
use crate::oracle::SetOp;
use edge_crdt::crdt::{Bias, Element};
use edge_crdt::engine::Status;
use edge_crdt::{NodeId, NodeSet};
use std::collections::BTreeSet;

fn halves(sim: &mut Sim) -> (NodeSet, NodeSet) {
    let left: NodeSet = (0..3).map(NodeId).collect();
    let right: NodeSet = (3..6).map(NodeId).collect();
    sim.partition(vec![left.clone(), right.clone()], Cut::Both);
    (left, right)
}

#[test]
fn split_brain_heals() {
    let mut sim = Sim::new(11, config(6), Faults::calm());
    let (left, right) = halves(&mut sim);
    let mut side_totals = [0i64; 2];
    for i in 0..400u32 {
        sim.step(10, false);
        let id = NodeId(i % 6);
        let by = i64::from(i % 7) + 1;
        if sim.increment(id, &home(), by) {
            side_totals[usize::from(id.0 >= 3)] += by;
        }
        if i == 150 {
            // Node 1 retires into node 2 inside the left half.
            assert_eq!(
                sim.engine_mut(NodeId(1)).unwrap().node.begin_retire(),
                Ok(NodeId(2))
            );
            sim.settle_node(NodeId(1));
        }
    }
    sim.run(1_000);
    assert_eq!(
        sim.own_status(NodeId(1)),
        Status::Retired { heir: NodeId(2) }
    );
    // Each half agrees on its own total and knows nothing of the other.
    for (side, ids) in [&left, &right].into_iter().enumerate() {
        for id in ids.iter().filter(|id| sim.own_status(**id).is_live()) {
            assert_eq!(sim.count(*id, &home()), side_totals[side], "{id}");
        }
    }
    assert!(side_totals[0] > 0 && side_totals[1] > 0);
    assert_eq!(sim.counters.total(&home()), side_totals[0] + side_totals[1]);
    // The right half has not heard of the retirement yet.
    let four = sim.engine(NodeId(4)).unwrap();
    assert_eq!(four.node.members().status(NodeId(1)), Some(Status::Active));
    let took = sim.settle(10_000);
    eprintln!("split brain healed in {took} ms");
    for id in right {
        let retired = Some(Status::Retired { heir: NodeId(2) });
        assert_eq!(
            sim.engine(id).unwrap().node.members().status(NodeId(1)),
            retired
        );
        let counter = sim.read_counter(id, &home()).unwrap();
        assert!(!counter.contributions().contains_key(&NodeId(1)), "{id}");
    }
}

#[test]
fn split_brain_sets_settle_on_the_earliest_bias() {
    // The left half creates the set add-wins, the right half remove-wins a
    // little later; each half writes, with equal stamps across the cut and
    // inside the right half. Each half follows its own bias until the
    // halves meet; then the left's earlier creation reaches the right half
    // and flips its tie.
    let mut sim = Sim::new(31, config(6), Faults::calm());
    sim.sync_clocks();
    let (left, right) = halves(&mut sim);
    let key = set_key("split");
    let [x, y, z] = ["x", "y", "z"].map(|s| Element::Str(s.into()));
    let write = |sim: &mut Sim, id: u32, op: SetOp| {
        sim.set_write(NodeId(id), &key, op).expect("acknowledged")
    };

    sim.step(10, false);
    let early = write(&mut sim, 0, SetOp::Create(Bias::AddWins));
    sim.step(10, false);
    let late = write(&mut sim, 3, SetOp::Create(Bias::RemoveWins));
    assert!(early < late);
    sim.step(200, false);
    // One millisecond, two nodes across the cut: an insert and a remove.
    sim.step(10, false);
    let added = write(&mut sim, 1, SetOp::Insert(vec![x.clone()]));
    let removed = write(&mut sim, 4, SetOp::Remove(vec![x.clone()]));
    assert_eq!(added, removed, "one millisecond, one stamp");
    // The same inside the right half.
    sim.step(10, false);
    let added = write(&mut sim, 3, SetOp::Insert(vec![y.clone()]));
    let removed = write(&mut sim, 5, SetOp::Remove(vec![y.clone()]));
    assert_eq!(added, removed);
    // z is decided by time: the left's remove comes after the right's insert.
    sim.step(10, false);
    write(&mut sim, 4, SetOp::Insert(vec![z.clone()]));
    sim.step(10, false);
    write(&mut sim, 2, SetOp::Remove(vec![z.clone()]));
    sim.run(500);

    for id in &left {
        assert_eq!(
            sim.read_set(*id, &key).unwrap().bias(),
            Bias::AddWins,
            "{id}"
        );
        assert_eq!(
            sim.members_at(*id, &key),
            BTreeSet::from([x.clone()]),
            "{id}"
        );
    }
    for id in &right {
        assert_eq!(
            sim.read_set(*id, &key).unwrap().bias(),
            Bias::RemoveWins,
            "{id}"
        );
        // y's tie goes to the remove; x was only removed here.
        assert_eq!(
            sim.members_at(*id, &key),
            BTreeSet::from([z.clone()]),
            "{id}"
        );
    }

    let took = sim.settle(10_000);
    eprintln!("the halves agreed {took} ms after the cut healed");
    for id in sim.ids() {
        assert_eq!(
            sim.read_set(id, &key).unwrap().created(),
            Some((early, Bias::AddWins))
        );
        assert_eq!(
            sim.members_at(id, &key),
            BTreeSet::from([x.clone(), y.clone()]),
            "{id}"
        );
    }
}
