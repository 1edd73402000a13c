//! The replica node as a sans-IO state machine.
//!
//! A [`Node`] takes events (a client write, a peer message, a timer tick, a
//! failed send) with the current time, and queues [`Effect`]s: messages to
//! peers, storage writes, pushes to subscribers. The adapter performs them.
//! The node is generic over the [`Crdt`](crate::crdt::Crdt) it replicates and
//! over a [`Placement`] policy, so new data types need no change here.
//!
//! Gossip: a local write's delta is joined into a per-peer buffer for every
//! other replica of its key; at most once per gossip interval the buffers
//! are flushed, one batch per peer. A failed send goes back into its buffer.
//! Anti-entropy: every anti-entropy interval the node sends its root digest
//! to the next peer in turn; on a mismatch the peer answers with per-key
//! digests and the two exchange exactly the keys that differ.
//! Retirement: see [`Node::begin_retire`].

mod membership;
mod message;
mod node;
mod placement;
mod store;
mod traffic;

pub use membership::{Membership, Partition, Status};
pub use message::Message;
pub use node::{AddError, Config, Effect, LeafRow, Needs, Node, RetireError, Row, WriteError};
pub use placement::{AllNodes, ByKind, HashRing, Leaf, Placement, LEAVES};
pub use store::MemoryStore;
pub use traffic::{RequestMeter, Sizing, SHRINK_BELOW};

/// The key of one replicated value (a counter name, a register key).
pub type Key = String;

/// FNV-1a, 64 bits: a stable, dependency-free digest for anti-entropy.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
