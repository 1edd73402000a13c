//! The `ClusterNode` Durable Object: `POST /peer/{id}` takes a frame from
//! another node, `POST /call/{id}` a typed request from the router (or a
//! node passing one on). Neither is reachable by clients: the router never
//! forwards a client's path to an object. Operations are dispatched to the
//! kind that owns the object ([`crate::kinds`]); nothing here knows kinds.

use super::host::{Arrival, Host};
use super::sql_store::SqlStore;
use super::{call_raw, now_ms, postcard, Failure, Outcome};
use crate::api::call::{Added, AdminOp, NodeReply, NodeRequest, Retired, Target};
use crate::codec::{self, MAX_FRAME};
use crate::engine::{fanout, Engine, Partition, Policy, Status, StoreError};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::{self, Call};
use crate::NodeId;
use worker::{durable_object, wasm_bindgen, DurableObject, Env, Request, Response, State};

/// Subrequests a retirement's call may make while it hands its leaves off
/// (the free plan allows 50 an invocation); what does not fit, a retry
/// resumes (502 `handoff_incomplete`).
const RETIRE_SUBREQUESTS: usize = 40;

/// A node of the cluster: holds every kind of replicated object.
#[durable_object(alarm)]
pub struct ClusterNode {
    host: Host,
}

impl DurableObject for ClusterNode {
    fn new(state: State, env: Env) -> Self {
        ClusterNode {
            host: Host::new(state, env),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let path = req.path();
        let (kind, id) = match path.trim_start_matches('/').split_once('/') {
            Some((kind, id)) => (kind.to_owned(), id.parse().ok().map(NodeId)),
            None => (String::new(), None),
        };
        // A client's request holds the node's open batch from here.
        let arrival = (kind == "call").then(|| self.host.arrive());
        self.host.ensure(id).await?;
        let body = super::whole_body(req.inner().array_buffer()).await?;
        let outcome = match (kind.as_str(), arrival) {
            ("peer", _) => self.host.peer(&body).await.map_err(Failure::Client),
            ("call", Some(arrival)) => self.call(&body, &arrival).await,
            _ => Err(Failure::Client(ApiError::not_found(&path))),
        };
        outcome.or_else(Failure::into_response)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.host.alarm().await
    }
}

/// What a request did here, once its outputs are performed.
enum Done {
    /// the encoded outcome, or why there is none
    Result(Result<Vec<u8>, ApiError>),
    /// a retirement was started or continued: done if the node is retired now
    Retire(NodeId),
    /// the node's view, read once the outputs are performed
    View,
}

fn internal(e: StoreError) -> ApiError {
    ApiError::new(ErrorCode::Internal, e.to_string())
}

impl ClusterNode {
    async fn call(&self, body: &[u8], arrival: &Arrival<'_>) -> Outcome {
        let req: NodeRequest = codec::decode(body, MAX_FRAME)
            .map_err(|e| ApiError::new(ErrorCode::BadFrame, e.to_string()))?;
        let result = match (self.elsewhere(&req), req) {
            (Ok(Some(to)), req) => {
                arrival.leave();
                return Ok(call_raw(&self.host.env, to, &forwarded(req)).await?);
            }
            // Answered by the stream itself; only a failure is a reply.
            (Ok(None), NodeRequest::Subscribe { object, .. }) => {
                arrival.leave();
                match self.host.subscribe(&object).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => Err(e.into_api()),
                }
            }
            (Ok(None), req) => self.here(req, arrival).await,
            (Err(e), _) => Err(e),
        };
        let reply = NodeReply {
            node: self.host.id(),
            active: self.host.active(),
            result,
        };
        Ok(postcard(&reply)?)
    }

    /// Where a client request belongs if not here, once: an active node,
    /// if this one is not; for an object on the ring, one of its replicas.
    /// Counts the request when this node takes it.
    fn elsewhere(&self, req: &NodeRequest) -> Result<Option<NodeId>, ApiError> {
        let (object, forwarded) = match req {
            NodeRequest::Op {
                target: Target::Object(o),
                forwarded,
                ..
            } => (Some(o), *forwarded),
            NodeRequest::Op { forwarded, .. } => (None, *forwarded),
            NodeRequest::Subscribe { object, forwarded } => (Some(object), *forwarded),
            NodeRequest::Admin(_) => return Ok(None),
        };
        let (me, target) = self.host.with(|e| (e.node.id(), e.node.forward_target()));
        if target != Some(me) {
            return match target.filter(|_| !forwarded) {
                Some(to) => Ok(Some(to)),
                None => Err(ApiError::new(
                    ErrorCode::NoActiveNode,
                    "no active node could take this request",
                )),
            };
        }
        self.host.count_request();
        // Placement views may differ for a moment: a forwarded request is
        // served where it lands rather than bounced again.
        Ok(object.filter(|_| !forwarded).and_then(|o| {
            self.host.with(|e| {
                let replicas = e.node.replicas(o);
                let ring = e.node.policy(o) == Some(Policy::Ring);
                replicas
                    .first()
                    .copied()
                    .filter(|_| ring && !replicas.contains(&me))
            })
        }))
    }

