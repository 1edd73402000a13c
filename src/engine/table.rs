//! The objects and rows a node holds in memory, with their digests.
//!
//! A node that never restarted holds everything it stored (`complete`).
//! After a restart it holds what inputs loaded: an object's metadata, its
//! listing (every row's digest and flags, no states), or single rows. Each
//! change keeps the row's digest, its object's sum and row count in step,
//! and tells the caller how the object's digest and tombstone count moved,
//! for the leaf's sums.

use super::needs::{Loaded, ObjectMeta, RowInfo};
use super::{Leaf, ObjectId, RowKey};
use crate::VecSet;
use std::collections::{BTreeMap, BTreeSet};

/// A row in memory: always its info, its state when loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub info: RowInfo,
    pub state: Option<Vec<u8>>,
}

/// An object in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Object {
    pub meta: ObjectMeta,
    pub rows: BTreeMap<RowKey, Slot>,
    /// every stored row is in `rows` (with its info at least)
    pub listed: bool,
    /// rows known not to be stored
    pub absent: BTreeSet<RowKey>,
    /// the local rows loaded or written (`None`: not stored)
    pub locals: BTreeMap<RowKey, Option<Vec<u8>>>,
}

impl Object {
    fn is_listed(&self) -> bool {
        self.listed || self.meta.rows as usize == self.rows.len()
    }
}

/// How a change moved an object's digest and tombstone count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Moved {
    pub leaf: Leaf,
    pub old: u64,
    pub new: u64,
    pub tombstones: i64,
}

/// The object in memory, created empty in `leaf` if it is new.
fn created<'a>(
    objects: &'a mut BTreeMap<ObjectId, Object>,
    id: &ObjectId,
    leaf: Leaf,
) -> &'a mut Object {
    objects.entry(id.clone()).or_insert_with(|| Object {
        meta: ObjectMeta {
            leaf,
            ..ObjectMeta::default()
        },
        listed: true,
        ..Object::default()
    })
}

/// The node's objects in memory.
#[derive(Debug)]
pub(crate) struct Table {
    objects: BTreeMap<ObjectId, Object>,
    /// loaded objects that hold rows, by leaf
    by_leaf: BTreeMap<Leaf, BTreeSet<ObjectId>>,
    /// leaves whose every object's metadata was loaded from storage
    leaves_listed: VecSet<Leaf>,
    /// everything stored is in memory
    complete: bool,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            objects: BTreeMap::new(),
            by_leaf: BTreeMap::new(),
            leaves_listed: VecSet::new(),
            complete: true,
        }
    }
}

impl Table {
    /// After a restart: what is stored is not in memory yet.
    pub fn forget_all(&mut self) {
        *self = Table {
            complete: false,
            ..Table::default()
        };
    }

    pub fn get(&self, id: &ObjectId) -> Option<&Object> {
        self.objects.get(id)
    }

    /// Whether the object's metadata is known. A leaf that holds no rows
    /// may still hold objects that keep only a log: their metadata (the
    /// log's next number) is known only once loaded.
    pub fn knows(&self, id: &ObjectId, leaf: Leaf) -> bool {
        self.complete || self.objects.contains_key(id) || self.leaves_listed.contains(&leaf)
    }

    /// Whether every object's metadata in `leaf` is known.
    pub fn knows_leaf(&self, leaf: Leaf, leaf_has_data: bool) -> bool {
        self.complete || !leaf_has_data || self.leaves_listed.contains(&leaf)
    }

    /// Whether every row of the object is in memory, with its info.
    pub fn knows_rows(&self, id: &ObjectId, leaf: Leaf, leaf_has_data: bool) -> bool {
        match self.objects.get(id) {
            _ if self.complete => true,
            Some(o) => o.is_listed(),
            None => self.knows_leaf(leaf, leaf_has_data),
        }
    }

    /// Whether the state of `row` (or its absence) is known.
    pub fn knows_row(&self, id: &ObjectId, row: &str, leaf: Leaf, leaf_has_data: bool) -> bool {
        match self.objects.get(id) {
            _ if self.complete => true,
            Some(o) => match o.rows.get(row) {
                Some(slot) => slot.state.is_some(),
                None => o.is_listed() || o.absent.contains(row),
            },
            None => self.knows_leaf(leaf, leaf_has_data),
        }
    }

    /// Whether a local row's state (or absence) is known.
    pub fn knows_local(&self, id: &ObjectId, row: &str) -> bool {
        self.complete
            || self
                .objects
                .get(id)
                .is_some_and(|o| o.locals.contains_key(row))
    }

    /// A local row's state.
    pub fn local(&self, id: &ObjectId, row: &str) -> Option<&[u8]> {
        self.objects.get(id)?.locals.get(row)?.as_deref()
    }

