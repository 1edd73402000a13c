//! The key-value endpoints' bodies: a value (text, or bytes in base64) with
//! the optional causal context of an earlier read, a delete's context, the
//! listing parameters, and the replies with every sibling.
//!
//! The context is opaque to clients: the base64 of a postcard envelope of
//! a [`CausalContext`]. A write that carries it replaces exactly the
//! siblings that read returned.
//!
//! ```
//! use edge_crdt::api::kv::{parse_put, Limits};
//! use edge_crdt::api::Format;
//! use edge_crdt::crdt::Payload;
//! let put = parse_put(Format::Json, br#"{"value": "hello"}"#, &Limits::default()).unwrap();
//! assert_eq!(put.payload, Payload::Text("hello".into()));
//! assert!(put.context.is_empty());
//! ```

use super::{check_body_size, ApiError, Format};
use crate::codec;
use crate::crdt::{CausalContext, Crdt, Dot, MvRegister, Payload, Versioned};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The prefix of every register's stored key: `kv:NAME`.
pub const KEY_PREFIX: &str = "kv:";

/// The longest key any configuration allows: the stored key `kv:NAME` must
/// stay within [`MAX_NAME`](super::MAX_NAME), which peers check on every
/// frame they receive.
pub const MAX_KEY: usize = super::MAX_NAME - KEY_PREFIX.len();

/// The largest value any configuration allows: one sibling must leave room
/// in a register's stored state ([`codec::MAX_STATE`]) for others and for
/// the context.
pub const MAX_VALUE: usize = 48 << 10;

/// Size limits of keys and values, from configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// longest key, in bytes (at most [`MAX_KEY`])
    pub max_key: usize,
    /// largest value, in bytes (decoded, for base64 bytes; at most [`MAX_VALUE`])
    pub max_value: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key: MAX_KEY,
            max_value: 16 << 10,
        }
    }
}

impl Limits {
    /// The largest body a write may have: the value in base64, a context, JSON.
    pub fn max_body(&self) -> usize {
        self.max_value / 3 * 4 + 8192
    }
}

/// Checks a key against the limits: 1 to `max_key` bytes of the name
/// characters (ASCII letters, digits and `-_.~:/@`). Every problem is a
/// 400 `bad_key`.
pub fn check_key(key: &str, limits: &Limits) -> Result<(), ApiError> {
    let max = limits.max_key.min(MAX_KEY);
    if key.is_empty() || key.len() > max {
        return Err(ApiError::new(
            400,
            "bad_key",
            format!("a key has 1 to {max} bytes, this one has {}", key.len()),
        ));
    }
    super::check_name(key).map_err(|e| ApiError::new(400, "bad_key", e.message))
}

/// Decodes the percent-encoded key segment of `/api/kv/:key` and checks it
/// with [`check_key`].
pub fn parse_key(segment: &str, limits: &Limits) -> Result<String, ApiError> {
    let key = super::percent_decode(segment)
        .ok_or_else(|| ApiError::new(400, "bad_key", "the key is not valid percent-encoding"))?;
    check_key(&key, limits)?;
    Ok(key)
}

