//! Address books (`contacts:NAME`), on every active node: a grow-only set
//! of contact rows (LWW maps, keyed by UUID) and one row per pushing
//! client with its acknowledged sequence ([`BookRow`]).
//!
//! Every node logs each contact delta it accepts, from a client or a peer,
//! in the book's ordered log, numbered in its own sequence. A client pulls
//! the changes after a [`Cursor`]: a version vector over the nodes' log
//! numbers. A pull at node N reads N's log after the cursor's N entry, so
//! a cursor stays valid wherever the next pull lands: N's log holds every
//! change N has. A pull with no N entry, or whose entries N has trimmed,
//! gets a snapshot (each contact's latest columns, in pages) and then N's
//! tail from where the snapshot started. A node trims its log to the
//! latest `max(LOG_KEEP, rows)` entries, so what a newcomer downloads grows
//! with the book, not with its history.

mod replica;
mod table;

pub use replica::{EditError, PushBatch, Replica};
pub use table::{contact_cells, contact_of_cells, CONTACT_TABLE};

use super::{Kind, OpHost};
use crate::crdt::contacts::{
    BookRow, ClockId, Column, ContactId, ContactRow, HlcStamp, Value, MAX_CONTACTS,
};
use crate::crdt::Crdt;
use crate::engine::{Merged, Policy, RowError, RowKey, RowType, Rows};
use crate::error::{ApiError, ErrorCode};
use crate::{NodeId, NodeMap};
use serde::{Deserialize, Serialize};

/// The address-book kind.
pub struct Contacts;

/// Most deltas in one push.
pub const MAX_PUSH: usize = 100;
/// Most changes in one pull's page.
pub const MAX_PAGE: usize = 1_000;
/// How far past a client's acknowledged sequence a push may start: a
/// client pushes to any node, so a node may see its numbers out of order.
pub const MAX_AHEAD: u64 = 1_000;
/// The fewest log entries a node keeps of a book.
pub const LOG_KEEP: u64 = 256;

/// A book's rows, with their log entries.
pub struct BookRows;

static ROWS: Rows<BookRow> = Rows::new(Policy::Everywhere);

impl RowType for BookRows {
    fn policy(&self) -> Policy {
        ROWS.policy()
    }
    fn merge(&self, state: Option<&[u8]>, delta: &[u8], limit: u64) -> Result<Merged, RowError> {
        ROWS.merge(state, delta, limit)
    }
    /// A client's row holds only applied numbers; a contact's, keyed by
    /// its UUID, only the contact.
    fn check(&self, key: &str, row: &[u8]) -> Result<(), crate::crdt::InvalidState> {
        ROWS.check(key, row)?;
        let row: BookRow = crate::engine::decode_row(row)?;
        let fits = if BookRow::is_client_key(key) {
            row.contact == ContactRow::default()
        } else {
            key.parse::<ContactId>().is_ok() && row.applied == Default::default()
        };
        if !fits {
            let why = format!("row `{key}` holds the other kind of book row");
            return Err(crate::crdt::InvalidState(why));
        }
        Ok(())
    }
    fn latest_stamp(&self, row: &[u8]) -> Option<u64> {
        ROWS.latest_stamp(row)
    }
    fn absorb(&self, _: &[u8], _: NodeId, _: NodeId) -> Option<Vec<u8>> {
        None
    }

    /// A contact's delta, with its row's key; a client row's nothing.
    fn log_entry(&self, row: &str, delta: &[u8]) -> Option<Vec<u8>> {
        if BookRow::is_client_key(row) {
            return None;
        }
        let delta: BookRow = postcard::from_bytes(delta).ok()?;
        postcard::to_allocvec(&(row, delta.contact)).ok()
    }

    /// Contacts in the `contact` table, one SQL row each.
    fn flat(&self) -> Option<&dyn crate::engine::Flat> {
        Some(self)
    }
}

/// One delta a client pushes: a column of a contact, stamped by the
/// client's clock, numbered in the client's sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    /// the contact
    pub id: ContactId,
    /// the column
    pub column: Column,
    /// its new value
    pub value: Value,
    /// the client's stamp
    pub timestamp: HlcStamp,
    /// the client's sequence number of this delta
    pub seq: u64,
}

/// One change a pull returns: a column of a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// the contact
    pub id: ContactId,
    /// the column
    pub column: Column,
    /// its value
    pub value: Value,
    /// its stamp
    pub timestamp: HlcStamp,
}

