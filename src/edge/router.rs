//! The Worker's fetch handler: validates client input, then routes it to a
//! node object. Static pages are served by the assets binding before this
//! runs. Only `/api/*` reaches objects for clients; `/admin/*` needs the
//! bearer token; no client path reaches an object's `/peer` or `/admin/*`.
//!
//! A key-value request goes to one replica of its key (`/api/kv/:key`),
//! through the Worker's read cache for `GET`; a listing (`/api/kv`) asks
//! every active node and merges their pages.

use super::{
    bytes, call_node, fresh, internal_request, json, now_ms, Failure, Outcome, Settings, AFTER,
    BIAS, BY, CACHE, FORMAT, KEY, LIMIT, MEMBERS, NEED_ACTIVE, NEW_NODE, REPLICAS, RESOLVE, SINCE,
};
use crate::api::kv::{self, NodePage, PutWire};
use crate::api::traffic::{self, NodeTraffic, Report, Step};
use crate::api::{self, counter, set, ApiError, Format};
use crate::cluster::{ByKind, Membership, Placement, Sizing, Status};
use crate::codec;
use crate::crdt::Kind;
use crate::NodeId;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use worker::{
    event, Cache, Context, Env, Headers, Method, Request, Response, ScheduleContext, ScheduledEvent,
};

thread_local! {
    /// Active nodes as last reported by a node; refreshed from every reply.
    static ACTIVE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    route(req, &env).await.or_else(Failure::into_response)
}

/// The Cron Trigger: one `POST /admin/autoscale` step when `AUTOSCALE` is
/// `on`, so the cluster follows its traffic.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let settings = Settings::from_env(&env);
    if !settings.autoscale {
        return;
    }
    match autoscale(&env, &settings, settings.sizing).await {
        Ok(res) => worker::console_log!("autoscale: {}", res.status_code()),
        Err(Failure::Client(e)) => worker::console_error!("autoscale: {}", e.message),
        Err(Failure::Platform(e)) => worker::console_error!("autoscale: {e}"),
    }
}

async fn route(req: Request, env: &Env) -> Outcome {
    let settings = Settings::from_env(env);
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method();
    match segments.as_slice() {
        ["api", kind @ ("counters" | "sets"), name, rest @ ..] => {
            let kind = if *kind == "counters" {
                Kind::Counter
            } else {
                Kind::Set
            };
            client(req, env, &settings, kind, name, rest).await
        }
        ["api", "kv"] => kv_list(req, env, &settings).await,
        ["api", "kv", key, rest @ ..] => kv_key(req, env, &settings, key, rest).await,
        ["admin", rest @ ..] => admin(req, env, &settings, rest).await,
        ["bench", "naive", "increment"] if bench_enabled(env) => {
            if method != Method::Post {
                return Err(api::wrong_method(method.as_ref(), "POST").into());
            }
            let stub = env.durable_object("NAIVE")?.get_by_name("naive")?;
            Ok(stub.fetch_with_str("https://naive/increment").await?)
        }
        _ => Err(api::not_found(&path).into()),
    }
}

/// The operation that a client path and method name for a kind of value.
fn operation(kind: Kind, rest: &[&str], method: &Method) -> Result<&'static str, ApiError> {
    use Method::{Get, Post, Put};
    let ops = match kind {
        Kind::Counter => vec![
            ("", Get, "read"),
            ("increment", Post, "increment"),
            ("events", Get, "events"),
        ],
        Kind::Set => vec![
            ("", Get, "read"),
            ("", Put, "create"),
            ("insert", Post, "insert"),
            ("delete", Post, "delete"),
            ("update", Post, "update"),
            ("updates", Get, "updates"),
            ("events", Get, "events"),
        ],
        // Registers have routes of their own: `kv_key` and `kv_list`.
        Kind::Register => vec![],
    };
    let sub = match rest {
        [] => "",
        [sub] => *sub,
        _ => "/",
    };
    let here: Vec<_> = ops.into_iter().filter(|(p, _, _)| *p == sub).collect();
    if here.is_empty() {
        return Err(api::not_found(&format!(
            "/api/{}s/…/{}",
            kind.prefix(),
            rest.join("/")
        )));
    }
    let allowed: Vec<&str> = here.iter().map(|(_, m, _)| m.as_ref()).collect();
    here.iter()
        .find(|(_, m, _)| m == method)
        .map(|(_, _, op)| *op)
        .ok_or_else(|| api::wrong_method(method.as_ref(), &allowed.join(" or ")))
}

