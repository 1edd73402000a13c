//! The versioned postcard envelope of every type that crosses a boundary:
//! replicas' states (events, browser storage, set replicas), what the
//! router and the node objects say to each other (requests, kinds'
//! operations and outcomes, replies), the first SQL layout's values, and
//! base64 text.

use crate::driver::{Target, Verdict};
use crate::props::{all, envelope, round_trip, state, text};
use crate::seeds;
use edge_crdt::api::call::{AdminOp, NodeReply, NodeRequest, Target as CallTarget};
use edge_crdt::codec::{self, MAX_FRAME, MAX_STATE};
use edge_crdt::crdt::contacts::{ClockId, ContactRow};
use edge_crdt::crdt::{Bias, GCounter, Payload};
use edge_crdt::engine::{decode_row, ObjectId};
use edge_crdt::kinds::stream::ops::{Direction, Page, Query};
use edge_crdt::kinds::{contacts, counter, register, set, stream, v1, CATALOG};
use edge_crdt::{ApiError, ErrorCode, NodeId, NodeSet};
use serde::{de::DeserializeOwned, Serialize};
use serde_bytes::ByteBuf;
use std::fmt::Debug;

pub fn targets() -> Vec<Target> {
    let g_counters: Vec<GCounter> = seeds::counters()
        .iter()
        .flat_map(|c| [c.increments().clone(), c.decrements().clone()])
        .collect();
    let contact_rows: Vec<ContactRow> = seeds::book_rows()
        .into_iter()
        .map(|(_, r)| r.contact)
        .collect();
    let books: Vec<_> = seeds::book_rows().into_iter().map(|(_, r)| r).collect();
    vec![
        state("codec/pn_counter", &seeds::counters()),
        state("codec/g_counter", &g_counters),
        state("codec/lww_set", &seeds::sets()),
        state("codec/mv_register", &seeds::registers()),
        state("codec/book_row", &books),
        state("codec/contact_row", &contact_rows),
        context(),
        envelope("codec/node_request", MAX_FRAME, &requests()),
        envelope("codec/node_reply", MAX_FRAME, &replies()),
        kind_ops(),
        kind_outcomes(),
        postcard_replies(),
        v1_rows(),
        base64(),
    ]
}

/// A register's causal context: it round-trips, and validating it does
/// not panic.
fn context() -> Target {
    let values = seeds::contexts();
    let seeds = values.iter().map(codec::encode).collect();
    Target::new("codec/causal_context", seeds, |bytes| {
        let decode = |b: &[u8]| codec::decode::<edge_crdt::crdt::CausalContext>(b, MAX_STATE);
        match round_trip(bytes, decode, codec::encode) {
            Verdict::Accepted => match decode(bytes).map(|c| c.validate()) {
                Ok(Ok(())) => Verdict::Accepted,
                _ => Verdict::Refused,
            },
            other => other,
        }
    })
}

fn object(prefix: &str, name: &str) -> ObjectId {
    ObjectId::new(prefix, name).expect("a valid name")
}

/// Every kind's operations, as the router sends them.
pub fn ops() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![
        codec::encode(&counter::Op::Read),
        codec::encode(&counter::Op::Increment { by: -1_000_000 }),
        codec::encode(&set::Op::Create {
            bias: Bias::RemoveWins,
        }),
        codec::encode(&set::Op::Insert(seeds::elements())),
        codec::encode(&set::Op::Delete(seeds::elements())),
        codec::encode(&set::Op::Update(seeds::sets()[1].clone())),
        codec::encode(&register::Op::Read),
        codec::encode(&register::Op::Put {
            payload: Payload::Bytes(vec![1, 2, 3]),
            context: seeds::contexts()[2].clone(),
        }),
        codec::encode(&register::Op::Delete { context: None }),
        codec::encode(&register::Op::List {
            prefix: "kv:user".into(),
            after: Some(object("kv", "user:1")),
            limit: 100,
        }),
        codec::encode(&contacts::Op::Push {
            client: ClockId::client(7),
            deltas: seeds::pushed(7),
            cursor: Some(seeds::cursors()[2].clone()),
        }),
        codec::encode(&contacts::Op::Changes {
            cursor: seeds::cursors()[1].clone(),
            limit: 200,
        }),
        codec::encode(&contacts::Op::Get(seeds::contact_id(1))),
        codec::encode(&contacts::Op::List {
            after: Some(seeds::contact_id(2)),
            limit: 10,
        }),
    ];
    out.extend(stream_ops().iter().map(codec::encode));
    out
}

