//! The oracle (the LWW rule applied to the log), the unpruned reference
//! model, and every check a reachable state must pass against both.

use crate::witnessed::Witnessed;
use edge_crdt::codec;
use edge_crdt::crdt::{Bias, Crdt, Element, LwwSet};
use edge_crdt::{NodeId, VecMap};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// The elements histories write: few, so writes collide.
pub fn elements() -> Vec<Element> {
    vec![
        Element::Str("apple".into()),
        Element::Str("pear".into()),
        Element::Num("1".into()),
        Element::Num("-2.5".into()),
        Element::Bool(true),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Add,
    Remove,
}

/// One logged operation; a state's knowledge is a set of indices of these.
#[derive(Clone, Debug)]
pub enum Event {
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
pub struct Truth {
    pub created: Option<(u64, Bias)>,
    pub bias: Bias,
    pub members: BTreeSet<Element>,
    /// Elements whose latest add and latest remove carry the same stamp.
    pub ties: BTreeSet<Element>,
}

/// The oracle: for each element the latest add against the latest remove
/// among the `known` operations of `log`; equal stamps go to the bias of
/// the earliest creation (AddWins among creations of one stamp; AddWins if
/// there is none).
pub fn truth(log: &[Event], known: &BTreeSet<usize>) -> Truth {
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
pub struct Unpruned {
    pub created: Option<(u64, Bias)>,
    pub adds: BTreeMap<Element, u64>,
    pub removes: BTreeMap<Element, u64>,
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
pub struct Sample {
    pub set: LwwSet,
    pub full: Unpruned,
    pub known: BTreeSet<usize>,
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
pub fn check(log: &[Event], s: &Sample) -> Result<(), TestCaseError> {
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
    let want = truth(log, &s.known);
    check_membership(s, &want)?;
    check_pruning(s, &want)?;
    if let Some(t) = set.latest_stamp() {
        prop_assert!(t > 0 && set.stamps().all(|s| s <= t));
    }
    Ok(())
}

/// The oracle over the log, and the unpruned model, agree with the set.
fn check_membership(s: &Sample, want: &Truth) -> Result<(), TestCaseError> {
    let set = &s.set;
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
    Ok(())
}

/// Pruning: exactly the entries the rule keeps, so no element holds both
/// an add and a remove unless they are equal, and then the bias decides.
fn check_pruning(s: &Sample, want: &Truth) -> Result<(), TestCaseError> {
    let set = &s.set;
    let (adds, removes) = set.entries();
    let (keep_adds, keep_removes) = s.full.pruned();
    let held = |m: &VecMap<Element, u64>| {
        m.iter()
            .map(|(e, t)| (e.clone(), *t))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    prop_assert_eq!(held(adds), keep_adds, "adds after pruning");
    prop_assert_eq!(held(removes), keep_removes, "removes after pruning");
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
    Ok(())
}
