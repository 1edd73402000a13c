//! Ties between an add and a remove of one stamp go to the bias of the
//! earliest creation, whenever it arrives.

use crate::common::for_each_permutation;
use crate::history::bias;
use crate::oracle::elements;
use edge_crdt::crdt::{Bias, Crdt, Element, Hlc, LwwSet};
use proptest::collection::vec;
use proptest::prelude::*;

proptest! {
    #![proptest_config(crate::config())]

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