/// Parses `?resolve=`: absent for every sibling, `lww` for the last writer's.
pub fn parse_resolve(param: Option<&str>) -> Result<bool, ApiError> {
    match param {
        None => Ok(false),
        Some("lww") => Ok(true),
        Some(other) => Err(bad(
            "bad_resolve",
            format!(
                "`resolve` is `lww` (or absent for every sibling), not `{}`",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

/// A value as JSON: text, or bytes in base64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValueJson {
    /// `"value": "text"`
    Text(String),
    /// `"value": {"base64": "…"}`
    Bytes(Base64Json),
}

/// Bytes as JSON: `{"base64": "…"}`, nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base64Json {
    /// the bytes, in standard base64
    pub base64: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutJson {
    value: ValueJson,
    #[serde(default)]
    context: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteJson {
    #[serde(default)]
    context: Option<String>,
}

/// The postcard body of a write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutWire {
    /// the value
    pub payload: Payload,
    /// what the write replaces
    pub context: CausalContext,
}

/// A parsed write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    /// the value
    pub payload: Payload,
    /// the context of the read it follows (empty for a blind write)
    pub context: CausalContext,
}

fn bad(error: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(400, error, message)
}

/// Decodes a client's opaque context.
pub fn parse_context(text: &str) -> Result<CausalContext, ApiError> {
    let bytes = codec::from_base64(text, codec::MAX_STATE).map_err(|e| {
        bad(
            "bad_context",
            format!("the context is not one this service gave out: {e}"),
        )
    })?;
    let context: CausalContext = codec::decode(&bytes, codec::MAX_STATE).map_err(|e| {
        bad(
            "bad_context",
            format!("the context is not one this service gave out: {e}"),
        )
    })?;
    context.validate().map_err(|e| {
        bad(
            "bad_context",
            format!("the context is not one this service gave out: {}", e.0),
        )
    })?;
    Ok(context)
}

/// The opaque text of a context.
pub fn context_text(context: &CausalContext) -> String {
    codec::to_base64(&codec::encode(context))
}

/// Parses the body of `PUT /api/kv/:key`.
pub fn parse_put(format: Format, body: &[u8], limits: &Limits) -> Result<Put, ApiError> {
    check_body_size(body.len(), limits.max_body())?;
    let put = match format {
        Format::Json => {
            let json: PutJson = serde_json::from_slice(body).map_err(|e| {
                bad(
                    "bad_json",
                    format!("expected {{\"value\": \"text\" | {{\"base64\": \"…\"}}, \"context\"?: \"…\"}}: {e}"),
                )
            })?;
            let payload =
                match json.value {
                    ValueJson::Text(t) => Payload::Text(t),
                    ValueJson::Bytes(Base64Json { base64 }) => Payload::Bytes(
                        codec::from_base64(&base64, limits.max_value).map_err(|e| match e {
                            codec::DecodeError::TooLarge { len, max } => too_large(len, max),
                            e => bad("bad_value", format!("`base64` is not valid base64: {e}")),
                        })?,
                    ),
                };
            let context = match json.context {
                Some(text) => parse_context(&text)?,
                None => CausalContext::default(),
            };
            Put { payload, context }
        }
        Format::Postcard => {
            let wire: PutWire = codec::decode(body, limits.max_body()).map_err(|e| {
                bad(
                    "bad_postcard",
                    format!("expected a value and a context: {e}"),
                )
            })?;
            wire.context
                .validate()
                .map_err(|e| bad("bad_context", e.0))?;
            Put {
                payload: wire.payload,
                context: wire.context,
            }
        }
    };
    if put.payload.len() > limits.max_value {
        return Err(too_large(put.payload.len(), limits.max_value));
    }
    Ok(put)
}

fn too_large(len: usize, max: usize) -> ApiError {
    ApiError::new(
        413,
        "value_too_large",
        format!("the value has {len} bytes, the limit is {max}"),
    )
}

/// Parses the optional body of `DELETE /api/kv/:key`: the context to
/// replace, or `None` (no body, only whitespace, `{}` or `{"context": null}`)
/// to delete whatever the answering replica holds: every sibling it has
/// seen. Writes it has not yet received (concurrent ones at other replicas)
/// survive as siblings.
pub fn parse_delete(format: Format, body: &[u8]) -> Result<Option<CausalContext>, ApiError> {
    check_body_size(body.len(), super::MAX_BODY)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match format {
        Format::Json => {
            let json: DeleteJson = serde_json::from_slice(body)
                .map_err(|e| bad("bad_json", format!("expected {{\"context\"?: \"…\"}}: {e}")))?;
            json.context.as_deref().map(parse_context).transpose()
        }
        Format::Postcard => {
            let context: CausalContext = codec::decode(body, super::MAX_BODY)
                .map_err(|e| bad("bad_postcard", format!("expected a context: {e}")))?;
            context.validate().map_err(|e| bad("bad_context", e.0))?;
            Ok(Some(context))
        }
    }
}

/// The paging of `GET /api/kv?prefix=&limit=&cursor=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// keys that start with this
    pub prefix: String,
    /// at most this many keys
    pub limit: usize,
    /// keys after this one (the last key of the previous page)
    pub cursor: Option<String>,
}

/// Most keys in one page.
pub const MAX_PAGE: usize = 1000;

/// Parses the listing parameters, each already percent-decoded.
pub fn parse_listing(
    prefix: Option<&str>,
    limit: Option<&str>,
    cursor: Option<&str>,
    limits: &Limits,
) -> Result<Listing, ApiError> {
    // Keys stored under an earlier, larger limit stay listable.
    let limits = &Limits {
        max_key: MAX_KEY,
        ..*limits
    };
    let prefix = prefix.unwrap_or("").to_owned();
    if !prefix.is_empty() {
        check_key(&prefix, limits).map_err(|e| bad("bad_prefix", e.message))?;
    }
    let limit = match limit {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                bad(
                    "bad_limit",
                    format!("`limit` is an integer from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let cursor = cursor
        .map(|c| check_key(c, limits).map(|_| c.to_owned()))
        .transpose()
        .map_err(|e| bad("bad_cursor", e.message))?;
    Ok(Listing {
        prefix,
        limit,
        cursor,
    })
}

/// One sibling in a JSON reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SiblingJson {
    /// the value
    pub value: ValueJson,
    /// when it was written
    pub stamp: u64,
    /// the node that took the write
    pub node: String,
}

/// `GET /api/kv/:key` as JSON: every sibling and the context to write with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterView {
    /// the key
    pub key: String,
    /// the node that answered
    pub node: String,
    /// the live values; more than one after concurrent writes
    pub siblings: Vec<SiblingJson>,
    /// opaque: send it back with a write or delete to replace what this read saw
    pub context: String,
}

fn value_json(payload: &Payload) -> ValueJson {
    match payload {
        Payload::Text(t) => ValueJson::Text(t.clone()),
        Payload::Bytes(b) => ValueJson::Bytes(Base64Json {
            base64: codec::to_base64(b),
        }),
    }
}

fn sibling(dot: &Dot, v: &Versioned) -> SiblingJson {
    SiblingJson {
        value: value_json(&v.payload),
        stamp: v.stamp,
        node: dot.node.to_string(),
    }
}

/// The siblings a reply shows: every one, or with `resolve` only the last
/// writer's, chosen as [`MvRegister::resolve`] does (latest stamp, ties by dot).
fn shown(register: &MvRegister, resolve: bool) -> Vec<(&Dot, &Versioned)> {
    if resolve {
        register
            .siblings()
            .max_by_key(|(dot, v)| (v.stamp, **dot))
            .into_iter()
            .collect()
    } else {
        register.siblings().collect()
    }
}

impl RegisterView {
    /// The view of `register` under `key` from `node`; with `resolve`, only
    /// the last writer's sibling. The context always covers every sibling,
    /// so a write with it replaces them all.
    pub fn new(key: &str, node: NodeId, register: &MvRegister, resolve: bool) -> Self {
        RegisterView {
            key: key.to_owned(),
            node: node.to_string(),
            siblings: shown(register, resolve)
                .into_iter()
                .map(|(d, v)| sibling(d, v))
                .collect(),
            context: context_text(register.context()),
        }
    }
}

/// The postcard reply of `GET`, `PUT` and `DELETE /api/kv/:key`: the
/// fields of [`RegisterView`], with the context as a [`CausalContext`]
/// (what a postcard write or delete sends back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterWire {
    /// the key
    pub key: String,
    /// the node that answered
    pub node: NodeId,
    /// the live values, each with the dot of its write
    pub siblings: Vec<(Dot, Versioned)>,
    /// every write the answering replica has seen
    pub context: CausalContext,
}

/// The reply body of `GET`, `PUT` and `DELETE /api/kv/:key` in `format`.
pub fn reply(
    format: Format,
    key: &str,
    node: NodeId,
    register: &MvRegister,
    resolve: bool,
) -> Vec<u8> {
    match format {
        Format::Json => {
            serde_json::to_vec(&RegisterView::new(key, node, register, resolve)).unwrap_or_default()
        }
        Format::Postcard => codec::encode(&RegisterWire {
            key: key.to_owned(),
            node,
            siblings: shown(register, resolve)
                .into_iter()
                .map(|(d, v)| (*d, v.clone()))
                .collect(),
            context: register.context().clone(),
        }),
    }
}

/// Most bytes of registers one node puts in a listing page (at least one
/// key is always sent): keeps every page well below a frame.
pub const PAGE_BYTES: usize = 1 << 20;

/// One node's part of a listing: its registers under the prefix after the
/// cursor, in key order (stored keys, `kv:NAME`); `more` when it holds
/// further keys past the last one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePage {
    /// stored keys and their registers, in key order
    pub entries: Vec<(String, MvRegister)>,
    /// whether the node has keys after the last entry
    pub more: bool,
}

impl NodePage {
    /// A node's page from up to `limit + 1` rows in key order (the extra
    /// one only tells that there are more), cut at [`PAGE_BYTES`].
    pub fn new(rows: Vec<(String, crate::crdt::Value)>, limit: usize) -> Self {
        let mut more = rows.len() > limit;
        let mut entries = Vec::new();
        let mut size = 0;
        for (key, value) in rows.into_iter().take(limit) {
            let register = value.as_register().cloned().unwrap_or_default();
            size += codec::encode(&register).len() + key.len();
            if size > PAGE_BYTES && !entries.is_empty() {
                more = true;
                break;
            }
            entries.push((key, register));
        }
        NodePage { entries, more }
    }
}

/// A listing page merged from every node's page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergedPage {
    /// key names (without `kv:`) and their merged, non-empty registers, in key order
    pub entries: Vec<(String, MvRegister)>,
    /// the last key name looked at, when there may be more keys after it
    pub cursor: Option<String>,
}

