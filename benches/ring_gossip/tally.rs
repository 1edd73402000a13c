//! What the run counts: our messages by kind, the writes and their lower
//! bound, and the collection messages.

use edge_crdt::codec;
use edge_crdt::engine::{Message, ObjectId};
use std::ops::Range;

/// Frames, bytes and entries (rows, digests or wanted rows) of one kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub frames: u64,
    pub bytes: u64,
    pub entries: u64,
}

impl Tally {
    pub fn add(&mut self, bytes: usize, entries: usize) {
        self.frames += 1;
        self.bytes += bytes as u64;
        self.entries += entries as u64;
    }
}

/// Our traffic by kind: delta gossip (the flushes of a tick and the
/// buffers that answers to them carry), the five
/// levels of anti-entropy, the repairs (a `Gossip` that answers `Rows` or
/// a want list), and anything else.
pub const KINDS: [&str; 8] = [
    "delta Gossip",
    "Digest",
    "Buckets",
    "Leaves",
    "Objects",
    "Rows",
    "repair Gossip",
    "other",
];

pub const DELTA: usize = 0;
pub const DIGEST: usize = 1;
pub const BUCKETS: usize = 2;
pub const LEAVES: usize = 3;
pub const OBJECTS: usize = 4;
pub const ROWS: usize = 5;
pub const REPAIR: usize = 6;

/// The kind of a message and its entries. `delta`: sent by a tick or in
/// answer to delta gossip, where the only `Gossip` is delta buffers.
fn classify(message: &Message, delta: bool) -> (usize, usize) {
    let rows = |states: &edge_crdt::engine::RowStates| -> usize {
        states.iter().map(|(_, r)| r.len()).sum()
    };
    match message {
        Message::Gossip { rows: states, .. } if delta => (DELTA, rows(states)),
        Message::Gossip {
            rows: states, want, ..
        } => {
            let wanted: usize = want.iter().map(|(_, r)| r.len()).sum();
            (REPAIR, rows(states) + wanted)
        }
        Message::Digest { .. } => (DIGEST, 0),
        Message::Buckets { buckets, .. } => (BUCKETS, buckets.len()),
        Message::Leaves { leaves, .. } => (LEAVES, leaves.len()),
        Message::Objects { leaves } => (OBJECTS, leaves.iter().map(|(_, o)| o.len()).sum()),
        Message::Rows { ranges } => (ROWS, ranges.iter().map(|r| r.rows.len()).sum()),
        _ => (KINDS.len() - 1, 0),
    }
}

/// Everything counted over a run.
#[derive(Debug)]
pub struct Traffic {
    /// the measured window, virtual ms
    pub measure: Range<u64>,
    /// from when collection messages are counted
    pub collect_from: u64,
    /// writes made in the window
    pub writes: u64,
    /// the lower bound's bytes for those writes
    pub lower_bytes: u64,
    /// our messages in the window, by kind (`codec::encode(&message)`)
    pub ours: [Tally; KINDS.len()],
    /// the same frames as sent, with their sender and time
    pub wire: Tally,
    /// `Reap`, `Reaped` and `Forget` from `collect_from` on
    pub collection: Tally,
}

impl Traffic {
    pub fn new(measure: Range<u64>) -> Self {
        Traffic {
            measure,
            collect_from: u64::MAX,
            writes: 0,
            lower_bytes: 0,
            ours: [Tally::default(); KINDS.len()],
            wire: Tally::default(),
            collection: Tally::default(),
        }
    }

    pub fn measuring(&self, now: u64) -> bool {
        self.measure.contains(&now)
    }

    /// A message sent at `now` in a frame of `frame_len` bytes.
    pub fn sent(&mut self, message: &Message, frame_len: usize, now: u64, delta: bool) {
        let collecting = now >= self.collect_from;
        if !self.measuring(now) && !collecting {
            return;
        }
        let len = codec::encode(message).len();
        if collecting
            && matches!(
                message,
                Message::Reap { .. } | Message::Reaped { .. } | Message::Forget { .. }
            )
        {
            self.collection.add(len, 0);
        }
        if self.measuring(now) {
            let (kind, entries) = classify(message, delta);
            self.ours[kind].add(len, entries);
            self.wire.add(frame_len, entries);
        }
    }

    /// A write at `now` whose delta is row `row` of `object`, `delta` in
    /// the kind's bytes: the lower bound ships it once to each of the
    /// other `others` replicas, as the engine ships a row.
    pub fn wrote(&mut self, now: u64, object: &ObjectId, row: &str, delta: &[u8], others: usize) {
        if self.measuring(now) {
            self.writes += 1;
            self.lower_bytes += (others * codec::encode(&(object, row, delta)).len()) as u64;
        }
    }

    /// Our bytes in the window, all kinds.
    pub fn ours_bytes(&self) -> u64 {
        self.ours.iter().map(|t| t.bytes).sum()
    }

    /// `bytes` per measured write.
    pub fn per_write(&self, bytes: u64) -> f64 {
        bytes as f64 / self.writes.max(1) as f64
    }
}
