//! What clients ask of a topic: append, its heads, one event, queries in
//! the total order (after XMTP's v1 `QueryRequest`: times, paging by a
//! cursor, either direction), several topics at once, the node's arrival
//! order (for followers), and the topic as a CAR file.

use super::{append, heads, Events};
use crate::crdt::stream::{car, Cid, Dag, Event, IdText};
use crate::engine::{Exec, ObjectId, RowKey, RowType};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::{Kind, OpHost};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Most events in one page.
pub const MAX_PAGE: usize = 1_000;
/// Most topics in one query.
pub const MAX_TOPICS: usize = 32;

/// Which way a query pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// the total order
    #[default]
    Ascending,
    /// the total order, backwards
    Descending,
}

/// A query of one topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// the earliest timestamp, inclusive
    pub start_time_ns: Option<u64>,
    /// the latest timestamp, inclusive
    pub end_time_ns: Option<u64>,
    /// most events (1 to [`MAX_PAGE`])
    pub limit: usize,
    /// which way
    pub direction: Direction,
    /// the last event of the previous page
    pub cursor: Option<Cid>,
}

/// A client operation on a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// appends a message, stamped now unless `timestamp_ns` is given
    Append {
        /// the message
        message: ByteBuf,
        /// its timestamp
        timestamp_ns: Option<u64>,
    },
    /// the topic's heads here
    Heads,
    /// one event
    Get(Cid),
    /// a page of the topic in the total order
    Query(Query),
    /// pages of several topics: every node answers for those it replicates
    Batch(Vec<(String, Query)>),
    /// the node's arrival order after a log number
    Log {
        /// the last number read
        after: u64,
        /// most entries
        limit: usize,
    },
    /// the topic as a CARv1 file whose roots are its heads
    Export,
}

/// A page of events, and the cursor of the next if more may follow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// ids and blocks
    pub events: Vec<(Cid, ByteBuf)>,
    /// the last event, if more follow
    pub cursor: Option<Cid>,
}

/// What an operation gives back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// the appended event and the node's heads after it
    Appended {
        /// the node
        node: NodeId,
        /// the event's id
        cid: Cid,
        /// what it links
        links: Vec<Cid>,
        /// the node's heads
        heads: Vec<Cid>,
    },
    /// the node's heads
    Heads(NodeId, Vec<Cid>),
    /// an event's block, if held
    Event(NodeId, Cid, Option<ByteBuf>),
    /// a page
    Page(NodeId, Page),
    /// per topic asked, the page, or nothing if this node does not replicate it
    Batch(NodeId, Vec<(String, Option<Result<Page, ApiError>>)>),
    /// log entries: number, id, block; and whether more follow
    Log(NodeId, Vec<(u64, Cid, ByteBuf)>, bool),
    /// a CAR file
    Car(NodeId, ByteBuf),
}