    /// Sets (or with `None` drops) a local row; an unknown object is
    /// created in `leaf`.
    pub fn set_local(&mut self, id: &ObjectId, leaf: Leaf, row: &str, state: Option<Vec<u8>>) {
        let o = created(&mut self.objects, id, leaf);
        o.locals.insert(row.to_owned(), state);
    }

    /// The loaded objects of `leaf` that hold rows.
    pub fn leaf_objects(&self, leaf: Leaf) -> impl Iterator<Item = (&ObjectId, &Object)> {
        self.by_leaf
            .get(&leaf)
            .into_iter()
            .flatten()
            .filter_map(|id| self.objects.get_key_value(id))
    }

    /// Every loaded object that holds rows.
    pub fn objects(&self) -> impl Iterator<Item = (&ObjectId, &Object)> {
        self.objects.iter().filter(|(_, o)| o.meta.rows > 0)
    }

    /// The state of a loaded row.
    pub fn state(&self, id: &ObjectId, row: &str) -> Option<&[u8]> {
        self.objects.get(id)?.rows.get(row)?.state.as_deref()
    }

    pub fn info(&self, id: &ObjectId, row: &str) -> Option<RowInfo> {
        Some(self.objects.get(id)?.rows.get(row)?.info)
    }

    /// Takes what storage loaded. What is already in memory is newer and
    /// stays; `leaf_of` places objects storage does not hold, and
    /// `is_local` tells local rows, which listings leave out.
    pub fn load(
        &mut self,
        loaded: Loaded,
        leaf_of: impl Fn(&ObjectId) -> Leaf,
        is_local: impl Fn(&ObjectId, &str) -> bool,
    ) {
        for (leaf, metas) in loaded.leaves {
            for (id, meta) in metas {
                self.take_meta(id, Some(meta), leaf);
            }
            self.leaves_listed.insert(leaf);
        }
        for (id, meta) in loaded.objects {
            let leaf = meta.map_or_else(|| leaf_of(&id), |m| m.leaf);
            self.take_meta(id, meta, leaf);
        }
        for (id, rows) in loaded.listings {
            let Some(o) = self.objects.get_mut(&id) else {
                continue;
            };
            for (key, info) in rows.into_iter().filter(|(k, _)| !is_local(&id, k)) {
                o.rows.entry(key).or_insert(Slot { info, state: None });
            }
            o.listed = true;
        }
        for (id, key, row) in loaded.rows {
            let Some(o) = self.objects.get_mut(&id) else {
                continue;
            };
            if is_local(&id, &key) {
                o.locals.entry(key).or_insert(row.map(|r| r.state));
                continue;
            }
            match row {
                Some(row) => {
                    let slot = o.rows.entry(key).or_insert(Slot {
                        info: row.info,
                        state: None,
                    });
                    if slot.state.is_none() && slot.info == row.info {
                        slot.state = Some(row.state);
                    }
                }
                None if !o.rows.contains_key(&key) => {
                    o.absent.insert(key);
                }
                None => {}
            }
        }
    }

    fn take_meta(&mut self, id: ObjectId, meta: Option<ObjectMeta>, leaf: Leaf) {
        if self.objects.contains_key(&id) {
            return;
        }
        let meta = meta.unwrap_or(ObjectMeta {
            leaf,
            ..ObjectMeta::default()
        });
        if meta.rows > 0 {
            self.by_leaf
                .entry(meta.leaf)
                .or_default()
                .insert(id.clone());
        }
        self.objects.insert(
            id,
            Object {
                meta,
                ..Object::default()
            },
        );
    }

    /// Sets `row` to `state` with `info`. The row's state (or absence)
    /// must be known; an unknown object is created in `leaf`.
    pub fn set(
        &mut self,
        id: &ObjectId,
        leaf: Leaf,
        row: &str,
        state: Vec<u8>,
        info: RowInfo,
    ) -> Moved {
        let o = created(&mut self.objects, id, leaf);
        let old = o.meta.digest;
        let slot = Slot {
            info,
            state: Some(state),
        };
        let before = o.rows.insert(row.to_owned(), slot).map(|s| s.info);
        o.absent.remove(row);
        if before.is_none() {
            o.meta.rows += 1;
        }
        let was = before.is_some_and(|i| i.tombstone);
        let tombstones = i64::from(info.tombstone) - i64::from(was);
        o.meta.tombstones = (i64::from(o.meta.tombstones) + tombstones).max(0) as u32;
        o.meta.digest = o
            .meta
            .digest
            .wrapping_sub(before.map_or(0, |i| i.digest))
            .wrapping_add(info.digest);
        self.by_leaf
            .entry(o.meta.leaf)
            .or_default()
            .insert(id.clone());
        Moved {
            leaf: o.meta.leaf,
            old,
            new: o.meta.digest,
            tombstones,
        }
    }

