//! The address-book endpoints, `/api/contacts/:book/…`: pushes of a
//! client's deltas, pulls of the changes after a cursor, the live contacts
//! in pages, one contact, and (generic) server-sent events.
//!
//! A cursor is opaque to clients: the base64url (no padding) of a postcard
//! envelope of [`Cursor`], a version vector over the nodes' log numbers.
//!
//! ```
//! use edge_crdt::api::contacts::{cursor_token, parse_cursor};
//! use edge_crdt::kinds::contacts::Cursor;
//! let token = cursor_token(&Cursor::default());
//! assert_eq!(parse_cursor(Some(&token)).unwrap(), Cursor::default());
//! assert_eq!(parse_cursor(None).unwrap(), Cursor::default());
//! assert_eq!(parse_cursor(Some("!!")).unwrap_err().error.as_str(), "bad_cursor");
//! ```

use super::counter::expect;
use super::http::{check_body_size, json_object, postcard_body, Format, HttpRequest, Reply};
use super::{named_object, Access, CacheUse, KindApi, Request, Secret};
use crate::codec;
use crate::crdt::contacts::{ClockId, Column, ContactId, ContactRow, HlcStamp, Value};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::contacts::{
    check_count, check_push, Change, Contacts, Cursor, Op, Outcome, Pushed, MAX_PAGE,
};
use crate::kinds::Kind;
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The largest push body: [`MAX_PUSH`](crate::kinds::contacts::MAX_PUSH) deltas of the largest values.
pub const MAX_PUSH_BODY: usize = 64 << 10;

/// The largest cursor token, in characters.
pub const MAX_CURSOR: usize = 4096;

/// The default page of a pull or a listing.
pub const DEFAULT_PAGE: usize = 200;

fn bad(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

/// The body of a push.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushBody {
    /// the client's clock id, 16 hex digits
    pub client: ClientId,
    /// its deltas, numbered consecutively
    pub deltas: Vec<DeltaJson>,
    /// its cursor, if it wants it moved past its own changes
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A client id as the API spells it: 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(pub ClockId);

impl TryFrom<String> for ClientId {
    type Error = String;

    fn try_from(text: String) -> Result<ClientId, String> {
        let ok = text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit());
        match ok.then(|| u64::from_str_radix(&text, 16)) {
            Some(Ok(id)) => Ok(ClientId(ClockId(id))),
            _ => Err(format!(
                "a client id is 16 hex digits, not `{}`",
                clip(&text)
            )),
        }
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0.to_string()
    }
}

/// A delta as JSON: `{id, column, value, timestamp, seq}`, each field
/// parsed into its type (a bad one is a 400 that names it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaJson {
    /// the contact's UUID
    pub id: String,
    /// `name`, `phone`, `email` or `tombstone`
    pub column: String,
    /// text, or true/false for `tombstone`
    pub value: Value,
    /// the client's HLC stamp
    pub timestamp: String,
    /// the client's sequence number
    pub seq: u64,
}

impl DeltaJson {
    fn parse(&self, i: usize, now: u64, max_drift_ms: u64) -> Result<Pushed, ApiError> {
        let at = |e: String| format!("deltas[{i}]: {e}");
        let id: ContactId = self.id.parse().map_err(|e| bad(ErrorCode::BadId, at(e)))?;
        let column: Column = self
            .column
            .parse()
            .map_err(|e| bad(ErrorCode::BadColumn, at(e)))?;
        let timestamp: HlcStamp = self
            .timestamp
            .parse()
            .map_err(|e| stamp_error(at(format!("{e}")), e))?;
        timestamp
            .check(now, max_drift_ms)
            .map_err(|e| stamp_error(at(e.to_string()), e))?;
        crate::crdt::contacts::check_value(column, &self.value)
            .map_err(|e| bad(ErrorCode::BadValue, at(e.0)))?;
        Ok(Pushed {
            id,
            column,
            value: self.value.clone(),
            timestamp,
            seq: self.seq,
        })
    }

    /// The JSON form of a pushed delta.
    pub fn of(d: &Pushed) -> DeltaJson {
        DeltaJson {
            id: d.id.to_string(),
            column: d.column.name().to_owned(),
            value: d.value.clone(),
            timestamp: d.timestamp.to_string(),
            seq: d.seq,
        }
    }
}

