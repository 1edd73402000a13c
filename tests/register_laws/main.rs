//! Laws of the multi-value register on reachable states, against an oracle
//! computed from the causal history.
//!
//! Every state here comes out of a random history over 2 to 5 replicas,
//! each with its own [`Hlc`] fed wall times that stall and step back:
//! client reads at a replica (capturing its context), writes that carry
//! either no context (blind), the context of an earlier read at any replica
//! (possibly stale), or the replica's current context, deletes that carry a
//! read's context, whole-state merges between replicas, and deliveries of
//! earlier deltas to any replica in any order, duplicates included.
//!
//! Each state travels with the indices of the logged writes and deletes it
//! has seen. The oracle knows each write's dot and the dots each write or
//! delete saw (the dots of the context it carried, computed from the log,
//! not from [`CausalContext`]): a state's context is every dot its events
//! carry, and its siblings are exactly its writes whose dot none of its
//! events saw.
//!
//! Dot numbering, as the oracle models it: a write's dot is `(node, top + 1)`
//! when the writing replica's context (per the log) holds a dot of `node`
//! up to `top`, and `(node, stamp)` when it holds none. Either way the write
//! saw exactly the dots of the context it carried, nothing below its own
//! dot. A node's clock only moves forward, so its dots never repeat, even
//! for a key it forgot (handed off) and writes again.
//!
//! The files: `oracle.rs` (the oracle and the checks every reachable state
//! passes), `history.rs` (the random histories), `raw.rs` (the serde layout,
//! to build states the API cannot, and the states validation rejects), and
//! the laws: `reachable.rs`, `merge.rs`, `writes.rs`, `tombstones.rs` and
//! `forgetting.rs`.
//!
//! [`Hlc`]: edge_crdt::crdt::Hlc
//! [`CausalContext`]: edge_crdt::crdt::CausalContext
#![cfg(not(target_arch = "wasm32"))]

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/witnessed.rs"]
mod witnessed;

mod forgetting;
mod history;
mod merge;
mod oracle;
mod raw;
mod reachable;
mod tombstones;
mod writes;

use edge_crdt::crdt::{Dot, Stamp, MAX_SIBLINGS};
use edge_crdt::NodeId;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

/// A write at `node` that has kept the key since its last write there.
fn at(node: NodeId, time: u64) -> Stamp {
    Stamp {
        node,
        time,
        holds_own_writes: true,
    }
}

fn dot(node: u32, counter: u64) -> Dot {
    Dot {
        node: NodeId(node),
        counter,
    }
}

/// Most replicas a history has.
const MAX_NODES: usize = 5;

/// A history has fewer operations than this, so fewer writes than
/// [`MAX_SIBLINGS`]: blind writes never reach the sibling limit.
const MAX_OPS: usize = 48;
const _: () = assert!(MAX_OPS < MAX_SIBLINGS);

/// Proptest's default configuration (256 cases; `PROPTEST_CASES=n` runs
/// more, and the other `PROPTEST_` variables apply as usual), with the
/// seeds of failed cases kept next to the source of each module, in
/// `<module>.proptest-regressions`. By default proptest would keep them in
/// `tests/proptest-regressions/<module>.txt` (it climbs to the folder with
/// a `main.rs`), a folder every test target with a `main.rs` shares.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}
