//! Laws of the PN-counter on reachable states.
//!
//! States are not arbitrary structs: every state here comes out of a random
//! history of operations over 3 to 5 replicas (writes at a replica's own id,
//! whole-state merges between replicas, and retirements done the way the
//! cluster does them: the heir merges the retiree's state taken after its
//! last write, then applies `absorb(retiree, heir)`, and the retiree never
//! writes again). The pool of states a law is checked on holds every delta,
//! every intermediate replica state and every final replica state of one
//! history, so any two of them may meet in a real cluster.
//!
//! The encoding is checked too: each state has one encoding, the only one
//! its decoder accepts, and damaged or random bytes decode safely.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::{duplicated_and_shuffled, for_each_permutation};

use edge_crdt::codec;
use edge_crdt::crdt::{Crdt, GCounter, PnCounter};
use edge_crdt::NodeId;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// One step of a history.
#[derive(Clone, Debug)]
enum Op {
    /// Replica `node` adds `by` at its own id.
    Add { node: usize, by: i64 },
    /// Replica `to` merges the whole state of replica `from`.
    Merge { from: usize, to: usize },
    /// Replica `r` is drained and folded into replica `h`.
    Retire { r: usize, h: usize },
}

/// What a history produced.
#[derive(Clone, Debug)]
struct Run {
    /// The final state of each replica, retired ones included.
    finals: Vec<PnCounter>,
    /// Every delta, in the order it was made: writes and folds.
    deltas: Vec<PnCounter>,
    /// Every state a replica passed through.
    snapshots: Vec<PnCounter>,
    /// `(retired, heir, whether the retiree had any entry)`, in order.
    retirements: Vec<(usize, usize, bool)>,
    /// The sum of the positive steps of all writes.
    inc_total: u64,
    /// The sum of the magnitudes of the negative steps of all writes.
    dec_total: u64,
}

impl Run {
    fn total(&self) -> i64 {
        self.inc_total as i64 - self.dec_total as i64
    }

    /// Every state of the history: deltas, intermediate and final states.
    fn pool(&self) -> Vec<PnCounter> {
        let mut pool = self.deltas.clone();
        pool.extend(self.snapshots.iter().cloned());
        pool.extend(self.finals.iter().cloned());
        pool.push(PnCounter::default());
        pool
    }
}

/// The sums of the increment and decrement halves of `c`, entry by entry
/// (not `GCounter::value`, which saturates).
fn halves(c: &PnCounter) -> (u64, u64) {
    let sum = |half: &GCounter| half.entries().iter().map(|e| e.count).sum();
    (sum(c.increments()), sum(c.decrements()))
}

/// Checks that `c` is valid and survives the storage codec, and that its
/// encoding is the only one its decoder accepts.
fn check_state(c: &PnCounter) {
    c.validate()
        .unwrap_or_else(|e| panic!("reachable state fails validation: {e}: {c:?}"));
    let bytes = codec::encode_state(c);
    assert_eq!(codec::decode_state::<PnCounter>(&bytes).as_ref(), Ok(c));
    check_bytes(&codec::encode(c));
}

/// Decodes untrusted `bytes` (it must not panic); if they decode, they
/// must be the encoding of what they decode to.
fn check_bytes(bytes: &[u8]) {
    if let Ok(c) = codec::decode::<PnCounter>(bytes, codec::MAX_STATE) {
        assert_eq!(codec::encode(&c), bytes, "a second encoding of {c:?}");
    }
}

/// Plays `ops` over `n` replicas.
fn run(n: usize, ops: &[Op]) -> Run {
    let mut replicas = vec![PnCounter::default(); n];
    let mut retired = vec![false; n];
    let mut out = Run {
        finals: Vec::new(),
        deltas: Vec::new(),
        snapshots: Vec::new(),
        retirements: Vec::new(),
        inc_total: 0,
        dec_total: 0,
    };
    for op in ops {
        match *op {
            Op::Add { node, by } => {
                if retired[node] {
                    // A retired node never writes again.
                    continue;
                }
                let delta = replicas[node]
                    .add(NodeId(node as u32), by)
                    .expect("a live node may write");
                assert!(replicas[node].merge(&delta), "a write changes its replica");
                if by >= 0 {
                    out.inc_total += by.unsigned_abs();
                } else {
                    out.dec_total += by.unsigned_abs();
                }
                out.deltas.push(delta);
                out.snapshots.push(replicas[node].clone());
            }
            Op::Merge { from, to } => {
                if from == to {
                    continue;
                }
                let state = replicas[from].clone();
                replicas[to].merge(&state);
                out.snapshots.push(replicas[to].clone());
            }
            Op::Retire { r, h } => {
                if r == h || retired[r] || retired[h] {
                    continue;
                }
                // The heir takes the retiree's final state, then folds it in.
                let last = replicas[r].clone();
                let had_entries = last.contributions().contains_key(&NodeId(r as u32));
                replicas[h].merge(&last);
                out.snapshots.push(replicas[h].clone());
                if let Some(fold) = replicas[h].absorb(NodeId(r as u32), NodeId(h as u32)) {
                    assert!(had_entries, "a fold only for a node with an entry");
                    replicas[h].merge(&fold);
                    out.deltas.push(fold);
                    out.snapshots.push(replicas[h].clone());
                    assert!(
                        replicas[h]
                            .absorb(NodeId(r as u32), NodeId(h as u32))
                            .is_none(),
                        "folding twice is a no-op"
                    );
                    assert!(
                        replicas[h].add(NodeId(r as u32), 1).is_err(),
                        "a replica that knows of the retirement refuses the retiree's writes"
                    );
                } else {
                    assert!(!had_entries, "a node with an entry must be folded");
                }
                retired[r] = true;
                out.retirements.push((r, h, had_entries));
            }
        }
    }
    out.finals = replicas;
    out
}