/// Where a client is in the nodes' logs: for each node, the last entry
/// of its log the client has; and a snapshot under way, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// per node, the number of the last log entry read there
    pub logs: NodeMap<u64>,
    /// a snapshot being read at a node
    pub snapshot: Option<Snapshot>,
}

/// A snapshot read in pages: the node, the log number it started at, and
/// the last contact sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// the node whose rows it reads
    pub node: NodeId,
    /// the node's last log number when it started
    pub at: u64,
    /// the last contact sent
    pub after: ContactId,
}

/// A client operation on an address book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// a client's deltas, in its sequence (stamps checked by the router)
    Push {
        /// the client
        client: ClockId,
        /// its deltas, with consecutive sequence numbers
        deltas: Vec<Pushed>,
        /// the client's cursor, moved past the push's own log entries when
        /// it had read this node's log to its end
        cursor: Option<Cursor>,
    },
    /// the changes after a cursor
    Changes {
        /// where the client is
        cursor: Cursor,
        /// about the most changes to send (a snapshot's page ends at a
        /// whole contact)
        limit: usize,
    },
    /// one contact
    Get(ContactId),
    /// the live contacts after one, a page
    List {
        /// the last contact of the previous page
        after: Option<ContactId>,
        /// most contacts to send
        limit: usize,
    },
}

/// What an operation gives back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// a push: the client's acknowledged sequence
    Pushed {
        /// the node
        node: NodeId,
        /// the highest sequence below which this node applied every one
        /// (it may have applied some later ones too: send them again)
        acked: u64,
        /// how many of the push's deltas were new
        applied: usize,
        /// the cursor sent, moved past the push's own entries if it could be
        cursor: Option<Cursor>,
    },
    /// a page of changes
    Changes {
        /// the node
        node: NodeId,
        /// the changes
        changes: Vec<Change>,
        /// where the client is after them
        cursor: Cursor,
        /// whether they are (part of) a snapshot
        snapshot: bool,
        /// whether more follow at once
        more: bool,
    },
    /// a contact, if the book holds it
    Contact(NodeId, ContactId, Option<ContactRow>),
    /// a page of live contacts, and the last one if more may follow
    Page(NodeId, Vec<(ContactId, ContactRow)>, Option<ContactId>),
}

impl Kind for Contacts {
    const PREFIX: &'static str = "contacts";
    type Op = Op;
    type Outcome = Outcome;

    fn rows() -> &'static dyn RowType {
        &BookRows
    }

    fn execute(op: Op, host: &mut dyn OpHost) -> Result<Outcome, ApiError> {
        match op {
            Op::Push {
                client,
                deltas,
                cursor,
            } => push(client, deltas, cursor, host),
            Op::Changes { cursor, limit } => changes(cursor, limit.clamp(1, MAX_PAGE), host),
            Op::Get(id) => {
                let key = id.as_str().to_owned();
                host.prepare(std::slice::from_ref(&key), false)?;
                let x = host.exec()?;
                let row = x.row(&key).map(|_| x.row_as::<BookRow>(&key).contact);
                Ok(Outcome::Contact(x.node(), id, row))
            }
            Op::List { after, limit } => {
                host.prepare(&[], true)?;
                let x = host.exec()?;
                let live = contacts(x.rows(), after.as_ref()).filter(|(_, r)| !r.deleted());
                let limit = limit.clamp(1, MAX_PAGE);
                let page: Vec<_> = live.take(limit).collect();
                let next = match page.len() == limit {
                    true => page.last().map(|(id, _)| id.clone()),
                    false => None,
                };
                Ok(Outcome::Page(x.node(), page, next))
            }
        }
    }

    fn event(rows: &[(RowKey, Vec<u8>)]) -> String {
        let rows = rows.iter().map(|(k, v)| (k, v.as_slice()));
        let changes: Vec<Change> = contacts(rows, None)
            .flat_map(|(id, row)| changes_of(&id, &row))
            .collect();
        serde_json::to_string(&changes).unwrap_or_default()
    }
}

/// The contacts among `rows` (key order), after `after`.
fn contacts<'a>(
    rows: impl Iterator<Item = (&'a RowKey, &'a [u8])> + 'a,
    after: Option<&'a ContactId>,
) -> impl Iterator<Item = (ContactId, ContactRow)> + 'a {
    rows.filter(move |(k, _)| after.is_none_or(|a| k.as_str() > a.as_str()))
        .filter_map(|(k, bytes)| {
            let id = k.parse().ok()?;
            let row: BookRow = postcard::from_bytes(bytes).ok()?;
            Some((id, row.contact))
        })
}

