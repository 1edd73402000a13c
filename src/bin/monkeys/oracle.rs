//! The oracle: the set that the log of acknowledged operations implies,
//! by the LWW rule with the set's bias.

use edge_crdt::crdt::{Bias, Element, Hlc};
use std::collections::{BTreeMap, BTreeSet};

/// Per element the latest add and the latest remove.
pub struct Oracle {
    adds: BTreeMap<Element, u64>,
    removes: BTreeMap<Element, u64>,
    pub bias: Bias,
    /// the latest stamp, the set's creation included
    pub latest: u64,
}

impl Oracle {
    /// The oracle of a set created with `bias` at stamp `created`.
    pub fn new(bias: Bias, created: u64) -> Oracle {
        Oracle {
            adds: BTreeMap::new(),
            removes: BTreeMap::new(),
            bias,
            latest: created,
        }
    }

    pub fn record(&mut self, add: bool, e: &Element, t: u64) {
        let side = if add {
            &mut self.adds
        } else {
            &mut self.removes
        };
        let slot = side.entry(e.clone()).or_insert(0);
        *slot = (*slot).max(t);
        self.latest = self.latest.max(t);
    }

    /// The LWW rule: present when the latest add is later than the latest
    /// remove, or equal with add-wins bias.
    pub fn present(&self, e: &Element) -> bool {
        match (self.adds.get(e), self.removes.get(e)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(a), Some(r)) => a > r || (a == r && self.bias == Bias::AddWins),
        }
    }

    pub fn members(&self) -> BTreeSet<Element> {
        self.adds
            .keys()
            .filter(|e| self.present(e))
            .cloned()
            .collect()
    }

    /// Elements whose latest add and remove carry the same stamp.
    pub fn ties(&self) -> usize {
        self.adds
            .iter()
            .filter(|(e, a)| self.removes.get(*e) == Some(*a))
            .count()
    }

    /// Why `e` is in or out: its latest add and remove.
    pub fn explain(&self, e: &Element) -> String {
        let t = |m: &BTreeMap<Element, u64>| {
            m.get(e).map_or("none".to_owned(), |t| {
                format!("{t} ({} ms)", Hlc::millis(*t))
            })
        };
        format!(
            "{e}: latest add {}, latest remove {}",
            t(&self.adds),
            t(&self.removes)
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const BOTH: [Bias; 2] = [Bias::AddWins, Bias::RemoveWins];

    fn el(s: &str) -> Element {
        Element::Str(s.into())
    }

    #[test]
    fn a_tie_goes_to_the_bias() {
        let a = el("a");
        for (bias, present) in [(Bias::AddWins, true), (Bias::RemoveWins, false)] {
            let mut o = Oracle::new(bias, 1);
            o.record(true, &a, 5);
            o.record(false, &a, 5);
            assert_eq!(o.present(&a), present, "{bias:?}");
            assert_eq!(o.ties(), 1);
            assert_eq!(o.members().contains(&a), present);
        }
    }

    #[test]
    fn the_later_operation_wins_whatever_the_bias() {
        let a = el("a");
        for bias in BOTH {
            let mut o = Oracle::new(bias, 1);
            o.record(true, &a, 5);
            o.record(false, &a, 6);
            assert!(!o.present(&a), "{bias:?}");
            o.record(true, &a, 7);
            assert!(o.present(&a), "{bias:?}");
            assert_eq!(o.ties(), 0);
        }
    }

    #[test]
    fn an_older_operation_changes_nothing() {
        let a = el("a");
        for bias in BOTH {
            let mut o = Oracle::new(bias, 1);
            o.record(true, &a, 5);
            o.record(false, &a, 5);
            let tied = o.present(&a);
            o.record(true, &a, 4);
            o.record(false, &a, 3);
            assert_eq!(o.present(&a), tied, "{bias:?}");
            o.record(true, &a, 6);
            assert!(o.present(&a));
            assert_eq!(o.latest, 6);
        }
    }

    #[test]
    fn removes_alone_make_no_member() {
        for bias in BOTH {
            let mut o = Oracle::new(bias, 1);
            o.record(false, &el("gone"), 3);
            o.record(true, &el("kept"), 2);
            assert_eq!(o.members(), BTreeSet::from([el("kept")]));
            assert!(!o.present(&el("never")));
        }
    }

    #[test]
    fn latest_starts_at_the_creation() {
        let mut o = Oracle::new(Bias::AddWins, 100);
        o.record(true, &el("a"), 50);
        assert_eq!(o.latest, 100);
        o.record(false, &el("a"), 150);
        assert_eq!(o.latest, 150);
    }

    #[test]
    fn explain_gives_both_stamps() {
        let mut o = Oracle::new(Bias::RemoveWins, 1);
        o.record(true, &el("a"), Hlc::stamp_of(7) + 2);
        assert_eq!(
            o.explain(&el("a")),
            "\"a\": latest add 7170 (7 ms), latest remove none"
        );
    }
}