fn step(positive_only: bool) -> BoxedStrategy<i64> {
    if positive_only {
        (1..=1000i64).boxed()
    } else {
        (-1000..=1000i64)
            .prop_map(|by| if by == 0 { 1 } else { by })
            .boxed()
    }
}

fn op(n: usize, positive_only: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..n, step(positive_only)).prop_map(|(node, by)| Op::Add { node, by }),
        3 => (0..n, 0..n).prop_map(|(from, to)| Op::Merge { from, to }),
        1 => (0..n, 0..n).prop_map(|(r, h)| Op::Retire { r, h }),
    ]
}

/// A random history over 3 to 5 replicas.
fn history(positive_only: bool) -> impl Strategy<Value = Run> {
    (3..=5usize)
        .prop_flat_map(move |n| (Just(n), vec(op(n, positive_only), 1..60)))
        .prop_map(|(n, ops)| run(n, &ops))
}

/// A history with a pool of its states and three indices into it.
fn three_states() -> impl Strategy<Value = (PnCounter, PnCounter, PnCounter)> {
    (
        history(false),
        any::<Index>(),
        any::<Index>(),
        any::<Index>(),
    )
        .prop_map(|(run, a, b, c)| {
            let pool = run.pool();
            (
                a.get(&pool).clone(),
                b.get(&pool).clone(),
                c.get(&pool).clone(),
            )
        })
}

fn join(a: &PnCounter, b: &PnCounter) -> PnCounter {
    let mut out = a.clone();
    let changed = out.merge(b);
    assert_eq!(
        changed,
        out != *a,
        "merge must report exactly whether it changed the state"
    );
    out
}

/// Several nodes write, one is drained and folded into an heir, the heir
/// (and others) write more. The scenario always has a retirement.
fn retirement_scenario(positive_only: bool) -> impl Strategy<Value = Run> {
    (3..=5usize)
        .prop_flat_map(move |n| {
            (
                Just(n),
                vec(op(n, positive_only), 1..24),
                0..n,
                1..n,
                vec(step(positive_only), 1..6),
                vec(op(n, positive_only), 0..12),
            )
        })
        .prop_map(|(n, before, r, offset, heir_steps, after)| {
            let h = (r + offset) % n;
            // The retiree writes at least once, so there is something to fold.
            let mut ops = vec![Op::Add { node: r, by: 7 }];
            ops.extend(before);
            ops.push(Op::Retire { r, h });
            ops.extend(heir_steps.into_iter().map(|by| Op::Add { node: h, by }));
            ops.extend(after);
            run(n, &ops)
        })
}

/// The messages of a scenario: every delta and every final state, with
/// random duplicates, in a random order.
fn deliveries(positive_only: bool) -> impl Strategy<Value = (Run, Vec<PnCounter>)> {
    retirement_scenario(positive_only).prop_flat_map(|run| {
        let mut messages = run.deltas.clone();
        messages.extend(run.finals.iter().cloned());
        (Just(run), duplicated_and_shuffled(messages))
    })
}

