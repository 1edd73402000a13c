//! A last-writer-wins element set: an add-set and a remove-set, each with
//! one timestamp per element, and a bias that breaks ties between them.
//!
//! ```
//! use edge_crdt::crdt::{Bias, Crdt, Element, LwwSet};
//! let apple = Element::Str("apple".into());
//! let mut set = LwwSet::new(Bias::RemoveWins, 1);
//! set.merge(&set.insert([apple.clone()], 10));
//! set.merge(&set.remove([apple.clone()], 10)); // a tie: the bias decides
//! assert!(!set.contains(&apple));
//! set.merge(&set.insert([apple.clone()], 11));
//! assert!(set.contains(&apple));
//! ```
//!
//! An element is a member when its add is later than its remove, or equal
//! with add-wins bias. Merge takes the later timestamp of each entry, so
//! every replica that has seen the same entries agrees, in any order.
//!
//! # Bounded memory
//!
//! After each merge an element drops an entry that can never decide it
//! again. A remove strictly older than the element's add can never shadow
//! anything: adds only move later. An add strictly older than the remove is
//! invisible for the same reason. A tie keeps both, because the bias decides
//! it and the bias may still change until the earliest creation arrives. So
//! an element has one entry (two when tied): an add while present, a remove
//! (a tombstone) while absent. The tombstone must stay, since an older add
//! may still arrive.

use super::{Crdt, InvalidState};
use crate::VecMap;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest element, in bytes of its canonical text.
pub const MAX_ELEMENT: usize = 256;
/// Most elements (members and tombstones) in one set.
pub const MAX_ELEMENTS: usize = 10_000;

/// A JSON scalar. Numbers are kept as canonical text: integers without a
/// fraction (`1.0` is `1`), others in shortest round-trip form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Element {
    /// `true` or `false`
    Bool(bool),
    /// a number, as canonical text
    Num(String),
    /// a string
    Str(String),
}

impl Element {
    /// The element for a JSON scalar; `None` for arrays, objects, null and
    /// numbers that are not finite.
    pub fn from_json(value: &serde_json::Value) -> Option<Element> {
        match value {
            serde_json::Value::Bool(b) => Some(Element::Bool(*b)),
            serde_json::Value::String(s) => Some(Element::Str(s.clone())),
            serde_json::Value::Number(n) => Some(Element::Num(canonical_number(n)?)),
            _ => None,
        }
    }

