//! A grow-only counter keyed by node id, with node retirement.
//!
//! ```
//! use edge_crdt::{crdt::{Crdt, GCounter}, NodeId};
//! let (a, b) = (NodeId(0), NodeId(1));
//! let mut left = GCounter::default();
//! let delta = left.increment(a, 2).unwrap();
//! left.merge(&delta);
//! let mut right = GCounter::default();
//! right.merge(&right.increment(b, 3).unwrap());
//! right.merge(&left);
//! assert_eq!(right.value(), 5);
//! ```
//!
//! # Retirement
//!
//! Each node writes only its own entry, and an entry only grows, so the
//! versions of one node's entry form a chain and `max` picks the latest.
//!
//! A node `r` that is retired first stops writing (it drains), so its own
//! entry holds its final count `c_r`. The heir `h` merges `r`'s final state
//! and then, in one delta of its own entry, adds `c_r` to its count and adds
//! `r` (and whatever `r` had itself absorbed) to the entry's `absorbed` set.
//! That set is the retirement record, and it travels inside every later
//! version of `h`'s entry, because versions of one entry only grow.
//!
//! A replica drops the entry of any id found in some entry's `absorbed` set,
//! now or when it arrives later. So in any state:
//! - `r` is counted through its own entry (at most `c_r`) only while no
//!   version of `h`'s entry that includes `c_r` is present, since those carry
//!   the record: never counted twice;
//! - once the record is present, `h`'s entry includes `c_r`: nothing lost.
//!
//! Chains of retirements stay exact because the heir copies the retired
//! entry's own `absorbed` set into its own. The join of two states is the
//! pointwise join of entries minus every absorbed id, which is commutative,
//! associative and idempotent (tested below and in `tests/laws.rs`).

use super::{Crdt, InvalidState};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most node ids one counter may mention (entries plus absorbed ids).
pub(crate) const MAX_NODES: usize = 1024;

/// One node's entry: its count and the ids of the retired nodes it absorbed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// This node's increments plus the final counts of the nodes it absorbed.
    pub count: u64,
    /// Retired nodes whose counts are included in `count`.
    pub absorbed: BTreeSet<NodeId>,
}

impl Entry {
    fn join(&mut self, other: &Entry) -> bool {
        let mut changed = false;
        if other.count > self.count {
            self.count = other.count;
            changed = true;
        }
        for id in &other.absorbed {
            changed |= self.absorbed.insert(*id);
        }
        changed
    }
}

/// A grow-only counter: one [`Entry`] per node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GCounter {
    entries: BTreeMap<NodeId, Entry>,
}

/// An increment that would take an entry past `u64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

impl GCounter {
    /// The sum of all live entries.
    pub fn value(&self) -> u64 {
        self.entries
            .values()
            .fold(0u64, |sum, e| sum.saturating_add(e.count))
    }

    /// Each live node's entry.
    pub fn entries(&self) -> &BTreeMap<NodeId, Entry> {
        &self.entries
    }

    /// Whether `node` has been retired into another entry.
    pub fn is_absorbed(&self, node: NodeId) -> bool {
        self.entries.values().any(|e| e.absorbed.contains(&node))
    }

    /// The delta that adds `by` to `node`'s entry.
    pub fn increment(&self, node: NodeId, by: u64) -> Result<GCounter, Overflow> {
        let mut entry = self.entries.get(&node).cloned().unwrap_or_default();
        entry.count = entry.count.checked_add(by).ok_or(Overflow)?;
        Ok(GCounter {
            entries: BTreeMap::from([(node, entry)]),
        })
    }

    fn absorbed_ids<'a>(&'a self, other: &'a GCounter) -> BTreeSet<NodeId> {
        self.entries
            .values()
            .chain(other.entries.values())
            .flat_map(|e| e.absorbed.iter().copied())
            .collect()
    }
}

impl Crdt for GCounter {
    fn merge(&mut self, other: &GCounter) -> bool {
        let absorbed = self.absorbed_ids(other);
        let mut changed = false;
        for (id, theirs) in &other.entries {
            if absorbed.contains(id) {
                continue;
            }
            match self.entries.get_mut(id) {
                Some(ours) => changed |= ours.join(theirs),
                None => {
                    self.entries.insert(*id, theirs.clone());
                    changed = true;
                }
            }
        }
        let before = self.entries.len();
        self.entries.retain(|id, _| !absorbed.contains(id));
        changed || self.entries.len() != before
    }

