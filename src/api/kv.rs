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
//! use edge_crdt::api::http::Format;
//! use edge_crdt::crdt::Payload;
//! let put = parse_put(Format::Json, br#"{"value": "hello"}"#, &Limits::default()).unwrap();
//! assert_eq!(put.payload, Payload::Text("hello".into()));
//! assert!(put.context.is_empty());
//! ```

use super::counter::expect;
use super::http::{check_body_size, json_object, postcard_body, Format, HttpRequest, Reply};
use super::kv_list::{self, Listing};
use super::{Access, CacheUse, KindApi, Request, Secret, MAX_BODY};
use crate::codec;
use crate::crdt::{CausalContext, Dot, MvRegister, Payload, Versioned};
use crate::engine::{ObjectId, MAX_NAME};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::register::{Op, Outcome, Register};
use crate::kinds::Kind;
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The prefix of every register's stored key: `kv:NAME`.
pub const KEY_PREFIX: &str = "kv:";

/// The longest key any configuration allows: the stored key `kv:NAME` must
/// stay within [`MAX_NAME`] bytes.
pub const MAX_KEY: usize = MAX_NAME - KEY_PREFIX.len();

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
            ErrorCode::BadKey,
            format!("a key has 1 to {max} bytes, this one has {}", key.len()),
        ));
    }
    crate::engine::check_name(key).map_err(|e| ApiError::new(ErrorCode::BadKey, e.0))
}

/// Decodes the percent-encoded key segment of `/api/kv/:key` and checks it
/// with [`check_key`].
pub fn parse_key(segment: &str, limits: &Limits) -> Result<String, ApiError> {
    let key = super::http::percent_decode(segment)
        .ok_or_else(|| ApiError::new(ErrorCode::BadKey, "the key is not valid percent-encoding"))?;
    check_key(&key, limits)?;
    Ok(key)
}

