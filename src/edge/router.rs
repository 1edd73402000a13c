//! The Worker's fetch handler: validates client input, then routes it to a
//! node object. Static pages are served by the assets binding before this
//! runs. Only `/api/*` reaches objects for clients; `/admin/*` needs the
//! bearer token; no client path reaches an object's `/peer` or `/admin/*`.

use super::{
    call_node, internal_request, json, now_ms, Failure, Outcome, Settings, BIAS, BY, FORMAT, KEY,
    MEMBERS, NEED_ACTIVE, NEW_NODE, SINCE,
};
use crate::api::{self, counter, set, ApiError, Format};
use crate::codec;
use crate::crdt::Kind;
use crate::NodeId;
use std::cell::RefCell;
use std::collections::BTreeSet;
use worker::{event, Context, Env, Method, Request, Response};

thread_local! {
    /// Active nodes as last reported by a node; refreshed from every reply.
    static ACTIVE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    route(req, &env).await.or_else(Failure::into_response)
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
        // The key-value routes come with the Ring issue.
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
    let active = ACTIVE.with(|a| a.borrow().clone());
    let active = if active.is_empty() {
        (0..settings.nodes).collect()
    } else {
        active
    };
    let i = (worker::js_sys::Math::random() * active.len() as f64) as usize;
    Ok(NodeId(active[i.min(active.len() - 1)]))
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
        (["nodes"], Method::Post) => {
            let registry = env.durable_object("REGISTRY")?.get_by_name("node-ids")?;
            let mut allocated = registry.fetch_with_str("https://registry/allocate").await?;
            let id: serde_json::Value = allocated.json().await?;
            let id = id["id"]
                .as_u64()
                .ok_or_else(|| worker::Error::RustError("registry gave no id".into()))?;
            let new = NodeId(id as u32);
            Ok(ask_active(env, settings, "/admin/add", Method::Post, Some(new)).await?)
        }
        (["nodes", id], Method::Get) => {
            let inner = internal_request("/admin/members", Method::Get, &[], None)?;
            Ok(call_node(env, parse_node(id)?, inner).await?)
        }
        (["nodes", id, "retire"], Method::Post) => {
            let id = parse_node(id)?;
            let inner = internal_request("/admin/retire", Method::Post, &[], None)?;
            let res = call_node(env, id, inner).await?;
            ACTIVE.with(|a| a.borrow_mut().retain(|n| *n != id.0));
            Ok(res)
        }
        (["partition"], m @ (Method::Put | Method::Delete)) => {
            let groups = if m == Method::Put {
                parse_groups(&read_body(&mut req, api::MAX_BODY).await?)?
            } else {
                Vec::new()
            };
            let mut res = ask_active(env, settings, "/admin/members", Method::Get, None).await?;
            let view: serde_json::Value = res.json().await?;
            let mut targets: BTreeSet<NodeId> = view["members"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, status)| status.get("retired").is_none())
                .filter_map(|(id, _)| id.parse().ok())
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
        (["nodes"] | ["nodes", _] | ["nodes", _, "retire"] | ["partition"], m) => {
            Err(api::wrong_method(m.as_ref(), "the documented admin methods").into())
        }
        _ => Err(api::not_found(&req.path()).into()),
    }
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
