//! How a topic's replicas catch up with each other beyond gossip:
//!
//! - **Backfill**: an event whose links are missing here wakes the topic;
//!   the wake asks one replica (in turn) for the closure of the missing
//!   links above this node's complete frontier ([`Say::Want`]). The answer
//!   ([`Say::Blocks`]) holds all of it, oldest first, in one round trip,
//!   or as much as fits, naming what is left.
//! - **Dormant topics**: after its heads change, a node tells the other
//!   replicas its heads ([`Say::Heads`]), again after twice as long each
//!   time, until every one has answered with the same heads
//!   ([`Say::Same`]). A replica that lacks some asks for them; one that
//!   holds heads the sender lacks answers with its own.
//!
//! Every block is checked against its id before any of its frame is
//! handled ([`check`]).

use super::{event, ids, HEADS, MISSING};
use crate::crdt::stream::{Cid, Dag, IdText};
use crate::crdt::InvalidState;
use crate::engine::{RowKey, SyncCx};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeSet;

/// The local row of a topic's sync state ([`SyncState`]).
pub const SYNC: &str = "~sync";
/// The first rebroadcast of changed heads, ms after the change.
pub const REBROADCAST_MS: u64 = 2_000;
/// The longest wait between rebroadcasts of a dormant topic, ms.
pub const REBROADCAST_MAX_MS: u64 = 10 * 60_000;
/// How long links may stay missing before a backfill: what gossip has in
/// flight usually arrives first, and a backfill reads the whole topic.
pub const BACKFILL_DELAY_MS: u64 = 1_000;
/// The most block bytes in one answer: the rest is named for next time.
pub const ANSWER_BYTES: usize = 512 << 10;

/// What a topic's replica says to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Say {
    /// my heads; `answer`: reply with yours if they differ
    Heads {
        /// the sender's heads
        heads: Vec<Cid>,
        /// whether the receiver answers with its own heads
        answer: bool,
    },
    /// my heads are the ones you sent
    Same(Vec<Cid>),
    /// send everything reachable from `want` that is not `frontier` or
    /// below it
    Want {
        /// the ids wanted, with their pasts
        want: Vec<Cid>,
        /// the sender's complete frontier
        frontier: Vec<Cid>,
    },
    /// blocks by id, each after the ones it links; `rest`: the wanted ids
    /// whose pasts did not fit
    Blocks {
        /// ids and DAG-CBOR blocks
        blocks: Vec<(Cid, ByteBuf)>,
        /// asked for, not sent yet
        rest: Vec<Cid>,
    },
}

/// A topic's sync state at a node: the rebroadcast's backoff, the
/// replicas that reported the same heads, ids to fetch, and whom the
/// next backfill asks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// the wait before the next rebroadcast, ms (0: none yet)
    pub interval_ms: u64,
    /// replicas whose heads are this node's
    pub agreed: Vec<NodeId>,
    /// ids a replica named that this node lacks, with who named them
    pub pending: Vec<(NodeId, Cid)>,
    /// backfills asked so far: the next asks the next replica
    pub asked: u32,
    /// the next wake reads the whole topic and asks
    pub loading: bool,
}

fn state(cx: &SyncCx<'_>) -> SyncState {
    cx.local(SYNC)
        .and_then(|b| postcard::from_bytes(b).ok())
        .unwrap_or_default()
}

fn save(cx: &mut SyncCx<'_>, before: &SyncState, after: &SyncState) {
    if before != after {
        let bytes = postcard::to_allocvec(after).unwrap_or_default();
        cx.set_local(SYNC, (*after != SyncState::default()).then_some(bytes));
    }
}

fn encode(say: &Say) -> Vec<u8> {
    postcard::to_allocvec(say).unwrap_or_default()
}

fn cids(ids: &BTreeSet<String>) -> Vec<Cid> {
    ids.iter().filter_map(|id| Cid::from_text(id)).collect()
}

fn others(cx: &SyncCx<'_>) -> Vec<NodeId> {
    let me = cx.node();
    cx.replicas().into_iter().filter(|n| *n != me).collect()
}

/// After this node's heads or missing links changed: rebroadcast the
/// heads soon, and backfill what is missing.
pub(super) fn changed(cx: &mut SyncCx<'_>, heads_moved: bool, missing: bool) {
    let before = state(cx);
    let mut after = before.clone();
    if heads_moved {
        after.interval_ms = REBROADCAST_MS;
        after.agreed.clear();
        cx.wake_in(REBROADCAST_MS, false);
    }
    if missing {
        cx.wake_in(BACKFILL_DELAY_MS, false);
    }
    save(cx, &before, &after);
}

/// The wake: backfill what is missing or pending, rebroadcast the heads
/// to the replicas that have not agreed, and wake again later, twice as
/// late, while either has work.
pub(super) fn wake(cx: &mut SyncCx<'_>) {
    let before = state(cx);
    let mut st = before.clone();
    let others = others(cx);
    let missing = cids(&ids(cx.local(MISSING)));
    st.pending.retain(|(_, id)| cx.row(&id.text()).is_none());
    let backfill = !missing.is_empty() || !st.pending.is_empty();
    if backfill && !others.is_empty() {
        if !st.loading {
            // Still missing: read the whole topic at the next tick, then ask.
            st.loading = true;
            cx.wake_in(0, true);
            save(cx, &before, &st);
            return;
        }
        ask(cx, &mut st, &others, missing);
    }
    st.loading = false;
    let heads = cids(&ids(cx.local(HEADS)));
    let mut told = false;
    for peer in others.iter().filter(|p| !st.agreed.contains(p)) {
        let say = Say::Heads {
            heads: heads.clone(),
            answer: true,
        };
        cx.send(*peer, encode(&say));
        told = true;
    }
    if told || backfill {
        st.interval_ms = (st.interval_ms.max(REBROADCAST_MS / 2) * 2).min(REBROADCAST_MAX_MS);
        cx.wake_in(st.interval_ms, false);
    }
    save(cx, &before, &st);
}