/// Validates a client request and sends it to a node as `/client/<op>`:
/// parsed bodies travel as headers or postcard, never as client bytes.
async fn client(
    mut req: Request,
    env: &Env,
    settings: &Settings,
    kind: Kind,
    name: &str,
    rest: &[&str],
) -> Outcome {
    let name = api::parse_name(name)?;
    let method = req.method();
    let op = operation(kind, rest, &method)?;
    let node = pick_node(&req, settings)?;
    let has_body = matches!(method, Method::Post | Method::Put);
    let format = if has_body {
        Format::from_content_type(req.headers().get("content-type")?.as_deref())?
    } else {
        Format::from_content_type(req.headers().get("accept")?.as_deref()).unwrap_or(Format::Json)
    };
    let format_name = if format == Format::Postcard {
        "postcard"
    } else {
        "json"
    };
    let mut headers = vec![(KEY, kind.key(&name)), (FORMAT, format_name.to_owned())];
    let mut body = None;
    match op {
        "increment" => {
            let by = counter::parse_increment(format, &read_body(&mut req, api::MAX_BODY).await?)?;
            headers.push((BY, by.to_string()));
        }
        "create" => {
            let bias = set::parse_create(format, &read_body(&mut req, api::MAX_BODY).await?)?;
            headers.push((BIAS, set::BiasName::from(bias).as_str().to_owned()));
        }
        "insert" | "delete" => {
            let elements = set::parse_elements(format, &read_body(&mut req, api::MAX_BODY).await?)?;
            body = Some(codec::encode(&elements));
        }
        "update" => {
            authorized(&req, env, "SYNC_TOKEN")?;
            let bytes = read_body(&mut req, set::MAX_REPLICA_BODY).await?;
            let replica = set::parse_replica(format, &bytes, now_ms(), settings.max_drift_ms)?;
            body = Some(codec::encode(&replica));
        }
        "updates" => {
            let since = set::parse_since(api::query_param(&req.inner().url(), "since").as_deref())?;
            headers.push((SINCE, since.to_string()));
        }
        _ => {}
    }
    let inner = internal_request(&format!("/client/{op}"), method, &headers, body)?;
    let res = call_node(env, node, inner).await?;
    learn_members(&res);
    Ok(res)
}

fn bench_enabled(env: &Env) -> bool {
    env.var("BENCH_BASELINE")
        .map(|v| v.to_string() == "on")
        .unwrap_or(false)
}

/// Reads a body, refusing one over `max` bytes before reading it.
async fn read_body(req: &mut Request, max: usize) -> Result<Vec<u8>, Failure> {
    if let Some(len) = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok())
    {
        api::check_body_size(len, max)?;
    }
    let body = req.bytes().await?;
    api::check_body_size(body.len(), max)?;
    Ok(body)
}

/// The `?node=` hint, or a random active node.
fn pick_node(req: &Request, settings: &Settings) -> Result<NodeId, Failure> {
    if let Some(hint) = api::query_param(&req.inner().url(), "node") {
        return parse_node(&hint);
    }
    let active: Vec<NodeId> = active_nodes(settings);
    Ok(random(&active).unwrap_or(NodeId(0)))
}

/// The active nodes as last reported, or the initial ones before any reply.
fn active_nodes(settings: &Settings) -> Vec<NodeId> {
    let active = ACTIVE.with(|a| a.borrow().clone());
    if active.is_empty() {
        (0..settings.nodes).map(NodeId).collect()
    } else {
        active.into_iter().map(NodeId).collect()
    }
}

