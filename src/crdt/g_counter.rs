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
//! assert_eq!(right.count(b), Some(3));
//! ```
//!
//! # Retirement
//!
//! Each node writes only its own entry, and an entry only grows, so the
//! versions of one node's entry form a chain and `max` picks the latest.
//!
//! A node `r` that is retired first stops writing (it drains), so its own
//! entry holds its final count `c_r`. The heir `h` merges `r`'s final state
//! and then, in one delta of its own entry, adds `c_r` to its count and the
//! record `(r, h)`, "h absorbed r", plus `(x, h)` for every `x` that `r` had
//! itself absorbed. The records naming `h` as heir belong to `h`'s entry:
//! every delta of that entry carries all of them, and a merge keeps a record
//! exactly as long as it keeps the heir's entry. So every later version of
//! `h`'s entry travels with the record `(r, h)`.
//!
//! A replica drops the entry of any id named as retired by some record (and
//! the records of that entry), now or when it arrives later. So in any state:
//! - `r` is counted through its own entry (at most `c_r`) only while no
//!   version of `h`'s entry that includes `c_r` is present, since those carry
//!   the record: never counted twice;
//! - once the record is present, `h`'s entry includes `c_r`: nothing lost.
//!
//! Chains of retirements stay exact because the heir copies the retired
//! entry's own records into its own. The join of two states is the
//! pointwise join of entries (max of counts, union of records) minus every
//! retired id and its records, which is commutative, associative and
//! idempotent (tested below and in `tests/laws.rs`).
//!
//! # Layout
//!
//! The entries are one `Vec` sorted by node id, so a clone is one copy and a
//! merge is one linear walk, in place unless an id comes or goes. The records
//! of all entries are one sorted `Vec` of `(retired, heir)` pairs, empty (and
//! unallocated) until a node retires. A merge that changes nothing allocates
//! nothing (`tests/counter_alloc.rs`).
//!
//! # Encoding
//!
//! Serde sees a counter as one canonical byte string: equal states, equal
//! bytes. Ids go as runs and counts in the shortest of three forms; see
//! `g_counter/encoding.rs`.

use super::{Crdt, InvalidState};
use crate::NodeId;
use std::cmp::Ordering;

mod encoding;

/// Most node ids one counter may mention (entries plus absorbed ids).
pub(crate) const MAX_NODES: usize = 1024;

/// One live node's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The node that writes this entry.
    pub node: NodeId,
    /// Its increments plus the final counts of the nodes it absorbed.
    pub count: u64,
}

/// A retirement record: `heir`'s count includes `retired`'s final count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Record {
    retired: NodeId,
    heir: NodeId,
}

/// A grow-only counter: one [`Entry`] per live node, and the records of
/// the retired nodes each entry absorbed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GCounter {
    /// Sorted by node id, no duplicates.
    entries: Vec<Entry>,
    /// Sorted, no duplicates; every heir has an entry.
    records: Vec<Record>,
}

/// An increment that would take an entry past `u64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

impl GCounter {
    /// The sum of all live entries.
    pub fn value(&self) -> u64 {
        self.entries
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.count))
    }

    /// Each live node's entry, sorted by node id.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// `node`'s count, if it has a live entry.
    pub fn count(&self, node: NodeId) -> Option<u64> {
        let i = self.entries.binary_search_by_key(&node, |e| e.node).ok()?;
        Some(self.entries[i].count)
    }

    /// The retirement records as `(retired, heir)` pairs, sorted.
    pub fn retirements(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.records.iter().map(|r| (r.retired, r.heir))
    }

    /// A counter from its entries `(node, count)` and retirement records
    /// `(retired, heir)`, in any order; refused if it breaks an invariant.
    pub fn from_parts(
        entries: impl IntoIterator<Item = (NodeId, u64)>,
        records: impl IntoIterator<Item = (NodeId, NodeId)>,
    ) -> Result<GCounter, InvalidState> {
        let mut c = GCounter {
            entries: entries
                .into_iter()
                .map(|(node, count)| Entry { node, count })
                .collect(),
            records: records
                .into_iter()
                .map(|(retired, heir)| Record { retired, heir })
                .collect(),
        };
        crate::heapsort::sort_by(&mut c.entries, |a, b| a.node < b.node);
        crate::heapsort::sort_dedup(&mut c.records);
        c.validate()?;
        Ok(c)
    }

    /// Whether `node` has been retired into another entry.
    pub fn is_absorbed(&self, node: NodeId) -> bool {
        retires(&self.records, node)
    }

    /// The delta that adds `by` to `node`'s entry: that entry and its records.
    pub fn increment(&self, node: NodeId, by: u64) -> Result<GCounter, Overflow> {
        let count = self.count(node).unwrap_or(0);
        Ok(GCounter {
            entries: vec![Entry {
                node,
                count: count.checked_add(by).ok_or(Overflow)?,
            }],
            records: self
                .records
                .iter()
                .filter(|r| r.heir == node)
                .copied()
                .collect(),
        })
    }
}

/// Whether a record of `records` (sorted) names `id` as retired.
fn retires(records: &[Record], id: NodeId) -> bool {
    records.binary_search_by(|r| r.retired.cmp(&id)).is_ok()
}

