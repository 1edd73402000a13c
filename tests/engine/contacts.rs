//! Address books across nodes: pushes at any node, pulls at any other
//! with one cursor, concurrent edits of different columns of one contact.

use crate::harness::{id, Cluster};
use crate::kinds;
use edge_crdt::crdt::contacts::{ClockId, Column, ContactId, ContactRow, HlcStamp, Value};
use edge_crdt::crdt::Crdt;
use edge_crdt::engine::{Config, ObjectId};
use edge_crdt::kinds::contacts::{Change, Contacts, Cursor, Op, Outcome, Pushed};
use edge_crdt::{NodeId, Rng};
use std::collections::BTreeMap;

/// A client: its clock id, its next sequence, its rows and its cursor.
struct Client {
    id: ClockId,
    seq: u64,
    rows: BTreeMap<ContactId, ContactRow>,
    cursor: Cursor,
    last: Option<Pushed>,
}

impl Client {
    fn new(n: u64) -> Client {
        Client {
            id: ClockId::client(n),
            seq: 0,
            rows: BTreeMap::new(),
            cursor: Cursor::default(),
            last: None,
        }
    }

    /// Writes a column at node `at` (its stamp a millisecond apart from
    /// every other) and checks the acknowledgement.
    fn write(
        &mut self,
        c: &mut Cluster,
        at: NodeId,
        book: &ObjectId,
        contact: u32,
        column: Column,
        text: &str,
    ) {
        self.seq += 1;
        let pushed = Pushed {
            id: contact_id(contact),
            column,
            value: Value::Text(text.into()),
            timestamp: HlcStamp {
                millis: c.now - 500 + self.seq,
                counter: 0,
                writer: self.id,
            },
            seq: self.seq,
        };
        let pushed_again = pushed.clone();
        let deltas = vec![pushed];
        let out = c
            .call::<Contacts>(
                at,
                book,
                Op::Push {
                    client: self.id,
                    deltas,
                    cursor: None,
                },
            )
            .unwrap();
        // A node that has not yet heard of the client's earlier pushes
        // elsewhere acknowledges less, but applies this one.
        assert!(
            matches!(out, Outcome::Pushed { acked, applied: 1, .. } if acked <= self.seq),
            "{out:?}"
        );
        self.last = Some(pushed_again);
    }

    /// Pushes the last delta again at `at`: the acknowledged sequence.
    fn retry(&mut self, c: &mut Cluster, at: NodeId, book: &ObjectId) -> (u64, usize) {
        let deltas = vec![self.last.clone().expect("pushed")];
        let push = Op::Push {
            client: self.id,
            deltas,
            cursor: None,
        };
        match c.call::<Contacts>(at, book, push).unwrap() {
            Outcome::Pushed { acked, applied, .. } => (acked, applied),
            other => panic!("{other:?}"),
        }
    }

    /// Pulls every page at node `at`; whether a page was a snapshot.
    fn pull(&mut self, c: &mut Cluster, at: NodeId, book: &ObjectId) -> bool {
        let mut snap = false;
        for _ in 0..1_000 {
            let cursor = self.cursor.clone();
            let out = c
                .call::<Contacts>(at, book, Op::Changes { cursor, limit: 5 })
                .unwrap();
            let Outcome::Changes {
                changes,
                cursor,
                snapshot,
                more,
                ..
            } = out
            else {
                panic!("{out:?}")
            };
            changes.into_iter().for_each(|ch| self.take(ch));
            self.cursor = cursor;
            snap |= snapshot;
            if !more {
                return snap;
            }
        }
        panic!("the pages do not end")
    }

    fn take(&mut self, ch: Change) {
        let row = ContactRow::of(ch.column, ch.value, ch.timestamp).unwrap();
        self.rows.entry(ch.id).or_default().merge(&row);
    }
}

fn contact_id(n: u32) -> ContactId {
    format!("00000000-0000-4000-8000-{n:012}").parse().unwrap()
}

/// The contacts node `n` holds.
fn held(c: &mut Cluster, n: NodeId, book: &ObjectId) -> BTreeMap<ContactId, ContactRow> {
    let out = c
        .call::<Contacts>(
            n,
            book,
            Op::List {
                after: None,
                limit: 1_000,
            },
        )
        .unwrap();
    let Outcome::Page(_, page, _) = out else {
        panic!("{out:?}")
    };
    page.into_iter().collect()
}

fn cluster() -> Cluster {
    Cluster::new(
        Config {
            initial_nodes: 3,
            ..Config::default()
        },
        kinds::catalog(),
    )
}

#[test]
fn concurrent_edits_of_two_columns_of_one_contact_both_survive_everywhere() {
    let mut c = cluster();
    let book = id("contacts", "shared");
    let (mut a, mut b) = (Client::new(1), Client::new(2));
    a.write(&mut c, NodeId(0), &book, 7, Column::Name, "Bob");
    b.write(&mut c, NodeId(1), &book, 7, Column::Phone, "555");
    c.pass(2_000);
    for n in 0..3 {
        let rows = held(&mut c, NodeId(n), &book);
        let bob = &rows[&contact_id(7)];
        assert_eq!(
            (bob.text(Column::Name), bob.text(Column::Phone)),
            (Some("Bob"), Some("555"))
        );
    }
    a.pull(&mut c, NodeId(2), &book);
    assert_eq!(a.rows, held(&mut c, NodeId(2), &book));
}

#[test]
fn one_cursor_pulls_at_every_node_and_misses_nothing() {
    let mut c = cluster();
    let book = id("contacts", "roaming");
    let mut writers: Vec<Client> = (1..=3).map(Client::new).collect();
    let mut reader = Client::new(9);
    let mut rng = Rng::new(5);
    let mut snapshots = [0; 3];
    for round in 0..60 {
        for w in writers.iter_mut() {
            let at = NodeId(rng.below(3) as u32);
            let column = [Column::Name, Column::Phone, Column::Email][rng.below(3) as usize];
            w.write(
                &mut c,
                at,
                &book,
                rng.below(12) as u32,
                column,
                &format!("r{round}"),
            );
        }
        // Some gossip arrives, some does not yet.
        c.pass_losing(250, |_, _, _| rng.chance(300));
        let at = rng.below(3) as usize;
        snapshots[at] += usize::from(reader.pull(&mut c, NodeId(at as u32), &book));
    }
    c.pass(10_000);
    let want = held(&mut c, NodeId(0), &book);
    assert_eq!(held(&mut c, NodeId(1), &book), want);
    for n in 0..3 {
        reader.pull(&mut c, NodeId(n), &book);
    }
    assert_eq!(reader.rows, want, "the reader holds every change");
    for w in writers.iter_mut() {
        for n in 0..3 {
            let seq = w.seq;
            assert_eq!(
                w.retry(&mut c, NodeId(n), &book),
                (seq, 0),
                "applied once, all acknowledged"
            );
        }
    }
    assert!(
        snapshots.iter().all(|s| *s <= 1),
        "one snapshot per node at most: {snapshots:?}"
    );
}
