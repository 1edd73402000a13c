//! The Cloudflare Worker: a stateless router ([`router`]) in front of node
//! Durable Objects. [`host::Host`] runs a [`crate::cluster::Node`] inside a
//! Durable Object: storage, alarms, peer calls and SSE streams. Each data
//! kind of value adds its client operations in [`node_object`].

mod host;
mod naive;
mod node_object;
mod registry;
mod router;

use crate::api::{kv, ApiError};
use crate::cluster::Sizing;
use crate::NodeId;
use serde::Serialize;
use worker::{Env, Headers, Method, Request, RequestInit, Response};

/// Headers between the Worker and the objects (never accepted from clients:
/// the router builds every internal request itself).
pub(crate) const NODE: &str = "x-edge-node";
pub(crate) const FROM: &str = "x-edge-from";
/// A peer frame's send time (the sender's clock, ms): older frames are refused.
pub(crate) const SENT: &str = "x-edge-sent";
pub(crate) const KEY: &str = "x-edge-key";
pub(crate) const BY: &str = "x-edge-by";
pub(crate) const SINCE: &str = "x-edge-since";
pub(crate) const BIAS: &str = "x-edge-bias";
pub(crate) const FORMAT: &str = "x-edge-format";
pub(crate) const FORWARDED: &str = "x-edge-forwarded";
/// The id of the node an admin request adds.
pub(crate) const NEW_NODE: &str = "x-edge-new-node";
/// Marks an admin request that only an active node may answer.
pub(crate) const NEED_ACTIVE: &str = "x-edge-need-active";
/// Response header listing the active node ids, so the router's table follows resizes.
pub(crate) const MEMBERS: &str = "x-edge-crdt-members";
/// `/client/kv-read`: only the last writer's sibling (`?resolve=lww`).
pub(crate) const RESOLVE: &str = "x-edge-resolve";
/// `/client/kv-list`: the stored key to list after, and how many keys.
pub(crate) const AFTER: &str = "x-edge-after";
pub(crate) const LIMIT: &str = "x-edge-limit";
/// Client response headers of the kv routes: a key's preference list as the
/// router sees it, and what the read cache did (`hit`, `miss`, `bypass`).
pub(crate) const REPLICAS: &str = "x-edge-crdt-replicas";
pub(crate) const CACHE: &str = "x-edge-crdt-cache";

/// Cluster settings from the `[vars]` of wrangler.toml.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub nodes: u32,
    pub gossip_interval_ms: u64,
    pub anti_entropy_interval_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub sse_retry_ms: u64,
    pub max_drift_ms: u64,
    pub replicas: usize,
    /// `KV_MAX_KEY_BYTES` (at most 125) and `KV_MAX_VALUE_BYTES` (at most 48 KiB).
    pub kv_limits: kv::Limits,
    /// `KV_CACHE_MS`: how long the Worker caches a key's read; 0 disables.
    pub kv_cache_ms: u64,
    /// `TOMBSTONE_GRACE_MS`: how long a confirmed tombstone waits before it
    /// is collected; peer frames older than half of it are refused.
    pub tombstone_grace_ms: u64,
    /// `SCALE_NODE_RPS`, `SCALE_MIN_NODES`, `SCALE_MAX_NODES`: the cluster
    /// size that `GET /admin/traffic` recommends and `POST /admin/autoscale`
    /// moves towards.
    pub sizing: Sizing,
    /// `AUTOSCALE` (`on`): the Cron Trigger takes one autoscale step.
    pub autoscale: bool,
}

