//! Node identifiers: `node-0`, `node-1`, … A retired id is never reused.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The identity of one replica node. Its text form is `node-N`: that is
/// how JSON shows it; postcard carries the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            u32::deserialize(d).map(NodeId)
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// A string that is not of the form `node-N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadNodeId(pub String);

impl fmt::Display for BadNodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a node id of the form node-N", self.0)
    }
}

impl FromStr for NodeId {
    type Err = BadNodeId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadNodeId(s.chars().take(40).collect());
        let digits = s.strip_prefix("node-").ok_or_else(bad)?;
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(bad());
        }
        digits.parse().map(NodeId).map_err(|_| bad())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for n in [0, 7, 42, 999_999] {
            let id = NodeId(n);
            assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
        }
    }

    #[test]
    fn json_shows_the_text_form_and_postcard_the_number() {
        let id = NodeId(12);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"node-12\"");
        assert_eq!(serde_json::from_str::<NodeId>("\"node-12\"").unwrap(), id);
        assert!(serde_json::from_str::<NodeId>("12").is_err());
        assert_eq!(postcard::to_allocvec(&id).unwrap(), [12]);
    }

    #[test]
    fn rejects_other_strings() {
        for s in [
            "",
            "node-",
            "node-01",
            "node-x",
            "Node-1",
            "node-1000000",
            "node--1",
        ] {
            assert!(s.parse::<NodeId>().is_err(), "{s}");
        }
    }
}
