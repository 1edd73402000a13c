//! Laws of the LWW element set and of the hybrid logical clock, on
//! reachable states.
//!
//! Every state here comes out of a random history over 2 to 4 replicas:
//! inserts and removes of elements from a pool of five (so the same element
//! is written concurrently all the time), each stamped by its replica's own
//! [`Hlc`] fed wall times that stall and step back (so an add and a remove
//! of one element often carry the same timestamp), creations with either
//! bias at clock stamps or at arbitrary early stamps (so a creation that
//! changes the bias often arrives last), and whole-state merges between
//! replicas, with or without the receiver's clock observing them.
//!
//! Each state travels with two witnesses: the indices of the logged
//! operations it has seen (for an oracle that applies the LWW rule directly
//! to the log) and an unpruned reference model (plain max maps, merged
//! alongside), so every state is checked against both: same membership,
//! same bias, and exactly the entries the pruning rule keeps.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::for_each_permutation;
#[path = "common/witnessed.rs"]
mod witnessed;
use witnessed::{deliveries, join, three_states, History, Witnessed};

use edge_crdt::codec::{self, DecodeError};
use edge_crdt::crdt::{
    Bias, Crdt, Element, Hlc, LwwSet, StampError, COUNTER_BITS, MAX_ELEMENT, MAX_ELEMENTS,
};
use edge_crdt::NodeId;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::collections::{BTreeMap, BTreeSet};

/// The elements histories write: few, so writes collide.
fn elements() -> Vec<Element> {
    vec![
        Element::Str("apple".into()),
        Element::Str("pear".into()),
        Element::Num("1".into()),
        Element::Num("-2.5".into()),
        Element::Bool(true),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Add,
    Remove,
}

/// One logged operation; a state's knowledge is a set of indices of these.
#[derive(Clone, Debug)]
enum Event {
    Entry {
        element: Element,
        side: Side,
        stamp: u64,
    },
    Create {
        bias: Bias,
        stamp: u64,
    },
}

/// Membership computed directly from a log by the LWW rule.
#[derive(Clone, Debug, PartialEq)]
struct Truth {
    created: Option<(u64, Bias)>,
    bias: Bias,
    members: BTreeSet<Element>,
    /// Elements whose latest add and latest remove carry the same stamp.
    ties: BTreeSet<Element>,
}

/// The oracle: for each element the latest add against the latest remove
/// among the `known` operations of `log`; equal stamps go to the bias of
/// the earliest creation (AddWins among creations of one stamp; AddWins if
/// there is none).
fn truth(log: &[Event], known: &BTreeSet<usize>) -> Truth {
    let mut created: Option<(u64, Bias)> = None;
    let mut latest: BTreeMap<&Element, (Option<u64>, Option<u64>)> = BTreeMap::new();
    for i in known {
        match &log[*i] {
            Event::Create { bias, stamp } => {
                let earlier = match created {
                    None => true,
                    Some((s, b)) => {
                        *stamp < s || (*stamp == s && *bias == Bias::AddWins && b != Bias::AddWins)
                    }
                };
                if earlier {
                    created = Some((*stamp, *bias));
                }
            }
            Event::Entry {
                element,
                side,
                stamp,
            } => {
                let slot = latest.entry(element).or_default();
                let side = match side {
                    Side::Add => &mut slot.0,
                    Side::Remove => &mut slot.1,
                };
                if side.is_none_or(|t| *stamp > t) {
                    *side = Some(*stamp);
                }
            }
        }
    }
    let bias = created.map_or(Bias::AddWins, |c| c.1);
    let mut members = BTreeSet::new();
    let mut ties = BTreeSet::new();
    for (e, (add, remove)) in latest {
        let present = match (add, remove) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(a), Some(r)) if a == r => {
                ties.insert(e.clone());
                bias == Bias::AddWins
            }
            (Some(a), Some(r)) => a > r,
        };
        if present {
            members.insert(e.clone());
        }
    }
    Truth {
        created,
        bias,
        members,
        ties,
    }
}

/// The reference model: an add-map, a remove-map and the earliest creation,
/// joined by plain max (min for the creation), never pruned.
#[derive(Clone, Debug, Default, PartialEq)]
struct Unpruned {
    created: Option<(u64, Bias)>,
    adds: BTreeMap<Element, u64>,
    removes: BTreeMap<Element, u64>,
}

