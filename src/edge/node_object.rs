//! The node object: a [`Host`] plus the client operations of each kind of
//! value. Gossip, storage and streams stay in [`Host`]; a new kind adds one
//! module like [`counters`], [`sets`] or [`kv`] and one arm in `handle`.

use super::host::Host;
use super::{header, Failure, Outcome, FORMAT, KEY, MEMBERS, NODE};
use crate::api::{ApiError, Format};
use crate::crdt::Kind;
use crate::NodeId;
use worker::{durable_object, wasm_bindgen, DurableObject, Env, Request, Response, State};

/// A node of the cluster: holds every kind of replicated value.
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

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        self.handle(req).await.or_else(Failure::into_response)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.host.alarm().await
    }
}

impl ClusterNode {
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
            return self.host.forward(req, target).await;
        }
        self.host.count_request();
        if op == "events" {
            return self.host.subscribe(&key).await;
        }
        let format = match req.headers().get(FORMAT)?.as_deref() {
            Some("postcard") => Format::Postcard,
            _ => Format::Json,
        };
        let mut res = match Kind::of_key(&key) {
            Some((Kind::Counter, name)) => {
                counters::handle(&self.host, op, &key, name, format, req).await?
            }
            Some((Kind::Set, name)) => {
                sets::handle(&self.host, op, &key, name, format, req).await?
            }
            Some((Kind::Register, name)) => {
                kv::handle(&self.host, op, &key, name, format, req).await?
            }
            _ => {
                return Err(
                    ApiError::new(400, "bad_request", "no client operations for this key").into(),
                )
            }
        };
        res.headers_mut().set(MEMBERS, &self.host.active_list())?;
        Ok(res)
    }
}

/// `/client/read` and `/client/increment` for counters.
mod counters {
    use super::super::host::{Host, Written};
    use super::super::{bytes, header, Outcome, BY};
    use crate::api::{counter, not_found, ApiError, Format};
    use crate::crdt::{PnCounter, PnError, Value};
    use worker::Request;

    pub async fn handle(
        host: &Host,
        op: &str,
        key: &str,
        name: &str,
        format: Format,
        req: Request,
    ) -> Outcome {
        let state = match op {
            "read" => host.read(key)?,
            "increment" => {
                let by: i64 = header(&req, BY)?;
                let written = host
                    .write(key, |v, at| {
                        let c = v.as_counter().cloned().unwrap_or_default();
                        c.add(at.node, by).map(Value::Counter)
                    })
                    .await?;
                match written {
                    Written::Stored(v) => v,
                    Written::Elsewhere(target) => return host.forward(req, target).await,
                    Written::Refused(PnError::Overflow) => {
                        return Err(ApiError::new(
                            409,
                            "overflow",
                            "this node's share of the counter would overflow",
                        )
                        .into())
                    }
                    Written::Refused(PnError::Retired) => {
                        return Err(ApiError::new(503, "retired", "this node is retired").into())
                    }
                }
            }
            _ => return Err(not_found(op).into()),
        };
        let counter = state
            .as_counter()
            .cloned()
            .unwrap_or_else(PnCounter::default);
        let id = host.with(|n| n.id());
        Ok(bytes(
            200,
            format.content_type(),
            counter::reply(format, name, id, &counter),
        )?)
    }
}

/// `/client/{read,updates,create,insert,delete,update}` for sets.
mod sets {
    use super::super::host::{Host, Written};
    use super::super::{bytes, header, Outcome, BIAS, SINCE};
    use crate::api::{not_found, set, ApiError, Format};
    use crate::codec;
    use crate::crdt::{Element, LwwSet, Value};
    use std::convert::Infallible;
    use worker::Request;

    pub async fn handle(
        host: &Host,
        op: &str,
        key: &str,
        name: &str,
        format: Format,
        req: Request,
    ) -> Outcome {
        // Bodies are read from a copy, so a forwarded request keeps its own.
        let body = || async { req.clone_mut()?.bytes().await };
        let id = host.with(|n| n.id());
        let current = |v: &Value| v.as_set().cloned().unwrap_or_default();
        // The write's timestamp, for the reply: clients that log their
        // writes (the chaos clients' oracle) read it back from there.
        let mut stamp = None;
        let written = match op {
            "read" => Written::Stored(host.read(key)?),
            "updates" => {
                let since: u64 = header(&req, SINCE)?;
                let state = current(&host.read(key)?);
                let body = set::updates_reply(format, name, id, &state, since);
                return Ok(bytes(200, format.content_type(), body)?);
            }
            "create" => {
                let bias = set::BiasName::parse(&header::<String>(&req, BIAS)?)
                    .ok_or_else(|| ApiError::new(400, "bad_request", "unknown bias"))?;
                if let Some((_, had)) = current(&host.read(key)?).created() {
                    if had != bias {
                        let had = set::BiasName::from(had).as_str();
                        let e = ApiError::new(
                            409,
                            "already_created",
                            format!("the set exists with bias {had}"),
                        );
                        return Err(e.into());
                    }
                }
                host.write(key, |_, at| {
                    stamp = Some(at.time);
                    Ok::<_, Infallible>(Value::Set(LwwSet::new(bias, at.time)))
                })
                .await?
            }
            "insert" | "delete" => {
                let elements: Vec<Element> =
                    codec::decode(&body().await?, set::MAX_REPLICA_BODY)
                        .map_err(|e| ApiError::new(400, "bad_request", e.to_string()))?;
                host.write(key, |v, at| {
                    stamp = Some(at.time);
                    let s = current(v);
                    let delta = if op == "insert" {
                        s.insert(elements, at.time)
                    } else {
                        s.remove(elements, at.time)
                    };
                    Ok::<_, Infallible>(Value::Set(delta))
                })
                .await?
            }
            "update" => {
                let replica: LwwSet = codec::decode(&body().await?, set::MAX_REPLICA_BODY)
                    .map_err(|e| ApiError::new(400, "bad_request", e.to_string()))?;
                host.write(key, |_, _| Ok::<_, Infallible>(Value::Set(replica)))
                    .await?
            }
            _ => return Err(not_found(op).into()),
        };
        let state = match written {
            Written::Stored(v) => current(&v),
            Written::Elsewhere(target) => return host.forward(req, target).await,
            Written::Refused(never) => match never {},
        };
        Ok(bytes(
            200,
            format.content_type(),
            set::reply(format, name, id, &state, stamp),
        )?)
    }
}