/// A row as one change per written column.
fn changes_of(id: &ContactId, row: &ContactRow) -> Vec<Change> {
    row.columns()
        .map(|(column, f)| Change {
            id: id.clone(),
            column,
            value: f.value.clone(),
            timestamp: f.stamp,
        })
        .collect()
}

fn error(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

/// Applies the deltas the book has not applied yet. A cursor that had read
/// this node's log to its end moves past the entries of the push (echo
/// suppression by the client's own sequence, never by contact id).
fn push(
    client: ClockId,
    deltas: Vec<Pushed>,
    cursor: Option<Cursor>,
    host: &mut dyn OpHost,
) -> Result<Outcome, ApiError> {
    check_push(client, &deltas)?;
    let client_key = BookRow::client_key(client);
    let mut keys: Vec<RowKey> = deltas.iter().map(|d| d.id.as_str().to_owned()).collect();
    keys.push(client_key.clone());
    host.prepare(&keys, false)?;
    let mut x = host.exec()?;
    let (now, drift) = (x.now(), x.max_drift_ms());
    for d in &deltas {
        d.timestamp
            .check(now, drift)
            .map_err(|e| error(ErrorCode::BadTimestamp, format!("delta {}: {e}", d.seq)))?;
    }
    let mut applied = x.row_as::<BookRow>(&client_key).applied;
    let (first, last) = (deltas[0].seq, deltas[deltas.len() - 1].seq);
    if first > applied.upto().saturating_add(MAX_AHEAD) {
        let upto = applied.upto();
        let e = format!("acknowledged up to {upto}; a push may start at most {MAX_AHEAD} after it, not at {first}");
        return Err(error(ErrorCode::SequenceGap, e));
    }
    let fresh: Vec<&Pushed> = deltas.iter().filter(|d| !applied.has(d.seq)).collect();
    let log_before = x.log_next();
    check_room(&x, &fresh)?;
    for d in &fresh {
        let row = ContactRow::of(d.column, d.value.clone(), d.timestamp)
            .map_err(|e| error(ErrorCode::BadValue, e.0))?;
        x.put(d.id.as_str(), &BookRow::contact(row));
    }
    let delta = BookRow::applied(first, last);
    let mut after = BookRow {
        applied: applied.clone(),
        ..BookRow::default()
    };
    if after.merge(&delta) {
        x.put(&client_key, &delta);
        applied = after.applied;
    }
    trim(&mut x, fresh.len());
    x.commit()
        .map_err(|_| error(ErrorCode::NotActive, "this node takes no writes"))?;
    let cursor = cursor.map(|c| past_own_entries(c, x.node(), log_before, x.log_next()));
    Ok(Outcome::Pushed {
        node: x.node(),
        acked: applied.upto(),
        applied: fresh.len(),
        cursor,
    })
}

/// Refuses a push that would take the book past [`MAX_CONTACTS`] rows.
fn check_room(x: &crate::engine::Exec<'_>, fresh: &[&Pushed]) -> Result<(), ApiError> {
    let mut new_ids: Vec<&str> = fresh
        .iter()
        .map(|d| d.id.as_str())
        .filter(|id| x.row(id).is_none())
        .collect();
    crate::heapsort::sort_dedup(&mut new_ids);
    if x.row_count() as usize + new_ids.len() > MAX_CONTACTS {
        let e = format!("the book holds its limit of {MAX_CONTACTS} rows");
        return Err(error(ErrorCode::BookFull, e));
    }
    Ok(())
}

/// Keeps the log's latest `max(LOG_KEEP, rows)` entries once it holds
/// twice that, counting the `appending` entries to come.
fn trim(x: &mut crate::engine::Exec<'_>, appending: usize) {
    let end = x.log_next().max(1) + appending as u64;
    let keep = LOG_KEEP.max(u64::from(x.row_count()));
    if end > 2 * keep {
        x.trim_log(end - keep);
    }
}

/// A cursor that had read `node`'s log to its end before a push (whose
/// entries are numbered `before..after`) moves past them: the client has
/// them. Any other cursor stays.
fn past_own_entries(mut cursor: Cursor, node: NodeId, before: u64, after: u64) -> Cursor {
    let read = cursor.logs.get(&node).copied().unwrap_or(0);
    let at_end = cursor.snapshot.is_none() && read == before.saturating_sub(1);
    if at_end && after > before.max(1) {
        cursor.logs.insert(node, after - 1);
    }
    cursor
}

/// A push holds 1 to [`MAX_PUSH`] deltas.
pub fn check_count(n: usize) -> Result<(), ApiError> {
    if n == 0 || n > MAX_PUSH {
        let e = format!("send 1 to {MAX_PUSH} deltas, not {n}");
        return Err(error(ErrorCode::BadBatch, e));
    }
    Ok(())
}

/// What a push must be, whatever the book holds: the router checks it
/// when it parses one, the node again when it runs it.
pub fn check_push(client: ClockId, deltas: &[Pushed]) -> Result<(), ApiError> {
    if client.is_server() {
        let e = "a client id is 16 hex digits, 0000000100000000 and above";
        return Err(error(ErrorCode::BadId, e));
    }
    check_count(deltas.len())?;
    let consecutive = deltas
        .windows(2)
        .all(|w| w[0].seq.checked_add(1) == Some(w[1].seq));
    if deltas[0].seq == 0 || !consecutive {
        let e = "sequence numbers start at 1 and are consecutive within a push";
        return Err(error(ErrorCode::BadBatch, e));
    }
    if let Some(d) = deltas.iter().find(|d| d.timestamp.writer != client) {
        let e = format!(
            "delta {} is stamped by another clock than the client's",
            d.seq
        );
        return Err(error(ErrorCode::BadTimestamp, e));
    }
    Ok(())
}

/// A page of the changes after `cursor` at this node: its log's tail, or
/// a snapshot when the log no longer holds what follows the cursor.
fn changes(mut cursor: Cursor, limit: usize, host: &mut dyn OpHost) -> Result<Outcome, ApiError> {
    host.prepare(&[], false)?;
    let (node, log_next) = {
        let x = host.exec()?;
        (x.node(), x.log_next())
    };
    let last = log_next.saturating_sub(1);
    if let Some(snap) = cursor.snapshot.take().filter(|s| s.node == node) {
        return snapshot(cursor, node, snap.at, Some(snap.after), limit, host);
    }
    let at = cursor.logs.get(&node).copied().unwrap_or(0);
    if at == 0 && last > 0 || at > last {
        return snapshot(cursor, node, last, None, limit, host);
    }
    let page = host.log_after(at, limit)?;
    if page.first().is_some_and(|(seq, _)| *seq != at + 1) {
        return snapshot(cursor, node, last, None, limit, host);
    }
    let mut changes = Vec::new();
    for (seq, entry) in &page {
        let (key, row): (RowKey, ContactRow) = postcard::from_bytes(entry)
            .map_err(|e| error(ErrorCode::Internal, format!("log entry {seq}: {e}")))?;
        if let Ok(id) = key.parse() {
            changes.extend(changes_of(&id, &row));
        }
        cursor.logs.insert(node, *seq);
    }
    let more = cursor.logs.get(&node).is_some_and(|read| *read < last);
    Ok(Outcome::Changes {
        node,
        changes,
        cursor,
        snapshot: false,
        more,
    })
}

/// A page of this node's contacts after `after`, for a snapshot begun at
/// log number `at`: when it is the last page, the cursor moves to `at`.
fn snapshot(
    mut cursor: Cursor,
    node: NodeId,
    at: u64,
    after: Option<ContactId>,
    limit: usize,
    host: &mut dyn OpHost,
) -> Result<Outcome, ApiError> {
    host.prepare(&[], true)?;
    let x = host.exec()?;
    let mut changes = Vec::new();
    let mut last_id = None;
    let mut rows = contacts(x.rows(), after.as_ref()).peekable();
    while changes.len() < limit {
        let Some((id, row)) = rows.next() else { break };
        changes.extend(changes_of(&id, &row));
        last_id = Some(id);
    }
    let done = rows.peek().is_none();
    drop(rows);
    match (done, last_id) {
        (false, Some(after)) => cursor.snapshot = Some(Snapshot { node, at, after }),
        _ => {
            cursor.logs.insert(node, at);
        }
    }
    let more = !done || at < x.log_next().saturating_sub(1);
    Ok(Outcome::Changes {
        node,
        changes,
        cursor,
        snapshot: true,
        more,
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod test;
