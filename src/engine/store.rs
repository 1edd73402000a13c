//! Where a node's state lives between inputs. The [`Store`] trait is what
//! the driver needs: restore a node, load what an input needs, write a
//! batch of storage effects as one transaction, and read an object's log
//! and a range of objects. The Durable Object host implements it over
//! SQLite; [`MemoryStore`] keeps the same tables in memory for tests, the
//! simulator and the benchmarks.
//!
//! ```
//! use edge_crdt::engine::{Config, Engine, MemoryStore, ObjectId, Store};
//! use edge_crdt::kinds::CATALOG;
//! use edge_crdt::NodeId;
//! let id = ObjectId::new("counter", "hits").unwrap();
//! let mut engine = Engine::start(NodeId(0), Config::default(), CATALOG, MemoryStore::default()).unwrap();
//! engine.node.exec(id.clone(), 1_000).append(b"first".to_vec());
//! let mut op = engine.node.exec(id.clone(), 1_000);
//! op.append(b"second".to_vec());
//! op.commit().unwrap();
//! engine.settle().unwrap();
//! let page = engine.store.log_after(&id, 0, 10).unwrap();
//! assert_eq!(page, vec![(1, b"second".to_vec())]);
//! ```

use super::kind::{flat_of, Catalog};
use super::needs::{Loaded, Needs, ObjectMeta, StoredRow};
use super::{Effect, Leaf, LeafRow, Membership, ObjectId, Partition, RowKey, RowStates};
use crate::NodeSet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A storage failure, as the adapter reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

/// What a node starts from after a restart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    /// the membership, if stored
    pub members: Option<Membership>,
    /// the partition, if stored
    pub partition: Option<Partition>,
    /// the clock floor, if stored
    pub clock: Option<u64>,
    /// the objects with a wake asked for
    pub wakes: Vec<(ObjectId, bool)>,
    /// the peers owed a check, as last stored
    pub unconfirmed: NodeSet,
    /// every non-empty leaf
    pub leaves: Vec<(Leaf, LeafRow)>,
}

