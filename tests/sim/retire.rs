//! Retirement: a stale view's heir, and what a drained node keeps.

use crate::harness::{config, kv_key_where, visits, Ctx, Faults, Sim};
use edge_crdt::engine::{Message, Status};
use edge_crdt::NodeId;

#[test]
fn retirement_towards_an_heir_that_already_retired_completes() {
    // Node 0 is down while node 1 retires into node 2, so when node 0 is
    // retired right after it comes back, its stale view picks node 1 as its
    // heir. Node 1 never answers again; the retries must reach node 2.
    let mut sim = Sim::new(21, config(5), Faults::calm());
    for i in 0..50u32 {
        sim.step(10, false);
        assert!(sim.increment(NodeId(i % 5), &visits(), i64::from(i) + 1));
    }
    sim.step(100, false);
    sim.crash(NodeId(0), u64::MAX);
    assert_eq!(
        sim.engine_mut(NodeId(1)).unwrap().node.begin_retire(),
        Ok(NodeId(2))
    );
    sim.settle_node(NodeId(1));
    for i in 0..100u32 {
        sim.step(10, false);
        sim.increment(NodeId(1 + i % 4), &visits(), 2);
    }
    assert_eq!(
        sim.own_status(NodeId(1)),
        Status::Retired { heir: NodeId(2) }
    );
    sim.restart(NodeId(0));
    let zero = sim.engine(NodeId(0)).unwrap();
    assert_eq!(zero.node.members().status(NodeId(1)), Some(Status::Active));
    // The admin retires it at once, before any peer tells it the news.
    sim.admin.current = Some((NodeId(0), sim.now));
    sim.admin_step();
    assert_eq!(
        sim.own_status(NodeId(0)),
        Status::Draining { heir: NodeId(1) },
        "the stale view chose the retired node"
    );
    let took = sim.settle(10_000);
    assert_eq!(sim.admin.retired.len(), 1);
    assert_eq!(
        sim.own_status(NodeId(0)),
        Status::Retired { heir: NodeId(2) },
        "node 0 was folded into node 2"
    );
    for id in (2..5).map(NodeId) {
        let retired = sim.read_counter(id, &visits()).unwrap().retired();
        assert_eq!(retired.get(&NodeId(0)), Some(&NodeId(2)), "{id}");
        assert_eq!(retired.get(&NodeId(1)), Some(&NodeId(2)), "{id}");
    }
    eprintln!("the stale retirement completed {took} ms after node 0 returned");
}

#[test]
fn a_drained_node_keeps_no_register_row() {
    // A replica drains; after it has handed the key off, a gossip message
    // sent while it was still a replica reaches it. It must not end
    // retired holding a copy that nobody will collect or hand off.
    let mut sim = Sim::new(56, config(4), Faults::calm());
    let leaving = NodeId(3);
    let key = kv_key_where(4, |r| r.contains(&leaving));
    let peer = *sim
        .replicas_of(&key)
        .iter()
        .find(|r| **r != leaving)
        .expect("another replica");
    assert!(sim.kv_request(peer, &key, Ctx::Blind, false));
    sim.run(500);
    let state = sim.read_register(peer, &key).expect("written");
    sim.admin.current = Some((leaving, sim.now));
    let rows = vec![(
        key.clone(),
        vec![(String::new(), postcard::to_allocvec(&state).unwrap())],
    )];
    let mut late = Some(Message::Gossip {
        members: None,
        rows,
        want: Vec::new(),
    });
    let start = sim.now;
    while !matches!(sim.own_status(leaving), Status::Retired { .. }) {
        assert!(sim.now - start < 10_000, "no retirement");
        sim.step(1, false);
        let draining = matches!(sim.own_status(leaving), Status::Draining { .. });
        if draining && sim.disk(leaving).tables.row(&key, "").is_none() {
            if let Some(message) = late.take() {
                sim.send(peer, leaving, message);
            }
        }
    }
    assert!(late.is_none(), "the late message was sent");
    sim.settle(10_000);
    let kept: Vec<String> = sim
        .rows(&key)
        .into_iter()
        .filter(|(n, _)| *n == leaving)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        kept,
        Vec::<String>::new(),
        "{leaving} retired holding registers"
    );
}
