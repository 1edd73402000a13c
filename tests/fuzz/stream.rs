//! Event streams: an event's DAG-CBOR block (from a client, a peer or a
//! page), a topic's CAR file, and content ids as text (row keys, `cid`
//! path segments and query cursors).

use crate::driver::Target;
use crate::props::{all, round_trip, text};
use crate::seeds;
use edge_crdt::api::stream::parse_cid;
use edge_crdt::crdt::stream::{car, read_car, Cid, Event, IdText, Limits};
use edge_crdt::ErrorCode;

/// Tokens of DAG-CBOR events.
pub const CBOR: &[&[u8]] = &[
    b"\xa4",
    b"\x65topic",
    b"\x6ctimestamp_ns",
    b"\x67message",
    b"\x65links",
    b"\x80",
    b"\x81",
    b"\x40",
    b"\x60",
    b"\x1b",
    b"\xd8\x2a\x58\x25\x00\x01\x71\x12\x20",
    b"\xf6",
    b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00",
];

pub fn targets() -> Vec<Target> {
    vec![event_block(), car_file(), cid_text()]
}

/// A block: what decodes is canonical and decodes again to the same
/// event, under its own id too.
fn event_block() -> Target {
    let seeds = seeds::events().into_iter().map(|(_, b)| b).collect();
    Target::new("stream/event_block", seeds, |block| {
        let limits = Limits::default();
        let id = edge_crdt::crdt::stream::block_id(block);
        all([
            round_trip(
                block,
                |b| Event::from_block(b, None, &limits, u64::MAX),
                Event::encode,
            ),
            round_trip(
                block,
                |b| Event::from_block(b, Some(&id), &limits, u64::MAX),
                Event::encode,
            ),
        ])
    })
    .dict(CBOR)
}

/// A topic's export: what reads writes out to a file that reads the same.
fn car_file() -> Target {
    Target::new("stream/car", car_seeds(), |bytes| {
        round_trip(bytes, read_car, |(roots, blocks)| {
            car(roots, blocks.clone())
        })
    })
    .dict(CBOR)
}

/// CAR files of the seed topic: whole, empty, and one event.
pub fn car_seeds() -> Vec<Vec<u8>> {
    let events = seeds::events();
    let roots: Vec<Cid> = events.iter().rev().take(2).map(|(id, _)| *id).collect();
    vec![
        car(&roots, events.clone()),
        car(&[], []),
        car(&roots[..1], events[..1].to_vec()),
    ]
}

/// A content id in text: what parses is the id's own text, and the API
/// takes it as an event's id exactly when it names one.
fn cid_text() -> Target {
    let seeds = seeds::events()
        .iter()
        .map(|(id, _)| id.text().into_bytes())
        .collect();
    Target::new("stream/cid_text", seeds, |bytes| {
        let text = text(bytes);
        let _ = parse_cid(&text, ErrorCode::BadCid);
        round_trip(
            bytes,
            |b| Cid::from_text(&crate::props::text(b)).ok_or(()),
            |id| id.text().into_bytes(),
        )
    })
    .dict(&[b"b", b"bafy", b"baf", b"=", b"A"])
}
