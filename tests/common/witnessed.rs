//! The merge laws, once for every state type whose property tests carry
//! witnesses along with each state (the logged events it has seen, and
//! whatever else its oracle needs). Included by the files that use it:
//! `#[path = "common/witnessed.rs"] mod witnessed;`.

use crate::common::duplicated_and_shuffled;
use edge_crdt::crdt::Crdt;
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeSet;
use std::fmt::Debug;

/// A state under test with its witnesses.
pub trait Witnessed: Clone + Debug {
    /// the CRDT under test
    type State: Crdt + Clone + PartialEq + Debug;

    /// The initial state, having seen nothing.
    fn empty() -> Self;
    fn state(&self) -> &Self::State;
    fn state_mut(&mut self) -> &mut Self::State;
    /// The indices of the logged events this state has seen.
    fn known(&self) -> &BTreeSet<usize>;
    /// Joins `other`'s witnesses into these.
    fn merge_witnesses(&mut self, other: &Self);

    /// Merges `other` into `self`, witnesses included, checking that
    /// `merge` reports exactly whether the state changed. Returns that flag.
    fn absorb(&mut self, other: &Self) -> bool {
        let before = self.state().clone();
        let changed = self.state_mut().merge(other.state());
        assert_eq!(
            changed,
            *self.state() != before,
            "merge must report exactly whether it changed the state: {before:?} <- {:?}",
            other.state()
        );
        self.merge_witnesses(other);
        changed
    }
}

/// `a` merged with `b`.
pub fn join<S: Witnessed>(a: &S, b: &S) -> S {
    let mut out = a.clone();
    out.absorb(b);
    out
}

/// The checks every reachable state must pass.
pub type Check<'a, S> = &'a dyn Fn(&S) -> Result<(), TestCaseError>;

pub fn merge_commutes<S: Witnessed>(a: &S, b: &S, check: Check<S>) -> Result<(), TestCaseError> {
    let (ab, ba) = (join(a, b), join(b, a));
    prop_assert_eq!(ab.state(), ba.state());
    check(&ab)
}

pub fn merge_associates<S: Witnessed>(
    a: &S,
    b: &S,
    c: &S,
    check: Check<S>,
) -> Result<(), TestCaseError> {
    let left = join(&join(a, b), c);
    let right = join(a, &join(b, c));
    prop_assert_eq!(left.state(), right.state());
    check(&left)
}

/// Merging what a state already holds changes nothing, and says so.
pub fn merge_idempotent<S: Witnessed>(a: &S, b: &S) -> Result<(), TestCaseError> {
    let mut same = a.state().clone();
    prop_assert!(
        !same.merge(a.state()),
        "merging a state into itself reports a change"
    );
    prop_assert_eq!(&same, a.state());
    let ab = join(a, b);
    let mut again = ab.state().clone();
    prop_assert!(
        !again.merge(b.state()),
        "merging the same state twice reports a change"
    );
    prop_assert!(!again.merge(a.state()));
    prop_assert_eq!(&again, ab.state());
    Ok(())
}

/// Merging every final state, every delta in order, and every delta in
/// `order` give one state, which has seen `everything`; returns it.
pub fn deltas_equal_states<S: Witnessed>(
    finals: &[S],
    deltas: &[S],
    order: &[usize],
    everything: &BTreeSet<usize>,
) -> Result<S, TestCaseError> {
    let merged = |states: &mut dyn Iterator<Item = &S>| {
        let mut out = S::empty();
        for s in states {
            out.absorb(s);
        }
        out
    };
    let by_states = merged(&mut finals.iter());
    let forward = merged(&mut deltas.iter());
    let shuffled = merged(&mut order.iter().map(|i| &deltas[*i]));
    prop_assert_eq!(forward.state(), by_states.state());
    prop_assert_eq!(shuffled.state(), by_states.state());
    prop_assert_eq!(by_states.known(), everything);
    Ok(by_states)
}

/// What a random history produced: its states, and how many events it
/// logged.
pub trait History: Clone + Debug {
    type Sample: Witnessed;

    /// Every delta, in the order it was made.
    fn deltas(&self) -> &[Self::Sample];
    /// Every state a replica passed through.
    fn snapshots(&self) -> &[Self::Sample];
    /// The final state of each replica.
    fn finals(&self) -> &[Self::Sample];
    /// How many events the history logged.
    fn events(&self) -> usize;

    /// Every state of the history, and the empty one.
    fn pool(&self) -> Vec<Self::Sample> {
        let mut pool = self.deltas().to_vec();
        pool.extend(self.snapshots().iter().cloned());
        pool.extend(self.finals().iter().cloned());
        pool.push(Self::Sample::empty());
        pool
    }

    /// The indices of every logged event.
    fn everything(&self) -> BTreeSet<usize> {
        (0..self.events()).collect()
    }
}

/// A history with three states from its pool.
pub fn three_states<H: History>(
    history: impl Strategy<Value = H>,
) -> impl Strategy<Value = (H, H::Sample, H::Sample, H::Sample)> {
    (history, any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(run, a, b, c)| {
        let pool = run.pool();
        let (a, b, c) = (
            a.get(&pool).clone(),
            b.get(&pool).clone(),
            c.get(&pool).clone(),
        );
        (run, a, b, c)
    })
}

/// Every delta and final state of a history, with random duplicates, in a
/// random order.
pub fn deliveries<H: History>(
    history: impl Strategy<Value = H>,
) -> impl Strategy<Value = (H, Vec<H::Sample>)> {
    history.prop_flat_map(|run| {
        let mut messages = run.deltas().to_vec();
        messages.extend(run.finals().iter().cloned());
        (Just(run), duplicated_and_shuffled(messages))
    })
}