/// A malformed stamp is a 400; one refused for what it says, a 422.
fn stamp_error(message: String, e: crate::crdt::contacts::StampError) -> ApiError {
    use crate::crdt::contacts::StampError::Malformed;
    let code = match e {
        Malformed => ErrorCode::BadJson,
        _ => ErrorCode::BadTimestamp,
    };
    bad(code, message)
}

/// A push in postcard: the same fields, typed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushPostcard {
    /// the client
    pub client: ClockId,
    /// its deltas
    pub deltas: Vec<Pushed>,
    /// its cursor
    pub cursor: Option<Cursor>,
}

/// Parses a push body and checks every delta against the server clock.
pub fn parse_push(req: &HttpRequest) -> Result<Op, ApiError> {
    check_body_size(req.body.len(), MAX_PUSH_BODY)?;
    let drift = req.settings.max_drift_ms;
    let (client, deltas, cursor) = match req.format()? {
        Format::Json => {
            let expected = r#"{"client": "<16 hex>", "deltas": [{"id", "column", "value", "timestamp", "seq"}], "cursor"?: "…"}"#;
            let body: PushBody = json_object(&req.body, expected)?;
            check_count(body.deltas.len())?;
            let deltas = body
                .deltas
                .iter()
                .enumerate()
                .map(|(i, d)| d.parse(i, req.now, drift))
                .collect::<Result<Vec<_>, _>>()?;
            let cursor = body
                .cursor
                .as_deref()
                .map(|c| parse_cursor(Some(c)))
                .transpose()?;
            (body.client.0, deltas, cursor)
        }
        Format::Postcard => {
            let body: PushPostcard = postcard_body(&req.body, MAX_PUSH_BODY, "a push")?;
            check_count(body.deltas.len())?;
            for (i, d) in body.deltas.iter().enumerate() {
                DeltaJson::of(d).parse(i, req.now, drift)?;
            }
            (body.client, body.deltas, body.cursor)
        }
    };
    check_push(client, &deltas)?;
    Ok(Op::Push {
        client,
        deltas,
        cursor,
    })
}

/// A cursor token; none is the start.
pub fn parse_cursor(token: Option<&str>) -> Result<Cursor, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(Cursor::default());
    };
    let wrong = || bad(ErrorCode::BadCursor, "the cursor is not one this API gave");
    if token.len() > MAX_CURSOR {
        return Err(wrong());
    }
    let bytes = codec::base64_decode(token, codec::Base64::UrlSafeNoPad).ok_or_else(wrong)?;
    codec::decode(&bytes, MAX_CURSOR).map_err(|_| wrong())
}

/// The token of a cursor.
pub fn cursor_token(cursor: &Cursor) -> String {
    codec::base64_encode(&codec::encode(cursor), codec::Base64::UrlSafeNoPad)
}

/// `limit` of a pull or a listing: 1 to [`MAX_PAGE`].
pub fn parse_limit(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_PAGE);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(bad(
            ErrorCode::BadLimit,
            format!("`limit` is 1 to {MAX_PAGE}, not `{}`", clip(text)),
        )),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A contact as JSON: flattened, each column with its stamp, as the seed's
/// table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactJson {
    /// the UUID
    pub id: String,
    /// each column and its stamp (absent: never written)
    pub name: Option<String>,
    #[allow(missing_docs)]
    pub name_ts: Option<String>,
    #[allow(missing_docs)]
    pub phone: Option<String>,
    #[allow(missing_docs)]
    pub phone_ts: Option<String>,
    #[allow(missing_docs)]
    pub email: Option<String>,
    #[allow(missing_docs)]
    pub email_ts: Option<String>,
    /// deleted
    pub tombstone: bool,
    #[allow(missing_docs)]
    pub tombstone_ts: Option<String>,
}

impl ContactJson {
    /// The flattened form of a contact.
    pub fn of(id: &ContactId, row: &ContactRow) -> ContactJson {
        let text = |c| row.text(c).map(str::to_owned);
        let ts = |c| row.field(c).map(|f| f.stamp.to_string());
        ContactJson {
            id: id.to_string(),
            name: text(Column::Name),
            name_ts: ts(Column::Name),
            phone: text(Column::Phone),
            phone_ts: ts(Column::Phone),
            email: text(Column::Email),
            email_ts: ts(Column::Email),
            tombstone: row.deleted(),
            tombstone_ts: ts(Column::Tombstone),
        }
    }
}

