//! What peers send: a frame of every message, opened and checked as the
//! Durable Object opens a `/peer` body (`open_frame`) and then handled by
//! a node (`Engine::receive_frame`), the replies a peer sends back
//! (`open_replies`), each kind's rows as they arrive in frames, and the
//! event streams' sync messages.

use crate::driver::{Target, Verdict};
use crate::props::{round_trip, same_again};
use crate::seeds::{self, NOW_MS};
use edge_crdt::codec;
use edge_crdt::crdt::contacts::{BookRow, ClockId};
use edge_crdt::crdt::stream::{Cid, IdText};
use edge_crdt::crdt::Payload;
use edge_crdt::engine::{
    open_frame, open_replies, Config, Engine, Frame, Membership, MemoryStore, Message, ObjectId,
    RowRange, RowStates, RowType, Status, BUCKET_LEAVES, LEAVES,
};
use edge_crdt::kinds::stream::ops::Query;
use edge_crdt::kinds::stream::sync::Say;
use edge_crdt::kinds::{self, contacts, counter, register, set, stream, AnyKind, Call, CATALOG};
use edge_crdt::NodeId;
use serde_bytes::ByteBuf;

/// How old a frame may be: a node's default (half the tombstone grace).
const MAX_AGE_MS: u64 = 30_000;

pub fn targets() -> Vec<Target> {
    let mut out = vec![frame(), replies(), engine(), stream_sync()];
    out.extend(rows());
    out
}

fn object(prefix: &str, name: &str) -> ObjectId {
    ObjectId::new(prefix, name).expect("a valid name")
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard")
}

/// Rows of every kind, as a gossip or a transfer carries them.
fn row_states() -> RowStates {
    let counters = seeds::counters()
        .into_iter()
        .map(|c| (String::new(), encode(&c)));
    let sets = seeds::sets()
        .into_iter()
        .map(|s| (String::new(), encode(&s)));
    let registers = seeds::registers()[1..]
        .iter()
        .map(|r| (String::new(), encode(r)))
        .collect();
    let books = seeds::book_rows()
        .iter()
        .map(|(k, r)| (k.clone(), encode(r)))
        .collect();
    let events = seeds::events()
        .into_iter()
        .map(|(id, b)| (id.text(), b))
        .collect();
    let mut out: RowStates = counters
        .enumerate()
        .map(|(i, row)| (object("counter", &format!("c{i}")), vec![row]))
        .collect();
    out.extend(
        sets.enumerate()
            .map(|(i, row)| (object("set", &format!("s{i}")), vec![row])),
    );
    out.push((object("kv", "k"), registers));
    out.push((object("contacts", "book"), books));
    out.push((object("stream", seeds::TOPIC), events));
    out
}

/// What a stream replica says to another.
fn says() -> Vec<Say> {
    let events = seeds::events();
    let ids: Vec<Cid> = events.iter().map(|(id, _)| *id).collect();
    vec![
        Say::Heads {
            heads: ids[2..].to_vec(),
            answer: true,
        },
        Say::Same(ids[3..].to_vec()),
        Say::Want {
            want: ids[3..].to_vec(),
            frontier: ids[..1].to_vec(),
        },
        Say::Blocks {
            blocks: events
                .into_iter()
                .map(|(id, b)| (id, ByteBuf::from(b)))
                .collect(),
            rest: ids[..1].to_vec(),
        },
    ]
}

/// The row of client 7 of the seeds, acknowledged up to its last numbers.
fn acknowledged_to_the_end() -> (String, Vec<u8>) {
    let row = BookRow::applied(1, u64::MAX - 1);
    (BookRow::client_key(ClockId::client(7)), encode(&row))
}

