//! The old engine's scenarios (`src/cluster/node.rs` on `main`), against
//! the new engine: membership, the clock floor, the anti-entropy rate,
//! ring placement under loss, resizes, deletes and tombstone collection,
//! and a restart that loads only what inputs need.

use crate::harness::{id, Cluster};
use crate::kinds;
use edge_crdt::crdt::{CausalContext, MvRegister, Payload, PnCounter};
use edge_crdt::engine::{AddError, Config, Message, ObjectId, RetireError, Status};
use edge_crdt::kinds::counter::{self, Counter};
use edge_crdt::kinds::register::{self, Register};
use edge_crdt::{ErrorCode, NodeId, Rng};
use std::collections::BTreeMap;

fn config(nodes: u32) -> Config {
    Config {
        initial_nodes: nodes,
        ..Config::default()
    }
}

fn kv(i: usize) -> ObjectId {
    id("kv", &format!("k{i}"))
}

fn put(c: &mut Cluster, at: NodeId, key: &ObjectId, text: &str, context: &CausalContext) {
    let op = register::Op::Put {
        payload: Payload::Text(text.into()),
        context: context.clone(),
    };
    c.call::<Register>(at, key, op)
        .expect("a replica takes the write");
}

fn texts(reg: &MvRegister) -> Vec<String> {
    reg.siblings()
        .map(|(_, v)| match &v.payload {
            Payload::Text(t) => t.clone(),
            Payload::Bytes(_) => String::new(),
        })
        .collect()
}

/// Every node's stored register of `key`.
fn registers(c: &Cluster, key: &ObjectId) -> BTreeMap<NodeId, MvRegister> {
    c.nodes
        .keys()
        .filter_map(|n| Some((*n, c.stored::<MvRegister>(*n, key, "")?)))
        .collect()
}

fn replicas(c: &mut Cluster, key: &ObjectId) -> Vec<NodeId> {
    c.engine(NodeId(0)).node.replicas(key)
}

#[test]
fn a_node_outside_the_membership_only_listens_until_added() {
    let mut c = Cluster::new(config(4), kinds::catalog());
    let (stranger, hits) = (NodeId(9), id("counter", "hits"));
    c.spawn(stranger);
    let refused = c.call::<Counter>(stranger, &hits, counter::Op::Increment { by: 1 });
    assert_eq!(refused.map_err(|e| e.error), Err(ErrorCode::NotActive));
    let node = &mut c.engine(stranger).node;
    assert!(!node.is_member());
    assert_eq!(node.forward_target(), Some(NodeId(0)));
    assert_eq!(node.next_deadline(), None);
    assert_eq!(node.begin_retire(), Err(RetireError::NotMember));

    c.with(NodeId(0), |e, now| {
        e.node.add_node(stranger, now).expect("a new id")
    });
    let now = c.now;
    let again = c.engine(NodeId(0)).node.add_node(stranger, now);
    assert_eq!(again, Err(AddError::Known(stranger)));
    c.run(|_, _, _| false);
    assert!(c.engine(stranger).node.accepts_writes());
    let done = c.call::<Counter>(stranger, &hits, counter::Op::Increment { by: 1 });
    assert_eq!(done.expect("a member now").state.value(), 1);
}

#[test]
fn a_restarted_node_stamps_above_its_stored_clock_floor() {
    let mut c = Cluster::new(config(1), kinds::catalog());
    let stamp_at = |c: &mut Cluster, name: &str, wall: u64| {
        let mut time = 0;
        c.with(NodeId(0), |e, _| {
            time = e.node.exec(id("counter", name), wall).stamp("").time
        });
        time
    };
    // Its clock ran ahead of its wall clock.
    stamp_at(&mut c, "a", 1_050_000);
    let before = stamp_at(&mut c, "a", 1_000_000);
    c.restart(NodeId(0));
    // Another object: nothing loaded carries the stamps given before.
    assert!(stamp_at(&mut c, "b", 1_000_000) > before);
}

#[test]
fn anti_entropy_slows_down_while_idle_and_speeds_up_on_change() {
    let mut c = Cluster::new(config(2), kinds::catalog());
    let interval = c.config.anti_entropy_interval_ms;
    let (mut gaps, mut last) = (Vec::new(), 0);
    for _ in 0..6 {
        let at = c.engine(NodeId(0)).node.next_deadline().expect("a member");
        c.now = at;
        let out = c.engine(NodeId(0)).tick(at).expect("ticks");
        c.enqueue(NodeId(0), out);
        c.run(|_, _, _| false);
        gaps.push(at - last);
        last = at;
    }
    assert_eq!(gaps[1..], [1, 2, 4, 8, 8].map(|k| k * interval));
    c.call::<Counter>(
        NodeId(0),
        &id("counter", "c"),
        counter::Op::Increment { by: 1 },
    )
    .unwrap();
    let next = c.engine(NodeId(0)).node.next_deadline().unwrap();
    assert!(
        next <= last + interval,
        "a change brings the next round near"
    );
}

