//! Dots and causal contexts: the causal metadata of [`MvRegister`](super::MvRegister).
//!
//! A dot `(node, n)` names one write of a node to one register: `n` follows
//! the node's previous dot there, or is the node's clock stamp when the
//! register holds none of its dots (see [`MvRegister::write`](super::MvRegister::write)),
//! so a node's writes form runs of consecutive counters. A causal context is
//! a set of dots, kept compact as a version vector (every dot of a node up to
//! a counter) plus runs of dots beyond the gaps.
//!
//! ```
//! use edge_crdt::crdt::{CausalContext, Dot};
//! use edge_crdt::NodeId;
//! let mut seen = CausalContext::default();
//! let first = seen.next_dot(NodeId(1));
//! seen.insert(first);
//! seen.insert(Dot { node: NodeId(1), counter: 3 }); // a gap at 2
//! assert!(seen.contains(first) && !seen.contains(Dot { node: NodeId(1), counter: 2 }));
//! assert_eq!(seen.next_dot(NodeId(1)).counter, 4);
//! ```

use super::InvalidState;
use crate::{NodeId, NodeMap, NodeSet, VecMap};
use serde::{Deserialize, Serialize};

/// Most version-vector entries and runs one context may hold.
const MAX_CONTEXT: usize = 4096;

/// Dot counters stay below this: far above any that writes make (one
/// more than the last, or a clock stamp), it leaves room for a next dot.
pub const MAX_COUNTER: u64 = 1 << 63;

/// One write's identity: the node and its write counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// the writing node
    pub node: NodeId,
    /// that node's write number (see [`MvRegister::write`](super::MvRegister::write))
    pub counter: u64,
}

/// A set of dots: a version vector, plus runs of dots past its gaps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    /// every dot `1..=n` of a node
    vv: NodeMap<u64>,
    /// per node, runs `first..=last` above `vv + 1`, disjoint and not adjacent
    cloud: NodeMap<VecMap<u64, u64>>,
}

impl CausalContext {
    /// Whether `dot` is in the set. Counter 0 is never a dot.
    pub fn contains(&self, dot: Dot) -> bool {
        dot.counter > 0
            && (self.vv.get(&dot.node).is_some_and(|n| *n >= dot.counter)
                || self.run_holding(dot.node, dot.counter, dot.counter))
    }

    /// Whether one run of `node` holds every counter `first..=last`.
    fn run_holding(&self, node: NodeId, first: u64, last: u64) -> bool {
        self.cloud
            .get(&node)
            .and_then(|runs| runs.last_at_most(&first))
            .is_some_and(|(_, end)| *end >= last)
    }

    /// Whether every dot of `other` is in this set.
    pub fn covers(&self, other: &CausalContext) -> bool {
        // Compact: past `vv`, no run of `self` starts at `vv + 1`.
        other
            .vv
            .iter()
            .all(|(node, n)| self.vv.get(node).copied().unwrap_or(0) >= *n)
            && other.cloud.iter().all(|(node, runs)| {
                runs.iter().all(|(first, last)| {
                    self.vv.get(node).copied().unwrap_or(0) >= *last
                        || self.run_holding(*node, *first, *last)
                })
            })
    }

    /// Whether the set holds any dot of `node`.
    pub fn knows(&self, node: NodeId) -> bool {
        self.vv.contains_key(&node) || self.cloud.contains_key(&node)
    }

    /// The next dot of `node` after every one in the set.
    pub fn next_dot(&self, node: NodeId) -> Dot {
        let top = self.vv.get(&node).copied().unwrap_or(0);
        let last = self
            .cloud
            .get(&node)
            .and_then(|runs| runs.values().next_back().copied())
            .unwrap_or(0);
        Dot {
            node,
            counter: top.max(last) + 1,
        }
    }

    /// Adds `dot`.
    pub fn insert(&mut self, dot: Dot) {
        if dot.counter > 0 && !self.contains(dot) {
            self.cloud
                .get_or_default(dot.node)
                .insert(dot.counter, dot.counter);
            self.compact(dot.node);
        }
    }

