//! An event of a stream topic and its content id. An event is `{topic,
//! timestamp_ns, message, links}`, `links` the ids of the heads its node
//! knew. Its id is a CIDv1: the event encoded as deterministic DAG-CBOR
//! (codec `0x71`, links as tag-42 CID links, map keys in canonical order),
//! hashed with sha2-256. Any IPLD library decodes the block and can check
//! its hash.
//!
//! ```
//! use edge_crdt::crdt::stream::{Event, IdText, Limits};
//! let first = Event::new("chat", 1_000, b"hello".to_vec(), Vec::new());
//! let block = first.encode();
//! let id = first.id();
//! assert_eq!(id.text().get(..4), Some("bafy"));
//! let back = Event::from_block(&block, Some(&id), &Limits::default(), u64::MAX).unwrap();
//! assert_eq!(back, first);
//! ```

use super::text::IdText;
use cid::Cid;
use multihash::Multihash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The DAG-CBOR multicodec.
pub const DAG_CBOR: u64 = 0x71;
/// The sha2-256 multihash code.
pub const SHA2_256: u64 = 0x12;

/// An event of a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// the topic's name
    pub topic: String,
    /// when the node that took it says it happened, in nanoseconds
    pub timestamp_ns: u64,
    /// the client's bytes
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
    /// the heads its node knew, sorted, without repeats
    pub links: Vec<Cid>,
}

/// What an arriving event may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// most links
    pub max_links: usize,
    /// most message bytes
    pub max_message: usize,
    /// how far past the receiver's clock a timestamp may be, in ns
    pub max_skew_ns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_links: 64,
            max_message: 16 * 1024,
            max_skew_ns: 60_000_000_000,
        }
    }
}

/// Why an event was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadEvent {
    /// The bytes are not a DAG-CBOR event, or not in canonical form.
    Malformed(String),
    /// The bytes hash to another id than the one claimed.
    WrongId {
        /// the id claimed
        claimed: String,
        /// the id of the bytes
        actual: String,
    },
    /// A link that is not a DAG-CBOR sha2-256 CIDv1.
    BadLink(String),
    /// More links than allowed.
    TooManyLinks(usize),
    /// A longer message than allowed.
    TooLarge(usize),
    /// Stamped further ahead of the receiver's clock than allowed, by ns.
    Ahead(u64),
    /// The event is not of this topic.
    OtherTopic(String),
}

impl fmt::Display for BadEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadEvent::Malformed(why) => write!(f, "not a DAG-CBOR event: {why}"),
            BadEvent::WrongId { claimed, actual } => {
                write!(f, "the event's bytes hash to {actual}, not {claimed}")
            }
            BadEvent::BadLink(link) => {
                write!(f, "link {link} is not a DAG-CBOR sha2-256 CIDv1")
            }
            BadEvent::TooManyLinks(n) => write!(f, "{n} links are more than allowed"),
            BadEvent::TooLarge(n) => write!(f, "a {n}-byte message is larger than allowed"),
            BadEvent::Ahead(ns) => write!(f, "timestamp {ns} ns ahead of this node's clock"),
            BadEvent::OtherTopic(topic) => write!(f, "the event is of topic `{topic}`"),
        }
    }
}

/// The CIDv1 of a DAG-CBOR block.
pub fn block_id(block: &[u8]) -> Cid {
    let digest = Sha256::digest(block);
    let hash = Multihash::wrap(SHA2_256, &digest).expect("32 bytes fit a multihash");
    Cid::new_v1(DAG_CBOR, hash)
}

/// Whether `cid` can name an event: a CIDv1 of DAG-CBOR, sha2-256.
pub fn is_event_id(cid: &Cid) -> bool {
    cid.version() == cid::Version::V1
        && cid.codec() == DAG_CBOR
        && cid.hash().code() == SHA2_256
        && cid.hash().size() == 32
}

impl Event {
    /// An event; its links are sorted and deduplicated.
    pub fn new(topic: &str, timestamp_ns: u64, message: Vec<u8>, mut links: Vec<Cid>) -> Event {
        links.sort_unstable();
        links.dedup();
        Event {
            topic: topic.to_owned(),
            timestamp_ns,
            message,
            links,
        }
    }

    /// The event's block: deterministic DAG-CBOR.
    pub fn encode(&self) -> Vec<u8> {
        serde_ipld_dagcbor::to_vec(self).expect("an event always encodes")
    }

    /// The event's content id.
    pub fn id(&self) -> Cid {
        block_id(&self.encode())
    }

    /// Decodes and checks a block that arrived from a client or a peer:
    /// canonical DAG-CBOR, the id it claims (if any), links that are event
    /// ids, sorted and distinct, the limits, and a timestamp no more than
    /// the skew past `now_ns`.
    pub fn from_block(
        block: &[u8],
        claimed: Option<&Cid>,
        limits: &Limits,
        now_ns: u64,
    ) -> Result<Event, BadEvent> {
        let event: Event = serde_ipld_dagcbor::from_slice(block)
            .map_err(|e| BadEvent::Malformed(e.to_string()))?;
        if event.encode() != block {
            return Err(BadEvent::Malformed("not in canonical form".into()));
        }
        if let Some(claimed) = claimed {
            let actual = block_id(block);
            if actual != *claimed {
                return Err(BadEvent::WrongId {
                    claimed: claimed.text(),
                    actual: actual.text(),
                });
            }
        }
        event.check(limits, now_ns)?;
        Ok(event)
    }

    /// Checks the links and the limits.
    pub fn check(&self, limits: &Limits, now_ns: u64) -> Result<(), BadEvent> {
        if let Some(bad) = self.links.iter().find(|l| !is_event_id(l)) {
            return Err(BadEvent::BadLink(bad.text()));
        }
        if self.links.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BadEvent::Malformed("links not sorted and distinct".into()));
        }
        if self.links.len() > limits.max_links {
            return Err(BadEvent::TooManyLinks(self.links.len()));
        }
        if self.message.len() > limits.max_message {
            return Err(BadEvent::TooLarge(self.message.len()));
        }
        let ahead = self.timestamp_ns.saturating_sub(now_ns);
        if ahead > limits.max_skew_ns {
            return Err(BadEvent::Ahead(ahead));
        }
        Ok(())
    }
}
