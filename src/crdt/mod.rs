//! Replicated data types. Each is a join-semilattice: [`Crdt::merge`] is
//! commutative, associative and idempotent, and every mutator returns a
//! delta that is itself a (small) state of the same type.

mod causal;
#[cfg(feature = "contacts")]
pub mod contacts;
mod g_counter;
mod hlc;
mod lww_set;
mod mv_register;
mod pn_counter;
#[cfg(feature = "streams")]
pub mod stream;

pub use causal::{CausalContext, Dot, MAX_COUNTER};
pub use g_counter::{Entry, GCounter, Overflow};
pub use hlc::{Hlc, StampError, COUNTER_BITS};
pub use lww_set::{Bias, Element, LwwSet, MAX_ELEMENT, MAX_ELEMENTS};
pub use mv_register::{
    MvRegister, Payload, TooManySiblings, Versioned, MAX_MERGED_SIBLINGS, MAX_SIBLINGS,
};
pub use pn_counter::{PnCounter, PnError};

use crate::NodeId;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// What the cluster engine needs from a replicated data type.
///
/// The engine stores, gossips and merges values of `Self` per key; it never
/// looks inside them. Mutators are inherent methods of each type that read
/// the state and return a delta; the engine applies that delta with `merge`.
pub trait Crdt: Clone + Default + PartialEq + fmt::Debug + Serialize + DeserializeOwned {
    /// The version of this type's encoding, carried in its envelope when a
    /// state is handed to replicas outside the cluster (events, browser
    /// storage): a state of an older layout is refused, never misread.
    const LAYOUT: u8 = 1;

    /// Joins `other` into `self`; returns whether `self` changed.
    fn merge(&mut self, other: &Self) -> bool;

    /// Checks a value that came from outside (a peer, a browser's storage)
    /// before it is merged: sizes and structural invariants.
    fn validate(&self) -> Result<(), InvalidState>;

    /// The delta that folds the contribution of `retired`, a node that has
    /// drained and will never write again, into the entry of `heir`.
    /// `None` when the type keeps no per-node entries or there is nothing to fold.
    fn absorb(&self, retired: NodeId, heir: NodeId) -> Option<Self> {
        let _ = (retired, heir);
        None
    }

    /// The latest hybrid-logical-clock timestamp in this state, if the type
    /// keeps any: the node's clock moves past it when it merges the state.
    fn latest_stamp(&self) -> Option<u64> {
        None
    }

    /// The part of `self`, a delta, that `state` lacks, if the type can
    /// tell it apart (`None`: the whole delta is passed on).
    fn novel(&self, state: &Self) -> Option<Self> {
        let _ = state;
        None
    }

    /// Whether this state holds no value, only what is needed to keep
    /// removed values removed (a causal tombstone). The cluster drops such
    /// a state once every node has confirmed it holds the same or nothing.
    fn is_tombstone(&self) -> bool {
        false
    }
}

/// Who writes and when: what a mutator needs to name a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// the node taking the write
    pub node: NodeId,
    /// a hybrid-logical-clock timestamp, later than any this node has seen
    pub time: u64,
    /// Whether the node's state of the key holds every write the node made
    /// to it: the node has kept the key since its last write there. Only
    /// then may it number a write after the dots it sees of its own.
    pub holds_own_writes: bool,
}

/// A remote state that breaks an invariant of its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidState(pub String);

impl fmt::Display for InvalidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid state: {}", self.0)
    }
}

impl std::error::Error for InvalidState {}
