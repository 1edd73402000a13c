//! The admin routes at the router: node views, adding and retiring nodes,
//! the partition, the cluster's traffic and autoscale steps (also taken by
//! the Cron Trigger when `AUTOSCALE` is on). Each talks to nodes in typed
//! requests and reads their typed views.

use super::router::{active_nodes, forget_node, learn_active};
use super::{call_node, respond, Failure, Outcome, Settings};
use crate::api::admin::AdminRoute;
use crate::api::call::{Added, AdminOp, NodeReply, NodeRequest, NodeView, Retired, StatusView};
use crate::api::http::{HttpRequest, Reply};
use crate::api::traffic::{NodeTraffic, Report, Step, StepResult};
use crate::codec;
use crate::engine::Sizing;
use crate::error::{ApiError, ErrorCode};
use crate::{NodeId, NodeMap, NodeSet};
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{event, Env, ScheduleContext, ScheduledEvent};

/// The Cron Trigger: one autoscale step when `AUTOSCALE` is `on`, so the
/// cluster follows its traffic.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let settings = Settings::from_env(&env);
    if !settings.autoscale {
        return;
    }
    match autoscale(&env, &settings, settings.sizing).await {
        Ok((status, _)) => worker::console_log!("autoscale: {status}"),
        Err(e) => worker::console_error!("autoscale: {}", e.into_api()),
    }
}

fn json<T: Serialize>(status: u16, value: &T) -> Outcome {
    let mut reply = Reply::json(value);
    reply.status = status;
    Ok(respond(&reply, &[])?)
}

