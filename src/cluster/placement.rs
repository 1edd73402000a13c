//! Which nodes hold a key. The engine buffers a key's deltas for exactly
//! the replicas this policy names.

use super::Membership;
use crate::NodeId;

/// A placement policy: the replicas of a key among the live members.
pub trait Placement {
    /// The nodes that keep a copy of `key`, in preference order.
    fn replicas(&self, key: &str, members: &Membership) -> Vec<NodeId>;
}

/// Every live node holds every key: the policy of the visit counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllNodes;

impl Placement for AllNodes {
    fn replicas(&self, _key: &str, members: &Membership) -> Vec<NodeId> {
        members.live().collect()
    }
}
