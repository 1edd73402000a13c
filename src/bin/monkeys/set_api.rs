//! The set API as the clients use it: paths, `/updates` entries, a node's
//! view of the set, and bias names.

use crate::http::{Failure, Http};
use edge_crdt::crdt::{Bias, Crdt, Element, LwwSet};
use serde_json::Value as Json;
use std::collections::BTreeSet;

/// `/api/sets/NAME`, the name percent-encoded.
pub fn set_path(name: &str) -> String {
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("/api/sets/{encoded}")
}

pub fn bias_named(name: &str) -> Option<Bias> {
    match name {
        "add-wins" => Some(Bias::AddWins),
        "remove-wins" => Some(Bias::RemoveWins),
        _ => None,
    }
}

pub fn bias_name(b: Bias) -> &'static str {
    match b {
        Bias::AddWins => "add-wins",
        Bias::RemoveWins => "remove-wins",
    }
}

/// `[[element, t], …]` of an `/updates` reply.
pub fn entries(reply: &Json, side: &str) -> Result<Vec<(Element, u64)>, String> {
    let list = reply[side]
        .as_array()
        .ok_or(format!("the reply has no `{side}` list"))?;
    list.iter()
        .map(|pair| {
            let e = Element::from_json(&pair[0]);
            let t = pair[1].as_u64();
            e.zip(t).ok_or(format!("bad entry {pair} in `{side}`"))
        })
        .collect()
}

/// Merges both lists of an `/updates` reply into `set`.
pub fn merge_reply(set: &mut LwwSet, reply: &Json) -> Result<(), String> {
    let adds = entries(reply, "adds")?;
    let removes = entries(reply, "removes")?;
    for (e, t) in adds {
        let delta = set.insert([e], t);
        set.merge(&delta);
    }
    for (e, t) in removes {
        let delta = set.remove([e], t);
        set.merge(&delta);
    }
    Ok(())
}

/// Why a pull of `/updates` failed.
pub enum PullError {
    /// The reply was not a valid `/updates` answer.
    Reply(String),
    /// The request itself failed.
    Http(Failure),
}

/// Gets `path` (an `/updates` query) and merges its entries into
/// `replica`; returns the reply, for its `latest` and `bias`.
pub fn pull(http: &Http, path: &str, replica: &mut LwwSet) -> Result<Json, PullError> {
    let reply = http.get(path).map_err(PullError::Http)?;
    merge_reply(replica, &reply).map_err(|e| PullError::Reply(format!("{path}: {e}")))?;
    Ok(reply)
}

/// The set as one node shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub members: BTreeSet<Element>,
    pub latest: u64,
    pub bias: String,
}

pub fn read_node(http: &Http, set_path: &str, node: u64) -> Result<NodeView, String> {
    let reply = http
        .get(&format!("{set_path}?node=node-{node}"))
        .map_err(|f| f.text().to_owned())?;
    node_view(&reply)
}

fn node_view(reply: &Json) -> Result<NodeView, String> {
    let members = reply["members"]
        .as_array()
        .ok_or("the reply has no `members`")?
        .iter()
        .map(|v| Element::from_json(v).ok_or(format!("member {v} is not an element")))
        .collect::<Result<_, _>>()?;
    Ok(NodeView {
        members,
        latest: reply["latest"]
            .as_u64()
            .ok_or("the reply has no `latest`")?,
        bias: reply["bias"].as_str().unwrap_or("?").to_owned(),
    })
}

#[cfg(test)]
mod test {
    use super::*;
    use serde_json::json;

    fn el(s: &str) -> Element {
        Element::Str(s.into())
    }

    #[test]
    fn set_names_are_percent_encoded() {
        assert_eq!(set_path("a-b_c.d~9"), "/api/sets/a-b_c.d~9");
        assert_eq!(set_path("x/y:z@w"), "/api/sets/x%2Fy%3Az%40w");
    }

    #[test]
    fn bias_names_round_trip() {
        for b in [Bias::AddWins, Bias::RemoveWins] {
            assert_eq!(bias_named(bias_name(b)), Some(b));
        }
        assert_eq!(bias_named("both"), None);
    }

    #[test]
    fn an_updates_reply_merges_into_a_replica() {
        let reply = json!({"adds": [["a", 5], [3.0, 6]], "removes": [["a", 7]], "latest": 7});
        let mut set = LwwSet::default();
        merge_reply(&mut set, &reply).unwrap();
        let members: Vec<_> = set.members().cloned().collect();
        assert_eq!(members, [Element::Num("3".into())]);
        assert_eq!(
            entries(&json!({"adds": [[[1], 5]]}), "adds").unwrap_err(),
            "bad entry [[1],5] in `adds`"
        );
        assert_eq!(
            merge_reply(&mut set, &json!({"adds": []})).unwrap_err(),
            "the reply has no `removes` list"
        );
    }

    #[test]
    fn a_node_view() {
        let reply = json!({"members": ["a", "b"], "latest": 9, "bias": "remove-wins"});
        let view = node_view(&reply).unwrap();
        assert_eq!(view.members, BTreeSet::from([el("a"), el("b")]));
        assert_eq!((view.latest, view.bias.as_str()), (9, "remove-wins"));
        assert!(node_view(&json!({"members": [null], "latest": 1})).is_err());
        assert_eq!(
            node_view(&json!({"members": []})).unwrap_err(),
            "the reply has no `latest`"
        );
    }
}