/// Eight nodes place registers on three replicas each; a third of all
/// messages is lost for 500 s. Anti-entropy repairs every replica, and no
/// other node gets a copy.
#[test]
fn ring_placed_keys_reach_exactly_their_replicas_under_a_third_lost() {
    let mut c = Cluster::new(config(8), kinds::catalog());
    let none = CausalContext::default();
    for i in 0..40 {
        let at = replicas(&mut c, &kv(i))[i % 3];
        put(&mut c, at, &kv(i), &format!("v{i}"), &none);
    }
    let mut rng = Rng::new(7);
    c.pass_losing(500_000, |_, _, _| rng.below(3) == 0);
    for i in 0..40 {
        let mut expected = replicas(&mut c, &kv(i));
        expected.sort();
        let held = registers(&c, &kv(i));
        assert_eq!(
            held.keys().copied().collect::<Vec<_>>(),
            expected,
            "{} held at",
            kv(i)
        );
        for reg in held.values() {
            assert_eq!(texts(reg), [format!("v{i}")]);
        }
    }
}

/// Grows 4 -> 6 with a third of the transfers lost and shrinks to 3:
/// every key ends stored at exactly its replicas, with its value.
#[test]
fn resizes_hand_keys_to_their_new_replicas_before_letting_go() {
    let mut c = Cluster::new(config(4), kinds::catalog());
    let none = CausalContext::default();
    for i in 0..60 {
        let at = replicas(&mut c, &kv(i))[i % 3];
        put(&mut c, at, &kv(i), &format!("v{i}"), &none);
    }
    c.pass(1_000);
    for new in [NodeId(4), NodeId(5)] {
        c.spawn(new);
        c.with(NodeId(0), |e, now| e.node.add_node(new, now).unwrap());
        let mut turn = 0;
        c.run(|_, _, m| {
            turn += 1;
            matches!(m, Message::Transfer { .. }) && turn % 3 == 0
        });
        c.pass(20_000);
    }
    for leaving in [NodeId(1), NodeId(3), NodeId(5)] {
        c.with(leaving, |e, _| {
            e.node.begin_retire().unwrap();
        });
        c.pass(20_000);
        while !matches!(c.engine(leaving).node.status(), Status::Retired { .. }) {
            c.with(leaving, |e, _| {
                e.node.begin_retire().unwrap();
            });
            c.pass(2_000);
        }
    }
    c.pass(30_000);
    let members = c.engine(NodeId(0)).node.members().clone();
    assert_eq!(
        members.active().collect::<Vec<_>>(),
        [NodeId(0), NodeId(2), NodeId(4)]
    );
    for i in 0..60 {
        let held = registers(&c, &kv(i));
        let mut expected = replicas(&mut c, &kv(i));
        expected.sort();
        assert_eq!(
            held.keys().copied().collect::<Vec<_>>(),
            expected,
            "{} stored at",
            kv(i)
        );
        for reg in held.values() {
            assert_eq!(texts(reg), [format!("v{i}")]);
        }
    }
}

/// A delete leaves a tombstone at every replica, repaired by anti-entropy
/// where gossip lost it; a stale copy of the deleted value never comes
/// back, and a write from a context read before the delete stays.
#[test]
fn a_delete_reaches_every_replica_and_the_deleted_value_stays_gone() {
    let mut c = Cluster::new(config(5), kinds::catalog());
    let key = kv(7);
    let replicas = replicas(&mut c, &key);
    put(&mut c, replicas[1], &key, "old", &CausalContext::default());
    c.pass(1_000);
    let read = registers(&c, &key)[&replicas[2]].clone();
    let stale = Message::Gossip {
        members: None,
        rows: vec![(
            key.clone(),
            vec![(String::new(), postcard::to_allocvec(&read).unwrap())],
        )],
        want: Vec::new(),
    };
    let delete = register::Op::Delete {
        context: Some(read.context().clone()),
    };
    c.call::<Register>(replicas[2], &key, delete).unwrap();
    // The delete's gossip is lost: anti-entropy must carry it.
    c.run(|_, _, m| matches!(m, Message::Gossip { want, .. } if want.is_empty()));
    c.pass(20_000);
    let held = registers(&c, &key);
    assert_eq!(held.len(), 3, "a tombstone at every replica");
    assert!(held.values().all(MvRegister::is_empty), "{held:?}");
    for to in &replicas {
        c.send(replicas[1], *to, stale.clone());
    }
    c.pass(2_000);
    assert!(registers(&c, &key).values().all(MvRegister::is_empty));
    put(&mut c, replicas[1], &key, "new", read.context());
    c.pass(2_000);
    for reg in registers(&c, &key).values() {
        assert_eq!(texts(reg), ["new"]);
    }
}

