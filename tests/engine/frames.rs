//! An object larger than one frame: with `frame_bytes` at 4 KiB, a table
//! of hundreds of rows is gossiped, handed off on a resize (a node added
//! so its leaf moves; a replica retired) and repaired in pages, some of
//! them lost, with nothing lost: the old holder lets a row go only once
//! every new replica stores it, and in the end every replica holds every
//! row.

use crate::harness::{id, joined_by_node_4, ring_replicas, Cluster};
use crate::kinds;
use edge_crdt::crdt::{CausalContext, MvRegister, Payload, PnCounter};
use edge_crdt::engine::{Config, Membership, Message, ObjectId, RowKey, Status};
use edge_crdt::{NodeId, Rng};
use std::collections::{BTreeMap, BTreeSet};

const FRAME: usize = 4 << 10;

fn config() -> Config {
    Config {
        initial_nodes: 4,
        frame_bytes: FRAME,
        ..Config::default()
    }
}

/// A table whose leaf node 4 joins when it is added.
fn moving_table() -> ObjectId {
    joined_by_node_4("table", "big")
}

/// Writes `count` rows of about 100 bytes, named from `first`, at `at`.
fn write_rows(c: &mut Cluster, at: NodeId, table: &ObjectId, first: usize, count: usize) {
    let keys: Vec<String> = (first..first + count)
        .map(|i| format!("row-{i:04}"))
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    c.op(at, table, &refs, |x| {
        for key in &keys {
            let stamp = x.stamp(key);
            let text = format!("{key}:{}", "x".repeat(80));
            let row =
                MvRegister::default().write(stamp, &CausalContext::default(), Payload::Text(text));
            x.put(key, &row);
        }
    });
}

/// Rows a message carries, and their bytes as paging counts them.
fn carried(m: &Message) -> Option<usize> {
    let (Message::Gossip { rows, .. } | Message::Transfer { rows, .. }) = m else {
        return None;
    };
    let bytes = rows
        .iter()
        .flat_map(|(o, rs)| {
            rs.iter()
                .map(move |(r, s)| o.as_str().len() + r.len() + s.len())
        })
        .sum();
    Some(bytes)
}

/// Loses every third Transfer page and checks that pages keep to the frame.
fn lossy_pages() -> impl FnMut(NodeId, NodeId, &Message) -> bool {
    let mut turn = 0;
    move |_, _, m| {
        if let Some(bytes) = carried(m) {
            assert!(bytes <= FRAME, "a page of {bytes} bytes");
        }
        turn += 1;
        matches!(m, Message::Transfer { .. }) && turn % 3 == 0
    }
}

/// Every row of `table`, as one replica holds it, with its state.
fn all_rows(c: &Cluster, table: &ObjectId) -> BTreeMap<RowKey, Vec<u8>> {
    let holders = c.holders(table);
    holders
        .into_values()
        .max_by_key(BTreeMap::len)
        .unwrap_or_default()
}

/// While leaving holders let rows go: each row gone from one of them is
/// stored at every replica of `to`.
fn no_row_lost(
    rows: &BTreeMap<RowKey, Vec<u8>>,
    table: &ObjectId,
    leaving: &BTreeSet<NodeId>,
    to: &BTreeSet<NodeId>,
) -> impl Fn(&Cluster) {
    let (rows, table, leaving, to) = (rows.clone(), table.clone(), leaving.clone(), to.clone());
    move |c: &Cluster| {
        let holders = c.holders(&table);
        for node in &leaving {
            let gone = rows
                .keys()
                .filter(|r| holders.get(node).is_none_or(|h| !h.contains_key(*r)));
            for row in gone {
                for replica in &to {
                    let has = holders.get(replica).and_then(|h| h.get(row));
                    assert!(
                        has == rows.get(row),
                        "{node} let {row} go before {replica} stored it"
                    );
                }
            }
        }
    }
}

fn assert_held_whole(
    c: &Cluster,
    table: &ObjectId,
    rows: &BTreeMap<RowKey, Vec<u8>>,
    replicas: &BTreeSet<NodeId>,
) {
    let holders = c.holders(table);
    assert_eq!(holders.keys().copied().collect::<BTreeSet<_>>(), *replicas);
    for (node, held) in &holders {
        assert!(
            held == rows,
            "{node} holds {} of {} rows, or other states",
            held.len(),
            rows.len()
        );
    }
}

