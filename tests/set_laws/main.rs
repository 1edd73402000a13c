//! Laws of the LWW element set and of the hybrid logical clock, on
//! reachable states.
//!
//! Every state here comes out of a random history over 2 to 4 replicas:
//! inserts and removes of elements from a pool of five (so the same element
//! is written concurrently all the time), each stamped by its replica's own
//! [`Hlc`] fed wall times that stall and step back (so an add and a remove
//! of one element often carry the same timestamp), creations with either
//! bias at clock stamps or at arbitrary early stamps (so a creation that
//! changes the bias often arrives last), and whole-state merges between
//! replicas, with or without the receiver's clock observing them.
//!
//! Each state travels with two witnesses: the indices of the logged
//! operations it has seen (for an oracle that applies the LWW rule directly
//! to the log) and an unpruned reference model (plain max maps, merged
//! alongside), so every state is checked against both: same membership,
//! same bias, and exactly the entries the pruning rule keeps.
//!
//! The files: `oracle.rs` (the oracle, the unpruned model and the checks
//! every reachable state passes), `history.rs` (the random histories), and
//! the laws: `reachable.rs`, `merge.rs` (merges and pruning), `bias.rs`
//! (ties and the creation's bias), `hlc.rs` (the clock) and `elements.rs`
//! (canonical numbers and the limits validation enforces).
//!
//! [`Hlc`]: edge_crdt::crdt::Hlc
#![cfg(not(target_arch = "wasm32"))]

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/witnessed.rs"]
mod witnessed;

mod bias;
mod elements;
mod history;
mod hlc;
mod merge;
mod oracle;
mod reachable;

use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

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