/// `/client/{kv-read,kv-put,kv-delete,kv-list}` for the multi-value
/// registers. A register lives on the few replicas its key's place on the
/// ring names: a node that is not one of them forwards the request (once)
/// to one that is.
mod kv {
    use super::super::host::{Host, Written};
    use super::super::{bytes, fresh, header, Outcome, AFTER, FORWARDED, LIMIT, RESOLVE};
    use crate::api::kv::{self as api, NodePage, PutWire};
    use crate::api::{not_found, ApiError, Format, POSTCARD};
    use crate::codec::{self, MAX_FRAME, MAX_STATE};
    use crate::crdt::{CausalContext, Crdt, TooManySiblings, Value, MAX_SIBLINGS};
    use worker::Request;

    /// Why a write was refused.
    enum Refusal {
        TooManySiblings(TooManySiblings),
        /// the register's stored state would have this many bytes
        TooLarge(usize),
    }

    pub async fn handle(
        host: &Host,
        op: &str,
        key: &str,
        name: &str,
        format: Format,
        req: Request,
    ) -> Outcome {
        if op == "kv-list" {
            // `key` is the stored-key prefix, `kv:PREFIX`.
            let limit: usize = header(&req, LIMIT)?;
            let after = req.headers().get(AFTER)?;
            let rows = host.list(key, after.as_deref(), limit.saturating_add(1))?;
            let page = NodePage::new(rows, limit);
            return Ok(bytes(200, POSTCARD, codec::encode(&page))?);
        }
        // Placement views may differ for a moment: a forwarded request is
        // served where it lands rather than bounced again.
        if let Some(target) = host.replica_target(key) {
            if req.headers().get(FORWARDED)?.is_none() {
                return Ok(fresh(host.forward(req, Some(target)).await?, &[]).await?);
            }
        }
        let body = || async { req.clone_mut()?.bytes().await };
        let current = |v: &Value| v.as_register().cloned().unwrap_or_default();
        let resolve = req.headers().get(RESOLVE)?.is_some();
        let written = match op {
            "kv-read" => Written::Stored(host.read(key)?),
            "kv-put" => {
                let PutWire { payload, context } = codec::decode(&body().await?, MAX_FRAME)
                    .map_err(|e| ApiError::new(400, "bad_request", e.to_string()))?;
                host.write(key, |v, at| {
                    let register = current(v);
                    register
                        .admits(&context)
                        .map_err(Refusal::TooManySiblings)?;
                    let delta = register.write(at, &context, payload);
                    // A stored state over MAX_STATE would not load again.
                    let mut after = register;
                    after.merge(&delta);
                    let size = codec::encode(&Value::Register(after)).len();
                    if size > MAX_STATE {
                        return Err(Refusal::TooLarge(size));
                    }
                    Ok(Value::Register(delta))
                })
                .await?
            }
            "kv-delete" => {
                let seen: Option<CausalContext> = codec::decode(&body().await?, MAX_FRAME)
                    .map_err(|e| ApiError::new(400, "bad_request", e.to_string()))?;
                let register = current(&host.read(key)?);
                let seen = seen.unwrap_or_else(|| register.context().clone());
                let delta = register.delete(&seen);
                // Nothing to delete and nothing new to remember: no write.
                if !register.clone().merge(&delta) {
                    Written::Stored(Value::Register(register))
                } else {
                    host.write(key, |v, _| {
                        Ok::<_, Refusal>(Value::Register(current(v).delete(&seen)))
                    })
                    .await?
                }
            }
            _ => return Err(not_found(op).into()),
        };
        let register = match written {
            Written::Stored(v) => current(&v),
            Written::Elsewhere(target) => {
                return Ok(fresh(host.forward(req, target).await?, &[]).await?)
            }
            Written::Refused(Refusal::TooManySiblings(TooManySiblings(kept))) => {
                return Err(ApiError::new(
                    409,
                    "too_many_siblings",
                    format!(
                        "this write would keep {kept} siblings besides its own, over the limit \
                         of {MAX_SIBLINGS}: read the key (GET) and write with the `context` \
                         of that read, which replaces the siblings it saw"
                    ),
                )
                .into())
            }
            Written::Refused(Refusal::TooLarge(size)) => {
                return Err(ApiError::new(
                    413,
                    "register_too_large",
                    format!(
                        "with its siblings the key would hold {size} bytes, over the limit of \
                         {MAX_STATE}: read the key (GET) and write with the `context` of that \
                         read, which replaces the siblings it saw"
                    ),
                )
                .into())
            }
        };
        let id = host.with(|n| n.id());
        Ok(bytes(
            200,
            format.content_type(),
            api::reply(format, name, id, &register, resolve),
        )?)
    }
}