/// A node's storage.
pub trait Store {
    /// What a restarted node starts from. `catalog` names the kinds the
    /// node hosts, and the tables of those that store rows flattened.
    fn restore(&mut self, catalog: &'static dyn Catalog) -> Result<Restored, StoreError>;

    /// Reads what `needs` names.
    fn load(&mut self, needs: &Needs) -> Result<Loaded, StoreError>;

    /// Performs the storage effects among `effects`, in order, as one
    /// transaction.
    fn write(&mut self, effects: &[Effect]) -> Result<(), StoreError>;

    /// Up to `limit` entries of an object's log numbered after `after`, in order.
    fn log_after(
        &mut self,
        object: &ObjectId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Up to `limit` objects whose ids start with `prefix` and sort after
    /// `after`, in order, each with its rows.
    fn list(
        &mut self,
        prefix: &str,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<RowStates, StoreError>;
}

/// What an effect writes: a row, an object, a leaf or a node's record.
type Written<'a> = (u8, &'a str, &'a str, u32);

/// The storage effects of a batch that still matter: of several writes of
/// one row, object or leaf, only the last (a delete included).
pub fn coalesce(effects: &[Effect]) -> Vec<&Effect> {
    // Each effect that writes something, by what it writes, then by when:
    // of a run of one key only the last is kept. Sorted rather than put in
    // a `BTreeSet`: its own instance would cost the Worker kilobytes.
    let mut keyed: Vec<(Written, usize)> = Vec::new();
    let mut keep = vec![false; effects.len()];
    for (i, e) in effects.iter().enumerate() {
        let key = match e {
            Effect::StoreRow { object, row, .. } | Effect::DeleteRow { object, row } => {
                (0, object.as_str(), row.as_str(), 0)
            }
            Effect::StoreObject { object, .. } | Effect::DeleteObject { object } => {
                (1, object.as_str(), "", 0)
            }
            Effect::StoreLeaf { leaf, .. } => (2, "", "", *leaf),
            Effect::StoreMembers(_) => (3, "", "", 0),
            Effect::StorePartition(_) => (4, "", "", 0),
            Effect::StoreClock(_) => (5, "", "", 0),
            Effect::StoreWakes(_) => (6, "", "", 0),
            Effect::StoreUnconfirmed(_) => (7, "", "", 0),
            Effect::Append { .. } | Effect::TrimLog { .. } => {
                keep[i] = true;
                continue;
            }
            Effect::Send { .. } | Effect::Publish { .. } | Effect::Heartbeat => continue,
        };
        keyed.push((key, i));
    }
    crate::heapsort::sort(&mut keyed);
    for (n, (key, i)) in keyed.iter().enumerate() {
        keep[*i] = keyed.get(n + 1).is_none_or(|(next, _)| next != key);
    }
    effects
        .iter()
        .zip(keep)
        .filter_map(|(e, keep)| keep.then_some(e))
        .collect()
}

/// The tables of a node's storage, in memory. A row its kind stores
/// flattened is kept as its cells would give it back.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    kinds: Kinds,
    members: Option<Membership>,
    partition: Option<Partition>,
    clock: Option<u64>,
    wakes: Vec<(ObjectId, bool)>,
    unconfirmed: NodeSet,
    objects: BTreeMap<ObjectId, ObjectMeta>,
    by_leaf: BTreeMap<Leaf, BTreeSet<ObjectId>>,
    rows: BTreeMap<(ObjectId, RowKey), StoredRow>,
    leaves: BTreeMap<Leaf, LeafRow>,
    log: BTreeMap<(ObjectId, u64), Vec<u8>>,
}

/// The catalog a store was restored with.
#[derive(Clone, Copy, Default)]
struct Kinds(Option<&'static dyn Catalog>);

impl fmt::Debug for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Kinds" } else { "None" })
    }
}

impl MemoryStore {
    /// Performs one storage effect.
    pub fn record(&mut self, effect: &Effect) -> Result<(), StoreError> {
        match effect {
            Effect::StoreRow {
                object,
                row,
                state,
                info,
            } => {
                let flat = self.kinds.0.and_then(|c| flat_of(c, object, row));
                let state = match flat {
                    Some(flat) => flat
                        .round_trip(state)
                        .map_err(|e| StoreError(format!("{object} row `{row}`: {e}")))?,
                    None => state.clone(),
                };
                let stored = StoredRow { info: *info, state };
                self.rows.insert((object.clone(), row.clone()), stored);
            }
            Effect::DeleteRow { object, row } => {
                self.rows.remove(&(object.clone(), row.clone()));
            }
            Effect::StoreObject { object, meta } => {
                self.by_leaf
                    .entry(meta.leaf)
                    .or_default()
                    .insert(object.clone());
                self.objects.insert(object.clone(), *meta);
            }
            Effect::DeleteObject { object } => {
                if let Some(meta) = self.objects.remove(object) {
                    if let Some(ids) = self.by_leaf.get_mut(&meta.leaf) {
                        ids.remove(object);
                    }
                }
            }
            Effect::StoreLeaf { leaf, row } if row.is_empty() => {
                self.leaves.remove(leaf);
            }
            Effect::StoreLeaf { leaf, row } => {
                self.leaves.insert(*leaf, *row);
            }
            Effect::Append { object, seq, entry } => {
                self.log.insert((object.clone(), *seq), entry.clone());
            }
            Effect::TrimLog { object, below } => {
                self.log.retain(|(o, s), _| o != object || s >= below);
            }
            Effect::StoreMembers(m) => self.members = Some(m.clone()),
            Effect::StorePartition(p) => self.partition = Some(p.clone()),
            Effect::StoreClock(floor) => self.clock = Some(*floor),
            Effect::StoreWakes(w) => self.wakes = w.clone(),
            Effect::StoreUnconfirmed(u) => self.unconfirmed = u.clone(),
            Effect::Send { .. } | Effect::Publish { .. } | Effect::Heartbeat => {}
        }
        Ok(())
    }

    /// Every stored row.
    pub fn rows(&self) -> impl Iterator<Item = (&ObjectId, &RowKey, &StoredRow)> {
        self.rows.iter().map(|((o, r), s)| (o, r, s))
    }

