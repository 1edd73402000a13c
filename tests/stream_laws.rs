//! Laws of the event streams' data types: a topic's DAG merge is a join,
//! its heads and missing links are those of its events however they
//! arrived, its total order is the same under any delivery order and puts
//! every event after what it links; an event's id is the sha2-256 CIDv1
//! of its canonical DAG-CBOR block, which a generic IPLD decoder reads
//! back byte for byte, and it changes when any byte of the block changes;
//! one closure answer fills any gap; paging a topic covers each event of
//! a query's range exactly once.
#![cfg(not(target_arch = "wasm32"))]

use edge_crdt::crdt::stream::{BadEvent, Cid, Dag, Event, Limits};
use edge_crdt::kinds::stream::ops::{page, Direction, Query};
use ipld_core::ipld::Ipld;
use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// A history: event `i` links a few of the events before it (as a node
/// that knew those heads would), with timestamps that often tie.
fn history() -> impl Strategy<Value = Vec<(Cid, Event)>> {
    vec(
        (
            vec(any::<prop::sample::Index>(), 0..3),
            0..4u64,
            any::<u8>(),
        ),
        1..24,
    )
    .prop_map(|steps| {
        let mut out: Vec<(Cid, Event)> = Vec::new();
        for (picks, t, m) in steps {
            let links: Vec<Cid> = if out.is_empty() {
                Vec::new()
            } else {
                picks.iter().map(|p| out[p.index(out.len())].0).collect()
            };
            let event = Event::new("t", 1_000 + t, vec![m], links);
            out.push((event.id(), event));
        }
        out
    })
}

fn dag_of<'a>(events: impl IntoIterator<Item = &'a (Cid, Event)>) -> Dag {
    let mut dag = Dag::default();
    for (id, e) in events {
        dag.insert(*id, e.clone());
    }
    dag
}

/// Heads and missing links recomputed from the events alone.
fn derived(dag: &Dag) -> (BTreeSet<Cid>, BTreeSet<Cid>) {
    let linked: BTreeSet<Cid> = dag.events().flat_map(|(_, e)| e.links.clone()).collect();
    let heads = dag
        .events()
        .map(|(id, _)| *id)
        .filter(|id| !linked.contains(id))
        .collect();
    let missing = linked
        .into_iter()
        .filter(|l| dag.get(l).is_none())
        .collect();
    (heads, missing)
}

proptest! {
    /// A replica that holds some events (with gaps) asks one that holds
    /// them all for the closure of its missing links and of the other's
    /// heads above its complete frontier: one answer fills it, and
    /// nothing in the answer is at or below that frontier.
    #[test]
    fn one_closure_answer_fills_any_gap(h in history(), keep in vec(any::<bool>(), 24)) {
        let full = dag_of(&h);
        let mut part = dag_of(h.iter().zip(&keep).filter(|(_, k)| **k).map(|(e, _)| e));
        let frontier: Vec<Cid> = part.complete_frontier().into_iter().collect();
        let below = {
            let mut seen = BTreeSet::new();
            let mut todo = frontier.clone();
            while let Some(id) = todo.pop() {
                if let Some(e) = part.get(&id).filter(|_| seen.insert(id)) {
                    todo.extend(e.links.clone());
                }
            }
            seen
        };
        prop_assert!(below.iter().all(|id| part.get(id).is_some()), "the frontier's past is held");
        let want: Vec<Cid> = part.missing().iter().chain(full.heads()).copied().collect();
        let answer = full.closure(&want, &frontier);
        prop_assert!(answer.iter().all(|id| !below.contains(id)));
        let order = full.order();
        let position = |id: &Cid| order.iter().position(|o| o == id);
        prop_assert!(answer.windows(2).all(|w| position(&w[0]) < position(&w[1])));
        for id in &answer {
            part.insert(*id, full.get(id).unwrap().clone());
        }
        prop_assert_eq!(part, full);
    }

    #[test]
    fn dag_merge_is_a_join(h in history(), split in vec(0..3usize, 24)) {
        let part = |k: usize| dag_of(h.iter().enumerate().filter(|(i, _)| split[*i] == k).map(|(_, e)| e));
        let (a, b, c) = (part(0), part(1), part(2));
        let m = |x: &Dag, y: &Dag| { let mut z = x.clone(); z.merge(y); z };
        prop_assert_eq!(m(&a, &b), m(&b, &a));
        prop_assert_eq!(m(&m(&a, &b), &c), m(&a, &m(&b, &c)));
        prop_assert_eq!(m(&a, &a), a.clone());
        prop_assert_eq!(m(&m(&a, &b), &c), dag_of(&h));
        for d in [&a, &b, &m(&a, &c)] {
            let (heads, missing) = derived(d);
            prop_assert_eq!(d.heads(), &heads);
            prop_assert_eq!(d.missing(), &missing);
        }
    }

    #[test]
    fn the_total_order_is_the_same_under_any_delivery_order(
        h in history(),
        shuffle in vec(any::<prop::sample::Index>(), 24),
    ) {
        let mut arrival = h.clone();
        for (i, s) in shuffle.iter().enumerate().take(arrival.len()) {
            let j = s.index(arrival.len());
            arrival.swap(i, j);
        }
        let (inorder, shuffled) = (dag_of(&h), dag_of(&arrival));
        prop_assert_eq!(&inorder, &shuffled);
        let order = shuffled.order();
        prop_assert_eq!(&order, &inorder.order());
        let distinct: BTreeSet<&Cid> = h.iter().map(|(id, _)| id).collect();
        prop_assert_eq!(order.len(), distinct.len(), "each event once (equal events are one)");
        let at = |id: &Cid| order.iter().position(|o| o == id).unwrap();
        for (id, e) in &h {
            for link in &e.links {
                prop_assert!(at(link) < at(id), "an event comes after what it links");
            }
        }
    }

    #[test]
    fn the_id_changes_when_any_byte_of_the_block_changes(
        h in history(),
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let (id, event) = &h[which.index(h.len())];
        let mut block = event.encode();
        let i = at.index(block.len());
        block[i] ^= flip;
        let refused = Event::from_block(&block, Some(id), &Limits::default(), u64::MAX);
        prop_assert!(refused.is_err(), "byte {} changed, yet the block checks", i);
        if let Ok(other) = Event::from_block(&block, None, &Limits::default(), u64::MAX) {
            prop_assert_ne!(other.id(), *id);
        }
    }

    #[test]
    fn a_generic_ipld_decoder_reads_the_block_back_byte_for_byte(h in history()) {
        for (id, event) in &h {
            let block = event.encode();
            let ipld: Ipld = serde_ipld_dagcbor::from_slice(&block).unwrap();
            prop_assert_eq!(serde_ipld_dagcbor::to_vec(&ipld).unwrap(), block.clone());
            let Ipld::Map(fields) = &ipld else { panic!("an event is a map") };
            let links = match fields.get("links") {
                Some(Ipld::List(links)) => links.clone(),
                other => panic!("links: {other:?}"),
            };
            prop_assert_eq!(links, event.links.iter().map(|l| Ipld::Link(*l)).collect::<Vec<_>>());
            prop_assert_eq!(fields.get("message"), Some(&Ipld::Bytes(event.message.clone())));
            prop_assert_eq!(edge_crdt::crdt::stream::block_id(&block), *id);
        }
    }
}

