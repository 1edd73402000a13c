//! The seam between the engine and the kinds of data it hosts.
//!
//! The engine stores, digests and ships rows as bytes. What a row means is
//! its kind's business: a [`Catalog`] maps a kind prefix (`counter`, `kv`)
//! to a [`RowType`], which merges, checks and absorbs rows, may name a log
//! entry for each accepted delta, and may speak a sync protocol of its own
//! through [`Message::Sync`](super::Message::Sync). [`Rows`] is the
//! row type of any [`Crdt`] with delta-state gossip and digest repair, the
//! default sync mode.
//!
//! ```
//! use edge_crdt::crdt::{Crdt, PnCounter};
//! use edge_crdt::engine::{Policy, RowType, Rows};
//! use edge_crdt::NodeId;
//! static COUNTERS: Rows<PnCounter> = Rows::new(Policy::Everywhere);
//! let delta = postcard::to_allocvec(&PnCounter::default().add(NodeId(0), 2).unwrap()).unwrap();
//! let merged = COUNTERS.merge(None, &delta, u64::MAX).unwrap();
//! assert!(merged.changed);
//! let back: PnCounter = postcard::from_bytes(&merged.state).unwrap();
//! assert_eq!(back.value(), 2);
//! ```

use super::exec::SyncCx;
use super::flat::Flat;
use super::{ObjectId, RowKey};
use crate::crdt::{Crdt, InvalidState};
use crate::NodeId;
use std::marker::PhantomData;

/// Where the objects of a kind live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// On every live node (counters, sets).
    Everywhere,
    /// On `REPLICAS` nodes of the consistent-hash ring (registers).
    Ring,
}

/// A merge's outcome: the new state and what the engine keeps of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// the row's state after the merge, encoded
    pub state: Vec<u8>,
    /// whether the merge changed the row
    pub changed: bool,
    /// the latest clock stamp in the new state: the node's clock moves past it
    pub latest_stamp: Option<u64>,
    /// whether the new state only keeps removed values removed
    pub tombstone: bool,
    /// the part of the delta the old state lacked, when the type can tell
    /// it apart: what a relay passes on instead of the whole delta
    pub novel: Option<Vec<u8>>,
}

/// Why a delta was not merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowError {
    /// The bytes are not a valid row of this kind.
    Invalid(InvalidState),
    /// The delta is stamped after the limit the caller gave.
    Ahead(u64),
}

/// A kind's rows, seen through bytes.
pub trait RowType: Sync {
    /// Where the kind's objects live.
    fn policy(&self) -> Policy;

    /// Merges `delta` into `state` (`None`: the row is absent). A delta
    /// stamped after `limit` is refused whole. The bytes are postcard.
    fn merge(&self, state: Option<&[u8]>, delta: &[u8], limit: u64) -> Result<Merged, RowError>;

    /// Checks row `key`'s state that came from outside: it decodes, whole,
    /// keeps its type's invariants, and fits its key (a content id, say).
    fn check(&self, key: &str, row: &[u8]) -> Result<(), InvalidState>;

    /// The latest clock stamp in a stored row, if its type keeps stamps.
    fn latest_stamp(&self, row: &[u8]) -> Option<u64>;

    /// The delta that folds the contribution of `retired` into `heir`'s,
    /// if the row holds any.
    fn absorb(&self, row: &[u8], retired: NodeId, heir: NodeId) -> Option<Vec<u8>>;

    /// The entry, if any, that the object's ordered log keeps for an
    /// accepted delta of `row` (from a client or a peer).
    fn log_entry(&self, row: &str, delta: &[u8]) -> Option<Vec<u8>> {
        let _ = (row, delta);
        None
    }

    /// The other rows of the object that taking `delta` of `row` reads,
    /// when it arrives from a peer (the events an event links, say): the
    /// driver loads them first.
    fn reads(&self, row: &str, delta: &[u8]) -> Vec<RowKey> {
        let _ = (row, delta);
        Vec::new()
    }

    /// The rows of the object that handling sync `payload` reads.
    fn sync_needs(&self, payload: &[u8]) -> Vec<RowKey> {
        let _ = payload;
        Vec::new()
    }

    /// Whether handling sync `payload` reads every row of the object.
    fn sync_needs_whole(&self, payload: &[u8]) -> bool {
        let _ = payload;
        false
    }

    /// Checks a sync payload from a peer before anything of its frame is
    /// handled: an error refuses the whole frame.
    fn check_sync(&self, payload: &[u8]) -> Result<(), InvalidState> {
        let _ = payload;
        Ok(())
    }

    /// Called at the tick an object asked for with
    /// [`SyncCx::wake_in`](super::SyncCx::wake_in): timers of the kind's
    /// own sync (a rebroadcast, a retried backfill).
    fn on_wake(&self, cx: &mut SyncCx<'_>) {
        let _ = cx;
    }

    /// Handles a kind-specific sync message from peer `from`.
    fn on_sync(&self, cx: &mut SyncCx<'_>, from: NodeId, payload: &[u8]) {
        let _ = (cx, from, payload);
    }

    /// Called after a row of an object changed, from any source: the kind
    /// may answer with sync messages (a backfill request, say).
    fn on_applied(&self, cx: &mut SyncCx<'_>, row: &str) {
        let _ = (cx, row);
    }

