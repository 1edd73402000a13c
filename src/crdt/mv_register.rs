//! A multi-value register with dotted causal contexts: concurrent writes
//! are kept as siblings, and a write that carries the context a client read
//! replaces exactly the siblings that read saw.
//!
//! ```
//! use edge_crdt::crdt::{CausalContext, Crdt, MvRegister, Payload, Stamp};
//! use edge_crdt::NodeId;
//! let at = |node, time| Stamp { node: NodeId(node), time, holds_own_writes: true };
//! let mut left = MvRegister::default();
//! left.merge(&left.write(at(0, 10), &CausalContext::default(), Payload::Text("x".into())));
//! let mut right = MvRegister::default();
//! right.merge(&right.write(at(1, 11), &CausalContext::default(), Payload::Text("y".into())));
//! left.merge(&right); // concurrent: both survive
//! assert_eq!(left.siblings().count(), 2);
//! let seen = left.context().clone();
//! left.merge(&left.write(at(0, 12), &seen, Payload::Text("z".into())));
//! assert_eq!(left.siblings().count(), 1); // the write replaced what it saw
//! assert_eq!(left.resolve().map(|v| &v.payload), Some(&Payload::Text("z".into())));
//! ```
//!
//! The state is a dot store (the live values, each named by the dot of the
//! write that made it) and a causal context (every dot the replica has
//! seen, live or overwritten). Merge keeps a value when both sides hold it,
//! or when the other side has never seen its dot; a value the other side
//! has seen and dropped is gone. A delete is a delta with no value and the
//! context it replaces: its context is the causal tombstone, so a stale copy
//! of a deleted value can never come back.

use super::{CausalContext, Crdt, Dot, InvalidState, Stamp};
use crate::VecMap;
use serde::{Deserialize, Serialize};

/// Most siblings a write may leave at the replica that takes it.
pub const MAX_SIBLINGS: usize = 64;

/// Most siblings a remote state may carry: replicas that admit writes
/// concurrently, each within [`MAX_SIBLINGS`], merge to more.
pub const MAX_MERGED_SIBLINGS: usize = 8 * MAX_SIBLINGS;

/// A write that would leave more than [`MAX_SIBLINGS`] siblings: the
/// count it would keep besides its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManySiblings(pub usize);

/// A register's content: text, or bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// UTF-8 text
    Text(String),
    /// arbitrary bytes
    Bytes(Vec<u8>),
}

impl Payload {
    /// The size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Text(t) => t.len(),
            Payload::Bytes(b) => b.len(),
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One sibling: the content and the hybrid-logical-clock time of its write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// the content
    pub payload: Payload,
    /// when it was written, for last-writer-wins resolution
    pub stamp: u64,
}

/// A multi-value register.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MvRegister {
    values: VecMap<Dot, Versioned>,
    context: CausalContext,
}

impl MvRegister {
    /// The delta of a write `at` a node that replaces what `seen` covers.
    ///
    /// A node that kept the key since its last write here continues its
    /// run of dots. Otherwise (its first write here, or the first since it
    /// dropped the key) the dots it sees of its own may be a stale part of
    /// them, so it starts a run at its clock's stamp: above every counter it
    /// ever gave this key, since each was at most its clock then.
    pub fn write(&self, at: Stamp, seen: &CausalContext, payload: Payload) -> MvRegister {
        let next = self.context.next_dot(at.node);
        let dot = if at.holds_own_writes && self.context.knows(at.node) {
            next
        } else {
            Dot {
                node: at.node,
                counter: at.time.max(next.counter),
            }
        };
        let mut context = seen.clone();
        context.insert(dot);
        MvRegister {
            values: VecMap::from_iter([(
                dot,
                Versioned {
                    payload,
                    stamp: at.time,
                },
            )]),
            context,
        }
    }

    /// Checks that a write replacing what `seen` covers stays within
    /// [`MAX_SIBLINGS`] at this replica. Merge cannot cap siblings without
    /// breaking convergence, so writes are refused here instead: a client
    /// over the limit must read and write with the context it got.
    pub fn admits(&self, seen: &CausalContext) -> Result<(), TooManySiblings> {
        let kept = self.values.keys().filter(|d| !seen.contains(**d)).count();
        if kept + 1 > MAX_SIBLINGS {
            return Err(TooManySiblings(kept));
        }
        Ok(())
    }

    /// The delta of a delete of what `seen` covers: no value, only the
    /// context, which stays as the tombstone.
    pub fn delete(&self, seen: &CausalContext) -> MvRegister {
        MvRegister {
            values: VecMap::new(),
            context: seen.clone(),
        }
    }

    /// The live values, in dot order.
    pub fn siblings(&self) -> impl Iterator<Item = (&Dot, &Versioned)> {
        self.values.iter()
    }

    /// Every dot this replica has seen: what a read hands the client, for
    /// a later write or delete to replace.
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Whether the register holds no value (never written, or deleted).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// One value by last writer wins: the latest stamp, ties by dot.
    pub fn resolve(&self) -> Option<&Versioned> {
        self.values
            .iter()
            .max_by_key(|(dot, v)| (v.stamp, **dot))
            .map(|(_, v)| v)
    }
}