/// Asks for the missing links (from the next replica in turn) and the
/// pending ids (from whoever named them), above the complete frontier.
fn ask(cx: &mut SyncCx<'_>, st: &mut SyncState, others: &[NodeId], missing: Vec<Cid>) {
    let frontier: Vec<Cid> = dag(cx).complete_frontier().into_iter().collect();
    let mut wants: Vec<(NodeId, Vec<Cid>)> = Vec::new();
    if !missing.is_empty() {
        let peer = others[st.asked as usize % others.len()];
        st.asked = st.asked.wrapping_add(1);
        wants.push((peer, missing));
    }
    for (peer, id) in std::mem::take(&mut st.pending) {
        match wants.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, w)) => w.push(id),
            None => wants.push((peer, vec![id])),
        }
    }
    for (peer, want) in wants {
        let frontier = frontier.clone();
        cx.send(peer, encode(&Say::Want { want, frontier }));
    }
}

/// The topic's loaded events as a DAG.
fn dag(cx: &SyncCx<'_>) -> Dag {
    super::dag_of(cx.rows())
}

/// Handles what a replica said.
pub(super) fn on_sync(cx: &mut SyncCx<'_>, from: NodeId, say: Say) {
    match say {
        Say::Heads { heads, answer } => on_heads(cx, from, heads, answer),
        Say::Same(heads) => {
            if heads == cids(&ids(cx.local(HEADS))) {
                agree(cx, from);
            }
        }
        Say::Want { want, frontier } => {
            let dag = dag(cx);
            let (mut blocks, mut size) = (Vec::new(), 0);
            let mut rest = Vec::new();
            for id in dag.closure(&want, &frontier) {
                let Some(block) = cx.row(&id.text()) else {
                    continue;
                };
                if size + block.len() > ANSWER_BYTES {
                    rest = want;
                    break;
                }
                size += block.len();
                blocks.push((id, ByteBuf::from(block.to_vec())));
            }
            if !blocks.is_empty() || !rest.is_empty() {
                cx.send(from, encode(&Say::Blocks { blocks, rest }));
            }
        }
        Say::Blocks { blocks, rest } => {
            for (id, block) in blocks {
                cx.apply(&id.text(), &block);
            }
            pend(cx, from, rest);
        }
    }
}

/// Another replica's heads: agree, fetch what is not held here, and
/// answer with this node's heads if the sender lacks some.
fn on_heads(cx: &mut SyncCx<'_>, from: NodeId, theirs: Vec<Cid>, answer: bool) {
    let mine = cids(&ids(cx.local(HEADS)));
    if theirs == mine {
        agree(cx, from);
        if answer {
            cx.send(from, encode(&Say::Same(mine)));
        }
        return;
    }
    let unknown: Vec<Cid> = theirs
        .iter()
        .filter(|id| cx.row(&id.text()).is_none())
        .copied()
        .collect();
    pend(cx, from, unknown);
    if answer && mine.iter().any(|h| !theirs.contains(h)) {
        let say = Say::Heads {
            heads: mine,
            answer: false,
        };
        cx.send(from, encode(&say));
    }
}

/// Keeps ids `from` named to fetch at the next wake, now.
fn pend(cx: &mut SyncCx<'_>, from: NodeId, ids: Vec<Cid>) {
    if ids.is_empty() {
        return;
    }
    let before = state(cx);
    let mut st = before.clone();
    for id in ids {
        if !st.pending.iter().any(|(_, p)| *p == id) {
            st.pending.push((from, id));
        }
    }
    st.loading = true;
    cx.wake_in(0, true);
    save(cx, &before, &st);
}

fn agree(cx: &mut SyncCx<'_>, peer: NodeId) {
    let before = state(cx);
    let mut st = before.clone();
    if !st.agreed.contains(&peer) {
        st.agreed.push(peer);
        save(cx, &before, &st);
    }
}

/// The rows handling `say` reads: those it names (and so the local rows);
/// a backfill request reads the whole topic.
pub(super) fn needs(say: &Say) -> (Vec<RowKey>, bool) {
    let keys = |ids: &[Cid]| ids.iter().map(Cid::text).collect::<Vec<_>>();
    match say {
        Say::Heads { heads, .. } | Say::Same(heads) => (keys(heads), false),
        Say::Want { .. } => (Vec::new(), true),
        Say::Blocks { blocks, .. } => {
            let mut rows = Vec::new();
            for (id, block) in blocks {
                rows.push(id.text());
                rows.extend(
                    event(block)
                        .into_iter()
                        .flat_map(|e| e.links)
                        .map(|l| l.text()),
                );
            }
            (rows, false)
        }
    }
}

/// Decodes a payload (checked with its frame by [`check`]).
pub(super) fn decode(payload: &[u8]) -> Result<Say, InvalidState> {
    postcard::from_bytes(payload)
        .map_err(|e| InvalidState(format!("not a stream sync message: {e}")))
}

/// Decodes a payload and checks every block in it against its id.
pub(super) fn check(payload: &[u8]) -> Result<Say, InvalidState> {
    let say = decode(payload)?;
    if let Say::Blocks { blocks, .. } = &say {
        for (id, block) in blocks {
            super::check_block(id, block)?;
        }
    }
    Ok(say)
}
