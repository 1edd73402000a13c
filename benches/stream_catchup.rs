//! Catch-up of a topic replica that missed 1,000 events, on a chain and on
//! a wide DAG: the streams' backfill (the closure of the missing links
//! above the replica's complete frontier, `kinds::stream::sync`) on two
//! real engines exchanging encoded frames, against walking one link at a
//! time (each request names one id and gets its block; a replica asks for
//! every link it lacks at once, so a level of the DAG is one round trip),
//! with the same blocks and the same message encoding, in one run.
//!
//! `cargo bench --bench stream_catchup` (`STREAM_EVENTS=n` to change 1000).

use edge_crdt::codec;
use edge_crdt::crdt::stream::{Cid, Event, IdText};
use edge_crdt::engine::{Config, Engine, Frame, MemoryStore, Message, ObjectId};
use edge_crdt::kinds::stream::sync::Say;
use edge_crdt::kinds::CATALOG;
use edge_crdt::NodeId;
use serde_bytes::ByteBuf;
use std::collections::BTreeSet;

const A: NodeId = NodeId(0);
const B: NodeId = NodeId(1);

fn topic() -> ObjectId {
    ObjectId::new("stream", "bench").unwrap()
}

/// `n` events: each links the one before (a chain), or (wide) the one
/// `lanes` before it, with a merge of every lane's tip every 100 events
/// and at the end.
fn history(n: usize, lanes: usize) -> Vec<(Cid, Vec<u8>)> {
    let mut out: Vec<(Cid, Vec<u8>)> = Vec::new();
    let mut tips: Vec<Option<Cid>> = vec![None; lanes];
    for i in 0..n {
        let merge = lanes > 1 && (i % 100 == 99 || i == n - 1);
        let links: Vec<Cid> = if merge {
            tips.iter().flatten().copied().collect()
        } else {
            tips[i % lanes].into_iter().collect()
        };
        let event = Event::new(
            "bench",
            1_000_000_000 + i as u64,
            format!("event {i}").into_bytes(),
            links,
        );
        let block = event.encode();
        let id = event.id();
        if merge {
            tips = vec![None; lanes];
        }
        tips[i % lanes] = Some(id);
        out.push((id, block));
    }
    out
}

/// What crossed between the two replicas while one caught up.
#[derive(Default, Debug)]
struct Traffic {
    rounds: usize,
    requests: usize,
    bytes: usize,
}

fn frame_bytes(from: NodeId, message: Message) -> Vec<u8> {
    codec::encode(&Frame {
        from,
        sent: 0,
        message,
    })
}

/// The closure backfill: A holds every event, B gets only the last one by
/// gossip, then the two engines run until B holds them all.
fn closure(events: &[(Cid, Vec<u8>)]) -> Traffic {
    let config = Config {
        initial_nodes: 2,
        replicas: 2,
        anti_entropy_interval_ms: 1 << 40,
        ..Config::default()
    };
    let start = |id| Engine::start(id, config.clone(), CATALOG, MemoryStore::default()).unwrap();
    let (mut a, mut b) = (start(A), start(B));
    let mut now = 1_000;
    for page in events.chunks(200) {
        let rows = vec![(
            topic(),
            page.iter().map(|(c, bl)| (c.text(), bl.clone())).collect(),
        )];
        a.receive(
            B,
            Message::Gossip {
                members: None,
                rows,
                want: Vec::new(),
            },
            now,
        )
        .unwrap();
    }
    let (last, block) = events.last().unwrap().clone();
    let rows = vec![(topic(), vec![(last.text(), block)])];
    b.receive(
        A,
        Message::Gossip {
            members: None,
            rows,
            want: Vec::new(),
        },
        now,
    )
    .unwrap();
    let mut t = Traffic::default();
    let held = |b: &Engine<MemoryStore>| {
        b.store
            .rows()
            .filter(|(_, r, _)| !r.starts_with('~'))
            .count()
    };
    while held(&b) < events.len() && now < 600_000 {
        now += 50;
        let mut out = b.tick(now).unwrap().sends;
        a.tick(now).unwrap();
        while let Some((to, message)) = out.pop() {
            if to != A {
                continue;
            }
            let wants = matches!(&message, Message::Sync { payloads }
                if payloads.iter().any(|(_, p)| matches!(postcard::from_bytes(p), Ok(Say::Want { .. }))));
            let bytes = frame_bytes(B, message);
            t.bytes += bytes.len();
            let (_, reply) = a.receive_frame(&bytes, now).unwrap();
            if wants {
                t.rounds += 1;
                t.requests += 1;
            }
            for (to, m) in reply.sends.into_iter().filter(|(to, _)| *to == B) {
                let bytes = frame_bytes(A, m);
                t.bytes += bytes.len();
                out.extend(b.receive_frame(&bytes, now).unwrap().1.sends);
                let _ = to;
            }
        }
    }
    assert_eq!(held(&b), events.len(), "the closure caught up");
    t
}

/// Walking one link at a time: each round asks for every link the replica
/// lacks, one request (and one answer) per id.
fn one_link_at_a_time(events: &[(Cid, Vec<u8>)]) -> Traffic {
    let by_id: std::collections::BTreeMap<Cid, &Vec<u8>> =
        events.iter().map(|(c, b)| (*c, b)).collect();
    let mut held: BTreeSet<Cid> = BTreeSet::from([events.last().unwrap().0]);
    let mut wanted: Vec<Cid> = links(by_id[&events.last().unwrap().0]);
    let mut t = Traffic::default();
    while !wanted.is_empty() {
        t.rounds += 1;
        let mut next = Vec::new();
        for id in wanted {
            if !held.insert(id) {
                continue;
            }
            t.requests += 1;
            let ask = Say::Want {
                want: vec![id],
                frontier: Vec::new(),
            };
            let answer = Say::Blocks {
                blocks: vec![(id, ByteBuf::from(by_id[&id].clone()))],
                rest: Vec::new(),
            };
            for say in [ask, answer] {
                let payloads = vec![(topic(), postcard::to_allocvec(&say).unwrap())];
                t.bytes += frame_bytes(A, Message::Sync { payloads }).len();
            }
            next.extend(links(by_id[&id]).into_iter().filter(|l| !held.contains(l)));
        }
        next.sort_unstable();
        next.dedup();
        wanted = next;
    }
    t
}

fn links(block: &[u8]) -> Vec<Cid> {
    Event::from_block(block, None, &Default::default(), u64::MAX)
        .unwrap()
        .links
}

fn main() {
    let n: usize = std::env::var("STREAM_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    println!(
        "catch-up of a replica that missed {n} events (closure backfill vs one link at a time)"
    );
    println!(
        "{:<6} {:>12} {:>12} {:>14} | {:>12} {:>12} {:>14} | {:>8} {:>8}",
        "dag",
        "round trips",
        "requests",
        "bytes",
        "round trips",
        "requests",
        "bytes",
        "trips ×",
        "bytes ×"
    );
    for (name, lanes) in [("chain", 1), ("wide", 25)] {
        let events = history(n, lanes);
        let c = closure(&events);
        let w = one_link_at_a_time(&events);
        println!(
            "{:<6} {:>12} {:>12} {:>14} | {:>12} {:>12} {:>14} | {:>8.3} {:>8.3}",
            name,
            c.rounds,
            c.requests,
            c.bytes,
            w.rounds,
            w.requests,
            w.bytes,
            c.rounds as f64 / w.rounds as f64,
            c.bytes as f64 / w.bytes as f64
        );
    }
}
