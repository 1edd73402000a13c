//! A kind's local rows (`RowType::locals`): a `census` object keeps the
//! set of its row keys in a local row, updated as each row arrives (a
//! client write, gossip, a repair, a handover), never by scanning. At
//! every replica the local row equals the object's keys; it is stored in
//! the batch of each change, loaded after a restart, never carried by a
//! peer message, refused when a peer sends one, and it goes with the
//! object's last row when the object moves away.

use crate::harness::{id, joined_by_node_4, ring_replicas, Cluster};
use crate::kinds::{self, Notes, CENSUS_KEYS};
use edge_crdt::engine::{Config, Frame, Membership, Message, ObjectId, Store};
use edge_crdt::{codec, NodeId};
use std::collections::{BTreeMap, BTreeSet};

fn note(c: &mut Cluster, at: NodeId, object: &ObjectId, row: &str) {
    c.op(at, object, &[row], |x| x.put(row, &Notes::one(row)));
}

/// Per node that stores the object: its stored row keys and its stored
/// census (both as sets of keys).
fn censuses(
    c: &Cluster,
    object: &ObjectId,
) -> BTreeMap<NodeId, (BTreeSet<String>, BTreeSet<String>)> {
    c.holders(object)
        .into_iter()
        .map(|(n, rows)| {
            let census = rows
                .get(CENSUS_KEYS)
                .map(|b| postcard::from_bytes(b).expect("a census"))
                .unwrap_or_default();
            let keys = rows.into_keys().filter(|k| k != CENSUS_KEYS).collect();
            (n, (keys, census))
        })
        .collect()
}

fn assert_counted(c: &Cluster, object: &ObjectId, replicas: &BTreeSet<NodeId>, rows: usize) {
    let all = censuses(c, object);
    assert_eq!(
        all.keys().copied().collect::<BTreeSet<_>>(),
        *replicas,
        "who stores it"
    );
    for (n, (keys, census)) in all {
        assert_eq!(keys.len(), rows, "{n} holds every row");
        assert_eq!(census, keys, "{n}'s census is its rows");
    }
}

/// Fails on any message that carries the local row.
fn never_carried(_: NodeId, _: NodeId, m: &Message) -> bool {
    assert!(
        !format!("{m:?}").contains(CENSUS_KEYS),
        "a {} carried a local row",
        m.name()
    );
    false
}

#[test]
fn a_local_row_follows_its_objects_rows_at_each_replica_and_never_leaves_its_node() {
    let config = Config {
        initial_nodes: 4,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let census = joined_by_node_4("census", "c");
    let before = ring_replicas(&Membership::initial(4), &census);
    for i in 0..12 {
        note(&mut c, NodeId(i % 4), &census, &format!("r{i:02}"));
        c.run(never_carried);
    }
    c.pass_losing(2_000, never_carried);
    assert_counted(&c, &census, &before, 12);

    // Restarted, a replica loads its census and goes on from it.
    let first = *before.first().unwrap();
    c.restart(first);
    for i in 12..16 {
        note(&mut c, first, &census, &format!("r{i:02}"));
    }
    c.pass_losing(2_000, never_carried);
    assert_counted(&c, &census, &before, 16);

    // Every node restarts (listings now come from storage); rows lost in
    // gossip reach two replicas by repair; node 4 joins the leaf and gets
    // the rows handed over; the node that leaves the leaf drops its
    // census with its last row.
    for n in 0..4 {
        c.restart(NodeId(n));
    }
    let lost: BTreeSet<NodeId> = before.iter().copied().skip(1).collect();
    for i in 16..20 {
        note(&mut c, first, &census, &format!("r{i:02}"));
    }
    c.run(|_, to, m| matches!(m, Message::Gossip { .. }) && lost.contains(&to));
    c.spawn(NodeId(4));
    c.with(NodeId(0), |e, now| e.node.add_node(NodeId(4), now).unwrap());
    let grown = c.engine(NodeId(0)).node.members().clone();
    c.pass_losing(30_000, never_carried);
    assert_counted(&c, &census, &ring_replicas(&grown, &census), 20);
}

#[test]
fn a_peer_frame_carrying_a_local_row_is_refused_and_changes_nothing() {
    let config = Config {
        initial_nodes: 3,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let census = id("census", "forged");
    let forged = postcard::to_allocvec(&BTreeSet::from(["x".to_owned()])).unwrap();
    let note = postcard::to_allocvec(&Notes::one("x")).unwrap();
    let message = Message::Gossip {
        members: None,
        rows: vec![(
            census.clone(),
            vec![("x".into(), note), (CENSUS_KEYS.into(), forged)],
        )],
        want: Vec::new(),
    };
    let bytes = codec::encode(&Frame {
        from: NodeId(1),
        sent: c.now,
        message,
    });
    let now = c.now;
    let refused = c.engine(NodeId(0)).receive_frame(&bytes, now);
    assert!(refused.is_err(), "a frame with a local row is refused");
    let stored = c.engine(NodeId(0)).store.list("census:", None, 10).unwrap();
    assert!(stored.is_empty(), "nothing of it is stored: {stored:?}");
}
