//! The node's [`Store`] over its Durable Object's SQLite.
//!
//! Tables: `meta(key, value)` (the node's id, membership, partition, clock
//! floor and the layout version, as envelopes); `objects(id, leaf, digest,
//! rows, tombstones, log_next)` indexed by leaf; `rows(object, row, state,
//! digest, tombstone, own)`; `leaf_rows(leaf, digest, tombstones)`, one per
//! non-empty leaf; `log(object, seq, entry)`. Digests are 8-byte blobs (a
//! JavaScript number would round them). Every call is synchronous, and a
//! batch of writes runs between two awaits, so the runtime commits it as
//! one transaction.

use super::sql_flat::KindTable;
use crate::codec;
use crate::engine::{
    coalesce, Catalog, Effect, Leaf, LeafRow, Loaded, Needs, ObjectId, ObjectMeta, Restored,
    RowInfo, RowKey, RowStates, Store, StoreError, StoredRow,
};
use worker::{SqlStorage, SqlStorageValue as V};

/// This layout's version, in `meta`.
pub(crate) const LAYOUT: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, leaf INTEGER NOT NULL, digest BLOB NOT NULL, rows INTEGER NOT NULL, tombstones INTEGER NOT NULL, log_next INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS objects_leaf ON objects (leaf);
CREATE TABLE IF NOT EXISTS rows (object TEXT NOT NULL, row TEXT NOT NULL, state BLOB NOT NULL, digest BLOB NOT NULL, tombstone INTEGER NOT NULL, own INTEGER NOT NULL, PRIMARY KEY (object, row)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leaf_rows (leaf INTEGER PRIMARY KEY, digest BLOB NOT NULL, tombstones INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (object TEXT NOT NULL, seq INTEGER NOT NULL, entry BLOB NOT NULL, PRIMARY KEY (object, seq)) WITHOUT ROWID;";

/// Values bound by one query (SQLite storage binds at most 100).
const PER_QUERY: usize = 100;

pub(crate) struct SqlStore {
    sql: SqlStorage,
    /// the tables of the kinds that store rows flattened, once restored
    kinds: Vec<KindTable>,
}

fn fail(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

pub(super) fn int(v: Option<&V>) -> i64 {
    match v {
        Some(V::Integer(i)) => *i,
        Some(V::Float(f)) => *f as i64,
        _ => 0,
    }
}

pub(super) fn text(v: Option<&V>) -> Option<&str> {
    match v {
        Some(V::String(s)) => Some(s),
        _ => None,
    }
}

pub(super) fn blob(v: Option<&V>) -> Option<&[u8]> {
    match v {
        Some(V::Blob(b)) => Some(b),
        _ => None,
    }
}

pub(super) fn digest(v: Option<&V>) -> u64 {
    blob(v)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

pub(super) fn digest_value(d: u64) -> V {
    V::Blob(d.to_le_bytes().to_vec())
}

/// `(id, leaf, digest, rows, tombstones, log_next)` → an object's metadata.
fn meta_of(row: &[V]) -> Option<(ObjectId, ObjectMeta)> {
    let id = ObjectId::parse(text(row.first())?).ok()?;
    let meta = ObjectMeta {
        leaf: int(row.get(1)) as Leaf,
        digest: digest(row.get(2)),
        rows: int(row.get(3)) as u32,
        tombstones: int(row.get(4)) as u32,
        log_next: int(row.get(5)) as u64,
    };
    Some((id, meta))
}

/// `(digest, tombstone, own)` from `at` on.
pub(super) fn info_of(row: &[V], at: usize) -> RowInfo {
    RowInfo {
        digest: digest(row.get(at)),
        tombstone: int(row.get(at + 1)) != 0,
        own: int(row.get(at + 2)) != 0,
    }
}

const OBJECT_COLUMNS: &str = "id, leaf, digest, rows, tombstones, log_next";

impl SqlStore {
    /// The store of a Durable Object, its tables created if need be.
    pub fn open(sql: SqlStorage) -> worker::Result<Self> {
        sql.exec(SCHEMA, None)?;
        Ok(SqlStore {
            sql,
            kinds: Vec::new(),
        })
    }

    pub fn query(&self, q: &str, args: Vec<V>) -> Result<Vec<Vec<V>>, StoreError> {
        let cursor = self.sql.exec(q, args).map_err(fail)?;
        let mut out = Vec::new();
        for row in cursor.raw() {
            out.push(row.map_err(fail)?);
        }
        Ok(out)
    }

    pub fn run(&self, q: &str, args: Vec<V>) -> Result<(), StoreError> {
        self.sql.exec(q, args).map(|_| ()).map_err(fail)
    }

    /// A `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query("SELECT value FROM meta WHERE key = ?", vec![key.into()])?;
        Ok(rows
            .first()
            .and_then(|r| blob(r.first()))
            .map(<[u8]>::to_vec))
    }

    /// Sets a `meta` value.
    pub fn set_meta(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.run(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            vec![key.into(), value.into()],
        )
    }

    fn decoded<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        Ok(self
            .meta(key)?
            .and_then(|b| codec::decode(&b, codec::MAX_FRAME).ok()))
    }

    fn objects_where(
        &self,
        clause: &str,
        args: Vec<V>,
    ) -> Result<Vec<(ObjectId, ObjectMeta)>, StoreError> {
        let q = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE {clause}");
        Ok(self
            .query(&q, args)?
            .iter()
            .filter_map(|r| meta_of(r))
            .collect())
    }

    fn load_objects(
        &self,
        ids: &[&ObjectId],
    ) -> Result<Vec<(ObjectId, Option<ObjectMeta>)>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(PER_QUERY) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let args = chunk.iter().map(|id| V::from(id.as_str())).collect();
            let found = self.objects_where(&format!("id IN ({marks})"), args)?;
            for id in chunk {
                let meta = found.iter().find(|(f, _)| f == *id).map(|(_, m)| *m);
                out.push(((*id).clone(), meta));
            }
        }
        Ok(out)
    }

    /// The table of `object`'s kind, if it stores rows flattened.
    fn table_of(&self, object: &ObjectId) -> Option<&KindTable> {
        self.kinds.iter().find(|k| k.prefix == object.prefix())
    }

    /// The table of row `row` of `object`, if its kind keeps it in one.
    fn kind_table(&self, object: &ObjectId, row: &str) -> Option<&KindTable> {
        self.table_of(object).filter(|k| k.flat.holds(row))
    }

    fn load_rows(
        &self,
        object: &ObjectId,
        keys: &[&RowKey],
    ) -> Result<Vec<(ObjectId, RowKey, Option<StoredRow>)>, StoreError> {
        let table = self.table_of(object);
        let (flat, keys): (Vec<&RowKey>, Vec<&RowKey>) = keys
            .iter()
            .partition(|k| table.is_some_and(|t| t.flat.holds(k)));
        let mut out = Vec::new();
        if let Some(table) = table.filter(|_| !flat.is_empty()) {
            let mut found = table.load(self, object, &flat)?;
            for key in flat {
                let at = found.iter().position(|(k, _)| k == key);
                let row = at.map(|i| found.swap_remove(i).1);
                out.push((object.clone(), key.clone(), row));
            }
        }
        for chunk in keys.chunks(PER_QUERY - 1) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut args = vec![V::from(object.as_str())];
            args.extend(chunk.iter().map(|k| V::from(k.as_str())));
            let q = format!(
                "SELECT row, state, digest, tombstone, own FROM rows WHERE object = ? AND row IN ({marks})"
            );
            let found = self.query(&q, args)?;
            for key in chunk {
                let row = found
                    .iter()
                    .find(|r| text(r.first()) == Some(key.as_str()))
                    .map(|r| StoredRow {
                        info: info_of(r, 2),
                        state: blob(r.get(1)).unwrap_or_default().to_vec(),
                    });
                out.push((object.clone(), (*key).clone(), row));
            }
        }
        Ok(out)
    }

    fn write_one(&self, effect: &Effect) -> Result<(), StoreError> {
        match effect {
            Effect::StoreRow { object, row, state, info } => {
                if let Some(table) = self.kind_table(object, row) {
                    return table.store(self, object, row, state, info);
                }
                self.store_row(object, row, state, info)
            }
            Effect::DeleteRow { object, row } => match self.kind_table(object, row) {
                Some(table) => table.delete(self, object, row),
                None => self.delete_row(object, row),
            },
            Effect::StoreObject { object, meta } => self.run(
                "INSERT OR REPLACE INTO objects (id, leaf, digest, rows, tombstones, log_next) VALUES (?, ?, ?, ?, ?, ?)",
                vec![
                    object.as_str().into(),
                    i64::from(meta.leaf).into(),
                    digest_value(meta.digest),
                    i64::from(meta.rows).into(),
                    i64::from(meta.tombstones).into(),
                    (meta.log_next as i64).into(),
                ],
            ),
            Effect::DeleteObject { object } => {
                self.run("DELETE FROM objects WHERE id = ?", vec![object.as_str().into()])
            }
            Effect::StoreLeaf { leaf, row } if row.is_empty() => {
                self.run("DELETE FROM leaf_rows WHERE leaf = ?", vec![i64::from(*leaf).into()])
            }
            Effect::StoreLeaf { leaf, row } => self.run(
                "INSERT OR REPLACE INTO leaf_rows (leaf, digest, tombstones) VALUES (?, ?, ?)",
                vec![i64::from(*leaf).into(), digest_value(row.digest), i64::from(row.tombstones).into()],
            ),
            Effect::Append { object, seq, entry } => self.run(
                "INSERT OR REPLACE INTO log (object, seq, entry) VALUES (?, ?, ?)",
                vec![object.as_str().into(), (*seq as i64).into(), entry.clone().into()],
            ),
            Effect::TrimLog { object, below } => self.run(
                "DELETE FROM log WHERE object = ? AND seq < ?",
                vec![object.as_str().into(), (*below as i64).into()],
            ),
            Effect::StoreMembers(m) => self.set_meta("members", codec::encode(m)),
            Effect::StorePartition(p) => self.set_meta("partition", codec::encode(p)),
            Effect::StoreClock(floor) => self.set_meta("clock", codec::encode(floor)),
            Effect::StoreWakes(w) => self.set_meta("wakes", codec::encode(w)),
            Effect::StoreUnconfirmed(u) => self.set_meta("unconfirmed", codec::encode(u)),
            Effect::Send { .. } | Effect::Publish { .. } | Effect::Heartbeat => Ok(()),
        }
    }

    /// Deletes a row of the engine's `rows` table.
    pub(super) fn delete_row(&self, object: &ObjectId, row: &str) -> Result<(), StoreError> {
        self.run(
            "DELETE FROM rows WHERE object = ? AND row = ?",
            vec![object.as_str().into(), row.into()],
        )
    }

    fn store_row(
        &self,
        object: &ObjectId,
        row: &str,
        state: &[u8],
        info: &RowInfo,
    ) -> Result<(), StoreError> {
        self.run(
            "INSERT OR REPLACE INTO rows (object, row, state, digest, tombstone, own) VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                object.as_str().into(),
                row.into(),
                state.to_vec().into(),
                digest_value(info.digest),
                i64::from(info.tombstone).into(),
                i64::from(info.own).into(),
            ],
        )
    }
}

