//! The Worker's fetch handler: validates client input, then routes it to a
//! node object. Static pages are served by the assets binding before this
//! runs. Only `/api/*` reaches objects for clients; `/admin/*` needs the
//! bearer token; no client path reaches an object's `/peer` or `/admin/*`.

use super::{call_node, internal_request, json, Failure, Outcome, Settings, BY, FORMAT, KEY, MEMBERS};
use crate::api::{self, counter, ApiError, Format};
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

async fn route(mut req: Request, env: &Env) -> Outcome {
    let settings = Settings::from_env(env);
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method();
    match segments.as_slice() {
        ["api", "counters", name, rest @ ..] => {
            let name = api::parse_name(name)?;
            let (op, allowed) = match rest {
                [] => ("read", Method::Get),
                ["increment"] => ("increment", Method::Post),
                ["events"] => ("events", Method::Get),
                _ => return Err(api::not_found(&path).into()),
            };
            if method != allowed {
                return Err(api::wrong_method(method.as_ref(), allowed.as_ref()).into());
            }
            let node = pick_node(&req, &settings)?;
            let header = if op == "increment" { "content-type" } else { "accept" };
            let format = Format::from_content_type(req.headers().get(header)?.as_deref())
                .or_else(|e| if op == "increment" { Err(e) } else { Ok(Format::Json) })?;
            let mut headers = vec![
                (KEY, name),
                (FORMAT, if format == Format::Postcard { "postcard" } else { "json" }.to_owned()),
            ];
            if op == "increment" {
                let body = read_body(&mut req).await?;
                headers.push((BY, counter::parse_increment(format, &body)?.to_string()));
            }
            let inner = internal_request(&format!("/client/{op}"), allowed, &headers, None)?;
            let res = call_node(env, node, inner).await?;
            learn_members(&res);
            Ok(res)
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

fn bench_enabled(env: &Env) -> bool {
    env.var("BENCH_BASELINE").map(|v| v.to_string() == "on").unwrap_or(false)
}

/// Reads a body, refusing one over [`api::MAX_BODY`] before reading it.
async fn read_body(req: &mut Request) -> Result<Vec<u8>, Failure> {
    if let Some(len) = req.headers().get("content-length")?.and_then(|v| v.parse::<usize>().ok()) {
        api::check_body_size(len)?;
    }
    let body = req.bytes().await?;
    api::check_body_size(body.len())?;
    Ok(body)
}

/// The `?node=` hint, or a random active node.
fn pick_node(req: &Request, settings: &Settings) -> Result<NodeId, Failure> {
    let url = req.url()?;
    if let Some((_, hint)) = url.query_pairs().find(|(k, _)| k == "node") {
        return hint
            .parse::<NodeId>()
            .map_err(|e| ApiError::new(400, "bad_node", e.to_string()).into());
    }
    let active = ACTIVE.with(|a| a.borrow().clone());
    let active = if active.is_empty() { (0..settings.nodes).collect() } else { active };
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

fn authorized(req: &Request, env: &Env) -> Result<(), Failure> {
    let Ok(token) = env.secret("ADMIN_TOKEN").map(|s| s.to_string()) else {
        return Err(ApiError::new(503, "admin_disabled", "ADMIN_TOKEN is not set").into());
    };
    let given = req.headers().get("authorization")?.unwrap_or_default();
    let expected = format!("Bearer {token}");
    let same = given.len() == expected.len()
        && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if token.is_empty() || !same {
        return Err(ApiError::new(401, "unauthorized", "admin needs `Authorization: Bearer <ADMIN_TOKEN>`").into());
    }
    Ok(())
}

async fn admin(mut req: Request, env: &Env, settings: &Settings, rest: &[&str]) -> Outcome {
    authorized(&req, env)?;
    let method = req.method();
    let any = pick_active(settings);
    let simple = |path: &str, m: Method| internal_request(path, m, &[], None);
    match (rest, method) {
        (["nodes"], Method::Get) => Ok(call_node(env, any, simple("/admin/members", Method::Get)?).await?),
        (["nodes"], Method::Post) => Ok(call_node(env, any, simple("/admin/add", Method::Post)?).await?),
        (["nodes", id, "retire"], Method::Post) => {
            let id: NodeId = id
                .parse()
                .map_err(|e: crate::node_id::BadNodeId| ApiError::new(400, "bad_node", e.to_string()))?;
            let res = call_node(env, id, simple("/admin/retire", Method::Post)?).await?;
            ACTIVE.with(|a| a.borrow_mut().retain(|n| *n != id.0));
            Ok(res)
        }
        (["partition"], m @ (Method::Put | Method::Delete)) => {
            let groups = if m == Method::Put {
                parse_groups(&read_body(&mut req).await?)?
            } else {
                Vec::new()
            };
            let mut members = live_members(env, any).await?;
            for g in &groups {
                members.extend(g.iter().copied());
            }
            let mut views = Vec::new();
            for id in members {
                let body = crate::codec::encode(&groups);
                let inner = internal_request("/admin/partition", Method::Put, &[], Some(body))?;
                let mut res = call_node(env, id, inner).await?;
                views.push(res.json::<serde_json::Value>().await?);
            }
            Ok(json(200, &serde_json::json!({ "nodes": views }))?)
        }
        (["nodes"] | ["nodes", _, "retire"] | ["partition"], m) => {
            Err(api::wrong_method(m.as_ref(), "the documented admin methods").into())
        }
        _ => Err(api::not_found(&req.path()).into()),
    }
}

fn pick_active(settings: &Settings) -> NodeId {
    let first = ACTIVE.with(|a| a.borrow().first().copied());
    NodeId(first.unwrap_or(0).min(settings.nodes.max(1) - 1).max(first.unwrap_or(0)))
}

/// Every node that is not retired, as `node` sees the membership.
async fn live_members(env: &Env, node: NodeId) -> Result<BTreeSet<NodeId>, Failure> {
    let inner = internal_request("/admin/members", Method::Get, &[], None)?;
    let mut res = call_node(env, node, inner).await?;
    let view: serde_json::Value = res.json().await?;
    let members = view["members"].as_object().cloned().unwrap_or_default();
    Ok(members
        .iter()
        .filter(|(_, s)| s.get("retired").is_none())
        .filter_map(|(id, _)| id.parse().ok())
        .collect())
}

/// `{"groups": [["node-0", "node-1"], ["node-2"]]}`.
fn parse_groups(body: &[u8]) -> Result<Vec<BTreeSet<NodeId>>, Failure> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        groups: Vec<Vec<String>>,
    }
    let bad = |m: String| Failure::from(ApiError::new(400, "bad_partition", m));
    let parsed: Body = serde_json::from_slice(body).map_err(|e| bad(format!("expected {{\"groups\": [[\"node-0\", ...], ...]}}: {e}")))?;
    let mut seen = BTreeSet::new();
    let mut groups = Vec::new();
    for g in parsed.groups {
        let mut set = BTreeSet::new();
        for id in g {
            let id: NodeId = id.parse().map_err(|e: crate::node_id::BadNodeId| bad(e.to_string()))?;
            if !seen.insert(id) {
                return Err(bad(format!("{id} is in two groups")));
            }
            set.insert(id);
        }
        groups.push(set);
    }
    Ok(groups)
}
