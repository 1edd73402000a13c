//! The first SQL layout's values, for moving them to today's rows. That
//! layout stored one whole value per key, `kv(key, leaf, state, own)`,
//! `state` the envelope of an enum of every kind; this module reads those
//! envelopes and gives each key's object and single row. It is frozen: a
//! kind added later has no values in it.
//!
//! ```
//! use edge_crdt::codec;
//! use edge_crdt::crdt::{Crdt, PnCounter};
//! use edge_crdt::kinds::v1;
//! use edge_crdt::NodeId;
//! let mut c = PnCounter::default();
//! c.merge(&c.add(NodeId(1), 4).unwrap());
//! // The first layout's envelope: version 1, variant 1 (a counter), the counter.
//! let mut old = vec![1, 1];
//! old.extend(postcard::to_allocvec(&c).unwrap());
//! let (object, row, state) = v1::row("counter:home", &old).unwrap().unwrap();
//! assert_eq!((object.as_str(), row.as_str()), ("counter:home", ""));
//! assert_eq!(postcard::from_bytes::<PnCounter>(&state).unwrap().value(), 4);
//! ```

use crate::codec::{self, MAX_FRAME};
use crate::crdt::{LwwSet, MvRegister, PnCounter};
use crate::engine::{ObjectId, RowKey};
use serde::Deserialize;

/// A value of the first layout: every kind as one enum.
#[derive(Deserialize)]
enum Value {
    Empty,
    Counter(PnCounter),
    Set(LwwSet),
    Register(MvRegister),
}

/// The object, row and row state of a stored key; `None` for an empty
/// value, an error for bytes that do not decode or a key of another kind.
pub fn row(key: &str, state: &[u8]) -> Result<Option<(ObjectId, RowKey, Vec<u8>)>, String> {
    let object = ObjectId::parse(key).map_err(|e| e.0)?;
    let value: Value = codec::decode(state, MAX_FRAME).map_err(|e| e.to_string())?;
    let (prefix, bytes) = match value {
        Value::Empty => return Ok(None),
        Value::Counter(c) => ("counter", postcard::to_allocvec(&c)),
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
        let mut counter = vec![1, 1];
        counter.extend(postcard::to_allocvec(&PnCounter::default()).unwrap());
        assert!(row("set:a", &counter).is_err());
        assert!(row("kv:a", &[1, 9]).is_err());
        assert!(row("nokind", &empty).is_err());
    }
}