/// Decodes a node's typed outcome.
fn outcome<T: DeserializeOwned>(answer: NodeReply) -> Result<T, ApiError> {
    learn_active(&answer.active);
    let bytes = answer.result?;
    codec::decode(&bytes, codec::MAX_FRAME)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

async fn ask(env: &Env, id: NodeId, op: AdminOp) -> Result<NodeReply, Failure> {
    Ok(call_node(env, id, &NodeRequest::Admin(op)).await?)
}

pub(crate) async fn handle(
    env: &Env,
    settings: &Settings,
    http: &HttpRequest,
    route: AdminRoute,
) -> Outcome {
    match route {
        AdminRoute::Nodes => json(200, &active_view(env, settings).await?),
        AdminRoute::Node(id) => json(
            200,
            &outcome::<NodeView>(ask(env, id, AdminOp::View).await?)?,
        ),
        AdminRoute::Add => match add_node(env, settings).await? {
            Ok(added) => json(200, &added),
            Err(e) => Err(e.into()),
        },
        AdminRoute::Retire(id) => match retire_node(env, id).await? {
            Ok(retired) => json(200, &retired),
            Err(e) => Err(e.into()),
        },
        AdminRoute::Traffic(query) => {
            let sizing = query.apply(settings.sizing)?;
            json(200, &cluster_traffic(env, settings, sizing).await?.view())
        }
        AdminRoute::Autoscale(query) => {
            let sizing = query.apply(settings.sizing)?;
            let (status, view) = autoscale(env, settings, sizing).await?;
            let _ = http;
            json(status, &view)
        }
        AdminRoute::Partition(groups) => json(200, &partition(env, settings, groups).await?),
        AdminRoute::Live => live(env.clone(), settings.clone()),
        AdminRoute::Peer(id) => {
            let path = format!("/peer/{}", id.0);
            let (status, body) = super::post(env, id, &path, http.body.clone()).await?;
            if status != 200 {
                let reply = Reply {
                    status,
                    content_type: "application/json",
                    body,
                };
                return Ok(respond(&reply, &[])?);
            }
            json(
                200,
                &Delivered {
                    delivered: true,
                    reply_bytes: body.len(),
                },
            )
        }
    }
}

/// How often `/admin/live` sends the cluster's views.
const LIVE_EVERY_MS: u64 = 1_000;

/// One `/admin/live` event: when, and each member's view (`None`: it did
/// not answer).
#[derive(Serialize)]
struct Snapshot {
    at: u64,
    nodes: NodeMap<Option<NodeView>>,
}

/// `GET /admin/live`: a stream of [`Snapshot`]s, the first at once, then
/// one each [`LIVE_EVERY_MS`] while the client reads.
fn live(env: Env, settings: Settings) -> Outcome {
    let ticks =
        futures_util::stream::unfold((env, settings, true), |(env, settings, first)| async move {
            if !first {
                worker::Delay::from(std::time::Duration::from_millis(LIVE_EVERY_MS)).await;
            }
            let event = snapshot(&env, &settings).await;
            Some((
                Ok::<_, worker::Error>(event.into_bytes()),
                (env, settings, false),
            ))
        });
    Ok(super::event_stream(Box::pin(ticks))?)
}

/// Every member's view as one event, or an `error` event: the active
/// node that lists the members gives its own; the others are all asked
/// before any answer is awaited.
async fn snapshot(env: &Env, settings: &Settings) -> String {
    let first = match active_view(env, settings).await {
        Ok(view) => view,
        Err(e) => return format!("event: error\ndata: {}\n\n", e.into_api().to_json()),
    };
    let view = NodeRequest::Admin(AdminOp::View);
    let asked: Vec<_> = first
        .members
        .keys()
        .filter(|id| **id != first.node)
        .map(|id| (*id, super::start_call(env, *id, &view)))
        .collect();
    let mut nodes = NodeMap::new();
    for (id, sent) in asked {
        let answer = super::node_reply(id, sent).await.ok();
        nodes.insert(id, answer.and_then(|a| outcome::<NodeView>(a).ok()));
    }
    nodes.insert(first.node, Some(first));
    let at = super::now_ms();
    let data = serde_json::to_string(&Snapshot { at, nodes }).unwrap_or_default();
    format!("data: {data}\n\n")
}

/// A frame a node took: the size of its answer.
#[derive(Serialize)]
struct Delivered {
    delivered: bool,
    reply_bytes: usize,
}

/// The view of an active node: each node in the router's table is asked
/// in turn until one is active.
async fn active_view(env: &Env, settings: &Settings) -> Result<NodeView, Failure> {
    let mut tried = NodeSet::new();
    loop {
        let next = active_nodes(settings)
            .into_iter()
            .find(|n| !tried.contains(n));
        let Some(id) = next else {
            return Err(ApiError::new(ErrorCode::NoActiveNode, "no active node answered").into());
        };
        tried.insert(id);
        if let Ok(answer) = ask(env, id, AdminOp::View).await {
            let view: NodeView = outcome(answer)?;
            if view.status == StatusView::Active {
                return Ok(view);
            }
        }
    }
}

/// Adds a node: its id comes from the one allocator, the `Registry`.
async fn add_node(env: &Env, settings: &Settings) -> Result<Result<Added, ApiError>, Failure> {
    let registry = env.durable_object("REGISTRY")?.get_by_name("node-ids")?;
    let allocated = registry.fetch_with_str("https://registry/allocate").await?;
    let id: u32 = codec::decode(&super::response_body(allocated).await?, 16)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let new = NodeId(id);
    let mut tried = NodeSet::new();
    loop {
        let next = active_nodes(settings)
            .into_iter()
            .find(|n| !tried.contains(n));
        let Some(at) = next else {
            return Ok(Err(ApiError::new(
                ErrorCode::NoActiveNode,
                "no active node answered",
            )));
        };
        tried.insert(at);
        match outcome::<Added>(ask(env, at, AdminOp::Add(new)).await?) {
            Err(e) if e.error == ErrorCode::NotActive => continue,
            other => return Ok(other),
        }
    }
}

/// Retires (or goes on retiring) node `id`.
async fn retire_node(env: &Env, id: NodeId) -> Result<Result<Retired, ApiError>, Failure> {
    let answer = ask(env, id, AdminOp::Retire).await?;
    forget_node(id);
    Ok(outcome::<Retired>(answer))
}

/// `{"nodes": [...]}`: each node's view after a partition.
#[derive(Serialize)]
struct PartitionedViews {
    nodes: Vec<NodeView>,
}

/// Sets the partition at every node that is not retired (and at every
/// node a group names).
async fn partition(
    env: &Env,
    settings: &Settings,
    groups: Vec<NodeSet>,
) -> Result<PartitionedViews, Failure> {
    let members = active_view(env, settings).await?.members;
    let mut targets: NodeSet = members
        .iter()
        .filter(|(_, s)| !matches!(s, StatusView::Retired(_)))
        .map(|(id, _)| *id)
        .collect();
    targets.extend(groups.iter().flatten().copied());
    let mut views = Vec::new();
    for id in targets {
        views.push(outcome::<NodeView>(
            ask(env, id, AdminOp::Partition(groups.clone())).await?,
        )?);
    }
    Ok(PartitionedViews { nodes: views })
}

/// Asks every active node for its client traffic and sums it up against
/// `sizing`. One node after another: asking all at once made the Worker
/// larger for an admin route.
async fn cluster_traffic(
    env: &Env,
    settings: &Settings,
    sizing: Sizing,
) -> Result<Report, Failure> {
    let members = active_view(env, settings).await?.members;
    let mut answers = NodeMap::new();
    let mut draining = None;
    for (id, status) in &members {
        let view = match status {
            StatusView::Active | StatusView::Draining(_) => ask(env, *id, AdminOp::View).await.ok(),
            StatusView::Retired(_) => None,
        };
        let view = view.and_then(|a| outcome::<NodeView>(a).ok());
        match status {
            StatusView::Active => {
                let traffic = view.map(|v| NodeTraffic {
                    total: v.requests.total,
                    per_second: v.requests.per_second,
                });
                answers.insert(*id, traffic);
            }
            // A node's own view is the last word on its retirement.
            StatusView::Draining(_)
                if draining.is_none()
                    && view.is_some_and(|v| matches!(v.status, StatusView::Draining(_))) =>
            {
                draining = Some(*id);
            }
            _ => {}
        }
    }
    Ok(Report::new(answers, draining, sizing))
}

/// One step towards the size the traffic calls for: adds a node, or
/// retires one (a retirement under way first), or does nothing. The view
/// carries the step's own result, and the status is the step's.
async fn autoscale(
    env: &Env,
    settings: &Settings,
    sizing: Sizing,
) -> Result<(u16, crate::api::traffic::TrafficView), Failure> {
    let report = cluster_traffic(env, settings, sizing).await?;
    let result = match report.step {
        Step::Stay => None,
        Step::Add => Some(match add_node(env, settings).await? {
            Ok(added) => StepResult::Added(added),
            Err(e) => StepResult::Failed(e),
        }),
        Step::Remove(id) => Some(match retire_node(env, id).await? {
            Ok(retired) => StepResult::Retired(retired),
            Err(e) => StepResult::Failed(e),
        }),
    };
    let status = match &result {
        Some(StepResult::Failed(e)) => e.status(),
        _ => 200,
    };
    let mut view = report.view();
    view.result = Some(result);
    Ok((status, view))
}
