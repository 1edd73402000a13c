//! Retiring a node. It stops taking writes (Draining, with a chosen heir)
//! and replicates nothing more: it hands every ring leaf to the leaf's
//! replicas and every other leaf to its heir, which folds the drained
//! node's entries into its own ([`RowType::absorb`](super::RowType::absorb))
//! as it stores them ([`transfer`](super::transfer)). Once it holds
//! nothing, it sends the heir [`Message::Handoff`]; the heir marks it
//! Retired and answers [`Message::HandoffDone`].

use super::node::{successor, Node, RetireError};
use super::{Membership, Message, Status};
use crate::NodeId;

impl Node {
    /// Starts (or retries) the retirement of this node.
    ///
    /// The heir is chosen from this node's view, which may be stale: it may
    /// have retired already. A retired node never answers, and it folded no
    /// node it did not mark retired first, so the leaves and the handoff go
    /// to the node the heir retired into (to the end of that chain), which
    /// folds this node in its place. Returns the node the handoff goes to.
    pub fn begin_retire(&mut self) -> Result<NodeId, RetireError> {
        if !self.is_member() {
            return Err(RetireError::NotMember);
        }
        let heir = match self.status() {
            Status::Retired { .. } => return Err(RetireError::AlreadyRetired),
            Status::Draining { heir } => heir,
            Status::Active => {
                if let Some(other) = self.members.draining().filter(|d| *d != self.id) {
                    return Err(RetireError::Busy(other));
                }
                let active: Vec<NodeId> = self.members.active().filter(|n| *n != self.id).collect();
                let heir = active
                    .iter()
                    .find(|n| **n > self.id)
                    .or(active.first())
                    .copied()
                    .ok_or(RetireError::LastNode)?;
                let mut m = self.members.clone();
                m.set(self.id, Status::Draining { heir });
                self.merge_members(&m);
                heir
            }
        };
        self.move_leaves(true);
        Ok(successor(&self.members, heir))
    }

    /// A drained node holds nothing more: as its heir (or the end of its
    /// heir's chain), mark it retired.
    pub(super) fn on_handoff(&mut self, from: NodeId, members: &Membership) {
        if !self.absorbs_for(from, members) {
            return;
        }
        self.merge_members(members);
        if !self.accepts_writes() {
            return;
        }
        let mut m = self.members.clone();
        m.set(from, Status::Retired { heir: self.id });
        self.merge_members(&m);
        self.send(from, Message::HandoffDone);
    }

    pub(super) fn on_handoff_done(&mut self, from: NodeId) {
        if let Status::Draining { heir } = self.status() {
            if heir == from || successor(&self.members, heir) == from {
                let mut m = self.members.clone();
                m.set(self.id, Status::Retired { heir: from });
                self.merge_members(&m);
                self.outbox.clear();
            }
        }
    }
}
