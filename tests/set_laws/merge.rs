//! The merge laws on reachable states, convergence to the oracle's
//! membership in every delivery order, and pruning that never changes what
//! later merges make of a state.

use crate::history::history;
use crate::oracle::{check, truth, Sample, Unpruned};
use crate::witnessed::{self, deliveries, join, three_states, History, Witnessed};
use edge_crdt::crdt::{Bias, Element, LwwSet};
use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::BTreeSet;

proptest! {
    #![proptest_config(crate::config())]

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
}
