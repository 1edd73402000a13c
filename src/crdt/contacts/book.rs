//! A row of an address book: a contact (keyed by its UUID) or a client's
//! acknowledged push sequence (keyed `~client/<id>`). One type for both, a
//! product lattice: the contact's join and the sequence's maximum. A
//! contact row's sequence stays 0 and a client row's contact stays empty.

use super::row::ContactRow;
use super::stamp::ClockId;
use crate::crdt::{Crdt, InvalidState};
use serde::{Deserialize, Serialize};

/// A row of an address book.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookRow {
    /// the contact, in a contact's row
    pub contact: ContactRow,
    /// the highest push sequence applied in order, in a client's row
    pub acked: u64,
}

impl BookRow {
    /// The row of a contact write.
    pub fn contact(contact: ContactRow) -> BookRow {
        BookRow { contact, acked: 0 }
    }

    /// The row of a client's acknowledged sequence.
    pub fn acked(seq: u64) -> BookRow {
        BookRow {
            contact: ContactRow::default(),
            acked: seq,
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
        let changed = self.contact.merge(&other.contact);
        if other.acked > self.acked {
            self.acked = other.acked;
            return true;
        }
        changed
    }

    fn validate(&self) -> Result<(), InvalidState> {
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
    fn contacts_join_and_sequences_take_the_maximum() {
        let stamp = HlcStamp {
            millis: 3,
            counter: 0,
            writer: ClockId::client(1),
        };
        let bob = ContactRow::of(Column::Name, Value::Text("Bob".into()), stamp).unwrap();
        let mut row = BookRow::contact(bob.clone());
        assert!(!row.merge(&BookRow::default()));
        assert!(row.merge(&BookRow::acked(4)) && row.acked == 4);
        assert!(!row.merge(&BookRow::acked(2)));
        assert_eq!(row.contact, bob);
        assert_eq!(row.latest_stamp(), Some(stamp.engine_stamp()));
        let key = BookRow::client_key(ClockId::client(1));
        assert!(BookRow::is_client_key(&key) && key.len() == CLIENT_ROWS.len() + 16);
    }
}
