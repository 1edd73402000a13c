//! What a kind sees of a node: [`Exec`] for a client operation on one
//! object (read its rows, stamp, write deltas, append to its log) and
//! [`SyncCx`] for the kind's own sync messages.

use super::apply::Spread;
use super::kind::{decode, encode};
use super::node::Node;
use super::{Message, ObjectId, RowKey, Status};
use crate::crdt::{Crdt, Stamp};
use crate::NodeId;

/// This node takes no client writes (draining, retired, or not yet a
/// member); `forward_to` accepts them, if one is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAccepting {
    /// a node that accepts writes
    pub forward_to: Option<NodeId>,
}

/// A client operation on one object. The rows it reads must be loaded
/// (the driver loads what the operation names). Writes are buffered by
/// [`Exec::put`] and applied, stored and gossiped by [`Exec::commit`]; an
/// operation that fails before committing changes nothing.
pub struct Exec<'a> {
    node: &'a mut Node,
    object: ObjectId,
    now: u64,
    time: Option<u64>,
    deltas: Vec<(RowKey, Vec<u8>)>,
    entries: Vec<Vec<u8>>,
    trim: Option<u64>,
}

impl Node {
    /// Starts a client operation on `object` at wall-clock time `now`.
    pub fn exec(&mut self, object: ObjectId, now: u64) -> Exec<'_> {
        self.now = self.now.max(now);
        Exec {
            node: self,
            object,
            now,
            time: None,
            deltas: Vec::new(),
            entries: Vec::new(),
            trim: None,
        }
    }

    /// A node that accepts writes in place of this one.
    pub fn forward_target(&self) -> Option<NodeId> {
        match self.status() {
            Status::Active if self.is_member() => Some(self.id),
            Status::Draining { heir } | Status::Retired { heir }
                if self.members.status(heir) == Some(Status::Active) =>
            {
                Some(heir)
            }
            _ => self.members.active().next(),
        }
    }
}

