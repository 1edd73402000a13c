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
use edge_crdt::kinds::stream::sync::Say;
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

/// Appends `n` events at `at`, each linking the node's heads.
fn append_at(
    c: &mut Cluster,
    at: NodeId,
    topic: &ObjectId,
    n: u64,
    lose: impl Fn(NodeId, NodeId, &Message) -> bool + Copy,
) {
    for i in 0..n {
        let ts = c.now * 1_000_000 + i;
        c.op(at, topic, &[], |x| {
            append(x, format!("m{i}").into_bytes(), ts);
        });
        c.run(lose);
    }
}

/// A topic written at one replica while another gets nothing; with
/// `restart`, every replica restarts before the first rebroadcast.
fn dormant(restart: bool) {
    let config = Config {
        initial_nodes: 4,
        anti_entropy_interval_ms: 1 << 40,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let topic = id("stream", "dormant");
    let on = replicas(&topic);
    let behind = on[2];
    let not_sync = move |_: NodeId, to: NodeId, m: &Message| {
        to == behind && !matches!(m, Message::Sync { .. })
    };
    append_at(&mut c, on[0], &topic, 300, not_sync);
    assert!(
        stored(&c, behind, &topic).0.is_empty(),
        "gossip never reached it"
    );
    if restart {
        for n in &on {
            c.restart(*n);
        }
    }
    c.reset_tally();
    c.pass_checked(30_000, not_sync, |c| check_locals(c, &topic, &on));
    let full = stored(&c, on[0], &topic).0;
    assert_eq!(full.len(), 300);
    for n in &on {
        assert_eq!(stored(&c, *n, &topic).0, full, "{n} caught up");
    }
    let wants = c.tally.of("sync");
    assert!(
        wants <= 16,
        "{wants} sync messages: one closure, not one link at a time"
    );
    c.reset_tally();
    c.pass_losing(3_600_000, not_sync);
    assert_eq!(
        c.tally.of("sync"),
        0,
        "once every replica has the same heads, rebroadcast stops"
    );
}

#[test]
fn a_dormant_topic_catches_up_through_rebroadcast_alone_then_falls_silent() {
    dormant(false);
}

#[test]
fn a_restarted_node_takes_up_its_rebroadcasts_from_storage() {
    dormant(true);
}

/// The backfill messages among `m`'s sync payloads.
fn backfills_in(m: &Message) -> usize {
    let Message::Sync { payloads } = m else {
        return 0;
    };
    payloads
        .iter()
        .filter(|(_, p)| {
            matches!(
                postcard::from_bytes(p),
                Ok(Say::Want { .. } | Say::Blocks { .. })
            )
        })
        .count()
}

#[test]
fn a_replica_that_missed_a_gap_backfills_it_in_one_round_trip() {
    let config = Config {
        initial_nodes: 4,
        anti_entropy_interval_ms: 1 << 40,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let topic = id("stream", "gap");
    let on = replicas(&topic);
    let behind = on[2];
    append_at(&mut c, on[0], &topic, 20, |_, _, _| false);
    c.pass(500);
    let cut = move |_: NodeId, to: NodeId, _: &Message| to == behind;
    append_at(&mut c, on[0], &topic, 500, cut);
    c.pass_losing(500, cut);
    assert_eq!(stored(&c, behind, &topic).0.len(), 20);
    append_at(&mut c, on[0], &topic, 1, |_, _, _| false);
    let (mut round, mut trips) = (0, 0);
    c.pass_checked(
        3_000,
        |from, to, m| {
            if (from, to) == (behind, on[0]) && backfills_in(m) > 0 {
                trips += 1;
            }
            round += backfills_in(m);
            false
        },
        |c| check_locals(c, &topic, &on),
    );
    let full = stored(&c, on[0], &topic).0;
    assert_eq!(stored(&c, behind, &topic).0, full, "the gap is filled");
    assert_eq!(
        stored(&c, behind, &topic).0.len(),
        521,
        "the new event arrived, and its past"
    );
    assert_eq!((trips, round), (1, 2), "one request, one answer");
}

#[test]
fn a_node_added_receives_its_topics_in_bulk_pages_not_by_walking_links() {
    let config = Config {
        initial_nodes: 4,
        frame_bytes: 8 << 10,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let topic = crate::harness::joined_by_node_4("stream", "boot");
    let on = replicas(&topic);
    append_at(&mut c, on[0], &topic, 400, |_, _, _| false);
    c.pass(2_000);
    let full = stored(&c, on[0], &topic).0;
    assert_eq!(full.len(), 400);
    c.spawn(NodeId(4));
    c.with(NodeId(0), |e, now| e.node.add_node(NodeId(4), now).unwrap());
    let (mut pages, mut backfills) = (0, 0);
    c.pass_checked(
        20_000,
        |_, to, m| {
            if to == NodeId(4) {
                pages += usize::from(matches!(m, Message::Transfer { .. }));
                backfills += backfills_in(m);
            }
            false
        },
        |_| {},
    );
    assert_eq!(
        stored(&c, NodeId(4), &topic).0,
        full,
        "node-4 holds the topic"
    );
    let (_, heads, missing) = stored(&c, NodeId(4), &topic);
    assert_eq!((heads, missing.len()), (texts(full.heads()), 0));
    assert!(pages >= 4, "{pages} transfer pages of at most 8 KiB");
    assert_eq!(backfills, 0, "no link was fetched one by one");
}
