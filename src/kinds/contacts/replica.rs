//! A client's replica of an address book, without I/O: its rows, its own
//! clock, the outbox of deltas not yet acknowledged, and its pull cursor.
//! The browser module and the command-line client wrap it; they move its
//! pushes and pulls over HTTP and keep it in their storage.
//!
//! ```
//! use edge_crdt::crdt::contacts::{ClockId, Column, Value};
//! use edge_crdt::kinds::contacts::Replica;
//! let mut r = Replica::new(ClockId::client(7));
//! let id = "123e4567-e89b-12d3-a456-426614174000".parse().unwrap();
//! r.edit(&id, Column::Name, Value::Text("Bob".into()), 1_000).unwrap();
//! assert_eq!(r.pending(), 1);
//! let push = r.push(100).unwrap();
//! r.acknowledged(push.deltas[0].seq, &push.cursor, None);
//! assert_eq!(r.pending(), 0);
//! assert_eq!(r.get(&id).unwrap().text(Column::Name), Some("Bob"));
//! ```

use super::{Change, Cursor, Pushed};
use crate::crdt::contacts::{
    check_value, ClockId, Column, ContactClock, ContactId, ContactRow, StampError, Value,
};
use crate::crdt::Crdt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A client's replica of one address book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    clock: ContactClock,
    rows: BTreeMap<ContactId, ContactRow>,
    outbox: Vec<Pushed>,
    next_seq: u64,
    cursor: Cursor,
}

/// A push to send: the client, the oldest deltas of its outbox, and its
/// cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushBatch {
    /// the client
    pub client: ClockId,
    /// the deltas
    pub deltas: Vec<Pushed>,
    /// the cursor when the push was made
    pub cursor: Cursor,
}

/// Why an edit was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditError {
    /// the value does not fit the column
    Value(String),
    /// the clock cannot stamp now (65 536 stamps in one millisecond)
    Clock(StampError),
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::Value(e) => f.write_str(e),
            EditError::Clock(e) => write!(f, "{e}"),
        }
    }
}

impl Replica {
    /// An empty replica for client `client`.
    pub fn new(client: ClockId) -> Replica {
        Replica {
            clock: ContactClock::new(client),
            rows: BTreeMap::new(),
            outbox: Vec::new(),
            next_seq: 1,
            cursor: Cursor::default(),
        }
    }

    /// A replica from what a client stored: its clock, rows, outbox (in
    /// order), the number of its next delta, and its cursor.
    pub fn from_parts(
        clock: ContactClock,
        rows: BTreeMap<ContactId, ContactRow>,
        outbox: Vec<Pushed>,
        next_seq: u64,
        cursor: Cursor,
    ) -> Replica {
        Replica {
            clock,
            rows,
            outbox,
            next_seq,
            cursor,
        }
    }

    /// Its clock, to store.
    pub fn clock(&self) -> ContactClock {
        self.clock
    }

    /// The number its next delta gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The client's id.
    pub fn client(&self) -> ClockId {
        self.clock.id()
    }

    /// Writes a column of a contact at wall-clock time `wall_ms`: merged
    /// here at once, and queued for the next push.
    pub fn edit(
        &mut self,
        id: &ContactId,
        column: Column,
        value: Value,
        wall_ms: u64,
    ) -> Result<(), EditError> {
        check_value(column, &value).map_err(|e| EditError::Value(e.0))?;
        let timestamp = self.clock.now(wall_ms).map_err(EditError::Clock)?;
        let row = ContactRow::of(column, value.clone(), timestamp).expect("checked");
        self.rows.entry(id.clone()).or_default().merge(&row);
        self.outbox.push(Pushed {
            id: id.clone(),
            column,
            value,
            timestamp,
            seq: self.next_seq,
        });
        self.next_seq += 1;
        Ok(())
    }

    /// The next push: up to `max` of the oldest deltas, or `None` when the
    /// outbox is empty.
    pub fn push(&self, max: usize) -> Option<PushBatch> {
        (!self.outbox.is_empty()).then(|| PushBatch {
            client: self.client(),
            deltas: self.outbox.iter().take(max).cloned().collect(),
            cursor: self.cursor.clone(),
        })
    }

    /// A push's reply: drops the deltas numbered up to `acked`, and takes
    /// the cursor it returned if the replica has not moved its cursor
    /// since `sent` (a pull in between may have moved it further).
    pub fn acknowledged(&mut self, acked: u64, sent: &Cursor, cursor: Option<Cursor>) {
        self.outbox.retain(|d| d.seq > acked);
        if let Some(cursor) = cursor.filter(|_| self.cursor == *sent) {
            self.cursor = cursor;
        }
    }

