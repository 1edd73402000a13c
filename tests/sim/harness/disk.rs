//! A node's disk: the engine's [`MemoryStore`], counting the loads a
//! restarted node asks for. It outlives a crash; a restart starts a new
//! engine on it. The checks here compare it with the node's memory and
//! with its own sums.

use super::Sim;
use edge_crdt::engine::{
    Catalog, Effect, LeafRow, Loaded, Membership, MemoryStore, Needs, ObjectId, ObjectMeta,
    Restored, RowKey, Store, StoreError,
};
use edge_crdt::kinds::CATALOG;
use edge_crdt::NodeId;
use std::collections::BTreeMap;

/// A node's storage.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub tables: MemoryStore,
    /// Loads asked for since the node first started.
    pub loads: u64,
}

impl Store for Disk {
    fn restore(&mut self, catalog: &'static dyn Catalog) -> Result<Restored, StoreError> {
        self.tables.restore(catalog)
    }

    fn load(&mut self, needs: &Needs) -> Result<Loaded, StoreError> {
        self.loads += 1;
        self.tables.load(needs)
    }

    fn write(&mut self, effects: &[Effect]) -> Result<(), StoreError> {
        self.tables.write(effects)
    }

    fn log_after(
        &mut self,
        object: &ObjectId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.tables.log_after(object, after, limit)
    }

    fn list(
        &mut self,
        prefix: &str,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<Vec<(ObjectId, Vec<(RowKey, Vec<u8>)>)>, StoreError> {
        self.tables.list(prefix, after, limit)
    }
}

impl Disk {
    /// Each stored object's metadata is the sum of its stored rows, each
    /// stored leaf the sum of its objects, and each row's tombstone flag
    /// what its kind says of its state.
    pub fn check_sums(&self) -> Result<(), String> {
        let mut objects: BTreeMap<&ObjectId, ObjectMeta> = BTreeMap::new();
        for (object, row, stored) in self.tables.rows() {
            let kind = CATALOG
                .row_type(object.prefix())
                .ok_or(format!("{object}: unknown kind"))?;
            if kind.locals().contains(&row.as_str()) {
                continue;
            }
            let merged = kind
                .merge(None, &stored.state, u64::MAX)
                .map_err(|e| format!("{object}: {e:?}"))?;
            if merged.tombstone != stored.info.tombstone {
                return Err(format!(
                    "{object} row `{row}` is stored with the wrong tombstone flag"
                ));
            }
            let sum = objects.entry(object).or_default();
            sum.digest = sum.digest.wrapping_add(stored.info.digest);
            sum.rows += 1;
            sum.tombstones += u32::from(stored.info.tombstone);
        }
        let mut leaves: BTreeMap<u32, LeafRow> = BTreeMap::new();
        for (object, meta) in self.tables.objects() {
            let sum = objects.remove(object).unwrap_or_default();
            if (sum.digest, sum.rows, sum.tombstones) != (meta.digest, meta.rows, meta.tombstones) {
                return Err(format!(
                    "{object}: stored as {meta:?}, its rows sum to {sum:?}"
                ));
            }
            let leaf = leaves.entry(meta.leaf).or_default();
            leaf.digest = leaf.digest.wrapping_add(meta.digest);
            leaf.tombstones += meta.tombstones;
        }
        if let Some((object, _)) = objects.first_key_value() {
            return Err(format!("{object} has rows stored but no object"));
        }
        let stored: BTreeMap<u32, LeafRow> = self.tables.leaves().collect();
        leaves.retain(|_, row| !row.is_empty());
        if stored != leaves {
            return Err(format!(
                "the stored leaves differ from their objects' sums: {stored:?} vs {leaves:?}"
            ));
        }
        Ok(())
    }
}

impl Sim {
    /// The disk holds what the node holds in memory (and, for a node that
    /// never restarted, nothing more), with consistent sums: checked when
    /// it crashes, since that is when it matters, and at the end.
    pub fn check_disk(&self, id: NodeId) {
        if let Err(why) = self.disk_agrees(id) {
            self.fail(format!("{id}: {why}"));
        }
    }

    fn disk_agrees(&self, id: NodeId) -> Result<(), String> {
        let slot = &self.slots[&id];
        let Some(engine) = slot.engine() else {
            return Ok(());
        };
        let (node, tables) = (&engine.node, &engine.store.tables);
        for object in node.objects() {
            if node.object(object)
                != tables
                    .objects()
                    .find(|(o, _)| *o == object)
                    .map(|(_, m)| *m)
            {
                return Err(format!("{object}: metadata differs in memory and on disk"));
            }
            for (row, state) in node.rows(object) {
                if state.is_some_and(|s| Some(s) != tables.row(object, row)) {
                    let disk = tables.row(object, row).map(|s| super::describe(object, s));
                    let memory = state.map(|s| super::describe(object, s));
                    return Err(format!(
                        "memory and disk differ: {disk:?} on disk, {memory:?} in memory"
                    ));
                }
            }
        }
        if !slot.restarted {
            if let Some((object, row, _)) = tables.rows().find(|(o, r, _)| node.row(o, r).is_none())
            {
                return Err(format!(
                    "{object} row `{row}` is on disk only, yet it never restarted"
                ));
            }
        }
        let initial = Membership::initial(self.config.initial_nodes);
        if tables.members().unwrap_or(&initial) != node.members() {
            return Err("the stored membership differs".into());
        }
        if tables.partition().cloned().unwrap_or_default() != *node.partition() {
            return Err("the stored partition differs".into());
        }
        engine.store.check_sums()
    }
}