fn error(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

/// Executes an operation.
pub fn execute(op: Op, host: &mut dyn OpHost) -> Result<Outcome, ApiError> {
    match op {
        Op::Append {
            message,
            timestamp_ns,
        } => add(message.into_vec(), timestamp_ns, host),
        Op::Heads => {
            host.prepare(&[], false)?;
            let x = host.exec()?;
            Ok(Outcome::Heads(x.node(), heads(&x)))
        }
        Op::Get(cid) => {
            host.prepare(&[cid.text()], false)?;
            let x = host.exec()?;
            let block = x.row(&cid.text()).map(|b| ByteBuf::from(b.to_vec()));
            Ok(Outcome::Event(x.node(), cid, block))
        }
        Op::Query(q) => {
            host.prepare(&[], true)?;
            let x = host.exec()?;
            Ok(Outcome::Page(x.node(), query(&x, &q)?))
        }
        Op::Batch(queries) => batch(queries, host),
        Op::Log { after, limit } => log(after, limit, host),
        Op::Export => {
            host.prepare(&[], true)?;
            let x = host.exec()?;
            let dag = dag(&x);
            let roots: Vec<Cid> = dag.heads().iter().copied().collect();
            let blocks = dag
                .order()
                .into_iter()
                .filter_map(|id| Some((id, x.row(&id.text())?.to_vec())));
            Ok(Outcome::Car(x.node(), ByteBuf::from(car(&roots, blocks))))
        }
    }
}

/// Appends at this node: the event links its heads.
fn add(
    message: Vec<u8>,
    timestamp_ns: Option<u64>,
    host: &mut dyn OpHost,
) -> Result<Outcome, ApiError> {
    let limit = super::LIMITS.max_message;
    if message.len() > limit {
        let e = format!(
            "a message holds at most {limit} bytes, not {}",
            message.len()
        );
        return Err(error(ErrorCode::ValueTooLarge, e));
    }
    host.prepare(&[], false)?;
    let mut x = host.exec()?;
    let latest = (x.now() + x.max_drift_ms()).saturating_mul(1_000_000);
    let ts = timestamp_ns.unwrap_or(x.now().saturating_mul(1_000_000));
    if ts > latest {
        let e =
            format!("timestamp_ns {ts} is more than the allowed drift ahead of this node's clock");
        return Err(error(ErrorCode::BadTimestamp, e));
    }
    let (cid, event) = append(&mut x, message, ts);
    x.commit()
        .map_err(|_| error(ErrorCode::NotActive, "this node takes no writes"))?;
    Ok(Outcome::Appended {
        node: x.node(),
        cid,
        links: event.links,
        heads: heads(&x),
    })
}

/// The topic's loaded events.
fn dag(x: &Exec<'_>) -> Dag {
    super::dag_of(x.rows())
}

/// A page of the topic's events in the total order.
fn query(x: &Exec<'_>, q: &Query) -> Result<Page, ApiError> {
    let dag = dag(x);
    let ordered: Vec<(Cid, u64)> = dag
        .order()
        .into_iter()
        .map(|id| (id, dag.get(&id).map_or(0, |e: &Event| e.timestamp_ns)))
        .collect();
    let (ids, cursor) = page(&ordered, q)?;
    let events = ids
        .into_iter()
        .filter_map(|id| Some((id, ByteBuf::from(x.row(&id.text())?.to_vec()))))
        .collect();
    Ok(Page { events, cursor })
}

/// The ids of a page of `ordered` (ids in the total order, with their
/// timestamps), and the cursor of the next page if more follow. A cursor
/// that names no event in the query's range is 400 `invalid_cursor`.
pub fn page(ordered: &[(Cid, u64)], q: &Query) -> Result<(Vec<Cid>, Option<Cid>), ApiError> {
    let (start, end) = (
        q.start_time_ns.unwrap_or(0),
        q.end_time_ns.unwrap_or(u64::MAX),
    );
    let mut range: Vec<Cid> = ordered
        .iter()
        .filter(|(_, ts)| (start..=end).contains(ts))
        .map(|(id, _)| *id)
        .collect();
    if q.direction == Direction::Descending {
        range.reverse();
    }
    let from = match &q.cursor {
        None => 0,
        Some(c) => match range.iter().position(|id| id == c) {
            Some(at) => at + 1,
            None => {
                let e = format!(
                    "the cursor {} names no event of this query's range",
                    c.text()
                );
                return Err(error(ErrorCode::InvalidCursor, e));
            }
        },
    };
    let limit = q.limit.clamp(1, MAX_PAGE);
    let ids: Vec<Cid> = range.iter().skip(from).take(limit).copied().collect();
    let more = from + ids.len() < range.len();
    let cursor = if more { ids.last().copied() } else { None };
    Ok((ids, cursor))
}

/// Each topic this node replicates, queried.
fn batch(queries: Vec<(String, Query)>, host: &mut dyn OpHost) -> Result<Outcome, ApiError> {
    let mut pages = Vec::new();
    let mut node = None;
    for (topic, q) in queries {
        let object = ObjectId::new(super::Stream::PREFIX, &topic)
            .map_err(|e| error(ErrorCode::BadName, e.0))?;
        host.on(object);
        let x = host.exec()?;
        node = Some(x.node());
        if !x.replicates() {
            pages.push((topic, None));
            continue;
        }
        host.prepare(&[], true)?;
        let x = host.exec()?;
        pages.push((topic, Some(query(&x, &q))));
    }
    let node = node.ok_or_else(|| error(ErrorCode::BadBatch, "a query names 1 or more topics"))?;
    Ok(Outcome::Batch(node, pages))
}

/// The node's log of arrivals after `after`, with the blocks.
fn log(after: u64, limit: usize, host: &mut dyn OpHost) -> Result<Outcome, ApiError> {
    let entries = host.log_after(after, limit.clamp(1, MAX_PAGE))?;
    let ids: Vec<(u64, Cid)> = entries
        .iter()
        .filter_map(|(seq, e)| Some((*seq, Cid::from_text(std::str::from_utf8(e).ok()?)?)))
        .collect();
    let keys: Vec<RowKey> = ids.iter().map(|(_, id)| id.text()).collect();
    host.prepare(&keys, false)?;
    let x = host.exec()?;
    let last = entries.last().map_or(after, |(seq, _)| *seq);
    let more = last + 1 < x.log_next();
    let out = ids
        .into_iter()
        .filter_map(|(seq, id)| Some((seq, id, ByteBuf::from(x.row(&id.text())?.to_vec()))))
        .collect();
    Ok(Outcome::Log(x.node(), out, more))
}

/// The data of a server-sent event: `[{cid, block}]`, blocks in base64.
pub fn event_data(rows: &[(RowKey, Vec<u8>)]) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        cid: &'a str,
        block: String,
    }
    let locals = Events.locals();
    let data: Vec<Data> = rows
        .iter()
        .filter(|(k, _)| !locals.contains(&k.as_str()))
        .map(|(k, b)| Data {
            cid: k,
            block: crate::codec::to_base64(b),
        })
        .collect();
    serde_json::to_string(&data).unwrap_or_default()
}

#[cfg(test)]
mod test {
    use super::*;

    fn ids(n: u64) -> Vec<(Cid, u64)> {
        (0..n)
            .map(|i| (Event::new("t", i, vec![], vec![]).id(), i))
            .collect()
    }

    #[test]
    fn pages_in_either_direction_cover_each_event_once() {
        let all = ids(7);
        for direction in [Direction::Ascending, Direction::Descending] {
            let mut q = Query {
                limit: 3,
                direction,
                start_time_ns: Some(1),
                end_time_ns: Some(5),
                cursor: None,
            };
            let mut seen = Vec::new();
            loop {
                let (page, next) = page(&all, &q).unwrap();
                seen.extend(page);
                match next {
                    Some(c) => q.cursor = Some(c),
                    None => break,
                }
            }
            let mut want: Vec<Cid> = all[1..=5].iter().map(|(id, _)| *id).collect();
            if direction == Direction::Descending {
                want.reverse();
            }
            assert_eq!(seen, want);
        }
    }

    #[test]
    fn a_cursor_outside_the_range_is_invalid() {
        let all = ids(4);
        let q = Query {
            limit: 2,
            start_time_ns: Some(2),
            cursor: Some(all[0].0),
            ..Query::default()
        };
        assert_eq!(page(&all, &q).unwrap_err().error, ErrorCode::InvalidCursor);
    }
}