/// Collection asks every live node twice, a grace apart: a node that is no
/// replica must answer too, since it could hold the row.
#[test]
fn a_tombstone_goes_once_every_node_agreed_twice_a_grace_apart() {
    let mut c = Cluster::new(config(5), kinds::catalog());
    let key = kv(3);
    let replicas = replicas(&mut c, &key);
    let outsider = (0..5).map(NodeId).find(|n| !replicas.contains(n)).unwrap();
    let (first, grace) = (replicas[0], c.config.tombstone_grace_ms);
    put(&mut c, replicas[1], &key, "old", &CausalContext::default());
    c.pass(1_000);
    let seen = registers(&c, &key)[&first].context().clone();
    let delete = register::Op::Delete {
        context: Some(seen.clone()),
    };
    c.call::<Register>(first, &key, delete).unwrap();
    let outsiders_answer =
        |from: NodeId, m: &Message| from == outsider && matches!(m, Message::Reaped { .. });
    c.pass_losing(3 * grace, |from, _, m| outsiders_answer(from, m));
    assert_eq!(
        registers(&c, &key).len(),
        3,
        "collected without the outsider"
    );
    // Once it answers, the first question is settled: nothing goes for a grace.
    let mut agreed = None;
    while agreed.is_none() {
        let now = c.now + c.config.gossip_interval_ms;
        c.pass_losing(c.config.gossip_interval_ms, |from, _, m| {
            if outsiders_answer(from, m) {
                agreed.get_or_insert(now);
            }
            false
        });
    }
    let agreed = agreed.unwrap();
    while c.now + c.config.gossip_interval_ms < agreed + grace {
        c.pass(c.config.gossip_interval_ms);
        assert_eq!(registers(&c, &key).len(), 3, "collected before the grace");
    }
    c.pass(5 * c.config.anti_entropy_interval_ms);
    assert_eq!(registers(&c, &key), BTreeMap::new(), "collected everywhere");
    assert_eq!(c.engine(first).node.tombstone_counts(), (0, 1));
    // The key takes writes again, numbered above its forgotten dots.
    put(&mut c, replicas[2], &key, "new", &seen);
    c.pass(2_000);
    for reg in registers(&c, &key).values() {
        assert_eq!(texts(reg), ["new"]);
    }
}

/// A node restarted from its store starts with leaf digests only and
/// reads objects as inputs need them; anti-entropy still repairs it.
#[test]
fn a_restarted_node_loads_only_what_inputs_need() {
    let mut c = Cluster::new(config(3), kinds::catalog());
    for i in 0..40 {
        put(&mut c, NodeId(0), &kv(i), "x", &CausalContext::default());
    }
    c.pass(1_000);
    c.restart(NodeId(1));
    assert_eq!(c.engine(NodeId(1)).node.objects().count(), 0);
    let root = c.engine(NodeId(1)).node.root_for(NodeId(0));
    assert_eq!(root, c.engine(NodeId(0)).node.root_for(NodeId(1)));
    // Writes it missed reach it by anti-entropy.
    for i in 0..5 {
        let context = registers(&c, &kv(i))[&NodeId(0)].context().clone();
        put(&mut c, NodeId(0), &kv(i), "y", &context);
    }
    c.run(|_, to, m| to == NodeId(1) && matches!(m, Message::Gossip { .. }));
    c.pass(10_000);
    let loaded = c.engine(NodeId(1)).node.objects().count();
    assert!(loaded < 40, "loaded {loaded} objects, not all 40");
    for i in 0..5 {
        assert_eq!(texts(&registers(&c, &kv(i))[&NodeId(1)]), ["y"]);
    }
}

#[test]
fn counters_converge_everywhere() {
    let mut c = Cluster::new(config(3), kinds::catalog());
    let hits = id("counter", "hits");
    for n in 0..3 {
        c.call::<Counter>(NodeId(n), &hits, counter::Op::Increment { by: 2 })
            .unwrap();
    }
    c.pass(1_000);
    for n in 0..3 {
        let held: PnCounter = c.stored(NodeId(n), &hits, "").unwrap();
        assert_eq!(held.value(), 6);
    }
}
