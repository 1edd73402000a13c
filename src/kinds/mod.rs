//! The kinds of data the cluster hosts, each declared in one file: its key
//! prefix, its row type (the CRDT, placement, sync mode and validation, as
//! the engine's [`RowType`]), its typed client operations and what they do
//! to an object, and its server-sent events. Its HTTP side (parsing a
//! request into an operation, formatting the outcome) is in `crate::api`.
//!
//! A new kind adds its data type in `crdt/`, its file here and a line to
//! [`KINDS`], its API module, and where it has one its browser replica. No
//! gossip, storage, host or dispatch code changes: the engine reaches it
//! through [`CATALOG`], the node object and the router through [`KINDS`].

#[cfg(feature = "contacts")]
pub mod contacts;
pub mod counter;
pub mod register;
pub mod set;
#[cfg(feature = "streams")]
pub mod stream;
pub mod v1;

use crate::api::http::{HttpRequest, Reply};
use crate::codec;
use crate::engine::{Catalog, Engine, Exec, ObjectId, RowKey, RowStates, RowType, Store};
use crate::error::{ApiError, ErrorCode};
use crate::NodeId;
use serde::{de::DeserializeOwned, Serialize};

/// A kind of replicated object, as the node executes it.
pub trait Kind: Sized + 'static {
    /// The key prefix of its objects (`counter` for `counter:home`).
    const PREFIX: &'static str;
    /// A typed client operation, as the router sends it.
    type Op: Serialize + DeserializeOwned;
    /// What an operation gives back to the router.
    type Outcome: Serialize + DeserializeOwned;

    /// Its rows, as the engine sees them.
    fn rows() -> &'static dyn RowType;

    /// Executes `op`: loads what it reads through `host`, reads, writes.
    fn execute(op: Self::Op, host: &mut dyn OpHost) -> Result<Self::Outcome, ApiError>;

    /// The data of a server-sent event for rows of an object (the changed
    /// rows of a push, or every row of a subscription's first event).
    fn event(rows: &[(RowKey, Vec<u8>)]) -> String;
}

/// What an operation may do at the node that executes it.
pub trait OpHost {
    /// Loads the rows of the operation's object it reads (`whole`: all).
    fn prepare(&mut self, rows: &[RowKey], whole: bool) -> Result<(), ApiError>;

    /// The operation's object at this node.
    fn exec(&mut self) -> Result<Exec<'_>, ApiError>;

    /// Up to `limit` stored objects whose ids start with `prefix` and sort
    /// after `after`, with their rows.
    fn list(
        &mut self,
        prefix: &str,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<RowStates, ApiError>;

    /// Moves the operation to `object` (a fan-out that reads several).
    fn on(&mut self, object: ObjectId);

    /// Up to `limit` entries of the operation's object's log numbered
    /// after `after`, in order, with their numbers.
    fn log_after(&mut self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, ApiError>;
}

/// An operation running on an [`Engine`]: on one object, or (a fan-out
/// such as a listing) on the kind at this node.
pub struct Call<'a, S> {
    /// the node and its storage
    pub engine: &'a mut Engine<S>,
    /// the object, if the operation is on one
    pub object: Option<ObjectId>,
    /// the wall clock, ms
    pub now: u64,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, e.to_string())
}