fn random(nodes: &[NodeId]) -> Option<NodeId> {
    let i = (worker::js_sys::Math::random() * nodes.len() as f64) as usize;
    nodes.get(i.min(nodes.len().saturating_sub(1))).copied()
}

fn learn_members(res: &Response) {
    if let Ok(Some(list)) = res.headers().get(MEMBERS) {
        let ids: Vec<u32> = list.split(',').filter_map(|s| s.parse().ok()).collect();
        if !ids.is_empty() {
            ACTIVE.with(|a| *a.borrow_mut() = ids);
        }
    }
}

/// Checks `Authorization: Bearer <token>` against the secret `secret`.
fn authorized(req: &Request, env: &Env, secret: &str) -> Result<(), Failure> {
    let Ok(token) = env.secret(secret).map(|s| s.to_string()) else {
        return Err(ApiError::new(503, "disabled", format!("{secret} is not set")).into());
    };
    let given = req.headers().get("authorization")?.unwrap_or_default();
    let expected = format!("Bearer {token}");
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if token.is_empty() || !same {
        return Err(ApiError::new(
            401,
            "unauthorized",
            format!("this needs `Authorization: Bearer <{secret}>`"),
        )
        .into());
    }
    Ok(())
}

async fn admin(mut req: Request, env: &Env, settings: &Settings, rest: &[&str]) -> Outcome {
    authorized(&req, env, "ADMIN_TOKEN")?;
    let method = req.method();
    match (rest, method) {
        (["nodes"], Method::Get) => {
            Ok(ask_active(env, settings, "/admin/members", Method::Get, None).await?)
        }
        (["nodes"], Method::Post) => Ok(add_node(env, settings).await?),
        (["nodes", id], Method::Get) => {
            let inner = internal_request("/admin/members", Method::Get, &[], None)?;
            Ok(call_node(env, parse_node(id)?, inner).await?)
        }
        // Removing a node is retiring it: `DELETE` says the same thing.
        (["nodes", id, "retire"], Method::Post) | (["nodes", id], Method::Delete) => {
            Ok(retire_node(env, parse_node(id)?).await?)
        }
        (["traffic"], Method::Get) => {
            let sizing = traffic::parse_sizing(&req.inner().url(), settings.sizing)?;
            Ok(json(
                200,
                &cluster_traffic(env, settings, sizing).await?.to_json(),
            )?)
        }
        (["autoscale"], Method::Post) => {
            let sizing = traffic::parse_sizing(&req.inner().url(), settings.sizing)?;
            autoscale(env, settings, sizing).await
        }
        (["partition"], m @ (Method::Put | Method::Delete)) => {
            let groups = if m == Method::Put {
                parse_groups(&read_body(&mut req, api::MAX_BODY).await?)?
            } else {
                Vec::new()
            };
            let members = cluster_members(env, settings).await?.unwrap_or_default();
            let mut targets: BTreeSet<NodeId> = members
                .iter()
                .filter(|(_, status)| !has_status(status, "retired"))
                .map(|(id, _)| *id)
                .collect();
            targets.extend(groups.iter().flatten().copied());
            let mut views = Vec::new();
            for id in targets {
                let body = crate::codec::encode(&groups);
                let inner = internal_request("/admin/partition", Method::Put, &[], Some(body))?;
                let mut res = call_node(env, id, inner).await?;
                views.push(res.json::<serde_json::Value>().await?);
            }
            Ok(json(200, &serde_json::json!({ "nodes": views }))?)
        }
        (
            ["nodes"]
            | ["nodes", _]
            | ["nodes", _, "retire"]
            | ["partition"]
            | ["traffic"]
            | ["autoscale"],
            m,
        ) => Err(api::wrong_method(m.as_ref(), "the documented admin methods").into()),
        _ => Err(api::not_found(&req.path()).into()),
    }
}

