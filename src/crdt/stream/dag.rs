//! A topic's Merkle-Clock: its events by id, with its heads (events no
//! other event links) and its missing links (ids linked but not held)
//! kept as each event arrives, never by scanning. Merging is the union of
//! the events, so it is a join; the heads and the missing links are
//! functions of the events.
//!
//! The total order ([`Dag::order`]) is topological, every event after
//! what it links, with ties among ready events broken by
//! `(timestamp_ns, id)`: every replica with the same events orders them
//! the same way, whatever order they arrived in.

use super::event::Event;
use cid::Cid;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// A topic's events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dag {
    events: BTreeMap<Cid, Event>,
    heads: BTreeSet<Cid>,
    missing: BTreeSet<Cid>,
    linked: BTreeSet<Cid>,
}

impl Dag {
    /// Adds an event under its id (the caller checked it); whether it was new.
    pub fn insert(&mut self, id: Cid, event: Event) -> bool {
        if self.events.contains_key(&id) {
            return false;
        }
        for link in &event.links {
            self.linked.insert(*link);
            self.heads.remove(link);
            if !self.events.contains_key(link) {
                self.missing.insert(*link);
            }
        }
        self.missing.remove(&id);
        if !self.linked.contains(&id) {
            self.heads.insert(id);
        }
        self.events.insert(id, event);
        true
    }

    /// Joins `other` into `self`; whether anything was new.
    pub fn merge(&mut self, other: &Dag) -> bool {
        let mut changed = false;
        for (id, event) in &other.events {
            changed |= self.insert(*id, event.clone());
        }
        changed
    }

    /// An event by id.
    pub fn get(&self, id: &Cid) -> Option<&Event> {
        self.events.get(id)
    }

    /// Every event, by id.
    pub fn events(&self) -> impl Iterator<Item = (&Cid, &Event)> {
        self.events.iter()
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events no held event links, in id order.
    pub fn heads(&self) -> &BTreeSet<Cid> {
        &self.heads
    }

    /// The ids linked by a held event but not held, in id order.
    pub fn missing(&self) -> &BTreeSet<Cid> {
        &self.missing
    }

    /// Every held event, each after the held events it links; among the
    /// ready ones, the earliest `(timestamp_ns, id)` first.
    pub fn order(&self) -> Vec<Cid> {
        let mut waiting: BTreeMap<Cid, usize> = BTreeMap::new();
        let mut children: BTreeMap<Cid, Vec<Cid>> = BTreeMap::new();
        let mut ready = BinaryHeap::new();
        for (id, event) in &self.events {
            let held: Vec<&Cid> = event
                .links
                .iter()
                .filter(|l| self.events.contains_key(l))
                .collect();
            for link in &held {
                children.entry(**link).or_default().push(*id);
            }
            if held.is_empty() {
                ready.push(Reverse((event.timestamp_ns, *id)));
            } else {
                waiting.insert(*id, held.len());
            }
        }
        let mut out = Vec::with_capacity(self.events.len());
        while let Some(Reverse((_, id))) = ready.pop() {
            out.push(id);
            for child in children.get(&id).into_iter().flatten() {
                let left = waiting.get_mut(child).expect("a child waits");
                *left -= 1;
                if *left == 0 {
                    waiting.remove(child);
                    ready.push(Reverse((self.events[child].timestamp_ns, *child)));
                }
            }
        }
        out
    }

    /// The latest events whose every ancestor is held: each held event
    /// whose links are all held and complete, that no such event links.
    /// Whoever holds these holds everything below them.
    pub fn complete_frontier(&self) -> BTreeSet<Cid> {
        let mut complete = BTreeSet::new();
        for id in self.order() {
            if self.events[&id].links.iter().all(|l| complete.contains(l)) {
                complete.insert(id);
            }
        }
        let below: BTreeSet<Cid> = complete
            .iter()
            .flat_map(|id| self.events[id].links.iter().copied())
            .collect();
        complete.difference(&below).copied().collect()
    }

    /// The held events reachable from `want` (through links) that are not
    /// `frontier` or below it, in the total order: what a replica whose
    /// complete frontier is `frontier` lacks of `want`'s past.
    pub fn closure(&self, want: &[Cid], frontier: &[Cid]) -> Vec<Cid> {
        let below = self.reach(frontier, &BTreeSet::new());
        let wanted = self.reach(want, &below);
        self.order()
            .into_iter()
            .filter(|id| wanted.contains(id))
            .collect()
    }

    /// The held events reachable from `from`, not walking into `stop`.
    fn reach(&self, from: &[Cid], stop: &BTreeSet<Cid>) -> BTreeSet<Cid> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<Cid> = from.to_vec();
        while let Some(id) = todo.pop() {
            if stop.contains(&id) || !self.events.contains_key(&id) || !seen.insert(id) {
                continue;
            }
            todo.extend(self.events[&id].links.iter().copied());
        }
        seen
    }
}
