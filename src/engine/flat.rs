//! Rows stored flattened: a kind may keep its rows in a table of its own,
//! one SQL column per field, instead of one encoded state per row. The
//! kind declares the table ([`Table`]) and converts a row's state to its
//! cells and back ([`Flat`]); a store writes each such row as one row of
//! that table, with the engine's object, row key, digest and flags beside
//! the kind's columns. Rows the kind does not hold there (`holds` says
//! which) stay in the engine's own `rows` table.
//!
//! ```
//! use edge_crdt::engine::{Cell, CellType, Table};
//! static T: Table = Table { name: "notes", key: "id", columns: &[("body", CellType::Text)] };
//! assert_eq!(T.schema(), "CREATE TABLE IF NOT EXISTS notes (object TEXT NOT NULL, id TEXT NOT NULL, \
//! body TEXT, row_digest BLOB NOT NULL, row_tombstone INTEGER NOT NULL, row_own INTEGER NOT NULL, \
//! PRIMARY KEY (object, id)) WITHOUT ROWID");
//! assert_eq!(Cell::Text("x".into()).as_text(), Some("x"));
//! ```

use crate::crdt::InvalidState;

/// One value in a column of a kind's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// no value (a field never written)
    Null,
    /// an integer, at most [`MAX_CELL_INT`] either way
    Int(i64),
    /// text
    Text(String),
    /// bytes
    Blob(Vec<u8>),
}

/// The largest integer a cell holds exactly: a Durable Object's SQLite
/// values cross to JavaScript as numbers.
pub const MAX_CELL_INT: i64 = (1 << 53) - 1;

impl Cell {
    /// Whether a store gives this cell back exactly.
    ///
    /// ```
    /// use edge_crdt::engine::{Cell, MAX_CELL_INT};
    /// assert!(Cell::Int(-MAX_CELL_INT).check().is_ok());
    /// assert!(Cell::Int(MAX_CELL_INT + 1).check().is_err());
    /// ```
    pub fn check(&self) -> Result<(), InvalidState> {
        match self {
            Cell::Int(i) if i.unsigned_abs() > MAX_CELL_INT as u64 => Err(InvalidState(format!(
                "the integer {i} is beyond 2^53, which stored values cannot cross to JavaScript exactly"
            ))),
            _ => Ok(()),
        }
    }

    /// The text, if the cell holds text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// A column's SQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellType {
    /// `INTEGER`
    Int,
    /// `TEXT`
    Text,
    /// `BLOB`
    Blob,
}

/// A kind's own table.
#[derive(Debug)]
pub struct Table {
    /// the table's name (not one of the engine's: `meta`, `objects`,
    /// `rows`, `leaf_rows`, `log`)
    pub name: &'static str,
    /// the column holding the row key
    pub key: &'static str,
    /// the kind's columns, in the order of its cells
    pub columns: &'static [(&'static str, CellType)],
}

/// The engine's columns after the kind's: a row's digest, tombstone flag
/// and whether it holds this node's own writes.
pub const ENGINE_COLUMNS: [&str; 3] = ["row_digest", "row_tombstone", "row_own"];

impl Table {
    /// `CREATE TABLE IF NOT EXISTS` for this table.
    pub fn schema(&self) -> String {
        let mut columns = format!("object TEXT NOT NULL, {} TEXT NOT NULL", self.key);
        for (name, kind) in self.columns {
            let kind = match kind {
                CellType::Int => "INTEGER",
                CellType::Text => "TEXT",
                CellType::Blob => "BLOB",
            };
            columns += &format!(", {name} {kind}");
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({columns}, {} BLOB NOT NULL, {} INTEGER NOT NULL, \
             {} INTEGER NOT NULL, PRIMARY KEY (object, {})) WITHOUT ROWID",
            self.name, ENGINE_COLUMNS[0], ENGINE_COLUMNS[1], ENGINE_COLUMNS[2], self.key
        )
    }

    /// The key column, the kind's columns and the engine's, comma-separated.
    pub fn column_list(&self) -> String {
        let mut names = vec![self.key];
        names.extend(self.columns.iter().map(|(n, _)| *n));
        names.extend(ENGINE_COLUMNS);
        names.join(", ")
    }
}

/// How a kind's rows map to its table.
pub trait Flat: Sync {
    /// The table.
    fn table(&self) -> &'static Table;

    /// Whether row `row` is kept in the table (else in the engine's `rows`).
    fn holds(&self, row: &str) -> bool;

    /// A stored state's cells, one per column of the table, in order.
    fn cells(&self, state: &[u8]) -> Result<Vec<Cell>, InvalidState>;

    /// The state the cells hold: `cells(state(c)) == c` and
    /// `state(cells(s)) == s` for every state the kind stores.
    fn state(&self, cells: &[Cell]) -> Result<Vec<u8>, InvalidState>;

    /// The cells a store writes: [`Flat::cells`], each one it can give back
    /// exactly ([`Cell::check`]).
    fn stored_cells(&self, state: &[u8]) -> Result<Vec<Cell>, InvalidState> {
        let cells = self.cells(state)?;
        cells.iter().try_for_each(Cell::check)?;
        Ok(cells)
    }

    /// `state(stored_cells(state))`: what a store gives back of what it was given.
    fn round_trip(&self, state: &[u8]) -> Result<Vec<u8>, InvalidState> {
        self.state(&self.stored_cells(state)?)
    }
}

/// The tables a store keeps besides the kinds': no kind may take one.
pub const ENGINE_TABLES: [&str; 5] = ["meta", "objects", "rows", "leaf_rows", "log"];