/// Delivers `messages` in order to a fresh observer, checking after every
/// one that nothing is counted twice, and at the end that nothing is lost.
fn observe(run: &Run, messages: &[PnCounter], positive_only: bool) -> Result<(), TestCaseError> {
    let mut observer = PnCounter::default();
    let (mut last_inc, mut last_dec) = (0, 0);
    let mut last_value = 0;
    for (i, m) in messages.iter().enumerate() {
        observer.merge(m);
        observer
            .validate()
            .map_err(|e| TestCaseError::fail(format!("after {} messages: {e}", i + 1)))?;
        let (inc, dec) = halves(&observer);
        prop_assert!(
            inc <= run.inc_total && dec <= run.dec_total,
            "counted twice after {} messages: halves ({inc}, {dec}) over totals ({}, {}): {observer:?}",
            i + 1,
            run.inc_total,
            run.dec_total
        );
        prop_assert!(
            inc >= last_inc && dec >= last_dec,
            "a half went down after {} messages",
            i + 1
        );
        (last_inc, last_dec) = (inc, dec);
        if positive_only {
            let v = observer.value();
            prop_assert!(v <= run.total(), "value {v} over the total {}", run.total());
            prop_assert!(v >= last_value, "value went down from {last_value} to {v}");
            last_value = v;
        }
    }
    prop_assert_eq!(observer.value(), run.total(), "lost counts: {:?}", observer);
    prop_assert_eq!(halves(&observer), (run.inc_total, run.dec_total));
    for &(r, h, had_entries) in &run.retirements {
        let r = NodeId(r as u32);
        prop_assert!(
            !observer.contributions().contains_key(&r),
            "retired {r} still counted"
        );
        if had_entries {
            // The record names the heir, or the heir's own heir after a chain.
            prop_assert!(
                observer.retired().contains_key(&r),
                "no record of {r} -> node-{h}"
            );
        }
    }
    Ok(())
}

