//! Event streams (`stream:TOPIC`) on the engine: a topic is an object on
//! `REPLICAS` nodes of the ring, one row per event, keyed by its content
//! id and holding its DAG-CBOR block ([`Event`]). Rows are written once,
//! so a merge keeps what it has. Every arrival is checked against its
//! key: a block whose id is not its key, or past the limits, is refused
//! (a peer's whole frame with it). Each node keeps the topic's heads and
//! missing links in two local rows, moved as each event arrives from any
//! source, reading only the rows the event links; its log numbers the
//! events in the order they arrived here. Events are stored flattened in
//! the `event` table (`cid, topic, timestamp_ns` (8 bytes big-endian), `message, links`).
//!
//! Replicas catch up beyond gossip by their own sync ([`sync`]): backfill
//! by content id and rebroadcast of a dormant topic's heads.

use crate::crdt::stream::{BadEvent, Cid, Dag, Event, IdText, Limits};
use crate::crdt::{Hlc, InvalidState};
use crate::engine::{
    Cell, CellType, Exec, Flat, Merged, Policy, RowError, RowKey, RowType, SyncCx, Table,
};
use crate::NodeId;
use std::collections::BTreeSet;

pub mod ops;
pub mod sync;

/// The event-stream kind: `stream:TOPIC`.
pub struct Stream;

impl crate::kinds::Kind for Stream {
    const PREFIX: &'static str = "stream";
    type Op = ops::Op;
    type Outcome = ops::Outcome;

    fn rows() -> &'static dyn RowType {
        &Events
    }

    fn execute(
        op: ops::Op,
        host: &mut dyn crate::kinds::OpHost,
    ) -> Result<ops::Outcome, crate::error::ApiError> {
        ops::execute(op, host)
    }

    fn event(rows: &[(RowKey, Vec<u8>)]) -> String {
        ops::event_data(rows)
    }
}

/// A topic's events, with heads and missing links kept per arrival.
pub struct Events;

/// The local row of a topic's heads: the ids no held event links.
pub const HEADS: &str = "~heads";
/// The local row of a topic's missing links: ids linked, not held.
pub const MISSING: &str = "~missing";

/// What an event may hold.
pub const LIMITS: Limits = Limits {
    max_links: 64,
    max_message: 16 * 1024,
    max_skew_ns: u64::MAX,
};

fn invalid(e: BadEvent) -> InvalidState {
    InvalidState(e.to_string())
}

/// The event in a stored or arriving block (whose id the key was checked
/// against).
fn event(block: &[u8]) -> Result<Event, InvalidState> {
    Event::from_block(block, None, &LIMITS, u64::MAX).map_err(invalid)
}

/// A topic's rows (events by id) as a DAG.
fn dag_of<'a>(rows: impl Iterator<Item = (&'a RowKey, &'a [u8])>) -> Dag {
    let mut dag = Dag::default();
    for (key, block) in rows {
        if let (Some(id), Ok(e)) = (Cid::from_text(key), event(block)) {
            dag.insert(id, e);
        }
    }
    dag
}

/// Checks a block against the id it arrived under, and the limits.
fn check_block(id: &Cid, block: &[u8]) -> Result<(), InvalidState> {
    Event::from_block(block, Some(id), &LIMITS, u64::MAX)
        .map(drop)
        .map_err(invalid)
}

/// A set of ids kept in a local row, as text.
fn ids(state: Option<&[u8]>) -> BTreeSet<String> {
    state
        .and_then(|b| postcard::from_bytes(b).ok())
        .unwrap_or_default()
}

fn ids_state(ids: &BTreeSet<String>) -> Option<Vec<u8>> {
    (!ids.is_empty()).then(|| postcard::to_allocvec(ids).unwrap_or_default())
}

/// The heads a node holds of the topic an [`Exec`] runs on, in id order
/// (the row keeps them in text order, which base32 does not preserve).
pub fn heads(x: &Exec<'_>) -> Vec<Cid> {
    let mut heads: Vec<Cid> = ids(x.local(HEADS))
        .iter()
        .filter_map(|id| Cid::from_text(id))
        .collect();
    crate::heapsort::sort(&mut heads);
    heads
}

/// Appends `message` to the topic an [`Exec`] runs on: an event stamped
/// `timestamp_ns` that links the node's heads, and so becomes its only
/// head. Returns the event and its id; [`Exec::commit`] stores it.
pub fn append(x: &mut Exec<'_>, message: Vec<u8>, timestamp_ns: u64) -> (Cid, Event) {
    let topic = x.object().name().to_owned();
    let event = Event::new(&topic, timestamp_ns, message, heads(x));
    let block = event.encode();
    let id = crate::crdt::stream::block_id(&block);
    x.put_bytes(&id.text(), block);
    (id, event)
}

impl RowType for Events {
    fn policy(&self) -> Policy {
        Policy::Ring
    }

    fn merge(&self, state: Option<&[u8]>, delta: &[u8], limit: u64) -> Result<Merged, RowError> {
        if let Some(held) = state {
            return Ok(Merged {
                state: held.to_vec(),
                changed: false,
                latest_stamp: self.latest_stamp(held),
                tombstone: false,
                novel: None,
            });
        }
        let stamp =
            Hlc::stamp_of(event(delta).map_err(RowError::Invalid)?.timestamp_ns / 1_000_000);
        if stamp > limit {
            return Err(RowError::Ahead(stamp));
        }
        Ok(Merged {
            state: delta.to_vec(),
            changed: true,
            latest_stamp: Some(stamp),
            tombstone: false,
            novel: None,
        })
    }

