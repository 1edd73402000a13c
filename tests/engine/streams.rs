//! Event streams on the engine (`kinds::stream::Events`): appends at every
//! replica of a topic, with gossip lost and replicas restarting, converge
//! by the default sync to one DAG; after every delivery each replica's
//! local heads and missing links are those of the events it stores; at
//! the end every replica has the same heads, no missing link, one total
//! order, and a log with each event once. A peer frame with a tampered
//! event is refused whole.

use crate::harness::{id, ring_replicas, Cluster};
use crate::kinds;
use edge_crdt::crdt::stream::{Cid, Dag, Event};
use edge_crdt::engine::{Config, Frame, Membership, Message, ObjectId, Store};
use edge_crdt::kinds::stream::{append, HEADS, MISSING};
use edge_crdt::{codec, NodeId, Rng};
use std::collections::{BTreeMap, BTreeSet};

fn replicas(object: &ObjectId) -> Vec<NodeId> {
    ring_replicas(&Membership::initial(4), object)
        .into_iter()
        .collect()
}

/// A replica's stored events as a DAG, and its stored heads and missing links.
fn stored(c: &Cluster, n: NodeId, topic: &ObjectId) -> (Dag, BTreeSet<String>, BTreeSet<String>) {
    let rows = c.holders(topic).remove(&n).unwrap_or_default();
    let local = |key: &str| -> BTreeSet<String> {
        rows.get(key)
            .map(|b| postcard::from_bytes(b).unwrap())
            .unwrap_or_default()
    };
    let mut dag = Dag::default();
    for (key, block) in rows.iter().filter(|(k, _)| !k.starts_with('~')) {
        let cid: Cid = key.parse().unwrap();
        dag.insert(
            cid,
            Event::from_block(block, Some(&cid), &Default::default(), u64::MAX).unwrap(),
        );
    }
    (dag, local(HEADS), local(MISSING))
}

fn texts(ids: &BTreeSet<Cid>) -> BTreeSet<String> {
    ids.iter().map(Cid::to_string).collect()
}

fn check_locals(c: &Cluster, topic: &ObjectId, on: &[NodeId]) {
    for n in on {
        let (dag, heads, missing) = stored(c, *n, topic);
        assert_eq!(heads, texts(dag.heads()), "{n}'s heads are its events'");
        assert_eq!(
            missing,
            texts(dag.missing()),
            "{n}'s missing links are its events'"
        );
    }
}

#[test]
fn appends_everywhere_converge_to_one_dag_with_heads_and_missing_links_kept_per_arrival() {
    let config = Config {
        initial_nodes: 4,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let topic = id("stream", "chat");
    let on = replicas(&topic);
    let mut rng = Rng::new(11);
    for i in 0..60u64 {
        let at = on[rng.below(on.len() as u64) as usize];
        let ts = c.now * 1_000_000 + i;
        c.op(at, &topic, &[], |x| {
            append(x, format!("m{i}").into_bytes(), ts);
        });
        if i % 17 == 16 {
            c.restart(on[rng.below(on.len() as u64) as usize]);
        }
        let mut lose = Rng::new(i);
        let interval = c.config.gossip_interval_ms;
        c.pass_checked(
            interval,
            |_, _, m| matches!(m, Message::Gossip { .. }) && lose.chance(400),
            |c| check_locals(c, &topic, &on),
        );
    }
    c.pass_checked(60_000, |_, _, _| false, |c| check_locals(c, &topic, &on));
    let dags: BTreeMap<NodeId, Dag> = on.iter().map(|n| (*n, stored(&c, *n, &topic).0)).collect();
    let first = &dags[&on[0]];
    assert_eq!(first.len(), 60, "every append is held");
    assert!(first.missing().is_empty());
    for (n, dag) in &dags {
        assert_eq!(dag, first, "{n} holds the same DAG");
        assert_eq!(dag.order(), first.order(), "{n} orders it the same");
    }
    check_locals(&c, &topic, &on);
    for n in &on {
        let log = c.engine(*n).store.log_after(&topic, 0, 1_000).unwrap();
        let ids: BTreeSet<Vec<u8>> = log.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(
            (log.len(), ids.len()),
            (60, 60),
            "{n} logs each arrival once"
        );
    }
}

#[test]
fn a_peer_frame_with_a_tampered_event_is_refused_whole() {
    let config = Config {
        initial_nodes: 4,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let topic = id("stream", "tamper");
    let on = replicas(&topic);
    let good = Event::new("tamper", 1, b"fine".to_vec(), Vec::new());
    let real = Event::new("tamper", 2, b"real".to_vec(), Vec::new());
    let mut forged = real.encode();
    let at = forged.len() - 1;
    forged[at] ^= 1;
    let message = Message::Gossip {
        members: None,
        rows: vec![(
            topic.clone(),
            vec![
                (good.id().to_string(), good.encode()),
                (real.id().to_string(), forged),
            ],
        )],
        want: Vec::new(),
    };
    let bytes = codec::encode(&Frame {
        from: on[1],
        sent: c.now,
        message,
    });
    let now = c.now;
    assert!(c.engine(on[0]).receive_frame(&bytes, now).is_err());
    assert!(
        c.holders(&topic).is_empty(),
        "nothing of the frame is stored"
    );
}