/// Adds a node: its id comes from the one allocator, the `Registry`.
async fn add_node(env: &Env, settings: &Settings) -> worker::Result<Response> {
    let registry = env.durable_object("REGISTRY")?.get_by_name("node-ids")?;
    let mut allocated = registry.fetch_with_str("https://registry/allocate").await?;
    let id: serde_json::Value = allocated.json().await?;
    let id = id["id"]
        .as_u64()
        .ok_or_else(|| worker::Error::RustError("registry gave no id".into()))?;
    let new = NodeId(id as u32);
    ask_active(env, settings, "/admin/add", Method::Post, Some(new)).await
}

/// Retires (or goes on retiring) node `id`.
async fn retire_node(env: &Env, id: NodeId) -> worker::Result<Response> {
    let inner = internal_request("/admin/retire", Method::Post, &[], None)?;
    let res = call_node(env, id, inner).await?;
    ACTIVE.with(|a| a.borrow_mut().retain(|n| *n != id.0));
    Ok(res)
}

/// Asks every active node for its client traffic (`requests` in its admin
/// view) and sums it up against `sizing`. One node after another: asking
/// all at once (`join_all`) made the Worker 9.5 KB larger for an admin
/// route.
async fn cluster_traffic(
    env: &Env,
    settings: &Settings,
    sizing: Sizing,
) -> Result<Report, Failure> {
    let Some(members) = cluster_members(env, settings).await? else {
        return Err(ApiError::new(503, "no_active_node", "no active node answered").into());
    };
    let with_status = |wanted: &str| {
        members
            .iter()
            .filter(|(_, status)| has_status(status, wanted))
            .map(|(id, _)| *id)
            .collect::<Vec<_>>()
    };
    let mut answers = BTreeMap::new();
    for id in with_status("active") {
        let view = node_view(env, id).await;
        let requests = view.as_ref().map(|v| &v["requests"]);
        let traffic = requests.and_then(|r| {
            Some(NodeTraffic {
                total: r["total"].as_u64()?,
                per_second: r["per_second"].as_f64()?,
            })
        });
        answers.insert(id, traffic);
    }
    // A node's own view is the last word on its retirement.
    let mut draining = None;
    for id in with_status("draining") {
        let own = node_view(env, id).await;
        if own.is_some_and(|v| has_status(&v["status"], "draining")) {
            draining = Some(id);
            break;
        }
    }
    Ok(Report::new(answers, draining, sizing))
}

/// Every member in an active node's view, with its status as that view
/// writes it (`"active"`, `{"draining": heir}`, `{"retired": heir}`);
/// `None` when no active node answered.
async fn cluster_members(
    env: &Env,
    settings: &Settings,
) -> Result<Option<Vec<(NodeId, serde_json::Value)>>, Failure> {
    let mut res = ask_active(env, settings, "/admin/members", Method::Get, None).await?;
    if res.status_code() != 200 {
        return Ok(None);
    }
    let view: serde_json::Value = res.json().await?;
    let members = view["members"].as_object().into_iter().flatten();
    Ok(Some(
        members
            .filter_map(|(id, status)| Some((id.parse().ok()?, status.clone())))
            .collect(),
    ))
}

/// Whether a member's status in an admin view is `name`.
fn has_status(status: &serde_json::Value, name: &str) -> bool {
    status == name || status.get(name).is_some()
}

/// Node `id`'s admin view; `None` when it does not answer.
async fn node_view(env: &Env, id: NodeId) -> Option<serde_json::Value> {
    let inner = internal_request("/admin/members", Method::Get, &[], None).ok()?;
    let mut res = call_node(env, id, inner).await.ok()?;
    if res.status_code() != 200 {
        return None;
    }
    res.json().await.ok()
}

/// One step towards the size the traffic calls for: adds a node, or
/// retires one (a retirement under way first), or does nothing. The reply
/// carries the step's own reply (`result`, with its status) and the
/// traffic it was decided on.
async fn autoscale(env: &Env, settings: &Settings, sizing: Sizing) -> Outcome {
    let report = cluster_traffic(env, settings, sizing).await?;
    let res = match report.step {
        Step::Stay => None,
        Step::Add => Some(add_node(env, settings).await?),
        Step::Remove(id) => Some(retire_node(env, id).await?),
    };
    let (status, result) = match res {
        None => (200, serde_json::Value::Null),
        Some(mut res) => (
            res.status_code(),
            res.json().await.unwrap_or(serde_json::Value::Null),
        ),
    };
    let mut body = report.to_json();
    body["result"] = result;
    Ok(json(status, &body)?)
}

