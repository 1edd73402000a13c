//! A node inside a Durable Object: its [`Engine`] over the object's SQLite,
//! and the only place that turns the engine's outputs into peer calls,
//! alarms and pushes to server-sent event streams.
//!
//! A write is acknowledged after the engine's batch is stored: storage is
//! synchronous, the runtime commits each batch as one transaction, and its
//! output gate holds every response until earlier writes are durable. Peer
//! frames carry their send time; a frame (or a call's replies) older than
//! half the tombstone grace is refused, so no message outlives a tombstone
//! it could undo.

use super::sql_store::SqlStore;
use super::sse::Streams;
use super::{migrate, now_ms, Settings};
use crate::api::call::{NodeView, Requests, Sent, StatusView};
use crate::codec;
use crate::engine::{
    fanout, open_replies, Barrier, Effect, Engine, Frame, Message, ObjectId, Outputs, RequestMeter,
    Ticket,
};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::{self, CATALOG};
use crate::{NodeId, NodeMap};
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use worker::{Env, Response, ScheduledTime, State};

/// The window of a node's client request rate: the Cron Trigger's period,
/// so each autoscale step sees the whole minute before it.
const REQUEST_WINDOW_MS: u64 = 60_000;

/// Storage effects not written yet, in the order they arose, the requests
/// waiting for them, and when they may be written.
#[derive(Default)]
struct Batch {
    effects: Vec<Effect>,
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
    barrier: Barrier,
}

pub(crate) struct Host {
    pub state: State,
    pub env: Env,
    pub settings: Settings,
    engine: RefCell<Option<Engine<SqlStore>>>,
    batch: RefCell<Batch>,
    pub streams: Streams,
    alarm_at: Cell<Option<u64>>,
    /// Peer traffic since this object started.
    sent: Cell<Sent>,
    sent_to: RefCell<NodeMap<Sent>>,
    /// Client requests this node served since the object started.
    requests: RefCell<RequestMeter>,
}

fn internal(e: impl std::fmt::Display) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

impl Host {
    pub fn new(state: State, env: Env) -> Self {
        let settings = Settings::from_env(&env);
        Host {
            state,
            env,
            settings,
            engine: RefCell::new(None),
            batch: RefCell::new(Batch::default()),
            streams: Streams::default(),
            alarm_at: Cell::new(None),
            sent: Cell::new(Sent::default()),
            sent_to: RefCell::new(NodeMap::new()),
            requests: RefCell::new(RequestMeter::new(REQUEST_WINDOW_MS)),
        }
    }

    /// Counts a client request this node serves.
    pub fn count_request(&self) {
        self.requests.borrow_mut().record(now_ms());
    }

    /// Starts the engine from storage on first use (moving data stored in
    /// an older layout first). `id` comes from the request's path; an
    /// alarm after a restart reads it from storage.
    pub async fn ensure(&self, id: Option<NodeId>) -> worker::Result<()> {
        if self.engine.borrow().is_some() {
            return Ok(());
        }
        let store = SqlStore::open(self.state.storage().sql())?;
        let mut stored: Option<NodeId> = store
            .meta("id")
            .map_err(internal)?
            .and_then(|b| codec::decode(&b, 16).ok());
        if stored.is_none() {
            // The first layout kept the id as a key-value pair.
            stored = super::stored_number(&self.state.storage(), "id", u32::MAX.into())
                .await?
                .map(|id| NodeId(id as u32));
        }
        let id = match (stored, id) {
            (Some(id), _) if store.meta("id").map_err(internal)?.is_some() => id,
            (Some(id), _) | (None, Some(id)) => {
                store.set_meta("id", codec::encode(&id)).map_err(internal)?;
                id
            }
            (None, None) => return Err(internal("node id unknown")),
        };
        let config = self.settings.engine();
        let store = migrate::to_current(&self.state.storage(), store, id, &config).await?;
        let mut engine = Engine::start(id, config, CATALOG, store).map_err(internal)?;
        // Storage effects go through `persist`, which groups requests.
        engine.defer_writes = true;
        *self.engine.borrow_mut() = Some(engine);
        Ok(())
    }

    /// Runs `f` on the engine. Never hold this across an await.
    pub fn with<R>(&self, f: impl FnOnce(&mut Engine<SqlStore>) -> R) -> R {
        f(self
            .engine
            .borrow_mut()
            .as_mut()
            .expect("engine started by ensure()"))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.with(|e| e.node.id())
    }

    /// The active node ids, for the router's table.
    pub fn active(&self) -> Vec<NodeId> {
        self.with(|e| e.node.members().active().collect())
    }