/// Merges the pages of several nodes into one page of at most `limit`
/// keys. A node that stopped early (`more`) has not said anything about
/// keys after its last one, so the page ends there: the smallest such
/// last key bounds it and is the cursor. Registers of one key are joined;
/// keys whose joined register is empty (deleted) are left out, so a page
/// may hold fewer than `limit` keys, even none, and still have a cursor.
pub fn merge_pages(pages: &[NodePage], limit: usize) -> MergedPage {
    let bound: Option<&str> = pages
        .iter()
        .filter(|p| p.more)
        .filter_map(|p| p.entries.last().map(|(k, _)| k.as_str()))
        .min();
    let mut merged: BTreeMap<&str, MvRegister> = BTreeMap::new();
    for page in pages {
        for (key, register) in &page.entries {
            if bound.is_some_and(|b| key.as_str() > b) || !key.starts_with(KEY_PREFIX) {
                continue;
            }
            merged.entry(key.as_str()).or_default().merge(register);
        }
    }
    let name = |key: &str| key[KEY_PREFIX.len()..].to_owned();
    let mut cursor = bound.filter(|b| b.starts_with(KEY_PREFIX)).map(name);
    let mut entries: Vec<(String, MvRegister)> = merged
        .into_iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(k, r)| (name(k), r))
        .collect();
    if entries.len() > limit {
        entries.truncate(limit);
        cursor = entries.last().map(|(k, _)| k.clone());
    }
    MergedPage { entries, cursor }
}