fn parse_node(text: &str) -> Result<NodeId, Failure> {
    text.parse().map_err(|e: crate::node_id::BadNodeId| {
        ApiError::new(400, "bad_node", e.to_string()).into()
    })
}

/// Sends an admin request to an active node. A node that is not active
/// answers 409 with the active list, and the next one is tried.
async fn ask_active(
    env: &Env,
    settings: &Settings,
    path: &str,
    method: Method,
    new_node: Option<NodeId>,
) -> worker::Result<Response> {
    let mut candidate = ACTIVE.with(|a| a.borrow().first().copied()).unwrap_or(0);
    let mut tried = BTreeSet::new();
    loop {
        let mut headers = vec![(NEED_ACTIVE, "1".to_owned())];
        headers.extend(new_node.map(|id| (NEW_NODE, id.to_string())));
        let inner = internal_request(path, method.clone(), &headers, None)?;
        let res = call_node(env, NodeId(candidate), inner).await?;
        learn_members(&res);
        tried.insert(candidate);
        let next = ACTIVE.with(|a| a.borrow().iter().copied().find(|n| !tried.contains(n)));
        match next {
            Some(n) if res.status_code() == 409 && tried.len() <= settings.nodes as usize + 8 => {
                candidate = n
            }
            _ => return Ok(res),
        }
    }
}

/// `{"groups": [["node-0", "node-1"], ["node-2"]]}`.
fn parse_groups(body: &[u8]) -> Result<Vec<BTreeSet<NodeId>>, Failure> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        groups: Vec<Vec<String>>,
    }
    let bad = |m: String| Failure::from(ApiError::new(400, "bad_partition", m));
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "expected {{\"groups\": [[\"node-0\", ...], ...]}}: {e}"
        ))
    })?;
    let mut seen = BTreeSet::new();
    let mut groups = Vec::new();
    for g in parsed.groups {
        let mut set = BTreeSet::new();
        for id in g {
            let id: NodeId = id
                .parse()
                .map_err(|e: crate::node_id::BadNodeId| bad(e.to_string()))?;
            if !seen.insert(id) {
                return Err(bad(format!("{id} is in two groups")));
            }
            set.insert(id);
        }
        groups.push(set);
    }
    Ok(groups)
}

/// The replicas of a stored key among the active nodes, in preference order.
fn preference_list(settings: &Settings, key: &str) -> Vec<NodeId> {
    let mut members = Membership::default();
    for id in active_nodes(settings) {
        members.set(id, Status::Active);
    }
    ByKind::new(settings.replicas, 64).replicas(key, &members)
}

