//! The causal-history oracle: what a state with some knowledge of the log
//! holds, and every check a reachable state must pass against it.

use crate::raw::{decode_raw, RawContext, RawRegister};
use crate::witnessed::Witnessed;
use crate::MAX_NODES;
use edge_crdt::codec;
use edge_crdt::crdt::{CausalContext, Crdt, Dot, MvRegister, Versioned};
use edge_crdt::NodeId;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// A set of dots as the oracle keeps it: every dot, explicitly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dots(pub BTreeSet<Dot>);

impl Dots {
    pub fn contains(&self, d: &Dot) -> bool {
        self.0.contains(d)
    }

    pub fn insert(&mut self, d: Dot) {
        assert!(d.counter > 0, "counter 0 is never a dot");
        self.0.insert(d);
    }

    pub fn extend(&mut self, other: &Dots) {
        self.0.extend(other.0.iter().copied());
    }

    /// The greatest counter of `node` in the set, if it holds any.
    pub fn top(&self, node: NodeId) -> Option<u64> {
        self.of(node).max()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The counters of `node` in the set, ascending.
    fn of(&self, node: NodeId) -> impl Iterator<Item = u64> + '_ {
        self.0
            .iter()
            .filter(move |d| d.node == node)
            .map(|d| d.counter)
    }

    /// Counters of `node` around every place where membership may change.
    fn edges(&self, node: NodeId) -> impl Iterator<Item = u64> + '_ {
        self.of(node).flat_map(|c| [c - 1, c, c + 1])
    }

    /// The compact layout of this set, built by hand: the vector entry of a
    /// node is the longest run `1..=n` in the set, the cloud the maximal
    /// runs of consecutive counters above it.
    pub fn layout(&self) -> RawContext {
        let mut out = RawContext::default();
        // In dot order: by node, then counter.
        for d in &self.0 {
            let n = out.vv.get(&d.node).copied().unwrap_or(0);
            if d.counter == n + 1 && !out.cloud.contains_key(&d.node) {
                out.vv.insert(d.node, d.counter);
                continue;
            }
            let runs = out.cloud.entry(d.node).or_default();
            match runs.values_mut().next_back() {
                Some(last) if *last + 1 == d.counter => *last = d.counter,
                _ => {
                    runs.insert(d.counter, d.counter);
                }
            }
        }
        out
    }
}

/// One logged operation; a state's knowledge is a set of indices of these.
#[derive(Clone, Debug)]
pub enum Event {
    /// A write: its dot, its sibling and the dots it saw: exactly those of
    /// the context it carried.
    Write {
        dot: Dot,
        value: Versioned,
        saw: Dots,
    },
    /// A delete: the dots of the context it carried.
    Delete { saw: Dots },
}

/// What the oracle says a state with some knowledge holds.
#[derive(Clone, Debug)]
pub struct Truth {
    /// The known writes no known event saw.
    pub live: BTreeMap<Dot, Versioned>,
    /// Every dot a known event carries.
    pub context: Dots,
}

pub fn truth(log: &[Event], known: &BTreeSet<usize>) -> Truth {
    let mut seen = Dots::default();
    let mut context = Dots::default();
    let mut writes = BTreeMap::new();
    for i in known {
        match &log[*i] {
            Event::Write { dot, value, saw } => {
                seen.extend(saw);
                context.extend(saw);
                context.insert(*dot);
                writes.insert(*dot, value.clone());
            }
            Event::Delete { saw } => {
                seen.extend(saw);
                context.extend(saw);
            }
        }
    }
    writes.retain(|dot, _| !seen.contains(dot));
    Truth {
        live: writes,
        context,
    }
}

/// The dot of a write by `node` at `stamp`, at a replica whose context (per
/// the log) is `context`: the next after the node's top there, or with none
/// there the stamp.
pub fn next_dot(context: &Dots, node: NodeId, stamp: u64) -> Dot {
    let counter = match context.top(node) {
        Some(top) => top + 1,
        None => stamp.max(1),
    };
    Dot { node, counter }
}

/// Every dot worth probing: for each node, counters 0 (never a dot) to 2,
/// and each side of every dot in the log, so each end of every run of dots
/// a set of them can hold.
fn universe(log: &[Event]) -> Vec<Dot> {
    let mut out = BTreeSet::new();
    for node in 0..MAX_NODES as u32 {
        let node = NodeId(node);
        let mut probe = |c: u64| {
            out.insert(Dot { node, counter: c });
        };
        (0..=2).for_each(&mut probe);
        for e in log {
            let saw = match e {
                Event::Write { dot, saw, .. } => {
                    if dot.node == node {
                        [dot.counter - 1, dot.counter, dot.counter + 1]
                            .into_iter()
                            .for_each(&mut probe);
                    }
                    saw
                }
                Event::Delete { saw } => saw,
            };
            saw.edges(node).for_each(&mut probe);
        }
    }
    out.into_iter().collect()
}

