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
use crate::crdt::{CausalContext, Dot, MvRegister, Payload, Versioned};
use serde::{Deserialize, Serialize};

/// Size limits of keys and values, from configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// longest key, in bytes
    pub max_key: usize,
    /// largest value, in bytes (decoded, for base64 bytes)
    pub max_value: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key: 128,
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

/// Checks a key against the limits: the name rules, at most `max_key` bytes.
pub fn check_key(key: &str, limits: &Limits) -> Result<(), ApiError> {
    super::check_name(key)?;
    if key.len() > limits.max_key {
        return Err(ApiError::new(
            400,
            "bad_key",
            format!(
                "a key has at most {} bytes, this one has {}",
                limits.max_key,
                key.len()
            ),
        ));
    }
    Ok(())
}

/// A value as JSON: text, or bytes in base64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValueJson {
    /// `"value": "text"`
    Text(String),
    /// `"value": {"base64": "…"}`
    Bytes {
        /// the bytes, in standard base64
        base64: String,
    },
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
            let payload = match json.value {
                ValueJson::Text(t) => Payload::Text(t),
                ValueJson::Bytes { base64 } => {
                    Payload::Bytes(codec::from_base64(&base64, limits.max_value).map_err(|e| {
                        bad("bad_value", format!("`base64` is not a valid value: {e}"))
                    })?)
                }
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
        return Err(ApiError::new(
            413,
            "value_too_large",
            format!(
                "the value has {} bytes, the limit is {}",
                put.payload.len(),
                limits.max_value
            ),
        ));
    }
    Ok(put)
}

/// Parses the optional body of `DELETE /api/kv/:key`: the context to
/// replace, or `None` to delete whatever the node holds.
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
        Payload::Bytes(b) => ValueJson::Bytes {
            base64: codec::to_base64(b),
        },
    }
}

fn sibling(dot: &Dot, v: &Versioned) -> SiblingJson {
    SiblingJson {
        value: value_json(&v.payload),
        stamp: v.stamp,
        node: dot.node.to_string(),
    }
}

impl RegisterView {
    /// The view of `register` under `key` from `node`; with `resolve`, only
    /// the last writer's sibling.
    pub fn new(key: &str, node: crate::NodeId, register: &MvRegister, resolve: bool) -> Self {
        let siblings = if resolve {
            register
                .siblings()
                .max_by_key(|(dot, v)| (v.stamp, **dot))
                .map(|(d, v)| vec![sibling(d, v)])
                .unwrap_or_default()
        } else {
            register.siblings().map(|(d, v)| sibling(d, v)).collect()
        };
        RegisterView {
            key: key.to_owned(),
            node: node.to_string(),
            siblings,
            context: context_text(register.context()),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::Crdt;
    use crate::NodeId;

    #[test]
    fn writes_with_and_without_context() {
        let limits = Limits::default();
        let mut reg = MvRegister::default();
        reg.merge(&reg.write(
            NodeId(0),
            &CausalContext::default(),
            Payload::Text("a".into()),
            1,
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
        reg.merge(&reg.write(NodeId(0), &none, Payload::Text("old".into()), 5));
        reg.merge(&reg.write(NodeId(1), &none, Payload::Text("new".into()), 9));
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
