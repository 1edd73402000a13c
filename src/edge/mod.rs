//! The Cloudflare Worker: a stateless [`router`] in front of node Durable
//! Objects ([`node_object`]). The router parses each request once into a
//! typed request ([`crate::api`]) and sends it to a node as postcard
//! ([`crate::api::call::NodeRequest`]); [`host::Host`] runs the node's
//! [`Engine`](crate::engine::Engine) over the object's SQLite
//! ([`sql_store::SqlStore`]), performs its messages, alarms and streams.

mod admin;
mod cache;
mod host;
mod migrate;
mod naive;
mod node_object;
mod registry;
mod router;
mod sql_flat;
mod sql_store;
mod sse;

use crate::api::call::{NodeReply, NodeRequest};
use crate::api::http::{ApiSettings, Reply};
use crate::api::kv;
use crate::api::Protected;
use crate::codec::{self, MAX_FRAME};
use crate::engine::{Config, Sizing};
use crate::error::{ApiError, ErrorCode};
use crate::NodeId;
use std::cell::OnceCell;
use worker::js_sys::futures::JsFuture;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{Env, Headers, Request, Response, Storage};

/// Cluster settings from the `[vars]` of wrangler.toml.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub nodes: u32,
    pub gossip_interval_ms: u64,
    /// `GOSSIP_FANOUT`: most peers one gossip flush sends to (at most 40,
    /// so that a tick's requests stay under the free plan's 50 subrequests).
    pub gossip_fanout: usize,
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
    /// `SCALE_NODE_RPS`, `SCALE_MIN_NODES`, `SCALE_MAX_NODES`.
    pub sizing: Sizing,
    /// `AUTOSCALE` (`on`): the Cron Trigger takes one autoscale step.
    pub autoscale: bool,
    /// `BENCH_BASELINE` (`on`): the naive baseline's route is open.
    pub bench: bool,
    /// `WRITE_PROTECTED`: the kinds whose writes need `WRITE_TOKEN` when it
    /// is set (every kind when the list names an unknown one).
    pub write_protected: Protected,
    /// `WRITE_RATE_LIMIT` (`on`): anonymous writes go through the
    /// `WRITE_LIMITER` binding, per client address.
    pub write_limit: bool,
}

thread_local! {
    /// The settings, read once per isolate: vars do not change while it lives.
    static SETTINGS: OnceCell<Settings> = const { OnceCell::new() };
}

impl Settings {
    pub fn from_env(env: &Env) -> Settings {
        SETTINGS.with(|s| s.get_or_init(|| Settings::read(env)).clone())
    }

    fn read(env: &Env) -> Settings {
        let text = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let num_from = |name: &str, default: u64, min: u64, max: u64| {
            text(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|v| (min..=max).contains(v))
                .unwrap_or(default)
        };
        let num = |name: &str, default: u64, max: u64| num_from(name, default, 1, max);
        let limits = kv::Limits::default();
        let min_nodes = num("SCALE_MIN_NODES", 3, 64) as usize;
        Settings {
            nodes: num("NODES", 4, 64) as u32,
            gossip_interval_ms: num("GOSSIP_INTERVAL_MS", 250, 60_000),
            gossip_fanout: num("GOSSIP_FANOUT", 8, 40) as usize,
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
            sizing: Sizing {
                node_rps: num("SCALE_NODE_RPS", 100, 1_000_000) as f64,
                min_nodes,
                max_nodes: (num("SCALE_MAX_NODES", 16, 64) as usize).max(min_nodes),
            },
            autoscale: text("AUTOSCALE").is_some_and(|v| v.trim() == "on"),
            bench: text("BENCH_BASELINE").is_some_and(|v| v.trim() == "on"),
            write_protected: Protected::parse(&text("WRITE_PROTECTED").unwrap_or_default())
                .unwrap_or_else(|e| {
                    worker::console_error!(
                        "WRITE_PROTECTED: {e}; every kind's writes are protected"
                    );
                    Protected::ALL
                }),
            write_limit: text("WRITE_RATE_LIMIT").is_some_and(|v| v.trim() == "on"),
        }
    }

    /// The engine's settings.
    pub fn engine(&self) -> Config {
        Config {
            initial_nodes: self.nodes,
            gossip_interval_ms: self.gossip_interval_ms,
            gossip_fanout: self.gossip_fanout,
            anti_entropy_interval_ms: self.anti_entropy_interval_ms,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            max_drift_ms: self.max_drift_ms,
            tombstone_grace_ms: self.tombstone_grace_ms,
            replicas: self.replicas,
            ..Config::default()
        }
    }