impl<S: Store> OpHost for Call<'_, S> {
    fn prepare(&mut self, rows: &[RowKey], whole: bool) -> Result<(), ApiError> {
        let Some(object) = &self.object else {
            return Ok(());
        };
        self.engine.prepare(object, rows, whole).map_err(internal)
    }

    fn exec(&mut self) -> Result<Exec<'_>, ApiError> {
        let object = self
            .object
            .clone()
            .ok_or_else(|| internal("an operation on no object"))?;
        Ok(self.engine.node.exec(object, self.now))
    }

    fn list(
        &mut self,
        prefix: &str,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<RowStates, ApiError> {
        let mut listed = self
            .engine
            .store
            .list(prefix, after, limit)
            .map_err(internal)?;
        let node = &self.engine.node;
        for (id, rows) in &mut listed {
            rows.retain(|(row, _)| !node.is_local(id, row));
        }
        Ok(listed)
    }

    fn on(&mut self, object: ObjectId) {
        self.object = Some(object);
    }

    fn log_after(&mut self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, ApiError> {
        let object = self
            .object
            .as_ref()
            .ok_or_else(|| internal("a log read on no object"))?;
        self.engine
            .store
            .log_after(object, after, limit)
            .map_err(internal)
    }
}

/// A kind with its operations as bytes: what the node object and the
/// router dispatch on.
pub trait AnyKind: Sync {
    /// The key prefix.
    fn prefix(&self) -> &'static str;
    /// Its rows.
    fn rows(&self) -> &'static dyn RowType;
    /// Executes an encoded operation; the outcome, encoded.
    fn run(&self, op: &[u8], host: &mut dyn OpHost) -> Result<Vec<u8>, ApiError>;
    /// The data of a server-sent event for rows.
    fn event(&self, rows: &[(RowKey, Vec<u8>)]) -> String;
    /// The URL segment of its API (`counters`).
    fn route(&self) -> &'static str;
    /// The path segment under which its objects stream their changes.
    fn events(&self) -> Option<&'static str>;
    /// The body limit and secret of a request; see [`crate::api::KindApi::preflight`].
    fn preflight(
        &self,
        req: &HttpRequest,
        path: &[&str],
    ) -> Result<(usize, Option<crate::api::Secret>), ApiError>;
    /// Parses an HTTP request of its API; see [`crate::api::KindApi`].
    fn parse(&self, req: &HttpRequest, path: &[&str]) -> Result<crate::api::Parsed, ApiError>;
    /// Formats encoded outcomes: one, or one per node of a fan-out
    /// (`None`: that node did not answer).
    fn reply(
        &self,
        req: &HttpRequest,
        view: &[u8],
        outcomes: Vec<(NodeId, Option<Vec<u8>>)>,
    ) -> Result<Reply, ApiError>;
}

/// A [`Kind`] with its API, as an [`AnyKind`].
pub struct Registered<K>(std::marker::PhantomData<fn() -> K>);

impl<K> Registered<K> {
    /// The registration of `K`.
    pub const NEW: Self = Registered(std::marker::PhantomData);
}

/// Decodes an operation or outcome sent between the router and a node.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    codec::decode(bytes, codec::MAX_FRAME).map_err(internal)
}

impl<K: crate::api::KindApi> AnyKind for Registered<K> {
    fn prefix(&self) -> &'static str {
        K::PREFIX
    }

    fn rows(&self) -> &'static dyn RowType {
        K::rows()
    }

    fn run(&self, op: &[u8], host: &mut dyn OpHost) -> Result<Vec<u8>, ApiError> {
        let op: K::Op = decode(op)?;
        K::execute(op, host).map(|o| codec::encode(&o))
    }

    fn event(&self, rows: &[(RowKey, Vec<u8>)]) -> String {
        K::event(rows)
    }

    fn route(&self) -> &'static str {
        K::ROUTE
    }

    fn events(&self) -> Option<&'static str> {
        K::EVENTS
    }

    fn preflight(
        &self,
        req: &HttpRequest,
        path: &[&str],
    ) -> Result<(usize, Option<crate::api::Secret>), ApiError> {
        K::preflight(req, path)
    }

    fn parse(&self, req: &HttpRequest, path: &[&str]) -> Result<crate::api::Parsed, ApiError> {
        crate::api::parse_kind::<K>(req, path)
    }

    fn reply(
        &self,
        req: &HttpRequest,
        view: &[u8],
        outcomes: Vec<(NodeId, Option<Vec<u8>>)>,
    ) -> Result<Reply, ApiError> {
        crate::api::reply_kind::<K>(req, view, outcomes)
    }
}

/// Every kind the cluster hosts: the one list a new kind joins.
pub static KINDS: &[&dyn AnyKind] = &[
    &Registered::<counter::Counter>::NEW,
    &Registered::<set::Set>::NEW,
    &Registered::<register::Register>::NEW,
    #[cfg(feature = "contacts")]
    &Registered::<contacts::Contacts>::NEW,
    #[cfg(feature = "streams")]
    &Registered::<stream::Stream>::NEW,
];

/// The kind with `prefix`.
pub fn by_prefix(prefix: &str) -> Option<&'static dyn AnyKind> {
    KINDS.iter().copied().find(|k| k.prefix() == prefix)
}

/// The kind whose API lives under `/api/{route}`.
pub fn by_route(route: &str) -> Option<&'static dyn AnyKind> {
    KINDS.iter().copied().find(|k| k.route() == route)
}

/// The engine's view of [`KINDS`].
struct Kinds;

impl Catalog for Kinds {
    fn row_type(&self, prefix: &str) -> Option<&dyn RowType> {
        by_prefix(prefix).map(|k| k.rows())
    }
    fn prefixes(&self) -> Vec<&'static str> {
        KINDS.iter().map(|k| k.prefix()).collect()
    }
}

/// Every kind's row type, by prefix: what the engine is built with.
pub static CATALOG: &dyn Catalog = &Kinds;

/// The event data of a single-row kind: the base64 of its row's envelope
/// (the bottom of its type when the object holds nothing).
pub(crate) fn single_row_event<R: crate::crdt::Crdt>(rows: &[(RowKey, Vec<u8>)]) -> String {
    let state: R = rows
        .iter()
        .find(|(k, _)| k.is_empty())
        .and_then(|(_, b)| postcard::from_bytes(b).ok())
        .unwrap_or_default();
    codec::state_to_base64(&state)
}
