//! Each object's ordered log: a node numbers the entries it keeps in its
//! own sequence, one for every accepted delta of a `journal` row (from a
//! client or a peer), and readers page through it after a cursor
//! (`Store::log_after`), across restarts, with no entry lost or repeated.
//!
//! A repair merges a peer's whole row: its entry is that whole state, so a
//! note may show in several entries of one node (the kind sees the delta,
//! not what it added).

use crate::harness::{id, Cluster};
use crate::kinds::{self, JournalEntry, Notes};
use edge_crdt::engine::{Config, ObjectId, Store};
use edge_crdt::NodeId;
use std::collections::{BTreeMap, BTreeSet};

const PAGE: usize = 3;

/// A reader of every node's log, a page at a time.
#[derive(Default)]
struct Reader {
    cursors: BTreeMap<NodeId, u64>,
    read: BTreeMap<NodeId, Vec<(u64, Vec<u8>)>>,
}

impl Reader {
    /// Reads each node's entries after its cursor, to the end.
    fn catch_up(&mut self, c: &mut Cluster, object: &ObjectId) {
        let ids: Vec<NodeId> = c.nodes.keys().copied().collect();
        for n in ids {
            let cursor = self.cursors.entry(n).or_default();
            loop {
                let page = c.engine(n).store.log_after(object, *cursor, PAGE).unwrap();
                assert!(page.len() <= PAGE);
                let Some((last, _)) = page.last() else {
                    break;
                };
                *cursor = *last;
                self.read.entry(n).or_default().extend(page);
            }
        }
    }
}

fn note(c: &mut Cluster, at: NodeId, object: &ObjectId, row: &str, text: &str) {
    c.op(at, object, &[row], |x| x.put(row, &Notes::one(text)));
}

#[test]
fn logs_keep_every_accepted_delta_in_each_nodes_sequence_across_restarts() {
    let config = Config {
        initial_nodes: 3,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let journal = id("journal", "j");
    let mut reader = Reader::default();
    let mut written = 0;
    let mut write = |c: &mut Cluster, count: usize| {
        for _ in 0..count {
            let at = NodeId(written % 3);
            note(
                c,
                at,
                &journal,
                &format!("r{}", written % 4),
                &format!("n{written}"),
            );
            written += 1;
            if written % 3 == 0 {
                c.pass(250);
            }
        }
        c.pass(1_000);
    };
    write(&mut c, 12);
    reader.catch_up(&mut c, &journal);
    c.restart(NodeId(1));
    c.restart(NodeId(2));
    write(&mut c, 12);
    reader.catch_up(&mut c, &journal);
    c.restart(NodeId(0));
    reader.catch_up(&mut c, &journal);
    write(&mut c, 13);
    reader.catch_up(&mut c, &journal);

    for (n, entries) in &reader.read {
        let seqs: Vec<u64> = entries.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<u64>>(),
            "{n}: no entry lost or repeated"
        );
        assert!(seqs.len() >= 37, "{n}: an entry per note at least");
        let whole = c
            .engine(*n)
            .store
            .log_after(&journal, 0, usize::MAX)
            .unwrap();
        assert!(
            whole == *entries,
            "{n}: no entry rewritten after it was read"
        );
        let mut logged: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (_, bytes) in entries {
            let (row, Notes(notes)): JournalEntry = postcard::from_bytes(bytes).unwrap();
            logged.entry(row).or_default().extend(notes);
        }
        assert_eq!(logged.len(), 4);
        for (row, notes) in &logged {
            let held: Notes = c.stored(*n, &journal, row).unwrap();
            assert_eq!(
                *notes, held.0,
                "{n} {row}: the log holds every accepted delta"
            );
        }
    }
}

/// An object that holds only a log, no rows, keeps numbering its entries
/// after a restart.
#[test]
fn a_log_without_rows_keeps_its_numbering_across_a_restart() {
    let config = Config {
        initial_nodes: 1,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let bare = id("journal", "bare");
    c.op(NodeId(0), &bare, &[], |x| {
        x.append(b"a".to_vec());
        x.append(b"b".to_vec());
    });
    c.restart(NodeId(0));
    c.op(NodeId(0), &bare, &[], |x| x.append(b"c".to_vec()));
    let log = c.engine(NodeId(0)).store.log_after(&bare, 0, 10).unwrap();
    let expected: Vec<(u64, Vec<u8>)> =
        vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())];
    assert_eq!(log, expected);
}