#[test]
fn an_object_larger_than_a_frame_moves_on_a_resize_and_repairs_in_pages() {
    let mut c = Cluster::new(config(), kinds::catalog());
    let table = moving_table();
    let before = ring_replicas(&Membership::initial(4), &table);
    let writer = *before.first().unwrap();
    write_rows(&mut c, writer, &table, 0, 300);
    c.pass(1_000);
    let rows = all_rows(&c, &table);
    assert_eq!(rows.len(), 300);
    assert!(
        rows.values().map(Vec::len).sum::<usize>() > 5 * FRAME,
        "many frames' worth"
    );
    assert_held_whole(&c, &table, &rows, &before);

    // Node 4 joins the table's leaf: one old holder hands it over.
    c.spawn(NodeId(4));
    c.with(NodeId(0), |e, now| e.node.add_node(NodeId(4), now).unwrap());
    let grown = c.engine(NodeId(0)).node.members().clone();
    let after = ring_replicas(&grown, &table);
    let check = no_row_lost(&rows, &table, &before, &after);
    c.run_checked(lossy_pages(), &check);
    for _ in 0..80 {
        c.pass_losing(250, lossy_pages());
        check(&c);
    }
    assert_held_whole(&c, &table, &rows, &after);
    assert_eq!(
        c.engine(NodeId(0)).node.leaf_counts().1,
        0,
        "no leaf still moving"
    );

    // One of its replicas retires: it hands the table to the new third.
    let leaving = *after.iter().find(|n| **n != NodeId(0)).unwrap();
    c.with(leaving, |e, _| {
        e.node.begin_retire().unwrap();
    });
    let mut shrunk = grown.clone();
    shrunk.set(leaving, Status::Retired { heir: NodeId(0) });
    let last = ring_replicas(&shrunk, &table);
    let check = no_row_lost(&rows, &table, &BTreeSet::from([leaving]), &last);
    while !matches!(c.engine(leaving).node.status(), Status::Retired { .. }) {
        c.pass_losing(250, lossy_pages());
        check(&c);
    }
    c.pass(5_000);
    assert_held_whole(&c, &table, &rows, &last);

    // Rows written where gossip is lost reach the others by repair, in pages.
    let at = *last.first().unwrap();
    write_rows(&mut c, at, &table, 300, 100);
    c.run(|_, _, m| matches!(m, Message::Gossip { .. }));
    let mut rng = Rng::new(3);
    c.pass_losing(60_000, |_, _, m| {
        if let Some(bytes) = carried(m) {
            assert!(bytes <= FRAME, "a page of {bytes} bytes");
        }
        rng.below(5) == 0
    });
    let rows = all_rows(&c, &table);
    assert_eq!(rows.len(), 400);
    assert_held_whole(&c, &table, &rows, &last);
}

/// A node that retires hands its every-node objects to its heir in pages,
/// some of them lost and some confirmations lost (pages go twice); the
/// heir folds the drained node's counts into its own as it stores each
/// page, and no count is lost or counted twice.
#[test]
fn a_retiring_node_hands_a_large_every_node_object_to_its_heir() {
    let mut c = Cluster::new(
        Config {
            initial_nodes: 3,
            ..config()
        },
        kinds::catalog(),
    );
    let tally = id("tally", "wide");
    let rows: Vec<String> = (0..200).map(|i| format!("count-{i:03}")).collect();
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    for n in 0..3u32 {
        c.op(NodeId(n), &tally, &refs, |x| {
            for row in &rows {
                let delta = x
                    .row_as::<PnCounter>(row)
                    .add(NodeId(n), i64::from(n) + 1)
                    .unwrap();
                x.put(row, &delta);
            }
        });
    }
    c.pass(1_000);
    let leaving = NodeId(1);
    let mut heir = leaving;
    c.with(leaving, |e, _| heir = e.node.begin_retire().unwrap());
    let mut turn = 0;
    while !matches!(c.engine(leaving).node.status(), Status::Retired { .. }) {
        c.pass_losing(250, |_, _, m| {
            turn += 1;
            let paging = matches!(m, Message::Transfer { .. } | Message::Transferred { .. });
            paging && turn % 3 == 0
        });
    }
    c.pass(5_000);
    assert!(
        !c.holders(&tally).contains_key(&leaving),
        "the retired node let go"
    );
    for n in [NodeId(0), NodeId(2)] {
        for row in &rows {
            let held: PnCounter = c.stored(n, &tally, row).unwrap();
            assert_eq!(held.value(), 6, "{n} {row}");
            assert!(
                !held.contributions().contains_key(&leaving),
                "{n} {row}: folded in"
            );
            assert_eq!(
                held.retired().get(&leaving),
                Some(&heir),
                "{n} {row}: into the heir"
            );
        }
    }
}

