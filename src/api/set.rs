//! The set endpoints' bodies: element lists, the creation bias, a whole
//! replica for offline-to-online sync (with its timestamps checked against
//! the server clock), and the replies.
//!
//! ```
//! use edge_crdt::api::{set::parse_elements, http::Format};
//! let elements = parse_elements(Format::Json, br#"["apple", 3, true]"#).unwrap();
//! assert_eq!(elements.len(), 3);
//! assert_eq!(parse_elements(Format::Json, b"[null]").unwrap_err().error.as_str(), "bad_element");
//! ```

use super::counter::expect;
use super::http::{check_body_size, json_object, postcard_body, Format, HttpRequest, Reply};
use super::{named_object, Access, CacheUse, KindApi, Request, Secret, MAX_BODY};
use crate::codec;
use crate::crdt::{Bias, Element, Hlc, LwwSet};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::set::{Op, Outcome, Set};
use crate::kinds::Kind;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Most elements in one insert or delete.
pub const MAX_BATCH: usize = 256;

/// The largest body of `POST /api/sets/:name/update`.
pub const MAX_REPLICA_BODY: usize = 512 << 10;

fn bad(error: ErrorCode, message: String) -> ApiError {
    ApiError::new(error, message)
}

/// Parses the body of insert and delete: a JSON array of scalars (or a
/// postcard envelope of `Vec<Element>`), 1 to [`MAX_BATCH`] of them.
pub fn parse_elements(format: Format, body: &[u8]) -> Result<Vec<Element>, ApiError> {
    check_body_size(body.len(), MAX_BODY)?;
    let elements = match format {
        Format::Json => {
            let values: Vec<Json> = serde_json::from_slice(body).map_err(|e| {
                bad(
                    ErrorCode::BadJson,
                    format!("expected a JSON array of elements: {e}"),
                )
            })?;
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    Element::from_json(v).ok_or_else(|| {
                        bad(
                            ErrorCode::BadElement,
                            format!("element {i} is {v}: elements are strings, finite numbers or booleans"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Format::Postcard => codec::decode::<Vec<Element>>(body, MAX_BODY).map_err(|e| {
            bad(
                ErrorCode::BadPostcard,
                format!("expected a list of elements: {e}"),
            )
        })?,
    };
    if elements.is_empty() || elements.len() > MAX_BATCH {
        return Err(bad(
            ErrorCode::BadBatch,
            format!("send 1 to {MAX_BATCH} elements, not {}", elements.len()),
        ));
    }
    let probe = LwwSet::default().insert(elements.iter().cloned(), 1);
    crate::crdt::Crdt::validate(&probe).map_err(|e| bad(ErrorCode::BadElement, e.0))?;
    Ok(elements)
}

/// The body of `PUT /api/sets/:name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// `"add-wins"` or `"remove-wins"`
    pub bias: BiasName,
}

/// A bias as the API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BiasName {
    /// add-wins
    AddWins,
    /// remove-wins
    RemoveWins,
}

impl BiasName {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BiasName::AddWins => "add-wins",
            BiasName::RemoveWins => "remove-wins",
        }
    }

    /// The bias an API spelling names.
    pub fn parse(text: &str) -> Option<Bias> {
        [BiasName::AddWins, BiasName::RemoveWins]
            .into_iter()
            .find(|b| b.as_str() == text)
            .map(Bias::from)
    }
}

impl From<BiasName> for Bias {
    fn from(b: BiasName) -> Bias {
        match b {
            BiasName::AddWins => Bias::AddWins,
            BiasName::RemoveWins => Bias::RemoveWins,
        }
    }
}

impl From<Bias> for BiasName {
    fn from(b: Bias) -> BiasName {
        match b {
            Bias::AddWins => BiasName::AddWins,
            Bias::RemoveWins => BiasName::RemoveWins,
        }
    }
}

/// Parses the body of a set creation.
pub fn parse_create(format: Format, body: &[u8]) -> Result<Bias, ApiError> {
    check_body_size(body.len(), MAX_BODY)?;
    let create: Create = match format {
        Format::Json => json_object(body, r#"{"bias": "add-wins" | "remove-wins"}"#)?,
        Format::Postcard => postcard_body(body, MAX_BODY, "a bias")?,
    };
    Ok(create.bias.into())
}

/// Parses `since` of `/updates`: a timestamp, 0 for everything.
pub fn parse_since(text: Option<&str>) -> Result<u64, ApiError> {
    match text {
        None => Ok(0),
        Some(t) => t.parse().map_err(|_| {
            bad(
                ErrorCode::BadSince,
                format!(
                    "`since` is a timestamp (an unsigned integer), not `{}`",
                    clip(t)
                ),
            )
        }),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A replica as JSON: `{"adds": [[element, t], …], "removes": [[element, t], …]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaJson {
    /// added elements and when
    #[serde(default)]
    pub adds: Vec<(Json, u64)>,
    /// removed elements and when
    #[serde(default)]
    pub removes: Vec<(Json, u64)>,
}

impl ReplicaJson {
    /// The JSON form of a set's entries.
    pub fn of(set: &LwwSet) -> ReplicaJson {
        let (adds, removes) = set.entries();
        let list =
            |m: &crate::VecMap<Element, u64>| m.iter().map(|(e, t)| (e.to_json(), *t)).collect();
        ReplicaJson {
            adds: list(adds),
            removes: list(removes),
        }
    }
}

/// Parses a whole replica for `POST /api/sets/:name/update` and checks
/// every timestamp: not 0, at most `max_drift_ms` ahead of `wall_ms`. This
/// refuses the seed's "insert at LONG_MAX" and "delete at 0" attacks. The
/// result holds the replica's entries only, never its creation.
pub fn parse_replica(
    format: Format,
    body: &[u8],
    wall_ms: u64,
    max_drift_ms: u64,
) -> Result<LwwSet, ApiError> {
    check_body_size(body.len(), MAX_REPLICA_BODY)?;
    // Every stamp is checked as sent, before merging could drop a dominated
    // one (an add at 0 under a later remove of the same element).
    let (created, adds, removes) = match format {
        Format::Json => {
            let json: ReplicaJson = json_object(
                body,
                r#"{"adds": [[element, t], …], "removes": [[element, t], …]}"#,
            )?;
            let convert = |list: &[(Json, u64)], side: &str| {
                list.iter()
                    .enumerate()
                    .map(|(i, (v, t))| {
                        Element::from_json(v).map(|e| (e, *t)).ok_or_else(|| {
                            bad(
                                ErrorCode::BadElement,
                                format!(
                                    "{side}[{i}] is {v}, not a string, finite number or boolean"
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            let adds = convert(&json.adds, "adds")?;
            (None, adds, convert(&json.removes, "removes")?)
        }
        Format::Postcard => {
            let sent = codec::decode::<LwwSet>(body, MAX_REPLICA_BODY).map_err(|e| {
                bad(
                    ErrorCode::BadPostcard,
                    format!("expected a set replica: {e}"),
                )
            })?;
            let (adds, removes) = sent.entries();
            let list = |m: &crate::VecMap<Element, u64>| {
                m.iter().map(|(e, t)| (e.clone(), *t)).collect::<Vec<_>>()
            };
            (sent.created().map(|c| c.0), list(adds), list(removes))
        }
    };
    let stamps = adds.iter().chain(&removes).map(|(_, t)| *t);
    for t in stamps.chain(created) {
        Hlc::check(t, wall_ms, max_drift_ms)
            .map_err(|e| ApiError::new(ErrorCode::BadTimestamp, e.to_string()))?;
    }
    // Only the entries: a set's creation, and so its bias, comes from PUT
    // alone. A replica's creation stamped earlier with the other bias would
    // win the merge and flip every tie on every node.
    let mut replica = LwwSet::default();
    for (e, t) in adds {
        let delta = replica.insert([e], t);
        crate::crdt::Crdt::merge(&mut replica, &delta);
    }
    for (e, t) in removes {
        let delta = replica.remove([e], t);
        crate::crdt::Crdt::merge(&mut replica, &delta);
    }
    crate::crdt::Crdt::validate(&replica).map_err(|e| bad(ErrorCode::BadReplica, e.0))?;
    Ok(replica)
}

/// `GET /api/sets/:name` as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetView {
    /// the set's name
    pub name: String,
    /// the node that answered
    pub node: NodeId,
    /// the bias
    pub bias: BiasName,
    /// the members, in canonical order
    pub members: Vec<Json>,
    /// the latest timestamp in the set: a poller's next `since`
    pub latest: u64,
    /// the timestamp the node gave this write (insert, delete, create);
    /// absent on reads and on `/update`, whose entries carry their own
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamp: Option<u64>,
}

/// `GET /api/sets/:name/updates?since=T` as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UpdatesView {
    /// the node that answered
    pub node: NodeId,
    /// the `since` asked for
    pub since: u64,
    /// the latest timestamp in the set
    pub latest: u64,
    /// the bias
    pub bias: BiasName,
    /// added elements and when, after `since`
    pub adds: Vec<(Json, u64)>,
    /// removed elements and when, after `since`
    pub removes: Vec<(Json, u64)>,
}

/// The postcard reply of the set endpoints: the node and the whole set
/// (or, for `/updates`, the entries after `since`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetReply {
    /// the set's name
    pub name: String,
    /// the node that answered
    pub node: NodeId,
    /// the set, or its entries after `since`
    pub state: LwwSet,
}

/// The reply to a read or write of set `name` in `format`; `stamp` is the
/// write's timestamp, if the node gave it one (JSON only).
pub fn reply(
    format: Format,
    name: &str,
    node: NodeId,
    set: &LwwSet,
    stamp: Option<u64>,
) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(&SetView {
            name: name.to_owned(),
            node,
            bias: set.bias().into(),
            members: set.members().map(Element::to_json).collect(),
            latest: set.latest(),
            stamp,
        })
        .unwrap_or_default(),
        Format::Postcard => codec::encode(&SetReply {
            name: name.to_owned(),
            node,
            state: set.clone(),
        }),
    }
}

/// The reply to `/updates?since=` in `format`.
pub fn updates_reply(
    format: Format,
    name: &str,
    node: NodeId,
    set: &LwwSet,
    since: u64,
) -> Vec<u8> {
    let after = set.since(since);
    match format {
        Format::Json => {
            let entries = ReplicaJson::of(&after);
            serde_json::to_vec(&UpdatesView {
                node,
                since,
                latest: set.latest(),
                bias: set.bias().into(),
                adds: entries.adds,
                removes: entries.removes,
            })
            .unwrap_or_default()
        }
        Format::Postcard => codec::encode(&SetReply {
            name: name.to_owned(),
            node,
            state: after,
        }),
    }
}

/// How to show a set: whole, or (`/updates`) its entries after `since`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    name: String,
    since: Option<u64>,
}

impl KindApi for Set {
    const ROUTE: &'static str = "sets";
    const EVENTS: Option<&'static str> = Some("events");
    type View = View;

    fn preflight(req: &HttpRequest, path: &[&str]) -> Result<(usize, Option<Secret>), ApiError> {
        match path {
            [_] => expect(req, &["GET", "PUT"]).map(|_| (MAX_BODY, None)),
            [_, "insert" | "delete"] => expect(req, &["POST"]).map(|_| (MAX_BODY, None)),
            [_, "update"] => expect(req, &["POST"]).map(|_| (MAX_REPLICA_BODY, Some(Secret::Sync))),
            [_, "updates"] => expect(req, &["GET"]).map(|_| (0, None)),
            _ => Err(ApiError::not_found(&req.path)),
        }
    }

    fn access(op: &Op) -> Access {
        match op {
            // `/update` needs SYNC_TOKEN already
            Op::Read | Op::Update(_) => Access::Open,
            Op::Create { .. } | Op::Insert(_) | Op::Delete(_) => Access::Write,
        }
    }

    fn parse(
        req: &HttpRequest,
        name: Option<&str>,
        rest: &[&str],
    ) -> Result<Request<Self>, ApiError> {
        let object = named_object(Self::PREFIX, req, name)?;
        let mut view = View {
            name: object.name().to_owned(),
            since: None,
        };
        let format = req.format()?;
        let op = match (rest, &req.method) {
            ([], super::http::Method::Put) => Op::Create {
                bias: parse_create(format, &req.body)?,
            },
            ([], _) => Op::Read,
            (["insert"], _) => Op::Insert(parse_elements(format, &req.body)?),
            (["delete"], _) => Op::Delete(parse_elements(format, &req.body)?),
            (["update"], _) => {
                let drift = req.settings.max_drift_ms;
                Op::Update(parse_replica(format, &req.body, req.now, drift)?)
            }
            (["updates"], _) => {
                view.since = Some(parse_since(req.query("since"))?);
                Op::Read
            }
            _ => return Err(ApiError::not_found(&req.path)),
        };
        Ok(Request {
            object: Some(object),
            op,
            view,
            cache: CacheUse::Skip,
        })
    }

    fn reply(
        req: &HttpRequest,
        view: View,
        outcomes: Vec<(NodeId, Option<Outcome>)>,
    ) -> Result<Reply, ApiError> {
        let Some((_, Some(o))) = outcomes.into_iter().next() else {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the node did not answer",
            ));
        };
        let format = req.format()?;
        let body = match view.since {
            Some(since) => updates_reply(format, &view.name, o.node, &o.state, since),
            None => reply(format, &view.name, o.node, &o.state, o.stamp),
        };
        Ok(Reply::ok(format, body))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn element_lists() {
        let err = |b: &[u8]| parse_elements(Format::Json, b).unwrap_err().error;
        assert_eq!(err(b"{}"), ErrorCode::BadJson);
        assert_eq!(err(b"[]"), ErrorCode::BadBatch);
        assert_eq!(err(b"[[1]]"), ErrorCode::BadElement);
        assert_eq!(
            err(format!("[\"{}\"]", "x".repeat(300)).as_bytes()),
            ErrorCode::BadElement
        );
        let many = format!("[{}]", vec!["1"; 257].join(","));
        assert_eq!(err(many.as_bytes()), ErrorCode::BadBatch);
    }

    #[test]
    fn replicas_with_attack_timestamps_are_refused() {
        let ok = format!(
            r#"{{"adds": [["a", {}]], "removes": [[1, 5]]}}"#,
            Hlc::stamp_of(NOW)
        );
        let set = parse_replica(Format::Json, ok.as_bytes(), NOW, 60_000).unwrap();
        assert_eq!(set.members().count(), 1);
        for body in [
            r#"{"adds": [["a", 18446744073709551615]]}"#.to_owned(),
            r#"{"removes": [["a", 0]]}"#.to_owned(),
            format!(r#"{{"adds": [["a", {}]]}}"#, Hlc::stamp_of(NOW + 120_000)),
        ] {
            let e = parse_replica(Format::Json, body.as_bytes(), NOW, 60_000).unwrap_err();
            assert_eq!(
                (e.status(), e.error),
                (422, ErrorCode::BadTimestamp),
                "{body}"
            );
        }
        let e = parse_replica(Format::Json, br#"{"adds": [], "x": 1}"#, NOW, 60_000).unwrap_err();
        assert_eq!(e.error, ErrorCode::BadJson);
    }

    #[test]
    fn dominated_bad_stamps_and_replica_creations_change_nothing() {
        use crate::crdt::Crdt;
        let t = Hlc::stamp_of(NOW);
        let body = format!(r#"{{"adds": [["a", 0]], "removes": [["a", {t}]]}}"#);
        let e = parse_replica(Format::Json, body.as_bytes(), NOW, 60_000).unwrap_err();
        assert_eq!((e.status(), e.error), (422, ErrorCode::BadTimestamp));
        let mut forged = LwwSet::new(Bias::RemoveWins, 1);
        forged.merge(&forged.insert([Element::Str("a".into())], t));
        let bytes = codec::encode(&forged);
        let set = parse_replica(Format::Postcard, &bytes, NOW, 60_000).unwrap();
        assert_eq!(set.created(), None, "the creation is not taken");
        assert_eq!(set.members().count(), 1);
        let zero = codec::encode(&LwwSet::new(Bias::RemoveWins, 0));
        let e = parse_replica(Format::Postcard, &zero, NOW, 60_000).unwrap_err();
        assert_eq!(e.error, ErrorCode::BadTimestamp);
    }

    #[test]
    fn creation_and_since() {
        assert_eq!(
            parse_create(Format::Json, br#"{"bias": "remove-wins"}"#),
            Ok(Bias::RemoveWins)
        );
        assert_eq!(
            parse_create(Format::Json, br#"{"bias": "both"}"#)
                .unwrap_err()
                .error,
            ErrorCode::BadJson
        );
        assert_eq!(parse_since(Some("12")), Ok(12));
        assert_eq!(
            parse_since(Some("-1")).unwrap_err().error,
            ErrorCode::BadSince
        );
    }
}
