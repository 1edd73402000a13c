//! Seeded chaos over multi-row objects: writes and deletes at random
//! nodes, messages lost, reordered and duplicated, restarts, tombstones
//! collected, a node added and one retired, all at once. Once
//! the faults stop, every table row is held, identically, by exactly its
//! replicas, and every tally row counts every acknowledged increment at
//! every active node.

use crate::harness::{id, Cluster};
use crate::kinds;
use edge_crdt::crdt::{MvRegister, Payload, PnCounter};
use edge_crdt::engine::{Config, ObjectId, Status};
use edge_crdt::{NodeId, Rng};
use std::collections::{BTreeMap, BTreeSet};

fn active(c: &mut Cluster) -> Vec<NodeId> {
    let ids: Vec<NodeId> = c.nodes.keys().copied().collect();
    ids.into_iter()
        .filter(|n| c.engine(*n).node.accepts_writes())
        .collect()
}

/// One random client write at an active node; returns the tally row it
/// counted, if any.
fn random_write(
    c: &mut Cluster,
    rng: &mut Rng,
    table: &ObjectId,
    tally: &ObjectId,
) -> Option<String> {
    let at = rng.pick(&active(c))?;
    let row = format!("r{:02}", rng.below(40));
    if rng.chance(100) {
        c.op(at, table, &[&row], |x| {
            let held: MvRegister = x.row_as(&row);
            x.put(&row, &held.delete(held.context()));
        });
        return None;
    }
    if rng.chance(500) {
        let text = format!("{at}-{}", rng.next_u64() % 1000);
        c.op(at, table, &[&row], |x| {
            let stamp = x.stamp(&row);
            let held: MvRegister = x.row_as(&row);
            x.put(
                &row,
                &held.write(stamp, held.context(), Payload::Text(text)),
            );
        });
        return None;
    }
    c.op(at, tally, &[&row], |x| {
        x.put(&row, &x.row_as::<PnCounter>(&row).add(at, 1).unwrap());
    });
    Some(row)
}

fn chaos(seed: u64) {
    let config = Config {
        initial_nodes: 5,
        frame_bytes: 1 << 10,
        tombstone_grace_ms: 10_000,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let mut rng = Rng::new(seed);
    c.disorder = Some(Rng::new(seed ^ 0x5eed));
    let (table, tally) = (id("table", "t"), id("tally", "t"));
    let mut counted: BTreeMap<String, i64> = BTreeMap::new();
    let mut retiring = None;
    for step in 0..400 {
        for _ in 0..rng.below(3) {
            if let Some(row) = random_write(&mut c, &mut rng, &table, &tally) {
                *counted.entry(row).or_default() += 1;
            }
        }
        if rng.chance(20) {
            let ids: Vec<NodeId> = c.nodes.keys().copied().collect();
            c.restart(rng.pick(&ids).unwrap());
        }
        if step == 100 {
            c.spawn(NodeId(5));
            c.with(NodeId(0), |e, now| e.node.add_node(NodeId(5), now).unwrap());
        }
        if step == 200 {
            let leaving = NodeId(rng.below(5) as u32 + 1);
            c.with(leaving, |e, _| {
                e.node.begin_retire().unwrap();
            });
            retiring = Some(leaving);
        }
        let mut loss = Rng::new(rng.next_u64());
        c.pass_losing(250, |_, _, _| loss.chance(150));
    }
    let leaving = retiring.unwrap();
    while !matches!(c.engine(leaving).node.status(), Status::Retired { .. }) {
        c.pass(2_000);
        assert!(c.now < 10_000_000, "seed {seed}: {leaving} never retired");
    }
    c.disorder = None;
    c.pass(60_000);
    check(&mut c, seed, &table, &tally, &counted);
}

fn check(
    c: &mut Cluster,
    seed: u64,
    table: &ObjectId,
    tally: &ObjectId,
    counted: &BTreeMap<String, i64>,
) {
    let mut replicas: Vec<NodeId> = c.engine(NodeId(0)).node.replicas(table);
    replicas.sort();
    let holders = c.holders(table);
    let held: Vec<NodeId> = holders.keys().copied().collect();
    assert_eq!(
        held, replicas,
        "seed {seed}: the table is held by its replicas"
    );
    let states: BTreeSet<_> = holders.values().collect();
    assert_eq!(states.len(), 1, "seed {seed}: the replicas agree");
    for n in active(c) {
        for (row, count) in counted {
            let value = c.stored::<PnCounter>(n, tally, row).map(|h| h.value());
            assert_eq!(value, Some(*count), "seed {seed}: {n} {row}");
        }
    }
}

/// `ENGINE_CHAOS_SEEDS=n` runs seeds 1 to n (6 by default).
#[test]
fn chaos_over_multi_row_objects_loses_nothing() {
    let seeds = std::env::var("ENGINE_CHAOS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 1..=seeds {
        chaos(seed);
    }
}