    /// A pull's reply: merges its changes and moves the cursor. Returns
    /// whether any row changed.
    pub fn pulled(&mut self, changes: Vec<Change>, cursor: Cursor) -> bool {
        self.cursor = cursor;
        self.merge(changes)
    }

    /// Merges changes from anywhere (a pull, a server-sent event); the
    /// clock moves past their stamps. Returns whether any row changed.
    pub fn merge(&mut self, changes: Vec<Change>) -> bool {
        let mut changed = false;
        for ch in changes {
            let Ok(row) = ContactRow::of(ch.column, ch.value, ch.timestamp) else {
                continue;
            };
            self.clock.witness(ch.timestamp);
            changed |= self.rows.entry(ch.id).or_default().merge(&row);
        }
        changed
    }

    /// Moves the cursor (after merging a pull's changes one by one).
    pub fn set_cursor(&mut self, cursor: Cursor) {
        self.cursor = cursor;
    }

    /// The cursor of the next pull.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// How many deltas wait for an acknowledgement.
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// The deltas that wait, oldest first.
    pub fn outbox(&self) -> &[Pushed] {
        &self.outbox
    }

    /// A contact, deleted or not.
    pub fn get(&self, id: &ContactId) -> Option<&ContactRow> {
        self.rows.get(id)
    }

    /// Every contact, deleted ones included, by id.
    pub fn rows(&self) -> &BTreeMap<ContactId, ContactRow> {
        &self.rows
    }

    /// The contacts not deleted, by id.
    pub fn live(&self) -> impl Iterator<Item = (&ContactId, &ContactRow)> {
        self.rows.iter().filter(|(_, r)| !r.deleted())
    }

    /// Checks a replica read from storage: its rows and outbox hold
    /// values that fit, numbered below its next number.
    pub fn check(&self) -> Result<(), String> {
        for row in self.rows.values() {
            row.validate().map_err(|e| e.0)?;
        }
        for d in &self.outbox {
            check_value(d.column, &d.value).map_err(|e| e.0)?;
            if d.seq >= self.next_seq || d.timestamp.writer != self.client() {
                return Err(format!("outbox delta {} is not this replica's", d.seq));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::contacts::HlcStamp;

    fn id(n: u32) -> ContactId {
        format!("00000000-0000-4000-8000-{n:012}").parse().unwrap()
    }

    #[test]
    fn edits_wait_in_the_outbox_until_acknowledged_in_order() {
        let mut r = Replica::new(ClockId::client(1));
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            r.edit(
                &id(1),
                Column::Name,
                Value::Text(name.into()),
                10 + i as u64,
            )
            .unwrap();
        }
        let push = r.push(2).unwrap();
        assert_eq!(
            push.deltas.iter().map(|d| d.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        r.acknowledged(1, &push.cursor, None);
        assert_eq!(r.pending(), 2, "only what was acknowledged goes");
        r.acknowledged(3, &push.cursor, None);
        assert_eq!((r.pending(), r.push(2)), (0, None));
        assert!(r
            .edit(&id(1), Column::Tombstone, Value::Text("x".into()), 20)
            .is_err());
        assert_eq!(r.pending(), 0, "a refused edit queues nothing");
    }

    #[test]
    fn pulls_merge_move_the_clock_and_a_stale_push_reply_keeps_a_newer_cursor() {
        let mut r = Replica::new(ClockId::client(1));
        r.edit(&id(1), Column::Name, Value::Text("mine".into()), 10)
            .unwrap();
        let push = r.push(10).unwrap();
        let theirs = Change {
            id: id(1),
            column: Column::Name,
            value: Value::Text("theirs".into()),
            timestamp: HlcStamp {
                millis: 50,
                counter: 0,
                writer: ClockId::client(2),
            },
        };
        let pulled = Cursor {
            logs: crate::NodeMap::from_iter([(crate::NodeId(0), 4)]),
            snapshot: None,
        };
        assert!(r.pulled(vec![theirs.clone()], pulled.clone()));
        assert_eq!(r.get(&id(1)).unwrap().text(Column::Name), Some("theirs"));
        assert!(!r.merge(vec![theirs]), "merging again changes nothing");
        r.acknowledged(1, &push.cursor, Some(Cursor::default()));
        assert_eq!(r.cursor(), &pulled, "the pull's cursor is newer");
        r.edit(&id(1), Column::Name, Value::Text("later".into()), 10)
            .unwrap();
        let later = r.get(&id(1)).unwrap().field(Column::Name).unwrap().stamp;
        assert!(later.millis >= 50, "a write after a merge is later than it");
        assert_eq!(r.get(&id(1)).unwrap().text(Column::Name), Some("later"));
        assert!(r.check().is_ok());
    }
}