    /// Adds every dot of `other`.
    pub fn join(&mut self, other: &CausalContext) {
        for (node, n) in &other.vv {
            let slot = self.vv.get_or_insert_with(*node, || 0);
            *slot = (*slot).max(*n);
        }
        for (node, runs) in &other.cloud {
            let mine = self.cloud.get_or_default(*node);
            for (first, last) in runs {
                let end = mine.get_or_insert_with(*first, || *last);
                *end = (*end).max(*last);
            }
        }
        let nodes: NodeSet = other.vv.keys().chain(other.cloud.keys()).collect();
        for node in nodes {
            self.compact(node);
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// Merges `node`'s overlapping or adjacent runs, and folds the runs that
    /// reach `vv + 1` into the version vector.
    fn compact(&mut self, node: NodeId) {
        let mut top = self.vv.get(&node).copied().unwrap_or(0);
        let mut merged: VecMap<u64, u64> = VecMap::new();
        for (first, last) in self.cloud.remove(&node).unwrap_or_default() {
            if first <= top.saturating_add(1) {
                top = top.max(last);
                continue;
            }
            match merged.last_mut() {
                Some((_, end)) if first <= end.saturating_add(1) => *end = (*end).max(last),
                _ => {
                    merged.insert(first, last);
                }
            }
        }
        if top > 0 {
            self.vv.insert(node, top);
        }
        if !merged.is_empty() {
            self.cloud.insert(node, merged);
        }
    }

    /// Checks a context that came from outside: bounded, compact, counters from 1.
    pub fn validate(&self) -> Result<(), InvalidState> {
        let runs: usize = self.cloud.values().map(VecMap::len).sum();
        if self.vv.len() + runs > MAX_CONTEXT {
            return Err(InvalidState(format!(
                "a causal context over {MAX_CONTEXT} entries"
            )));
        }
        let bad_run = self
            .cloud
            .values()
            .flatten()
            .any(|(first, last)| *first == 0 || last < first);
        if self.vv.values().any(|n| *n == 0) || bad_run {
            return Err(InvalidState("dot counters start at 1".into()));
        }
        let top = self
            .vv
            .values()
            .chain(self.cloud.values().flatten().map(|(_, l)| l));
        if top.max().is_some_and(|n| *n >= MAX_COUNTER) {
            return Err(InvalidState("a dot counter past 2^63".into()));
        }
        let mut compacted = self.clone();
        let nodes: Vec<NodeId> = self.cloud.keys().copied().collect();
        for node in nodes {
            compacted.compact(node);
        }
        if compacted != *self || self.cloud.values().any(VecMap::is_empty) {
            return Err(InvalidState("a causal context that is not compact".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn dot(node: u32, counter: u64) -> Dot {
        Dot {
            node: NodeId(node),
            counter,
        }
    }

    #[test]
    fn gaps_stay_in_the_cloud_until_filled() {
        let mut c = CausalContext::default();
        c.insert(dot(0, 2));
        assert!(!c.contains(dot(0, 1)) && c.contains(dot(0, 2)));
        c.insert(dot(0, 1));
        assert_eq!(c.vv.get(&NodeId(0)), Some(&2));
        assert!(c.cloud.is_empty());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn join_and_cover() {
        let mut a = CausalContext::default();
        a.insert(dot(0, 1));
        a.insert(dot(1, 3));
        let mut b = CausalContext::default();
        b.insert(dot(1, 1));
        b.insert(dot(1, 2));
        assert!(!a.covers(&b));
        a.join(&b);
        assert!(a.covers(&b));
        assert_eq!(a.next_dot(NodeId(1)).counter, 4);
        assert!(a.cloud.is_empty(), "1..=3 of node 1 compacted");
    }

    #[test]
    fn runs_past_a_gap_stay_one_entry_and_fold_in_when_it_closes() {
        let mut c = CausalContext::default();
        for n in 5_000..6_000 {
            c.insert(dot(3, n));
        }
        assert_eq!(c.cloud.get(&NodeId(3)).unwrap().len(), 1, "one run");
        assert!(c.validate().is_ok());
        assert!(c.contains(dot(3, 5_500)) && !c.contains(dot(3, 4_999)));
        assert_eq!(c.next_dot(NodeId(3)).counter, 6_000);
        let mut run = CausalContext::default();
        run.insert(dot(3, 5_200));
        run.insert(dot(3, 5_201));
        assert!(c.covers(&run) && !run.covers(&c));
        let mut prefix = CausalContext::default();
        for n in 1..5_000 {
            prefix.insert(dot(3, n));
        }
        c.join(&prefix);
        assert_eq!(
            (c.vv.get(&NodeId(3)).copied(), c.cloud.len()),
            (Some(5_999), 0)
        );
    }

    #[test]
    fn counters_leave_room_for_a_next_dot() {
        // Found by fuzzing: a client's context with a dot at u64::MAX made
        // the next write's `next_dot` overflow (a panic in debug; in
        // release dot 0, a value outside its context that peers refuse).
        let mut c = CausalContext::default();
        c.insert(dot(0, MAX_COUNTER - 1));
        assert!(c.validate().is_ok());
        for counter in [MAX_COUNTER, u64::MAX] {
            let mut c = CausalContext::default();
            c.insert(dot(0, counter));
            assert!(c.validate().is_err(), "{counter}");
        }
        let vv = CausalContext {
            vv: [(NodeId(1), u64::MAX)].into_iter().collect(),
            ..CausalContext::default()
        };
        assert!(vv.validate().is_err());
    }
}
