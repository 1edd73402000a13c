//! The kinds' own tables in a node's SQLite ([`Flat`]): a row its kind
//! keeps flattened is one SQL row of the kind's table, the kind's columns
//! between the engine's `object` and row key and its `row_digest`,
//! `row_tombstone` and `row_own`. A write replaces that one row.

use super::sql_store::{blob, digest, digest_value, info_of, int, text, SqlStore};
use crate::engine::{
    Cell, Flat, ObjectId, RowInfo, RowKey, StoreError, StoredRow, ENGINE_COLUMNS, ENGINE_TABLES,
};
use worker::SqlStorageValue as V;

/// Values bound by one query (SQLite storage binds at most 100).
const PER_QUERY: usize = 100;

/// One kind's table, with its statements.
pub(crate) struct KindTable {
    /// the kind's prefix
    pub prefix: &'static str,
    /// how its rows map to the table
    pub flat: &'static dyn Flat,
    insert: String,
    select: String,
    listing: String,
    delete: String,
    range: String,
}

fn cell_value(cell: &Cell) -> V {
    match cell {
        Cell::Null => V::Null,
        Cell::Int(i) => V::Integer(*i),
        Cell::Text(t) => V::String(t.clone()),
        Cell::Blob(b) => V::Blob(b.clone()),
    }
}

fn value_cell(value: Option<&V>) -> Cell {
    match value {
        Some(V::Integer(i)) => Cell::Int(*i),
        Some(V::Float(f)) => Cell::Int(*f as i64),
        Some(V::Boolean(b)) => Cell::Int(i64::from(*b)),
        Some(V::String(s)) => Cell::Text(s.clone()),
        Some(V::Blob(b)) => Cell::Blob(b.clone()),
        _ => Cell::Null,
    }
}

impl KindTable {
    /// The table of the kind with `prefix`; its name must not be one of
    /// the engine's.
    pub fn new(prefix: &'static str, flat: &'static dyn Flat) -> Result<KindTable, StoreError> {
        let table = flat.table();
        if ENGINE_TABLES.contains(&table.name) {
            return Err(StoreError(format!(
                "kind `{prefix}` names its table `{}`, one of the engine's",
                table.name
            )));
        }
        let (name, key, list) = (table.name, table.key, table.column_list());
        let marks = vec!["?"; table.columns.len() + ENGINE_COLUMNS.len() + 2].join(", ");
        Ok(KindTable {
            prefix,
            flat,
            insert: format!("INSERT OR REPLACE INTO {name} (object, {list}) VALUES ({marks})"),
            select: format!("SELECT {list} FROM {name} WHERE object = ? AND {key} IN "),
            listing: format!(
                "SELECT {key}, {} FROM {name} WHERE object = ?",
                ENGINE_COLUMNS.join(", ")
            ),
            delete: format!("DELETE FROM {name} WHERE object = ? AND {key} = ?"),
            range: format!(
                "SELECT object, {list} FROM {name} WHERE object >= ? AND object <= ? ORDER BY object, {key}"
            ),
        })
    }

    /// Creates the table if need be, and moves the kind's rows still in
    /// the engine's `rows` table into it.
    pub fn open(&self, store: &SqlStore) -> Result<(), StoreError> {
        store.run(&self.flat.table().schema(), Vec::new())?;
        let from = format!("{}:", self.prefix);
        let to = format!("{};", self.prefix);
        let stored = store.query(
            "SELECT object, row, state, digest, tombstone, own FROM rows WHERE object >= ? AND object < ?",
            vec![from.as_str().into(), to.as_str().into()],
        )?;
        for r in &stored {
            let (Some(object), Some(row)) = (text(r.first()), text(r.get(1))) else {
                continue;
            };
            if !self.flat.holds(row) {
                continue;
            }
            let object = ObjectId::parse(object).map_err(|e| StoreError(e.0))?;
            let state = blob(r.get(2)).unwrap_or_default();
            self.store(store, &object, row, state, &info_of(r, 3))?;
            store.delete_row(&object, row)?;
        }
        Ok(())
    }

    /// Writes one row.
    pub fn store(
        &self,
        store: &SqlStore,
        object: &ObjectId,
        row: &str,
        state: &[u8],
        info: &RowInfo,
    ) -> Result<(), StoreError> {
        let cells = self
            .flat
            .stored_cells(state)
            .map_err(|e| StoreError(format!("{object} row `{row}`: {e}")))?;
        let mut args = vec![V::from(object.as_str()), V::from(row)];
        args.extend(cells.iter().map(cell_value));
        args.push(digest_value(info.digest));
        args.push(i64::from(info.tombstone).into());
        args.push(i64::from(info.own).into());
        store.run(&self.insert, args)
    }

    /// Deletes one row.
    pub fn delete(&self, store: &SqlStore, object: &ObjectId, row: &str) -> Result<(), StoreError> {
        store.run(&self.delete, vec![object.as_str().into(), row.into()])
    }

    /// `(key, state, info)` of a selected row of the column list.
    fn decode(&self, object: &str, r: &[V]) -> Result<(RowKey, StoredRow), StoreError> {
        let n = self.flat.table().columns.len();
        let key = text(r.first()).unwrap_or_default().to_owned();
        let cells: Vec<Cell> = (1..=n).map(|i| value_cell(r.get(i))).collect();
        let state = self
            .flat
            .state(&cells)
            .map_err(|e| StoreError(format!("{object} row `{key}` in table: {e}")))?;
        let info = RowInfo {
            digest: digest(r.get(n + 1)),
            tombstone: int(r.get(n + 2)) != 0,
            own: int(r.get(n + 3)) != 0,
        };
        Ok((key, StoredRow { info, state }))
    }

    /// The rows among `keys` that are stored.
    pub fn load(
        &self,
        store: &SqlStore,
        object: &ObjectId,
        keys: &[&RowKey],
    ) -> Result<Vec<(RowKey, StoredRow)>, StoreError> {
        let mut out = Vec::new();
        for chunk in keys.chunks(PER_QUERY - 1) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut args = vec![V::from(object.as_str())];
            args.extend(chunk.iter().map(|k| V::from(k.as_str())));
            for r in store.query(&format!("{}({marks})", self.select), args)? {
                out.push(self.decode(object.as_str(), &r)?);
            }
        }
        Ok(out)
    }

    /// Every row's key and info.
    pub fn listing(
        &self,
        store: &SqlStore,
        object: &ObjectId,
    ) -> Result<Vec<(RowKey, RowInfo)>, StoreError> {
        let rows = store.query(&self.listing, vec![object.as_str().into()])?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((text(r.first())?.to_owned(), info_of(r, 1))))
            .collect())
    }

    /// `(object, row, state)` of every row of the objects from `first` to
    /// `last`, in order.
    pub fn states(
        &self,
        store: &SqlStore,
        first: &ObjectId,
        last: &ObjectId,
    ) -> Result<Vec<(String, RowKey, Vec<u8>)>, StoreError> {
        let rows = store.query(
            &self.range,
            vec![first.as_str().into(), last.as_str().into()],
        )?;
        let mut out = Vec::new();
        for r in &rows {
            let object = text(r.first()).unwrap_or_default();
            let (key, stored) = self.decode(object, r.get(1..).unwrap_or_default())?;
            out.push((object.to_owned(), key, stored.state));
        }
        Ok(out)
    }
}