    fn validate(&self) -> Result<(), InvalidState> {
        let mut mentioned = self.entries.len();
        for (id, entry) in &self.entries {
            if entry.absorbed.contains(id) {
                return Err(InvalidState(format!("{id} claims to have absorbed itself")));
            }
            mentioned += entry.absorbed.len();
        }
        if mentioned > MAX_NODES {
            return Err(InvalidState(format!(
                "counter mentions {mentioned} node ids, over the limit of {MAX_NODES}"
            )));
        }
        if let Some(id) = self.entries.keys().find(|id| self.is_absorbed(**id)) {
            return Err(InvalidState(format!("{id} is both live and absorbed")));
        }
        Ok(())
    }

    fn absorb(&self, retired: NodeId, heir: NodeId) -> Option<GCounter> {
        let gone = self.entries.get(&retired)?;
        if retired == heir {
            return None;
        }
        let mut entry = self.entries.get(&heir).cloned().unwrap_or_default();
        entry.count = entry.count.saturating_add(gone.count);
        entry.absorbed.insert(retired);
        entry.absorbed.extend(gone.absorbed.iter().copied());
        Some(GCounter {
            entries: BTreeMap::from([(heir, entry)]),
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const A: NodeId = NodeId(0);
    const B: NodeId = NodeId(1);
    const C: NodeId = NodeId(2);

    fn step(c: &mut GCounter, op: impl FnOnce(&GCounter) -> GCounter) -> GCounter {
        let d = op(c);
        c.merge(&d);
        d
    }

    #[test]
    fn increment_delta_is_one_entry() {
        let mut c = GCounter::default();
        step(&mut c, |x| x.increment(A, 5).unwrap());
        let d = c.increment(A, 2).unwrap();
        assert_eq!(d.entries().len(), 1);
        assert_eq!(d.value(), 7);
        assert_eq!(c.increment(A, u64::MAX), Err(Overflow));
    }

    #[test]
    fn stale_entry_of_retired_node_is_ignored_after_fold() {
        let mut heir = GCounter::default();
        let mut retiree = GCounter::default();
        let stale = step(&mut retiree, |x| x.increment(B, 3).unwrap());
        step(&mut retiree, |x| x.increment(B, 4).unwrap());
        step(&mut heir, |x| x.increment(A, 10).unwrap());
        heir.merge(&retiree);
        let fold = step(&mut heir, |x| x.absorb(B, A).unwrap());
        assert_eq!(heir.value(), 17);
        assert!(heir.is_absorbed(B));
        assert!(
            !heir.merge(&stale),
            "a stale entry of a retired node changes nothing"
        );

        // A replica that had the stale entry and then gets the fold.
        let mut other = GCounter::default();
        other.merge(&stale);
        other.merge(&fold);
        assert_eq!(other.value(), 17);
        assert!(heir.absorb(B, A).is_none(), "absorbing twice is a no-op");
    }

    #[test]
    fn chained_retirement_drops_every_absorbed_entry() {
        let mut c = GCounter::default();
        for (n, by) in [(A, 1), (B, 2), (C, 4)] {
            step(&mut c, |x| x.increment(n, by).unwrap());
        }
        let old = c.clone();
        step(&mut c, |x| x.absorb(C, B).unwrap());
        let last = step(&mut c, |x| x.absorb(B, A).unwrap());
        assert_eq!(last.entries()[&A].absorbed, BTreeSet::from([B, C]));
        let mut replica = old;
        replica.merge(&last);
        assert_eq!(replica.value(), 7);
        assert_eq!(replica.entries().len(), 1);
    }

    #[test]
    fn validate_rejects_broken_records() {
        let mut selfish = GCounter::default();
        selfish.entries.insert(
            A,
            Entry {
                count: 1,
                absorbed: BTreeSet::from([A]),
            },
        );
        assert!(selfish.validate().is_err());
        let mut both = GCounter::default();
        both.entries.insert(
            A,
            Entry {
                count: 1,
                absorbed: BTreeSet::from([B]),
            },
        );
        both.entries.insert(B, Entry::default());
        assert!(both.validate().is_err());
    }
}
