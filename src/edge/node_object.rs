//! The `ClusterNode` Durable Object: `POST /peer/{id}` takes a frame from
//! another node, `POST /call/{id}` a typed request from the router (or a
//! node passing one on). Neither is reachable by clients: the router never
//! forwards a client's path to an object. Operations are dispatched to the
//! kind that owns the object ([`crate::kinds`]); nothing here knows kinds.

use super::host::Host;
use super::{call_raw, now_ms, postcard, Failure, Outcome};
use crate::api::call::{Added, AdminOp, NodeReply, NodeRequest, Retired, Target};
use crate::codec::{self, MAX_FRAME};
use crate::engine::{ObjectId, Partition, Policy, Status};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::{self, Call};
use crate::NodeId;
use worker::{durable_object, wasm_bindgen, DurableObject, Env, Request, Response, State};

/// A node of the cluster: holds every kind of replicated object.
#[durable_object]
pub struct ClusterNode {
    host: Host,
}

impl DurableObject for ClusterNode {
    fn new(state: State, env: Env) -> Self {
        ClusterNode {
            host: Host::new(state, env),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let path = req.path();
        let (kind, id) = match path.trim_start_matches('/').split_once('/') {
            Some((kind, id)) => (kind.to_owned(), id.parse().ok().map(NodeId)),
            None => (String::new(), None),
        };
        self.host.ensure(id).await?;
        let body = req.bytes().await?;
        let outcome = match kind.as_str() {
            "peer" => self.host.peer(&body).await.map_err(Failure::Client),
            "call" => self.call(&body).await,
            _ => Err(Failure::Client(ApiError::not_found(&path))),
        };
        outcome.or_else(Failure::into_response)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.host.alarm().await
    }
}

impl ClusterNode {
    async fn call(&self, body: &[u8]) -> Outcome {
        let req: NodeRequest = codec::decode(body, MAX_FRAME)
            .map_err(|e| ApiError::new(ErrorCode::BadFrame, e.to_string()))?;
        let result = match req {
            NodeRequest::Op { target, op, forwarded } => {
                if let Some(res) = self.pass_on(target_object(&target), forwarded, || NodeRequest::Op {
                    target: target.clone(),
                    op: op.clone(),
                    forwarded: true,
                })
                .await?
                {
                    return Ok(res);
                }
                self.op(target, &op).await
            }
            NodeRequest::Subscribe { object, forwarded } => {
                let again = || NodeRequest::Subscribe { object: object.clone(), forwarded: true };
                match self.pass_on(Some(&object), forwarded, again).await {
                    Ok(Some(res)) => return Ok(res),
                    Ok(None) => match self.host.subscribe(&object).await {
                        Ok(stream) => return Ok(stream),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
            NodeRequest::Admin(op) => self.admin(op).await,
        };
        let reply = NodeReply {
            node: self.host.id(),
            active: self.host.active(),
            result: result.map_err(Failure::into_api),
        };
        Ok(postcard(&reply)?)
    }

    /// Passes a client request on, once, to a node that should take it:
    /// an active node, if this one is not; for an object on the ring, one
    /// of its replicas. Counts the request when this node takes it.
    async fn pass_on(
        &self,
        object: Option<&ObjectId>,
        forwarded: bool,
        again: impl FnOnce() -> NodeRequest,
    ) -> Result<Option<Response>, Failure> {
        let (me, target) = self.host.with(|e| (e.node.id(), e.node.forward_target()));
        if target != Some(me) {
            let Some(target) = target.filter(|_| !forwarded) else {
                let e = ApiError::new(ErrorCode::NoActiveNode, "no active node could take this request");
                return Err(e.into());
            };
            return Ok(Some(call_raw(&self.host.env, target, &again()).await?));
        }
        self.host.count_request();
        let replica = object.and_then(|o| {
            self.host.with(|e| {
                let ring = e.node.policy(o) == Some(Policy::Ring);
                let replicas = e.node.replicas(o);
                (ring && !replicas.contains(&me)).then(|| replicas.first().copied()).flatten()
            })
        });
        // Placement views may differ for a moment: a forwarded request is
        // served where it lands rather than bounced again.
        match replica.filter(|_| !forwarded) {
            Some(to) => Ok(Some(call_raw(&self.host.env, to, &again()).await?)),
            None => Ok(None),
        }
    }

    /// Runs a kind's operation here.
    async fn op(&self, target: Target, op: &[u8]) -> Result<Vec<u8>, Failure> {
        let (kind, object) = match target {
            Target::Object(object) => (kinds::by_prefix(object.prefix()), Some(object)),
            Target::Kind(prefix) => (kinds::by_prefix(&prefix), None),
        };
        let kind = kind.ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such kind"))?;
        let (outcome, out) = self.host.with(|engine| {
            let mut call = Call { engine, object, now: now_ms() };
            let outcome = kind.run(op, &mut call);
            let out = engine.settle();
            (outcome, out)
        });
        let out = out.map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        self.host.perform(out, None).await?;
        Ok(outcome?)
    }

    async fn admin(&self, op: AdminOp) -> Result<Vec<u8>, Failure> {
        match op {
            AdminOp::View => Ok(codec::encode(&self.host.view())),
            AdminOp::Add(id) => {
                let added = self.host.with(|e| {
                    if !e.node.accepts_writes() {
                        return Err(ApiError::new(ErrorCode::NotActive, format!("{} is not active", e.node.id())));
                    }
                    e.node
                        .add_node(id, now_ms())
                        .map_err(|err| ApiError::new(ErrorCode::CannotAdd, err.to_string()))?;
                    e.settle().map_err(|err| ApiError::new(ErrorCode::Internal, err.to_string()))
                })?;
                self.host.perform(added, None).await?;
                Ok(codec::encode(&Added { added: id }))
            }
            AdminOp::Retire => self.retire().await,
            AdminOp::Partition(groups) => {
                let out = self.host.with(|e| {
                    e.node.set_partition(Partition::new(groups));
                    e.settle()
                });
                let out = out.map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
                self.host.perform(out, None).await?;
                Ok(codec::encode(&self.host.view()))
            }
        }
    }

    async fn retire(&self) -> Result<Vec<u8>, Failure> {
        let started = self.host.with(|e| {
            let heir = e.node.begin_retire().map_err(|err| ApiError::new(ErrorCode::CannotRetire, err.to_string()))?;
            let out = e.settle().map_err(|err| ApiError::new(ErrorCode::Internal, err.to_string()))?;
            Ok::<_, ApiError>((heir, out))
        });
        let (heir, out) = started?;
        self.host.perform(out, None).await?;
        if !matches!(self.host.with(|e| e.node.status()), Status::Retired { .. }) {
            let e = format!("the handoff to {heir} did not complete; retry to resume it");
            return Err(ApiError::new(ErrorCode::HandoffIncomplete, e).into());
        }
        // Wake every stream so browsers reconnect to a live node.
        self.host.streams.close_all();
        Ok(codec::encode(&Retired { heir, view: self.host.view() }))
    }
}

fn target_object(target: &Target) -> Option<&ObjectId> {
    match target {
        Target::Object(o) => Some(o),
        Target::Kind(_) => None,
    }
}