    /// The block decodes, checks, and its id is its key.
    fn check(&self, key: &str, row: &[u8]) -> Result<(), InvalidState> {
        let id = Cid::from_text(key)
            .ok_or_else(|| InvalidState(format!("`{key}` is not a content id in base32")))?;
        check_block(&id, row)
    }

    fn latest_stamp(&self, row: &[u8]) -> Option<u64> {
        Some(Hlc::stamp_of(event(row).ok()?.timestamp_ns / 1_000_000))
    }

    fn absorb(&self, _: &[u8], _: NodeId, _: NodeId) -> Option<Vec<u8>> {
        None
    }

    /// The event's id: the order events arrived here.
    fn log_entry(&self, row: &str, _: &[u8]) -> Option<Vec<u8>> {
        Some(row.as_bytes().to_vec())
    }

    fn locals(&self) -> &'static [&'static str] {
        &[HEADS, MISSING, sync::SYNC]
    }

    fn sync_needs(&self, payload: &[u8]) -> Vec<RowKey> {
        sync::decode(payload)
            .map(|s| sync::needs(&s).0)
            .unwrap_or_default()
    }

    fn sync_needs_whole(&self, payload: &[u8]) -> bool {
        sync::decode(payload).is_ok_and(|s| sync::needs(&s).1)
    }

    fn check_sync(&self, payload: &[u8]) -> Result<(), InvalidState> {
        sync::check(payload).map(drop)
    }

    fn on_sync(&self, cx: &mut SyncCx<'_>, from: NodeId, payload: &[u8]) {
        if let Ok(say) = sync::decode(payload) {
            sync::on_sync(cx, from, say);
        }
    }

    fn on_wake(&self, cx: &mut SyncCx<'_>) {
        sync::wake(cx);
    }

    fn flat(&self) -> Option<&dyn Flat> {
        Some(self)
    }

    /// The events it links: whether each is held decides the missing links.
    fn reads(&self, _: &str, delta: &[u8]) -> Vec<RowKey> {
        event(delta)
            .map(|e| e.links.iter().map(Cid::text).collect())
            .unwrap_or_default()
    }

    /// An event that arrives is a head unless a held event links it (it
    /// was missing); what it links is no longer a head, and missing if
    /// not held.
    fn on_applied(&self, cx: &mut SyncCx<'_>, row: &str) {
        let Some(arrived) = cx.row(row).and_then(|b| event(b).ok()) else {
            return;
        };
        let (mut heads, mut missing) = (ids(cx.local(HEADS)), ids(cx.local(MISSING)));
        if !missing.remove(row) {
            heads.insert(row.to_owned());
        }
        for link in arrived.links.iter().map(Cid::text) {
            heads.remove(&link);
            // Arrivals load what they link (`reads`); an append links
            // only heads, which are held.
            if cx.knows(&link) && cx.row(&link).is_none() {
                missing.insert(link);
            }
        }
        let heads_moved = ids(cx.local(HEADS)) != heads;
        let missing_now = !missing.is_empty();
        cx.set_local(HEADS, ids_state(&heads));
        cx.set_local(MISSING, ids_state(&missing));
        sync::changed(cx, heads_moved, missing_now);
    }
}

/// The event table: one SQL row per event, its links as space-separated
/// content ids, so that queries by time can use an index.
pub static EVENT_TABLE: Table = Table {
    name: "event",
    key: "cid",
    columns: &[
        ("topic", CellType::Text),
        // 8 bytes big-endian: nanoseconds are beyond what an INTEGER
        // brings back exactly (`engine::MAX_CELL_INT`)
        ("timestamp_ns", CellType::Blob),
        ("message", CellType::Blob),
        ("links", CellType::Text),
    ],
};

impl Flat for Events {
    fn table(&self) -> &'static Table {
        &EVENT_TABLE
    }

    fn holds(&self, row: &str) -> bool {
        !self.locals().contains(&row)
    }

    fn cells(&self, state: &[u8]) -> Result<Vec<Cell>, InvalidState> {
        let e = event(state)?;
        let links: Vec<String> = e.links.iter().map(Cid::text).collect();
        Ok(vec![
            Cell::Text(e.topic),
            Cell::Blob(e.timestamp_ns.to_be_bytes().to_vec()),
            Cell::Blob(e.message),
            Cell::Text(links.join(" ")),
        ])
    }

    fn state(&self, cells: &[Cell]) -> Result<Vec<u8>, InvalidState> {
        let bad = |what: &str| InvalidState(format!("an event's {what}"));
        let [Cell::Text(topic), ts, Cell::Blob(message), Cell::Text(links)] = cells else {
            return Err(bad("cells"));
        };
        let ts = match ts {
            Cell::Blob(b) => {
                u64::from_be_bytes(b.as_slice().try_into().map_err(|_| bad("timestamp"))?)
            }
            // the first layout's INTEGER (exact only up to 2^53)
            Cell::Int(i) => u64::try_from(*i).map_err(|_| bad("timestamp"))?,
            _ => return Err(bad("timestamp")),
        };
        let links = links
            .split_whitespace()
            .map(|l| Cid::from_text(l).ok_or_else(|| bad("links")))
            .collect::<Result<Vec<Cid>, _>>()?;
        Ok(Event::new(topic, ts, message.clone(), links).encode())
    }
}
