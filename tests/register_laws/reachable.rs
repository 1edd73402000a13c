//! Every reachable state passes the oracle's checks, and the generator
//! reaches the cases that make those checks mean something.

use crate::history::{history, Stats};
use crate::oracle::{check, context_of, truth, Event};
use crate::raw::RawContext;
use crate::witnessed::History;
use edge_crdt::crdt::Crdt;
use proptest::prelude::*;

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn prop_reachable_states_are_valid_and_agree_with_the_oracle(run in history()) {
        for s in run.pool() {
            check(&run.log, &s)?;
        }
        for r in &run.reads {
            prop_assert_eq!(&r.ctx, &context_of(&r.dots));
        }
    }
}

#[test]
fn the_generator_reaches_the_interesting_cases() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = history();
    let cases = 200;
    let mut totals = Stats::default();
    let (mut concurrent, mut emptied, mut tie_resolved, mut stale_deltas) = (0, 0, 0, 0);
    let (mut long_runs, mut split_runs) = (0, 0);
    for _ in 0..cases {
        let run = proptest::strategy::ValueTree::current(&strategy.new_tree(&mut runner).unwrap());
        let s = &run.stats;
        totals.stale_kept += usize::from(s.stale_kept > 0);
        totals.deletes_removed += usize::from(s.deletes_removed > 0);
        totals.unobserved_losers += usize::from(s.unobserved_losers > 0);
        totals.won_over_siblings += usize::from(s.won_over_siblings > 0);
        totals.equal_stamps += usize::from(s.equal_stamps > 0);
        let want = truth(&run.log, &run.everything());
        concurrent += usize::from(want.live.len() >= 2);
        emptied += usize::from(run.deletes.iter().any(|(_, s)| {
            s.reg.is_empty()
                && s.known
                    .iter()
                    .any(|i| matches!(run.log[*i], Event::Write { .. }))
        }));
        tie_resolved += usize::from(run.pool().iter().any(|s| {
            let top = s.reg.latest_stamp();
            s.reg
                .siblings()
                .filter(|(_, v)| Some(v.stamp) == top)
                .count()
                >= 2
        }));
        // Contexts whose runs hold several dots, and nodes with several runs.
        let layouts: Vec<RawContext> = run
            .pool()
            .iter()
            .map(|s| truth(&run.log, &s.known).context.layout())
            .collect();
        long_runs += usize::from(
            layouts
                .iter()
                .any(|l| l.cloud.values().flatten().any(|(first, last)| last > first)),
        );
        split_runs += usize::from(
            layouts
                .iter()
                .any(|l| l.cloud.values().any(|runs| runs.len() >= 2)),
        );
        // A replica received a delta whose write another write had already replaced.
        stale_deltas += usize::from(run.deltas.iter().any(|d| {
            run.finals
                .iter()
                .any(|f| !d.reg.is_empty() && !f.reg.context().covers(d.reg.context()))
        }));
    }
    eprintln!(
        "of {cases} histories: {totals:?}, {concurrent} with concurrent siblings at the end, {emptied} emptied by a delete, {tie_resolved} with a stamp tie among siblings, {stale_deltas} with a delta some replica never got, {long_runs} with a run of several dots, {split_runs} with a node's dots in several runs"
    );
    assert!(totals.stale_kept >= cases / 4, "stale writes kept siblings");
    assert!(
        totals.deletes_removed >= cases / 4,
        "deletes removed siblings"
    );
    assert!(
        totals.unobserved_losers >= cases / 10,
        "unobserved clocks lost"
    );
    assert!(totals.won_over_siblings >= cases / 4, "observed writes won");
    assert!(totals.equal_stamps >= cases / 10, "equal stamps");
    assert!(concurrent >= cases / 3, "concurrent siblings survived");
    assert!(emptied >= cases / 5, "deleted registers");
    assert!(tie_resolved >= cases / 20, "stamp ties among siblings");
    assert!(stale_deltas >= cases / 4, "deltas some replica never got");
    assert!(long_runs >= cases / 2, "runs of several dots");
    assert!(split_runs >= cases / 5, "a node's dots in several runs");
}