#[test]
fn an_event_is_refused_past_its_limits_and_with_links_that_are_not_event_ids() {
    let limits = Limits {
        max_links: 2,
        max_message: 4,
        max_skew_ns: 10,
    };
    let base = Event::new("t", 100, b"hi".to_vec(), Vec::new());
    let ok = |e: &Event| Event::from_block(&e.encode(), Some(&e.id()), &limits, 100);
    assert_eq!(ok(&base), Ok(base.clone()));
    let big = Event::new("t", 100, b"hello".to_vec(), Vec::new());
    assert_eq!(ok(&big), Err(BadEvent::TooLarge(5)));
    let ahead = Event::new("t", 111, Vec::new(), Vec::new());
    assert_eq!(ok(&ahead), Err(BadEvent::Ahead(11)));
    let ids: Vec<Cid> = (0..3)
        .map(|i| Event::new("t", i, Vec::new(), Vec::new()).id())
        .collect();
    let many = Event::new("t", 100, Vec::new(), ids.clone());
    assert_eq!(ok(&many), Err(BadEvent::TooManyLinks(3)));
    let raw = Cid::new_v1(0x55, *ids[0].hash());
    let odd = Event::new("t", 100, Vec::new(), vec![raw]);
    assert!(matches!(ok(&odd), Err(BadEvent::BadLink(_))));
    let mut descending = vec![ids[0], ids[1]];
    descending.sort_unstable_by(|a, b| b.cmp(a));
    let unsorted = Event {
        links: descending,
        ..base.clone()
    };
    assert!(matches!(ok(&unsorted), Err(BadEvent::Malformed(_))));
    let wrong = Event::from_block(&base.encode(), Some(&ids[0]), &limits, 100);
    assert!(matches!(wrong, Err(BadEvent::WrongId { .. })));
    assert!(matches!(
        Event::from_block(b"\xa0", None, &limits, 100),
        Err(BadEvent::Malformed(_))
    ));
}

proptest! {
    /// Paging a DAG that does not change, in either direction, from any
    /// time range, with any page size, returns each event of the range
    /// exactly once, in the total order (or its reverse).
    #[test]
    fn paging_covers_each_event_of_the_range_exactly_once(
        h in history(),
        limit in 1..6usize,
        descending in any::<bool>(),
        range in (0..5u64, 0..5u64),
    ) {
        let dag = dag_of(&h);
        let ordered: Vec<(Cid, u64)> = dag
            .order()
            .into_iter()
            .map(|id| (id, dag.get(&id).unwrap().timestamp_ns))
            .collect();
        let (start, end) = (1_000 + range.0.min(range.1), 1_000 + range.0.max(range.1));
        let direction = if descending { Direction::Descending } else { Direction::Ascending };
        let mut query = Query {
            start_time_ns: Some(start),
            end_time_ns: Some(end),
            limit,
            direction,
            cursor: None,
        };
        let mut seen = Vec::new();
        for _ in 0..=ordered.len() {
            let (ids, next) = page(&ordered, &query).unwrap();
            prop_assert!(ids.len() <= limit);
            seen.extend(ids);
            match next {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        let mut want: Vec<Cid> = ordered
            .iter()
            .filter(|(_, t)| (start..=end).contains(t))
            .map(|(id, _)| *id)
            .collect();
        if descending {
            want.reverse();
        }
        prop_assert_eq!(seen, want);
    }
}