/// `GET`, `PUT` and `DELETE /api/kv/:key`: validated here, then sent to one
/// replica of the key (the `?node=` hint, or a random one of its preference
/// list); reads go through the cache.
async fn kv_key(
    mut req: Request,
    env: &Env,
    settings: &Settings,
    segment: &str,
    rest: &[&str],
) -> Outcome {
    if !rest.is_empty() {
        return Err(api::not_found(&req.path()).into());
    }
    let limits = settings.kv_limits;
    let name = kv::parse_key(segment, &limits)?;
    let method = req.method();
    let op = match method {
        Method::Get => "kv-read",
        Method::Put => "kv-put",
        Method::Delete => "kv-delete",
        m => return Err(api::wrong_method(m.as_ref(), "GET, PUT or DELETE").into()),
    };
    let key = Kind::Register.key(&name);
    let url = req.inner().url();
    let hint = api::query_param(&url, "node");
    let replicas = preference_list(settings, &key);
    let node = match &hint {
        Some(hint) => parse_node(hint)?,
        None => random(&replicas).unwrap_or(NodeId(0)),
    };
    let content_type = req.headers().get("content-type")?;
    let format = match (&method, content_type) {
        (Method::Put, ct) => Format::from_content_type(ct.as_deref())?,
        (Method::Delete, Some(ct)) => Format::from_content_type(Some(&ct))?,
        _ => Format::from_content_type(req.headers().get("accept")?.as_deref())
            .unwrap_or(Format::Json),
    };
    let mut headers = vec![(KEY, key.clone()), (FORMAT, format_name(format).to_owned())];
    let mut body = None;
    let mut resolve = false;
    match op {
        "kv-read" => {
            resolve = kv::parse_resolve(api::query_param(&url, "resolve").as_deref())?;
            if resolve {
                headers.push((RESOLVE, "lww".to_owned()));
            }
        }
        "kv-put" => {
            let put = kv::parse_put(
                format,
                &read_body(&mut req, limits.max_body()).await?,
                &limits,
            )?;
            body = Some(codec::encode(&PutWire {
                payload: put.payload,
                context: put.context,
            }));
        }
        _ => {
            let seen = kv::parse_delete(format, &read_body(&mut req, api::MAX_BODY).await?)?;
            body = Some(codec::encode(&seen));
        }
    }
    let listed = replicas
        .iter()
        .map(NodeId::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let cache = ReadCache::new(settings, &req, &name)?;
    // A read pinned to a node (`?node=`) asks for that node's view: never cached.
    let cacheable = op == "kv-read" && hint.is_none() && cache.is_some();
    let bypass = !cacheable || no_cache(&req)?;
    if op == "kv-read" && !bypass {
        if let Some(hit) = cache
            .as_ref()
            .expect("cacheable")
            .get(format, resolve)
            .await
        {
            let res = fresh(hit, &[(REPLICAS, &listed), (CACHE, "hit")]).await?;
            res.headers().delete(CACHED_UNTIL)?;
            return Ok(res);
        }
    }
    let inner = internal_request(&format!("/client/{op}"), method, &headers, body)?;
    let res = call_node(env, node, inner).await?;
    learn_members(&res);
    let mut extra = vec![(REPLICAS, listed.as_str())];
    if op == "kv-read" {
        extra.push((CACHE, if bypass { "bypass" } else { "miss" }));
    }
    let mut res = fresh(res, &extra).await?;
    if let (Some(cache), 200) = (&cache, res.status_code()) {
        if cacheable {
            cache.put(format, resolve, &mut res).await;
        } else if op != "kv-read" {
            cache.purge().await;
        }
    }
    Ok(res)
}

fn format_name(format: Format) -> &'static str {
    if format == Format::Postcard {
        "postcard"
    } else {
        "json"
    }
}

/// Whether the client asked to skip the cache: `Cache-Control: no-cache`
/// (or `no-store`, or `Pragma: no-cache`).
fn no_cache(req: &Request) -> worker::Result<bool> {
    let says = |v: Option<String>| {
        v.is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("no-cache") || v.contains("no-store")
        })
    };
    Ok(says(req.headers().get("cache-control")?) || says(req.headers().get("pragma")?))
}

/// The Worker's read cache of one key (the Cache API): one entry per reply
/// format and `resolve`, kept for `KV_CACHE_MS`.
struct ReadCache {
    /// the entries' URL without its query: `{origin}/api/kv/{key}`
    base: String,
    ttl_ms: u64,
}

/// When a cached entry stops being served, in ms since the epoch: the Cache
/// API's own `max-age` counts whole seconds.
const CACHED_UNTIL: &str = "x-edge-crdt-cached-until";

impl ReadCache {
    /// `None` when `KV_CACHE_MS` is 0.
    fn new(settings: &Settings, req: &Request, name: &str) -> worker::Result<Option<Self>> {
        if settings.kv_cache_ms == 0 {
            return Ok(None);
        }
        let origin = req.url()?.origin().ascii_serialization();
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        Ok(Some(ReadCache {
            base: format!("{origin}/api/kv/{encoded}"),
            ttl_ms: settings.kv_cache_ms,
        }))
    }