// 256 cases each by default; `PROPTEST_CASES=n` runs more.
proptest! {
    #[test]
    fn prop_reachable_states_are_valid(run in history(false)) {
        for s in run.pool() {
            check_state(&s);
        }
        for (i, s) in run.finals.iter().enumerate() {
            let (inc, dec) = halves(s);
            prop_assert!(inc <= run.inc_total && dec <= run.dec_total, "replica {i} counts twice: {s:?}");
        }
    }

    #[test]
    fn prop_the_novel_part_of_a_delta_joins_to_the_same_state((state, delta, _) in three_states()) {
        // What a relay passes on: the part of `delta` that `state` lacked.
        let novel = delta.novel(&state).expect("counters tell it apart");
        check_state(&novel);
        prop_assert_eq!(join(&state, &novel), join(&state, &delta));
        prop_assert_eq!(join(&delta, &novel), delta.clone(), "no more than the delta");
        prop_assert!(codec::encode(&novel).len() <= codec::encode(&delta).len());
        if join(&state, &delta) == state {
            prop_assert!(halves(&novel) == (0, 0) || novel.increments().retirements().next().is_some()
                || novel.decrements().retirements().next().is_some(), "nothing new, no counts passed on: {novel:?}");
        }
    }

    #[test]
    fn prop_a_relayed_novel_part_never_counts_twice_downstream((relay, delta, next) in three_states()) {
        // The relay passes on what was new to it; the next node's state
        // differs. A count that holds an absorbed node's must bring the
        // record that says so, or the next node counts that node twice.
        let novel = delta.novel(&relay).expect("counters tell it apart");
        let (inc, dec) = halves(&join(&next, &novel));
        let (all_inc, all_dec) = halves(&join(&join(&relay, &delta), &next));
        prop_assert!(inc <= all_inc && dec <= all_dec, "{:?} over {:?}", (inc, dec), (all_inc, all_dec));
    }

    #[test]
    fn prop_merge_commutes((a, b, _) in three_states()) {
        let (ab, ba) = (join(&a, &b), join(&b, &a));
        prop_assert_eq!(&ab, &ba);
        // Equal states, built in different orders, have equal encodings.
        prop_assert_eq!(codec::encode(&ab), codec::encode(&ba));
    }

    #[test]
    fn prop_decoding_damaged_bytes_is_safe(
        run in history(false),
        pick in any::<Index>(),
        damage in vec((any::<Index>(), any::<u8>()), 1..4),
        cut in any::<Index>(),
    ) {
        let pool = run.pool();
        let bytes = codec::encode(pick.get(&pool));
        let mut damaged = bytes.clone();
        for (at, b) in &damage {
            damaged[at.index(bytes.len())] = *b;
        }
        check_bytes(&damaged);
        check_bytes(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn prop_any_counts_round_trip(
        counts in vec((0..50u32, any::<u64>(), 0..=64u32), 0..80),
        retire in vec((0..50u32, 0..50u32), 0..4),
    ) {
        // Counts of every bit length up to 64 (two big steps at one id), so
        // that every form of counts is used.
        let mut c = PnCounter::default();
        for (id, bits, shift) in counts {
            let by = i64::try_from(bits.checked_shr(shift).unwrap_or(0) >> 1).unwrap();
            if let Ok(delta) = c.add(NodeId(id), by) {
                c.merge(&delta);
            }
        }
        for (r, h) in retire {
            if let Some(fold) = c.absorb(NodeId(r), NodeId(h)) {
                c.merge(&fold);
            }
        }
        check_state(&c);
    }

    #[test]
    fn prop_decoding_random_bytes_is_safe(bytes in vec(any::<u8>(), 0..64)) {
        let mut framed = vec![codec::VERSION];
        framed.extend(&bytes);
        check_bytes(&framed);
    }

    #[test]
    fn prop_merge_associates((a, b, c) in three_states()) {
        let left = join(&join(&a, &b), &c);
        let right = join(&a, &join(&b, &c));
        prop_assert_eq!(&left, &right);
        check_state(&left);
    }

    #[test]
    fn prop_merge_idempotent((a, b, _) in three_states()) {
        let mut same = a.clone();
        prop_assert!(!same.merge(&a), "merging a state into itself reports a change");
        prop_assert_eq!(&same, &a);
        let ab = join(&a, &b);
        let mut again = ab.clone();
        prop_assert!(!again.merge(&b), "merging the same state twice reports a change");
        prop_assert!(!again.merge(&a));
        prop_assert_eq!(again, ab);
    }

    #[test]
    fn prop_merge_reports_change((a, b, _) in three_states()) {
        // `join` asserts that the returned flag matches the change.
        let ab = join(&a, &b);
        let _ = join(&ab, &a);
        let _ = join(&b, &ab);
        let _ = join(&PnCounter::default(), &a);
        let _ = join(&a, &PnCounter::default());
    }

    #[test]
    fn prop_deltas_equal_states(run in history(false)) {
        let mut by_deltas = PnCounter::default();
        for d in &run.deltas {
            by_deltas.merge(d);
        }
        let mut by_states = PnCounter::default();
        for s in &run.finals {
            by_states.merge(s);
        }
        prop_assert_eq!(&by_deltas, &by_states);
        prop_assert_eq!(by_deltas.value(), run.total());
        prop_assert_eq!(halves(&by_deltas), (run.inc_total, run.dec_total));
        // Also in reverse order of the deltas.
        let mut reversed = PnCounter::default();
        for d in run.deltas.iter().rev() {
            reversed.merge(d);
        }
        prop_assert_eq!(reversed, by_states);
    }

    #[test]
    fn prop_retirement_any_order((run, messages) in deliveries(true)) {
        observe(&run, &messages, true)?;
    }

    #[test]
    fn prop_retirement_any_order_with_decrements((run, messages) in deliveries(false)) {
        observe(&run, &messages, false)?;
    }
}

fn exhaustive(n: usize, ops: &[Op], positive_only: bool) -> usize {
    let run = run(n, ops);
    assert!(!run.retirements.is_empty());
    let messages = run.deltas.clone();
    assert!(messages.len() <= 7, "{} messages", messages.len());
    let mut count = 0;
    for_each_permutation(&messages, |order| {
        observe(&run, order, positive_only).unwrap_or_else(|e| panic!("order {order:?}: {e}"));
        count += 1;
    });
    count
}

#[test]
fn retirement_every_order_exhaustive() {
    // A +1, B +2, B +3, C +4, B folded into A, A +10, A folded into C.
    let ops = [
        Op::Add { node: 0, by: 1 },
        Op::Add { node: 1, by: 2 },
        Op::Add { node: 1, by: 3 },
        Op::Add { node: 2, by: 4 },
        Op::Retire { r: 1, h: 0 },
        Op::Add { node: 0, by: 10 },
        Op::Retire { r: 0, h: 2 },
    ];
    assert_eq!(exhaustive(3, &ops, true), 5040);
}

#[test]
fn retirement_every_order_exhaustive_with_decrements() {
    // B writes in both halves, so its fold carries a record in both.
    let ops = [
        Op::Add { node: 0, by: 5 },
        Op::Add { node: 1, by: 7 },
        Op::Add { node: 1, by: -3 },
        Op::Add { node: 2, by: -4 },
        Op::Retire { r: 1, h: 2 },
        Op::Add { node: 2, by: 6 },
        Op::Add { node: 0, by: -1 },
    ];
    assert_eq!(exhaustive(3, &ops, false), 5040);
}

#[test]
fn observer_catches_a_double_count() {
    // The check itself must be able to fail: a fold without its record
    // (what a buggy absorb would produce) counts the retiree twice.
    let mut a = PnCounter::default();
    let d1 = a.add(NodeId(1), 5).unwrap();
    a.merge(&d1);
    let mut heir = PnCounter::default();
    let d0 = heir.add(NodeId(0), 1).unwrap();
    heir.merge(&d0);
    let fake_fold = heir.add(NodeId(0), 5).unwrap();
    let run = Run {
        finals: Vec::new(),
        deltas: Vec::new(),
        snapshots: Vec::new(),
        retirements: vec![(1, 0, true)],
        inc_total: 6,
        dec_total: 0,
    };
    assert!(observe(&run, &[d1, d0, fake_fold], true).is_err());
}
