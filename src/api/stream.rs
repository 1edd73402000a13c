//! The event-stream endpoints, `/api/streams/…`: append, heads, one event
//! (JSON, or its DAG-CBOR block), queries in the total order, several
//! topics at once, the node's arrival order for followers, the topic as a
//! CAR file, and (generic) server-sent events under `live`.
//!
//! In JSON, nanosecond timestamps are decimal strings (as proto3 JSON
//! writes 64-bit integers: JavaScript numbers lose them); a request may
//! give them as numbers too. Messages are bytes: `message` is their UTF-8
//! text (null if they are not UTF-8) and `message_base64` their base64.

use super::counter::expect;
use super::http::{check_body_size, json_object, postcard_body, Format, HttpRequest, Reply};
use super::{named_object, Access, CacheUse, KindApi, Request, Secret};
use crate::codec;
use crate::crdt::stream::{Cid, Event, IdText};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::stream::ops::{Direction, Op, Outcome, Page, Query, MAX_PAGE, MAX_TOPICS};
use crate::kinds::stream::{Stream, LIMITS};
use crate::kinds::Kind;
use crate::NodeId;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

mod json;

pub use json::{EventJson, Nanos};

/// The largest append body (a message's limit, escaped in JSON).
pub const MAX_APPEND_BODY: usize = 6 * LIMITS.max_message;
/// The largest multi-topic query body.
pub const MAX_QUERY_BODY: usize = 16 << 10;
/// The page a query gets without `limit`.
pub const DEFAULT_PAGE: usize = 100;
/// The media type of a raw block.
pub const DAG_CBOR: &str = "application/vnd.ipld.dag-cbor";
/// The media type of a CAR file.
pub const CAR: &str = "application/vnd.ipld.car";

fn bad(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

/// How to show an outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// `Accept: application/vnd.ipld.dag-cbor`: the raw block
    pub block: bool,
    /// a multi-topic query, which every node answered
    pub batch: bool,
}

/// An append in JSON: a message as text or as base64, and a timestamp.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendJson {
    message: Option<String>,
    message_base64: Option<String>,
    timestamp_ns: Option<Nanos>,
}

/// An append in postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendPostcard {
    /// the message
    pub message: ByteBuf,
    /// its timestamp, if not now
    pub timestamp_ns: Option<u64>,
}

fn parse_append(req: &HttpRequest) -> Result<Op, ApiError> {
    check_body_size(req.body.len(), MAX_APPEND_BODY)?;
    let (message, timestamp_ns) = match req.format()? {
        Format::Json => {
            let expected =
                r#"{"message": "<text>"} or {"message_base64": "…"}, with "timestamp_ns"?"#;
            let body: AppendJson = json_object(&req.body, expected)?;
            let message = match (body.message, body.message_base64) {
                (Some(text), None) => text.into_bytes(),
                (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| bad(ErrorCode::BadValue, format!("message_base64: {e}")))?,
                _ => {
                    let e =
                        format!("expected {expected}: give exactly one of message, message_base64");
                    return Err(bad(ErrorCode::BadJson, e));
                }
            };
            (message, body.timestamp_ns.map(|n| n.0))
        }
        Format::Postcard => {
            let body: AppendPostcard = postcard_body(&req.body, MAX_APPEND_BODY, "an append")?;
            (body.message.into_vec(), body.timestamp_ns)
        }
    };
    if message.len() > LIMITS.max_message {
        let e = format!(
            "a message holds at most {} bytes, not {}",
            LIMITS.max_message,
            message.len()
        );
        return Err(bad(ErrorCode::ValueTooLarge, e));
    }
    Ok(Op::Append {
        message: ByteBuf::from(message),
        timestamp_ns,
    })
}

