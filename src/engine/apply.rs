//! How a row changes: the one place that merges a delta into a row and
//! keeps the row, its object, its leaf, the log, the outboxes and the
//! subscribers in step, and the one place that drops a row.

use super::exec::SyncCx;
use super::kind::{Merged, RowError};
use super::needs::RowInfo;
use super::node::Node;
use super::table::Moved;
use super::{row_digest, Effect, ObjectId, RowKey};
use crate::crdt::Hlc;
use crate::NodeId;

/// Who else hears of a merged delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spread {
    /// No one: the sender keeps its replicas in step (a peer's gossip, a
    /// transfer, a repair).
    Quiet,
    /// The replicas this node pushes the object's deltas to
    /// ([`Node::push_targets`]) but `except`.
    Gossip {
        /// a node that has it already
        except: Option<NodeId>,
    },
    /// This node's own write: pushed like `Gossip`, and the row holds
    /// this node's writes.
    Write,
}

impl Node {
    /// The latest stamp a gossiped row may carry: the drift ahead of now.
    pub(super) fn drift_limit(&self) -> u64 {
        Hlc::stamp_of(
            self.now
                .saturating_add(self.config.max_drift_ms)
                .saturating_add(1),
        ) - 1
    }

    /// Merges `delta` into a row whose state (or absence) is in memory.
    /// Returns whether the row changed; a delta that does not decode, or
    /// is stamped after `limit`, is refused.
    pub(super) fn apply(
        &mut self,
        object: &ObjectId,
        row: &str,
        delta: &[u8],
        limit: u64,
        spread: Spread,
    ) -> Result<bool, RowError> {
        let Some(kind) = self.row_type(object) else {
            return Ok(false);
        };
        if kind.locals().contains(&row) {
            return Ok(false);
        }
        let merged = kind.merge(self.table.state(object, row), delta, limit)?;
        if !merged.changed {
            return Ok(false);
        }
        if let Some(t) = merged.latest_stamp {
            self.clock.observe(t);
        }
        self.became_busy();
        let entry = kind.log_entry(row, delta);
        // A relay passes on only what was new here.
        let novel = match spread {
            Spread::Gossip { .. } => merged.novel.clone(),
            _ => None,
        };
        let delta = novel.as_deref().unwrap_or(delta);
        self.store(object, row, merged, spread == Spread::Write);
        if let Some(entry) = entry {
            self.append(object, entry);
        }
        self.publisher.changed(object, row);
        let except = match spread {
            Spread::Quiet => None,
            Spread::Gossip { except } => Some(except),
            Spread::Write => Some(None),
        };
        if let Some(except) = except {
            let targets = match except {
                Some(from) => self.relay_targets(object, from),
                None => self.push_targets(object),
            };
            for peer in &targets {
                if Some(*peer) != except {
                    self.outbox.add(*peer, object, row, delta, kind);
                }
            }
            if spread == Spread::Write {
                // Stored with the write: a crash before the gossip leaves
                // still leaves the check owed.
                self.owe_check(targets);
            }
        }
        kind.on_applied(&mut SyncCx::watching(self, object), row);
        Ok(true)
    }

    /// Sets a row to a merged state and queues its storage; `own`: the
    /// change is this node's write.
    fn store(&mut self, object: &ObjectId, row: &str, merged: Merged, own: bool) {
        let info = RowInfo {
            digest: row_digest(object, row, &merged.state),
            tombstone: merged.tombstone,
            own: own || self.table.info(object, row).is_some_and(|i| i.own),
        };
        let leaf = self.leaf(object);
        let moved = self
            .table
            .set(object, leaf, row, merged.state.clone(), info);
        self.effects.push(Effect::StoreRow {
            object: object.clone(),
            row: row.to_owned(),
            state: merged.state,
            info,
        });
        self.moved(object, moved);
    }

    /// Takes a row an older storage layout kept: merged and stored, with no
    /// gossip (every node imports its own). Its state (or absence) must be
    /// in memory.
    pub fn import(
        &mut self,
        object: &ObjectId,
        row: &str,
        state: &[u8],
        own: bool,
    ) -> Result<bool, RowError> {
        let spread = if own { Spread::Write } else { Spread::Quiet };
        let changed = self.apply(object, row, state, u64::MAX, spread)?;
        // An own write would be gossiped: an import is not.
        self.outbox.drop_row(object, row);
        Ok(changed)
    }

    /// Sets (or with `None` drops) a local row of `object`, loaded.
    pub(super) fn set_local(&mut self, object: &ObjectId, row: &str, state: Option<Vec<u8>>) {
        if !self.is_local(object, row) || self.table.local(object, row) == state.as_deref() {
            return;
        }
        let leaf = self.leaf(object);
        self.table.set_local(object, leaf, row, state.clone());
        let (object, row) = (object.clone(), row.to_owned());
        self.effects.push(match state {
            Some(state) => Effect::StoreRow {
                object,
                row,
                state,
                info: RowInfo::default(),
            },
            None => Effect::DeleteRow { object, row },
        });
    }

    /// Appends an entry to the object's log.
    pub(super) fn append(&mut self, object: &ObjectId, entry: Vec<u8>) {
        let leaf = self.leaf(object);
        let seq = self.table.next_log_seq(object, leaf);
        self.effects.push(Effect::Append {
            object: object.clone(),
            seq,
            entry,
        });
        if let Some(meta) = self.table.meta(object) {
            let object = object.clone();
            self.effects.push(Effect::StoreObject { object, meta });
        }
    }

    /// Queues the object's and the leaf's new rows after a change.
    fn moved(&mut self, object: &ObjectId, m: Moved) {
        let meta = self.table.meta(object).unwrap_or_default();
        if meta.rows == 0 && meta.log_next == 0 {
            self.effects.push(Effect::DeleteObject {
                object: object.clone(),
            });
        } else {
            self.effects.push(Effect::StoreObject {
                object: object.clone(),
                meta,
            });
        }
        let row = self.leaves.change(m.leaf, m.old, m.new, m.tombstones);
        self.effects.push(Effect::StoreLeaf { leaf: m.leaf, row });
    }

    /// Drops a row here: its replicas store it, or it was a tombstone
    /// every node confirmed.
    pub(super) fn forget_row(&mut self, object: &ObjectId, row: &str) {
        let Some(moved) = self.table.remove(object, row) else {
            return;
        };
        self.effects.push(Effect::DeleteRow {
            object: object.clone(),
            row: row.to_owned(),
        });
        self.moved(object, moved);
        self.publisher.forget(object, row);
        self.reaper.forget(object, row);
        self.outbox.drop_row(object, row);
        if self.table.meta(object).is_some_and(|m| m.rows == 0) {
            for local in self.locals(object) {
                let leaf = self.leaf(object);
                self.table.set_local(object, leaf, local, None);
                let (object, row) = (object.clone(), (*local).to_owned());
                self.effects.push(Effect::DeleteRow { object, row });
            }
        }
    }

    /// Drops every row of `leaf`, which must be loaded whole.
    pub(super) fn forget_leaf(&mut self, leaf: super::Leaf) {
        let rows: Vec<(ObjectId, RowKey)> = self
            .table
            .leaf_objects(leaf)
            .flat_map(|(id, o)| o.rows.keys().map(move |k| (id.clone(), k.clone())))
            .collect();
        for (object, row) in rows {
            self.forget_row(&object, &row);
        }
    }
}