    fn url(&self, format: Format, resolve: bool) -> String {
        let resolve = if resolve { "lww" } else { "all" };
        format!(
            "{}?edge-crdt-cache={}-{resolve}",
            self.base,
            format_name(format)
        )
    }

    /// The cached reply, unless there is none or it has expired.
    async fn get(&self, format: Format, resolve: bool) -> Option<Response> {
        let found = Cache::default().get(self.url(format, resolve), false).await;
        let res = match found {
            Ok(res) => res?,
            Err(e) => {
                worker::console_warn!("cache get: {e}");
                return None;
            }
        };
        let until: u64 = res.headers().get(CACHED_UNTIL).ok()??.parse().ok()?;
        (now_ms() < until).then_some(res)
    }

    /// Stores a copy of `res` for `ttl_ms`.
    async fn put(&self, format: Format, resolve: bool, res: &mut Response) {
        let stored = async {
            let headers = Headers::new();
            if let Some(ct) = res.headers().get("content-type")? {
                headers.set("content-type", &ct)?;
            }
            headers.set(
                "cache-control",
                &format!("public, max-age={}", self.ttl_ms.div_ceil(1000)),
            )?;
            headers.set(CACHED_UNTIL, &(now_ms() + self.ttl_ms).to_string())?;
            let copy = Response::from_bytes(res.bytes().await?)?.with_headers(headers);
            Cache::default().put(self.url(format, resolve), copy).await
        };
        if let Err(e) = stored.await {
            worker::console_warn!("cache put: {e}");
        }
    }

    /// Deletes every cached reply of the key, after a write.
    async fn purge(&self) {
        for format in [Format::Json, Format::Postcard] {
            for resolve in [false, true] {
                if let Err(e) = Cache::default()
                    .delete(self.url(format, resolve), false)
                    .await
                {
                    worker::console_warn!("cache delete: {e}");
                }
            }
        }
    }
}

/// `GET /api/kv?prefix=&limit=&cursor=`: every active node's page of keys,
/// merged. A node that does not answer makes the reply `partial`.
async fn kv_list(req: Request, env: &Env, settings: &Settings) -> Outcome {
    let method = req.method();
    if method != Method::Get {
        return Err(api::wrong_method(method.as_ref(), "GET").into());
    }
    let url = req.inner().url();
    let param = |name: &str| api::query_param(&url, name);
    let listing = kv::parse_listing(
        param("prefix").as_deref(),
        param("limit").as_deref(),
        param("cursor").as_deref(),
        &settings.kv_limits,
    )?;
    let format =
        Format::from_content_type(req.headers().get("accept")?.as_deref()).unwrap_or(Format::Json);
    let mut headers = vec![
        (KEY, Kind::Register.key(&listing.prefix)),
        (LIMIT, listing.limit.to_string()),
    ];
    if let Some(cursor) = &listing.cursor {
        headers.push((AFTER, Kind::Register.key(cursor)));
    }
    let nodes = active_nodes(settings);
    let asks = nodes.iter().map(|id| {
        let headers = &headers;
        async move {
            let inner = internal_request("/client/kv-list", Method::Get, headers, None)?;
            let mut res = call_node(env, *id, inner).await?;
            if res.status_code() != 200 {
                return Err(worker::Error::RustError(format!(
                    "status {}",
                    res.status_code()
                )));
            }
            learn_members(&res);
            codec::decode::<NodePage>(&res.bytes().await?, codec::MAX_FRAME)
                .map_err(|e| worker::Error::RustError(e.to_string()))
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    let mut pages = Vec::new();
    let mut unreachable = Vec::new();
    for (id, answer) in nodes.iter().zip(answers) {
        match answer {
            Ok(page) => pages.push(page),
            Err(e) => {
                worker::console_warn!("listing: {id} did not answer: {e}");
                unreachable.push(*id);
            }
        }
    }
    if pages.is_empty() {
        return Err(ApiError::new(503, "unavailable", "no node answered the listing").into());
    }
    let page = kv::merge_pages(&pages, listing.limit);
    Ok(bytes(
        200,
        format.content_type(),
        kv::listing_reply(format, &page, &unreachable),
    )?)
}