impl Store for SqlStore {
    fn restore(&mut self, catalog: &'static dyn Catalog) -> Result<Restored, StoreError> {
        self.kinds.clear();
        for prefix in catalog.prefixes() {
            let flat = catalog.row_type(prefix).and_then(|r| r.flat());
            if let Some(flat) = flat {
                let table = KindTable::new(prefix, flat)?;
                table.open(self)?;
                self.kinds.push(table);
            }
        }
        let leaves = self
            .query("SELECT leaf, digest, tombstones FROM leaf_rows", Vec::new())?
            .iter()
            .map(|r| {
                let row = LeafRow {
                    digest: digest(r.get(1)),
                    tombstones: int(r.get(2)) as u32,
                };
                (int(r.first()) as Leaf, row)
            })
            .collect();
        Ok(Restored {
            members: self.decoded("members")?,
            partition: self.decoded("partition")?,
            clock: self.decoded("clock")?,
            wakes: self.decoded("wakes")?.unwrap_or_default(),
            unconfirmed: self.decoded("unconfirmed")?.unwrap_or_default(),
            leaves,
        })
    }

    fn load(&mut self, needs: &Needs) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        for leaf in &needs.leaves {
            let metas = self.objects_where("leaf = ?", vec![i64::from(*leaf).into()])?;
            loaded.leaves.push((*leaf, metas));
        }
        let mut asked: Vec<&ObjectId> = needs.objects.iter().collect();
        asked.extend(&needs.listings);
        asked.extend(needs.rows.iter().map(|(o, _)| o));
        crate::heapsort::sort_dedup(&mut asked);
        loaded.objects = self.load_objects(&asked)?;
        for object in &needs.listings {
            let rows = self.query(
                "SELECT row, digest, tombstone, own FROM rows WHERE object = ?",
                vec![object.as_str().into()],
            )?;
            let mut rows: Vec<(RowKey, RowInfo)> = rows
                .iter()
                .filter_map(|r| Some((text(r.first())?.to_owned(), info_of(r, 1))))
                .collect();
            if let Some(table) = self.table_of(object) {
                rows.extend(table.listing(self, object)?);
            }
            loaded.listings.push((object.clone(), rows));
        }
        let mut i = 0;
        while i < needs.rows.len() {
            let object = &needs.rows[i].0;
            let keys: Vec<&RowKey> = needs.rows[i..]
                .iter()
                .take_while(|(o, _)| o == object)
                .map(|(_, k)| k)
                .collect();
            i += keys.len();
            loaded.rows.extend(self.load_rows(object, &keys)?);
        }
        Ok(loaded)
    }

    fn write(&mut self, effects: &[Effect]) -> Result<(), StoreError> {
        for effect in coalesce(effects) {
            self.write_one(effect)?;
        }
        Ok(())
    }

    fn log_after(
        &mut self,
        object: &ObjectId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = self.query(
            "SELECT seq, entry FROM log WHERE object = ? AND seq > ? ORDER BY seq LIMIT ?",
            vec![
                object.as_str().into(),
                (after as i64).into(),
                (limit as i64).into(),
            ],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    int(r.first()) as u64,
                    blob(r.get(1)).unwrap_or_default().to_vec(),
                )
            })
            .collect())
    }

    fn list(
        &mut self,
        prefix: &str,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<RowStates, StoreError> {
        let from = after.map_or(prefix, |a| a.as_str().max(prefix));
        let op = if after.is_some_and(|a| a.as_str() >= prefix) {
            ">"
        } else {
            ">="
        };
        let ids = self.query(
            &format!("SELECT id FROM objects WHERE id {op} ? AND id < ? AND rows > 0 ORDER BY id LIMIT ?"),
            vec![from.into(), format!("{prefix}\u{10FFFF}").into(), (limit as i64).into()],
        )?;
        let ids: Vec<ObjectId> = ids
            .iter()
            .filter_map(|r| ObjectId::parse(text(r.first())?).ok())
            .collect();
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(Vec::new());
        };
        // Every object between the first and the last id listed was listed.
        let rows = self.query(
            "SELECT object, row, state FROM rows WHERE object >= ? AND object <= ? ORDER BY object, row",
            vec![first.as_str().into(), last.as_str().into()],
        )?;
        let mut rows: Vec<(String, RowKey, Vec<u8>)> = rows
            .iter()
            .filter_map(|r| {
                let (object, row) = (text(r.first())?, text(r.get(1))?);
                Some((object.to_owned(), row.to_owned(), blob(r.get(2))?.to_vec()))
            })
            .collect();
        let kinds = first.prefix()..=last.prefix();
        let tables: Vec<&KindTable> = self
            .kinds
            .iter()
            .filter(|k| kinds.contains(&k.prefix))
            .collect();
        for table in &tables {
            rows.extend(table.states(self, first, last)?);
        }
        if !tables.is_empty() {
            crate::heapsort::sort(&mut rows);
        }
        let mut out: RowStates = ids.into_iter().map(|id| (id, Vec::new())).collect();
        let mut at = 0;
        for (object, row, state) in rows {
            // Both are in id order: walk them together.
            while at < out.len() && out[at].0.as_str() < object.as_str() {
                at += 1;
            }
            if let Some((_, rows)) = out.get_mut(at).filter(|(id, _)| id.as_str() == object) {
                rows.push((row, state));
            }
        }
        Ok(out)
    }
}