impl Unpruned {
    fn merge(&mut self, other: &Unpruned) {
        self.created = match (self.created, other.created) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (mine, theirs) in [
            (&mut self.adds, &other.adds),
            (&mut self.removes, &other.removes),
        ] {
            for (e, t) in theirs {
                let slot = mine.entry(e.clone()).or_insert(*t);
                *slot = (*slot).max(*t);
            }
        }
    }

    fn bias(&self) -> Bias {
        self.created.map_or(Bias::AddWins, |c| c.1)
    }

    fn contains(&self, e: &Element) -> bool {
        match (self.adds.get(e), self.removes.get(e)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(a), Some(r)) => a > r || (a == r && self.bias() == Bias::AddWins),
        }
    }

    /// The entries the pruning rule keeps: per element, each entry unless
    /// it is strictly older than the opposite one.
    fn pruned(&self) -> (BTreeMap<Element, u64>, BTreeMap<Element, u64>) {
        let keep = |mine: &BTreeMap<Element, u64>, opposite: &BTreeMap<Element, u64>| {
            mine.iter()
                .filter(|(e, t)| opposite.get(*e).is_none_or(|o| **t >= *o))
                .map(|(e, t)| (e.clone(), *t))
                .collect()
        };
        (
            keep(&self.adds, &self.removes),
            keep(&self.removes, &self.adds),
        )
    }
}

/// A state with its witnesses.
#[derive(Clone, Debug)]
struct Sample {
    set: LwwSet,
    full: Unpruned,
    known: BTreeSet<usize>,
}

impl Witnessed for Sample {
    type State = LwwSet;

    fn empty() -> Sample {
        Sample {
            set: LwwSet::default(),
            full: Unpruned::default(),
            known: BTreeSet::new(),
        }
    }

    fn state(&self) -> &LwwSet {
        &self.set
    }

    fn state_mut(&mut self) -> &mut LwwSet {
        &mut self.set
    }

    fn known(&self) -> &BTreeSet<usize> {
        &self.known
    }

    fn merge_witnesses(&mut self, other: &Sample) {
        self.full.merge(&other.full);
        self.known.extend(other.known.iter().copied());
    }
}

/// Every check a reachable state must pass.
fn check(log: &[Event], s: &Sample) -> Result<(), TestCaseError> {
    let set = &s.set;
    set.validate().map_err(|e| {
        TestCaseError::fail(format!("reachable state fails validation: {e}: {set:?}"))
    })?;
    let bytes = codec::encode(set);
    let decoded = codec::decode_state::<LwwSet>(&bytes);
    prop_assert_eq!(decoded.as_ref(), Ok(set));
    prop_assert_eq!(
        set.absorb(NodeId(0), NodeId(1)),
        None,
        "a set folds nothing"
    );

    // The oracle over the log.
    let want = truth(log, &s.known);
    prop_assert_eq!(set.created(), want.created, "earliest creation: {:?}", set);
    prop_assert_eq!(set.bias(), want.bias);
    let members: BTreeSet<Element> = set.members().cloned().collect();
    prop_assert_eq!(
        &members,
        &want.members,
        "membership differs from the oracle: {:?}",
        set
    );
    for e in elements() {
        prop_assert_eq!(
            set.contains(&e),
            want.members.contains(&e),
            "contains({})",
            e
        );
        // The unpruned reference model agrees as well.
        prop_assert_eq!(
            s.full.contains(&e),
            set.contains(&e),
            "pruning changed {}",
            e
        );
    }
    prop_assert_eq!(s.full.bias(), set.bias());

    // Pruning: exactly the entries the rule keeps, so no element holds both
    // an add and a remove unless they are equal, and then the bias decides.
    let (adds, removes) = set.entries();
    let (keep_adds, keep_removes) = s.full.pruned();
    prop_assert_eq!(adds, &keep_adds, "adds after pruning");
    prop_assert_eq!(removes, &keep_removes, "removes after pruning");
    for (e, a) in adds {
        if let Some(r) = removes.get(e) {
            prop_assert_eq!(a, r, "{} keeps an add and a remove that differ", e);
            prop_assert!(want.ties.contains(e));
            prop_assert_eq!(set.contains(e), set.bias() == Bias::AddWins, "tie on {}", e);
        }
    }
    for e in &want.ties {
        prop_assert_eq!(adds.get(e), removes.get(e), "a tie keeps both entries");
    }
    if let Some(t) = set.latest_stamp() {
        prop_assert!(t > 0 && set.stamps().all(|s| s <= t));
    }
    Ok(())
}