/// One message of every variant, with real rows and digests.
pub fn messages() -> Vec<Message> {
    let members = Membership::initial(4);
    let mut draining = members.clone();
    draining.set(NodeId(3), Status::Draining { heir: NodeId(1) });
    let table = object("counter", "c0");
    let rows = row_states();
    let keys = vec![(table.clone(), String::new(), 0xdead_beef)];
    let stream = object("stream", seeds::TOPIC);
    vec![
        Message::Gossip {
            members: Some(members.clone()),
            rows: rows.clone(),
            want: vec![(object("kv", "k"), vec![String::new()])],
        },
        Message::Gossip {
            members: None,
            rows: vec![(object("contacts", "book"), vec![acknowledged_to_the_end()])],
            want: Vec::new(),
        },
        Message::Digest { root: 42 },
        Message::Buckets {
            members: members.clone(),
            buckets: vec![(0, 1), ((2 * LEAVES / BUCKET_LEAVES - 1) as u16, 2)],
        },
        Message::Leaves {
            buckets: vec![0, 3],
            leaves: vec![(0, 7), (2 * LEAVES - 1, 8)],
        },
        Message::Objects {
            leaves: vec![(5, vec![(table.clone(), 9)])],
        },
        Message::Rows {
            ranges: vec![RowRange {
                object: stream.clone(),
                after: Some("a".into()),
                upto: None,
                rows: vec![(seeds::events()[0].0.text(), 11)],
            }],
        },
        Message::Transfer {
            members: draining.clone(),
            leaf: 17,
            page: 2,
            rows,
        },
        Message::Transferred {
            pages: vec![(17, 2, 99)],
        },
        Message::Handoff { members: draining },
        Message::HandoffDone,
        Message::Same,
        Message::Reap {
            round: 3,
            rows: keys.clone(),
        },
        Message::Reaped {
            round: 3,
            members,
            refused: vec![(table, String::new())],
        },
        Message::Forget { rows: keys },
        Message::Sync {
            payloads: says().iter().map(|s| (stream.clone(), encode(s))).collect(),
        },
    ]
}

/// Frames from node 1, sent now.
fn frames() -> Vec<Vec<u8>> {
    messages()
        .into_iter()
        .map(|message| {
            codec::encode(&Frame {
                from: NodeId(1),
                sent: NOW_MS,
                message,
            })
        })
        .collect()
}

/// A `/peer` body, opened and checked: what opens re-encodes to the same.
fn frame() -> Target {
    Target::new("peer/frame", frames(), |bytes| {
        let open = |b: &[u8]| open_frame(b, CATALOG, NOW_MS, MAX_AGE_MS);
        round_trip(bytes, open, codec::encode)
    })
}

/// The replies a peer sends back, each checked.
fn replies() -> Target {
    let seeds = vec![
        codec::encode(&messages()),
        codec::encode(&Vec::<Message>::new()),
    ];
    Target::new("peer/replies", seeds, |bytes| {
        round_trip(bytes, |b| open_replies(b, CATALOG), codec::encode)
    })
}

/// Client operations of every kind on the objects of the seed frames:
/// each kind's operation, encoded, on its object (`None`: kind-wide).
fn client_ops() -> Vec<(&'static dyn AnyKind, Option<ObjectId>, Vec<u8>)> {
    let on = |prefix: &str, name: &str| Some(object(prefix, name));
    let query = Query {
        limit: 10,
        ..Query::default()
    };
    let ops: Vec<(&str, Option<ObjectId>, Vec<u8>)> = vec![
        (
            "counter",
            on("counter", "c3"),
            codec::encode(&counter::Op::Increment { by: -5 }),
        ),
        (
            "set",
            on("set", "s1"),
            codec::encode(&set::Op::Insert(seeds::elements())),
        ),
        (
            "kv",
            on("kv", "k"),
            codec::encode(&register::Op::Put {
                payload: Payload::Text("x".into()),
                context: seeds::contexts()[2].clone(),
            }),
        ),
        (
            "kv",
            None,
            codec::encode(&register::Op::List {
                prefix: "kv:".into(),
                after: None,
                limit: 10,
            }),
        ),
        (
            "contacts",
            on("contacts", "book"),
            codec::encode(&contacts::Op::Push {
                client: ClockId::client(7),
                deltas: seeds::pushed(7),
                cursor: Some(seeds::cursors()[1].clone()),
            }),
        ),
        (
            "contacts",
            on("contacts", "book"),
            codec::encode(&contacts::Op::Changes {
                cursor: seeds::cursors()[2].clone(),
                limit: 100,
            }),
        ),
        (
            "stream",
            on("stream", seeds::TOPIC),
            codec::encode(&stream::ops::Op::Append {
                message: ByteBuf::from(b"x".to_vec()),
                timestamp_ns: None,
            }),
        ),
        (
            "stream",
            on("stream", seeds::TOPIC),
            codec::encode(&stream::ops::Op::Query(query)),
        ),
        (
            "stream",
            on("stream", seeds::TOPIC),
            codec::encode(&stream::ops::Op::Export),
        ),
    ];
    ops.into_iter()
        .map(|(prefix, object, op)| (kinds::by_prefix(prefix).expect("a kind"), object, op))
        .collect()
}

