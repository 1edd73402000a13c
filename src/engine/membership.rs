//! Cluster membership, itself a CRDT: a map from node id to a status that
//! only moves forward, Active → Draining → Retired.

use crate::crdt::InvalidState;
use crate::{NodeId, NodeMap, NodeSet};
use serde::{Deserialize, Serialize};

/// Most node ids a membership may hold, retired ones included.
const MAX_MEMBERS: usize = 1024;

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Accepts writes and gossips.
    Active,
    /// Accepts no writes; hands its state to `heir`.
    Draining {
        /// the node that will absorb this one
        heir: NodeId,
    },
    /// Folded into `heir`; its id is never used again.
    Retired {
        /// the node that absorbed this one
        heir: NodeId,
    },
}

impl Status {
    fn rank(self) -> (u8, Option<NodeId>) {
        let step = match self {
            Status::Active => 0,
            Status::Draining { .. } => 1,
            Status::Retired { .. } => 2,
        };
        (step, self.heir())
    }

    /// The node that absorbs (or absorbed) this one.
    pub fn heir(self) -> Option<NodeId> {
        match self {
            Status::Active => None,
            Status::Draining { heir } | Status::Retired { heir } => Some(heir),
        }
    }

    /// Whether the node still holds replicas (active or draining).
    pub fn is_live(self) -> bool {
        !matches!(self, Status::Retired { .. })
    }
}

/// Every node the cluster has had, with its status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    nodes: NodeMap<Status>,
}

impl Membership {
    /// `node-0` … `node-{n-1}`, all active.
    pub fn initial(n: u32) -> Self {
        Membership {
            nodes: (0..n).map(|i| (NodeId(i), Status::Active)).collect(),
        }
    }

    /// The status of `id`, if it is a member.
    pub fn status(&self, id: NodeId) -> Option<Status> {
        self.nodes.get(&id).copied()
    }

    /// Every member with its status.
    pub fn all(&self) -> &NodeMap<Status> {
        &self.nodes
    }

    /// Members that accept writes.
    pub fn active(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes
            .iter()
            .filter(|(_, s)| **s == Status::Active)
            .map(|(id, _)| *id)
    }

    /// Members that hold replicas: active or draining.
    pub fn live(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes
            .iter()
            .filter(|(_, s)| s.is_live())
            .map(|(id, _)| *id)
    }

    /// A member currently draining, if any.
    pub fn draining(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|(_, s)| matches!(s, Status::Draining { .. }))
            .map(|(id, _)| *id)
    }

    /// Moves `id` forward to `status`; returns whether anything changed.
    pub fn set(&mut self, id: NodeId, status: Status) -> bool {
        match self.nodes.get_mut(&id) {
            Some(s) if s.rank() >= status.rank() => false,
            Some(s) => {
                *s = status;
                true
            }
            None => {
                self.nodes.insert(id, status);
                true
            }
        }
    }

    /// Joins `other` into `self`; returns whether `self` changed.
    pub fn merge(&mut self, other: &Membership) -> bool {
        other
            .nodes
            .iter()
            .fold(false, |changed, (id, s)| self.set(*id, *s) | changed)
    }

    /// Checks a membership that came from a peer.
    pub fn validate(&self) -> Result<(), InvalidState> {
        if self.nodes.len() > MAX_MEMBERS {
            return Err(InvalidState(format!(
                "{} members, over the limit of {MAX_MEMBERS}",
                self.nodes.len()
            )));
        }
        for (id, s) in &self.nodes {
            if s.heir() == Some(*id) {
                return Err(InvalidState(format!("{id} names itself as its heir")));
            }
        }
        Ok(())
    }
}

/// A simulated network partition: nodes in different groups do not gossip.
/// Nodes named in no group form one more group together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    groups: Vec<NodeSet>,
}

impl Partition {
    /// A partition into `groups`; an empty list heals everything.
    pub fn new(groups: Vec<NodeSet>) -> Self {
        Partition { groups }
    }

    /// The groups, empty when healed.
    pub fn groups(&self) -> &[NodeSet] {
        &self.groups
    }

    /// Whether gossip between `a` and `b` is cut.
    pub fn separates(&self, a: NodeId, b: NodeId) -> bool {
        let group = |n: NodeId| self.groups.iter().position(|g| g.contains(&n));
        !self.groups.is_empty() && group(a) != group(b)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn status_only_moves_forward() {
        let mut m = Membership::initial(2);
        let heir = NodeId(0);
        assert!(m.set(NodeId(1), Status::Retired { heir }));
        assert!(!m.set(NodeId(1), Status::Draining { heir }));
        assert!(!m.set(NodeId(1), Status::Active));
        assert_eq!(m.active().collect::<Vec<_>>(), vec![heir]);
    }

    #[test]
    fn merge_is_a_join() {
        let mut a = Membership::initial(3);
        let mut b = Membership::initial(1);
        b.set(NodeId(4), Status::Active);
        a.set(NodeId(2), Status::Draining { heir: NodeId(0) });
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert!(!ab.merge(&a));
    }

    #[test]
    fn partition_groups() {
        let p = Partition::new(vec![NodeSet::from_iter([NodeId(0), NodeId(1)])]);
        assert!(!p.separates(NodeId(0), NodeId(1)));
        assert!(p.separates(NodeId(0), NodeId(2)));
        assert!(!p.separates(NodeId(2), NodeId(3)));
        assert!(!Partition::default().separates(NodeId(0), NodeId(9)));
    }
}