/// A content id from the API, or 400 with `code`.
pub fn parse_cid(text: &str, code: ErrorCode) -> Result<Cid, ApiError> {
    let clipped: String = text.chars().take(80).collect();
    let cid = Cid::from_text(text)
        .ok_or_else(|| bad(code, format!("`{clipped}` is not a content id in base32")))?;
    if !crate::crdt::stream::is_event_id(&cid) {
        return Err(bad(
            code,
            format!("`{clipped}` is not a DAG-CBOR sha2-256 CIDv1"),
        ));
    }
    Ok(cid)
}

/// The fields of a query, as text (from a URL or a JSON body).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryJson {
    /// the topic (in a multi-topic query)
    #[serde(default)]
    pub topic: Option<String>,
    /// earliest timestamp
    pub start_time_ns: Option<Nanos>,
    /// latest timestamp
    pub end_time_ns: Option<Nanos>,
    /// most events
    pub limit: Option<usize>,
    /// `ascending` or `descending`
    pub direction: Option<String>,
    /// the cursor a page gave
    pub cursor: Option<String>,
}

impl QueryJson {
    fn of_url(req: &HttpRequest) -> Result<QueryJson, ApiError> {
        let nanos = |name: &str| {
            req.query(name)
                .map(|t| {
                    Nanos::parse(t).map_err(|e| bad(ErrorCode::BadTime, format!("{name}: {e}")))
                })
                .transpose()
        };
        let limit = req
            .query("limit")
            .map(|t| t.parse::<usize>().map_err(|_| limit_error(t)))
            .transpose()?;
        Ok(QueryJson {
            topic: None,
            start_time_ns: nanos("start_time_ns")?,
            end_time_ns: nanos("end_time_ns")?,
            limit,
            direction: req.query("direction").map(str::to_owned),
            cursor: req.query("cursor").map(str::to_owned),
        })
    }

    fn parse(&self) -> Result<Query, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(limit_error(&limit.to_string()));
        }
        let direction = match self.direction.as_deref() {
            None | Some("ascending" | "asc") => Direction::Ascending,
            Some("descending" | "desc") => Direction::Descending,
            Some(other) => {
                let e = format!(
                    "direction is ascending or descending, not `{}`",
                    clip(other)
                );
                return Err(bad(ErrorCode::BadDirection, e));
            }
        };
        let (start, end) = (
            self.start_time_ns.map(|n| n.0),
            self.end_time_ns.map(|n| n.0),
        );
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return Err(bad(
                    ErrorCode::BadTime,
                    format!("start_time_ns {s} is after end_time_ns {e}"),
                ));
            }
        }
        let cursor = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => Some(parse_cid(c, ErrorCode::InvalidCursor)?),
            None => None,
        };
        Ok(Query {
            start_time_ns: start,
            end_time_ns: end,
            limit,
            direction,
            cursor,
        })
    }
}

fn limit_error(text: &str) -> ApiError {
    bad(
        ErrorCode::BadLimit,
        format!("`limit` is 1 to {MAX_PAGE}, not `{}`", clip(text)),
    )
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A multi-topic query: one query per topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchJson {
    queries: Vec<QueryJson>,
}

fn parse_batch(req: &HttpRequest) -> Result<Op, ApiError> {
    check_body_size(req.body.len(), MAX_QUERY_BODY)?;
    let queries: Vec<(String, Query)> = match req.format()? {
        Format::Json => {
            let expected = r#"{"queries": [{"topic": "…", "start_time_ns"?, "end_time_ns"?, "limit"?, "direction"?, "cursor"?}]}"#;
            let body: BatchJson = json_object(&req.body, expected)?;
            body.queries
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    let topic = q.topic.clone().ok_or_else(|| {
                        bad(ErrorCode::BadJson, format!("queries[{i}] names no topic"))
                    })?;
                    Ok((topic, q.parse()?))
                })
                .collect::<Result<_, ApiError>>()?
        }
        Format::Postcard => postcard_body(&req.body, MAX_QUERY_BODY, "a list of (topic, query)")?,
    };
    if queries.is_empty() || queries.len() > MAX_TOPICS {
        let e = format!(
            "a query names 1 to {MAX_TOPICS} topics, not {}",
            queries.len()
        );
        return Err(bad(ErrorCode::BadBatch, e));
    }
    for (topic, _) in &queries {
        crate::engine::ObjectId::new(<Stream as Kind>::PREFIX, topic).map_err(|e| {
            bad(
                ErrorCode::BadName,
                format!("topic `{}`: {}", clip(topic), e.0),
            )
        })?;
    }
    Ok(Op::Batch(queries))
}

