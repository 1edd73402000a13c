//! The node object of the visit counters: a [`Host`] of [`PnCounter`]s plus
//! the counters' client operations. Another data type gets an object like
//! this one; gossip and storage stay in [`Host`].

use super::host::Host;
use super::{call_node, header, Failure, Outcome, BY, FORMAT, FORWARDED, KEY, MEMBERS, NODE};
use crate::api::{counter, ApiError, Format};
use crate::cluster::WriteError;
use crate::crdt::{PnCounter, PnError};
use crate::NodeId;
use worker::{durable_object, wasm_bindgen, DurableObject, Env, Request, Response, State};

/// A node of the visit-counter cluster.
#[durable_object]
pub struct CounterNode {
    host: Host<PnCounter>,
}

impl DurableObject for CounterNode {
    fn new(state: State, env: Env) -> Self {
        CounterNode {
            host: Host::new(state, env),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        self.handle(req).await.or_else(Failure::into_response)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.host.alarm().await
    }
}

impl CounterNode {
    async fn handle(&self, req: Request) -> Outcome {
        let id = req
            .headers()
            .get(NODE)?
            .and_then(|v| v.parse::<NodeId>().ok());
        self.host.ensure(id).await?;
        let path = req.path();
        let Some(op) = path.strip_prefix("/client/") else {
            return self.host.internal(req).await;
        };
        let key: String = header(&req, KEY)?;
        let target = self.host.with(|n| n.forward_target());
        if target != Some(self.host.with(|n| n.id())) {
            return self.forward(req, target).await;
        }
        let format = match req.headers().get(FORMAT)?.as_deref() {
            Some("postcard") => Format::Postcard,
            _ => Format::Json,
        };
        let state = match op {
            "read" => self
                .host
                .with(|n| n.read(&key).cloned().unwrap_or_default()),
            "events" => return self.host.subscribe(&key).await,
            "increment" => {
                let by: i64 = header(&req, BY)?;
                let written = self
                    .host
                    .with(|n| n.write(&key, |s: &PnCounter, id| s.add(id, by)).cloned());
                match written {
                    Ok(state) => {
                        self.host.settle(None).await?;
                        state
                    }
                    Err(WriteError::NotAccepting { forward_to }) => {
                        return self.forward(req, forward_to).await
                    }
                    Err(WriteError::Rejected(PnError::Overflow)) => {
                        return Err(ApiError::new(
                            409,
                            "overflow",
                            "this node's share of the counter would overflow",
                        )
                        .into())
                    }
                    Err(WriteError::Rejected(PnError::Retired)) => {
                        return Err(ApiError::new(503, "retired", "this node is retired").into())
                    }
                }
            }
            _ => return Err(crate::api::not_found(&path).into()),
        };
        let id = self.host.with(|n| n.id());
        let mut res = super::bytes(
            200,
            format.content_type(),
            counter::reply(format, &key, id, &state),
        )?;
        res.headers_mut().set(MEMBERS, &self.host.active_list())?;
        Ok(res)
    }

    /// Passes a client request on to an active node, once.
    async fn forward(&self, req: Request, target: Option<NodeId>) -> Outcome {
        let forwarded = req.headers().get(FORWARDED)?.is_some();
        let Some(target) = target.filter(|_| !forwarded) else {
            return Err(ApiError::new(
                503,
                "no_active_node",
                "no active node could take this request",
            )
            .into());
        };
        let mut inner = req.clone_mut()?;
        inner.headers_mut()?.set(FORWARDED, "1")?;
        Ok(call_node(self.host.env(), target, inner).await?)
    }
}