fn query() -> Query {
    Query {
        start_time_ns: Some(1),
        end_time_ns: Some(u64::MAX),
        limit: 100,
        direction: Direction::Descending,
        cursor: Some(seeds::events()[1].0),
    }
}

fn stream_ops() -> Vec<stream::ops::Op> {
    use stream::ops::Op;
    vec![
        Op::Append {
            message: ByteBuf::from(b"hi".to_vec()),
            timestamp_ns: Some(7),
        },
        Op::Heads,
        Op::Get(seeds::events()[0].0),
        Op::Query(query()),
        Op::Batch(vec![("a".into(), query()), ("b".into(), Query::default())]),
        Op::Log {
            after: 3,
            limit: 10,
        },
        Op::Export,
    ]
}

/// Requests of the router to a node object.
fn requests() -> Vec<NodeRequest> {
    let mut out: Vec<NodeRequest> = ops()
        .into_iter()
        .map(|op| NodeRequest::Op {
            target: CallTarget::Object(object("counter", "home")),
            op,
            forwarded: false,
        })
        .collect();
    out.push(NodeRequest::Op {
        target: CallTarget::Kind("kv".into()),
        op: codec::encode(&register::Op::Read),
        forwarded: true,
    });
    out.push(NodeRequest::Subscribe {
        object: object("set", "s"),
        forwarded: true,
    });
    let groups = vec![NodeSet::from_iter([NodeId(0), NodeId(1)]), NodeSet::new()];
    for admin in [
        AdminOp::View,
        AdminOp::Add(NodeId(4)),
        AdminOp::Retire,
        AdminOp::Partition(groups),
    ] {
        out.push(NodeRequest::Admin(admin));
    }
    out
}

/// A node's replies to the router.
fn replies() -> Vec<NodeReply> {
    let mut out: Vec<NodeReply> = outcomes()
        .into_iter()
        .map(|o| NodeReply {
            node: NodeId(2),
            active: vec![NodeId(0), NodeId(2)],
            result: Ok(o),
        })
        .collect();
    out.push(NodeReply {
        node: NodeId(1),
        active: Vec::new(),
        result: Err(ApiError::new(ErrorCode::BadJson, "expected ✓")),
    });
    out
}

/// Every kind's outcomes, as a node sends them back.
pub fn outcomes() -> Vec<Vec<u8>> {
    use stream::ops::Outcome as S;
    let node = NodeId(1);
    let (id, block) = seeds::events()[2].clone();
    let page = Page {
        events: vec![(id, ByteBuf::from(block.clone()))],
        cursor: Some(id),
    };
    let counter = seeds::counters()[3].clone();
    let mut out = vec![
        codec::encode(&counter::Outcome {
            node,
            state: counter,
        }),
        codec::encode(&set::Outcome {
            node,
            state: seeds::sets()[2].clone(),
            stamp: Some(seeds::stamp_ago(1)),
        }),
        codec::encode(&register::Outcome::Register {
            node,
            state: seeds::registers()[2].clone(),
        }),
        codec::encode(&register::Outcome::Page(register::NodePage {
            entries: vec![("kv:a".into(), seeds::registers()[1].clone())],
            more: true,
        })),
    ];
    let (_, row) = seeds::book_rows().remove(0);
    let contacts = [
        contacts::Outcome::Pushed {
            node,
            acked: 4,
            applied: 2,
            cursor: Some(seeds::cursors()[1].clone()),
        },
        contacts::Outcome::Changes {
            node,
            changes: seeds::changes(),
            cursor: seeds::cursors()[2].clone(),
            snapshot: true,
            more: false,
        },
        contacts::Outcome::Contact(node, seeds::contact_id(0), Some(row.contact.clone())),
        contacts::Outcome::Page(node, vec![(seeds::contact_id(0), row.contact)], None),
    ];
    out.extend(contacts.iter().map(codec::encode));
    let streams = [
        S::Appended {
            node,
            cid: id,
            links: vec![seeds::events()[0].0],
            heads: vec![id],
        },
        S::Heads(node, vec![id]),
        S::Event(node, id, Some(ByteBuf::from(block.clone()))),
        S::Page(node, page.clone()),
        S::Batch(node, vec![("a".into(), Some(Ok(page))), ("b".into(), None)]),
        S::Log(node, vec![(1, id, ByteBuf::from(block))], true),
        S::Car(node, ByteBuf::from(vec![1, 2, 3])),
    ];
    out.extend(streams.iter().map(codec::encode));
    out
}

