//! Row-level repair: an object of many rows on two or three replicas
//! diverges at random (rows written at random replicas, their gossip
//! lost) and converges by anti-entropy alone, shipping only rows that
//! differ, never the whole object.
//!
//! The bound on rows shipped: anti-entropy compares two replicas at a
//! time, and a digest cannot tell which side is newer, so each side sends
//! its state of every row that differs between them: 2 rows per exchange.
//! Exchanges run one after another (each node's round completes before the
//! next node ticks), each leaves both sides with the join of their states,
//! and `r` replicas reach the join of all after at most `2r - 3` exchanges
//! that touch a row (1 for two replicas; 3 for three: A-B, then C with
//! one of them, then the other). So at most `2 (2r - 3)` shipments per
//! differing row.

use crate::harness::{id, Cluster};
use crate::kinds;
use edge_crdt::crdt::{MvRegister, Payload};
use edge_crdt::engine::{Config, Message, ObjectId, RowKey};
use edge_crdt::NodeId;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn row_key(i: usize) -> RowKey {
    format!("r{i:05}")
}

/// Writes `text` into rows `rows` of `table` at `at`, in one operation.
fn write(c: &mut Cluster, at: NodeId, table: &ObjectId, rows: &[usize], text: &str) {
    let keys: Vec<RowKey> = rows.iter().map(|i| row_key(*i)).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    c.op(at, table, &refs, |x| {
        for key in &keys {
            let stamp = x.stamp(key);
            let seen = x.row_as::<MvRegister>(key).context().clone();
            let payload = Payload::Text(format!("{text}@{key}"));
            x.put(key, &MvRegister::default().write(stamp, &seen, payload));
        }
    });
}

/// Rows whose states are not the same at every node.
fn differing(c: &Cluster, table: &ObjectId) -> BTreeSet<(ObjectId, RowKey)> {
    let holders = c.holders(table);
    let keys: BTreeSet<&RowKey> = holders.values().flat_map(BTreeMap::keys).collect();
    keys.into_iter()
        .filter(|k| {
            let states: BTreeSet<Option<&Vec<u8>>> = c
                .nodes
                .keys()
                .map(|n| holders.get(n).and_then(|h| h.get(*k)))
                .collect();
            states.len() > 1
        })
        .map(|k| (table.clone(), k.clone()))
        .collect()
}

/// What one divergence and its repair shipped.
#[derive(Debug)]
pub struct Figures {
    pub replicas: u32,
    pub rows: usize,
    pub differing: usize,
    pub shipped: usize,
}

/// Builds a synced object of `rows` rows on `replicas` nodes, writes
/// `writes` (row, node) with their gossip lost, and repairs.
pub fn diverge_and_repair(replicas: u32, rows: usize, writes: &[(usize, u32)]) -> Figures {
    let config = Config {
        initial_nodes: replicas,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let table = id("table", "wide");
    write(
        &mut c,
        NodeId(0),
        &table,
        &(0..rows).collect::<Vec<_>>(),
        "base",
    );
    c.pass(1_000);
    assert!(
        differing(&c, &table).is_empty(),
        "synced before the divergence"
    );

    for (n, (row, at)) in writes.iter().enumerate() {
        write(
            &mut c,
            NodeId(*at),
            &table,
            &[*row % rows],
            &format!("w{n}"),
        );
    }
    // Every gossip is lost, the buffered deltas' flush included.
    c.pass_losing(c.config.gossip_interval_ms, |_, _, m| {
        matches!(m, Message::Gossip { .. })
    });
    let differ = differing(&c, &table);
    let repaired = |c: &Cluster| -> u64 { c.nodes.values().map(|e| e.node.repaired_rows()).sum() };
    let before = repaired(&c);
    c.reset_tally();
    c.pass(60_000);
    assert!(differing(&c, &table).is_empty(), "converged");
    assert!(
        repaired(&c) - before >= differ.len() as u64,
        "the nodes count the rows anti-entropy moved"
    );
    assert_eq!(c.tally.of("transfer"), 0);
    let extra: Vec<_> = c.tally.distinct.difference(&differ).collect();
    assert!(
        extra.is_empty(),
        "shipped rows that did not differ: {extra:?}"
    );
    let per_row = 2 * (2 * replicas as usize - 3);
    assert!(
        c.tally.rows <= per_row * differ.len(),
        "{} rows shipped for {} differing ({per_row} each at most)",
        c.tally.rows,
        differ.len()
    );
    Figures {
        replicas,
        rows,
        differing: differ.len(),
        shipped: c.tally.rows,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn repair_ships_only_the_rows_that_differ(
        replicas in 2u32..=3,
        rows in 40usize..400,
        writes in prop::collection::vec((0usize..10_000, 0u32..3), 1..=4),
        more in prop::collection::vec((0usize..10_000, 0u32..3), 0..=30),
    ) {
        // At most a tenth of the rows written: the bound stays under the object.
        let mut all = writes;
        all.extend(more.into_iter().take(rows / 10));
        let all: Vec<(usize, u32)> = all.into_iter().map(|(r, n)| (r, n % replicas)).collect();
        let f = diverge_and_repair(replicas, rows, &all);
        eprintln!("{f:?}");
        prop_assert!(f.shipped < f.rows, "the whole object shipped: {f:?}");
        prop_assert!(f.shipped <= 2 * (2 * f.replicas as usize - 3) * f.differing);
    }
}

/// Past one range of row digests (1024 rows), repair goes a range at a time.
#[test]
fn an_object_past_one_range_repairs_range_by_range() {
    let writes = [
        (3, 1),
        (700, 2),
        (1_030, 1),
        (1_400, 0),
        (1_499, 2),
        (1_024, 0),
    ];
    let f = diverge_and_repair(3, 1_500, &writes);
    eprintln!("{f:?}");
    assert_eq!(f.differing, writes.len());
}