/// A frame handled by node 0 of four, on an empty store; then client
/// operations of every kind read and write what it brought, and the
/// node's timers run.
fn engine() -> Target {
    let ops = client_ops();
    Target::new("peer/engine", frames(), move |bytes| {
        let mut engine = Engine::start(
            NodeId(0),
            Config::default(),
            CATALOG,
            MemoryStore::default(),
        )
        .expect("an engine starts");
        if engine.receive_frame(bytes, NOW_MS).is_err() {
            return Verdict::Refused;
        }
        for (kind, object, op) in &ops {
            let mut call = Call {
                engine: &mut engine,
                object: object.clone(),
                now: NOW_MS + 1,
            };
            let _ = kind.run(op, &mut call);
        }
        match engine.settle().and_then(|_| engine.tick(NOW_MS + 5_000)) {
            Ok(_) => Verdict::Accepted,
            Err(e) => Verdict::Broken(format!("a memory store failed: {e}")),
        }
    })
    .alloc_base(64 << 20)
}

/// A stream's sync payload, checked as its frame is (and what it needs
/// loaded, as the driver asks first): what passes decodes and re-encodes
/// to the same.
fn stream_sync() -> Target {
    let kind = CATALOG.row_type("stream").expect("streams");
    let seeds = says().iter().map(encode).collect();
    Target::new("peer/stream_sync", seeds, move |bytes| {
        let _ = (kind.sync_needs(bytes), kind.sync_needs_whole(bytes));
        if kind.check_sync(bytes).is_err() {
            return Verdict::Refused;
        }
        let say: Say = match postcard::from_bytes(bytes) {
            Ok(say) => say,
            Err(e) => {
                return Verdict::Broken(format!("a payload that checks does not decode: {e}"))
            }
        };
        same_again(&say, postcard::from_bytes::<Say>(&encode(&say)))
    })
}

/// Each kind's rows as they arrive from a peer: the keys they may come
/// under, and a state already held.
fn rows() -> Vec<Target> {
    let states = row_states();
    let held = |prefix: &str| {
        states
            .iter()
            .filter(|(o, _)| o.prefix() == prefix)
            .flat_map(|(_, rows)| rows.iter().cloned())
            .collect::<Vec<(String, Vec<u8>)>>()
    };
    let contact_keys = held("contacts").into_iter().map(|(k, _)| k).collect();
    vec![
        row_target("counter", held("counter"), vec![String::new()]),
        row_target("set", held("set"), vec![String::new()]),
        row_target("kv", held("kv"), vec![String::new()]),
        row_target("contacts", held("contacts"), contact_keys),
        row_target("stream", held("stream"), Vec::new()),
    ]
}

/// Rows of kind `prefix`: a row that checks under a key merges into
/// nothing and into a held state, into a row that checks too.
fn row_target(prefix: &'static str, held: Vec<(String, Vec<u8>)>, keys: Vec<String>) -> Target {
    let kind = CATALOG.row_type(prefix).expect("a kind");
    let seeds = held.iter().map(|(_, s)| s.clone()).collect();
    Target::new(format!("peer/rows_{prefix}"), seeds, move |bytes| {
        let mut keys = keys.clone();
        if keys.is_empty() {
            keys.push(edge_crdt::crdt::stream::block_id(bytes).text());
        }
        let mut verdict = Verdict::Refused;
        for key in &keys {
            let _ = (
                kind.latest_stamp(bytes),
                kind.absorb(bytes, NodeId(2), NodeId(0)),
            );
            if kind.check(key, bytes).is_err() {
                continue;
            }
            let olds = held
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, s)| Some(&s[..]));
            for old in std::iter::once(None).chain(olds) {
                if let Err(why) = merges(kind, key, old, bytes) {
                    return Verdict::Broken(why);
                }
            }
            verdict = Verdict::Accepted;
        }
        verdict
    })
}

/// Merges a checked row into `old`: it merges, into a row that checks.
fn merges(kind: &dyn RowType, key: &str, old: Option<&[u8]>, row: &[u8]) -> Result<(), String> {
    let merged = kind
        .merge(old, row, u64::MAX)
        .map_err(|e| format!("a row that checks does not merge: {e:?}"))?;
    if merged.state.is_empty() {
        return Ok(()); // still absent: the row was the bottom
    }
    kind.check(key, &merged.state)
        .map_err(|e| format!("the merged row does not check: {e}"))
}
