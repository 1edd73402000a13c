//! A partition set or lifted one node at a time, as the admin route does
//! (it asks the nodes one after another): a node still cut off refuses a
//! frame from across its partition, and the sender keeps what the frame
//! carried in its buffer, as for a connection that failed, instead of
//! counting it delivered. So the rows gossip held for the other side
//! cross when the last of the two heals, without waiting for
//! anti-entropy (here, never due within the test).

use crate::harness::{id, Cluster};
use crate::kinds;
use edge_crdt::crdt::PnCounter;
use edge_crdt::engine::{Config, Partition};
use edge_crdt::kinds::counter::{self, Counter};
use edge_crdt::{NodeId, NodeSet};

fn set_partition(c: &mut Cluster, at: NodeId, p: &Partition) {
    c.with(at, |e, _| e.node.set_partition(p.clone()));
}

fn value_at(c: &Cluster, at: NodeId, object: &edge_crdt::engine::ObjectId) -> Option<i64> {
    c.stored::<PnCounter>(at, object, "").map(|s| s.value())
}

#[test]
fn gossip_refused_across_a_partition_waits_at_its_sender_until_both_sides_heal() {
    let config = Config {
        initial_nodes: 2,
        // Anti-entropy never runs again within the test: only gossip can
        // bring the write across.
        anti_entropy_interval_ms: 3_600_000,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let (a, b) = (NodeId(0), NodeId(1));
    let hits = id("counter", "hits");
    c.pass(1_000);
    let cut = Partition::new(vec![NodeSet::from_iter([a]), NodeSet::from_iter([b])]);
    set_partition(&mut c, a, &cut);
    set_partition(&mut c, b, &cut);

    // Written while the two are cut apart: it waits in a's buffer for b.
    c.call::<Counter>(a, &hits, counter::Op::Increment { by: 5 })
        .expect("a takes the write");
    c.pass(1_000);
    assert_eq!(value_at(&c, b, &hits), None, "the partition holds");

    // The heal reaches a first: a sends its buffer, and b, still cut
    // off, refuses it (for a few gossip intervals: a tries again each).
    set_partition(&mut c, a, &Partition::default());
    c.reset_tally();
    c.pass(1_000);
    assert!(c.tally.of("gossip") >= 1, "a sent: {:?}", c.tally.messages);
    assert_eq!(
        value_at(&c, b, &hits),
        None,
        "b refuses what crosses its partition"
    );

    // Then b heals: the next flush of a's buffer brings the write.
    set_partition(&mut c, b, &Partition::default());
    c.pass(1_000);
    assert_eq!(
        value_at(&c, b, &hits),
        Some(5),
        "the write a sent while b was still cut off reaches b by gossip once b heals"
    );
}
