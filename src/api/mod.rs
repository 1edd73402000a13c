//! The HTTP API, parsed once into types. The router turns a request into
//! an [`HttpRequest`], asks [`preflight`] how large a body it may read and
//! which secret it needs, reads the body, and [`route`]s it: a kind's
//! typed operation on an object (or on every node, for a listing), a
//! subscription, an admin request, or the benchmark's baseline. From there
//! on nothing is a string: the operation travels to the node object as
//! postcard ([`call::NodeRequest`]), and the outcome comes back typed for
//! the kind to format ([`KindApi::reply`]).
//!
//! Each kind's HTTP side is its own module: [`counter`], [`set`], [`kv`].

pub mod admin;
pub mod call;
#[cfg(feature = "contacts")]
pub mod contacts;
pub mod counter;
pub mod http;
pub mod kv;
pub mod kv_list;
pub mod set;
#[cfg(feature = "streams")]
pub mod stream;
pub mod traffic;

use crate::engine::ObjectId;
use crate::error::{ApiError, ErrorCode};
use crate::kinds::{self, AnyKind, Kind};
use crate::NodeId;
use http::{HttpRequest, Method, Reply};
use serde::{de::DeserializeOwned, Serialize};

/// The largest request body of most endpoints.
pub const MAX_BODY: usize = 4096;

/// The largest body of the naive baselines (an address-book push's limit).
const MAX_BASELINE_BODY: usize = 64 << 10;

/// A secret a request must name as `Authorization: Bearer <secret>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secret {
    /// `ADMIN_TOKEN`: every `/admin` route
    Admin,
    /// `SYNC_TOKEN`: a set replica's `/update`
    Sync,
    /// `WRITE_TOKEN`: the writes a deployment protects, and a counter step
    /// other than +1 (`ADMIN_TOKEN` does as well)
    Write,
}

impl Secret {
    /// The name of the Worker secret.
    pub fn name(self) -> &'static str {
        match self {
            Secret::Admin => "ADMIN_TOKEN",
            Secret::Sync => "SYNC_TOKEN",
            Secret::Write => "WRITE_TOKEN",
        }
    }
}

/// Who may run an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// anyone: a read, or a write under its own secret (a set's `/update`)
    Open,
    /// a write: anyone, unless the deployment protects the kind
    Write,
    /// a write no anonymous client may make (a counter step other than +1)
    Privileged,
}

/// How the router admits a kind's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// it runs
    Open,
    /// an anonymous write: it runs within the client's rate limit
    Limited,
    /// it runs only with `Authorization: Bearer <WRITE_TOKEN or ADMIN_TOKEN>`
    Token,
}

impl Access {
    /// How a request of this access is admitted, when its kind is
    /// `protected` (listed in `WRITE_PROTECTED`) and `WRITE_TOKEN` is set
    /// or not (`token_set`). A privileged write needs a token even where
    /// none is set: then only `ADMIN_TOKEN` can make it.
    ///
    /// ```
    /// use edge_crdt::api::{Access, Admit};
    /// assert_eq!(Access::Write.admit(true, true), Admit::Token);
    /// assert_eq!(Access::Write.admit(true, false), Admit::Limited);
    /// assert_eq!(Access::Write.admit(false, true), Admit::Limited);
    /// assert_eq!(Access::Privileged.admit(false, false), Admit::Token);
    /// assert_eq!(Access::Open.admit(true, true), Admit::Open);
    /// ```
    pub fn admit(self, protected: bool, token_set: bool) -> Admit {
        match self {
            Access::Open => Admit::Open,
            Access::Privileged => Admit::Token,
            Access::Write if protected && token_set => Admit::Token,
            Access::Write => Admit::Limited,
        }
    }
}

/// The kinds whose writes need `WRITE_TOKEN` when it is set
/// (`WRITE_PROTECTED`): their routes, or `all`.
///
/// ```
/// use edge_crdt::api::Protected;
/// let p = Protected::parse("sets, kv").unwrap();
/// assert!(p.covers("kv") && p.covers("sets") && !p.covers("counters"));
/// assert!(Protected::parse("all").unwrap().covers("counters"));
/// assert!(!Protected::parse(" ").unwrap().covers("kv"));
/// assert!(Protected::parse("sets kvv").unwrap_err().contains("kvv"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Protected {
    all: bool,
    routes: Vec<&'static str>,
}

impl Protected {
    /// Every kind: what a deployment gets when its list does not parse.
    pub const ALL: Protected = Protected {
        all: true,
        routes: Vec::new(),
    };

