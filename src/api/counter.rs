//! The counter endpoints' bodies.
//!
//! ```
//! use edge_crdt::api::{counter::parse_increment, Format};
//! assert_eq!(parse_increment(Format::Json, b"{\"by\": -3}"), Ok(-3));
//! assert_eq!(parse_increment(Format::Json, b""), Ok(1));
//! assert_eq!(parse_increment(Format::Json, b"{\"by\": 0}").unwrap_err().error, "by_out_of_range");
//! ```

use super::{check_body_size, ApiError, Format};
use crate::codec;
use crate::crdt::PnCounter;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    check_body_size(body.len(), super::MAX_BODY)?;
    let by = if body.iter().all(u8::is_ascii_whitespace) {
        1
    } else {
        match format {
            Format::Json => {
                serde_json::from_slice::<Increment>(body)
                    .map_err(|e| {
                        ApiError::new(
                            400,
                            "bad_json",
                            format!("the body is not a valid increment: {e}"),
                        )
                    })?
                    .by
            }
            Format::Postcard => {
                codec::decode::<Increment>(body, super::MAX_BODY)
                    .map_err(|e| {
                        ApiError::new(
                            400,
                            "bad_postcard",
                            format!("the body is not a valid increment: {e}"),
                        )
                    })?
                    .by
            }
        }
    };
    if by == 0 || by.abs() > MAX_STEP {
        return Err(ApiError::new(
            400,
            "by_out_of_range",
            format!("`by` must be a non-zero integer from -{MAX_STEP} to {MAX_STEP}, got {by}"),
        ));
    }
    Ok(by)
}

/// A counter as one node sees it: the JSON reply of the counter endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterView {
    /// the counter's name
    pub name: String,
    /// its value
    pub value: i64,
    /// the node that answered
    pub node: String,
    /// each live node's net contribution
    pub contributions: BTreeMap<String, i64>,
    /// retired nodes and the node each was folded into
    pub retired: BTreeMap<String, String>,
    /// the whole state: a postcard envelope in base64, for replicas
    pub state: String,
}

impl CounterView {
    /// The view of `state` from `node`.
    pub fn new(name: &str, node: NodeId, state: &PnCounter) -> Self {
        CounterView {
            name: name.to_owned(),
            value: state.value(),
            node: node.to_string(),
            contributions: state
                .contributions()
                .into_iter()
                .map(|(id, v)| (id.to_string(), v))
                .collect(),
            retired: state
                .retired()
                .into_iter()
                .map(|(gone, heir)| (gone.to_string(), heir.to_string()))
                .collect(),
            state: codec::state_to_base64(state),
        }
    }
}

/// The postcard reply of the counter endpoints.
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
        Format::Json => {
            serde_json::to_vec(&CounterView::new(name, node, state)).unwrap_or_default()
        }
        Format::Postcard => codec::encode(&CounterReply {
            name: name.to_owned(),
            value: state.value(),
            node,
            state: state.clone(),
        }),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rejects_bad_bodies() {
        let err = |body: &[u8]| parse_increment(Format::Json, body).unwrap_err();
        assert_eq!(err(b"{").error, "bad_json");
        assert!(err(b"{\"by\": 1, \"x\": 2}")
            .message
            .contains("unknown field"));
        assert_eq!(err(b"{\"by\": 1.5}").error, "bad_json");
        assert_eq!(err(b"{\"by\": 1000001}").error, "by_out_of_range");
        assert_eq!(err(&vec![b' '; 5000]).status, 413);
        assert_eq!(
            parse_increment(Format::Postcard, &[7, 1])
                .unwrap_err()
                .error,
            "bad_postcard"
        );
    }

    #[test]
    fn postcard_increment() {
        let body = codec::encode(&Increment { by: -7 });
        assert_eq!(parse_increment(Format::Postcard, &body), Ok(-7));
    }
}