fn trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) -> Verdict {
    round_trip(bytes, |b| codec::decode::<T>(b, MAX_FRAME), codec::encode)
}

/// An operation, as the node decodes it for each kind.
fn kind_ops() -> Target {
    Target::new("codec/kind_ops", ops(), |bytes| {
        all([
            trip::<counter::Op>(bytes),
            trip::<set::Op>(bytes),
            trip::<register::Op>(bytes),
            trip::<contacts::Op>(bytes),
            trip::<stream::ops::Op>(bytes),
        ])
    })
}

/// An outcome, as the router decodes it for each kind.
fn kind_outcomes() -> Target {
    Target::new("codec/kind_outcomes", outcomes(), |bytes| {
        all([
            trip::<counter::Outcome>(bytes),
            trip::<set::Outcome>(bytes),
            trip::<register::Outcome>(bytes),
            trip::<contacts::Outcome>(bytes),
            trip::<stream::ops::Outcome>(bytes),
        ])
    })
}

/// A reply in postcard, as a client decodes it: made by the API's own
/// reply functions.
fn postcard_replies() -> Target {
    use edge_crdt::api::{self, http::Format::Postcard, kv_list};
    let node = NodeId(1);
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for c in seeds::counters() {
        seeds.push(api::counter::reply(Postcard, "c", node, &c));
    }
    for s in seeds::sets() {
        seeds.push(api::set::reply(Postcard, "s", node, &s, None));
    }
    for r in seeds::registers() {
        seeds.push(api::kv::reply(Postcard, "k", node, &r, false));
    }
    let page = kv_list::MergedPage {
        entries: vec![("a".into(), seeds::registers()[2].clone())],
        cursor: Some("a".into()),
    };
    seeds.push(kv_list::listing_reply(Postcard, &page, &[NodeId(3)]));
    Target::new("codec/postcard_replies", seeds, |bytes| {
        all([
            trip::<api::counter::CounterReply>(bytes),
            trip::<api::set::SetReply>(bytes),
            trip::<api::kv::RegisterWire>(bytes),
            trip::<kv_list::ListingWire>(bytes),
        ])
    })
}

/// A value of the first SQL layout, moved to today's rows: the row it
/// gives decodes, and checking it does not panic.
fn v1_rows() -> Target {
    let mut seeds = vec![vec![1, 0], vec![1, 1, 2, 1, 4, 1, 3, 2, 1, 0, 0]];
    let set = postcard::to_allocvec(&seeds::sets()[1]).unwrap();
    let register = postcard::to_allocvec(&seeds::registers()[3]).unwrap();
    seeds.push([&[1, 2][..], &set].concat());
    seeds.push([&[1, 3][..], &register].concat());
    Target::new("codec/v1_rows", seeds, |bytes| {
        all(
            ["counter:a", "set:a", "kv:a"].map(|key| match v1::row(key, bytes) {
                Ok(Some((object, row, state))) => {
                    let kind = CATALOG.row_type(object.prefix()).expect("a kind");
                    let _ = kind.check(&row, &state);
                    migrated(object.prefix(), &state)
                }
                Ok(None) => Verdict::Accepted,
                Err(_) => Verdict::Refused,
            }),
        )
    })
}

/// A migrated row decodes as its kind's row.
fn migrated(prefix: &str, state: &[u8]) -> Verdict {
    let decodes = match prefix {
        "counter" => decode_row::<edge_crdt::crdt::PnCounter>(state).is_ok(),
        "set" => decode_row::<edge_crdt::crdt::LwwSet>(state).is_ok(),
        _ => decode_row::<edge_crdt::crdt::MvRegister>(state).is_ok(),
    };
    if decodes {
        Verdict::Accepted
    } else {
        Verdict::Broken(format!("a migrated {prefix} row does not decode"))
    }
}

/// Base64 text, as SSE events, contexts and browser storage carry it.
fn base64() -> Target {
    let seeds = seeds::counters()
        .iter()
        .map(|c| codec::state_to_base64(c).into_bytes())
        .chain([b"  AAE=\n".to_vec(), Vec::new()])
        .collect();
    Target::new("codec/base64", seeds, |bytes| {
        round_trip(
            bytes,
            |b| codec::from_base64(&text(b), MAX_STATE),
            |decoded| codec::to_base64(decoded).into_bytes(),
        )
    })
    .dict(&[b"=", b"==", b"+", b"/", b"-", b"_", b"\n", b"AAAA"])
}
