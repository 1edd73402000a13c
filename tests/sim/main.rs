//! A seeded, deterministic network simulator for the engine
//! ([`edge_crdt::engine::Engine`]), hosting PN-counters (`counter:NAME`)
//! and LWW sets (`set:NAME`) on every active node, and multi-value
//! registers (`kv:NAME`) on three replicas of a hash ring.
//!
//! Virtual time in milliseconds; every message travels as an encoded
//! frame and is opened by the receiving engine (`receive_frame`), with
//! random delays (so frames are reordered), loss and duplication; a frame
//! older than half the tombstone grace is refused as stale and reported to
//! its sender, like a failed send. Partitions come and go, in the network
//! and set on the nodes. Crash-restarts keep only the node's disk (a
//! [`edge_crdt::engine::MemoryStore`] the engine writes), after which the
//! node restores its membership, partition, clock floor and leaf digests
//! and loads the rest as inputs need it. Clients write through the kinds;
//! an admin retires nodes one at a time and adds nodes. Each node reads
//! its own wall clock, skewed by a few milliseconds (and re-skewed when it
//! restarts elsewhere); many nodes share one skew, and clients sometimes
//! insert and remove one element at two nodes in the same millisecond, so
//! equal stamps occur.
//!
//! The oracles (`oracle/`) log every acknowledged write. While the run
//! goes on, every row a node stores must be valid and made of acknowledged
//! writes, every object stored under its leaf, the increment-only counter
//! never over its total nor down at an active node, every register write
//! given a new dot that covers no write its client did not see, and a
//! node's disk must equal its memory, with consistent sums, when it
//! crashes. At the end every fault stops, and the cluster must converge
//! (`harness/converge.rs` lists what that means), every tombstone be
//! collected, and the register oracle hold at every replica.
//!
//! Scenarios: `chaos` (every fault, many seeds), then one file per subject
//! with calm faults and fixed seeds, each reproducing one way things could
//! go wrong.
//!
//! `SIM_SEED=<n> cargo test --test simulator` replays one seed;
//! `SIM_SEED=<a>..<b>` runs a range of seeds; `SIM_TRACE=<object>` (such
//! as `kv:k3`) prints every write, message and storage effect that touches
//! one object.
#![cfg(not(target_arch = "wasm32"))]

mod harness;
mod oracle;

mod chaos;
mod contacts;
mod membership;
mod registers;
mod resize;
mod restart;
mod retire;
mod scale;
mod split_brain;
mod streams;
mod tombstones;
