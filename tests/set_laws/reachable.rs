//! Every reachable state passes the checks, and the generator reaches the
//! cases that make those checks mean something.

use crate::history::history;
use crate::oracle::{check, truth, Event, Sample, Side};
use crate::witnessed::{History, Witnessed};
use edge_crdt::crdt::{Bias, Element};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::collections::BTreeSet;

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn prop_reachable_states_are_valid_pruned_and_agree_with_the_oracle(run in history()) {
        for s in run.pool() {
            check(&run.log, &s)?;
        }
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
