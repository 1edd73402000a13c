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

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::PnCounter;
    use crate::engine::testing::{deliver, node, sends};
    use crate::engine::ObjectId;

    #[test]
    fn a_retirement_starts_only_from_an_active_member_with_someone_to_inherit() {
        assert_eq!(node(9, 3).begin_retire(), Err(RetireError::NotMember));
        assert_eq!(node(0, 1).begin_retire(), Err(RetireError::LastNode));
        let mut n = node(1, 3);
        let mut m = n.members.clone();
        m.set(NodeId(2), Status::Draining { heir: NodeId(0) });
        n.merge_members(&m);
        assert_eq!(n.begin_retire(), Err(RetireError::Busy(NodeId(2))));
        // The heir is the next active id above, else the first.
        assert_eq!(node(1, 3).begin_retire(), Ok(NodeId(2)));
        let mut last = node(2, 3);
        assert_eq!(last.begin_retire(), Ok(NodeId(0)));
        assert_eq!(last.begin_retire(), Ok(NodeId(0)), "a retry keeps the heir");
        let mut m = last.members.clone();
        m.set(NodeId(2), Status::Retired { heir: NodeId(0) });
        last.merge_members(&m);
        assert_eq!(last.begin_retire(), Err(RetireError::AlreadyRetired));
    }

    #[test]
    fn the_handoff_goes_to_the_end_of_the_heirs_chain() {
        let mut m = Membership::initial(4);
        m.set(NodeId(1), Status::Retired { heir: NodeId(2) });
        m.set(NodeId(2), Status::Retired { heir: NodeId(3) });
        assert_eq!(successor(&m, NodeId(1)), NodeId(3));
        assert_eq!(successor(&m, NodeId(0)), NodeId(0));
        // Node 0 drains towards 1, which retired meanwhile: 3 absorbs it.
        m.set(NodeId(0), Status::Draining { heir: NodeId(1) });
        let mut heir = node(3, 4);
        heir.receive(NodeId(0), Message::Handoff { members: m.clone() }, 0);
        assert_eq!(
            heir.members.status(NodeId(0)),
            Some(Status::Retired { heir: NodeId(3) })
        );
        assert!(sends(heir.take_effects()).contains(&(NodeId(0), Message::HandoffDone)));
        // A node that is not at the end of the chain does not answer.
        let mut other = node(2, 4);
        other.receive(NodeId(0), Message::Handoff { members: m }, 0);
        assert!(!sends(other.take_effects())
            .iter()
            .any(|(_, m)| *m == Message::HandoffDone));
    }

    #[test]
    fn a_node_with_more_leaves_than_one_budget_retires_without_waiting_for_a_round() {
        let mut nodes: Vec<Node> = (0..3).map(|i| node(i, 3)).collect();
        for i in 0..24 {
            let hits = ObjectId::new("counter", &format!("hits-{i}")).unwrap();
            let mut x = nodes[1].exec(hits, 1_000);
            let delta = x.row_as::<PnCounter>("").add(x.node(), 1).unwrap();
            x.put("", &delta);
            x.commit().unwrap();
        }
        let leaves = nodes[1].leaf_counts().0;
        assert!(
            leaves > 2 * super::super::node::round_budget(&nodes[1].config),
            "{leaves} leaves"
        );
        assert_eq!(nodes[1].begin_retire(), Ok(NodeId(2)));
        // No tick: each confirmation lets the next page go.
        deliver(&mut nodes, 1_000, |_, _, _| false);
        assert_eq!(nodes[1].status(), Status::Retired { heir: NodeId(2) });
    }

    #[test]
    fn a_drained_node_hands_its_counts_to_its_heir_then_retires() {
        let mut nodes: Vec<Node> = (0..3).map(|i| node(i, 3)).collect();
        let hits = ObjectId::new("counter", "hits").unwrap();
        for n in nodes.iter_mut() {
            let mut x = n.exec(hits.clone(), 1_000);
            let delta = x.row_as::<PnCounter>("").add(x.node(), 5).unwrap();
            x.put("", &delta);
            x.commit().unwrap();
            n.tick(1_000);
        }
        deliver(&mut nodes, 1_000, |_, _, _| false);
        assert_eq!(nodes[1].begin_retire(), Ok(NodeId(2)));
        deliver(&mut nodes, 1_100, |_, _, _| false);
        assert_eq!(nodes[1].status(), Status::Retired { heir: NodeId(2) });
        assert_eq!(nodes[1].leaf_counts(), (0, 0), "it holds nothing");
        for n in [0, 2] {
            nodes[n].tick(2_000);
        }
        deliver(&mut nodes, 2_000, |_, _, _| false);
        for n in [0, 2] {
            let held: PnCounter =
                crate::engine::kind::decode(nodes[n].row(&hits, "").unwrap()).unwrap();
            assert_eq!(held.value(), 15);
            assert_eq!(held.retired().get(&NodeId(1)), Some(&NodeId(2)));
        }
    }
}