    /// One stored row's state.
    pub fn row(&self, object: &ObjectId, row: &str) -> Option<&[u8]> {
        self.rows
            .get(&(object.clone(), row.to_owned()))
            .map(|r| &r.state[..])
    }

    /// Every stored object and its metadata.
    pub fn objects(&self) -> impl Iterator<Item = (&ObjectId, &ObjectMeta)> {
        self.objects.iter()
    }

    /// Every stored leaf.
    pub fn leaves(&self) -> impl Iterator<Item = (Leaf, LeafRow)> + '_ {
        self.leaves.iter().map(|(l, r)| (*l, *r))
    }

    /// The stored membership.
    pub fn members(&self) -> Option<&Membership> {
        self.members.as_ref()
    }

    /// The stored partition.
    pub fn partition(&self) -> Option<&Partition> {
        self.partition.as_ref()
    }

    fn object_rows<'a>(
        &'a self,
        object: &'a ObjectId,
    ) -> impl Iterator<Item = (&'a RowKey, &'a StoredRow)> + 'a {
        let start = (object.clone(), RowKey::new());
        self.rows
            .range(start..)
            .take_while(move |((o, _), _)| o == object)
            .map(|((_, r), s)| (r, s))
    }
}

impl Store for MemoryStore {
    fn restore(&mut self, catalog: &'static dyn Catalog) -> Result<Restored, StoreError> {
        self.kinds = Kinds(Some(catalog));
        Ok(Restored {
            members: self.members.clone(),
            partition: self.partition.clone(),
            clock: self.clock,
            wakes: self.wakes.clone(),
            unconfirmed: self.unconfirmed.clone(),
            leaves: self.leaves().collect(),
        })
    }