    /// The API's settings.
    pub fn api(&self) -> ApiSettings {
        ApiSettings {
            max_drift_ms: self.max_drift_ms,
            kv: self.kv_limits,
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
    /// The error as an [`ApiError`]; a platform error is logged and a 500.
    pub fn into_api(self) -> ApiError {
        match self {
            Failure::Client(e) => e,
            Failure::Platform(e) => {
                worker::console_error!("internal error: {e}");
                ApiError::new(ErrorCode::Internal, format!("internal error: {e}"))
            }
        }
    }

    /// The JSON error reply; a 405 names the allowed methods in `Allow`.
    pub fn into_response(self) -> worker::Result<Response> {
        let e = self.into_api();
        let allow = e.allow.as_deref().map(|methods| ("allow", methods));
        respond(&Reply::error(&e), allow.as_slice())
    }
}

pub(crate) type Outcome = Result<Response, Failure>;

/// The HTTP response of a reply, with `cache-control: no-store` and `extra` headers.
pub(crate) fn respond(reply: &Reply, extra: &[(&str, &str)]) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", reply.content_type)?;
    headers.set("cache-control", "no-store")?;
    for (k, v) in extra {
        headers.set(k, v)?;
    }
    Ok(Response::from_bytes(reply.body.clone())?
        .with_status(reply.status)
        .with_headers(headers))
}

/// A `text/event-stream` response of `events`. Every stream the Worker
/// serves has this one type, so worker's `from_stream` and the adapters
/// under it are compiled once.
pub(crate) fn event_stream(events: Events) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "text/event-stream")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::from_stream(events)?.with_headers(headers))
}

/// The events of a stream, as bytes.
pub(crate) type Events =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = worker::Result<Vec<u8>>>>>;

/// A postcard response (between objects and the router).
pub(crate) fn postcard<T: serde::Serialize>(value: &T) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", crate::api::http::POSTCARD)?;
    Ok(Response::from_bytes(codec::encode(value))?.with_headers(headers))
}

/// A POST of `body` to `path` on an object. Built on the runtime's own
/// `Request`: worker's `RequestInit` carries every option there is, and
/// converting it costs the Worker kilobytes.
pub(crate) fn internal_request(path: &str, body: Vec<u8>) -> worker::Result<Request> {
    Ok(Request::from(raw_request(
        &format!("https://node{path}"),
        body,
    )?))
}

/// A POST of `body` to `url`, as the runtime's own `Request`.
pub(crate) fn raw_request(url: &str, body: Vec<u8>) -> worker::Result<web_sys::Request> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&worker::js_sys::Uint8Array::from(&body[..]).into());
    Ok(web_sys::Request::new_with_str_and_init(url, &init)?)
}