    /// Reads a list of kinds' routes separated by spaces or commas, or `all`.
    pub fn parse(text: &str) -> Result<Protected, String> {
        let mut out = Protected::default();
        for name in text.split([' ', ',']).filter(|n| !n.is_empty()) {
            if name == "all" {
                out.all = true;
                continue;
            }
            let kind = kinds::by_route(name).ok_or_else(|| {
                let known: Vec<_> = kinds::KINDS.iter().map(|k| k.route()).collect();
                format!("no kind `{name}` (known: {}, or all)", known.join(", "))
            })?;
            out.routes.push(kind.route());
        }
        Ok(out)
    }

    /// Whether the kind at `route` is protected.
    pub fn covers(&self, route: &str) -> bool {
        self.all || self.routes.contains(&route)
    }
}

/// A kind's request, parsed.
pub struct Request<K: KindApi> {
    /// the object operated on; `None` for an operation every node runs
    pub object: Option<ObjectId>,
    /// the operation
    pub op: K::Op,
    /// how to show the outcome
    pub view: K::View,
    /// what it does with the read cache
    pub cache: CacheUse,
}

/// What a request does with the router's read cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// nothing: its replies are never cached
    Skip,
    /// its reply may come from the cache, and goes into it
    Read,
    /// it writes an object whose reads are cached: the entry goes
    Purge,
}

/// The HTTP side of a kind.
pub trait KindApi: Kind {
    /// The URL segment: `/api/{ROUTE}/:name`.
    const ROUTE: &'static str;
    /// The path segment, if any, whose `GET /api/{ROUTE}/:name/{EVENTS}`
    /// streams an object's changes (`events`).
    const EVENTS: Option<&'static str>;
    /// How to show an outcome: what the request asked that the node need
    /// not know (a reply format option, a filter).
    type View: Serialize + DeserializeOwned;

    /// The largest body a request may have, and the secret it needs;
    /// `path` is what follows `/api/{ROUTE}` (the name first).
    fn preflight(req: &HttpRequest, path: &[&str]) -> Result<(usize, Option<Secret>), ApiError>;

    /// Who may run `op`.
    fn access(op: &Self::Op) -> Access;

    /// Parses a request on object `name` (`None`: the kind's own route,
    /// `/api/{ROUTE}`), `rest` being the path after it.
    fn parse(
        req: &HttpRequest,
        name: Option<&str>,
        rest: &[&str],
    ) -> Result<Request<Self>, ApiError>;

    /// The reply to an outcome, or to the outcomes of every node asked
    /// (`None`: it did not answer).
    fn reply(
        req: &HttpRequest,
        view: Self::View,
        outcomes: Vec<(NodeId, Option<Self::Outcome>)>,
    ) -> Result<Reply, ApiError>;
}

/// A kind's request, with its operation and view encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// the object; `None`: every active node runs the operation
    pub object: Option<ObjectId>,
    /// the encoded operation
    pub op: Vec<u8>,
    /// the encoded view
    pub view: Vec<u8>,
    /// what it does with the read cache
    pub cache: CacheUse,
    /// who may run it
    pub access: Access,
}

/// Where a request goes.
pub enum Routed {
    /// A kind's operation.
    Kind {
        /// the kind
        kind: &'static dyn AnyKind,
        /// the request
        parsed: Parsed,
        /// the node asked for with `?node=`
        node: Option<NodeId>,
    },
    /// `GET /api/{route}/:name/events`.
    Subscribe {
        /// the object
        object: ObjectId,
        /// the node asked for
        node: Option<NodeId>,
    },
    /// An admin request.
    Admin(admin::AdminRoute),
    /// `POST /bench/naive/{increment,push}` (routed only when the baseline is on).
    Bench(Baseline),
}

/// The benchmarks' naive baselines: one object that writes storage per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// a counter
    Increment,
    /// a relay appending every pushed delta to one log (the seed's server)
    Push,
}

/// What the router must know before it reads the body: its limit and the
/// secret the request needs. Unknown paths and methods fail here.
pub fn preflight(req: &HttpRequest, bench: bool) -> Result<(usize, Option<Secret>), ApiError> {
    match req.segments().as_slice() {
        ["api", route, path @ ..] => {
            let kind = kinds::by_route(route).ok_or_else(|| ApiError::not_found(&req.path))?;
            if let [_, segment] = path {
                if kind.events() == Some(*segment) {
                    return match req.method {
                        Method::Get => Ok((0, None)),
                        ref m => Err(ApiError::method(m.as_str(), &["GET"])),
                    };
                }
            }
            kind.preflight(req, path)
        }
        ["admin", "nodes", _, "peer"] => Ok((crate::codec::MAX_FRAME, Some(Secret::Admin))),
        ["admin", ..] => Ok((MAX_BODY, Some(Secret::Admin))),
        ["bench", "naive", "increment" | "push"] if bench => match req.method {
            Method::Post => Ok((MAX_BASELINE_BODY, None)),
            ref m => Err(ApiError::method(m.as_str(), &["POST"])),
        },
        _ => Err(ApiError::not_found(&req.path)),
    }
}

