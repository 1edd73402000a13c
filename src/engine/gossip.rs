//! Delta gossip: a write's delta is joined into a buffer for every other
//! replica of its object; at most once per gossip interval each buffer is
//! flushed, one batch per peer (in pages of at most `frame_bytes` of rows).
//! A failed send goes back into its buffer.
//!
//! Two nodes exchange once per interval, not twice: the answer to a peer's
//! frame carries what waits for that peer, and a node does not send to a
//! peer it exchanged with within the interval. (An answer that is lost
//! loses its rows from the buffer: anti-entropy repairs them.)

use super::apply::Spread;
use super::kind::{RowError, RowType};
use super::message::{RowRefs, RowStates};
use super::node::Node;
use super::{fanout, Membership, Message, ObjectId, Partition, RowKey};
use crate::{NodeId, NodeMap};
use std::collections::BTreeMap;

/// What waits for one peer.
#[derive(Debug, Default)]
struct Outbox {
    rows: BTreeMap<(ObjectId, RowKey), Vec<u8>>,
    members: bool,
}

/// The gossip buffers of every peer.
#[derive(Debug, Default)]
pub(crate) struct Outboxes {
    peers: NodeMap<Outbox>,
    /// When buffers may next be flushed.
    pub next_flush: u64,
    /// When gossip last went either way with each peer.
    exchanged: NodeMap<u64>,
}

impl Outboxes {
    /// Joins `delta` of a row into `peer`'s buffer.
    pub fn add(
        &mut self,
        peer: NodeId,
        object: &ObjectId,
        row: &str,
        delta: &[u8],
        kind: &dyn RowType,
    ) {
        let rows = &mut self.peers.get_or_default(peer).rows;
        match rows.get_mut(&(object.clone(), row.to_owned())) {
            Some(buffered) => {
                if let Ok(m) = kind.merge(Some(buffered), delta, u64::MAX) {
                    *buffered = m.state;
                }
            }
            None => {
                rows.insert((object.clone(), row.to_owned()), delta.to_vec());
            }
        }
    }

    /// Drops what any peer's buffer holds of a row.
    pub fn drop_row(&mut self, object: &ObjectId, row: &str) {
        let key = (object.clone(), row.to_owned());
        for (_, b) in self.peers.iter_mut() {
            b.rows.remove(&key);
        }
    }

    /// Keeps buffers for `peers` only; those of `tell` are to be told
    /// the membership.
    pub fn set_peers(&mut self, peers: &[NodeId], tell: &[NodeId]) {
        self.peers.retain(|id, _| peers.contains(id));
        self.exchanged.retain(|id, _| peers.contains(id));
        for peer in tell {
            self.peers.get_or_default(*peer).members = true;
        }
    }

    /// The next gossip to `peer` carries the membership.
    pub fn tell_members(&mut self, peer: NodeId) {
        self.peers.get_or_default(peer).members = true;
    }

    /// `peer` was just sent the membership.
    pub fn sent_members(&mut self, peer: NodeId) {
        if let Some(b) = self.peers.get_mut(&peer) {
            b.members = false;
        }
    }

    /// Forgets every buffer.
    pub fn clear(&mut self) {
        self.peers.clear();
        self.exchanged.clear();
    }

    /// Whether gossip went either way with `peer` after `since`.
    fn exchanged_after(&self, peer: NodeId, since: u64) -> bool {
        self.exchanged.get(&peer).is_some_and(|at| *at > since)
    }

    /// Whether some peer this node may reach has something buffered.
    pub fn pending(&self, me: NodeId, partition: &Partition) -> bool {
        self.peers
            .iter()
            .any(|(peer, b)| (b.members || !b.rows.is_empty()) && !partition.separates(me, *peer))
    }

    /// Takes what `peer` waits for: the membership flag and the rows,
    /// grouped by object.
    fn take(&mut self, peer: NodeId) -> (bool, RowStates) {
        let Some(b) = self.peers.get_mut(&peer) else {
            return (false, Vec::new());
        };
        let members = std::mem::take(&mut b.members);
        (members, group(std::mem::take(&mut b.rows)))
    }

