//! Address books under faults: clients with outboxes (the replica the
//! browser and the command-line client wrap) edit offline and online,
//! pushing to and pulling from random nodes, while frames are lost,
//! duplicated and delayed, the network splits, nodes crash and restart and
//! a node is added. Every complete pull must leave the client holding all
//! the node held (no cursor skips a change); at the end every delta is
//! acknowledged and present at every node, and every client equals the
//! oracle, the join of every delta made.

use crate::harness::{config, seeds, Faults, Sim};
use edge_crdt::crdt::contacts::{ClockId, Column, ContactId, ContactRow, Value};
use edge_crdt::crdt::Crdt;
use edge_crdt::engine::ObjectId;
use edge_crdt::kinds::contacts::{Change, Cursor, Op, Outcome, Replica};
use edge_crdt::{ErrorCode, NodeId};
use std::collections::BTreeMap;

type Rows = BTreeMap<ContactId, ContactRow>;

struct Client {
    replica: Replica,
    online: bool,
}

fn book() -> ObjectId {
    ObjectId::new("contacts", "sim").unwrap()
}

fn contact(n: u64) -> ContactId {
    format!("00000000-0000-4000-8000-{n:012}").parse().unwrap()
}

/// Every contact at node `id` (`None` when it is down), from a pull that
/// starts from nothing.
fn held(sim: &mut Sim, id: NodeId) -> Option<Rows> {
    let mut all = Replica::new(ClockId::client(0));
    let mut cursor = Cursor::default();
    loop {
        let op = Op::Changes { cursor, limit: 50 };
        match sim.contacts(id, &book(), op)?.ok()? {
            Outcome::Changes {
                changes,
                cursor: next,
                more,
                ..
            } => {
                all.merge(changes);
                cursor = next;
                if !more {
                    return Some(all.rows().clone());
                }
            }
            other => sim.fail(format!("a pull answered {other:?}")),
        }
    }
}

/// Whether `mine` holds every column of `theirs` at least as late.
fn dominates(mine: &Rows, theirs: &Rows) -> bool {
    theirs.iter().all(|(id, row)| {
        let mut joined = mine.get(id).cloned().unwrap_or_default();
        !joined.merge(row)
    })
}

/// Pushes the outbox at `id`; `false` if the node is down or refused.
fn push(sim: &mut Sim, client: &mut Client, id: NodeId) -> bool {
    let Some(batch) = client.replica.push(20) else {
        return true;
    };
    let op = Op::Push {
        client: batch.client,
        deltas: batch.deltas,
        cursor: Some(batch.cursor.clone()),
    };
    match sim.contacts(id, &book(), op) {
        Some(Ok(Outcome::Pushed { acked, cursor, .. })) => {
            client.replica.acknowledged(acked, &batch.cursor, cursor);
            true
        }
        Some(Err(e)) if e.error == ErrorCode::NotActive => false,
        Some(other) => sim.fail(format!("a push at {id} answered {other:?}")),
        None => false,
    }
}

/// Pulls every page at `id`, then checks the client holds what the node
/// held before the pull; `false` if the node is down.
fn pull(sim: &mut Sim, client: &mut Client, id: NodeId) -> bool {
    let Some(before) = held(sim, id) else {
        return false;
    };
    for _ in 0..1_000 {
        let op = Op::Changes {
            cursor: client.replica.cursor().clone(),
            limit: 7,
        };
        let Some(Ok(Outcome::Changes {
            changes,
            cursor,
            more,
            ..
        })) = sim.contacts(id, &book(), op)
        else {
            return false;
        };
        client.replica.pulled(changes, cursor);
        if !more {
            if !dominates(client.replica.rows(), &before) {
                sim.fail(format!("{id}: a pull skipped a change the node held"));
            }
            return true;
        }
    }
    sim.fail("the pages of a pull do not end")
}

fn edit(sim: &mut Sim, client: &mut Client, made: &mut Vec<Change>) {
    let id = contact(sim.rng.below(8));
    let column = [
        Column::Name,
        Column::Phone,
        Column::Email,
        Column::Tombstone,
    ][sim.rng.below(4) as usize];
    let value = match column {
        Column::Tombstone => Value::Flag(sim.rng.chance(700)),
        _ => Value::Text(format!("v{}", sim.rng.below(1_000))),
    };
    let wall = sim.now + sim.rng.below(5);
    client
        .replica
        .edit(&id, column, value.clone(), wall)
        .expect("an edit");
    let timestamp = client.replica.outbox().last().expect("queued").timestamp;
    made.push(Change {
        id,
        column,
        value,
        timestamp,
    });
}

fn join(changes: &[Change]) -> Rows {
    let mut oracle = Replica::new(ClockId::client(0));
    oracle.merge(changes.to_vec());
    oracle.rows().clone()
}

/// One client's turn: maybe go offline or back, edit, and sync online.
fn act(sim: &mut Sim, client: &mut Client, made: &mut Vec<Change>) {
    if sim.rng.chance(20) {
        client.online = !client.online;
    }
    if sim.rng.chance(300) {
        edit(sim, client, made);
    }
    if client.online && sim.rng.chance(150) {
        let nodes = sim.ids();
        let id = sim.rng.pick(&nodes).expect("nodes");
        if push(sim, client, id) {
            pull(sim, client, id);
        }
    }
}

fn run(seed: u64) {
    let mut sim = Sim::new(seed, config(4), Faults::chaos());
    let mut clients: Vec<Client> = (1..=3)
        .map(|n| Client {
            replica: Replica::new(ClockId::client(seed * 16 + n)),
            online: true,
        })
        .collect();
    let mut made = Vec::new();
    sim.admin.add_at = vec![sim.now + 3_000];
    for _ in 0..800 {
        sim.step(10, false);
        sim.random_faults();
        for client in clients.iter_mut() {
            act(&mut sim, client, &mut made);
        }
    }
    sim.heal();
    sim.settle(60_000);
    let oracle = join(&made);
    for client in clients.iter_mut() {
        for attempt in 0.. {
            let ids = sim.ids();
            let id = ids[attempt % ids.len()];
            if push(&mut sim, client, id) && client.replica.pending() == 0 {
                break;
            }
            assert!(attempt < 100, "seed {seed}: an outbox never empties");
            sim.run(500);
        }
    }
    sim.settle(60_000);
    for id in sim.ids() {
        let rows = held(&mut sim, id).unwrap_or_else(|| sim.fail(format!("{id} is down")));
        assert_eq!(
            rows, oracle,
            "seed {seed}: {id} lacks an acknowledged delta"
        );
    }
    for client in clients.iter_mut() {
        let id = sim.ids()[0];
        assert!(pull(&mut sim, client, id));
        assert_eq!(
            client.replica.rows(),
            &oracle,
            "seed {seed}: a client differs from the oracle"
        );
    }
    eprintln!(
        "seed {seed}: {} deltas by 3 clients, {} crashes, {} partitions, {} nodes at the end",
        made.len(),
        sim.stats.crashes,
        sim.stats.partitions,
        sim.ids().len()
    );
}

#[test]
fn clients_with_outboxes_converge_under_faults_and_no_cursor_skips_a_change() {
    for seed in seeds().into_iter().take(8) {
        run(seed);
    }
}