/// The whole body a runtime request's or response's `arrayBuffer()`
/// promises: worker's `bytes` reads it as a stream, a chunk and a few
/// calls at a time, kilobytes of the Worker.
pub(crate) async fn whole_body(
    array_buffer: Result<worker::js_sys::Promise, JsValue>,
) -> worker::Result<Vec<u8>> {
    let buffer = JsFuture::from(array_buffer?).await?;
    Ok(worker::js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The whole body of a response.
pub(crate) async fn response_body(res: Response) -> worker::Result<Vec<u8>> {
    whole_body(web_sys::Response::from(res).array_buffer()).await
}

/// The function `name` of a runtime object.
pub(crate) fn js_method(
    on: &worker::wasm_bindgen::JsValue,
    name: &str,
) -> worker::Result<worker::js_sys::Function> {
    use worker::wasm_bindgen::JsCast;
    Ok(worker::js_sys::Reflect::get(on, &name.into())?.dyn_into()?)
}

/// Awaits a promise a runtime call returned.
pub(crate) async fn settled(
    promise: worker::wasm_bindgen::JsValue,
) -> worker::Result<worker::wasm_bindgen::JsValue> {
    use worker::wasm_bindgen::JsCast;
    let promise: worker::js_sys::Promise = promise.dyn_into()?;
    Ok(worker::js_sys::futures::JsFuture::from(promise).await?)
}

// An object's key-value storage, straight on the runtime's: worker's typed
// `get` and `put` go through serde-wasm-bindgen, kilobytes of the Worker
// (and, through serde's messages, the formatting of floats). The values
// are those worker's `put` writes: a number for an integer.

/// The value of `key`, `None` when it is unset.
async fn stored(storage: &Storage, key: &str) -> worker::Result<Option<JsValue>> {
    let value = JsFuture::from(storage.as_raw().get(key)?).await?;
    Ok((!value.is_undefined()).then_some(value))
}

/// A whole number in `0..=max`, as `v` holds it.
fn whole(v: &JsValue, max: u64) -> Option<u64> {
    v.as_f64()
        .filter(|n| n.fract() == 0.0 && (0.0..=max as f64).contains(n))
        .map(|n| n as u64)
}

fn not_stored(key: &str, what: &str) -> worker::Error {
    worker::Error::JsError(format!("stored `{key}` is not {what}"))
}

/// The whole number under `key`, up to `max` (at most 2^53 - 1).
pub(crate) async fn stored_number(
    storage: &Storage,
    key: &str,
    max: u64,
) -> worker::Result<Option<u64>> {
    match stored(storage, key).await? {
        None => Ok(None),
        Some(v) => whole(&v, max)
            .map(Some)
            .ok_or_else(|| not_stored(key, "a whole number in range")),
    }
}

/// The bytes under `key`: an array (or any iterable) of bytes.
pub(crate) async fn stored_bytes(storage: &Storage, key: &str) -> worker::Result<Option<Vec<u8>>> {
    let Some(v) = stored(storage, key).await? else {
        return Ok(None);
    };
    if let Some(bytes) = v.dyn_ref::<worker::js_sys::Uint8Array>() {
        return Ok(Some(bytes.to_vec()));
    }
    let bad = || not_stored(key, "bytes");
    let items = worker::js_sys::try_iter(&v)?.ok_or_else(bad)?;
    let mut bytes = Vec::new();
    for item in items {
        bytes.push(whole(&item?, 255).ok_or_else(bad)? as u8);
    }
    Ok(Some(bytes))
}

/// Stores a whole number (at most 2^53 - 1) under `key`.
pub(crate) async fn store_number(storage: &Storage, key: &str, n: u64) -> worker::Result<()> {
    storage.put_raw(key, n as f64).await
}

/// The stub of node `id`.
fn node_stub(env: &Env, id: NodeId) -> worker::Result<worker::Stub> {
    env.durable_object("NODE")?.get_by_name(&id.to_string())
}

/// Sends `req` to node `id` and returns its raw response (a stream, for
/// a subscription).
pub(crate) async fn call_raw(env: &Env, id: NodeId, req: &NodeRequest) -> worker::Result<Response> {
    let inner = internal_request(&format!("/call/{}", id.0), codec::encode(req))?;
    node_stub(env, id)?.fetch_with_request(inner).await
}

/// POSTs `body` to `path` on node `id`: the status and the whole body.
/// Straight on the runtime's objects: worker's `Response` reads a fetched
/// body as a stream, a chunk and a few calls at a time.
pub(crate) async fn post(
    env: &Env,
    id: NodeId,
    path: &str,
    body: Vec<u8>,
) -> worker::Result<(u16, Vec<u8>)> {
    posted(start_post(env, id, path, body)?).await
}

/// Sends the POST of [`post`] at once: its response, to await.
fn start_post(env: &Env, id: NodeId, path: &str, body: Vec<u8>) -> worker::Result<JsFuture> {
    let namespace = env.durable_object("NODE")?;
    let ns: &JsValue = namespace.as_ref();
    let stub = js_method(ns, "getByName")?.call1(ns, &id.to_string().into())?;
    let url = format!("https://node{path}");
    let fetched = js_method(&stub, "fetch")?.call1(&stub, &raw_request(&url, body)?.into())?;
    Ok(JsFuture::from(
        fetched.dyn_into::<worker::js_sys::Promise>()?,
    ))
}

/// The status and the whole body of a POST's response.
async fn posted(response: JsFuture) -> worker::Result<(u16, Vec<u8>)> {
    let res: web_sys::Response = response.await?.dyn_into()?;
    Ok((res.status(), whole_body(res.array_buffer()).await?))
}

/// Sends `req` to node `id` and reads its typed reply.
pub(crate) async fn call_node(
    env: &Env,
    id: NodeId,
    req: &NodeRequest,
) -> worker::Result<NodeReply> {
    node_reply(id, start_call(env, id, req)).await
}

/// Sends `req` to node `id` at once: its reply, to read with [`node_reply`].
pub(crate) fn start_call(env: &Env, id: NodeId, req: &NodeRequest) -> worker::Result<JsFuture> {
    start_post(env, id, &format!("/call/{}", id.0), codec::encode(req))
}

/// The typed reply of node `id` to a call [`start_call`] sent.
pub(crate) async fn node_reply(
    id: NodeId,
    sent: worker::Result<JsFuture>,
) -> worker::Result<NodeReply> {
    let (status, body) = posted(sent?).await?;
    if status != 200 {
        return Err(worker::Error::RustError(format!("{id} answered {status}")));
    }
    codec::decode(&body, MAX_FRAME).map_err(|e| worker::Error::RustError(e.to_string()))
}

pub(crate) fn now_ms() -> u64 {
    worker::js_sys::Date::now() as u64
}