/// The records of both sides of a merge: the ids they retire are dropped.
#[derive(Clone, Copy)]
struct Gone<'a>([&'a [Record]; 2]);

impl Gone<'_> {
    fn contains(self, id: NodeId) -> bool {
        self.0.iter().any(|records| retires(records, id))
    }

    /// Whether some id of `entries` (sorted) is gone.
    fn any_of(self, entries: &[Entry]) -> bool {
        let live = |id| entries.binary_search_by_key(&id, |e| e.node).is_ok();
        self.0
            .iter()
            .any(|records| records.iter().any(|r| live(r.retired)))
    }
}

/// The sorted union of sorted `a` and `b`, `join` combining equal keys.
fn union<T: Copy, K: Ord>(
    a: &[T],
    b: &[T],
    key: impl Fn(&T) -> K,
    join: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        let (next, di, dj) = match key(&x).cmp(&key(&y)) {
            Ordering::Less => (x, 1, 0),
            Ordering::Greater => (y, 0, 1),
            Ordering::Equal => (join(x, y), 1, 1),
        };
        out.push(next);
        (i, j) = (i + di, j + dj);
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Raises the counts of `ours` to those of `theirs`; whether any rose, or
/// `None` if an id of `theirs` that is not gone is missing from `ours`.
fn raise(ours: &mut [Entry], theirs: &[Entry], gone: Gone) -> Option<bool> {
    let mut changed = false;
    if ours.len() == theirs.len() && ours.iter().zip(theirs).all(|(o, t)| o.node == t.node) {
        // The common case: the same ids, one for one.
        for (o, t) in ours.iter_mut().zip(theirs) {
            changed |= t.count > o.count;
            o.count = o.count.max(t.count);
        }
        return Some(changed);
    }
    let mut i = 0;
    for t in theirs {
        while ours.get(i).is_some_and(|o| o.node < t.node) {
            i += 1;
        }
        match ours.get_mut(i) {
            Some(o) if o.node == t.node => {
                if t.count > o.count {
                    (o.count, changed) = (t.count, true);
                }
            }
            _ if gone.contains(t.node) => {}
            _ => return None,
        }
    }
    Some(changed)
}

/// Joins `theirs` into `ours` minus the gone ids; whether `ours` changed.
/// In place unless an id comes or goes.
fn join_entries(ours: &mut Vec<Entry>, theirs: &[Entry], gone: Gone) -> bool {
    if !gone.any_of(ours) {
        if let Some(changed) = raise(ours, theirs, gone) {
            return changed;
        }
    }
    let max = |x: Entry, y: Entry| if x.count >= y.count { x } else { y };
    *ours = union(ours, theirs, |e| e.node, max);
    ours.retain(|e| !gone.contains(e.node));
    true
}

/// The records of the join, those of gone heirs dropped, or `None` if they
/// are the first side's unchanged.
fn join_records(gone: Gone) -> Option<Vec<Record>> {
    let [ours, theirs] = gone.0;
    let kept = |r: &Record| !gone.contains(r.heir);
    let added = theirs
        .iter()
        .any(|r| kept(r) && ours.binary_search(r).is_err());
    if !added && ours.iter().all(kept) {
        return None;
    }
    let mut out = union(ours, theirs, |r| *r, |r, _| r);
    out.retain(kept);
    Some(out)
}

impl Crdt for GCounter {
    /// 2: the compact layout (1 was a map of entries).
    const LAYOUT: u8 = 2;

    fn merge(&mut self, other: &GCounter) -> bool {
        let gone = Gone([&self.records, &other.records]);
        let entries = join_entries(&mut self.entries, &other.entries, gone);
        let Some(records) = join_records(gone) else {
            return entries;
        };
        self.records = records;
        true
    }

    fn validate(&self) -> Result<(), InvalidState> {
        let bad = |why: String| Err(InvalidState(why));
        let mentioned = self.entries.len() + self.records.len();
        if mentioned > MAX_NODES {
            return bad(format!(
                "counter mentions {mentioned} node ids, over the limit of {MAX_NODES}"
            ));
        }
        if let Some(w) = self.entries.windows(2).find(|w| w[0].node >= w[1].node) {
            return bad(format!("entry {} out of order or repeated", w[1].node));
        }
        if let Some(w) = self.records.windows(2).find(|w| w[0] >= w[1]) {
            return bad(format!(
                "record of {} out of order or repeated",
                w[1].retired
            ));
        }
        for &Record { retired, heir } in &self.records {
            if retired == heir {
                return bad(format!("{retired} claims to have absorbed itself"));
            }
            if self.count(heir).is_none() {
                return bad(format!("{heir} absorbed {retired} but has no entry"));
            }
            if self.count(retired).is_some() {
                return bad(format!("{retired} is both live and absorbed"));
            }
        }
        Ok(())
    }

    /// The entries above `state`'s of nodes neither side has absorbed,
    /// and the heirs of the records `state` lacks, each entry with every
    /// record of its heir (a count that holds an absorbed node's never
    /// travels without the record that says so).
    fn novel(&self, state: &GCounter) -> Option<GCounter> {
        let gone = Gone([&state.records, &self.records]);
        let above =
            |e: &Entry| !gone.contains(e.node) && state.count(e.node).is_none_or(|c| e.count > c);
        let new_heirs = self
            .records
            .iter()
            .filter(|r| state.records.binary_search(r).is_err())
            .map(|r| r.heir);
        let mut heirs: Vec<NodeId> = self
            .entries
            .iter()
            .filter(|e| above(e))
            .map(|e| e.node)
            .collect();
        heirs.extend(new_heirs);
        crate::heapsort::sort_dedup(&mut heirs);
        let kept = |id: NodeId| heirs.binary_search(&id).is_ok();
        Some(GCounter {
            entries: self
                .entries
                .iter()
                .filter(|e| kept(e.node))
                .copied()
                .collect(),
            records: self
                .records
                .iter()
                .filter(|r| kept(r.heir))
                .copied()
                .collect(),
        })
    }

    fn absorb(&self, retired: NodeId, heir: NodeId) -> Option<GCounter> {
        let gone = self.count(retired)?;
        if retired == heir {
            return None;
        }
        let count = self.count(heir).unwrap_or(0).saturating_add(gone);
        let mut records: Vec<Record> = self
            .records
            .iter()
            .filter(|r| r.heir == heir || r.heir == retired)
            .map(|r| Record { heir, ..*r })
            .chain([Record { retired, heir }])
            .collect();
        crate::heapsort::sort_dedup(&mut records);
        Some(GCounter {
            entries: vec![Entry { node: heir, count }],
            records,
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

    /// A counter with `(id, count)` entries, written by their nodes.
    fn counter(entries: &[(u32, u64)]) -> GCounter {
        let mut c = GCounter::default();
        for &(id, by) in entries {
            step(&mut c, |x| x.increment(NodeId(id), by).unwrap());
        }
        c
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
        // Later deltas of the heir's entry carry its record.
        let later = heir.increment(A, 1).unwrap();
        assert_eq!(later.retirements().collect::<Vec<_>>(), [(B, A)]);
    }

    #[test]
    fn chained_retirement_drops_every_absorbed_entry() {
        let mut c = counter(&[(0, 1), (1, 2), (2, 4)]);
        let old = c.clone();
        let first = step(&mut c, |x| x.absorb(C, B).unwrap());
        let last = step(&mut c, |x| x.absorb(B, A).unwrap());
        assert_eq!(last.retirements().collect::<Vec<_>>(), [(B, A), (C, A)]);
        let mut replica = old;
        replica.merge(&last);
        assert_eq!(replica.value(), 7);
        assert_eq!(replica.entries().len(), 1);
        // B's entry goes with its own record of C.
        assert!(!replica.merge(&first));
        assert_eq!(replica, c);
    }

    #[test]
    fn merge_walks_in_place_unless_ids_change() {
        let mut c = counter(&[(0, 1), (1, 2), (5, 3)]);
        let ptr = c.entries().as_ptr();
        assert!(!c.merge(&c.clone()));
        assert!(!c.merge(&counter(&[(1, 1)])), "a dominated entry");
        assert!(c.merge(&counter(&[(1, 9), (5, 4)])));
        assert_eq!(c.entries().as_ptr(), ptr, "raised in place");
        assert_eq!(c.value(), 14);
        assert!(c.merge(&counter(&[(3, 1)])), "a new id");
        let ids: Vec<u32> = c.entries().iter().map(|e| e.node.0).collect();
        assert_eq!(ids, [0, 1, 3, 5]);
        assert_eq!(c.count(NodeId(5)), Some(4));
    }

    #[test]
    fn validate_rejects_broken_states() {
        let entry = |id, count| Entry {
            node: NodeId(id),
            count,
        };
        let rec = |retired, heir| Record {
            retired: NodeId(retired),
            heir: NodeId(heir),
        };
        let state = |entries: &[Entry], records: &[Record]| GCounter {
            entries: entries.to_vec(),
            records: records.to_vec(),
        };
        let good = state(&[entry(0, 1), entry(2, 1)], &[rec(1, 0), rec(3, 2)]);
        assert_eq!(good.validate(), Ok(()));
        let broken = [
            state(&[entry(0, 1)], &[rec(0, 0)]),
            state(&[entry(0, 1), entry(1, 0)], &[rec(1, 0)]),
            state(&[entry(2, 1), entry(0, 1)], &[]),
            state(&[entry(0, 1), entry(0, 2)], &[]),
            state(&[entry(0, 1), entry(2, 1)], &[rec(3, 2), rec(1, 0)]),
            state(&[entry(0, 1)], &[rec(1, 0), rec(1, 0)]),
            state(&[entry(0, 1)], &[rec(1, 7)]),
            state(&[entry(0, 1)], &vec![rec(1, 0); MAX_NODES]),
        ];
        for s in broken {
            assert!(s.validate().is_err(), "{s:?}");
        }
        let too_many: Vec<Entry> = (0..=MAX_NODES as u32).map(|i| entry(i, 1)).collect();
        assert!(state(&too_many, &[]).validate().is_err());
    }
}