    /// The JSON value of this element.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Element::Bool(b) => serde_json::Value::Bool(*b),
            Element::Str(s) => serde_json::Value::String(s.clone()),
            Element::Num(text) => text
                .parse::<serde_json::Number>()
                .ok()
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
        }
    }

    fn check(&self) -> Result<(), InvalidState> {
        let len = match self {
            Element::Bool(_) => 0,
            Element::Str(s) => s.len(),
            Element::Num(text) => {
                let canonical = text
                    .parse::<serde_json::Number>()
                    .ok()
                    .and_then(|n| canonical_number(&n));
                if canonical.as_deref() != Some(text) {
                    return Err(InvalidState(format!("`{text}` is not a canonical number")));
                }
                text.len()
            }
        };
        if len > MAX_ELEMENT {
            return Err(InvalidState(format!(
                "an element of {len} bytes is over the limit of {MAX_ELEMENT}"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

fn canonical_number(n: &serde_json::Number) -> Option<String> {
    if let Some(i) = n.as_i64() {
        return Some(i.to_string());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.to_string());
    }
    let f = n.as_f64().filter(|f| f.is_finite())?;
    // A whole float within the 64-bit integers is the integer: both
    // spellings (`2^60` and `2^60.0`) name one element.
    let two_63 = (1u64 << 63) as f64;
    if f.fract() == 0.0 && f.abs() < two_63 {
        return Some((f as i64).to_string());
    }
    if f.fract() == 0.0 && (0.0..2.0 * two_63).contains(&f) {
        return Some((f as u64).to_string());
    }
    serde_json::Number::from_f64(f).map(|n| n.to_string())
}

/// Which side wins when an add and a remove have the same timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bias {
    /// the element stays
    AddWins,
    /// the element goes
    RemoveWins,
}

/// An LWW element set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwSet {
    /// When the set was created and with which bias; the earliest creation
    /// wins. A set never created explicitly is add-wins.
    created: Option<(u64, Bias)>,
    adds: VecMap<Element, u64>,
    removes: VecMap<Element, u64>,
}

impl LwwSet {
    /// The creation delta: an empty set with `bias`, created at `stamp`.
    pub fn new(bias: Bias, stamp: u64) -> LwwSet {
        LwwSet {
            created: Some((stamp, bias)),
            ..LwwSet::default()
        }
    }

    /// The set's bias.
    pub fn bias(&self) -> Bias {
        self.created.map_or(Bias::AddWins, |(_, b)| b)
    }

    /// When the set was created, if it was.
    pub fn created(&self) -> Option<(u64, Bias)> {
        self.created
    }

    /// The delta that adds `elements` at `stamp`.
    pub fn insert(&self, elements: impl IntoIterator<Item = Element>, stamp: u64) -> LwwSet {
        LwwSet {
            adds: elements.into_iter().map(|e| (e, stamp)).collect(),
            ..LwwSet::default()
        }
    }

    /// The delta that removes `elements` at `stamp`.
    pub fn remove(&self, elements: impl IntoIterator<Item = Element>, stamp: u64) -> LwwSet {
        LwwSet {
            removes: elements.into_iter().map(|e| (e, stamp)).collect(),
            ..LwwSet::default()
        }
    }

    /// Whether `element` is a member.
    pub fn contains(&self, element: &Element) -> bool {
        self.adds
            .get(element)
            .is_some_and(|a| self.shows(*a, self.removes.get(element).copied()))
    }

    /// The members, in canonical order.
    pub fn members(&self) -> impl Iterator<Item = &Element> {
        self.adds.keys().filter(|e| self.contains(e))
    }

    /// Adds and removes: every entry, with its timestamp.
    pub fn entries(&self) -> (&VecMap<Element, u64>, &VecMap<Element, u64>) {
        (&self.adds, &self.removes)
    }

    /// The entries stamped after `since`: what a poller has not seen.
    pub fn since(&self, since: u64) -> LwwSet {
        let after = |m: &VecMap<Element, u64>| {
            m.iter()
                .filter(|(_, t)| **t > since)
                .map(|(e, t)| (e.clone(), *t))
                .collect()
        };
        LwwSet {
            created: self.created,
            adds: after(&self.adds),
            removes: after(&self.removes),
        }
    }

    /// The latest timestamp in the set.
    pub fn latest(&self) -> u64 {
        let stamps = self.adds.values().chain(self.removes.values());
        stamps
            .copied()
            .chain(self.created.map(|c| c.0))
            .max()
            .unwrap_or(0)
    }

    /// Every timestamp in the set, for checks on untrusted replicas.
    pub fn stamps(&self) -> impl Iterator<Item = u64> + '_ {
        let entries = self.adds.values().chain(self.removes.values()).copied();
        entries.chain(self.created.map(|c| c.0))
    }

    fn shows(&self, add: u64, remove: Option<u64>) -> bool {
        match remove {
            None => true,
            Some(r) => add > r || (add == r && self.bias() == Bias::AddWins),
        }
    }

    /// Drops, per element, an entry strictly older than its opposite.
    fn prune(&mut self) {
        let adds = &self.adds;
        self.removes
            .retain(|e, r| adds.get(e).is_none_or(|a| *r >= *a));
        // A remove dropped above had an add newer than it, which stays.
        let removes = &self.removes;
        self.adds
            .retain(|e, a| removes.get(e).is_none_or(|r| *a >= *r));
    }
}

fn join_max(ours: &mut VecMap<Element, u64>, theirs: &VecMap<Element, u64>) -> bool {
    ours.merge_with(theirs, |slot, t| {
        let later = *t > *slot;
        *slot = (*slot).max(*t);
        later
    })
}

impl Crdt for LwwSet {
    fn merge(&mut self, other: &LwwSet) -> bool {
        let before = self.clone();
        if let Some(c) = other.created {
            if self.created.is_none_or(|ours| c < ours) {
                self.created = Some(c);
            }
        }
        if join_max(&mut self.adds, &other.adds) | join_max(&mut self.removes, &other.removes) {
            self.prune();
        }
        *self != before
    }

    fn validate(&self) -> Result<(), InvalidState> {
        let count = self.adds.len() + self.removes.len();
        if count > MAX_ELEMENTS {
            return Err(InvalidState(format!(
                "{count} entries, over the limit of {MAX_ELEMENTS}"
            )));
        }
        for e in self.adds.keys().chain(self.removes.keys()) {
            e.check()?;
        }
        if self.stamps().any(|t| t == 0) {
            return Err(InvalidState("timestamp 0 is not allowed".into()));
        }
        Ok(())
    }

    fn latest_stamp(&self) -> Option<u64> {
        Some(self.latest()).filter(|t| *t > 0)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn s(x: &str) -> Element {
        Element::Str(x.into())
    }

    #[test]
    fn bias_breaks_ties() {
        for (bias, present) in [(Bias::AddWins, true), (Bias::RemoveWins, false)] {
            let mut set = LwwSet::new(bias, 1);
            set.merge(&set.remove([s("a")], 5));
            set.merge(&set.insert([s("a")], 5));
            assert_eq!(set.contains(&s("a")), present, "{bias:?}");
        }
    }

    #[test]
    fn one_entry_per_element_and_tombstones_shadow_older_adds() {
        let mut set = LwwSet::default();
        set.merge(&set.insert([s("a"), s("b")], 10));
        set.merge(&set.remove([s("a")], 5)); // older than the add: dropped
        assert_eq!(set.entries().1.len(), 0);
        set.merge(&set.remove([s("b")], 20));
        assert_eq!(set.entries().0.len(), 1, "the shadowed add is dropped");
        set.merge(&set.insert([s("b")], 15)); // an old add arriving late
        assert!(!set.contains(&s("b")));
        assert_eq!(set.members().collect::<Vec<_>>(), vec![&s("a")]);
    }

    #[test]
    fn numbers_are_canonical() {
        let one = Element::from_json(&serde_json::json!(1.0)).unwrap();
        assert_eq!(one, Element::from_json(&serde_json::json!(1)).unwrap());
        assert_eq!(one.to_json(), serde_json::json!(1));
        let half = Element::from_json(&serde_json::json!(0.5)).unwrap();
        assert_eq!(half.to_json(), serde_json::json!(0.5));
        assert!(Element::from_json(&serde_json::json!(null)).is_none());
        assert!(Element::from_json(&serde_json::json!([1])).is_none());
        let mut bad = LwwSet::default();
        bad.adds.insert(Element::Num("1.0".into()), 3);
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_earliest_creation_decides_the_bias() {
        let mut a = LwwSet::new(Bias::AddWins, 9);
        a.merge(&a.insert([s("x")], 20));
        a.merge(&a.remove([s("x")], 20));
        assert!(a.contains(&s("x")));
        a.merge(&LwwSet::new(Bias::RemoveWins, 3));
        assert_eq!(a.bias(), Bias::RemoveWins);
        assert!(!a.contains(&s("x")));
    }
}
