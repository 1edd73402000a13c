//! Dots and causal contexts: the causal metadata of [`MvRegister`](super::MvRegister).
//!
//! A dot `(node, n)` names the `n`-th write a node made. A causal context is
//! a set of dots, kept compact as a version vector (every dot of a node up to
//! a counter) plus a cloud of dots beyond the gaps.
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
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most nodes and cloud dots one context may hold.
const MAX_CONTEXT: usize = 4096;

/// One write's identity: the node and its write counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// the writing node
    pub node: NodeId,
    /// that node's write number, from 1
    pub counter: u64,
}

/// A set of dots: a version vector plus the dots past its gaps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    vv: BTreeMap<NodeId, u64>,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// Whether `dot` is in the set. Counter 0 is never a dot.
    pub fn contains(&self, dot: Dot) -> bool {
        dot.counter > 0
            && (self.vv.get(&dot.node).is_some_and(|n| *n >= dot.counter)
                || self.cloud.contains(&dot))
    }

    /// Whether every dot of `other` is in this set.
    pub fn covers(&self, other: &CausalContext) -> bool {
        other.vv.iter().all(|(node, n)| {
            let top = self.vv.get(node).copied().unwrap_or(0);
            // Past `top`, every dot up to `n` must be in the cloud.
            top >= *n
                || self
                    .cloud
                    .range(
                        Dot {
                            node: *node,
                            counter: top + 1,
                        }..=Dot {
                            node: *node,
                            counter: *n,
                        },
                    )
                    .count() as u64
                    == *n - top
        }) && other.cloud.iter().all(|d| self.contains(*d))
    }

    /// Whether the set holds any dot of `node`.
    pub fn knows(&self, node: NodeId) -> bool {
        self.vv.contains_key(&node) || self.cloud.iter().any(|d| d.node == node)
    }

    /// Adds every dot of `node` up to `counter`.
    pub fn cover_through(&mut self, node: NodeId, counter: u64) {
        let top = self.vv.entry(node).or_insert(0);
        *top = (*top).max(counter);
        self.compact();
    }

    /// The next dot of `node` after every one in the set.
    pub fn next_dot(&self, node: NodeId) -> Dot {
        let top = self.vv.get(&node).copied().unwrap_or(0);
        let cloud = self
            .cloud
            .iter()
            .filter(|d| d.node == node)
            .map(|d| d.counter);
        Dot {
            node,
            counter: cloud.max().unwrap_or(0).max(top) + 1,
        }
    }

    /// Adds `dot`.
    pub fn insert(&mut self, dot: Dot) {
        if !self.contains(dot) {
            self.cloud.insert(dot);
            self.compact();
        }
    }

    /// Adds every dot of `other`.
    pub fn join(&mut self, other: &CausalContext) {
        for (node, n) in &other.vv {
            let slot = self.vv.entry(*node).or_insert(0);
            *slot = (*slot).max(*n);
        }
        self.cloud.extend(other.cloud.iter().copied());
        self.compact();
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// Moves cloud dots that close a gap into the version vector.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for dot in cloud {
            let top = self.vv.entry(dot.node).or_insert(0);
            if dot.counter == *top + 1 {
                *top = dot.counter;
            } else if dot.counter > *top {
                self.cloud.insert(dot);
            }
        }
        self.vv.retain(|_, n| *n > 0);
    }

    /// Checks a context that came from outside: bounded, compact, counters from 1.
    pub fn validate(&self) -> Result<(), InvalidState> {
        if self.vv.len() + self.cloud.len() > MAX_CONTEXT {
            return Err(InvalidState(format!(
                "a causal context over {MAX_CONTEXT} entries"
            )));
        }
        if self.vv.values().any(|n| *n == 0) || self.cloud.iter().any(|d| d.counter == 0) {
            return Err(InvalidState("dot counters start at 1".into()));
        }
        let mut compacted = self.clone();
        compacted.compact();
        if compacted != *self {
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
}
