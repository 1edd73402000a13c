//! `/api/counters/:name`: read, increment, and (generic) events.
//!
//! ```
//! use edge_crdt::api::counter::parse_increment;
//! use edge_crdt::api::http::Format;
//! assert_eq!(parse_increment(Format::Json, b"{\"by\": -3}"), Ok(-3));
//! assert_eq!(parse_increment(Format::Json, b""), Ok(1));
//! assert_eq!(parse_increment(Format::Json, b"[5]").unwrap_err().error.as_str(), "bad_json");
//! assert_eq!(parse_increment(Format::Json, b"{\"by\": 0}").unwrap_err().error.as_str(), "by_out_of_range");
//! ```

use super::http::{
    check_body_size, json_object, postcard_body, Format, HttpRequest, Method, Reply,
};
use super::{named_object, Access, CacheUse, KindApi, Request, Secret, MAX_BODY};
use crate::codec;
use crate::crdt::PnCounter;
use crate::error::{ApiError, ErrorCode};
use crate::kinds::counter::{Counter, Op, Outcome};
use crate::kinds::Kind;
use crate::{NodeId, NodeMap};
use serde::{Deserialize, Serialize};

/// The largest step of one increment or decrement.
pub const MAX_STEP: i64 = 1_000_000;

/// The body of `POST /api/counters/:name/increment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Increment {
    /// how much to add; negative to subtract
    #[serde(default = "one")]
    pub by: i64,
}

fn one() -> i64 {
    1
}

/// Parses an increment body; an empty body means `by = 1`.
pub fn parse_increment(format: Format, body: &[u8]) -> Result<i64, ApiError> {
    check_body_size(body.len(), MAX_BODY)?;
    let by = if body.iter().all(u8::is_ascii_whitespace) {
        1
    } else {
        let what = "a valid increment, {\"by\": n}";
        match format {
            Format::Json => json_object::<Increment>(body, what)?.by,
            Format::Postcard => postcard_body::<Increment>(body, MAX_BODY, what)?.by,
        }
    };
    if by == 0 || !(-MAX_STEP..=MAX_STEP).contains(&by) {
        return Err(ApiError::new(
            ErrorCode::ByOutOfRange,
            format!("`by` must be a non-zero integer from -{MAX_STEP} to {MAX_STEP}, got {by}"),
        ));
    }
    Ok(by)
}

/// A counter as one node sees it: the JSON reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterView {
    /// the counter's name
    pub name: String,
    /// its value
    pub value: i64,
    /// the node that answered
    pub node: NodeId,
    /// each live node's net contribution
    pub contributions: NodeMap<i64>,
    /// retired nodes and the node each was folded into
    pub retired: NodeMap<NodeId>,
    /// the whole state: a postcard envelope in base64, for replicas
    pub state: String,
}

/// The postcard reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterReply {
    /// the counter's name
    pub name: String,
    /// its value
    pub value: i64,
    /// the node that answered
    pub node: NodeId,
    /// the whole state
    pub state: PnCounter,
}

/// Encodes the reply for `state` in `format`.
pub fn reply(format: Format, name: &str, node: NodeId, state: &PnCounter) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(&CounterView {
            name: name.to_owned(),
            value: state.value(),
            node,
            contributions: state.contributions(),
            retired: state.retired(),
            state: codec::state_to_base64(state),
        })
        .unwrap_or_default(),
        Format::Postcard => codec::encode(&CounterReply {
            name: name.to_owned(),
            value: state.value(),
            node,
            state: state.clone(),
        }),
    }
}

/// The name, for the reply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    name: String,
}

impl KindApi for Counter {
    const ROUTE: &'static str = "counters";
    const EVENTS: Option<&'static str> = Some("events");
    type View = View;

    fn preflight(req: &HttpRequest, path: &[&str]) -> Result<(usize, Option<Secret>), ApiError> {
        match path {
            [_] => expect(req, &["GET"]).map(|_| (0, None)),
            [_, "increment"] => expect(req, &["POST"]).map(|_| (MAX_BODY, None)),
            _ => Err(ApiError::not_found(&req.path)),
        }
    }

