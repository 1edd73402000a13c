//! The client's SQLite database: the contacts flattened as in the seed
//! (the columns of the nodes' `contact` table, `CONTACT_TABLE`),
//! the durable outbox, and the client's clock, next number and cursor.
//! Every change to the replica is written in one transaction, so a client
//! killed at any point restarts from a consistent state and loses nothing.

use edge_crdt::api::contacts::{cursor_token, parse_cursor};
use edge_crdt::crdt::contacts::{
    ClockId, Column, ContactClock, ContactId, ContactRow, HlcStamp, Value,
};
use edge_crdt::engine::Cell;
use edge_crdt::kinds::contacts::{contact_cells, contact_of_cells, Pushed, Replica};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::BTreeMap;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS contact (
    id TEXT PRIMARY KEY,
    name TEXT, name_ts TEXT,
    phone TEXT, phone_ts TEXT,
    email TEXT, email_ts TEXT,
    tombstone INTEGER, tombstone_ts TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL, col TEXT NOT NULL, value TEXT NOT NULL, ts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// The database of one client of one book.
pub struct Db {
    conn: Connection,
}

type Result<T> = std::result::Result<T, String>;

fn sql(e: rusqlite::Error) -> String {
    format!("sqlite: {e}")
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        Value::Flag(f) => f.to_string(),
    }
}

fn cell_of(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        _ => Cell::Null,
    }
}

fn sql_value(cell: Cell) -> SqlValue {
    match cell {
        Cell::Null => SqlValue::Null,
        Cell::Int(i) => SqlValue::Integer(i),
        Cell::Text(t) => SqlValue::Text(t),
        Cell::Blob(b) => SqlValue::Blob(b),
    }
}

fn value_of(column: Column, text: String) -> Value {
    match column {
        Column::Tombstone => Value::Flag(text == "true"),
        _ => Value::Text(text),
    }
}

impl Db {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &str) -> Result<Db> {
        let conn = Connection::open(path).map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Db { conn })
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql)
    }

    /// The replica stored here, or a new one for `client` (stored at once).
    pub fn load(&mut self, client: ClockId) -> Result<Replica> {
        let Some(clock) = self.meta("clock")? else {
            let replica = Replica::new(client);
            self.save(&replica, &[])?;
            return Ok(replica);
        };
        let last: HlcStamp = clock.parse().map_err(|e| format!("stored clock: {e}"))?;
        let next_seq: u64 = self
            .meta("next_seq")?
            .unwrap_or_default()
            .parse()
            .unwrap_or(1);
        let cursor = parse_cursor(self.meta("cursor")?.as_deref()).map_err(|e| e.message)?;
        let replica = Replica::from_parts(
            ContactClock::resume(last),
            self.rows()?,
            self.outbox()?,
            next_seq,
            cursor,
        );
        replica
            .check()
            .map_err(|e| format!("stored replica: {e}"))?;
        Ok(replica)
    }

    fn rows(&self) -> Result<BTreeMap<ContactId, ContactRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, name_ts, phone, phone_ts, email, email_ts, tombstone, tombstone_ts FROM contact")
            .map_err(sql)?;
        let mut rows = BTreeMap::new();
        let mut q = stmt.query([]).map_err(sql)?;
        while let Some(r) = q.next().map_err(sql)? {
            let id: String = r.get(0).map_err(sql)?;
            let cells = (1..=8)
                .map(|i| r.get_ref(i).map(cell_of).map_err(sql))
                .collect::<Result<Vec<Cell>>>()?;
            let row = contact_of_cells(&cells).map_err(|e| format!("stored contact {id}: {e}"))?;
            rows.insert(id.parse().map_err(|e| format!("stored id: {e}"))?, row);
        }
        Ok(rows)
    }

    fn outbox(&self) -> Result<Vec<Pushed>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, id, col, value, ts FROM outbox ORDER BY seq")
            .map_err(sql)?;
        let mut out = Vec::new();
        let mut q = stmt.query([]).map_err(sql)?;
        while let Some(r) = q.next().map_err(sql)? {
            let column: Column = r.get::<_, String>(2).map_err(sql)?.parse()?;
            out.push(Pushed {
                seq: r.get::<_, i64>(0).map_err(sql)? as u64,
                id: r.get::<_, String>(1).map_err(sql)?.parse()?,
                column,
                value: value_of(column, r.get(3).map_err(sql)?),
                timestamp: r
                    .get::<_, String>(4)
                    .map_err(sql)?
                    .parse()
                    .map_err(|e| format!("stored stamp: {e}"))?,
            });
        }
        Ok(out)
    }

    /// Writes the rows `ids` of `replica`, its outbox, clock, next number
    /// and cursor, in one transaction.
    pub fn save(&mut self, replica: &Replica, ids: &[ContactId]) -> Result<()> {
        let tx = self.conn.transaction().map_err(sql)?;
        for id in ids {
            let Some(row) = replica.get(id) else { continue };
            let mut values = vec![SqlValue::Text(id.to_string())];
            values.extend(contact_cells(row).into_iter().map(sql_value));
            tx.execute(
                "INSERT OR REPLACE INTO contact VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params_from_iter(values),
            )
            .map_err(sql)?;
        }
        let first = replica
            .outbox()
            .first()
            .map_or(replica.next_seq(), |d| d.seq);
        tx.execute("DELETE FROM outbox WHERE seq < ?1", [first as i64])
            .map_err(sql)?;
        for d in replica.outbox() {
            tx.execute(
                "INSERT OR IGNORE INTO outbox VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    d.seq as i64,
                    d.id.as_str(),
                    d.column.name(),
                    text_of(&d.value),
                    d.timestamp.to_string()
                ],
            )
            .map_err(sql)?;
        }
        let meta = [
            ("clock", replica.clock().last().to_string()),
            ("next_seq", replica.next_seq().to_string()),
            ("cursor", cursor_token(replica.cursor())),
        ];
        for (key, value) in meta {
            tx.execute(
                "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
                params![key, value],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }
}