    /// Runs a request here: the engine's work, then its outputs.
    async fn here(&self, req: NodeRequest, arrival: &Arrival<'_>) -> Result<Vec<u8>, ApiError> {
        let (done, out) = self.host.with(|engine| {
            let done = run(engine, req);
            (done, engine.settle())
        });
        let out = out.map_err(internal)?;
        // A retirement hands its leaves off within the call if it can: an
        // admin's call may take most of the platform's 50 subrequests.
        let budget = match done {
            Done::Retire(_) => RETIRE_SUBREQUESTS,
            _ => fanout::invocation_budget(self.host.settings.gossip_fanout),
        };
        self.host
            .perform_within(out, None, Some(arrival.ticket()), budget)
            .await
            .map_err(|e| Failure::Platform(e).into_api())?;
        match done {
            Done::Result(result) => result,
            Done::Retire(heir) => self.retired(heir),
            Done::View => Ok(codec::encode(&self.host.view())),
        }
    }

    fn retired(&self, heir: NodeId) -> Result<Vec<u8>, ApiError> {
        if !matches!(self.host.with(|e| e.node.status()), Status::Retired { .. }) {
            let e = format!("the handoff to {heir} did not complete; retry to resume it");
            return Err(ApiError::new(ErrorCode::HandoffIncomplete, e));
        }
        // Wake every stream so browsers reconnect to a live node.
        self.host.streams.close_all();
        Ok(codec::encode(&Retired {
            heir,
            view: self.host.view(),
        }))
    }
}

/// The request, marked as passed on once.
fn forwarded(req: NodeRequest) -> NodeRequest {
    match req {
        NodeRequest::Op { target, op, .. } => NodeRequest::Op {
            target,
            op,
            forwarded: true,
        },
        NodeRequest::Subscribe { object, .. } => NodeRequest::Subscribe {
            object,
            forwarded: true,
        },
        admin => admin,
    }
}

/// Runs a kind's operation or an admin request on the engine.
fn run(engine: &mut Engine<SqlStore>, req: NodeRequest) -> Done {
    let now = now_ms();
    match req {
        NodeRequest::Op { target, op, .. } => {
            let (kind, object) = match target {
                Target::Object(object) => (kinds::by_prefix(object.prefix()), Some(object)),
                Target::Kind(prefix) => (kinds::by_prefix(&prefix), None),
            };
            Done::Result(match kind {
                Some(kind) => kind.run(
                    &op,
                    &mut Call {
                        engine,
                        object,
                        now,
                    },
                ),
                None => Err(ApiError::new(ErrorCode::NotFound, "no such kind")),
            })
        }
        NodeRequest::Admin(AdminOp::Add(id)) => Done::Result(add(engine, id, now)),
        NodeRequest::Admin(AdminOp::Retire) => match engine.node.begin_retire() {
            Ok(heir) => Done::Retire(heir),
            Err(e) => Done::Result(Err(ApiError::new(ErrorCode::CannotRetire, e.to_string()))),
        },
        NodeRequest::Admin(AdminOp::Partition(groups)) => {
            engine.node.set_partition(Partition::new(groups));
            Done::View
        }
        NodeRequest::Admin(AdminOp::View) | NodeRequest::Subscribe { .. } => Done::View,
    }
}

fn add(engine: &mut Engine<SqlStore>, id: NodeId, now: u64) -> Result<Vec<u8>, ApiError> {
    let node = &mut engine.node;
    if !node.accepts_writes() {
        return Err(ApiError::new(
            ErrorCode::NotActive,
            format!("{} is not active", node.id()),
        ));
    }
    node.add_node(id, now)
        .map_err(|e| ApiError::new(ErrorCode::CannotAdd, e.to_string()))?;
    Ok(codec::encode(&Added { added: id }))
}
