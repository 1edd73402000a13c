//! The JSON shapes of the event-stream API.

use super::{event_of, page_json, postcard, View, CAR, DAG_CBOR};
use crate::api::http::{Format, Reply};
use crate::crdt::stream::{Cid, IdText};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::stream::ops::{Outcome, Page};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// Nanoseconds: a decimal string in replies; a string or a number in
/// requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nanos(pub u64);

impl Nanos {
    /// Parses decimal digits.
    pub fn parse(text: &str) -> Result<Nanos, String> {
        let ok = !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit());
        match ok.then(|| text.parse()) {
            Some(Ok(n)) => Ok(Nanos(n)),
            _ => Err(format!(
                "nanoseconds are decimal digits (at most 2^64 - 1), not `{}`",
                text.chars().take(40).collect::<String>()
            )),
        }
    }
}

impl Serialize for Nanos {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Nanos {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Nanos, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(Nanos(n)),
            Either::Text(t) => Nanos::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// An event in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventJson {
    /// its content id
    pub cid: String,
    /// its topic
    pub topic: String,
    /// its timestamp
    pub timestamp_ns: Nanos,
    /// the message as UTF-8 text, if it is
    pub message: Option<String>,
    /// the message in base64
    pub message_base64: String,
    /// the ids it links
    pub links: Vec<String>,
}

impl EventJson {
    /// The JSON of a stored block.
    pub fn of(id: &Cid, block: &[u8]) -> Option<EventJson> {
        let e = event_of(block)?;
        Some(EventJson {
            cid: id.text(),
            topic: e.topic,
            timestamp_ns: Nanos(e.timestamp_ns),
            message: String::from_utf8(e.message.clone()).ok(),
            message_base64: crate::codec::to_base64(&e.message),
            links: e.links.iter().map(Cid::text).collect(),
        })
    }
}

fn texts(ids: &[Cid]) -> Vec<String> {
    ids.iter().map(Cid::text).collect()
}

/// A page in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageJson {
    /// the node that answered
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// the events, in the order asked
    pub events: Vec<EventJson>,
    /// the cursor of the next page, if more follow
    pub cursor: Option<String>,
}

#[derive(Serialize)]
struct Appended {
    node: NodeId,
    cid: String,
    links: Vec<String>,
    heads: Vec<String>,
}

#[derive(Serialize)]
struct Heads {
    node: NodeId,
    heads: Vec<String>,
}

#[derive(Serialize)]
struct OneEvent {
    node: NodeId,
    event: EventJson,
}

#[derive(Serialize)]
struct Entry {
    seq: u64,
    cid: String,
    block: String,
}

#[derive(Serialize)]
struct Log {
    node: NodeId,
    entries: Vec<Entry>,
    more: bool,
}

/// The reply to one node's outcome.
pub(super) fn reply(format: Format, view: View, outcome: Outcome) -> Result<Reply, ApiError> {
    let b64 = crate::codec::to_base64;
    Ok(match outcome {
        Outcome::Event(_, cid, None) => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("the topic holds no event {}", cid.text()),
            ));
        }
        Outcome::Event(_, _, Some(block)) if view.block => Reply {
            status: 200,
            content_type: DAG_CBOR,
            body: block.into_vec(),
        },
        Outcome::Car(_, bytes) => Reply {
            status: 200,
            content_type: CAR,
            body: bytes.into_vec(),
        },
        o if format == Format::Postcard => postcard(&o),
        Outcome::Appended {
            node,
            cid,
            links,
            heads,
        } => Reply::json(&Appended {
            node,
            cid: cid.text(),
            links: texts(&links),
            heads: texts(&heads),
        }),
        Outcome::Heads(node, heads) => Reply::json(&Heads {
            node,
            heads: texts(&heads),
        }),
        Outcome::Event(node, cid, Some(block)) => {
            let event = EventJson::of(&cid, &block).ok_or_else(|| {
                ApiError::new(ErrorCode::Internal, "a stored block does not decode")
            })?;
            Reply::json(&OneEvent { node, event })
        }
        Outcome::Page(node, page) => Reply::json(&page_json(Some(node), &page)),
        Outcome::Log(node, entries, more) => Reply::json(&Log {
            node,
            entries: entries
                .iter()
                .map(|(seq, id, b)| Entry {
                    seq: *seq,
                    cid: id.text(),
                    block: b64(b),
                })
                .collect(),
            more,
        }),
        Outcome::Batch(..) => {
            return Err(ApiError::new(
                ErrorCode::Internal,
                "a batch outcome for one topic",
            ))
        }
    })
}

/// One topic's result of a multi-topic query.
#[derive(Serialize)]
struct TopicResult {
    topic: String,
    #[serde(flatten)]
    page: Option<PageJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ApiError>,
}

#[derive(Serialize)]
struct BatchJson {
    results: Vec<TopicResult>,
}

/// A replica's answer for one topic.
pub type Answer = (NodeId, Result<Page, ApiError>);

/// The answers of every node to a multi-topic query: per topic, the first
/// replica's.
pub(super) fn batch_reply(
    format: Format,
    outcomes: Vec<(NodeId, Option<Outcome>)>,
) -> Result<Reply, ApiError> {
    let mut results: Vec<(String, Option<Answer>)> = Vec::new();
    for (_, outcome) in outcomes {
        let Some(Outcome::Batch(node, pages)) = outcome else {
            continue;
        };
        if results.is_empty() {
            results = pages.iter().map(|(t, _)| (t.clone(), None)).collect();
        }
        for ((_, slot), (_, answer)) in results.iter_mut().zip(pages) {
            if slot.is_none() {
                *slot = answer.map(|a| (node, a));
            }
        }
    }
    if results.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "no node answered the query",
        ));
    }
    if format == Format::Postcard {
        return Ok(Reply::ok(Format::Postcard, crate::codec::encode(&results)));
    }
    let results = results
        .into_iter()
        .map(|(topic, answer)| match answer {
            Some((node, Ok(page))) => TopicResult {
                topic,
                page: Some(page_json(Some(node), &page)),
                error: None,
            },
            Some((_, Err(e))) => TopicResult {
                topic,
                page: None,
                error: Some(e),
            },
            None => TopicResult {
                topic,
                page: None,
                error: Some(ApiError::new(
                    ErrorCode::Unavailable,
                    "no replica of the topic answered",
                )),
            },
        })
        .collect();
    Ok(Reply::json(&BatchJson { results }))
}