impl Exec<'_> {
    /// The node executing the operation.
    pub fn node(&self) -> NodeId {
        self.node.id
    }

    /// The object operated on.
    pub fn object(&self) -> &ObjectId {
        &self.object
    }

    /// The wall-clock time the operation runs at, ms.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The number the object's log gives its next entry (entries are
    /// numbered from 1; 0: the object has no log). Needs the object loaded.
    pub fn log_next(&self) -> u64 {
        self.node.table.meta(&self.object).map_or(0, |m| m.log_next)
    }

    /// Whether this node is one of the object's replicas.
    pub fn replicates(&self) -> bool {
        self.node.replicas(&self.object).contains(&self.node.id)
    }

    /// How many rows the object holds (needs the object loaded).
    pub fn row_count(&self) -> u32 {
        self.node.table.meta(&self.object).map_or(0, |m| m.rows)
    }

    /// How far ahead of the wall clock a client's stamp may be, ms.
    pub fn max_drift_ms(&self) -> u64 {
        self.node.config().max_drift_ms
    }

    /// A row's state, if stored.
    pub fn row(&self, key: &str) -> Option<&[u8]> {
        self.node.table.state(&self.object, key)
    }

    /// A local row's state ([`RowType::locals`](super::RowType::locals)).
    pub fn local(&self, key: &str) -> Option<&[u8]> {
        self.node.table.local(&self.object, key)
    }

    /// A row decoded, or the row type's bottom when absent (or, for a
    /// stored row, not decodable: storage holds what this node wrote).
    pub fn row_as<R: Crdt>(&self, key: &str) -> R {
        self.row(key)
            .and_then(|b| decode(b).ok())
            .unwrap_or_default()
    }

    /// The loaded rows with their states, in key order.
    pub fn rows(&self) -> impl Iterator<Item = (&RowKey, &[u8])> {
        self.node.table.get(&self.object).into_iter().flat_map(|o| {
            o.rows
                .iter()
                .filter_map(|(k, s)| Some((k, s.state.as_deref()?)))
        })
    }

    /// Who writes and when: one clock stamp per operation, and whether the
    /// node kept `row` since its last write there.
    pub fn stamp(&mut self, row: &str) -> Stamp {
        let time = match self.time {
            Some(t) => t,
            None => {
                let (t, floor) = self.node.clock.stamp(self.now);
                if let Some(floor) = floor {
                    self.node.effects.push(super::Effect::StoreClock(floor));
                }
                self.time = Some(t);
                t
            }
        };
        let own = self
            .node
            .table
            .info(&self.object, row)
            .is_some_and(|i| i.own);
        Stamp {
            node: self.node.id,
            time,
            holds_own_writes: own,
        }
    }

    /// Buffers a delta of `row`.
    pub fn put<R: Crdt>(&mut self, row: &str, delta: &R) {
        self.deltas.push((row.to_owned(), encode(delta)));
    }

    /// Buffers a delta of `row` in the kind's own encoding.
    pub fn put_bytes(&mut self, row: &str, delta: Vec<u8>) {
        self.deltas.push((row.to_owned(), delta));
    }

    /// Buffers an entry for the object's log.
    pub fn append(&mut self, entry: Vec<u8>) {
        self.entries.push(entry);
    }

    /// Buffers dropping the object's log entries below `below`.
    pub fn trim_log(&mut self, below: u64) {
        self.trim = Some(below);
    }

    /// Applies, stores and gossips what was buffered.
    pub fn commit(&mut self) -> Result<(), NotAccepting> {
        let writes = !self.deltas.is_empty() || !self.entries.is_empty() || self.trim.is_some();
        if writes && !self.node.accepts_writes() {
            return Err(NotAccepting {
                forward_to: self.node.forward_target(),
            });
        }
        for (row, delta) in std::mem::take(&mut self.deltas) {
            let _ = self
                .node
                .apply(&self.object, &row, &delta, u64::MAX, Spread::Write);
        }
        for entry in std::mem::take(&mut self.entries) {
            self.node.append(&self.object, entry);
        }
        if let Some(below) = self.trim.take() {
            let object = self.object.clone();
            self.node
                .effects
                .push(super::Effect::TrimLog { object, below });
        }
        Ok(())
    }
}

/// What a kind's sync handler may do: read the object's loaded rows,
/// merge rows a peer sent (only while handling a sync message), and send
/// sync messages.
pub struct SyncCx<'a> {
    node: &'a mut Node,
    object: &'a ObjectId,
    can_apply: bool,
}

impl<'a> SyncCx<'a> {
    /// After a change: read and send only.
    pub(super) fn watching(node: &'a mut Node, object: &'a ObjectId) -> Self {
        SyncCx {
            node,
            object,
            can_apply: false,
        }
    }

    /// Handling a sync message: may merge rows.
    pub(super) fn handling(node: &'a mut Node, object: &'a ObjectId) -> Self {
        SyncCx {
            node,
            object,
            can_apply: true,
        }
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.node.id
    }

    /// The object.
    pub fn object(&self) -> &ObjectId {
        self.object
    }

    /// The object's replicas in this node's view.
    pub fn replicas(&self) -> Vec<NodeId> {
        self.node.replicas(self.object)
    }

    /// A loaded row's state.
    pub fn row(&self, key: &str) -> Option<&[u8]> {
        self.node.table.state(self.object, key)
    }

    /// Whether a row's state (or absence) is loaded.
    pub fn knows(&self, key: &str) -> bool {
        self.node.knows_row(self.object, key)
    }

    /// A local row's state ([`RowType::locals`](super::RowType::locals)).
    pub fn local(&self, key: &str) -> Option<&[u8]> {
        self.node.table.local(self.object, key)
    }