impl Settings {
    pub fn from_env(env: &Env) -> Settings {
        let num_from = |name: &str, default: u64, min: u64, max: u64| {
            env.var(name)
                .ok()
                .and_then(|v| v.to_string().trim().parse::<u64>().ok())
                .filter(|v| (min..=max).contains(v))
                .unwrap_or(default)
        };
        let num = |name: &str, default: u64, max: u64| num_from(name, default, 1, max);
        let limits = kv::Limits::default();
        Settings {
            nodes: num("NODES", 4, 64) as u32,
            gossip_interval_ms: num("GOSSIP_INTERVAL_MS", 250, 60_000),
            anti_entropy_interval_ms: num("ANTI_ENTROPY_INTERVAL_MS", 2_000, 600_000),
            heartbeat_interval_ms: num("HEARTBEAT_INTERVAL_MS", 15_000, 600_000),
            sse_retry_ms: num("SSE_RETRY_MS", 2_000, 600_000),
            max_drift_ms: num("MAX_DRIFT_MS", 60_000, 86_400_000),
            replicas: num("REPLICAS", 3, 64) as usize,
            kv_limits: kv::Limits {
                max_key: num(
                    "KV_MAX_KEY_BYTES",
                    limits.max_key as u64,
                    kv::MAX_KEY as u64,
                ) as usize,
                max_value: num(
                    "KV_MAX_VALUE_BYTES",
                    limits.max_value as u64,
                    kv::MAX_VALUE as u64,
                ) as usize,
            },
            kv_cache_ms: num_from("KV_CACHE_MS", 2_000, 0, 3_600_000),
            tombstone_grace_ms: num_from("TOMBSTONE_GRACE_MS", 60_000, 1_000, 86_400_000),
            sizing: {
                let min_nodes = num("SCALE_MIN_NODES", 3, 64) as usize;
                Sizing {
                    node_rps: num("SCALE_NODE_RPS", 100, 1_000_000) as f64,
                    min_nodes,
                    max_nodes: (num("SCALE_MAX_NODES", 16, 64) as usize).max(min_nodes),
                }
            },
            autoscale: env
                .var("AUTOSCALE")
                .is_ok_and(|v| v.to_string().trim() == "on"),
        }
    }
}

/// What a handler can fail with: a client error or a platform error.
#[derive(Debug)]
pub(crate) enum Failure {
    Client(ApiError),
    Platform(worker::Error),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Client(e)
    }
}

impl From<worker::Error> for Failure {
    fn from(e: worker::Error) -> Self {
        Failure::Platform(e)
    }
}

impl Failure {
    pub fn into_response(self) -> worker::Result<Response> {
        match self {
            Failure::Client(e) => json(e.status, &e),
            Failure::Platform(e) => {
                worker::console_error!("internal error: {e}");
                json(
                    500,
                    &ApiError::new(500, "internal", format!("internal error: {e}")),
                )
            }
        }
    }
}

pub(crate) type Outcome = Result<Response, Failure>;

pub(crate) fn json<B: Serialize>(status: u16, body: &B) -> worker::Result<Response> {
    bytes(status, "application/json", serde_json::to_vec(body)?)
}

pub(crate) fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::from_bytes(body)?
        .with_status(status)
        .with_headers(headers))
}

/// A copy of `res` with its own, mutable headers (a fetched response's are
/// immutable), `cache-control: no-store`, and `extra` headers.
pub(crate) async fn fresh(mut res: Response, extra: &[(&str, &str)]) -> worker::Result<Response> {
    let headers = Headers::new();
    for (k, v) in res.headers().entries() {
        headers.set(&k, &v)?;
    }
    headers.set("cache-control", "no-store")?;
    for (k, v) in extra {
        headers.set(k, v)?;
    }
    let status = res.status_code();
    Ok(Response::from_bytes(res.bytes().await?)?
        .with_status(status)
        .with_headers(headers))
}

/// An internal request to an object.
pub(crate) fn internal_request(
    path: &str,
    method: Method,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> worker::Result<Request> {
    let h = Headers::new();
    for (k, v) in headers {
        h.set(k, v)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(h);
    if let Some(b) = body {
        init.with_body(Some(worker::js_sys::Uint8Array::from(&b[..]).into()));
    }
    Request::new_with_init(&format!("https://node{path}"), &init)
}

/// Calls node `id` of the `NODE` namespace.
pub(crate) async fn call_node(env: &Env, id: NodeId, mut req: Request) -> worker::Result<Response> {
    req.headers_mut()?.set(NODE, &id.to_string())?;
    env.durable_object("NODE")?
        .get_by_name(&id.to_string())?
        .fetch_with_request(req)
        .await
}

/// A required internal header, parsed; a 400 when it is missing or invalid.
pub(crate) fn header<V: std::str::FromStr>(req: &Request, name: &str) -> Result<V, Failure> {
    req.headers()
        .get(name)?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::new(400, "bad_request", format!("missing or invalid {name}")).into()
        })
}

pub(crate) fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}