fn parse_log(req: &HttpRequest) -> Result<Op, ApiError> {
    let after = match req.query("after") {
        None => 0,
        Some(t) => t.parse().map_err(|_| {
            bad(
                ErrorCode::BadCursor,
                format!("`after` is a log number, not `{}`", clip(t)),
            )
        })?,
    };
    let limit = match req.query("limit") {
        None => DEFAULT_PAGE,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(limit_error(t)),
        },
    };
    Ok(Op::Log { after, limit })
}

impl KindApi for Stream {
    const ROUTE: &'static str = "streams";
    const EVENTS: Option<&'static str> = Some("live");
    type View = View;

    fn preflight(req: &HttpRequest, path: &[&str]) -> Result<(usize, Option<Secret>), ApiError> {
        match path {
            ["query"] => expect(req, &["POST"]).map(|_| (MAX_QUERY_BODY, None)),
            [_, "events"] => expect(req, &["GET", "POST"]).map(|_| (MAX_APPEND_BODY, None)),
            [_, "events", _] | [_, "heads" | "log" | "export.car"] => {
                expect(req, &["GET"]).map(|_| (0, None))
            }
            _ => Err(ApiError::not_found(&req.path)),
        }
    }

    fn access(op: &Op) -> Access {
        match op {
            Op::Append { .. } => Access::Write,
            Op::Heads | Op::Get(_) | Op::Query(_) | Op::Batch(_) | Op::Log { .. } | Op::Export => {
                Access::Open
            }
        }
    }

    fn parse(
        req: &HttpRequest,
        name: Option<&str>,
        rest: &[&str],
    ) -> Result<Request<Self>, ApiError> {
        if name == Some("query") && rest.is_empty() {
            let view = View {
                block: false,
                batch: true,
            };
            return Ok(Request {
                object: None,
                op: parse_batch(req)?,
                view,
                cache: CacheUse::Skip,
            });
        }
        let object = named_object(Self::PREFIX, req, name)?;
        let mut view = View::default();
        let op = match rest {
            ["events"] if req.method == super::http::Method::Post => parse_append(req)?,
            ["events"] => Op::Query(QueryJson::of_url(req)?.parse()?),
            ["events", cid] => {
                view.block = req.accept.as_deref().is_some_and(|a| a.contains(DAG_CBOR));
                Op::Get(parse_cid(cid, ErrorCode::BadCid)?)
            }
            ["heads"] => Op::Heads,
            ["log"] => parse_log(req)?,
            ["export.car"] => Op::Export,
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
        let format = req.format()?;
        if view.batch {
            return json::batch_reply(format, outcomes);
        }
        let Some((_, Some(outcome))) = outcomes.into_iter().next() else {
            return Err(bad(ErrorCode::Unavailable, "the node did not answer"));
        };
        json::reply(format, view, outcome)
    }
}

/// The event in a block, for JSON (a stored block always decodes).
pub(crate) fn event_of(block: &[u8]) -> Option<Event> {
    serde_ipld_dagcbor::from_slice(block).ok()
}

/// What a page shows in JSON.
pub(crate) fn page_json(node: Option<NodeId>, page: &Page) -> json::PageJson {
    json::PageJson {
        node,
        events: page
            .events
            .iter()
            .filter_map(|(id, b)| EventJson::of(id, b))
            .collect(),
        cursor: page.cursor.map(|c| c.text()),
    }
}

/// An outcome in postcard.
pub(crate) fn postcard(outcome: &Outcome) -> Reply {
    Reply::ok(Format::Postcard, codec::encode(outcome))
}