    fn access(op: &Op) -> Access {
        match op {
            Op::Read => Access::Open,
            // a visit: what the public page does
            Op::Increment { by: 1 } => Access::Write,
            Op::Increment { .. } => Access::Privileged,
        }
    }

    fn parse(
        req: &HttpRequest,
        name: Option<&str>,
        rest: &[&str],
    ) -> Result<Request<Self>, ApiError> {
        let object = named_object(Self::PREFIX, req, name)?;
        let view = View {
            name: object.name().to_owned(),
        };
        let op = match rest {
            [] => Op::Read,
            ["increment"] => Op::Increment {
                by: parse_increment(req.format()?, &req.body)?,
            },
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
        Ok(Reply::ok(
            format,
            reply(format, &view.name, o.node, &o.state),
        ))
    }
}

/// 405 unless the method is one of `allowed`, naming them.
pub(crate) fn expect(req: &HttpRequest, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.iter().any(|m| Method::parse(m) == req.method) {
        return Ok(());
    }
    Err(ApiError::method(req.method.as_str(), allowed))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn only_a_visit_is_an_anonymous_write() {
        assert_eq!(Counter::access(&Op::Read), Access::Open);
        assert_eq!(Counter::access(&Op::Increment { by: 1 }), Access::Write);
        for by in [2, -1, -MAX_STEP, MAX_STEP] {
            assert_eq!(Counter::access(&Op::Increment { by }), Access::Privileged);
        }
    }

    #[test]
    fn rejects_bad_bodies() {
        let err = |body: &[u8]| parse_increment(Format::Json, body).unwrap_err();
        assert_eq!(err(b"{").error, ErrorCode::BadJson);
        assert!(err(b"{\"by\": 1, \"x\": 2}")
            .message
            .contains("unknown field"));
        assert_eq!(err(b"{\"by\": 1.5}").error, ErrorCode::BadJson);
        assert_eq!(
            err(b"[5]").error,
            ErrorCode::BadJson,
            "an array is not an increment"
        );
        assert_eq!(err(b"{\"by\": 1000001}").error, ErrorCode::ByOutOfRange);
        // Found by the fuzzer: `abs` of the least i64 overflowed (a panic
        // in debug; in release it stayed negative and passed the check).
        assert_eq!(
            err(b"{\"by\": -9223372036854775808}").error,
            ErrorCode::ByOutOfRange
        );
        let least = codec::encode(&Increment { by: i64::MIN });
        let e = parse_increment(Format::Postcard, &least).unwrap_err();
        assert_eq!(e.error, ErrorCode::ByOutOfRange);
        assert_eq!(err(&vec![b' '; 5000]).status(), 413);
        let e = parse_increment(Format::Postcard, &[7, 1]).unwrap_err();
        assert_eq!(e.error, ErrorCode::BadPostcard);
        let body = codec::encode(&Increment { by: -7 });
        assert_eq!(parse_increment(Format::Postcard, &body), Ok(-7));
    }

    #[test]
    fn routes_and_methods() {
        let req = HttpRequest::new(Method::Other("PROPFIND".into()), "/api/counters/a");
        let e = Counter::preflight(&req, &["a"]).unwrap_err();
        assert_eq!((e.status(), e.message.contains("use GET")), (405, true));
        assert_eq!(e.allow.as_deref(), Some("GET"), "the Allow header");
        let req = HttpRequest::new(Method::Get, "/api/counters/a/increment");
        assert_eq!(
            Counter::preflight(&req, &["a", "increment"])
                .unwrap_err()
                .status(),
            405
        );
        let req = HttpRequest::new(Method::Post, "/api/counters/has%20space/increment");
        let e = Counter::parse(&req, Some("has%20space"), &["increment"])
            .err()
            .unwrap();
        assert_eq!(e.error, ErrorCode::BadName);
    }
}