/// One step of a history. Wall times are offsets from a history-wide time
/// that only moves by `advance`, so different replicas often read the same
/// millisecond, and `back` makes one replica's clock step back.
#[derive(Clone, Debug)]
enum Op {
    /// Replica `node` inserts or removes `picks` from the pool.
    Write {
        node: usize,
        side: Side,
        picks: Vec<usize>,
        advance: u64,
        back: u64,
    },
    /// Two clients at the same moment: replica `a` inserts the element
    /// `pick` and replica `b` removes it, both reading wall time `advance`
    /// ms later (so two clocks that saw nothing later give one stamp).
    Concurrent {
        a: usize,
        b: usize,
        pick: usize,
        advance: u64,
    },
    /// Replica `node` creates the set; at a clock stamp or at `raw`.
    Create {
        node: usize,
        bias: Bias,
        raw: Option<u64>,
        advance: u64,
    },
    /// Replica `to` merges the whole state of replica `from`; its clock
    /// observes the result when `observe` (as a cluster node does).
    Merge {
        from: usize,
        to: usize,
        observe: bool,
    },
}

/// What a history produced.
#[derive(Clone, Debug)]
struct Run {
    log: Vec<Event>,
    /// Every delta, in the order it was made.
    deltas: Vec<Sample>,
    /// Every state a replica passed through.
    snapshots: Vec<Sample>,
    /// The final state of each replica.
    finals: Vec<Sample>,
}

impl History for Run {
    type Sample = Sample;

    fn deltas(&self) -> &[Sample] {
        &self.deltas
    }

    fn snapshots(&self) -> &[Sample] {
        &self.snapshots
    }

    fn finals(&self) -> &[Sample] {
        &self.finals
    }

    fn events(&self) -> usize {
        self.log.len()
    }
}

fn run(n: usize, ops: &[Op]) -> Run {
    let mut replicas = vec![Sample::empty(); n];
    let mut clocks = vec![Hlc::default(); n];
    let mut time = 1u64;
    let mut out = Run {
        log: Vec::new(),
        deltas: Vec::new(),
        snapshots: Vec::new(),
        finals: Vec::new(),
    };
    for op in ops {
        if let Op::Concurrent {
            a,
            b,
            pick,
            advance,
        } = op
        {
            time += advance;
            for (node, side) in [(*a, Side::Add), (*b, Side::Remove)] {
                let write = Op::Write {
                    node,
                    side,
                    picks: vec![*pick],
                    advance: 0,
                    back: 0,
                };
                play(&write, &mut replicas, &mut clocks, &mut time, &mut out);
            }
            continue;
        }
        play(op, &mut replicas, &mut clocks, &mut time, &mut out);
    }
    out.finals = replicas;
    out
}

/// Plays one operation other than [`Op::Concurrent`].
fn play(op: &Op, replicas: &mut [Sample], clocks: &mut [Hlc], time: &mut u64, out: &mut Run) {
    let pool = elements();
    {
        let delta = match op {
            Op::Write {
                node,
                side,
                picks,
                advance,
                back,
            } => {
                *time += advance;
                let stamp = clocks[*node].now(time.saturating_sub(*back));
                let chosen: BTreeSet<Element> = picks.iter().map(|i| pool[*i].clone()).collect();
                let set = &replicas[*node].set;
                let delta = match side {
                    Side::Add => set.insert(chosen.iter().cloned(), stamp),
                    Side::Remove => set.remove(chosen.iter().cloned(), stamp),
                };
                let mut full = Unpruned::default();
                let mut known = BTreeSet::new();
                for e in chosen {
                    let target = match side {
                        Side::Add => &mut full.adds,
                        Side::Remove => &mut full.removes,
                    };
                    target.insert(e.clone(), stamp);
                    known.insert(out.log.len());
                    out.log.push(Event::Entry {
                        element: e,
                        side: *side,
                        stamp,
                    });
                }
                (*node, delta, full, known)
            }
            Op::Create {
                node,
                bias,
                raw,
                advance,
            } => {
                *time += advance;
                let stamp = raw.unwrap_or_else(|| clocks[*node].now(*time));
                let delta = LwwSet::new(*bias, stamp);
                let full = Unpruned {
                    created: Some((stamp, *bias)),
                    ..Unpruned::default()
                };
                let known = BTreeSet::from([out.log.len()]);
                out.log.push(Event::Create { bias: *bias, stamp });
                (*node, delta, full, known)
            }
            Op::Concurrent { .. } => unreachable!("played as two writes"),
            Op::Merge { from, to, observe } => {
                if from == to {
                    return;
                }
                let state = replicas[*from].clone();
                replicas[*to].absorb(&state);
                if *observe {
                    if let Some(t) = replicas[*to].set.latest_stamp() {
                        clocks[*to].observe(t);
                    }
                }
                out.snapshots.push(replicas[*to].clone());
                return;
            }
        };
        let (node, set, full, known) = delta;
        let delta = Sample { set, full, known };
        replicas[node].absorb(&delta);
        out.deltas.push(delta);
        out.snapshots.push(replicas[node].clone());
    }
}