/// The oracle's set as a context, in the compact layout it must have.
pub fn context_of(dots: &Dots) -> CausalContext {
    let raw = RawRegister {
        values: BTreeMap::new(),
        context: dots.layout(),
    };
    let decoded = decode_raw(&raw).unwrap_or_else(|e| panic!("{raw:?}: {e:?}"));
    decoded.context().clone()
}

/// The same set built through the context's own API, three ways: dots
/// inserted in ascending order (each run grows at its end), in descending
/// order (at its start), and single-dot contexts joined odd positions
/// first (runs bridged from both sides).
fn contexts_by_api(dots: &Dots) -> [CausalContext; 3] {
    let mut ascending = CausalContext::default();
    for d in &dots.0 {
        ascending.insert(*d);
    }
    let mut descending = CausalContext::default();
    for d in dots.0.iter().rev() {
        descending.insert(*d);
    }
    let mut joined = CausalContext::default();
    let odd_first = dots
        .0
        .iter()
        .skip(1)
        .step_by(2)
        .chain(dots.0.iter().step_by(2));
    for d in odd_first {
        let mut one = CausalContext::default();
        one.insert(*d);
        joined.join(&one);
    }
    [ascending, descending, joined]
}

pub fn sibling_dots(reg: &MvRegister) -> BTreeSet<Dot> {
    reg.siblings().map(|(d, _)| *d).collect()
}

/// A state with its knowledge.
#[derive(Clone, Debug)]
pub struct Sample {
    pub reg: MvRegister,
    pub known: BTreeSet<usize>,
}

impl Witnessed for Sample {
    type State = MvRegister;

    fn empty() -> Sample {
        Sample {
            reg: MvRegister::default(),
            known: BTreeSet::new(),
        }
    }

    fn state(&self) -> &MvRegister {
        &self.reg
    }

    fn state_mut(&mut self) -> &mut MvRegister {
        &mut self.reg
    }

    fn known(&self) -> &BTreeSet<usize> {
        &self.known
    }

    fn merge_witnesses(&mut self, other: &Sample) {
        self.known.extend(other.known.iter().copied());
    }
}

/// Every check a reachable state must pass.
pub fn check(log: &[Event], s: &Sample) -> Result<(), TestCaseError> {
    let reg = &s.reg;
    reg.validate().map_err(|e| {
        TestCaseError::fail(format!("reachable state fails validation: {e}: {reg:?}"))
    })?;
    let decoded = codec::decode_state::<MvRegister>(&codec::encode(reg));
    prop_assert_eq!(decoded.as_ref(), Ok(reg));
    prop_assert_eq!(reg.absorb(NodeId(0), NodeId(1)), None);

    let want = truth(log, &s.known);
    let got: BTreeMap<Dot, Versioned> = reg.siblings().map(|(d, v)| (*d, v.clone())).collect();
    prop_assert_eq!(
        &got,
        &want.live,
        "siblings differ from the oracle: {:?}",
        reg
    );
    prop_assert_eq!(reg.is_empty(), want.live.is_empty());
    check_context(log, reg.context(), &want.context)?;

    // Last writer wins by (stamp, dot).
    let best = want
        .live
        .iter()
        .max_by_key(|(d, v)| (v.stamp, **d))
        .map(|(_, v)| v);
    prop_assert_eq!(reg.resolve(), best);
    prop_assert_eq!(
        reg.latest_stamp(),
        want.live.values().map(|v| v.stamp).max()
    );
    Ok(())
}

/// The context is exactly the oracle's set of dots, in compact form.
fn check_context(log: &[Event], ctx: &CausalContext, want: &Dots) -> Result<(), TestCaseError> {
    for d in universe(log) {
        prop_assert_eq!(
            ctx.contains(d),
            want.contains(&d),
            "contains({:?}) in {:?}",
            d,
            ctx
        );
    }
    let canonical = context_of(want);
    prop_assert_eq!(ctx, &canonical);
    for (how, by_api) in contexts_by_api(want).iter().enumerate() {
        prop_assert_eq!(by_api, &canonical, "built by the API, way {}", how);
        prop_assert_eq!(by_api.validate(), Ok(()));
    }
    prop_assert!(ctx.covers(&canonical) && canonical.covers(ctx));
    prop_assert_eq!(ctx.is_empty(), want.is_empty());
    for node in 0..MAX_NODES as u32 {
        let node = NodeId(node);
        let top = want.top(node);
        prop_assert_eq!(ctx.knows(node), top.is_some());
        prop_assert_eq!(ctx.next_dot(node).counter, top.unwrap_or(0) + 1);
    }
    Ok(())
}
