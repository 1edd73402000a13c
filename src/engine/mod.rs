//! The replica node as a sans-IO state machine, over objects made of rows.
//!
//! A replicated **object** (a counter, a set, a register; an address book
//! or a topic) is named `kind:name` ([`ObjectId`]) and placed as a whole: a
//! [`Placement`] maps it to a **leaf**, and a leaf to its replicas. An
//! object holds **rows**, each a CRDT state of its kind's row type, stored,
//! digested and shipped on its own: a write rewrites only the rows it
//! changes, and anti-entropy descends from buckets of leaves to leaves,
//! objects and rows, so a divergence ships only the rows that differ.
//!
//! The engine never looks inside a row: a [`Catalog`] names, per kind
//! prefix, a [`RowType`] that merges, validates and absorbs rows as bytes.
//! Kinds live above the engine (`crate::kinds`); a new one adds its files
//! there and a line to its catalog, and nothing here changes.
//!
//! [`Node`] takes events (a client operation through [`Exec`], a peer
//! [`Message`], a timer tick, a failed send) with the current time, and
//! queues [`Effect`]s. [`Engine`] is the one driver loop that the Durable
//! Object host, the simulator and the benchmarks share: it loads what an
//! input needs from a [`Store`], runs the node, and writes the storage
//! effects, handing back only the messages and pushes the adapter performs.

mod apply;
mod barrier;
mod clock;
mod driver;
mod exec;
pub mod fanout;
mod flat;
mod gossip;
mod kind;
mod leaves;
mod loading;
mod membership;
mod message;
mod needs;
mod node;
mod placement;
mod publish;
mod reap;
mod repair;
mod retire;
mod store;
mod table;
#[cfg(test)]
mod testing;
mod traffic;
mod transfer;
mod validate;
mod wake;

pub use barrier::{Barrier, Ticket};
pub use driver::{Engine, EngineError, Outputs, Publish};
pub use exec::{Exec, NotAccepting, SyncCx};
pub use flat::{Cell, CellType, Flat, Table, ENGINE_COLUMNS, ENGINE_TABLES, MAX_CELL_INT};
pub use kind::decode as decode_row;
pub use kind::{flat_of, Catalog, Merged, Policy, RowError, RowType, Rows};
pub use leaves::{LeafRow, BUCKET_LEAVES};
pub use membership::{Membership, Partition, Status};
pub use message::{Frame, Message, RowRange, RowStates};
pub use needs::{Loaded, Needs, ObjectMeta, RowInfo, StoredRow};
pub use node::{AddError, Config, Effect, Node, RetireError};
pub use placement::{HashRing, Leaf, Placement, LEAVES};
pub use store::{coalesce, MemoryStore, Restored, Store, StoreError};
pub use traffic::{RequestMeter, Sizing, SHRINK_BELOW};
pub use validate::{check, open_frame, open_replies, FrameError};

use serde::{Deserialize, Serialize};
use std::fmt;

/// The key of a row within its object (`""` for a single-row object).
pub type RowKey = String;

/// Longest object name, in bytes (the part after `kind:`).
pub const MAX_NAME: usize = 128;

/// Longest row key, in bytes.
pub const MAX_ROW_KEY: usize = 256;

/// The name of a replicated object: its kind's prefix, `:`, and a name of
/// 1 to [`MAX_NAME`] bytes of ASCII letters, digits and `-_.~:/@`.
///
/// ```
/// use edge_crdt::engine::ObjectId;
/// let id = ObjectId::new("counter", "blog/post-1").unwrap();
/// assert_eq!(id.as_str(), "counter:blog/post-1");
/// assert_eq!((id.prefix(), id.name()), ("counter", "blog/post-1"));
/// assert!(ObjectId::new("counter", "has space").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct ObjectId(String);

impl Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl TryFrom<String> for ObjectId {
    type Error = BadName;

    fn try_from(text: String) -> Result<ObjectId, BadName> {
        ObjectId::parse(&text).map(|_| ObjectId(text))
    }
}

/// A name that breaks the rules of [`ObjectId`]: what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadName(pub String);

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ObjectId {
    /// The object `name` of the kind with `prefix`.
    pub fn new(prefix: &str, name: &str) -> Result<ObjectId, BadName> {
        check_name(name)?;
        Ok(ObjectId(format!("{prefix}:{name}")))
    }

    /// Parses `kind:name`, as a peer or storage gives it.
    pub fn parse(text: &str) -> Result<ObjectId, BadName> {
        let (prefix, name) = text
            .split_once(':')
            .ok_or_else(|| BadName(format!("`{}` has no kind prefix", clip(text))))?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(BadName(format!("`{}` is not a kind prefix", clip(prefix))));
        }
        ObjectId::new(prefix, name)
    }

    /// The whole id, `kind:name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind's prefix.
    pub fn prefix(&self) -> &str {
        self.0.split_once(':').map_or("", |(p, _)| p)
    }

    /// The name within the kind.
    pub fn name(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, n)| n)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an object name: 1 to [`MAX_NAME`] bytes of ASCII letters, digits
/// and `-_.~:/@`.
pub fn check_name(name: &str) -> Result<(), BadName> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(BadName(format!(
            "a name has 1 to {MAX_NAME} bytes, this one has {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.~:/@".contains(*c)))
    {
        return Err(BadName(format!(
            "a name may hold ASCII letters, digits and -_.~:/@, not {c:?}"
        )));
    }
    Ok(())
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// FNV-1a, 64 bits: a stable, dependency-free digest for anti-entropy.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(0xcbf2_9ce4_8422_2325, bytes)
}

/// FNV-1a continued from `hash`, to digest several parts without copying.
pub(crate) fn fnv1a_from(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The digest of one row: its object, its key and its state.
pub(crate) fn row_digest(object: &ObjectId, row: &str, state: &[u8]) -> u64 {
    let h = fnv1a_from(fnv1a(object.as_str().as_bytes()), &[0]);
    let h = fnv1a_from(fnv1a_from(h, row.as_bytes()), &[0]);
    // Never 0: a digest of 0 means "nothing" in the sums.
    fnv1a_from(h, state).max(1)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn object_ids_parse_and_refuse() {
        let id = ObjectId::parse("kv:a:b").unwrap();
        assert_eq!((id.prefix(), id.name()), ("kv", "a:b"));
        for bad in [
            "",
            "kv",
            ":x",
            "KV:x",
            "kv:",
            "kv:a b",
            &format!("kv:{}", "x".repeat(129)),
        ] {
            assert!(ObjectId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn row_digests_tell_objects_rows_and_states_apart() {
        let (a, b) = (
            ObjectId::parse("kv:a").unwrap(),
            ObjectId::parse("kv:ab").unwrap(),
        );
        let d = row_digest(&a, "", b"x");
        assert_ne!(d, row_digest(&b, "", b"x"));
        assert_ne!(d, row_digest(&a, "x", b""));
        assert_ne!(d, row_digest(&a, "", b"y"));
        assert_eq!(d, row_digest(&a, "", b"x"));
    }
}