    /// The peers with something buffered.
    fn waiting(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers
            .iter()
            .filter(|(_, b)| b.members || !b.rows.is_empty())
            .map(|(p, _)| *p)
    }
}

/// Rows keyed by `(object, row)`, grouped by object.
fn group(rows: BTreeMap<(ObjectId, RowKey), Vec<u8>>) -> RowStates {
    let mut out: RowStates = Vec::new();
    for ((object, row), state) in rows {
        match out.last_mut() {
            Some((o, rows)) if *o == object => rows.push((row, state)),
            _ => out.push((object, vec![(row, state)])),
        }
    }
    out
}

/// Splits rows into batches of about `budget` bytes of states each (a
/// row larger than the budget travels alone).
pub(crate) fn pages(rows: RowStates, budget: usize) -> Vec<RowStates> {
    let mut pages: Vec<RowStates> = Vec::new();
    let mut page: RowStates = Vec::new();
    let mut size = 0;
    for (object, states) in rows {
        for (row, state) in states {
            let len = state.len() + row.len() + object.as_str().len();
            if size + len > budget && !page.is_empty() {
                pages.push(std::mem::take(&mut page));
                size = 0;
            }
            size += len;
            match page.last_mut() {
                Some((o, rows)) if *o == object => rows.push((row, state)),
                _ => page.push((object.clone(), vec![(row, state)])),
            }
        }
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

impl Node {
    pub(super) fn on_gossip(
        &mut self,
        from: NodeId,
        members: Option<Membership>,
        rows: RowStates,
        want: RowRefs,
    ) {
        if let Some(m) = members {
            self.merge_members_from(&m, Some(from));
        }
        let limit = self.drift_limit();
        for (object, rows) in rows {
            // The sender keeps what it sends: an object this node does not
            // replicate (any more) stays with those that do.
            if !self.is_replica(self.leaf(&object)) {
                continue;
            }
            // In a group larger than the fanout, what is new here goes on.
            let spread = match self.relays(&object) {
                true => Spread::Gossip { except: Some(from) },
                false => Spread::Quiet,
            };
            let mut changed = false;
            for (row, delta) in rows {
                if !self.knows_row(&object, &row) {
                    continue;
                }
                match self.apply(&object, &row, &delta, limit, spread) {
                    Ok(c) => changed |= c,
                    Err(RowError::Ahead(_)) => self.refused += 1,
                    Err(_) => {}
                }
            }
            if changed && spread == Spread::Quiet {
                // The others may lack it too (its writer may have crashed
                // before its gossip left): anti-entropy checks them soon.
                let others = self.replicas(&object).into_iter().filter(|p| *p != from);
                self.owe_check(others.collect::<Vec<_>>());
            }
        }
        let states = self.states_of(want);
        self.send_rows(from, None, states, Vec::new());
    }

    /// The replicas this node pushes `object`'s deltas to: every other
    /// one, or in a group larger than the fanout its fingers.
    pub(super) fn push_targets(&self, object: &ObjectId) -> Vec<NodeId> {
        fanout::fingers(self.id, &self.replicas(object), self.config.gossip_fanout)
    }

    /// The replicas this node passes on what `from` sent of `object` to.
    pub(super) fn relay_targets(&self, object: &ObjectId, from: NodeId) -> Vec<NodeId> {
        fanout::relay_targets(
            self.id,
            from,
            &self.replicas(object),
            self.config.gossip_fanout,
        )
    }

    /// Whether this node passes on what a peer's gossip of `object` brings.
    fn relays(&self, object: &ObjectId) -> bool {
        let others = self
            .replicas(object)
            .iter()
            .filter(|n| **n != self.id)
            .count();
        fanout::relays(others, self.config.gossip_fanout)
    }

    /// The states in memory of the rows named.
    pub(super) fn states_of(&self, refs: RowRefs) -> RowStates {
        refs.into_iter()
            .filter_map(|(object, rows)| {
                let states: Vec<(RowKey, Vec<u8>)> = rows
                    .into_iter()
                    .filter_map(|r| {
                        let state = self.table.state(&object, &r)?.to_vec();
                        Some((r, state))
                    })
                    .collect();
                (!states.is_empty()).then_some((object, states))
            })
            .collect()
    }

    /// Sends rows and a want list to `to`, in pages; the first carries
    /// `members`. Sends nothing when there is nothing to say; else notes
    /// the exchange.
    pub(super) fn send_rows(
        &mut self,
        to: NodeId,
        members: Option<Membership>,
        rows: RowStates,
        want: RowRefs,
    ) {
        if members.is_none() && rows.is_empty() && want.is_empty() {
            return;
        }
        self.outbox.exchanged.insert(to, self.now);
        if !rows.is_empty() {
            self.owe_check([to]);
        }
        let mut pages = pages(rows, self.config.frame_bytes).into_iter();
        let first = pages.next().unwrap_or_default();
        self.send(
            to,
            Message::Gossip {
                members,
                rows: first,
                want,
            },
        );
        for rows in pages {
            let message = Message::Gossip {
                members: None,
                rows,
                want: Vec::new(),
            };
            self.send(to, message);
        }
    }

    /// Sends the buffers of at most `gossip_fanout` peers this node may
    /// reach and has not exchanged gossip with within the interval: those
    /// it exchanged with least recently first, so each waits its turn.
    pub(super) fn flush_gossip(&mut self) {
        let recent = self.now.saturating_sub(self.config.gossip_interval_ms);
        let mut due: Vec<(u64, NodeId)> = self
            .outbox
            .waiting()
            .filter(|p| {
                !self.partition.separates(self.id, *p) && !self.outbox.exchanged_after(*p, recent)
            })
            .map(|p| (self.outbox.exchanged.get(&p).copied().unwrap_or(0), p))
            .collect();
        crate::heapsort::sort(&mut due);
        for (_, peer) in due.into_iter().take(self.config.gossip_fanout.max(1)) {
            self.send_buffer(peer);
        }
    }

    /// A frame from `from` is being answered: that is this interval's
    /// exchange with it, and what waits for `from` goes with the answer,
    /// if this node gossips and may reach it.
    pub(crate) fn answer_gossip(&mut self, from: NodeId) {
        self.outbox.exchanged.insert(from, self.now);
        let live = |n: &Node, id| n.members.status(id).is_some_and(super::Status::is_live);
        if self.is_member()
            && live(self, self.id)
            && live(self, from)
            && !self.partition.separates(self.id, from)
        {
            self.send_buffer(from);
        }
    }

    fn send_buffer(&mut self, peer: NodeId) {
        let (members, rows) = self.outbox.take(peer);
        let members = members.then(|| self.members.clone());
        self.send_rows(peer, members, rows, Vec::new());
    }

    /// Puts a failed gossip back into `to`'s buffer, except rows dropped
    /// or turned tombstones since: a stale delta must not outlive the
    /// tombstone's collection.
    pub(super) fn gossip_failed(&mut self, to: NodeId, members: bool, rows: RowStates) {
        if !self.members.status(to).is_some_and(super::Status::is_live) {
            return;
        }
        if members {
            self.outbox.tell_members(to);
        }
        for (object, rows) in rows {
            let Some(kind) = self.row_type(&object) else {
                continue;
            };
            for (row, delta) in rows {
                if self.table.info(&object, &row).is_some_and(|i| !i.tombstone) {
                    self.outbox.add(to, &object, &row, &delta, kind);
                }
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn id(n: &str) -> ObjectId {
        ObjectId::new("kv", n).unwrap()
    }

    #[test]
    fn pages_keep_under_the_budget_and_group_by_object() {
        let rows: RowStates = vec![
            (
                id("a"),
                vec![("1".into(), vec![0; 40]), ("2".into(), vec![0; 40])],
            ),
            (id("b"), vec![("1".into(), vec![0; 200])]),
        ];
        let split = pages(rows.clone(), 100);
        assert_eq!(split.len(), 2, "{split:?}");
        assert_eq!(split[0], vec![rows[0].clone()]);
        assert_eq!(split[1][0].0, id("b"));
        assert_eq!(pages(rows.clone(), 50).len(), 3);
        assert_eq!(pages(rows, 1 << 20).len(), 1);
        assert!(pages(Vec::new(), 10).is_empty());
    }
}

#[cfg(test)]
mod node_test {
    use super::*;
    use crate::crdt::{CausalContext, Hlc, MvRegister, Payload, Stamp};
    use crate::engine::kind::encode;
    use crate::engine::testing::{delete, kv, node, put};

    #[test]
    fn gossip_stamped_beyond_the_drift_is_refused() {
        let mut a = node(0, 4);
        let at = Stamp {
            node: NodeId(1),
            time: Hlc::stamp_of(10_000_000),
            holds_own_writes: true,
        };
        let reg = MvRegister::default().write(
            at,
            &CausalContext::default(),
            Payload::Text("future".into()),
        );
        let key = (0..)
            .map(|i| kv(&format!("k{i}")))
            .find(|k| a.replicas(k).contains(&NodeId(0)))
            .unwrap();
        let message = Message::Gossip {
            members: None,
            rows: vec![(key.clone(), vec![(String::new(), encode(&reg))])],
            want: Vec::new(),
        };
        a.receive(NodeId(1), message.clone(), 1_000);
        assert_eq!((a.row(&key, ""), a.refused()), (None, 1));
        a.receive(NodeId(1), message, 10_000_000);
        assert!(
            a.row(&key, "").is_some(),
            "accepted once the clock is there"
        );
    }

    #[test]
    fn failed_gossip_goes_back_to_its_buffer_unless_the_row_turned_tombstone() {
        let mut a = node(0, 2);
        let (live, gone) = (kv("live"), kv("gone"));
        put(&mut a, &live, "x", 1_000);
        put(&mut a, &gone, "x", 1_000);
        a.tick(1_000);
        let sent: Vec<Message> = crate::engine::testing::sends(a.take_effects())
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| matches!(m, Message::Gossip { rows, .. } if !rows.is_empty()))
            .collect();
        assert_eq!(sent.len(), 1);
        delete(&mut a, &gone, 1_100);
        a.outbox.clear();
        a.send_failed(NodeId(1), sent[0].clone());
        let (_, rows) = a.outbox.take(NodeId(1));
        let objects: Vec<&ObjectId> = rows.iter().map(|(o, _)| o).collect();
        assert_eq!(objects, [&live], "the deleted row's stale delta is dropped");
    }
}

#[cfg(test)]
mod exchange_test {
    use super::*;
    use crate::engine::testing::{kv, node, put, sends};

    /// The rows of the gossip among `effects`, per peer.
    fn gossip(effects: Vec<crate::engine::Effect>) -> Vec<(NodeId, Vec<ObjectId>)> {
        sends(effects)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::Gossip { rows, .. } if !rows.is_empty() => {
                    Some((to, rows.into_iter().map(|(o, _)| o).collect()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_answer_carries_the_buffer_and_is_the_intervals_exchange() {
        let (mut a, mut b) = (node(0, 2), node(1, 2));
        let (from_a, from_b) = (kv("from-a"), kv("from-b"));
        put(&mut a, &from_a, "x", 1_000);
        put(&mut b, &from_b, "y", 1_000);
        a.tick(1_000);
        let frame = sends(a.take_effects())
            .into_iter()
            .find(|(to, m)| *to == NodeId(1) && matches!(m, Message::Gossip { .. }))
            .expect("a gossips to b")
            .1;
        b.take_effects();
        b.receive(NodeId(0), frame, 1_010);
        b.answer_gossip(NodeId(0));
        assert_eq!(
            gossip(b.take_effects()),
            [(NodeId(0), vec![from_b.clone()])]
        );

        // Within the interval, b sends a nothing on its own.
        put(&mut b, &from_b, "z", 1_100);
        b.tick(1_100);
        assert_eq!(gossip(b.take_effects()), []);
        // After it, it does.
        b.tick(1_400);
        assert_eq!(gossip(b.take_effects()), [(NodeId(0), vec![from_b])]);
    }
}
