//! What a node must have in memory before an input, and what storage
//! hands it back. A node holds only what inputs needed: object metadata,
//! the list of an object's rows with their digests, and row states are
//! loaded separately, so a large object is never read whole to compare it
//! or to change one row.

use super::{Leaf, ObjectId, RowKey};
use serde::{Deserialize, Serialize};

/// What a node keeps of an object without its rows: stored as one row of
/// the `objects` table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// the object's leaf
    pub leaf: Leaf,
    /// the sum of its rows' digests
    pub digest: u64,
    /// how many rows it holds
    pub rows: u32,
    /// how many of them are tombstones
    pub tombstones: u32,
    /// the sequence number of its log's next entry at this node (0: no log)
    pub log_next: u64,
}

/// What a node keeps of a row besides its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowInfo {
    /// the digest of the object, key and state
    pub digest: u64,
    /// whether the state only keeps removed values removed
    pub tombstone: bool,
    /// whether the state holds every write this node made to the row
    pub own: bool,
}

/// A stored row: its info and its state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredRow {
    /// digest and flags
    pub info: RowInfo,
    /// the kind's encoding of the state
    pub state: Vec<u8>,
}

/// What must be in memory before an input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// the metadata of every object in these leaves
    pub leaves: Vec<Leaf>,
    /// these objects' metadata (absent or not)
    pub objects: Vec<ObjectId>,
    /// every row key of these objects, with digests and flags
    pub listings: Vec<ObjectId>,
    /// these rows' states (absent or not)
    pub rows: Vec<(ObjectId, RowKey)>,
}

impl Needs {
    /// Whether nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
            && self.objects.is_empty()
            && self.listings.is_empty()
            && self.rows.is_empty()
    }

    /// Sorts and removes duplicates.
    pub(crate) fn tidy(mut self) -> Needs {
        use crate::heapsort::sort_dedup;
        sort_dedup(&mut self.leaves);
        sort_dedup(&mut self.objects);
        sort_dedup(&mut self.listings);
        sort_dedup(&mut self.rows);
        self
    }

    /// Both, tidied.
    pub(crate) fn and(mut self, other: Needs) -> Needs {
        self.leaves.extend(other.leaves);
        self.objects.extend(other.objects);
        self.listings.extend(other.listings);
        self.rows.extend(other.rows);
        self.tidy()
    }
}

/// What storage answers for [`Needs`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// per leaf asked for, every object stored in it
    pub leaves: Vec<(Leaf, Vec<(ObjectId, ObjectMeta)>)>,
    /// per object asked for (by `objects`, `listings` or `rows`), its metadata
    pub objects: Vec<(ObjectId, Option<ObjectMeta>)>,
    /// per object listed, every row it stores
    pub listings: Vec<(ObjectId, Vec<(RowKey, RowInfo)>)>,
    /// per row asked for, the row if stored
    pub rows: Vec<(ObjectId, RowKey, Option<StoredRow>)>,
}