fn bias() -> impl Strategy<Value = Bias> {
    prop_oneof![Just(Bias::AddWins), Just(Bias::RemoveWins)]
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    let side = prop_oneof![Just(Side::Add), Just(Side::Remove)];
    // Time stands still half the time; a clock reads behind a third of it.
    let advance = prop_oneof![2 => Just(0u64), 1 => 1..3u64];
    let back = prop_oneof![2 => Just(0u64), 1 => 1..4u64];
    // Two hot elements take most writes.
    let pick = prop_oneof![3 => 0..2usize, 1 => 0..elements().len()];
    let picks = vec(pick, 1..=2);
    // Raw creation stamps are early: below most clock stamps.
    let raw = prop_oneof![Just(None), (1..=Hlc::stamp_of(4)).prop_map(Some)];
    prop_oneof![
        8 => (0..n, side, picks, advance.clone(), back).prop_map(|(node, side, picks, advance, back)| Op::Write {
            node,
            side,
            picks,
            advance,
            back,
        }),
        2 => (0..n, 0..n, 0..2usize, 1..3u64).prop_map(|(a, b, pick, advance)| Op::Concurrent {
            a,
            b,
            pick,
            advance,
        }),
        1 => (0..n, bias(), raw, advance).prop_map(|(node, bias, raw, advance)| Op::Create {
            node,
            bias,
            raw,
            advance,
        }),
        4 => (0..n, 0..n, any::<bool>()).prop_map(|(from, to, observe)| Op::Merge { from, to, observe }),
    ]
}

/// A random history over 2 to 4 replicas.
fn history() -> impl Strategy<Value = Run> {
    (2..=4usize)
        .prop_flat_map(|n| (Just(n), vec(op(n), 1..60)))
        .prop_map(|(n, ops)| run(n, &ops))
}