impl Crdt for MvRegister {
    fn merge(&mut self, other: &MvRegister) -> bool {
        let before_values = self.values.len();
        let before_context = self.context.clone();
        let theirs = &other.context;
        self.values
            .retain(|dot, _| other.values.contains_key(dot) || !theirs.contains(*dot));
        let dropped = self.values.len() != before_values;
        let mut added = false;
        for (dot, v) in &other.values {
            if !before_context.contains(*dot) && !self.values.contains_key(dot) {
                self.values.insert(*dot, v.clone());
                added = true;
            }
        }
        self.context.join(theirs);
        dropped || added || self.context != before_context
    }

    fn validate(&self) -> Result<(), InvalidState> {
        self.context.validate()?;
        if self.values.len() > MAX_MERGED_SIBLINGS {
            return Err(InvalidState(format!(
                "{} siblings, over the limit of {MAX_MERGED_SIBLINGS}",
                self.values.len()
            )));
        }
        if let Some(dot) = self.values.keys().find(|d| !self.context.contains(**d)) {
            return Err(InvalidState(format!(
                "the value of dot {}:{} is outside the context",
                dot.node, dot.counter
            )));
        }
        if self.values.values().any(|v| v.stamp == 0) {
            return Err(InvalidState("timestamp 0 is not allowed".into()));
        }
        Ok(())
    }

    fn latest_stamp(&self) -> Option<u64> {
        self.values.values().map(|v| v.stamp).max()
    }

    fn is_tombstone(&self) -> bool {
        self.values.is_empty() && !self.context.is_empty()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::NodeId;

    fn text(s: &str) -> Payload {
        Payload::Text(s.into())
    }

    fn at(node: u32, time: u64) -> Stamp {
        Stamp {
            node: NodeId(node),
            time,
            holds_own_writes: true,
        }
    }

    #[test]
    fn a_delete_is_a_tombstone_stale_copies_cannot_undo() {
        let mut reg = MvRegister::default();
        let none = CausalContext::default();
        reg.merge(&reg.write(at(0, 5), &none, text("v1")));
        let stale = reg.clone();
        let seen = reg.context().clone();
        reg.merge(&reg.delete(&seen));
        assert!(reg.is_empty());
        assert!(!reg.merge(&stale), "the old value does not come back");
        // A write that did not see the delete's context is a new sibling.
        let mut other = stale.clone();
        other.merge(&other.write(at(1, 6), &none, text("v2")));
        reg.merge(&other);
        assert_eq!(reg.siblings().count(), 1);
        assert_eq!(reg.resolve().map(|v| v.stamp), Some(6));
    }

    #[test]
    fn a_write_replaces_exactly_what_it_saw() {
        let none = CausalContext::default();
        let mut a = MvRegister::default();
        a.merge(&a.write(at(0, 1), &none, text("a")));
        let seen_a = a.context().clone();
        let mut b = MvRegister::default();
        b.merge(&b.write(at(1, 2), &none, text("b")));
        a.merge(&b);
        // A client that read only "a" writes "c": "b" stays as a sibling.
        a.merge(&a.write(at(0, 3), &seen_a, text("c")));
        let left: Vec<_> = a.siblings().map(|(_, v)| v.payload.clone()).collect();
        assert_eq!(left, vec![text("c"), text("b")]);
    }

    #[test]
    fn a_node_that_dropped_the_key_starts_a_run_above_what_it_sees() {
        // Node 0 wrote twice; a client saw only the first dot. After node 0
        // dropped the key, that context is all it sees of its own dots: it
        // must not continue from there (the second dot existed).
        let none = CausalContext::default();
        let mut reg = MvRegister::default();
        reg.merge(&reg.write(at(0, 100), &none, text("v1")));
        let saw_v1 = reg.context().clone();
        reg.merge(&reg.write(at(0, 101), &saw_v1, text("v2")));
        let second = *reg.siblings().next().unwrap().0;
        let mut told = MvRegister::default();
        told.merge(&told.delete(&saw_v1));
        let dropped = Stamp {
            holds_own_writes: false,
            ..at(0, 102)
        };
        let dot = *told
            .write(dropped, &none, text("v3"))
            .siblings()
            .next()
            .unwrap()
            .0;
        assert!(dot.counter > second.counter, "{dot:?} after {second:?}");
        // While it holds its writes, it continues its run.
        let kept = *reg
            .write(at(0, 102), &none, text("v3"))
            .siblings()
            .next()
            .unwrap()
            .0;
        assert_eq!(kept.counter, second.counter + 1);
    }

    #[test]
    fn validate_rejects_values_outside_the_context() {
        let mut bad = MvRegister::default();
        bad.values.insert(
            Dot {
                node: NodeId(0),
                counter: 1,
            },
            Versioned {
                payload: text("x"),
                stamp: 1,
            },
        );
        assert!(bad.validate().is_err());
    }

    #[test]
    fn blind_writes_stop_at_the_sibling_limit_and_a_read_context_resets_it() {
        let none = CausalContext::default();
        let mut reg = MvRegister::default();
        for i in 0..MAX_SIBLINGS as u32 {
            assert_eq!(reg.admits(&none), Ok(()));
            reg.merge(&reg.write(at(i, 1), &none, text("x")));
        }
        assert_eq!(reg.siblings().count(), MAX_SIBLINGS);
        assert_eq!(reg.admits(&none), Err(TooManySiblings(MAX_SIBLINGS)));
        let seen = reg.context().clone();
        assert_eq!(reg.admits(&seen), Ok(()));
        reg.merge(&reg.write(at(0, 2), &seen, text("one")));
        assert_eq!(reg.siblings().count(), 1);
    }
}