/// Routes a request whose body has been read.
pub fn route(req: &HttpRequest, bench: bool) -> Result<Routed, ApiError> {
    let segments = req.segments();
    match segments.as_slice() {
        ["api", route, rest @ ..] => {
            let kind = kinds::by_route(route).ok_or_else(|| ApiError::not_found(&req.path))?;
            let node = parse_node_hint(req)?;
            if let [name, segment] = rest {
                if kind.events() == Some(*segment) {
                    return subscribe(kind, req, name, node);
                }
            }
            let parsed = kind.parse(req, rest)?;
            Ok(Routed::Kind { kind, parsed, node })
        }
        ["admin", rest @ ..] => admin::parse(req, rest).map(Routed::Admin),
        ["bench", "naive", "increment"] if bench => Ok(Routed::Bench(Baseline::Increment)),
        ["bench", "naive", "push"] if bench => Ok(Routed::Bench(Baseline::Push)),
        _ => Err(ApiError::not_found(&req.path)),
    }
}

fn subscribe(
    kind: &dyn AnyKind,
    req: &HttpRequest,
    name: &str,
    node: Option<NodeId>,
) -> Result<Routed, ApiError> {
    if req.method != Method::Get {
        return Err(ApiError::method(req.method.as_str(), &["GET"]));
    }
    let object = object_of(kind.prefix(), name, ErrorCode::BadName)?;
    Ok(Routed::Subscribe { object, node })
}

/// The `?node=` hint, parsed.
fn parse_node_hint(req: &HttpRequest) -> Result<Option<NodeId>, ApiError> {
    req.query("node").map(parse_node).transpose()
}

/// A node id from the API, or 400 `bad_node`.
pub fn parse_node(text: &str) -> Result<NodeId, ApiError> {
    text.parse()
        .map_err(|e: crate::node_id::BadNodeId| ApiError::new(ErrorCode::BadNode, e.to_string()))
}

/// The object `name` (a percent-encoded path segment) of the kind with
/// `prefix`; `code` names what is wrong with a bad one.
pub fn object_of(prefix: &str, segment: &str, code: ErrorCode) -> Result<ObjectId, ApiError> {
    let name = http::percent_decode(segment)
        .ok_or_else(|| ApiError::new(code, "the name is not valid percent-encoding"))?;
    ObjectId::new(prefix, &name).map_err(|e| ApiError::new(code, e.0))
}

/// The object a kind's request names (`name`, the path segment after the
/// route), or 404 when the request names none.
pub fn named_object(
    prefix: &str,
    req: &HttpRequest,
    name: Option<&str>,
) -> Result<ObjectId, ApiError> {
    let segment = name.ok_or_else(|| ApiError::not_found(&req.path))?;
    object_of(prefix, segment, ErrorCode::BadName)
}

/// Parses a kind's request and encodes it: what [`AnyKind::parse`] does.
pub fn parse_kind<K: KindApi>(req: &HttpRequest, rest: &[&str]) -> Result<Parsed, ApiError> {
    let (name, rest) = match rest {
        [] => (None, rest),
        [name, rest @ ..] => (Some(*name), rest),
    };
    let r = K::parse(req, name, rest)?;
    Ok(Parsed {
        access: K::access(&r.op),
        object: r.object,
        op: crate::codec::encode(&r.op),
        view: crate::codec::encode(&r.view),
        cache: r.cache,
    })
}

/// Formats encoded outcomes: what [`AnyKind::reply`] does.
pub fn reply_kind<K: KindApi>(
    req: &HttpRequest,
    view: &[u8],
    outcomes: Vec<(NodeId, Option<Vec<u8>>)>,
) -> Result<Reply, ApiError> {
    let view: K::View = kinds::decode(view)?;
    let outcomes = outcomes
        .into_iter()
        .map(|(n, o)| Ok((n, o.map(|b| kinds::decode::<K::Outcome>(&b)).transpose()?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    K::reply(req, view, outcomes)
}

/// The only path of a kind's route that takes no name, or 404.
pub(crate) fn no_more(req: &HttpRequest, rest: &[&str]) -> Result<(), ApiError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ApiError::not_found(&req.path))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_query_parameter_that_does_not_decode_is_refused_not_ignored() {
        let route_of = |url: &str| route(&HttpRequest::new(Method::Post, url), false);
        let e = route_of("/api/counters/a/increment?node=node-%zz")
            .err()
            .unwrap();
        assert_eq!(
            (e.error, e.message.contains("%zz")),
            (ErrorCode::BadNode, true)
        );
        assert!(matches!(
            route_of("/api/counters/a/increment?node=node-%31"),
            Ok(Routed::Kind {
                node: Some(NodeId(1)),
                ..
            })
        ));
        // A parameter no route reads stays ignored, decoded or not.
        assert!(route_of("/api/counters/a/increment?x=%zz").is_ok());
    }
}
