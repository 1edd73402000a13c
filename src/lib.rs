//! edge-crdt: one sans-IO CRDT core for two places.
//!
//! - [`crdt`]: the data types, each a join-semilattice with delta mutators.
//! - [`codec`]: the versioned postcard envelope for wire and storage bytes.
//! - [`cluster`]: a replica node as a state machine (events in, effects out)
//!   that gossips deltas of any [`crdt::Crdt`] type.
//! - [`api`]: parsing and validation of untrusted HTTP input, without HTTP.
//! - `edge` (feature `edge`): the Cloudflare Worker and its node Durable Objects.
//! - `browser` (feature `browser`): the wasm-bindgen replica for web pages.
//!
//! Nothing outside `edge` and `browser` does I/O or reads a clock: time and
//! node ids are passed in.
#![deny(missing_docs)]

pub mod api;
pub mod cluster;
pub mod codec;
pub mod crdt;
pub(crate) mod node_id;

pub use node_id::NodeId;

#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "edge")]
mod edge;