    /// The keys of the rows each object keeps for this node alone: what
    /// the kind derives from the object's other rows as they arrive (a
    /// topic's heads, say), so it never scans them. Such a row is stored
    /// and loaded like the others, in the batch of the change that moved
    /// it, but it is never digested, gossiped, repaired, handed over,
    /// logged or published, and a peer may not send one. The kind keeps
    /// them with [`SyncCx::set_local`](super::SyncCx::set_local); they
    /// go when the object's last row does.
    fn locals(&self) -> &'static [&'static str] {
        &[]
    }

    /// The kind's own table, if it stores its rows flattened.
    fn flat(&self) -> Option<&dyn Flat> {
        None
    }
}

/// Every kind the engine hosts, by prefix.
pub trait Catalog: Sync {
    /// The row type of the kind with `prefix`.
    fn row_type(&self, prefix: &str) -> Option<&dyn RowType>;

    /// Every kind's prefix.
    fn prefixes(&self) -> Vec<&'static str>;
}

/// How row `row` of `object` is stored flattened, if its kind keeps it in
/// a table of its own.
pub fn flat_of<'c>(catalog: &'c dyn Catalog, object: &ObjectId, row: &str) -> Option<&'c dyn Flat> {
    let flat = catalog.row_type(object.prefix())?.flat()?;
    flat.holds(row).then_some(flat)
}

/// The row type of a [`Crdt`] `R`: delta-state gossip with digest repair.
pub struct Rows<R> {
    policy: Policy,
    of: PhantomData<fn() -> R>,
}

impl<R> Rows<R> {
    /// Rows of `R`, placed by `policy`.
    pub const fn new(policy: Policy) -> Self {
        Rows {
            policy,
            of: PhantomData,
        }
    }
}

/// Decodes a whole row: no bytes may follow it.
pub fn decode<R: Crdt>(bytes: &[u8]) -> Result<R, InvalidState> {
    let mut postcard = postcard::Deserializer::from_bytes(bytes);
    let row = R::deserialize(&mut postcard).map_err(not_a_row)?;
    row_ended(postcard.finalize())?;
    Ok(row)
}

// Out of line, once, rather than in each row type's `decode`.
#[inline(never)]
fn not_a_row(e: postcard::Error) -> InvalidState {
    InvalidState(format!("not a row of this kind: {e}"))
}

#[inline(never)]
fn row_ended(rest: postcard::Result<&[u8]>) -> Result<(), InvalidState> {
    match rest.map_err(not_a_row)? {
        [] => Ok(()),
        rest => Err(InvalidState(format!("{} bytes after the row", rest.len()))),
    }
}

/// Encodes a row.
pub(crate) fn encode<R: Crdt>(row: &R) -> Vec<u8> {
    postcard::to_allocvec(row).unwrap_or_default()
}

impl<R: Crdt> RowType for Rows<R> {
    fn policy(&self) -> Policy {
        self.policy
    }

    fn merge(&self, state: Option<&[u8]>, delta: &[u8], limit: u64) -> Result<Merged, RowError> {
        let delta: R = decode(delta).map_err(RowError::Invalid)?;
        if let Some(t) = delta.latest_stamp().filter(|t| *t > limit) {
            return Err(RowError::Ahead(t));
        }
        let mut row: R = match state {
            Some(bytes) => decode(bytes).map_err(RowError::Invalid)?,
            None => R::default(),
        };
        let novel = delta.novel(&row).map(|d| encode(&d));
        let changed = row.merge(&delta);
        Ok(Merged {
            state: if changed {
                encode(&row)
            } else {
                state.map(<[u8]>::to_vec).unwrap_or_default()
            },
            changed,
            latest_stamp: row.latest_stamp(),
            tombstone: row.is_tombstone(),
            novel,
        })
    }

    fn check(&self, _: &str, row: &[u8]) -> Result<(), InvalidState> {
        decode::<R>(row)?.validate()
    }

    fn latest_stamp(&self, row: &[u8]) -> Option<u64> {
        decode::<R>(row).ok()?.latest_stamp()
    }

    fn absorb(&self, row: &[u8], retired: NodeId, heir: NodeId) -> Option<Vec<u8>> {
        let row: R = decode(row).ok()?;
        row.absorb(retired, heir).map(|d| encode(&d))
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::{CausalContext, MvRegister, PnCounter};

    static COUNTERS: Rows<PnCounter> = Rows::new(Policy::Everywhere);
    static REGISTERS: Rows<MvRegister> = Rows::new(Policy::Ring);

    #[test]
    fn a_bottom_delta_leaves_an_absent_row_absent() {
        let empty_delete = encode(&MvRegister::default().delete(&CausalContext::default()));
        let merged = REGISTERS.merge(None, &empty_delete, u64::MAX).unwrap();
        assert!(!merged.changed);
    }

    #[test]
    fn merges_refuse_garbage_trailing_bytes_and_late_stamps() {
        let mut one = encode(&PnCounter::default().add(NodeId(1), 1).unwrap());
        assert!(
            COUNTERS.merge(None, &one, 0).unwrap().changed,
            "counters carry no stamps"
        );
        one.push(0);
        assert!(matches!(
            COUNTERS.merge(None, &one, u64::MAX),
            Err(RowError::Invalid(_))
        ));
        assert!(COUNTERS.check("", &[0xff; 3]).is_err());
        let at = crate::crdt::Stamp {
            node: NodeId(0),
            time: 500,
            holds_own_writes: true,
        };
        let write = MvRegister::default().write(
            at,
            &CausalContext::default(),
            crate::crdt::Payload::Text("x".into()),
        );
        let bytes = encode(&write);
        assert_eq!(
            REGISTERS.merge(None, &bytes, 499),
            Err(RowError::Ahead(500))
        );
        let merged = REGISTERS.merge(None, &bytes, 500).unwrap();
        assert_eq!((merged.changed, merged.latest_stamp), (true, Some(500)));
    }
}
