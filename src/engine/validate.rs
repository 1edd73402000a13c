//! Peer frames from the wire: decoded, bounded and checked before a node
//! sees them. A frame that fails any check is refused whole, and nothing
//! of it is stored. The Durable Object host and the simulator both open
//! every frame here.
//!
//! ```
//! use edge_crdt::codec;
//! use edge_crdt::engine::{open_frame, Frame, FrameError, Message};
//! use edge_crdt::kinds::CATALOG;
//! use edge_crdt::NodeId;
//! let frame = Frame { from: NodeId(1), sent: 1_000, message: Message::Digest { root: 7 } };
//! let bytes = codec::encode(&frame);
//! assert_eq!(open_frame(&bytes, CATALOG, 1_500, 30_000), Ok(frame));
//! assert!(matches!(open_frame(&bytes, CATALOG, 40_000, 30_000), Err(FrameError::Stale { .. })));
//! assert!(matches!(open_frame(&[1, 99], CATALOG, 1_500, 30_000), Err(FrameError::Decode(_))));
//! ```

use super::kind::Catalog;
use super::leaves::BUCKET_LEAVES;
use super::message::{Frame, RowStates};
use super::{Leaf, Membership, Message, ObjectId, LEAVES, MAX_ROW_KEY};
use crate::codec::{self, DecodeError, MAX_FRAME};
use crate::NodeId;
use std::fmt;

/// Why a peer frame was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes are not a frame.
    Decode(DecodeError),
    /// A frame that breaks a rule: what was wrong.
    Invalid(String),
    /// Older than the limit: it could outlive a collected tombstone.
    Stale {
        /// how old it is, ms
        age_ms: u64,
        /// the limit, ms
        max_ms: u64,
    },
    /// From a node this node's partition cuts it off from: not taken, as
    /// a cut connection would not deliver it. The sender must count it
    /// failed ([`super::Engine::send_failed`]), so its rows wait in their
    /// buffer.
    Partitioned {
        /// the sender
        from: NodeId,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Decode(e) => write!(f, "not a frame: {e}"),
            FrameError::Invalid(why) => f.write_str(why),
            FrameError::Stale { age_ms, max_ms } => write!(
                f,
                "a frame sent {age_ms} ms ago is past the limit of {max_ms} ms"
            ),
            FrameError::Partitioned { from } => {
                write!(f, "a partition cuts this node off from {from}")
            }
        }
    }
}

/// Decodes a frame, refuses it if older than `max_age_ms` at `now`, and
/// checks its message.
pub fn open_frame(
    bytes: &[u8],
    catalog: &dyn Catalog,
    now: u64,
    max_age_ms: u64,
) -> Result<Frame, FrameError> {
    let frame: Frame = codec::decode(bytes, MAX_FRAME).map_err(FrameError::Decode)?;
    let age_ms = now.saturating_sub(frame.sent);
    if age_ms > max_age_ms {
        return Err(FrameError::Stale {
            age_ms,
            max_ms: max_age_ms,
        });
    }
    check(&frame.message, catalog).map_err(FrameError::Invalid)?;
    Ok(frame)
}

/// Decodes the replies a peer sent back, each checked.
pub fn open_replies(bytes: &[u8], catalog: &dyn Catalog) -> Result<Vec<Message>, FrameError> {
    let replies: Vec<Message> = codec::decode(bytes, MAX_FRAME).map_err(FrameError::Decode)?;
    for m in &replies {
        check(m, catalog).map_err(FrameError::Invalid)?;
    }
    Ok(replies)
}