/// What a pull replies in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangesJson {
    /// the node that answered
    pub node: NodeId,
    /// the changes
    pub changes: Vec<Change>,
    /// the next cursor
    pub cursor: String,
    /// whether these are (part of) a snapshot
    pub snapshot: bool,
    /// whether more follow at once
    pub more: bool,
}

/// What a push replies in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PushedJson {
    /// the node that answered
    pub node: NodeId,
    /// the highest sequence number below which the node applied all
    pub acked: u64,
    /// how many of the push's deltas were new there
    pub applied: usize,
    /// the cursor sent, moved past the push's own changes if it could be
    pub cursor: Option<String>,
}

/// What a read of one contact replies in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContactReply {
    /// the node that answered
    pub node: NodeId,
    /// the contact
    pub contact: ContactJson,
}

/// What a listing replies in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageJson {
    /// the node that answered
    pub node: NodeId,
    /// the live contacts, by id
    pub contacts: Vec<ContactJson>,
    /// the `after` of the next page, if more may follow
    pub next: Option<String>,
}

/// How to show an outcome: nothing to add to it but the request's format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View;

impl KindApi for Contacts {
    const ROUTE: &'static str = "contacts";
    const EVENTS: Option<&'static str> = Some("events");
    type View = View;

    fn preflight(req: &HttpRequest, path: &[&str]) -> Result<(usize, Option<Secret>), ApiError> {
        match path {
            [_, "push"] => expect(req, &["POST"]).map(|_| (MAX_PUSH_BODY, None)),
            [_] | [_, _] => expect(req, &["GET"]).map(|_| (0, None)),
            _ => Err(ApiError::not_found(&req.path)),
        }
    }

    fn access(op: &Op) -> Access {
        match op {
            Op::Push { .. } => Access::Write,
            Op::Changes { .. } | Op::Get(_) | Op::List { .. } => Access::Open,
        }
    }

    fn parse(
        req: &HttpRequest,
        name: Option<&str>,
        rest: &[&str],
    ) -> Result<Request<Self>, ApiError> {
        let object = named_object(Self::PREFIX, req, name)?;
        let op = match rest {
            ["push"] => parse_push(req)?,
            ["changes"] => Op::Changes {
                cursor: parse_cursor(req.query("cursor"))?,
                limit: parse_limit(req.query("limit"))?,
            },
            [] => Op::List {
                after: req
                    .query("after")
                    .map(|a| a.parse().map_err(|e: String| bad(ErrorCode::BadId, e)))
                    .transpose()?,
                limit: parse_limit(req.query("limit"))?,
            },
            [id] => Op::Get(id.parse().map_err(|e: String| bad(ErrorCode::BadId, e))?),
            _ => return Err(ApiError::not_found(&req.path)),
        };
        Ok(Request {
            object: Some(object),
            op,
            view: View,
            cache: CacheUse::Skip,
        })
    }

    fn reply(
        req: &HttpRequest,
        _: View,
        outcomes: Vec<(NodeId, Option<Outcome>)>,
    ) -> Result<Reply, ApiError> {
        let Some((_, Some(outcome))) = outcomes.into_iter().next() else {
            return Err(bad(ErrorCode::Unavailable, "the node did not answer"));
        };
        let format = req.format()?;
        if format == Format::Postcard {
            return Ok(Reply::ok(format, codec::encode(&outcome)));
        }
        Ok(match outcome {
            Outcome::Pushed {
                node,
                acked,
                applied,
                cursor,
            } => Reply::json(&PushedJson {
                node,
                acked,
                applied,
                cursor: cursor.as_ref().map(cursor_token),
            }),
            Outcome::Changes {
                node,
                changes,
                cursor,
                snapshot,
                more,
            } => Reply::json(&ChangesJson {
                node,
                changes,
                cursor: cursor_token(&cursor),
                snapshot,
                more,
            }),
            Outcome::Contact(_, id, None) => {
                return Err(bad(
                    ErrorCode::NotFound,
                    format!("the book holds no contact {id}"),
                ));
            }
            Outcome::Contact(node, id, Some(row)) => Reply::json(&ContactReply {
                node,
                contact: ContactJson::of(&id, &row),
            }),
            Outcome::Page(node, page, next) => Reply::json(&PageJson {
                node,
                contacts: page.iter().map(|(id, r)| ContactJson::of(id, r)).collect(),
                next: next.map(|n| n.to_string()),
            }),
        })
    }
}

#[cfg(test)]
mod test;
