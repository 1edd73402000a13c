//! A row of an address book: a contact (keyed by its UUID) or the push
//! sequence numbers of a client that the book has applied (keyed
//! `~client/<id>`). One type for both, a product lattice: the contact's
//! join and the union of the applied numbers. A contact row's numbers stay
//! empty and a client row's contact stays empty.
//!
//! A client may push to any node, so a node can see its numbers out of
//! order: it applies them, and acknowledges the highest number below which
//! it has applied all ([`Applied::upto`]).

use super::row::ContactRow;
use super::stamp::ClockId;
use crate::crdt::{Crdt, InvalidState};
use serde::{Deserialize, Serialize};

/// A row of an address book.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookRow {
    /// the contact, in a contact's row
    pub contact: ContactRow,
    /// the push sequence numbers applied, in a client's row
    pub applied: Applied,
}

/// Most ranges of applied numbers above the contiguous ones.
pub const MAX_RANGES: usize = 512;

/// A set of sequence numbers: all up to `upto`, and ranges above.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    upto: u64,
    /// inclusive ranges, sorted, apart from each other and from `upto`
    above: Vec<(u64, u64)>,
}

impl Applied {
    /// The numbers `first..=last`.
    pub fn range(first: u64, last: u64) -> Applied {
        let mut a = Applied {
            upto: 0,
            above: vec![(first, last)],
        };
        a.normalize();
        a
    }

    /// The highest number below which every number is in the set.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Whether `seq` is in the set.
    pub fn has(&self, seq: u64) -> bool {
        seq <= self.upto || self.above.iter().any(|(a, b)| (*a..=*b).contains(&seq))
    }

    fn normalize(&mut self) {
        crate::heapsort::sort(&mut self.above);
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (a, b) in self.above.drain(..) {
            if a > b || b <= self.upto {
                continue;
            }
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        if let Some(first) = out.first().filter(|(a, _)| *a <= self.upto + 1) {
            self.upto = first.1;
            out.remove(0);
        }
        self.above = out;
    }

    fn join(&mut self, other: &Applied) -> bool {
        let before = self.clone();
        self.upto = self.upto.max(other.upto);
        self.above.extend_from_slice(&other.above);
        self.normalize();
        *self != before
    }
}

impl BookRow {
    /// The row of a contact write.
    pub fn contact(contact: ContactRow) -> BookRow {
        BookRow {
            contact,
            applied: Applied::default(),
        }
    }

    /// The row of a client's applied numbers `first..=last`.
    pub fn applied(first: u64, last: u64) -> BookRow {
        BookRow {
            contact: ContactRow::default(),
            applied: Applied::range(first, last),
        }
    }

    /// The key of client `id`'s row.
    pub fn client_key(id: ClockId) -> String {
        format!("{CLIENT_ROWS}{id}")
    }

    /// Whether `key` is a client's row.
    pub fn is_client_key(key: &str) -> bool {
        key.starts_with(CLIENT_ROWS)
    }
}

/// The prefix of client rows' keys (no UUID starts with `~`).
pub const CLIENT_ROWS: &str = "~client/";

impl Crdt for BookRow {
    fn merge(&mut self, other: &Self) -> bool {
        let contact = self.contact.merge(&other.contact);
        self.applied.join(&other.applied) || contact
    }

    fn validate(&self) -> Result<(), InvalidState> {
        let mut normal = self.applied.clone();
        normal.normalize();
        if normal != self.applied || self.applied.above.len() > MAX_RANGES {
            let e = format!("applied numbers must be at most {MAX_RANGES} sorted, apart ranges");
            return Err(InvalidState(e));
        }
        self.contact.validate()
    }

    fn latest_stamp(&self) -> Option<u64> {
        self.contact.latest_stamp()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::contacts::{Column, HlcStamp, Value};

    #[test]
    fn numbers_applied_out_of_order_join_into_their_contiguous_prefix() {
        let mut a = BookRow::applied(3, 4);
        assert_eq!(
            (a.applied.upto(), a.applied.has(3), a.applied.has(2)),
            (0, true, false)
        );
        assert!(a.merge(&BookRow::applied(7, 7)));
        assert!(a.merge(&BookRow::applied(1, 2)));
        assert_eq!(a.applied.upto(), 4);
        assert!(!a.merge(&BookRow::applied(2, 3)), "nothing new");
        assert!(a.merge(&BookRow::applied(5, 6)));
        assert_eq!((a.applied.upto(), a.applied.above.len()), (7, 0));
        assert!(a.validate().is_ok());
        let bad = BookRow {
            contact: ContactRow::default(),
            applied: Applied {
                upto: 5,
                above: vec![(3, 4)],
            },
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn contacts_join_and_sequences_take_the_maximum() {
        let stamp = HlcStamp {
            millis: 3,
            counter: 0,
            writer: ClockId::client(1),
        };
        let bob = ContactRow::of(Column::Name, Value::Text("Bob".into()), stamp).unwrap();
        let mut row = BookRow::contact(bob.clone());
        assert!(!row.merge(&BookRow::default()));
        assert!(row.merge(&BookRow::applied(1, 4)) && row.applied.upto() == 4);
        assert!(!row.merge(&BookRow::applied(2, 2)));
        assert_eq!(row.contact, bob);
        assert_eq!(row.latest_stamp(), Some(stamp.engine_stamp()));
        let key = BookRow::client_key(ClockId::client(1));
        assert!(BookRow::is_client_key(&key) && key.len() == CLIENT_ROWS.len() + 16);
    }
}
