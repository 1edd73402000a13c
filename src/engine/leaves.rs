//! What a node knows of each leaf without loading it: the sum of its
//! objects' digests and how many tombstones it holds. Leaves group into
//! buckets of [`BUCKET_LEAVES`], the first level anti-entropy compares.
//!
//! ```
//! use edge_crdt::engine::{LeafRow, BUCKET_LEAVES};
//! let row = LeafRow { digest: 7, tombstones: 1 };
//! assert!(!row.is_empty());
//! assert!(LeafRow::default().is_empty());
//! assert_eq!(BUCKET_LEAVES, 64);
//! ```

use super::{fnv1a, Leaf};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Leaves per bucket.
pub const BUCKET_LEAVES: u32 = 64;

/// One stored leaf.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafRow {
    /// the sum of its objects' digests (0: empty)
    pub digest: u64,
    /// how many of its rows are tombstones
    pub tombstones: u32,
}

impl LeafRow {
    /// Whether the leaf holds nothing.
    pub fn is_empty(&self) -> bool {
        self.digest == 0 && self.tombstones == 0
    }
}

/// The bucket of `leaf`.
pub(crate) fn bucket(leaf: Leaf) -> u16 {
    (leaf / BUCKET_LEAVES) as u16
}

/// The leaves of bucket `b`.
pub(crate) fn bucket_leaves(b: u16) -> std::ops::Range<Leaf> {
    let start = u32::from(b) * BUCKET_LEAVES;
    start..start + BUCKET_LEAVES
}

/// A leaf's part in its bucket's digest.
pub(crate) fn entry_digest(leaf: Leaf, digest: u64) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&leaf.to_le_bytes());
    bytes[4..].copy_from_slice(&digest.to_le_bytes());
    fnv1a(&bytes)
}

/// The non-empty leaves of a node.
#[derive(Clone, Debug, Default)]
pub(crate) struct Leaves {
    rows: BTreeMap<Leaf, LeafRow>,
}

impl Leaves {
    /// Takes a stored leaf back.
    pub fn restore(&mut self, leaf: Leaf, row: LeafRow) {
        if !row.is_empty() {
            self.rows.insert(leaf, row);
        }
    }

    pub fn get(&self, leaf: Leaf) -> LeafRow {
        self.rows.get(&leaf).copied().unwrap_or_default()
    }

    /// Whether the leaf holds anything here.
    pub fn has(&self, leaf: Leaf) -> bool {
        self.rows.contains_key(&leaf)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Leaf, LeafRow)> + '_ {
        self.rows.iter().map(|(l, r)| (*l, *r))
    }

    /// Leaves with tombstones.
    pub fn with_tombstones(&self) -> impl Iterator<Item = Leaf> + '_ {
        self.rows
            .iter()
            .filter(|(_, r)| r.tombstones > 0)
            .map(|(l, _)| *l)
    }

    /// Every tombstone held.
    pub fn tombstones(&self) -> u64 {
        self.rows.values().map(|r| u64::from(r.tombstones)).sum()
    }

    /// Replaces an object's digest `old` by `new` in `leaf` and adds
    /// `tombstones` to its count; returns the leaf's new row.
    pub fn change(&mut self, leaf: Leaf, old: u64, new: u64, tombstones: i64) -> LeafRow {
        let mut row = self.get(leaf);
        row.digest = row.digest.wrapping_sub(old).wrapping_add(new);
        row.tombstones =
            (i64::from(row.tombstones) + tombstones).clamp(0, i64::from(u32::MAX)) as u32;
        if row.is_empty() {
            self.rows.remove(&leaf);
        } else {
            self.rows.insert(leaf, row);
        }
        row
    }

    /// The digest of each non-empty bucket over the leaves `keep` selects,
    /// in bucket order.
    pub fn buckets(&self, keep: impl Fn(Leaf) -> bool) -> Vec<(u16, u64)> {
        let mut out: Vec<(u16, u64)> = Vec::new();
        for (leaf, row) in self.rows.iter().filter(|(l, _)| keep(**l)) {
            let d = entry_digest(*leaf, row.digest);
            match out.last_mut() {
                Some((b, sum)) if *b == bucket(*leaf) => *sum = sum.wrapping_add(d),
                _ => out.push((bucket(*leaf), d)),
            }
        }
        out
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn changes_keep_sums_and_drop_empty_leaves() {
        let mut leaves = Leaves::default();
        assert_eq!(
            leaves.change(3, 0, 10, 1),
            LeafRow {
                digest: 10,
                tombstones: 1
            }
        );
        assert_eq!(leaves.change(3, 0, 5, 0).digest, 15);
        assert_eq!(leaves.change(3, 10, 0, -1).digest, 5);
        assert_eq!(leaves.tombstones(), 0);
        assert!(leaves.change(3, 5, 0, 0).is_empty());
        assert!(!leaves.has(3));
    }

    #[test]
    fn buckets_sum_the_leaves_they_keep() {
        let mut leaves = Leaves::default();
        leaves.change(1, 0, 10, 0);
        leaves.change(2, 0, 20, 0);
        leaves.change(70, 0, 30, 0);
        let all = leaves.buckets(|_| true);
        assert_eq!(all.iter().map(|(b, _)| *b).collect::<Vec<_>>(), [0, 1]);
        let some = leaves.buckets(|l| l != 2);
        assert_ne!(all[0], some[0]);
        assert_eq!(all[1], some[1]);
        assert_eq!(bucket_leaves(1), 64..128);
    }
}
