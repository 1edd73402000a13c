//! The first SQL layout's values, for moving them to today's rows. That
//! layout stored one whole value per key, `kv(key, leaf, state, own)`,
//! `state` the envelope of an enum of every kind; this module reads those
//! envelopes and gives each key's object and single row. It is frozen: a
//! kind added later has no values in it.
//!
//! Sets and registers kept their encoding; counters had theirs: a map
//! from node id to `{count, absorbed}` per half.
//!
//! ```
//! use edge_crdt::crdt::PnCounter;
//! use edge_crdt::kinds::v1;
//! // The first layout's envelope: version 1, variant 1 (a counter), then
//! // increments {node-1: 4, absorbed {node-3}}, {node-2: 1}, no decrements.
//! let old = [1, 1, 2, 1, 4, 1, 3, 2, 1, 0, 0];
//! let (object, row, state) = v1::row("counter:home", &old).unwrap().unwrap();
//! assert_eq!((object.as_str(), row.as_str()), ("counter:home", ""));
//! let counter: PnCounter = postcard::from_bytes(&state).unwrap();
//! assert_eq!(counter.value(), 5);
//! assert_eq!(counter.retired().len(), 1);
//! ```

use crate::codec::{self, MAX_FRAME};
use crate::crdt::{Crdt, GCounter, LwwSet, MvRegister, PnCounter};
use crate::engine::{ObjectId, RowKey};
use crate::{NodeId, NodeMap, NodeSet};
use serde::Deserialize;

/// A value of the first layout: every kind as one enum.
#[derive(Deserialize)]
enum Value {
    Empty,
    Counter(OldCounter),
    Set(LwwSet),
    Register(MvRegister),
}

/// A counter of the first layout.
#[derive(Deserialize)]
struct OldCounter {
    inc: OldHalf,
    dec: OldHalf,
}

#[derive(Deserialize)]
struct OldHalf {
    entries: NodeMap<OldEntry>,
}

#[derive(Deserialize)]
struct OldEntry {
    count: u64,
    absorbed: NodeSet,
}

impl OldHalf {
    fn today(self) -> Result<GCounter, String> {
        let records: Vec<(NodeId, NodeId)> = self
            .entries
            .iter()
            .flat_map(|(heir, e)| e.absorbed.iter().map(move |r| (*r, *heir)))
            .collect();
        let entries = self.entries.into_iter().map(|(n, e)| (n, e.count));
        GCounter::from_parts(entries, records).map_err(|e| e.to_string())
    }
}

impl OldCounter {
    fn today(self) -> Result<PnCounter, String> {
        let counter = PnCounter::from_halves(self.inc.today()?, self.dec.today()?);
        counter.validate().map_err(|e| e.to_string())?;
        Ok(counter)
    }
}

/// The object, row and row state of a stored key; `None` for an empty
/// value, an error for bytes that do not decode or a key of another kind.
pub fn row(key: &str, state: &[u8]) -> Result<Option<(ObjectId, RowKey, Vec<u8>)>, String> {
    let object = ObjectId::parse(key).map_err(|e| e.0)?;
    let value: Value = codec::decode(state, MAX_FRAME).map_err(|e| e.to_string())?;
    let (prefix, bytes) = match value {
        Value::Empty => return Ok(None),
        Value::Counter(c) => ("counter", postcard::to_allocvec(&c.today()?)),
        Value::Set(s) => ("set", postcard::to_allocvec(&s)),
        Value::Register(r) => ("kv", postcard::to_allocvec(&r)),
    };
    if object.prefix() != prefix {
        return Err(format!("a {prefix} stored under `{key}`"));
    }
    let bytes = bytes.map_err(|e| e.to_string())?;
    Ok(Some((object, RowKey::new(), bytes)))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn keys_of_another_kind_and_garbage_are_refused() {
        let empty = [1, 0];
        assert_eq!(row("kv:a", &empty), Ok(None));
        let counter = [1, 1, 0, 0];
        assert!(row("set:a", &counter).is_err());
        assert!(row("counter:a", &counter).unwrap().is_some());
        // node-1 absorbed itself: the first layout refused that too.
        assert!(row("counter:a", &[1, 1, 1, 1, 4, 1, 1, 0]).is_err());
        assert!(row("kv:a", &[1, 9]).is_err());
        assert!(row("nokind", &empty).is_err());
    }
}
