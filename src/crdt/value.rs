//! Every data type the cluster hosts, as one CRDT. A key names its type in
//! its first segment (`counter:home`, `set:fruits`), so two values under one
//! key are always of one variant; the engine stores and gossips `Value`s
//! without knowing which. A new type is a new variant and a new [`Kind`].
//!
//! ```
//! use edge_crdt::crdt::{Crdt, Kind, PnCounter, Value};
//! use edge_crdt::NodeId;
//! let key = Kind::Counter.key("home");
//! assert_eq!(Kind::of_key(&key), Some((Kind::Counter, "home")));
//! let delta = Value::Counter(PnCounter::default().add(NodeId(0), 2).unwrap());
//! let mut stored = Value::Empty;
//! stored.merge(&delta);
//! assert_eq!(stored.as_counter().map(PnCounter::value), Some(2));
//! ```

use super::{Crdt, InvalidState, LwwSet, MvRegister, PnCounter};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The type a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// a [`PnCounter`]
    Counter,
    /// an [`LwwSet`]
    Set,
    /// an [`MvRegister`], placed on a few replicas of a hash ring
    Register,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Counter, Kind::Set, Kind::Register];

    /// The key prefix of this kind, without the `:`.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Set => "set",
            Kind::Register => "kv",
        }
    }

    /// The key of `name` for this kind.
    pub fn key(self, name: &str) -> String {
        format!("{}:{name}", self.prefix())
    }

    /// The kind and name of a key.
    pub fn of_key(key: &str) -> Option<(Kind, &str)> {
        let (prefix, name) = key.split_once(':')?;
        let kind = Kind::ALL.into_iter().find(|k| k.prefix() == prefix)?;
        Some((kind, name))
    }
}

/// A value of any hosted type; `Empty` is the bottom that any value joins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// nothing yet
    #[default]
    Empty,
    /// a counter
    Counter(PnCounter),
    /// an LWW element set
    Set(LwwSet),
    /// a multi-value register
    Register(MvRegister),
}

impl Value {
    /// The kind of a non-empty value.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Value::Empty => None,
            Value::Counter(_) => Some(Kind::Counter),
            Value::Set(_) => Some(Kind::Set),
            Value::Register(_) => Some(Kind::Register),
        }
    }

    /// Whether this is the bottom of its kind: equal to nothing at all.
    fn is_bottom(&self) -> bool {
        match self {
            Value::Empty => true,
            Value::Counter(c) => *c == PnCounter::default(),
            Value::Set(s) => *s == LwwSet::default(),
            Value::Register(r) => *r == MvRegister::default(),
        }
    }

    /// The counter, if this is one.
    pub fn as_counter(&self) -> Option<&PnCounter> {
        match self {
            Value::Counter(c) => Some(c),
            _ => None,
        }
    }

    /// The set, if this is one.
    pub fn as_set(&self) -> Option<&LwwSet> {
        match self {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    /// The register, if this is one.
    pub fn as_register(&self) -> Option<&MvRegister> {
        match self {
            Value::Register(r) => Some(r),
            _ => None,
        }
    }

    /// Checks that this value may be stored under `key`.
    pub fn check_key(&self, key: &str) -> Result<(), InvalidState> {
        let (kind, _) = Kind::of_key(key)
            .ok_or_else(|| InvalidState(format!("`{key}` names no known kind")))?;
        match self.kind() {
            Some(k) if k != kind => Err(InvalidState(format!(
                "a {} under the {} key `{key}`",
                k.prefix(),
                kind.prefix()
            ))),
            _ => Ok(()),
        }
    }
}

impl Crdt for Value {
    fn merge(&mut self, other: &Value) -> bool {
        match (&mut *self, other) {
            (_, Value::Empty) => false,
            // A bottom value of a kind (an empty delete) is still nothing.
            (Value::Empty, other) if other.is_bottom() => false,
            (Value::Empty, other) => {
                *self = other.clone();
                true
            }
            (Value::Counter(a), Value::Counter(b)) => a.merge(b),
            (Value::Set(a), Value::Set(b)) => a.merge(b),
            (Value::Register(a), Value::Register(b)) => a.merge(b),
            // Kinds never meet under one key: check_key guards every input.
            _ => false,
        }
    }

    fn validate(&self) -> Result<(), InvalidState> {
        match self {
            Value::Empty => Ok(()),
            Value::Counter(c) => c.validate(),
            Value::Set(s) => s.validate(),
            Value::Register(r) => r.validate(),
        }
    }

    fn absorb(&self, retired: NodeId, heir: NodeId) -> Option<Value> {
        match self {
            Value::Counter(c) => c.absorb(retired, heir).map(Value::Counter),
            Value::Set(s) => s.absorb(retired, heir).map(Value::Set),
            Value::Register(r) => r.absorb(retired, heir).map(Value::Register),
            Value::Empty => None,
        }
    }

    fn latest_stamp(&self) -> Option<u64> {
        match self {
            Value::Counter(c) => c.latest_stamp(),
            Value::Set(s) => s.latest_stamp(),
            Value::Register(r) => r.latest_stamp(),
            Value::Empty => None,
        }
    }

    fn is_tombstone(&self) -> bool {
        match self {
            Value::Counter(c) => c.is_tombstone(),
            Value::Set(s) => s.is_tombstone(),
            Value::Register(r) => r.is_tombstone(),
            Value::Empty => false,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::Bias;

    #[test]
    fn keys_name_their_kind() {
        assert_eq!(Kind::of_key("set:a:b"), Some((Kind::Set, "a:b")));
        assert_eq!(Kind::of_key("map:x"), None);
        let set = Value::Set(LwwSet::new(Bias::AddWins, 1));
        assert!(set.check_key("set:x").is_ok());
        assert!(set.check_key("counter:x").is_err());
        assert!(Value::Empty.check_key("nope").is_err());
    }

    #[test]
    fn kinds_never_mix() {
        let mut c = Value::Counter(PnCounter::default());
        let before = c.clone();
        assert!(!c.merge(&Value::Set(LwwSet::default())));
        assert_eq!(c, before);
    }
}