// 256 cases each by default; `PROPTEST_CASES=n` runs more.
proptest! {
    #[test]
    fn prop_reachable_states_are_valid_pruned_and_agree_with_the_oracle(run in history()) {
        for s in run.pool() {
            check(&run.log, &s)?;
        }
    }

    #[test]
    fn prop_merge_commutes((run, a, b, _) in three_states(history())) {
        witnessed::merge_commutes(&a, &b, &|s| check(&run.log, s))?;
    }

    #[test]
    fn prop_merge_associates((run, a, b, c) in three_states(history())) {
        witnessed::merge_associates(&a, &b, &c, &|s| check(&run.log, s))?;
    }

    #[test]
    fn prop_merge_idempotent((_run, a, b, _) in three_states(history())) {
        witnessed::merge_idempotent(&a, &b)?;
    }

    #[test]
    fn prop_merge_reports_change((_run, a, b, _) in three_states(history())) {
        // `Sample::absorb` asserts that the returned flag matches the change.
        let ab = join(&a, &b);
        let _ = join(&ab, &a);
        let _ = join(&b, &ab);
        let _ = join(&Sample::empty(), &a);
        let _ = join(&a, &Sample::empty());
        // A merge that only lowers the creation stamp is a change too.
        let mut created = a.clone();
        let first = Sample {
            set: LwwSet::new(Bias::RemoveWins, 1),
            full: Unpruned::default(),
            known: BTreeSet::new(),
        };
        let changed = created.absorb(&first);
        prop_assert_eq!(changed, a.set.created() != Some((1, Bias::RemoveWins)) && a.set.created() != Some((1, Bias::AddWins)));
    }

    #[test]
    fn prop_deltas_equal_states(
        (run, order) in history().prop_flat_map(|run| {
            let order: Vec<usize> = (0..run.deltas.len()).collect();
            (Just(run), Just(order).prop_shuffle())
        })
    ) {
        let by_states =
            witnessed::deltas_equal_states(&run.finals, &run.deltas, &order, &run.everything())?;
        check(&run.log, &by_states)?;
        let want = truth(&run.log, &run.everything());
        prop_assert_eq!(by_states.set.members().cloned().collect::<BTreeSet<_>>(), want.members);
    }

    #[test]
    fn prop_every_delivery_order_agrees_with_the_oracle((run, messages) in deliveries(history())) {
        // Every replica, and a fresh observer, receives every message: after
        // each one it holds the oracle's membership of what it has seen,
        // and at the end the oracle's membership of the whole log.
        let everything = run.everything();
        let want = truth(&run.log, &everything);
        let mut receivers = run.finals.clone();
        receivers.push(Sample::empty());
        let mut reference: Option<LwwSet> = None;
        for mut r in receivers {
            for m in &messages {
                r.absorb(m);
                check(&run.log, &r)?;
            }
            prop_assert_eq!(&r.known, &everything);
            let members: BTreeSet<Element> = r.set.members().cloned().collect();
            prop_assert_eq!(&members, &want.members);
            prop_assert_eq!(r.set.bias(), want.bias);
            match &reference {
                None => reference = Some(r.set.clone()),
                Some(other) => prop_assert_eq!(other, &r.set, "replicas that saw everything differ"),
            }
        }
    }

    #[test]
    fn prop_pruning_never_changes_future_membership(
        (run, start, futures) in history().prop_flat_map(|run| {
            let len = run.pool().len();
            (Just(run), 0..len, vec(0..len, 1..12))
        })
    ) {
        // From any state, through any sequence of future merges, the pruned
        // set and the unpruned model agree (`check` compares them).
        let pool = run.pool();
        let mut s = pool[start].clone();
        for f in futures {
            s.absorb(&pool[f]);
            check(&run.log, &s)?;
        }
    }

    #[test]
    fn prop_ties_follow_the_earliest_creation(
        first in bias(),
        stamps in (1..50u64, 1..50u64),
        tie in 1..100u64,
        extra in vec((0..5usize, any::<bool>(), 1..100u64), 0..6),
        order in Just((0..4usize).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        // Two creations with opposite biases, an add and a remove of one
        // element at the same stamp, plus other writes, delivered in any
        // order: the tie goes to the bias of the earlier creation.
        let second = if first == Bias::AddWins { Bias::RemoveWins } else { Bias::AddWins };
        let (s1, s2) = stamps;
        let x = Element::Str("x".into());
        let mut deltas = vec![
            LwwSet::new(first, s1),
            LwwSet::new(second, s2),
            LwwSet::default().insert([x.clone()], tie),
            LwwSet::default().remove([x.clone()], tie),
        ];
        deltas = order.iter().map(|i| deltas[*i].clone()).collect();
        let pool = elements();
        for (e, add, t) in &extra {
            let e = pool[*e].clone();
            deltas.push(if *add { LwwSet::default().insert([e], *t) } else { LwwSet::default().remove([e], *t) });
        }
        let winner = if (s1, first) < (s2, second) { first } else { second };
        let mut set = LwwSet::default();
        for d in &deltas {
            set.merge(d);
        }
        prop_assert_eq!(set.bias(), winner);
        prop_assert_eq!(set.contains(&x), winner == Bias::AddWins);
        prop_assert_eq!(set.entries().0.get(&x), Some(&tie));
        prop_assert_eq!(set.entries().1.get(&x), Some(&tie));
        // The same set with the deltas in reverse.
        let mut reversed = LwwSet::default();
        for d in deltas.iter().rev() {
            reversed.merge(d);
        }
        prop_assert_eq!(reversed, set);
    }
}

#[test]
fn the_other_bias_arriving_last_flips_every_tie() {
    // A set created add-wins at 20; "x" and "y" each get an add and a
    // remove at one stamp from two replicas whose clocks read the same
    // millisecond; "z" is decided by time. A remove-wins creation at 5 then
    // arrives last, in every order of everything else: the ties flip, "z"
    // does not; a remove-wins creation at 30 would change nothing.
    for (late, late_stamp, ties_present) in [
        (Bias::RemoveWins, 5, false),
        (Bias::RemoveWins, 30, true),
        (Bias::AddWins, 5, true),
    ] {
        let (mut a, mut b) = (Hlc::default(), Hlc::default());
        let (x, y, z) = (
            Element::Str("x".into()),
            Element::Num("7".into()),
            Element::Bool(false),
        );
        let tx = a.now(40);
        assert_eq!(tx, b.now(40), "two clocks, one millisecond, one stamp");
        let ty = a.now(39);
        assert_eq!(ty, b.now(38), "clocks that stepped back count on alike");
        let tz = b.now(42);
        let deltas = vec![
            LwwSet::new(Bias::AddWins, 20),
            LwwSet::default().insert([x.clone(), z.clone()], tx),
            LwwSet::default().remove([x.clone()], tx),
            LwwSet::default().insert([y.clone()], ty),
            LwwSet::default().remove([y.clone()], ty),
            LwwSet::default().remove([z.clone()], tz),
        ];
        let mut count = 0;
        for_each_permutation(&deltas, |order| {
            let mut set = LwwSet::default();
            for d in order {
                set.merge(d);
            }
            assert!(set.contains(&x) && set.contains(&y), "add-wins ties");
            assert!(!set.contains(&z));
            assert!(set.merge(&LwwSet::new(late, late_stamp)) == (late_stamp < 20));
            assert_eq!(set.contains(&x), ties_present, "{late:?} at {late_stamp}");
            assert_eq!(set.contains(&y), ties_present);
            assert!(!set.contains(&z));
            set.validate().unwrap();
            count += 1;
        });
        assert_eq!(count, 720);
    }
}

#[test]
fn the_generator_reaches_the_interesting_cases() {
    // The laws above only mean something if histories often hold ties,
    // remove-wins sets, bias changes by a late creation, and pruned entries.
    let mut runner = TestRunner::deterministic();
    let (mut logged_ties, mut ties, mut final_ties) = (0, 0, 0);
    let (mut remove_wins, mut flips, mut pruned) = (0, 0, 0);
    let cases = 200;
    for _ in 0..cases {
        let run = history().new_tree(&mut runner).unwrap().current();
        let mut all = Sample::empty();
        let mut bias_changed = false;
        for d in &run.deltas {
            let before = all.set.bias();
            all.absorb(d);
            bias_changed |= all.set.bias() != before && !all.set.entries().0.is_empty();
        }
        let truth = truth(&run.log, &run.everything());
        let tied = |s: &Sample| {
            let (adds, removes) = s.set.entries();
            adds.iter().any(|(e, t)| removes.get(e) == Some(t))
        };
        let entries: BTreeSet<(&Element, bool, u64)> = run
            .log
            .iter()
            .filter_map(|ev| match ev {
                Event::Entry {
                    element,
                    side,
                    stamp,
                } => Some((element, *side == Side::Add, *stamp)),
                Event::Create { .. } => None,
            })
            .collect();
        logged_ties += usize::from(
            entries
                .iter()
                .any(|(e, add, t)| *add && entries.contains(&(*e, false, *t))),
        );
        ties += usize::from(run.pool().iter().any(tied));
        final_ties += usize::from(!truth.ties.is_empty());
        remove_wins += usize::from(truth.bias == Bias::RemoveWins);
        flips += usize::from(bias_changed);
        let entries = all.set.entries();
        pruned += usize::from(
            entries.0.len() + entries.1.len() < all.full.adds.len() + all.full.removes.len(),
        );
    }
    eprintln!(
        "of {cases} histories: {logged_ties} with an add and a remove at one stamp, {ties} with a tie in a replica, {final_ties} in the end, {remove_wins} remove-wins, {flips} with a late bias change, {pruned} with pruned entries"
    );
    assert!(
        logged_ties >= cases * 2 / 3,
        "ties in {logged_ties} of {cases} histories"
    );
    assert!(
        ties >= cases / 3,
        "ties held in {ties} of {cases} histories"
    );
    assert!(
        final_ties >= cases / 5,
        "ties at the end of {final_ties} of {cases} histories"
    );
    assert!(remove_wins >= cases / 10, "remove-wins in {remove_wins}");
    assert!(flips >= cases / 20, "late bias changes in {flips}");
    assert!(pruned >= cases / 3, "pruning in {pruned}");
}

/// A wall clock that stalls, steps back and jumps ahead, from a realistic
/// start (milliseconds up to the year 2248, where stamps reach 2^53).
#[derive(Clone, Debug)]
enum ClockOp {
    Now(i64),
    Observe(i64),
}

fn clock_ops() -> impl Strategy<Value = (u64, Vec<ClockOp>)> {
    let step = prop_oneof![
        3 => Just(0i64),
        3 => -5..5i64,
        1 => -100_000..100_000i64,
    ];
    let observed = prop_oneof![-3_000..3_000i64, -(1 << 20)..(1i64 << 20)];
    let op = prop_oneof![
        4 => step.prop_map(ClockOp::Now),
        1 => observed.prop_map(ClockOp::Observe),
    ];
    (0..(1u64 << 42), vec(op, 1..100))
}

proptest! {
    #[test]
    fn prop_hlc_now_strictly_increases((start, ops) in clock_ops()) {
        let mut clock = Hlc::default();
        let mut wall = start;
        let mut last = 0u64;
        let mut observed = 0u64;
        for op in ops {
            match op {
                ClockOp::Now(step) => {
                    wall = wall.saturating_add_signed(step);
                    let before = clock.last();
                    let t = clock.now(wall);
                    prop_assert!(t > last, "{t} after {last}");
                    prop_assert!(t > observed, "{t} not after observed {observed}");
                    prop_assert!(t >= Hlc::stamp_of(wall), "behind the wall clock");
                    if Hlc::stamp_of(wall) > before {
                        prop_assert_eq!(t, Hlc::stamp_of(wall), "a clock ahead of every stamp reads the wall");
                        prop_assert_eq!(Hlc::millis(t), wall);
                    } else {
                        prop_assert_eq!(t, before + 1, "a stalled clock counts on");
                    }
                    prop_assert_eq!(clock.last(), t);
                    last = t;
                }
                ClockOp::Observe(offset) => {
                    let stamp = Hlc::stamp_of(wall).saturating_add_signed(offset).max(1);
                    clock.observe(stamp);
                    observed = observed.max(stamp);
                    prop_assert!(clock.last() >= stamp);
                    let t = clock.now(wall);
                    prop_assert!(t > stamp && t > last, "{t} not after observed {stamp}");
                    last = t;
                }
            }
        }
    }

    #[test]
    fn prop_hlc_check_accepts_exactly_the_window(
        wall in prop_oneof![4 => 0..(1u64 << 43), 1 => any::<u64>(), 1 => Just(u64::MAX)],
        drift in prop_oneof![4 => 0..100_000_000u64, 1 => any::<u64>(), 1 => Just(u64::MAX)],
        probe in any::<u64>(),
        near in -3..3i64,
    ) {
        // The window is 1..stamp_of(wall + drift + 1), saturating: every
        // stamp of the last allowed millisecond is in, u64::MAX never is.
        let exact = (u128::from(wall) + u128::from(drift) + 1) << COUNTER_BITS;
        let limit = exact.min(u128::from(u64::MAX)) as u64;
        for stamp in [0, 1, 2, probe, u64::MAX, limit.saturating_add_signed(near), Hlc::stamp_of(wall)] {
            let got = Hlc::check(stamp, wall, drift);
            if stamp == 0 {
                prop_assert_eq!(got, Err(StampError::Zero));
            } else if stamp < limit {
                prop_assert_eq!(got, Ok(()), "{} is inside 1..{}", stamp, limit);
            } else {
                let ahead = matches!(got, Err(StampError::Ahead { stamp: s, max_drift_ms, .. }) if s == stamp && max_drift_ms == drift);
                prop_assert!(ahead, "{} is outside 1..{}: {:?}", stamp, limit, got);
            }
        }
    }

    #[test]
    fn prop_numbers_from_json_are_canonical(f in any::<f64>(), i in any::<i64>(), u in any::<u64>()) {
        // Every number an API can hand in becomes an element that validates,
        // and its JSON form reads back as the same element and value.
        let mut values = vec![serde_json::json!(i), serde_json::json!(u), serde_json::json!(i as f64)];
        if f.is_finite() {
            values.push(serde_json::json!(f));
        }
        for v in values {
            let e = Element::from_json(&v).expect("a finite number is an element");
            let set = LwwSet::default().insert([e.clone()], 1);
            set.validate().map_err(|err| TestCaseError::fail(format!("{v} -> {e:?}: {err}")))?;
            let back = e.to_json();
            prop_assert_eq!(back.as_f64(), v.as_f64(), "{} -> {:?} -> {}", v, e, back);
            prop_assert_eq!(Element::from_json(&back), Some(e.clone()), "{} -> {:?} -> {}", v, e, back);
        }
    }

    #[test]
    fn prop_non_canonical_numbers_are_rejected(i in any::<i64>(), u in 1..u64::MAX, f in any::<f64>()) {
        let mut texts = vec![
            format!("{i}.0"),
            format!("{i}e0"),
            format!("{i}.00"),
            format!("0{u}"),
            format!("+{u}"),
            format!(" {u}"),
            format!("{u} "),
        ];
        let shortest = format!("{f:?}");
        if f.is_finite() && f.fract() != 0.0 && !shortest.contains('e') {
            // The shortest form plus a needless trailing zero.
            texts.push(format!("{shortest}0"));
        }
        for text in texts {
            let set = LwwSet::default().insert([Element::Num(text.clone())], 3);
            prop_assert!(set.validate().is_err(), "`{}` accepted", text);
            let remove = LwwSet::default().remove([Element::Num(text.clone())], 3);
            prop_assert!(remove.validate().is_err(), "`{}` accepted in removes", text);
        }
    }
}

#[test]
fn check_saturates_at_the_top_of_the_range() {
    // `wall + drift + 1` once overflowed (a panic in debug builds).
    assert_eq!(Hlc::check(1, 0, u64::MAX), Ok(()));
    assert_eq!(Hlc::check(u64::MAX - 1, u64::MAX, 0), Ok(()));
    assert!(matches!(
        Hlc::check(u64::MAX, u64::MAX - 5, 5),
        Err(StampError::Ahead { .. })
    ));
}

#[test]
fn validate_rejects_bad_elements_and_stamps() {
    let ok = |e: Element| LwwSet::default().insert([e], 1).validate();
    for text in [
        "1.0", "-0", "1e2", "1E2", "0.50", "01", "NaN", "Infinity", "", "1_000", "0x10", "[1]",
        "1e21", "true",
    ] {
        assert!(
            ok(Element::Num(text.into())).is_err(),
            "`{text}` is not canonical"
        );
    }
    for text in [
        "0",
        "-1",
        "1.5",
        "1e+21",
        "1.5e-7",
        "-2.5",
        "18446744073709551615",
        // serde_json's default float parser reads this one ULP off.
        "-2.0273274075509093e-308",
    ] {
        assert_eq!(ok(Element::Num(text.into())), Ok(()), "`{text}`");
    }
    // Oversized elements, counted in bytes.
    assert_eq!(ok(Element::Str("a".repeat(MAX_ELEMENT))), Ok(()));
    assert!(ok(Element::Str("a".repeat(MAX_ELEMENT + 1))).is_err());
    assert!(ok(Element::Str("é".repeat(MAX_ELEMENT / 2 + 1))).is_err());
    let big = Element::Str("b".repeat(MAX_ELEMENT + 1));
    assert!(LwwSet::default().remove([big], 1).validate().is_err());
    // Timestamp 0, on either side and on the creation.
    let e = Element::Bool(true);
    for zero in [
        LwwSet::default().insert([e.clone()], 0),
        LwwSet::default().remove([e.clone()], 0),
        LwwSet::new(Bias::AddWins, 0),
        LwwSet::new(Bias::RemoveWins, 0),
    ] {
        assert!(zero.validate().is_err(), "{zero:?}");
        assert!(matches!(
            codec::decode_state::<LwwSet>(&codec::encode(&zero)),
            Err(DecodeError::Invalid(_))
        ));
    }
    // Too many entries.
    let many = (0..=MAX_ELEMENTS).map(|i| Element::Num(i.to_string()));
    assert!(LwwSet::default().insert(many, 1).validate().is_err());
    let enough = (0..MAX_ELEMENTS).map(|i| Element::Num(i.to_string()));
    assert_eq!(LwwSet::default().insert(enough, 1).validate(), Ok(()));
}
