//! The Worker's fetch handler. Static pages are served by the assets
//! binding before this runs. A request is read once into an
//! [`HttpRequest`] (its real method, which worker's own `Method` would turn
//! into GET when it does not know it), checked ([`api::preflight`]: route,
//! method, body limit, secret), its body read, and routed
//! ([`api::route`]) into a typed request. A kind's operation goes, as
//! postcard, to one replica of its object (or to every active node, for a
//! listing); the kind formats the typed outcome. No client path reaches an
//! object's `/peer` or `/call`.

use super::cache::ReadCache;
use super::{
    admin, call_node, call_raw, node_reply, now_ms, respond, start_call, Failure, Outcome, Settings,
};
use crate::api::call::{NodeRequest, Target};
use crate::api::http::{HttpRequest, Method, Reply};
use crate::api::{self, Admit, CacheUse, Parsed, Routed, Secret};
use crate::engine::{Membership, ObjectId, Placement, Policy, Status};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::AnyKind;
use crate::NodeId;
use std::cell::RefCell;
use worker::{event, Context, Env, Request, Response};

/// Response header of ring objects: the object's replicas as the router sees them.
const REPLICAS: &str = "x-edge-crdt-replicas";

thread_local! {
    /// Active nodes as last reported by a node; refreshed from every reply.
    static ACTIVE: RefCell<Vec<NodeId>> = const { RefCell::new(Vec::new()) };
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    route(req, &env).await.or_else(Failure::into_response)
}

/// `https://host:port/path?query` as its origin and the rest (path and
/// query). The runtime hands over a serialized URL: no need to parse it
/// again (the `url` crate costs the Worker tens of kilobytes).
fn split_url(url: &str) -> (&str, &str) {
    let host = url.find("://").map_or(0, |i| i + 3);
    let at = url[host..].find('/').map_or(url.len(), |i| host + i);
    let rest = &url[at..];
    let rest = &rest[..rest.find('#').unwrap_or(rest.len())];
    (&url[..at], if rest.is_empty() { "/" } else { rest })
}

/// The request as the API reads it, without its body.
fn http_request(req: &Request, settings: &Settings) -> worker::Result<HttpRequest> {
    let url = req.inner().url();
    let (origin, target) = split_url(&url);
    let mut http = HttpRequest::new(Method::parse(&req.inner().method()), target);
    http.origin = origin.to_owned();
    let headers = req.headers();
    http.content_type = headers.get("content-type")?;
    http.accept = headers.get("accept")?;
    http.authorization = headers.get("authorization")?;
    let says_no_cache = |v: Option<String>| {
        v.is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("no-cache") || v.contains("no-store")
        })
    };
    http.no_cache =
        says_no_cache(headers.get("cache-control")?) || says_no_cache(headers.get("pragma")?);
    http.now = now_ms();
    http.settings = settings.api();
    Ok(http)
}

async fn route(req: Request, env: &Env) -> Outcome {
    let settings = Settings::from_env(env);
    let mut http = http_request(&req, &settings)?;
    let (limit, secret) = api::preflight(&http, settings.bench)?;
    if let Some(secret) = secret {
        authorized(&http, env, secret)?;
    }
    http.body = read_body(&req, limit).await?;
    match api::route(&http, settings.bench)? {
        Routed::Kind { kind, parsed, node } => {
            let protected = settings.write_protected.covers(kind.route());
            if let Some(refused) =
                admit(&req, env, &settings, &http, parsed.access, protected).await?
            {
                return Ok(refused);
            }
            match parsed.object.clone() {
                Some(object) => object_op(env, &settings, &http, kind, parsed, object, node).await,
                None => fan_out(env, &settings, &http, kind, parsed).await,
            }
        }
        Routed::Subscribe { object, node } => subscribe(env, &settings, object, node).await,
        Routed::Admin(route) => admin::handle(env, &settings, &http, route).await,
        Routed::Bench(api::Baseline::Increment) => {
            let stub = env.durable_object("NAIVE")?.get_by_name("naive")?;
            Ok(stub.fetch_with_str("https://naive/increment").await?)
        }
        Routed::Bench(api::Baseline::Push) => {
            let stub = env.durable_object("NAIVE")?.get_by_name("naive-log")?;
            let req = super::raw_request("https://naive/push", http.body.clone())?;
            Ok(stub.fetch_with_request(req.into()).await?)
        }
    }
}

/// Reads a body, refusing one over `max` bytes before reading it.
async fn read_body(req: &Request, max: usize) -> Result<Vec<u8>, Failure> {
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = declared {
        api::http::check_body_size(len, max)?;
    }
    let body = super::whole_body(req.inner().array_buffer()).await?;
    api::http::check_body_size(body.len(), max)?;
    Ok(body)
}