/// Parses `?resolve=`: absent for every sibling, `lww` for the last writer's.
pub fn parse_resolve(param: Option<&str>) -> Result<bool, ApiError> {
    match param {
        None => Ok(false),
        Some("lww") => Ok(true),
        Some(other) => Err(bad(
            ErrorCode::BadResolve,
            format!(
                "`resolve` is `lww` (or absent for every sibling), not `{}`",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

/// A value as JSON: text, or bytes in base64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ValueJson {
    /// `"value": "text"`
    Text(String),
    /// `"value": {"base64": "…"}`
    Bytes(Base64Json),
}

/// Read by what the JSON holds, a string or an object: serde's untagged
/// enums buffer the input and try each variant, which costs the Worker
/// kilobytes.
impl<'de> Deserialize<'de> for ValueJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = ValueJson;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a string or {"base64": "…"}"#)
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ValueJson, E> {
                Ok(ValueJson::Text(text.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ValueJson, A::Error> {
                let map = serde::de::value::MapAccessDeserializer::new(map);
                Base64Json::deserialize(map).map(ValueJson::Bytes)
            }
        }
        d.deserialize_any(Either)
    }
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

fn bad(error: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(error, message)
}

/// Decodes a client's opaque context.
pub fn parse_context(text: &str) -> Result<CausalContext, ApiError> {
    let bytes = codec::from_base64(text, codec::MAX_STATE).map_err(|e| {
        bad(
            ErrorCode::BadContext,
            format!("the context is not one this service gave out: {e}"),
        )
    })?;
    let context: CausalContext = codec::decode(&bytes, codec::MAX_STATE).map_err(|e| {
        bad(
            ErrorCode::BadContext,
            format!("the context is not one this service gave out: {e}"),
        )
    })?;
    context.validate().map_err(|e| {
        bad(
            ErrorCode::BadContext,
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
            let json: PutJson = json_object(
                body,
                r#"{"value": "text" | {"base64": "…"}, "context"?: "…"}"#,
            )?;
            let payload =
                match json.value {
                    ValueJson::Text(t) => Payload::Text(t),
                    ValueJson::Bytes(Base64Json { base64 }) => Payload::Bytes(
                        codec::from_base64(&base64, limits.max_value).map_err(|e| match e {
                            codec::DecodeError::TooLarge { len, max } => too_large(len, max),
                            e => bad(
                                ErrorCode::BadValue,
                                format!("`base64` is not valid base64: {e}"),
                            ),
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
            let wire: PutWire = postcard_body(body, limits.max_body(), "a value and a context")?;
            wire.context
                .validate()
                .map_err(|e| bad(ErrorCode::BadContext, e.0))?;
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
        ErrorCode::ValueTooLarge,
        format!("the value has {len} bytes, the limit is {max}"),
    )
}

/// Parses the optional body of `DELETE /api/kv/:key`: the context to
/// replace, or `None` (no body, only whitespace, `{}` or `{"context": null}`)
/// to delete whatever the answering replica holds: every sibling it has
/// seen. Writes it has not yet received (concurrent ones at other replicas)
/// survive as siblings.
pub fn parse_delete(format: Format, body: &[u8]) -> Result<Option<CausalContext>, ApiError> {
    check_body_size(body.len(), MAX_BODY)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match format {
        Format::Json => {
            let json: DeleteJson = json_object(body, r#"{"context"?: "…"}"#)?;
            json.context.as_deref().map(parse_context).transpose()
        }
        Format::Postcard => {
            let context: CausalContext = postcard_body(body, MAX_BODY, "a context")?;
            context
                .validate()
                .map_err(|e| bad(ErrorCode::BadContext, e.0))?;
            Ok(Some(context))
        }
    }
}

/// One sibling in a JSON reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SiblingJson {
    /// the value
    pub value: ValueJson,
    /// when it was written
    pub stamp: u64,
    /// the node that took the write
    pub node: NodeId,
}

/// `GET /api/kv/:key` as JSON: every sibling and the context to write with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterView {
    /// the key
    pub key: String,
    /// the node that answered
    pub node: NodeId,
    /// the live values; more than one after concurrent writes
    pub siblings: Vec<SiblingJson>,
    /// opaque: send it back with a write or delete to replace what this read saw
    pub context: String,
}

pub(crate) fn value_json(payload: &Payload) -> ValueJson {
    match payload {
        Payload::Text(t) => ValueJson::Text(t.clone()),
        Payload::Bytes(b) => ValueJson::Bytes(Base64Json {
            base64: codec::to_base64(b),
        }),
    }
}

pub(crate) fn sibling(dot: &Dot, v: &Versioned) -> SiblingJson {
    SiblingJson {
        value: value_json(&v.payload),
        stamp: v.stamp,
        node: dot.node,
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
            node,
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

/// How to show a register: its key, and whether only the last writer's
/// sibling.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    key: String,
    resolve: bool,
    listing: Option<Listing>,
}

impl KindApi for Register {
    const ROUTE: &'static str = "kv";
    const EVENTS: Option<&'static str> = None;
    type View = View;

    fn preflight(req: &HttpRequest, path: &[&str]) -> Result<(usize, Option<Secret>), ApiError> {
        match path {
            [] => expect(req, &["GET"]).map(|_| (0, None)),
            [_] => {
                expect(req, &["GET", "PUT", "DELETE"])?;
                let put = req.method == super::http::Method::Put;
                Ok((
                    if put {
                        req.settings.kv.max_body()
                    } else {
                        MAX_BODY
                    },
                    None,
                ))
            }
            _ => Err(ApiError::not_found(&req.path)),
        }
    }

    fn access(op: &Op) -> Access {
        match op {
            Op::Read | Op::List { .. } => Access::Open,
            Op::Put { .. } | Op::Delete { .. } => Access::Write,
        }
    }

    fn parse(
        req: &HttpRequest,
        name: Option<&str>,
        rest: &[&str],
    ) -> Result<Request<Self>, ApiError> {
        super::no_more(req, rest)?;
        let Some(segment) = name else {
            return kv_list::parse(req);
        };
        let limits = &req.settings.kv;
        let key = parse_key(segment, limits)?;
        let object = ObjectId::new(Self::PREFIX, &key).map_err(|e| bad(ErrorCode::BadKey, e.0))?;
        let format = req.format()?;
        let mut view = View {
            key,
            ..View::default()
        };
        let op = match req.method {
            super::http::Method::Put => {
                let Put { payload, context } = parse_put(format, &req.body, limits)?;
                Op::Put { payload, context }
            }
            super::http::Method::Delete => Op::Delete {
                context: parse_delete(format, &req.body)?,
            },
            _ => {
                view.resolve = parse_resolve(req.query("resolve"))?;
                Op::Read
            }
        };
        let cache = if op == Op::Read {
            CacheUse::Read
        } else {
            CacheUse::Purge
        };
        Ok(Request {
            object: Some(object),
            op,
            view,
            cache,
        })
    }

    fn reply(
        req: &HttpRequest,
        view: View,
        outcomes: Vec<(NodeId, Option<Outcome>)>,
    ) -> Result<Reply, ApiError> {
        let format = req.format()?;
        if let Some(listing) = &view.listing {
            return kv_list::reply(format, listing, outcomes);
        }
        match outcomes.into_iter().next() {
            Some((_, Some(Outcome::Register { node, state }))) => Ok(Reply::ok(
                format,
                reply(format, &view.key, node, &state, view.resolve),
            )),
            _ => Err(ApiError::new(
                ErrorCode::Unavailable,
                "the replica did not answer",
            )),
        }
    }
}

impl View {
    /// The view of a listing.
    pub(crate) fn listing(listing: Listing) -> View {
        View {
            listing: Some(listing),
            ..View::default()
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::{Crdt, Stamp};

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
            ErrorCode::BadContext
        );
        assert_eq!(err(r#"{"value": 3}"#).error, ErrorCode::BadJson);
        assert_eq!(
            err(r#"{"value": "x", "extra": 1}"#).error,
            ErrorCode::BadJson
        );
        assert_eq!(
            err(r#"["x"]"#).error,
            ErrorCode::BadJson,
            "an array is no body"
        );
        let big = format!(r#"{{"value": "{}"}}"#, "x".repeat(limits.max_value + 1));
        assert_eq!(err(&big).status(), 413);
        let bytes = codec::to_base64(&vec![7; limits.max_value + 1]);
        let big = err(&format!(r#"{{"value": {{"base64": "{bytes}"}}}}"#));
        assert_eq!((big.status(), big.error), (413, ErrorCode::ValueTooLarge));
        assert_eq!(
            err(r#"{"value": {"base64": "!!"}}"#).error,
            ErrorCode::BadValue
        );
        assert_eq!(
            err(r#"{"value": {"base64": "AA==", "extra": 1}}"#).error,
            ErrorCode::BadJson
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
                ErrorCode::BadKey,
                "{bad}"
            );
        }
        let small = Limits {
            max_key: 4,
            ..limits
        };
        assert!(parse_key("abcd", &small).is_ok());
        assert_eq!(parse_key("abcde", &small).unwrap_err().status(), 400);
        assert_eq!(parse_resolve(None), Ok(false));
        assert_eq!(parse_resolve(Some("lww")), Ok(true));
        assert_eq!(
            parse_resolve(Some("max")).unwrap_err().error,
            ErrorCode::BadResolve
        );
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
    fn deletes_take_no_body_or_an_object() {
        assert_eq!(parse_delete(Format::Json, b""), Ok(None));
        assert_eq!(parse_delete(Format::Json, b"{}"), Ok(None));
        let e = parse_delete(Format::Json, br#"{"context": "%"}"#).unwrap_err();
        assert_eq!(e.error, ErrorCode::BadContext);
        let e = parse_delete(Format::Json, b"[]").unwrap_err();
        assert_eq!(e.error, ErrorCode::BadJson, "[] deletes nothing");
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
