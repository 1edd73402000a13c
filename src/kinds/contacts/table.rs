//! A book's contacts stored flattened, as in the seed: one SQL row per
//! contact, `id, name, name_ts, phone, phone_ts, email, email_ts,
//! tombstone, tombstone_ts`, each stamp in its text form and `NULL` for a
//! column never written. A client's applied numbers stay in the engine's
//! `rows` table. The command-line client's database uses the same columns.

use super::BookRows;
use crate::crdt::contacts::{BookRow, Column, ContactRow, Value};
use crate::crdt::{Crdt, InvalidState};
use crate::engine::{Cell, CellType, Flat, Table};

/// The contact table.
pub static CONTACT_TABLE: Table = Table {
    name: "contact",
    key: "id",
    columns: &[
        ("name", CellType::Text),
        ("name_ts", CellType::Text),
        ("phone", CellType::Text),
        ("phone_ts", CellType::Text),
        ("email", CellType::Text),
        ("email_ts", CellType::Text),
        ("tombstone", CellType::Int),
        ("tombstone_ts", CellType::Text),
    ],
};

/// A contact's cells: each column's value and stamp, in the table's order.
pub fn contact_cells(row: &ContactRow) -> Vec<Cell> {
    let mut cells = Vec::with_capacity(2 * Column::ALL.len());
    for column in Column::ALL {
        match row.field(column) {
            Some(field) => {
                cells.push(match &field.value {
                    Value::Text(text) => Cell::Text(text.clone()),
                    Value::Flag(flag) => Cell::Int(i64::from(*flag)),
                });
                cells.push(Cell::Text(field.stamp.to_string()));
            }
            None => cells.extend([Cell::Null, Cell::Null]),
        }
    }
    cells
}

/// The contact that `cells` hold.
pub fn contact_of_cells(cells: &[Cell]) -> Result<ContactRow, InvalidState> {
    if cells.len() != 2 * Column::ALL.len() {
        return Err(InvalidState(format!("{} cells in a contact", cells.len())));
    }
    let mut row = ContactRow::default();
    for (column, pair) in Column::ALL.into_iter().zip(cells.chunks(2)) {
        let value = match (&pair[0], &pair[1]) {
            (_, Cell::Null) => continue,
            (Cell::Int(flag), _) if column == Column::Tombstone => Value::Flag(*flag != 0),
            (Cell::Text(text), _) if column != Column::Tombstone => Value::Text(text.clone()),
            (other, _) => return Err(InvalidState(format!("`{}` holds {other:?}", column.name()))),
        };
        let stamp = pair[1]
            .as_text()
            .ok_or_else(|| InvalidState(format!("`{}_ts` is not text", column.name())))?
            .parse()
            .map_err(|e| InvalidState(format!("`{}_ts`: {e}", column.name())))?;
        let field = ContactRow::of(column, value, stamp).map_err(|e| InvalidState(e.0))?;
        row.merge(&field);
    }
    Ok(row)
}

impl Flat for BookRows {
    fn table(&self) -> &'static Table {
        &CONTACT_TABLE
    }

    fn holds(&self, row: &str) -> bool {
        !BookRow::is_client_key(row)
    }

    fn cells(&self, state: &[u8]) -> Result<Vec<Cell>, InvalidState> {
        let row: BookRow = crate::engine::decode_row(state)?;
        if row.applied != Default::default() {
            return Err(InvalidState("a contact's row holds push numbers".into()));
        }
        Ok(contact_cells(&row.contact))
    }

    fn state(&self, cells: &[Cell]) -> Result<Vec<u8>, InvalidState> {
        let row = BookRow::contact(contact_of_cells(cells)?);
        postcard::to_allocvec(&row).map_err(|e| InvalidState(e.to_string()))
    }
}
