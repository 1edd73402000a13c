//! A counter that goes up and down: two [`GCounter`]s, one for increments
//! and one for decrements, keyed by node id.
//!
//! ```
//! use edge_crdt::{crdt::{Crdt, PnCounter}, NodeId};
//! let mut visits = PnCounter::default();
//! let delta = visits.add(NodeId(0), 5).unwrap();
//! visits.merge(&delta);
//! visits.merge(&visits.add(NodeId(1), -2).unwrap());
//! assert_eq!(visits.value(), 3);
//! assert_eq!(visits.increments().value(), 5);
//! ```
//!
//! Retirement folds a node into its heir in both halves; see
//! [`GCounter`](super::GCounter) for why that neither loses nor double counts,
//! and for the state's layout and encoding (the two halves' byte strings).

use super::{Crdt, GCounter, InvalidState, Overflow};
use crate::{NodeId, NodeMap};
use serde::{Deserialize, Serialize};

/// A positive-negative counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    inc: GCounter,
    dec: GCounter,
}

/// Why an increment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PnError {
    /// The node's entry would pass `u64::MAX`.
    Overflow,
    /// The node has been retired into another and must not write.
    Retired,
}

impl From<Overflow> for PnError {
    fn from(_: Overflow) -> Self {
        PnError::Overflow
    }
}

impl PnCounter {
    /// The counter of two halves: increments and decrements.
    pub fn from_halves(inc: GCounter, dec: GCounter) -> PnCounter {
        PnCounter { inc, dec }
    }

    /// Increments minus decrements, clamped to the `i64` range.
    pub fn value(&self) -> i64 {
        let v = i128::from(self.inc.value()) - i128::from(self.dec.value());
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The delta that adds `by` (negative to subtract) at `node`.
    pub fn add(&self, node: NodeId, by: i64) -> Result<PnCounter, PnError> {
        if self.inc.is_absorbed(node) || self.dec.is_absorbed(node) {
            return Err(PnError::Retired);
        }
        let mut delta = PnCounter::default();
        if by >= 0 {
            delta.inc = self.inc.increment(node, by.unsigned_abs())?;
        } else {
            delta.dec = self.dec.increment(node, by.unsigned_abs())?;
        }
        Ok(delta)
    }

    /// The half that counts the increments.
    pub fn increments(&self) -> &GCounter {
        &self.inc
    }

    /// The half that counts the decrements (as positive counts).
    pub fn decrements(&self) -> &GCounter {
        &self.dec
    }

    /// Each live node's net contribution.
    pub fn contributions(&self) -> NodeMap<i64> {
        let mut out = NodeMap::new();
        for (sign, half) in [(1i128, &self.inc), (-1, &self.dec)] {
            for e in half.entries() {
                let v = out.get_or_insert_with(e.node, || 0i128);
                *v += sign * i128::from(e.count);
            }
        }
        let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        out.into_iter().map(|(id, v)| (id, clamp(v))).collect()
    }

    /// The retired nodes folded into each live node, in either half.
    pub fn retired(&self) -> NodeMap<NodeId> {
        let mut out = NodeMap::new();
        for half in [&self.inc, &self.dec] {
            for (gone, heir) in half.retirements() {
                out.insert(gone, heir);
            }
        }
        out
    }
}

impl Crdt for PnCounter {
    /// 2: the compact layout (1 was a map per half).
    const LAYOUT: u8 = 2;

    fn merge(&mut self, other: &PnCounter) -> bool {
        let inc = self.inc.merge(&other.inc);
        let dec = self.dec.merge(&other.dec);
        inc || dec
    }

    fn validate(&self) -> Result<(), InvalidState> {
        self.inc.validate()?;
        self.dec.validate()
    }

    fn novel(&self, state: &PnCounter) -> Option<PnCounter> {
        Some(PnCounter {
            inc: self.inc.novel(&state.inc)?,
            dec: self.dec.novel(&state.dec)?,
        })
    }

    fn absorb(&self, retired: NodeId, heir: NodeId) -> Option<PnCounter> {
        let inc = self.inc.absorb(retired, heir);
        let dec = self.dec.absorb(retired, heir);
        if inc.is_none() && dec.is_none() {
            return None;
        }
        Some(PnCounter {
            inc: inc.unwrap_or_default(),
            dec: dec.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn decrements_and_contributions() {
        let mut c = PnCounter::default();
        c.merge(&c.add(NodeId(0), 10).unwrap());
        c.merge(&c.add(NodeId(1), -3).unwrap());
        c.merge(&c.add(NodeId(0), -1).unwrap());
        assert_eq!(c.value(), 6);
        assert_eq!(
            c.contributions(),
            NodeMap::from_iter([(NodeId(0), 9), (NodeId(1), -3)])
        );
    }

    #[test]
    fn retired_node_cannot_write_and_its_count_is_kept() {
        let mut c = PnCounter::default();
        c.merge(&c.add(NodeId(0), 4).unwrap());
        c.merge(&c.add(NodeId(1), 6).unwrap());
        c.merge(&c.add(NodeId(1), -1).unwrap());
        c.merge(&c.absorb(NodeId(1), NodeId(0)).unwrap());
        assert_eq!(c.value(), 9);
        assert_eq!(c.retired(), NodeMap::from_iter([(NodeId(1), NodeId(0))]));
        assert_eq!(c.add(NodeId(1), 1), Err(PnError::Retired));
        assert_eq!(c.contributions(), NodeMap::from_iter([(NodeId(0), 9)]));
    }

    #[test]
    fn each_half_keeps_its_records_and_encodes_as_bytes() {
        let (a, b) = (NodeId(0), NodeId(1));
        let mut c = PnCounter::default();
        for (node, by) in [(a, 4), (b, 6), (b, -1)] {
            c.merge(&c.add(node, by).unwrap());
        }
        c.merge(&c.absorb(b, a).unwrap());
        for half in [c.increments(), c.decrements()] {
            assert_eq!(half.retirements().collect::<Vec<_>>(), [(b, a)]);
        }
        // The heir's next decrement carries the record of that half.
        let d = c.add(a, -2).unwrap();
        assert_eq!(d.decrements().retirements().count(), 1);
        assert_eq!(d.increments(), &GCounter::default());
        // Two byte strings, each with its length first.
        let empty = postcard::to_allocvec(&PnCounter::default()).unwrap();
        assert_eq!(empty, [2, 0, 0, 2, 0, 0]);
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<PnCounter>(&bytes).unwrap(), c);
    }
}
