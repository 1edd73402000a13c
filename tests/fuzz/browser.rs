//! What the browser replicas read back from `localStorage`, through the
//! same core calls as `src/browser/*` (wasm only): a counter's base64
//! state, an address book's saved replica, and a topic's saved blocks,
//! each checked again and put in the replica's DAG.

use crate::driver::{Target, Verdict};
use crate::props::{round_trip, text};
use crate::seeds;
use edge_crdt::codec;
use edge_crdt::crdt::stream::{read_car, Cid, Dag, Event, IdText};
use edge_crdt::crdt::PnCounter;
use edge_crdt::kinds::contacts::Replica;
use edge_crdt::kinds::stream::LIMITS;

/// `src/browser/contacts.rs`: the largest saved address book read back.
const MAX_SAVED_BOOK: usize = 8 << 20;

/// `src/browser/stream.rs`: the largest block taken.
const MAX_BLOCK: usize = 64 << 10;

pub fn targets() -> Vec<Target> {
    vec![counter(), contacts(), stream()]
}

/// `CounterReplica::load`: base64 text of a state's envelope.
fn counter() -> Target {
    let seeds = seeds::counters()
        .iter()
        .map(|c| codec::state_to_base64(c).into_bytes())
        .collect();
    Target::new("browser/counter", seeds, |bytes| {
        round_trip(
            bytes,
            |b| codec::state_from_base64::<PnCounter>(&text(b)),
            |c| codec::state_to_base64(c).into_bytes(),
        )
    })
}

/// `ContactsReplica::load` of the base64 of these bytes: a replica that
/// checks, and is saved and loaded back the same.
fn contacts() -> Target {
    let seeds = seeds::replicas().iter().map(codec::encode).collect();
    Target::new("browser/contacts", seeds, |bytes| {
        let load = |b: &[u8]| {
            let text = codec::to_base64(b);
            let bytes = codec::from_base64(&text, MAX_SAVED_BOOK).map_err(|e| e.to_string())?;
            let replica: Replica =
                codec::decode(&bytes, MAX_SAVED_BOOK).map_err(|e| e.to_string())?;
            replica.check().map(|()| replica)
        };
        round_trip(bytes, load, codec::encode)
    })
}

/// One saved event as `StreamReplica::verify` checks it: the id's text,
/// the block's base64, the event under its id and of its topic.
fn verify(id: &Cid, block: &[u8]) -> Result<(Cid, Event), String> {
    let id = Cid::from_text(&id.text()).ok_or("not a content id")?;
    let bytes =
        codec::from_base64(&codec::to_base64(block), MAX_BLOCK).map_err(|e| e.to_string())?;
    let event =
        Event::from_block(&bytes, Some(&id), &LIMITS, u64::MAX).map_err(|e| e.to_string())?;
    if event.topic != seeds::TOPIC {
        return Err("another topic".into());
    }
    Ok((id, event))
}

/// `StreamReplica::load` of a topic's saved blocks (here the blocks of a
/// CAR file): each checked and put in the DAG, whose order then holds
/// every event once, each after the events it links.
fn stream() -> Target {
    let seeds = crate::stream::car_seeds();
    Target::new("browser/stream", seeds, |bytes| {
        let Ok((_, blocks)) = read_car(bytes) else {
            return Verdict::Refused;
        };
        let mut dag = Dag::default();
        for (id, block) in &blocks {
            if let Ok((id, event)) = verify(id, block) {
                dag.insert(id, event);
            }
        }
        let order = dag.order();
        let placed: std::collections::BTreeMap<&Cid, usize> =
            order.iter().enumerate().map(|(i, id)| (id, i)).collect();
        let after_links = dag.events().all(|(id, e)| {
            e.links
                .iter()
                .all(|l| placed.get(l).is_none_or(|at| *at < placed[id]))
        });
        match (
            order.len() == dag.len() && placed.len() == dag.len(),
            after_links,
        ) {
            _ if dag.is_empty() && !blocks.is_empty() => Verdict::Refused,
            (true, true) => Verdict::Accepted,
            _ => Verdict::Broken(format!("the order {order:?} is not the DAG's")),
        }
    })
    .dict(crate::stream::CBOR)
}