/// A transfer survives restarts of both sides: the old holder, which keeps
/// no transfer state across a restart, loads the leaf again and resends
/// it; the new replica loads the rows each page names.
#[test]
fn a_transfer_survives_restarts_of_either_side() {
    let mut c = Cluster::new(config(), kinds::catalog());
    let table = moving_table();
    let before = ring_replicas(&Membership::initial(4), &table);
    write_rows(&mut c, *before.first().unwrap(), &table, 0, 200);
    c.pass(1_000);
    let rows = all_rows(&c, &table);
    c.spawn(NodeId(4));
    c.with(NodeId(0), |e, now| e.node.add_node(NodeId(4), now).unwrap());
    let after = ring_replicas(&c.engine(NodeId(0)).node.members().clone(), &table);
    let old = *before.difference(&after).next().expect("one holder leaves");
    let check = no_row_lost(&rows, &table, &before, &after);
    // Pages arrive but no confirmation does; both sides restart.
    c.run_checked(|_, _, m| matches!(m, Message::Transferred { .. }), &check);
    assert!(
        c.holders(&table).contains_key(&NodeId(4)),
        "some pages stored"
    );
    c.restart(old);
    c.restart(NodeId(4));
    for _ in 0..80 {
        c.pass_losing(250, lossy_pages());
        check(&c);
    }
    assert_held_whole(&c, &table, &rows, &after);
}

/// Writes taken while a leaf moves, at the holder that lets it go and at
/// one that stays, reach every new replica; a newcomer catches up a large
/// every-node object by repair alone.
#[test]
fn writes_during_a_handoff_and_a_newcomers_catch_up_lose_nothing() {
    let mut c = Cluster::new(config(), kinds::catalog());
    let (table, tally) = (moving_table(), id("tally", "wide"));
    let before = ring_replicas(&Membership::initial(4), &table);
    write_rows(&mut c, *before.first().unwrap(), &table, 0, 200);
    let counts: Vec<String> = (0..300).map(|i| format!("count-{i:03}")).collect();
    let refs: Vec<&str> = counts.iter().map(String::as_str).collect();
    c.op(NodeId(0), &tally, &refs, |x| {
        for row in &counts {
            x.put(row, &x.row_as::<PnCounter>(row).add(NodeId(0), 1).unwrap());
        }
    });
    c.pass(1_000);
    c.spawn(NodeId(4));
    c.with(NodeId(0), |e, now| e.node.add_node(NodeId(4), now).unwrap());
    let after = ring_replicas(&c.engine(NodeId(0)).node.members().clone(), &table);
    let old = *before.difference(&after).next().expect("one holder leaves");
    let stays = *before.intersection(&after).next().unwrap();
    // The views settle; only a few pages get through before the writes.
    let mut budget = 3;
    c.pass_losing(250, |_, _, m| {
        let transfer = matches!(m, Message::Transfer { .. });
        transfer && {
            budget -= 1;
            budget < 0
        }
    });
    assert_eq!(c.engine(old).node.leaf_counts().1, 1, "the leaf is moving");
    write_rows(&mut c, old, &table, 150, 100);
    write_rows(&mut c, stays, &table, 250, 50);
    for _ in 0..120 {
        c.pass_losing(250, lossy_pages());
    }
    let rows = all_rows(&c, &table);
    assert_eq!(rows.len(), 300);
    assert_held_whole(&c, &table, &rows, &after);
    for n in 0..5 {
        for row in &counts {
            let held: Option<PnCounter> = c.stored(NodeId(n), &tally, row);
            assert_eq!(held.map(|h| h.value()), Some(1), "node-{n} {row}");
        }
    }
}
