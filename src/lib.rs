//! edge-crdt: one sans-IO CRDT core for two places.
//!
//! - [`crdt`]: the data types, each a join-semilattice with delta mutators.
//! - [`codec`]: the versioned postcard envelope for wire and storage bytes.
//! - [`engine`]: a replica node as a state machine (events in, effects out)
//!   over objects made of rows, and the one driver loop with its storage.
//! - [`kinds`]: the kinds of data the cluster hosts, one module each.
//! - [`api`]: the HTTP API parsed into typed requests, without HTTP types.
//! - `edge` (feature `edge`): the Cloudflare Worker and its node Durable Objects.
//! - `browser` (feature `browser`): the wasm-bindgen replica for web pages.
//!
//! Nothing outside `edge` and `browser` does I/O or reads a clock: time and
//! node ids are passed in.
#![deny(missing_docs)]

pub mod api;
pub mod codec;
pub mod crdt;
pub mod engine;
mod error;
mod heapsort;
pub mod kinds;
pub(crate) mod node_id;
mod rng;
pub(crate) mod vec_map;

pub use error::{clip, ApiError, ErrorCode};
pub use node_id::NodeId;
pub use rng::Rng;
pub use vec_map::{NodeMap, NodeSet, VecMap, VecSet};

#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "edge")]
mod edge;
