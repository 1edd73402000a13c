//! The sync seam: `mesh`, a kind defined in these tests, keeps its
//! replicas in step by its own protocol over `Message::Sync` (a replica
//! that changed tells the others which rows it has; one that lacks them
//! asks, and merges the answer through `SyncCx::apply`), with every
//! `Gossip` lost, so neither delta gossip nor repair carries a row. The
//! node's message handling knows nothing of the kind.

use crate::harness::{id, Cluster};
use crate::kinds::{self, Notes};
use edge_crdt::engine::{Config, Message};
use edge_crdt::NodeId;
use std::collections::BTreeSet;

fn no_gossip(_: NodeId, _: NodeId, m: &Message) -> bool {
    matches!(m, Message::Gossip { .. })
}

#[test]
fn a_kind_syncs_its_rows_by_its_own_messages() {
    let config = Config {
        initial_nodes: 4,
        ..Config::default()
    };
    let mut c = Cluster::new(config, kinds::catalog());
    let mesh = id("mesh", "m");
    let replicas = c.engine(NodeId(0)).node.replicas(&mesh);
    assert_eq!(replicas.len(), 3);
    let notes: Vec<(NodeId, String, String)> = (0..9)
        .map(|i| (replicas[i % 3], format!("r{}", i % 4), format!("n{i}")))
        .collect();
    let write = |c: &mut Cluster, (at, row, text): &(NodeId, String, String)| {
        c.op(*at, &mesh, &[row], |x| x.put(row, &Notes::one(text)));
        c.run(no_gossip);
    };
    for n in &notes[..5] {
        write(&mut c, n);
    }
    // A restarted replica loads the rows a sync message names.
    c.restart(replicas[1]);
    for n in &notes[5..] {
        write(&mut c, n);
    }
    c.pass_losing(5_000, no_gossip);

    for (_, row, _) in &notes {
        let all: BTreeSet<String> = notes
            .iter()
            .filter(|(_, r, _)| r == row)
            .map(|(_, _, t)| t.clone())
            .collect();
        for n in c.nodes.keys().copied().collect::<Vec<_>>() {
            let held: Option<Notes> = c.stored(n, &mesh, row);
            if replicas.contains(&n) {
                assert_eq!(held.map(|h| h.0), Some(all.clone()), "{n} {row}");
            } else {
                assert_eq!(held, None, "{n} is no replica");
            }
        }
    }
    assert!(c.tally.of("sync") > 0);
    assert_eq!(c.tally.rows, 0, "no row came by gossip or transfer");
}