/// Checks every object, row, leaf, membership and row state a message
/// names.
pub fn check(message: &Message, catalog: &dyn Catalog) -> Result<(), String> {
    let objects = |ids: &mut dyn Iterator<Item = &ObjectId>| -> Result<(), String> {
        for id in ids {
            known(id, catalog)?;
        }
        Ok(())
    };
    match message {
        Message::Gossip {
            members,
            rows,
            want,
        } => {
            members.as_ref().map_or(Ok(()), members_ok)?;
            states(rows, catalog)?;
            objects(&mut want.iter().map(|(o, _)| o))?;
            keys(want.iter().flat_map(|(_, rs)| rs.iter()))
        }
        Message::Buckets { members, buckets } => {
            members_ok(members)?;
            let max = (2 * LEAVES / BUCKET_LEAVES) as u16;
            match buckets.iter().find(|(b, _)| *b >= max) {
                Some((b, _)) => Err(format!("bucket {b} does not exist")),
                None => Ok(()),
            }
        }
        Message::Leaves { leaves, .. } => leaves_ok(leaves.iter().map(|(l, _)| *l)),
        Message::Objects { leaves } => {
            leaves_ok(leaves.iter().map(|(l, _)| *l))?;
            objects(&mut leaves.iter().flat_map(|(_, os)| os.iter().map(|(o, _)| o)))
        }
        Message::Rows { ranges } => {
            objects(&mut ranges.iter().map(|r| &r.object))?;
            keys(ranges.iter().flat_map(|r| r.rows.iter().map(|(k, _)| k)))
        }
        Message::Transfer {
            members,
            leaf,
            rows,
            ..
        } => {
            members_ok(members)?;
            leaves_ok(std::iter::once(*leaf))?;
            states(rows, catalog)
        }
        Message::Transferred { pages } => leaves_ok(pages.iter().map(|(l, _, _)| *l)),
        Message::Handoff { members } => members_ok(members),
        Message::Reap { rows, .. } | Message::Forget { rows } => {
            objects(&mut rows.iter().map(|(o, _, _)| o))?;
            keys(rows.iter().map(|(_, r, _)| r))
        }
        Message::Reaped {
            members, refused, ..
        } => {
            members_ok(members)?;
            objects(&mut refused.iter().map(|(o, _)| o))?;
            keys(refused.iter().map(|(_, r)| r))
        }
        Message::Sync { payloads } => payloads.iter().try_for_each(|(object, payload)| {
            let kind = catalog
                .row_type(object.prefix())
                .ok_or_else(|| format!("`{}` names no known kind", object.prefix()))?;
            kind.check_sync(payload)
                .map_err(|e| format!("{object} sync: {e}"))
        }),
        Message::Digest { .. } | Message::HandoffDone | Message::Same => Ok(()),
    }
}

fn known(id: &ObjectId, catalog: &dyn Catalog) -> Result<(), String> {
    match catalog.row_type(id.prefix()) {
        Some(_) => Ok(()),
        None => Err(format!("`{}` names no known kind", id.prefix())),
    }
}

fn members_ok(m: &Membership) -> Result<(), String> {
    m.validate().map_err(|e| e.to_string())
}

fn keys<'a>(mut rows: impl Iterator<Item = &'a String>) -> Result<(), String> {
    match rows.find(|r| r.len() > MAX_ROW_KEY) {
        Some(r) => Err(format!(
            "a row key of {} bytes is over the limit of {MAX_ROW_KEY}",
            r.len()
        )),
        None => Ok(()),
    }
}

fn leaves_ok(mut leaves: impl Iterator<Item = Leaf>) -> Result<(), String> {
    match leaves.find(|l| *l >= 2 * LEAVES) {
        Some(l) => Err(format!("leaf {l} does not exist")),
        None => Ok(()),
    }
}

fn states(rows: &RowStates, catalog: &dyn Catalog) -> Result<(), String> {
    for (object, states) in rows {
        let kind = catalog
            .row_type(object.prefix())
            .ok_or_else(|| format!("`{}` names no known kind", object.prefix()))?;
        keys(states.iter().map(|(r, _)| r))?;
        for (row, state) in states {
            if kind.locals().contains(&row.as_str()) {
                return Err(format!("{object} row `{row}` is local to each node"));
            }
            kind.check(row, state)
                .map_err(|e| format!("{object} row `{row}`: {e}"))?;
        }
    }
    Ok(())
}