    /// Sets (or with `None` drops) a local row, in the batch of the change
    /// being handled. A key the kind does not name in `locals` is ignored.
    pub fn set_local(&mut self, key: &str, state: Option<Vec<u8>>) {
        self.node.set_local(self.object, key, state);
    }

    /// Merges a row a peer sent, checked against the drift like gossip;
    /// returns whether it changed anything.
    pub fn apply(&mut self, key: &str, state: &[u8]) -> bool {
        if !self.can_apply || !self.node.knows_row(self.object, key) {
            return false;
        }
        let limit = self.node.drift_limit();
        self.node
            .apply(self.object, key, state, limit, Spread::Quiet)
            .unwrap_or(false)
    }

    /// Sends `payload` to peer `to` as a sync message of this object
    /// (with whatever else this input says to `to` through sync).
    pub fn send(&mut self, to: NodeId, payload: Vec<u8>) {
        self.node.send_sync(to, self.object.clone(), payload);
    }

    /// The loaded rows with their states, in key order (local rows aside).
    pub fn rows(&self) -> impl Iterator<Item = (&RowKey, &[u8])> {
        self.node.table.get(self.object).into_iter().flat_map(|o| {
            o.rows
                .iter()
                .filter_map(|(k, s)| Some((k, s.state.as_deref()?)))
        })
    }

    /// The latest wall-clock time an input brought, ms.
    pub fn now(&self) -> u64 {
        self.node.now
    }

    /// Asks for [`RowType::on_wake`](super::RowType::on_wake) on this
    /// object at the node's first tick `delay_ms` from now (or sooner, if
    /// already asked), with every row loaded if `whole`. Which objects
    /// have a wake is stored: a restarted node wakes them at once.
    pub fn wake_in(&mut self, delay_ms: u64, whole: bool) {
        let at = self.node.now.saturating_add(delay_ms);
        self.node.wakes.ask(self.object, at, whole);
    }
}

impl Node {
    /// Queues a sync payload to `to`, in the sync message this input
    /// already sends it, if any.
    pub(super) fn send_sync(&mut self, to: NodeId, object: ObjectId, payload: Vec<u8>) {
        for effect in self.effects.iter_mut().rev() {
            if let super::Effect::Send {
                to: peer,
                message: Message::Sync { payloads },
            } = effect
            {
                if *peer == to {
                    payloads.push((object, payload));
                    return;
                }
            }
        }
        let payloads = vec![(object, payload)];
        self.send(to, Message::Sync { payloads });
    }

    pub(super) fn on_sync(&mut self, from: NodeId, object: &ObjectId, payload: &[u8]) {
        if let Some(kind) = self.row_type(object) {
            kind.on_sync(&mut SyncCx::handling(self, object), from, payload);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::PnCounter;
    use crate::engine::testing::node;
    use crate::engine::Effect;

    fn increment(n: &mut Node) -> Result<(), NotAccepting> {
        let object = ObjectId::new("counter", "c").unwrap();
        let mut x = n.exec(object, 1_000);
        let delta = x.row_as::<PnCounter>("").add(x.node(), 1).unwrap();
        x.put("", &delta);
        x.commit()
    }

    #[test]
    fn writes_go_to_a_node_that_takes_them() {
        let mut active = node(0, 3);
        assert_eq!(increment(&mut active), Ok(()));
        let mut stranger = node(7, 3);
        let first = Some(NodeId(0));
        assert_eq!(
            increment(&mut stranger),
            Err(NotAccepting { forward_to: first })
        );
        let mut draining = node(1, 3);
        let heir = draining.begin_retire().unwrap();
        let to_heir = Some(heir);
        assert_eq!(
            increment(&mut draining),
            Err(NotAccepting {
                forward_to: to_heir
            })
        );
        let stored = draining
            .take_effects()
            .into_iter()
            .any(|e| matches!(e, Effect::StoreRow { .. }));
        assert!(!stored, "a refused write changes nothing");
    }
}