    /// A client's request reaches this node: it holds the batch open
    /// ([`Barrier`]) until it joins it or the guard drops.
    pub fn arrive(&self) -> Arrival<'_> {
        let ticket = self.batch.borrow_mut().barrier.arrive();
        Arrival { host: self, ticket }
    }

    /// The request of `ticket` writes nothing here (it was passed on, or
    /// failed): the batch may not wait for it.
    fn leave(&self, ticket: Ticket) {
        if self.batch.borrow_mut().barrier.leave(ticket) {
            // A failed write reaches the batch's waiters: this request has none.
            let _ = self.flush();
        }
    }

    /// Writes `effects`, and every effect queued before them, before it
    /// returns. A client's request (`company`) joins the open batch, which
    /// is written once every request that reached the node before it
    /// opened has joined or left; the runtime's output gate then holds
    /// their replies until it is durable. Anything else writes at once.
    async fn persist(&self, effects: Vec<Effect>, company: Option<Ticket>) -> worker::Result<()> {
        let waiting = {
            let mut batch = self.batch.borrow_mut();
            batch.effects.extend(effects);
            match company {
                Some(ticket) if !batch.barrier.join(ticket) => {
                    let (tx, rx) = oneshot::channel();
                    batch.waiters.push(tx);
                    Some(rx)
                }
                _ => None,
            }
        };
        match waiting {
            Some(rx) => rx.await.unwrap_or(Ok(())).map_err(internal),
            None => self.flush(),
        }
    }

    /// Writes every queued effect as one batch and tells its waiters.
    fn flush(&self) -> worker::Result<()> {
        let (effects, waiters) = {
            let mut batch = self.batch.borrow_mut();
            batch.barrier.written();
            (
                std::mem::take(&mut batch.effects),
                std::mem::take(&mut batch.waiters),
            )
        };
        let written = if effects.is_empty() {
            Ok(())
        } else {
            self.with(|e| crate::engine::Store::write(&mut e.store, &effects))
                .map_err(|e| e.to_string())
        };
        for waiter in waiters {
            let _ = waiter.send(written.clone());
        }
        written.map_err(internal)
    }

    /// Performs outputs until none are left: their storage effects first
    /// (grouped with other clients' when `company`: a client's request),
    /// then pushes to streams and peer messages, whose replies come back
    /// as more input. Messages to `reply_to` are returned instead, to
    /// travel back in the HTTP response; the others are this invocation's
    /// subrequests, at most [`fanout::invocation_budget`] (past it, a send fails at once).
    pub async fn perform(
        &self,
        out: Outputs,
        reply_to: Option<NodeId>,
        company: Option<Ticket>,
    ) -> worker::Result<Vec<Message>> {
        let budget = fanout::invocation_budget(self.settings.gossip_fanout);
        self.perform_within(out, reply_to, company, budget).await
    }

    /// Like [`Host::perform`], with at most `budget` subrequests.
    pub async fn perform_within(
        &self,
        mut out: Outputs,
        reply_to: Option<NodeId>,
        company: Option<Ticket>,
        mut budget: usize,
    ) -> worker::Result<Vec<Message>> {
        let mut replies = Vec::new();
        self.persist(std::mem::take(&mut out.stored), company)
            .await?;
        loop {
            for publish in std::mem::take(&mut out.publishes) {
                if let Some(kind) = kinds::by_prefix(publish.object.prefix()) {
                    let event = format!("data: {}\n\n", kind.event(&publish.rows));
                    self.streams.push(Some(&publish.object), event.as_bytes());
                }
            }
            if std::mem::take(&mut out.heartbeat) {
                self.streams.push(None, b": heartbeat\n\n");
            }
            self.unsubscribe_closed();
            let mut next = Outputs::default();
            for (to, message) in std::mem::take(&mut out.sends) {
                if Some(to) == reply_to {
                    replies.push(message);
                } else if budget > 0 {
                    budget -= 1;
                    next.extend(self.deliver(to, message).await?);
                } else {
                    // Past this invocation's subrequests: as if unreachable.
                    let failed = self.with(|e| e.send_failed(to, message));
                    next.extend(failed.map_err(internal)?);
                }
            }
            self.persist(std::mem::take(&mut next.stored), None).await?;
            if next.sends.is_empty() && next.publishes.is_empty() && !next.heartbeat {
                break;
            }
            out = next;
        }
        self.arm_alarm().await?;
        Ok(replies)
    }

    fn unsubscribe_closed(&self) {
        for object in self.streams.take_closed() {
            self.with(|e| e.node.unsubscribe(&object));
        }
    }

    /// Sends `message` to peer `to`; its replies, or its failure, are input.
    async fn deliver(&self, to: NodeId, message: Message) -> worker::Result<Outputs> {
        let from = self.id();
        let started = now_ms();
        let frame = Frame {
            from,
            sent: started,
            message,
        };
        let bytes = codec::encode(&frame);
        self.count_sent(to, 1, bytes.len());
        let result = async {
            let (status, body) =
                super::post(&self.env, to, &format!("/peer/{}", to.0), bytes).await?;
            if status != 200 {
                return Err(internal(format!("status {status}")));
            }
            open_replies(&body, CATALOG).map_err(internal)
        }
        .await;
        let took = now_ms().saturating_sub(started);
        match result {
            Ok(replies) if took > self.settings.engine().max_frame_age() && !replies.is_empty() => {
                worker::console_warn!(
                    "{from} -> {to}: dropped {} replies after {took} ms",
                    replies.len()
                );
                Ok(Outputs::default())
            }
            Ok(replies) => {
                let mut out = Outputs::default();
                for reply in replies {
                    out.extend(
                        self.with(|e| e.receive(to, reply, now_ms()))
                            .map_err(internal)?,
                    );
                }
                Ok(out)
            }
            Err(e) => {
                worker::console_warn!("{from} -> {to}: send failed: {e}");
                self.with(|e| e.send_failed(to, frame.message))
                    .map_err(internal)
            }
        }
    }

    /// Counts `frames` and `bytes` sent to `peer`.
    fn count_sent(&self, peer: NodeId, frames: u64, bytes: usize) {
        let add = |s: &mut Sent| {
            s.frames += frames;
            s.bytes += bytes as u64;
        };
        let mut total = self.sent.get();
        add(&mut total);
        self.sent.set(total);
        add(self.sent_to.borrow_mut().get_or_default(peer));
    }

    /// `/peer`: a frame from another node; the answer carries its replies.
    pub async fn peer(&self, body: &[u8]) -> Result<Response, ApiError> {
        let opened = self.with(|e| e.receive_frame(body, now_ms()));
        let (from, out) = opened.map_err(|e| {
            use crate::engine::{EngineError, FrameError};
            let code = match e {
                EngineError::Frame(FrameError::Stale { .. }) => ErrorCode::StaleFrame,
                // Not 200: the sender counts the frame failed and keeps its rows.
                EngineError::Frame(FrameError::Partitioned { .. }) => ErrorCode::Partitioned,
                EngineError::Frame(_) => ErrorCode::BadFrame,
                EngineError::Store(_) => ErrorCode::Internal,
            };
            ApiError::new(code, e.to_string())
        })?;
        let replies = self
            .perform(out, Some(from), None)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        let body = codec::encode(&replies);
        self.count_sent(from, 0, body.len());
        let res = Response::from_bytes(body)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        Ok(res)
    }

    async fn arm_alarm(&self) -> worker::Result<()> {
        let Some(at) = self.with(|e| e.node.next_deadline()) else {
            return Ok(());
        };
        let at = at.max(now_ms() + 5);
        if self.alarm_at.get().is_some_and(|set| set <= at) {
            return Ok(());
        }
        let date = worker::js_sys::Date::new(&(at as f64).into());
        self.state
            .storage()
            .set_alarm(ScheduledTime::new(date))
            .await?;
        self.alarm_at.set(Some(at));
        Ok(())
    }

    pub async fn alarm(&self) -> worker::Result<Response> {
        self.alarm_at.set(None);
        self.ensure(None).await?;
        let out = self.with(|e| e.tick(now_ms())).map_err(internal)?;
        self.perform(out, None, None).await?;
        Response::ok("ticked")
    }

    /// The events of `object` from now on, starting with its current rows.
    pub async fn subscribe(&self, object: &ObjectId) -> Result<Response, super::Failure> {
        let kind = kinds::by_prefix(object.prefix())
            .ok_or_else(|| ApiError::not_found(object.as_str()))?;
        let rows = self.with(|e| {
            e.prepare(object, &[], true)?;
            e.node.subscribe(object);
            let rows = e
                .node
                .rows(object)
                .filter_map(|(k, s)| Some((k.clone(), s?.to_vec())))
                .collect::<Vec<_>>();
            Ok::<_, crate::engine::StoreError>(rows)
        });
        let rows = rows.map_err(internal)?;
        let hello = format!(
            "retry: {}\n\ndata: {}\n\n",
            self.settings.sse_retry_ms,
            kind.event(&rows)
        );
        let res = self.streams.open(object.clone(), hello.into_bytes())?;
        self.perform(Outputs::default(), None, None).await?;
        Ok(res)
    }

    /// The node's view, for the admin routes.
    pub fn view(&self) -> NodeView {
        let requests = self.requests.borrow();
        self.with(|e| {
            let n = &e.node;
            let (leaves, moving) = n.leaf_counts();
            let (tombstones, collected) = n.tombstone_counts();
            NodeView {
                node: n.id(),
                status: StatusView::from(n.status()),
                members: NodeView::members_of(n.members()),
                partition: n.partition().groups().to_vec(),
                keys_in_memory: n.objects().count() as u64,
                leaves: leaves as u64,
                leaves_moving: moving as u64,
                refused_states: n.refused(),
                sent: self.sent.get(),
                sent_to: self.sent_to.borrow().clone(),
                repaired_rows: n.repaired_rows(),
                requests: Requests {
                    total: requests.total(),
                    per_second: requests.per_second(now_ms()),
                    window_ms: REQUEST_WINDOW_MS,
                },
                tombstones,
                tombstones_collected: collected,
            }
        })
    }
}

/// A client's request on its way through this node, from the moment it
/// arrives: the open batch waits for it until it joins or this drops.
pub(crate) struct Arrival<'a> {
    host: &'a Host,
    ticket: Ticket,
}

impl Arrival<'_> {
    /// Its place in the arrival order, to join the batch with.
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// It writes nothing here (passed on, or a stream): stop waiting for it.
    pub fn leave(&self) {
        self.host.leave(self.ticket);
    }
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        self.host.leave(self.ticket);
    }
}