/// One key of a JSON listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryJson {
    /// the key
    pub key: String,
    /// its live values
    pub siblings: Vec<SiblingJson>,
    /// opaque: the context to write or delete with
    pub context: String,
}

/// `GET /api/kv?prefix=&limit=&cursor=` as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListingView {
    /// the keys of this page, in order
    pub keys: Vec<EntryJson>,
    /// pass it as `cursor` for the next page; `null` on the last page
    pub cursor: Option<String>,
    /// whether some node did not answer (its keys may be missing or older)
    pub partial: bool,
    /// the nodes that did not answer
    pub unreachable: Vec<String>,
}

/// One key of a postcard listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryWire {
    /// the key
    pub key: String,
    /// its live values, each with the dot of its write
    pub siblings: Vec<(Dot, Versioned)>,
    /// every write the merged register has seen
    pub context: CausalContext,
}

/// `GET /api/kv?…` as postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingWire {
    /// the keys of this page, in order
    pub keys: Vec<EntryWire>,
    /// the cursor of the next page
    pub cursor: Option<String>,
    /// whether some node did not answer
    pub partial: bool,
}

/// The reply body of a listing in `format`.
pub fn listing_reply(format: Format, page: &MergedPage, unreachable: &[NodeId]) -> Vec<u8> {
    let partial = !unreachable.is_empty();
    match format {
        Format::Json => serde_json::to_vec(&ListingView {
            keys: page
                .entries
                .iter()
                .map(|(key, r)| EntryJson {
                    key: key.clone(),
                    siblings: r.siblings().map(|(d, v)| sibling(d, v)).collect(),
                    context: context_text(r.context()),
                })
                .collect(),
            cursor: page.cursor.clone(),
            partial,
            unreachable: unreachable.iter().map(NodeId::to_string).collect(),
        })
        .unwrap_or_default(),
        Format::Postcard => codec::encode(&ListingWire {
            keys: page
                .entries
                .iter()
                .map(|(key, r)| EntryWire {
                    key: key.clone(),
                    siblings: r.siblings().map(|(d, v)| (*d, v.clone())).collect(),
                    context: r.context().clone(),
                })
                .collect(),
            cursor: page.cursor.clone(),
            partial,
        }),
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::{Stamp, Value};

    fn at(node: NodeId, time: u64) -> Stamp {
        Stamp {
            node,
            time,
            holds_own_writes: true,
        }
    }

    #[test]
    fn writes_with_and_without_context() {
        let limits = Limits::default();
        let mut reg = MvRegister::default();
        reg.merge(&reg.write(
            at(NodeId(0), 1),
            &CausalContext::default(),
            Payload::Text("a".into()),
        ));
        let view = RegisterView::new("k", NodeId(0), &reg, false);
        let body = format!(
            r#"{{"value": {{"base64": "AAE="}}, "context": "{}"}}"#,
            view.context
        );
        let put = parse_put(Format::Json, body.as_bytes(), &limits).unwrap();
        assert_eq!(put.payload, Payload::Bytes(vec![0, 1]));
        assert_eq!(&put.context, reg.context());
        let err = |b: &str| parse_put(Format::Json, b.as_bytes(), &limits).unwrap_err();
        assert_eq!(
            err(r#"{"value": "x", "context": "garbage"}"#).error,
            "bad_context"
        );
        assert_eq!(err(r#"{"value": 3}"#).error, "bad_json");
        assert_eq!(err(r#"{"value": "x", "extra": 1}"#).error, "bad_json");
        let big = format!(r#"{{"value": "{}"}}"#, "x".repeat(limits.max_value + 1));
        assert_eq!(err(&big).status, 413);
        let bytes = codec::to_base64(&vec![7; limits.max_value + 1]);
        let big = err(&format!(r#"{{"value": {{"base64": "{bytes}"}}}}"#));
        assert_eq!((big.status, big.error), (413, "value_too_large"));
        assert_eq!(err(r#"{"value": {"base64": "!!"}}"#).error, "bad_value");
        assert_eq!(
            err(r#"{"value": {"base64": "AA==", "extra": 1}}"#).error,
            "bad_json"
        );
    }

    #[test]
    fn keys_and_resolve() {
        let limits = Limits::default();
        assert_eq!(parse_key("user%3A42", &limits).unwrap(), "user:42");
        assert_eq!(parse_key("a%2Fb", &limits).unwrap(), "a/b");
        assert!(parse_key(&"k".repeat(MAX_KEY), &limits).is_ok());
        for bad in ["", "a b", "%zz", "caf%C3%A9", &"k".repeat(MAX_KEY + 1)] {
            assert_eq!(
                parse_key(bad, &limits).unwrap_err().error,
                "bad_key",
                "{bad}"
            );
        }
        let small = Limits {
            max_key: 4,
            ..limits
        };
        assert!(parse_key("abcd", &small).is_ok());
        assert_eq!(parse_key("abcde", &small).unwrap_err().status, 400);
        assert_eq!(parse_resolve(None), Ok(false));
        assert_eq!(parse_resolve(Some("lww")), Ok(true));
        assert_eq!(parse_resolve(Some("max")).unwrap_err().error, "bad_resolve");
    }

    fn register(node: u32, text: &str, stamp: u64) -> MvRegister {
        let mut r = MvRegister::default();
        r.merge(&r.write(
            at(NodeId(node), stamp),
            &CausalContext::default(),
            Payload::Text(text.into()),
        ));
        r
    }

    fn page(keys: &[(&str, &MvRegister)], more: bool) -> NodePage {
        NodePage {
            entries: keys
                .iter()
                .map(|(k, r)| (format!("kv:{k}"), (*r).clone()))
                .collect(),
            more,
        }
    }

    #[test]
    fn pages_merge_registers_drop_tombstones_and_stop_at_the_first_cut() {
        let (a, b) = (register(0, "a", 1), register(1, "b", 2));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut deleted = a.clone();
        deleted.merge(&a.delete(a.context()));
        // Node 0 stopped after "k3"; node 1 has everything up to "k5".
        let pages = [
            page(&[("k1", &a), ("k2", &deleted), ("k3", &a)], true),
            page(&[("k1", &b), ("k2", &a), ("k4", &b), ("k5", &b)], false),
        ];
        let merged = merge_pages(&pages, 10);
        let keys: Vec<&str> = merged.entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["k1", "k3"], "k2 is deleted, k4 and k5 are past k3");
        assert_eq!(merged.entries[0].1, ab, "both nodes' writes of k1");
        assert_eq!(merged.cursor.as_deref(), Some("k3"));
        // The limit cuts the page and moves the cursor.
        let merged = merge_pages(&pages, 1);
        assert_eq!(merged.entries.len(), 1);
        assert_eq!(merged.cursor.as_deref(), Some("k1"));
        // Without a cut, every key, and no cursor.
        let done = [page(&[("k4", &b), ("k5", &b)], false), page(&[], false)];
        let merged = merge_pages(&done, 10);
        assert_eq!(merged.entries.len(), 2);
        assert_eq!(merged.cursor, None);
        // Only tombstones up to the cut: an empty page that goes on.
        let gone = [page(&[("k2", &deleted)], true)];
        let merged = merge_pages(&gone, 10);
        assert!(merged.entries.is_empty());
        assert_eq!(merged.cursor.as_deref(), Some("k2"));
    }

    #[test]
    fn node_pages_say_whether_more_follow() {
        let rows = |n: usize| -> Vec<(String, Value)> {
            (0..n)
                .map(|i| (format!("kv:k{i}"), Value::Register(register(0, "x", 1))))
                .collect()
        };
        let p = NodePage::new(rows(3), 2);
        assert_eq!((p.entries.len(), p.more), (2, true));
        let p = NodePage::new(rows(2), 2);
        assert_eq!((p.entries.len(), p.more), (2, false));
        let big = Value::Register(register(0, &"x".repeat(600 << 10), 1));
        let p = NodePage::new(vec![("kv:a".into(), big.clone()), ("kv:b".into(), big)], 5);
        assert_eq!((p.entries.len(), p.more), (1, true), "cut at PAGE_BYTES");
    }

    #[test]
    fn replies_in_both_formats() {
        let mut reg = register(0, "old", 5);
        reg.merge(&register(1, "new", 9));
        let json: serde_json::Value =
            serde_json::from_slice(&reply(Format::Json, "k", NodeId(2), &reg, true)).unwrap();
        assert_eq!(json["siblings"].as_array().unwrap().len(), 1);
        assert_eq!(json["siblings"][0]["value"], "new");
        assert_eq!(json["node"], "node-2");
        let wire: RegisterWire = codec::decode(
            &reply(Format::Postcard, "k", NodeId(2), &reg, false),
            1 << 16,
        )
        .unwrap();
        assert_eq!(wire.siblings.len(), 2);
        assert_eq!(&wire.context, reg.context());
    }

    #[test]
    fn deletes_and_listings() {
        let limits = Limits::default();
        assert_eq!(parse_delete(Format::Json, b""), Ok(None));
        assert_eq!(parse_delete(Format::Json, b"{}"), Ok(None));
        assert_eq!(
            parse_delete(Format::Json, br#"{"context": "%"}"#)
                .unwrap_err()
                .error,
            "bad_context"
        );
        let page = parse_listing(Some("user:"), Some("10"), None, &limits).unwrap();
        assert_eq!((page.prefix.as_str(), page.limit), ("user:", 10));
        assert_eq!(
            parse_listing(None, Some("0"), None, &limits)
                .unwrap_err()
                .error,
            "bad_limit"
        );
        assert_eq!(
            parse_listing(Some("a b"), None, None, &limits)
                .unwrap_err()
                .error,
            "bad_prefix"
        );
    }

    #[test]
    fn resolve_keeps_the_last_writer() {
        let none = CausalContext::default();
        let mut reg = MvRegister::default();
        reg.merge(&reg.write(at(NodeId(0), 5), &none, Payload::Text("old".into())));
        reg.merge(&reg.write(at(NodeId(1), 9), &none, Payload::Text("new".into())));
        let view = RegisterView::new("k", NodeId(2), &reg, true);
        assert_eq!(view.siblings.len(), 1);
        assert_eq!(view.siblings[0].value, ValueJson::Text("new".into()));
        assert_eq!(
            RegisterView::new("k", NodeId(2), &reg, false)
                .siblings
                .len(),
            2
        );
    }
}
