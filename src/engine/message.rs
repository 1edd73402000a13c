//! What nodes send each other. Rows travel as their kind's bytes, grouped
//! by object.

use super::{Leaf, Membership, ObjectId, RowKey};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// Rows with their states (or deltas), grouped by object.
pub type RowStates = Vec<(ObjectId, Vec<(RowKey, Vec<u8>)>)>;

/// Rows named without their states, grouped by object.
pub type RowRefs = Vec<(ObjectId, Vec<RowKey>)>;

/// One peer frame: who sent it, when by its clock, and the message. A
/// frame older than half the tombstone grace period is refused, so no
/// message outlives a tombstone it could undo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// the sender
    pub from: NodeId,
    /// the sender's wall clock when it sent the frame, in ms
    pub sent: u64,
    /// the message
    pub message: Message,
}

/// Part of an object's rows with their digests: the rows after `after`
/// (from the first when `None`) up to and including `upto` (to the last
/// when `None`). An object with many rows is compared a range at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRange {
    /// the object
    pub object: ObjectId,
    /// the range starts after this row
    pub after: Option<RowKey>,
    /// and ends at this one
    pub upto: Option<RowKey>,
    /// every row the sender holds in the range, with its digest
    pub rows: Vec<(RowKey, u64)>,
}

/// One peer-to-peer message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Deltas or whole rows to merge, the sender's membership when the
    /// receiver may not have it, and rows the receiver should send back.
    Gossip {
        /// the sender's membership, when it changed
        members: Option<Membership>,
        /// rows or deltas
        rows: RowStates,
        /// rows the receiver should answer with
        want: RowRefs,
    },
    /// Anti-entropy, level 0: the digest over the leaves both nodes
    /// replicate, and the membership.
    Digest {
        /// the root digest
        root: u64,
    },
    /// Level 1, the answer to a [`Message::Digest`] that did not match:
    /// the digest of each bucket of shared leaves the sender holds.
    Buckets {
        /// the sender's membership
        members: Membership,
        /// non-empty buckets and their digests
        buckets: Vec<(u16, u64)>,
    },
    /// Level 2, for buckets whose digests differ: the sender's shared
    /// leaves in them.
    Leaves {
        /// the buckets compared
        buckets: Vec<u16>,
        /// the sender's non-empty shared leaves in them, with digests
        leaves: Vec<(Leaf, u64)>,
    },
    /// Level 3, for leaves whose digests differ: each object's digest.
    Objects {
        /// per leaf, the digest of every object the sender holds in it
        leaves: Vec<(Leaf, Vec<(ObjectId, u64)>)>,
    },
    /// Level 4, for objects whose digests differ: row digests, a range at
    /// a time. The receiver pushes the rows that differ and asks for the
    /// ones it lacks.
    Rows {
        /// the ranges compared
        ranges: Vec<RowRange>,
    },
    /// One page of a leaf the sender no longer replicates (or, draining,
    /// hands to its heir), for a replica to store before the sender lets
    /// go of it.
    Transfer {
        /// the sender's membership
        members: Membership,
        /// the leaf
        leaf: Leaf,
        /// this page's number, from 0
        page: u32,
        /// the rows of the page
        rows: RowStates,
    },
    /// The receiver stored these pages of [`Message::Transfer`]s: each
    /// with the digest of the rows it received.
    Transferred {
        /// leaf, page and digest
        pages: Vec<(Leaf, u32, u64)>,
    },
    /// A draining node has handed every leaf over: the heir marks it retired.
    Handoff {
        /// the draining node's membership, naming the heir
        members: Membership,
    },
    /// The heir has folded the drained node in.
    HandoffDone,
    /// Tombstone collection: does the receiver hold each row with this
    /// digest, or (not a replica) nothing of its leaf?
    Reap {
        /// the question's id, echoed in the answer
        round: u64,
        /// rows and the digests of their tombstones
        rows: Vec<(ObjectId, RowKey, u64)>,
    },
    /// The answer to a [`Message::Reap`]: the receiver agrees on every
    /// row it was asked about in that round but these.
    Reaped {
        /// the question's id
        round: u64,
        /// the answering node's membership: only a node with the asker's
        /// view may agree
        members: Membership,
        /// the rows it holds otherwise
        refused: Vec<(ObjectId, RowKey)>,
    },
    /// Every node agreed twice: drop these tombstones if unchanged.
    Forget {
        /// rows and the digests of their tombstones
        rows: Vec<(ObjectId, RowKey, u64)>,
    },
    /// Kinds' own sync protocols: the node hands each payload to the row
    /// type of its object's kind. What one input says to a peer travels
    /// as one message, whatever the objects.
    Sync {
        /// the objects, each with what its kind says
        payloads: Vec<(ObjectId, Vec<u8>)>,
    },
    /// The answer to a [`Message::Digest`] whose root the receiver shares:
    /// the two agree on all they both replicate.
    Same,
}

impl Message {
    /// Messages that a partition blocks: all but the retirement handoff.
    pub fn is_gossip(&self) -> bool {
        !matches!(self, Message::Handoff { .. } | Message::HandoffDone)
    }

    /// A short name, for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Gossip { .. } => "gossip",
            Message::Digest { .. } => "digest",
            Message::Buckets { .. } => "buckets",
            Message::Leaves { .. } => "leaves",
            Message::Objects { .. } => "objects",
            Message::Rows { .. } => "rows",
            Message::Transfer { .. } => "transfer",
            Message::Transferred { .. } => "transferred",
            Message::Handoff { .. } => "handoff",
            Message::HandoffDone => "handoff-done",
            Message::Reap { .. } => "reap",
            Message::Reaped { .. } => "reaped",
            Message::Forget { .. } => "forget",
            Message::Sync { .. } => "sync",
            Message::Same => "same",
        }
    }
}