/// Checks `Authorization: Bearer <secret>`, in constant time.
fn authorized(req: &HttpRequest, env: &Env, secret: Secret) -> Result<(), ApiError> {
    let name = secret.name();
    let Some(token) = secret_of(env, name) else {
        return Err(ApiError::new(
            ErrorCode::Disabled,
            format!("{name} is not set"),
        ));
    };
    if !bearer_is(req, &token) {
        let e = format!("this needs `Authorization: Bearer <{name}>`");
        return Err(ApiError::new(ErrorCode::Unauthorized, e));
    }
    Ok(())
}

/// A Worker secret, unless unset or empty.
fn secret_of(env: &Env, name: &str) -> Option<String> {
    let token = env.secret(name).ok()?.to_string();
    (!token.is_empty()).then_some(token)
}

/// Whether the request says `Authorization: Bearer <token>`: every byte is
/// compared whatever the first difference, so the time says nothing of
/// where it is.
fn bearer_is(req: &HttpRequest, token: &str) -> bool {
    let given = req.authorization.as_deref().unwrap_or_default().as_bytes();
    let expected = format!("Bearer {token}");
    let expected = expected.as_bytes();
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Seconds a client over the write limit waits: the period of the
/// `WRITE_LIMITER` binding in wrangler.toml.
const RATE_PERIOD_S: &str = "10";

/// Admits a kind's request by its access ([`api::Access::admit`]): a
/// write that needs a token is 401 without `WRITE_TOKEN` or `ADMIN_TOKEN`;
/// an anonymous write over its client's limit gets the 429 returned.
async fn admit(
    req: &Request,
    env: &Env,
    settings: &Settings,
    http: &HttpRequest,
    access: api::Access,
    protected: bool,
) -> Result<Option<Response>, Failure> {
    if access == api::Access::Open {
        return Ok(None);
    }
    let write = secret_of(env, Secret::Write.name());
    let holds = || {
        let tokens = [write.clone(), secret_of(env, Secret::Admin.name())];
        // Both compared, so the time does not say which one matched.
        tokens
            .iter()
            .flatten()
            .fold(false, |ok, t| bearer_is(http, t) | ok)
    };
    match access.admit(protected, write.is_some()) {
        Admit::Open => Ok(None),
        Admit::Token if holds() => Ok(None),
        Admit::Token => {
            let unset = if write.is_none() {
                " (WRITE_TOKEN is not set: ADMIN_TOKEN)"
            } else {
                ""
            };
            let e = format!("this write needs `Authorization: Bearer <WRITE_TOKEN>`{unset}");
            Err(ApiError::new(ErrorCode::Unauthorized, e).into())
        }
        Admit::Limited if !settings.write_limit || holds() => Ok(None),
        Admit::Limited => {
            let client = req.headers().get("cf-connecting-ip")?.unwrap_or_default();
            if under_limit(env, &format!("write:{client}")).await? {
                return Ok(None);
            }
            let e = format!("too many writes from this client: try again in {RATE_PERIOD_S} s");
            let reply = Reply::error(&ApiError::new(ErrorCode::RateLimited, e));
            Ok(Some(super::respond(
                &reply,
                &[("retry-after", RATE_PERIOD_S)],
            )?))
        }
    }
}

/// Whether the `WRITE_LIMITER` binding lets one more request with `key`
/// through. On the binding's own `limit`: worker's goes through
/// serde-wasm-bindgen, kilobytes of the Worker.
async fn under_limit(env: &Env, key: &str) -> worker::Result<bool> {
    use worker::js_sys::{Object, Reflect};
    let limiter = env.rate_limiter("WRITE_LIMITER")?;
    let limiter: &worker::wasm_bindgen::JsValue = limiter.as_ref();
    let options = Object::new();
    Reflect::set(&options, &"key".into(), &key.into())?;
    let promise = super::js_method(limiter, "limit")?.call1(limiter, &options)?;
    let outcome = super::settled(promise).await?;
    Reflect::get(&outcome, &"success".into())?
        .as_bool()
        .ok_or_else(|| worker::Error::JsError("the rate limit's outcome has no `success`".into()))
}

/// The active nodes as last reported, or the initial ones before any reply.
pub(crate) fn active_nodes(settings: &Settings) -> Vec<NodeId> {
    let active = ACTIVE.with(|a| a.borrow().clone());
    if active.is_empty() {
        (0..settings.nodes).map(NodeId).collect()
    } else {
        active
    }
}

/// Takes the active list a node reported.
pub(crate) fn learn_active(active: &[NodeId]) {
    if !active.is_empty() {
        ACTIVE.with(|a| *a.borrow_mut() = active.to_vec());
    }
}

/// Forgets a node that retired.
pub(crate) fn forget_node(id: NodeId) {
    ACTIVE.with(|a| a.borrow_mut().retain(|n| *n != id));
}

pub(crate) fn random(nodes: &[NodeId]) -> Option<NodeId> {
    let i = (worker::js_sys::Math::random() * nodes.len() as f64) as usize;
    nodes.get(i.min(nodes.len().saturating_sub(1))).copied()
}

/// The replicas of a ring object among the active nodes, in preference order.
fn preference_list(settings: &Settings, object: &ObjectId) -> Vec<NodeId> {
    let mut members = Membership::default();
    for id in active_nodes(settings) {
        members.set(id, Status::Active);
    }
    Placement::new(settings.replicas, 64).replicas(object, Policy::Ring, &members)
}

/// A kind's operation on one object: at the `?node=` hint, or at a random
/// replica; cacheable reads go through the read cache.
async fn object_op(
    env: &Env,
    settings: &Settings,
    http: &HttpRequest,
    kind: &'static dyn AnyKind,
    parsed: Parsed,
    object: ObjectId,
    hint: Option<NodeId>,
) -> Outcome {
    let ring = kind.rows().policy() == Policy::Ring;
    let replicas = if ring {
        preference_list(settings, &object)
    } else {
        active_nodes(settings)
    };
    let node = hint.or_else(|| random(&replicas)).unwrap_or(NodeId(0));
    let listed = replicas
        .iter()
        .map(NodeId::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if ring {
        extra.push((REPLICAS, &listed));
    }
    let reads = parsed.cache == CacheUse::Read;
    let cache = match parsed.cache {
        CacheUse::Skip => None,
        CacheUse::Read | CacheUse::Purge => ReadCache::new(settings, &http.origin, &object),
    };
    // A read pinned to a node (`?node=`) asks for that node's view: never cached.
    let cacheable = reads && hint.is_none() && cache.is_some();
    let bypass = !cacheable || http.no_cache;
    if reads && !bypass {
        if let Some((from, outcome)) = cache.as_ref().expect("cacheable").get().await {
            let reply = kind.reply(http, &parsed.view, vec![(from, Some(outcome))])?;
            extra.push((super::cache::HEADER, "hit"));
            return Ok(respond(&reply, &extra)?);
        }
    }
    let req = NodeRequest::Op {
        target: Target::Object(object),
        op: parsed.op.clone(),
        forwarded: false,
    };
    let answer = call_node(env, node, &req).await?;
    learn_active(&answer.active);
    let outcome = answer.result?;
    if let Some(cache) = &cache {
        if cacheable {
            cache.put(answer.node, &outcome).await;
        } else if parsed.cache == CacheUse::Purge {
            cache.purge().await;
        }
    }
    if reads {
        extra.push((super::cache::HEADER, if bypass { "bypass" } else { "miss" }));
    }
    let reply: Reply = kind.reply(http, &parsed.view, vec![(answer.node, Some(outcome))])?;
    Ok(respond(&reply, &extra)?)
}

/// A kind's operation on every active node (a listing): each node's
/// outcome, or `None` where it did not answer, for the kind to merge.
async fn fan_out(
    env: &Env,
    settings: &Settings,
    http: &HttpRequest,
    kind: &'static dyn AnyKind,
    parsed: Parsed,
) -> Outcome {
    let nodes = active_nodes(settings);
    let req = NodeRequest::Op {
        target: Target::Kind(kind.prefix().to_owned()),
        op: parsed.op.clone(),
        forwarded: false,
    };
    // Every call is sent before any reply is awaited: read in turn, the
    // replies take as long as the slowest one.
    let sent: Vec<_> = nodes
        .iter()
        .map(|id| (*id, start_call(env, *id, &req)))
        .collect();
    let mut outcomes = Vec::new();
    for (id, sent) in sent {
        match node_reply(id, sent).await {
            Ok(answer) => {
                learn_active(&answer.active);
                outcomes.push((id, answer.result.ok()));
            }
            Err(e) => {
                worker::console_warn!("{id} did not answer: {e}");
                outcomes.push((id, None));
            }
        }
    }
    Ok(respond(&kind.reply(http, &parsed.view, outcomes)?, &[])?)
}

/// A stream of an object's events, from the node that takes it.
async fn subscribe(
    env: &Env,
    settings: &Settings,
    object: ObjectId,
    hint: Option<NodeId>,
) -> Outcome {
    let node = hint
        .or_else(|| random(&active_nodes(settings)))
        .unwrap_or(NodeId(0));
    let res = call_raw(
        env,
        node,
        &NodeRequest::Subscribe {
            object,
            forwarded: false,
        },
    )
    .await?;
    if res.headers().get("content-type")?.as_deref() == Some("text/event-stream") {
        return Ok(res);
    }
    // Not a stream: the node's typed answer, an error.
    let answer: crate::api::call::NodeReply =
        crate::codec::decode(&super::response_body(res).await?, crate::codec::MAX_FRAME)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Err(answer
        .result
        .err()
        .unwrap_or_else(|| ApiError::new(ErrorCode::Internal, "the node opened no stream"))
        .into())
}
