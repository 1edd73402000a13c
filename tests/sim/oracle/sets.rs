//! The set oracle: the acknowledged writes of one LWW set with the stamps
//! the nodes gave them. An element is in the set when its latest add is
//! later than its latest remove, or as late and the bias of the earliest
//! creation (add-wins when never created) says add-wins.

use edge_crdt::crdt::{Bias, Element, LwwSet};
use std::collections::{BTreeMap, BTreeSet};

/// A client's set write.
#[derive(Clone, Debug)]
pub enum SetOp {
    Insert(Vec<Element>),
    Remove(Vec<Element>),
    Create(Bias),
}

/// The entries a set holds once it merged every write: (adds, removes).
type Entries = (BTreeMap<Element, u64>, BTreeMap<Element, u64>);

/// The acknowledged writes of one set.
#[derive(Clone, Debug, Default)]
pub struct SetLog {
    /// The elements added (`true`) or removed at each stamp.
    entries: BTreeMap<(u64, bool), BTreeSet<Element>>,
    pub creations: BTreeSet<(u64, Bias)>,
    /// The latest add and the latest remove of each element.
    latest: BTreeMap<Element, (Option<u64>, Option<u64>)>,
}

impl SetLog {
    /// Logs `op`, acknowledged with stamp `time`.
    pub fn log(&mut self, op: SetOp, time: u64) {
        let (elements, add) = match op {
            SetOp::Insert(es) => (es, true),
            SetOp::Remove(es) => (es, false),
            SetOp::Create(bias) => {
                self.creations.insert((time, bias));
                return;
            }
        };
        for e in elements {
            let slot = self.latest.entry(e.clone()).or_default();
            let side = if add { &mut slot.0 } else { &mut slot.1 };
            *side = Some(side.map_or(time, |t| t.max(time)));
            self.entries.entry((time, add)).or_default().insert(e);
        }
    }

    /// Whether an acknowledged write added (`add`) or removed `e` at `time`.
    fn has(&self, e: &Element, add: bool, time: u64) -> bool {
        self.entries
            .get(&(time, add))
            .is_some_and(|es| es.contains(e))
    }

    /// The earliest creation (add-wins first among equal stamps).
    pub fn created(&self) -> Option<(u64, Bias)> {
        self.creations.first().copied()
    }

    pub fn bias(&self) -> Bias {
        self.created().map_or(Bias::AddWins, |c| c.1)
    }

    /// The LWW rule over the log.
    pub fn members(&self) -> BTreeSet<Element> {
        let bias = self.bias();
        let shown = |(add, remove): &(Option<u64>, Option<u64>)| match (add, remove) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(a), Some(r)) => a > r || (a == r && bias == Bias::AddWins),
        };
        self.latest
            .iter()
            .filter(|(_, s)| shown(s))
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// The entries a set that merged every write keeps after pruning.
    fn kept(&self) -> Entries {
        let (mut adds, mut removes) = (BTreeMap::new(), BTreeMap::new());
        for (e, &(add, remove)) in &self.latest {
            if let Some(a) = add.filter(|a| remove.is_none_or(|r| *a >= r)) {
                adds.insert(e.clone(), a);
            }
            if let Some(r) = remove.filter(|r| add.is_none_or(|a| *r >= a)) {
                removes.insert(e.clone(), r);
            }
        }
        (adds, removes)
    }

    /// Elements whose latest add and latest remove have one stamp.
    pub fn ties(&self) -> usize {
        self.latest
            .values()
            .filter(|(a, r)| a.is_some() && a == r)
            .count()
    }

    /// Pairs of an add and a remove of one element at one stamp.
    pub fn equal_pairs(&self) -> usize {
        let adds = self.entries.iter().filter(|((_, add), _)| *add);
        adds.map(|((t, _), es)| es.iter().filter(|e| self.has(e, false, *t)).count())
            .sum()
    }

    /// A set that merged every write: the oracle's members, creation and
    /// pruned entries.
    pub fn check_final(&self, set: &LwwSet) -> Result<(), String> {
        let got: BTreeSet<Element> = set.members().cloned().collect();
        let want = self.members();
        if got != want {
            return Err(format!("members {got:?}, expected {want:?}"));
        }
        if set.created() != self.created() {
            return Err(format!(
                "created {:?}, expected {:?}",
                set.created(),
                self.created()
            ));
        }
        let (adds, removes) = self.kept();
        let (held_adds, held_removes) = set.entries();
        let listed =
            |m: &edge_crdt::VecMap<Element, u64>| m.iter().map(|(e, t)| (e.clone(), *t)).collect();
        if (listed(held_adds), listed(held_removes)) != (adds.clone(), removes.clone()) {
            return Err(format!(
                "holds {:?}, expected entries {adds:?} {removes:?}",
                set.entries()
            ));
        }
        Ok(())
    }
}

/// Every entry of a set a node holds is an acknowledged write, with the
/// stamp it was acknowledged with; so is its creation.
pub fn check_held_set(log: Option<&SetLog>, set: &LwwSet) -> Result<(), String> {
    let logged = |e: &Element, add: bool, t: u64| log.is_some_and(|l| l.has(e, add, t));
    let (adds, removes) = set.entries();
    for (side, entries, add) in [("an add", adds, true), ("a remove", removes, false)] {
        if let Some((e, t)) = entries.iter().find(|(e, t)| !logged(e, add, **t)) {
            return Err(format!("holds {side} of {e} at {t} never acknowledged"));
        }
    }
    match set.created() {
        Some(c) if !log.is_some_and(|l| l.creations.contains(&c)) => {
            Err(format!("holds a creation {c:?} never acknowledged"))
        }
        _ => Ok(()),
    }
}
