//! What nodes send each other.

use super::{Key, Leaf, Membership};
use serde::{Deserialize, Serialize};

/// One peer-to-peer message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "T: crate::crdt::Crdt")]
pub enum Message<T> {
    /// Deltas or whole states to merge, the sender's membership when it
    /// changed, and keys whose states the sender wants back.
    Gossip {
        /// the sender's membership, when the receiver may not have it
        members: Option<Membership>,
        /// states or deltas, by key
        states: Vec<(Key, T)>,
        /// keys the receiver should answer with its states
        want: Vec<Key>,
    },
    /// Anti-entropy, level 1: the root digest over the leaves both nodes
    /// replicate, and the membership.
    Digest {
        /// the root digest
        root: u64,
    },
    /// Level 2, the answer to a [`Message::Digest`] that did not match:
    /// the digest of each shared leaf the sender holds.
    Summary {
        /// the sender's membership
        members: Membership,
        /// leaf digests
        leaves: Vec<(Leaf, u64)>,
    },
    /// Level 3, for the leaves whose digests differ: each key's digest.
    Keys {
        /// per leaf, the digest of each key the sender holds in it
        leaves: Vec<(Leaf, Vec<(Key, u64)>)>,
    },
    /// A draining node's final state, sent to its heir.
    Handoff {
        /// the draining node's membership, naming the heir
        members: Membership,
        /// every state the draining node holds
        states: Vec<(Key, T)>,
    },
    /// The heir has folded the drained node in and stored the result.
    HandoffDone,
    /// Leaves the sender no longer replicates, each with every key in it,
    /// for a replica to store before the sender lets go of them.
    Transfer {
        /// the sender's membership
        members: Membership,
        /// each leaf with all its states
        leaves: Vec<(Leaf, Vec<(Key, T)>)>,
    },
    /// The receiver stored these leaves of a [`Message::Transfer`]; each
    /// with the digest of the states it received.
    Transferred {
        /// leaves and digests
        leaves: Vec<(Leaf, u64)>,
    },
    /// Tombstone collection: does the receiver hold each key with this
    /// digest, or (not a replica) nothing of its leaf?
    Reap {
        /// the question's id, echoed in the answer
        round: u64,
        /// keys and the digests of their tombstones
        keys: Vec<(Key, u64)>,
    },
    /// The answer to a [`Message::Reap`]: the receiver agrees on every
    /// key it was asked about in that round but these.
    Reaped {
        /// the question's id
        round: u64,
        /// the answering node's membership: only a node with the asker's
        /// view may agree
        members: Membership,
        /// the keys it holds otherwise
        refused: Vec<Key>,
    },
    /// Every node agreed twice: drop these tombstones if unchanged.
    Forget {
        /// keys and the digests of their tombstones
        keys: Vec<(Key, u64)>,
    },
}

impl<T> Message<T> {
    /// Messages that a simulated network partition blocks.
    pub fn is_gossip(&self) -> bool {
        !matches!(self, Message::Handoff { .. } | Message::HandoffDone)
    }
}