    /// Drops `row`; `None` when it was not here.
    pub fn remove(&mut self, id: &ObjectId, row: &str) -> Option<Moved> {
        let o = self.objects.get_mut(id)?;
        let gone = o.rows.remove(row)?;
        o.absent.insert(row.to_owned());
        let old = o.meta.digest;
        o.meta.rows = o.meta.rows.saturating_sub(1);
        o.meta.digest = old.wrapping_sub(gone.info.digest);
        let tombstones = -i64::from(gone.info.tombstone);
        o.meta.tombstones = o
            .meta
            .tombstones
            .saturating_sub(u32::from(gone.info.tombstone));
        let leaf = o.meta.leaf;
        if o.meta.rows == 0 {
            if let Some(ids) = self.by_leaf.get_mut(&leaf) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_leaf.remove(&leaf);
                }
            }
        }
        Some(Moved {
            leaf,
            old,
            new: o.meta.digest,
            tombstones,
        })
    }

    /// Advances the object's log counter; returns the entry's number. An
    /// object not in memory yet is created in `leaf`.
    pub fn next_log_seq(&mut self, id: &ObjectId, leaf: Leaf) -> u64 {
        let o = created(&mut self.objects, id, leaf);
        o.meta.log_next = o.meta.log_next.max(1);
        let seq = o.meta.log_next;
        o.meta.log_next += 1;
        seq
    }

    pub fn meta(&self, id: &ObjectId) -> Option<ObjectMeta> {
        self.objects.get(id).map(|o| o.meta)
    }

    /// How many objects are in memory (known absent ones included).
    pub fn len(&self) -> usize {
        self.objects.len()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::engine::needs::StoredRow;

    fn id(name: &str) -> ObjectId {
        ObjectId::new("kv", name).unwrap()
    }

    fn info(digest: u64, tombstone: bool) -> RowInfo {
        RowInfo {
            digest,
            tombstone,
            own: false,
        }
    }

    #[test]
    fn changes_keep_the_object_sums() {
        let mut t = Table::default();
        let a = id("a");
        assert_eq!(t.set(&a, 5, "r1", vec![1], info(10, false)).new, 10);
        let m = t.set(&a, 5, "r2", vec![2], info(7, true));
        assert_eq!((m.old, m.new, m.tombstones), (10, 17, 1));
        let m = t.set(&a, 5, "r2", vec![3], info(8, false));
        assert_eq!((m.new, m.tombstones), (18, -1));
        assert_eq!(t.meta(&a).unwrap().rows, 2);
        assert_eq!(t.remove(&a, "r1").unwrap().new, 8);
        assert_eq!(t.remove(&a, "r1"), None);
        assert_eq!(t.leaf_objects(5).count(), 1);
        t.remove(&a, "r2");
        assert_eq!(t.leaf_objects(5).count(), 0);
    }

    #[test]
    fn a_restarted_table_knows_what_it_loaded_and_no_more() {
        let mut t = Table::default();
        t.forget_all();
        let (a, b) = (id("a"), id("b"));
        assert!(!t.knows(&a, 5));
        assert!(t.knows_row(&a, "", 5, false), "an empty leaf holds no rows");
        let meta = ObjectMeta {
            leaf: 5,
            digest: 3,
            rows: 2,
            ..ObjectMeta::default()
        };
        let row = StoredRow {
            info: info(1, false),
            state: vec![9],
        };
        t.load(
            Loaded {
                objects: vec![(a.clone(), Some(meta)), (b.clone(), None)],
                rows: vec![
                    (a.clone(), "x".into(), Some(row)),
                    (a.clone(), "y".into(), None),
                ],
                ..Loaded::default()
            },
            |_| 6,
            |_, _| false,
        );
        assert!(t.knows(&a, 5) && t.knows(&b, 6));
        assert_eq!(t.state(&a, "x"), Some(&[9][..]));
        assert!(t.knows_row(&a, "y", 5, true), "known absent");
        assert!(!t.knows_row(&a, "z", 5, true) && !t.knows_rows(&a, 5, true));
        assert!(!t.knows_row(&id("c"), "", 5, true) && t.knows_row(&id("c"), "", 5, false));
        t.load(
            Loaded {
                listings: vec![(
                    a.clone(),
                    vec![("x".into(), info(1, false)), ("z".into(), info(2, false))],
                )],
                ..Loaded::default()
            },
            |_| 6,
            |_, _| false,
        );
        assert!(t.knows_rows(&a, 5, true));
        assert!(
            !t.knows_row(&a, "z", 5, true),
            "listed, but its state is not loaded"
        );
        assert_eq!(t.state(&a, "x"), Some(&[9][..]), "memory stays");
    }
}
