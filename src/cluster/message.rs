//! What nodes send each other.

use super::{Key, Membership};
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
    /// Anti-entropy: the sender's root digest of its keys and membership.
    Digest {
        /// the root digest
        root: u64,
    },
    /// The answer to a [`Message::Digest`] that did not match.
    Summary {
        /// the sender's membership
        members: Membership,
        /// the digest of each key's state
        keys: Vec<(Key, u64)>,
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
}

impl<T> Message<T> {
    /// Messages that a simulated network partition blocks.
    pub fn is_gossip(&self) -> bool {
        !matches!(self, Message::Handoff { .. } | Message::HandoffDone)
    }
}