    fn load(&mut self, needs: &Needs) -> Result<Loaded, StoreError> {
        let leaves = needs
            .leaves
            .iter()
            .map(|leaf| {
                let ids = self.by_leaf.get(leaf).into_iter().flatten();
                let metas = ids.filter_map(|id| Some((id.clone(), *self.objects.get(id)?)));
                (*leaf, metas.collect())
            })
            .collect();
        let mut asked: BTreeSet<&ObjectId> = needs.objects.iter().collect();
        asked.extend(&needs.listings);
        asked.extend(needs.rows.iter().map(|(o, _)| o));
        let objects = asked
            .into_iter()
            .map(|id| (id.clone(), self.objects.get(id).copied()))
            .collect();
        let listings = needs
            .listings
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    self.object_rows(id)
                        .map(|(r, s)| (r.clone(), s.info))
                        .collect(),
                )
            })
            .collect();
        let rows = needs
            .rows
            .iter()
            .map(|(o, r)| {
                (
                    o.clone(),
                    r.clone(),
                    self.rows.get(&(o.clone(), r.clone())).cloned(),
                )
            })
            .collect();
        Ok(Loaded {
            leaves,
            objects,
            listings,
            rows,
        })
    }

    fn write(&mut self, effects: &[Effect]) -> Result<(), StoreError> {
        for effect in coalesce(effects) {
            self.record(effect)?;
        }
        Ok(())
    }

    fn log_after(
        &mut self,
        object: &ObjectId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let start = (object.clone(), after.saturating_add(1));
        Ok(self
            .log
            .range(start..)
            .take_while(|((o, _), _)| o == object)
            .take(limit)
            .map(|((_, s), e)| (*s, e.clone()))
            .collect())
    }

    fn list(
        &mut self,
        prefix: &str,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<RowStates, StoreError> {
        Ok(self
            .objects
            .keys()
            .filter(|id| id.as_str().starts_with(prefix) && after.is_none_or(|a| *id > a))
            .take(limit)
            .map(|id| {
                let rows = self
                    .object_rows(id)
                    .map(|(r, s)| (r.clone(), s.state.clone()))
                    .collect();
                (id.clone(), rows)
            })
            .collect())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::engine::RowInfo;

    fn row(object: &ObjectId, state: u8) -> Effect {
        Effect::StoreRow {
            object: object.clone(),
            row: String::new(),
            state: vec![state],
            info: RowInfo::default(),
        }
    }

    #[test]
    fn a_batch_keeps_the_last_write_of_each_row() {
        let a = ObjectId::new("kv", "a").unwrap();
        let b = ObjectId::new("kv", "b").unwrap();
        let effects = vec![row(&a, 1), row(&b, 2), row(&a, 3), Effect::Heartbeat];
        let kept = coalesce(&effects);
        assert_eq!(kept, vec![&effects[1], &effects[2]]);
        let mut store = MemoryStore::default();
        store.write(&effects).unwrap();
        assert_eq!(store.row(&a, ""), Some(&[3][..]));
    }

    /// `coalesce` against the first one, on a `BTreeSet` of the keys seen
    /// from the end.
    #[cfg(not(target_arch = "wasm32"))]
    mod against_a_set {
        use super::*;

        fn coalesce_by_set(effects: &[Effect]) -> Vec<&Effect> {
            let mut seen = BTreeSet::new();
            let mut out: Vec<&Effect> = effects
                .iter()
                .rev()
                .filter(|e| {
                    let key = match e {
                        Effect::StoreRow { object, row, .. }
                        | Effect::DeleteRow { object, row } => {
                            (0, object.as_str(), row.as_str(), 0)
                        }
                        Effect::StoreObject { object, .. } | Effect::DeleteObject { object } => {
                            (1, object.as_str(), "", 0)
                        }
                        Effect::StoreLeaf { leaf, .. } => (2, "", "", *leaf),
                        Effect::Append { .. } | Effect::TrimLog { .. } => return true,
                        Effect::Heartbeat => return false,
                        _ => unreachable!("not generated"),
                    };
                    seen.insert(key)
                })
                .collect();
            out.reverse();
            out
        }

        proptest::proptest! {
            #[test]
            fn coalesce_keeps_what_a_set_of_seen_keys_keeps(picks in proptest::collection::vec((0u8..7, 0u8..3, 0u8..2), 0..60)) {
                let objects = [ObjectId::new("kv", "a").unwrap(), ObjectId::new("kv", "b").unwrap(), ObjectId::new("set", "a").unwrap()];
                let effects: Vec<Effect> = picks
                    .iter()
                    .enumerate()
                    .map(|(n, &(kind, o, r))| {
                        let object = objects[o as usize].clone();
                        let row = if r == 0 { String::new() } else { "r".to_owned() };
                        match kind {
                            0 => Effect::StoreRow { object, row, state: vec![n as u8], info: RowInfo::default() },
                            1 => Effect::DeleteRow { object, row },
                            2 => Effect::StoreObject { object, meta: ObjectMeta::default() },
                            3 => Effect::DeleteObject { object },
                            4 => Effect::StoreLeaf { leaf: u32::from(o), row: LeafRow { digest: n as u64, tombstones: 0 } },
                            5 => Effect::Append { object, seq: n as u64, entry: Vec::new() },
                            _ => Effect::Heartbeat,
                        }
                    })
                    .collect();
                proptest::prop_assert_eq!(coalesce(&effects), coalesce_by_set(&effects));
            }
        }
    }

    #[test]
    fn logs_read_in_pages_after_a_cursor() {
        let a = ObjectId::new("kv", "a").unwrap();
        let b = ObjectId::new("kv", "b").unwrap();
        let mut store = MemoryStore::default();
        for (object, seq) in [(&a, 1), (&a, 2), (&b, 1), (&a, 3)] {
            let entry = vec![seq as u8];
            store
                .record(&Effect::Append {
                    object: object.clone(),
                    seq,
                    entry,
                })
                .unwrap();
        }
        let seqs = |page: Vec<(u64, Vec<u8>)>| page.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        assert_eq!(seqs(store.log_after(&a, 0, 2).unwrap()), [1, 2]);
        assert_eq!(seqs(store.log_after(&a, 2, 2).unwrap()), [3]);
        assert!(store.log_after(&a, 3, 2).unwrap().is_empty());
        store
            .record(&Effect::TrimLog {
                object: a.clone(),
                below: 3,
            })
            .unwrap();
        assert_eq!(seqs(store.log_after(&a, 0, 9).unwrap()), [3]);
        assert_eq!(seqs(store.log_after(&b, 0, 9).unwrap()), [1]);
    }
}
