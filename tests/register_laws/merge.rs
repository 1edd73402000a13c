//! The merge laws on reachable states, and convergence to the oracle's
//! state in every delivery order.

use crate::common::for_each_permutation;
use crate::dot;
use crate::history::{history, run, Op, Run, Seen};
use crate::oracle::{check, truth, Sample};
use crate::witnessed::{self, deliveries, join, three_states, History, Witnessed};
use edge_crdt::codec;
use edge_crdt::crdt::{Dot, Hlc, MvRegister, Versioned};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Every replica, and a fresh one, receives `messages` in order: after each
/// it agrees with the oracle on what it has seen, and at the end all hold
/// the same state, whose siblings are the oracle's unseen writes of the
/// whole log.
fn observe(run: &Run, messages: &[Sample]) -> Result<(), TestCaseError> {
    let everything = run.everything();
    let want = truth(&run.log, &everything);
    let mut receivers = run.finals.clone();
    receivers.push(Sample::empty());
    let mut reference: Option<MvRegister> = None;
    for mut r in receivers {
        for m in messages {
            r.absorb(m);
            check(&run.log, &r)?;
        }
        prop_assert_eq!(&r.known, &everything);
        let got: BTreeMap<Dot, Versioned> =
            r.reg.siblings().map(|(d, v)| (*d, v.clone())).collect();
        prop_assert_eq!(&got, &want.live);
        match &reference {
            None => reference = Some(r.reg.clone()),
            Some(other) => prop_assert_eq!(other, &r.reg, "replicas that saw everything differ"),
        }
    }
    Ok(())
}

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
    fn prop_merge_reports_change((run, a, b, c) in three_states(history())) {
        // `Sample::absorb` asserts that the returned flag matches the change.
        let ab = join(&a, &b);
        let _ = join(&ab, &a);
        let _ = join(&b, &ab);
        let _ = join(&c, &ab);
        let _ = join(&Sample::empty(), &a);
        let _ = join(&a, &Sample::empty());
        // Merging a delta changes a state exactly when the state lacks a
        // dot of its context (its own, or one it saw), or holds a sibling
        // the delta saw and replaced.
        for d in &run.deltas {
            let mut s = a.clone();
            let changed = s.absorb(d);
            let replaces = a
                .reg
                .siblings()
                .any(|(dot, _)| d.reg.context().contains(*dot) && d.reg.siblings().all(|(x, _)| x != dot));
            prop_assert_eq!(changed, replaces || !a.reg.context().covers(d.reg.context()));
        }
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
    }

    #[test]
    fn prop_every_delivery_order_agrees_with_the_oracle((run, messages) in deliveries(history())) {
        observe(&run, &messages)?;
    }
}

#[test]
fn every_order_of_six_deltas_agrees_with_the_oracle() {
    let (a, b, c) = (0, 1, 2);
    let write = |node, seen| Op::Write {
        node,
        seen,
        advance: 1,
        back: 0,
    };
    // Time starts at 1 ms and each write advances it by 1: a node's first
    // dot is its stamp, its next one the counter after.
    let s = Hlc::stamp_of;
    let ops = [
        write(a, Seen::Blind),   // a1 = (a, s(2))
        write(b, Seen::Blind),   // b1 = (b, s(3)), concurrent with a1
        Op::Read { node: a },    // read 0: {a1}
        Op::Read { node: b },    // read 1: {b1}
        write(c, Seen::Read(0)), // c1 = (c, s(4)) saw a1 only (a stale read at another replica)
        Op::Delete {
            node: a,
            read: Some(1),
        }, // deletes b1, at a replica that never held it
        Op::Merge {
            from: b,
            to: a,
            observe: true,
        }, // b1 does not come back
        write(b, Seen::Blind),   // b2 = (b, s(3) + 1) at s(5), concurrent with everything
        write(a, Seen::Current), // a2 = (a, s(2) + 1) at s(6) saw a1 and b1, not c1 or b2
    ];
    let run = run(3, &ops);
    assert_eq!(run.deltas.len(), 6);
    let want = truth(&run.log, &run.everything());
    let live: BTreeSet<Dot> = want.live.keys().copied().collect();
    assert_eq!(
        live,
        BTreeSet::from([dot(0, s(2) + 1), dot(1, s(3) + 1), dot(2, s(4))])
    );
    let stamps: Vec<u64> = want.live.values().map(|v| v.stamp).collect();
    assert_eq!(stamps, vec![s(6), s(5), s(4)]);
    let mut count = 0;
    let mut finals = BTreeSet::new();
    for_each_permutation(&run.deltas, |order| {
        observe(&run, order).unwrap_or_else(|e| panic!("order {order:?}: {e}"));
        let mut s = Sample::empty();
        for m in order {
            s.absorb(m);
        }
        finals.insert(codec::encode(&s.reg));
        count += 1;
    });
    assert_eq!(count, 720);
    assert_eq!(finals.len(), 1, "every order converges to one state");
}
