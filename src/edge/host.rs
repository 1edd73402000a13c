//! A [`Node`] inside a Durable Object: the only place that turns its effects
//! into storage writes, peer calls, alarms and SSE pushes.
//!
//! Storage: `id` (this node's id), `members`, `partition` and `clock` (the
//! node's clock floor) as key-value pairs; every replicated value is one row of the SQL table `kv(key, leaf,
//! state, own)` (`state` a postcard envelope; `own` 1 when the state holds
//! every write this node made to the key), indexed by leaf, and each leaf
//! a row of `leaves(leaf, digest, tombstones)`: the sum of its keys'
//! digests and how many of them are tombstones (an empty leaf has no row).
//! A database made before `own` and `tombstones` existed gets them (0) on
//! load, and its leaves' tombstones are counted once; states the first
//! layout kept as key-value pairs `k:KEY` move into the rows on the first
//! start after an upgrade. The node starts from the membership and the
//! leaf rows; keys are read when an input needs them (up to 100 named keys
//! a query, or a leaf at a time), never all at once. A write is
//! acknowledged after it is stored; the Durable Object output gate also
//! holds every response until earlier writes are durable.
//!
//! Peer frames carry their send time: a frame (or a call's replies) older
//! than half the tombstone grace period is refused, so no message outlives
//! the tombstones it could undo.

use super::{
    call_node, header, internal_request, json, now_ms, Failure, Outcome, Settings, FORWARDED, FROM,
    MEMBERS, NEED_ACTIVE, NEW_NODE, SENT,
};
use crate::api::ApiError;
use crate::cluster::{
    ByKind, Config, Effect, Key, Leaf, LeafRow, Membership, Message, Needs, Node, Partition,
    RequestMeter, Row, Status, WriteError,
};
use crate::codec::{self, MAX_FRAME};
use crate::crdt::{Crdt, Kind, Stamp, Value};
use crate::NodeId;
use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::StreamExt;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use worker::js_sys::{Object, Reflect, Uint8Array};
use worker::{Env, Headers, Method, Request, Response, ScheduledTime, SqlStorageValue, State};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, leaf INTEGER NOT NULL, state BLOB NOT NULL, own INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS kv_leaf ON kv (leaf);
CREATE TABLE IF NOT EXISTS leaves (leaf INTEGER PRIMARY KEY, digest BLOB NOT NULL, tombstones INTEGER NOT NULL DEFAULT 0);";

/// Keys read by one query (SQLite storage binds at most 100 parameters).
const KEYS_PER_QUERY: usize = 100;

/// The key prefix of the first storage layout's states (key-value pairs).
const FIRST_LAYOUT_PREFIX: &str = "k:";

/// Columns added after the first schema: a database made before them
/// gets them on load.
const ADDED_COLUMNS: [(&str, &str); 2] = [("kv", "own"), ("leaves", "tombstones")];

/// What became of a client write.
pub(crate) enum Written<E> {
    /// Applied and stored: the new value.
    Stored(Value),
    /// This node takes no writes; the request belongs at that node.
    Elsewhere(Option<NodeId>),
    /// The data type refused the operation.
    Refused(E),
}

/// The data of an SSE event: the key's state as its own type's envelope,
/// in base64, which is what replicas of that type merge.
fn event_data(key: &str, value: &Value) -> String {
    match (value, Kind::of_key(key)) {
        (Value::Counter(c), _) => codec::state_to_base64(c),
        (Value::Set(s), _) => codec::state_to_base64(s),
        (Value::Register(r), _) => codec::state_to_base64(r),
        (Value::Empty, Some((Kind::Register, _))) => {
            codec::state_to_base64(&crate::crdt::MvRegister::default())
        }
        (Value::Empty, Some((Kind::Set, _))) => {
            codec::state_to_base64(&crate::crdt::LwwSet::default())
        }
        (Value::Empty, _) => codec::state_to_base64(&crate::crdt::PnCounter::default()),
    }
}

pub(crate) struct Host {
    state: State,
    env: Env,
    settings: Settings,
    node: RefCell<Option<Node<Value, ByKind>>>,
    streams: RefCell<BTreeMap<Key, Vec<UnboundedSender<Vec<u8>>>>>,
    alarm_at: Cell<Option<u64>>,
    /// Peer traffic since this object started: frames and their bytes.
    sent: Cell<(u64, u64)>,
    /// Client requests this node served since the object started.
    requests: RefCell<RequestMeter>,
}

/// The window of a node's client request rate: the Cron Trigger's period,
/// so each autoscale step sees the whole minute before it.
const REQUEST_WINDOW_MS: u64 = 60_000;

impl Host {
    pub fn new(state: State, env: Env) -> Self {
        let settings = Settings::from_env(&env);
        Host {
            state,
            env,
            settings,
            node: RefCell::new(None),
            streams: RefCell::new(BTreeMap::new()),
            alarm_at: Cell::new(None),
            sent: Cell::new((0, 0)),
            requests: RefCell::new(RequestMeter::new(REQUEST_WINDOW_MS)),
        }
    }

    /// Counts a client request this node serves.
    pub fn count_request(&self) {
        self.requests.borrow_mut().record(now_ms());
    }

    /// Loads the node from storage on first use. `id` comes from the
    /// router's header; an alarm after a restart reads it from storage.
    pub async fn ensure(&self, id: Option<NodeId>) -> worker::Result<()> {
        if self.node.borrow().is_some() {
            return Ok(());
        }
        let storage = self.state.storage();
        let stored: Option<u32> = storage.get("id").await?;
        let id = match (stored, id) {
            (Some(n), _) => NodeId(n),
            (None, Some(id)) => {
                storage.put("id", id.0).await?;
                id
            }
            (None, None) => return Err(worker::Error::RustError("node id unknown".into())),
        };
        let members = read_bytes(&storage, "members").await?;
        let partition = read_bytes(&storage, "partition").await?;
        let clock_floor = read_bytes(&storage, "clock").await?;
        let sql = storage.sql();
        sql.exec(SCHEMA, None)?;
        if migrate(&sql)? {
            worker::console_log!("{id}: added the own and tombstones columns");
            count_tombstones(&sql)?;
        }
        let mut leaves = Vec::new();
        let rows = sql.exec("SELECT leaf, digest, tombstones FROM leaves", None)?;
        for row in rows.raw() {
            if let [SqlStorageValue::Integer(leaf), SqlStorageValue::Blob(d), SqlStorageValue::Integer(t)] =
                row?.as_slice()
            {
                let digest = <[u8; 8]>::try_from(d.as_slice()).map(u64::from_le_bytes);
                match (u32::try_from(*leaf), digest, u32::try_from(*t)) {
                    (Ok(leaf), Ok(digest), Ok(tombstones)) => {
                        leaves.push((leaf, LeafRow { digest, tombstones }))
                    }
                    _ => worker::console_error!("{id}: skipping a bad leaf row {leaf}"),
                }
            }
        }
        let members = members.and_then(|b| codec::decode::<Membership>(&b, MAX_FRAME).ok());
        let partition = partition.and_then(|b| codec::decode::<Partition>(&b, MAX_FRAME).ok());
        let clock_floor = clock_floor.and_then(|b| codec::decode::<u64>(&b, MAX_FRAME).ok());
        let s = &self.settings;
        let config = Config {
            initial_nodes: s.nodes,
            gossip_interval_ms: s.gossip_interval_ms,
            anti_entropy_interval_ms: s.anti_entropy_interval_ms,
            heartbeat_interval_ms: s.heartbeat_interval_ms,
            max_drift_ms: s.max_drift_ms,
            tombstone_grace_ms: s.tombstone_grace_ms,
        };
        let mut node = Node::new(id, config, ByKind::new(s.replicas, 64));
        node.restore(members, partition, clock_floor, leaves);
        {
            let mut slot = self.node.borrow_mut();
            if slot.is_none() {
                *slot = Some(node);
            }
        }
        self.import_first_layout(id).await
    }

    /// Moves the counters and sets that the first storage layout kept as
    /// key-value pairs `k:KEY` into the SQL rows, then deletes the pairs:
    /// once, on the first start after an upgrade (a repeat merges again,
    /// which changes nothing).
    async fn import_first_layout(&self, id: NodeId) -> worker::Result<()> {
        let storage = self.state.storage();
        let pairs = storage
            .list_with_options(worker::ListOptions::new().prefix(FIRST_LAYOUT_PREFIX))
            .await?;
        let mut old_keys = Vec::new();
        let mut states = Vec::new();
        for entry in pairs.entries() {
            let pair = worker::js_sys::Array::from(&entry?);
            let stored = pair.get(0).as_string().unwrap_or_default();
            let bytes = Uint8Array::new(&pair.get(1)).to_vec();
            let key = stored[FIRST_LAYOUT_PREFIX.len()..].to_owned();
            match codec::decode_state::<Value>(&bytes) {
                Ok(state) if state.check_key(&key).is_ok() => states.push((key, state)),
                Ok(_) => worker::console_error!("{id}: {stored} holds another kind; dropped"),
                Err(e) => worker::console_error!("{id}: {stored} does not decode ({e}); dropped"),
            }
            old_keys.push(stored);
        }
        if old_keys.is_empty() {
            return Ok(());
        }
        for (key, _) in &states {
            let needs = self.with(|n| n.needs_key(key));
            self.supply(needs)?;
        }
        let moved = states.len();
        self.with(|n| n.import(states));
        self.settle(None).await?;
        storage.delete_multiple(old_keys).await?;
        worker::console_log!("{id}: moved {moved} keys from the first storage layout");
        Ok(())
    }

    /// Reads into the node what `needs` names: single keys, whole leaves.
    fn supply(&self, needs: Needs) -> worker::Result<()> {
        if needs.is_empty() {
            return Ok(());
        }
        let sql = self.state.storage().sql();
        let mut keys = Vec::new();
        for chunk in needs.keys.chunks(KEYS_PER_QUERY) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let rows = sql.exec(
                &format!("SELECT key, state, own FROM kv WHERE key IN ({marks})"),
                chunk
                    .iter()
                    .map(|k| k.clone().into())
                    .collect::<Vec<SqlStorageValue>>(),
            )?;
            let mut found = decode_rows(rows)?;
            for key in chunk {
                let at = found.iter().position(|(k, _)| k == key);
                keys.push((key.clone(), at.map(|i| found.swap_remove(i).1)));
            }
        }
        let mut leaves = Vec::new();
        for leaf in needs.leaves {
            let rows = sql.exec(
                "SELECT key, state, own FROM kv WHERE leaf = ?",
                vec![i64::from(leaf).into()],
            )?;
            leaves.push((leaf, decode_rows(rows)?));
        }
        self.with(|n| n.load(keys, leaves));
        Ok(())
    }

    /// Hands `from`'s message to the node, with what it needs loaded.
    fn receive(&self, from: NodeId, message: Message<Value>) -> worker::Result<()> {
        let needs = self.with(|n| n.needs_for(from, &message));
        self.supply(needs)?;
        self.with(|n| n.receive(from, message, now_ms()));
        Ok(())
    }

    /// The value of `key` at this node (`Empty` when it has none).
    pub fn read(&self, key: &str) -> worker::Result<Value> {
        let needs = self.with(|n| n.needs_key(key));
        self.supply(needs)?;
        Ok(self.with(|n| n.read(key).cloned().unwrap_or_default()))
    }

    /// `None` when this node is a replica of `key`; otherwise a replica of
    /// it in this node's view, to forward the request to.
    pub fn replica_target(&self, key: &str) -> Option<NodeId> {
        self.with(|n| {
            let replicas = n.replicas(key);
            (!replicas.contains(&n.id()))
                .then(|| replicas.first().copied())
                .flatten()
        })
    }

    /// Up to `limit` stored keys that start with `prefix` and sort after
    /// `after`, in key order, with their values: one indexed range read.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> worker::Result<Vec<(Key, Value)>> {
        let from = after.filter(|a| *a >= prefix).unwrap_or(prefix);
        let op = if after.is_some_and(|a| a >= prefix) {
            ">"
        } else {
            ">="
        };
        let rows = self.state.storage().sql().exec(
            &format!(
                "SELECT key, state, own FROM kv WHERE key {op} ? AND key < ? ORDER BY key LIMIT ?"
            ),
            vec![
                from.into(),
                format!("{prefix}\u{10FFFF}").into(),
                (limit as i64).into(),
            ],
        )?;
        Ok(decode_rows(rows)?
            .into_iter()
            .map(|(key, row)| (key, row.state))
            .collect())
    }

    /// A client write: `op` makes a delta from the current value and a
    /// stamp; the new value is stored before this returns.
    pub async fn write<E>(
        &self,
        key: &str,
        op: impl FnOnce(&Value, Stamp) -> Result<Value, E>,
    ) -> Result<Written<E>, Failure> {
        let needs = self.with(|n| n.needs_key(key));
        self.supply(needs)?;
        let written = self.with(|n| n.write(key, now_ms(), op));
        match written {
            Ok(value) => {
                self.settle(None).await?;
                Ok(Written::Stored(value))
            }
            Err(WriteError::NotAccepting { forward_to }) => Ok(Written::Elsewhere(forward_to)),
            Err(WriteError::Rejected(e)) => Ok(Written::Refused(e)),
        }
    }

    /// Passes a client request on to an active node, once.
    pub async fn forward(&self, req: Request, target: Option<NodeId>) -> Outcome {
        let forwarded = req.headers().get(FORWARDED)?.is_some();
        let Some(target) = target.filter(|_| !forwarded) else {
            let e = ApiError::new(
                503,
                "no_active_node",
                "no active node could take this request",
            );
            return Err(e.into());
        };
        let mut inner = req.clone_mut()?;
        inner.headers_mut()?.set(FORWARDED, "1")?;
        Ok(call_node(&self.env, target, inner).await?)
    }

    /// Runs `f` on the loaded node. Never hold this across an await.
    pub fn with<R>(&self, f: impl FnOnce(&mut Node<Value, ByKind>) -> R) -> R {
        f(self
            .node
            .borrow_mut()
            .as_mut()
            .expect("node loaded by ensure()"))
    }

    /// Performs effects until none are left, loading what the node's own
    /// work waits for; messages to `reply_to` are returned instead of sent,
    /// to travel back in the HTTP response.
    pub async fn settle(&self, reply_to: Option<NodeId>) -> worker::Result<Vec<Message<Value>>> {
        let mut replies = Vec::new();
        loop {
            let wanted = self.with(|n| n.wanted());
            if !wanted.is_empty() {
                self.supply(wanted)?;
                self.with(|n| n.resume());
            }
            let effects = self.with(|n| n.take_effects());
            if effects.is_empty() {
                break;
            }
            let sql = self.state.storage().sql();
            let mut rows = Vec::new();
            let mut sends = Vec::new();
            for effect in effects {
                match effect {
                    Effect::Store {
                        key,
                        leaf,
                        state,
                        own_writes,
                    } => {
                        sql.exec(
                            "INSERT OR REPLACE INTO kv (key, leaf, state, own) VALUES (?, ?, ?, ?)",
                            vec![
                                key.into(),
                                i64::from(leaf).into(),
                                codec::encode(&state).into(),
                                i64::from(own_writes).into(),
                            ],
                        )?;
                    }
                    Effect::Delete { key } => {
                        sql.exec("DELETE FROM kv WHERE key = ?", vec![key.into()])?;
                    }
                    Effect::StoreLeaf { leaf, row } => store_leaf(&sql, leaf, row)?,
                    Effect::StoreMembers(m) => rows.push(("members".into(), codec::encode(&m))),
                    Effect::StorePartition(p) => rows.push(("partition".into(), codec::encode(&p))),
                    Effect::StoreClock(floor) => rows.push(("clock".into(), codec::encode(&floor))),
                    Effect::Publish { key, state } => {
                        let event = format!("data: {}\n\n", event_data(&key, &state));
                        self.push(Some(&key), event.as_bytes());
                    }
                    Effect::Heartbeat => self.push(None, b": heartbeat\n\n"),
                    Effect::Send { to, message } if Some(to) == reply_to => replies.push(message),
                    Effect::Send { to, message } => sends.push((to, message)),
                }
            }
            self.store(rows).await?;
            for (to, message) in sends {
                self.deliver(to, message).await;
            }
        }
        self.arm_alarm().await?;
        Ok(replies)
    }

    /// Writes key-value pairs (the membership, the partition).
    async fn store(&self, rows: Vec<(String, Vec<u8>)>) -> worker::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let obj = Object::new();
        for (k, v) in rows {
            Reflect::set(&obj, &k.into(), &Uint8Array::from(&v[..]).into())?;
        }
        self.state.storage().put_multiple_raw(obj).await
    }

    /// Sends `message` to peer `to` and feeds its replies back into the node.
    async fn deliver(&self, to: NodeId, message: Message<Value>) {
        let from = self.with(|n| n.id());
        let frame = codec::encode(&message);
        let (frames, bytes) = self.sent.get();
        self.sent.set((frames + 1, bytes + frame.len() as u64));
        let started = now_ms();
        let result = async {
            let req = internal_request(
                "/peer",
                Method::Post,
                &[(FROM, from.to_string()), (SENT, started.to_string())],
                Some(frame),
            )?;
            let mut res = call_node(&self.env, to, req).await?;
            if res.status_code() != 200 {
                return Err(worker::Error::RustError(format!(
                    "status {}",
                    res.status_code()
                )));
            }
            let body = res.bytes().await?;
            codec::decode::<Vec<Message<Value>>>(&body, MAX_FRAME)
                .map_err(|e| worker::Error::RustError(e.to_string()))
        }
        .await;
        let took = now_ms().saturating_sub(started);
        match result {
            Ok(replies) if took > self.max_frame_age() && !replies.is_empty() => {
                worker::console_warn!(
                    "{from} -> {to}: dropped {} replies after a {took} ms round trip",
                    replies.len()
                );
            }
            Ok(replies) => {
                for reply in replies {
                    if let Err(e) = self.receive(to, reply) {
                        worker::console_warn!("{from}: a reply from {to} was dropped: {e}");
                    }
                }
            }
            Err(e) => {
                worker::console_warn!("{from} -> {to}: send failed: {e}");
                self.with(|n| n.send_failed(to, message));
            }
        }
    }

    /// The oldest a peer frame or a call's replies may be: half the
    /// tombstone grace period.
    fn max_frame_age(&self) -> u64 {
        self.settings.tombstone_grace_ms / 2
    }

    async fn arm_alarm(&self) -> worker::Result<()> {
        let Some(at) = self.with(|n| n.next_deadline()) else {
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
        self.with(|n| n.tick(now_ms()));
        self.settle(None).await?;
        Response::ok("ticked")
    }

    fn push(&self, key: Option<&str>, event: &[u8]) {
        let mut closed = Vec::new();
        let mut streams = self.streams.borrow_mut();
        for (k, senders) in streams.iter_mut() {
            if key.is_some_and(|key| key != k) {
                continue;
            }
            senders.retain(|tx| {
                let open = tx.unbounded_send(event.to_vec()).is_ok();
                if !open {
                    closed.push(k.clone());
                }
                open
            });
        }
        streams.retain(|_, senders| !senders.is_empty());
        drop(streams);
        self.with(|n| closed.iter().for_each(|k| n.unsubscribe(k)));
    }

    /// Opens an SSE stream of `key`'s states, starting with the current one.
    pub async fn subscribe(&self, key: &str) -> Outcome {
        let (tx, rx) = unbounded::<Vec<u8>>();
        let state = self.read(key)?;
        self.with(|n| n.subscribe(key));
        let hello = format!(
            "retry: {}\n\ndata: {}\n\n",
            self.settings.sse_retry_ms,
            event_data(key, &state)
        );
        let _ = tx.unbounded_send(hello.into_bytes());
        self.streams
            .borrow_mut()
            .entry(key.to_owned())
            .or_default()
            .push(tx);
        self.settle(None).await?;
        let headers = Headers::new();
        headers.set("content-type", "text/event-stream")?;
        headers.set("cache-control", "no-store")?;
        headers.set(MEMBERS, &self.active_list())?;
        Ok(Response::from_stream(rx.map(Ok::<Vec<u8>, worker::Error>))?.with_headers(headers))
    }

    /// The active node ids, for the router's table.
    pub fn active_list(&self) -> String {
        self.with(|n| {
            n.members()
                .active()
                .map(|id| id.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// Requests that only the router and peers can make: `/peer` and
    /// `/admin/*`. Admin replies carry the active list for the router.
    pub async fn internal(&self, req: Request) -> Outcome {
        let admin = req.path().starts_with("/admin/");
        let refused = admin
            && req.headers().get(NEED_ACTIVE)?.is_some()
            && !self.with(|n| n.accepts_writes());
        let outcome = if refused {
            let id = self.with(|n| n.id());
            Err(ApiError::new(409, "not_active", format!("{id} is not active")).into())
        } else {
            self.dispatch(req).await
        };
        let mut res = match outcome {
            Ok(res) => res,
            Err(Failure::Client(e)) => json(e.status, &e)?,
            Err(e) => return Err(e),
        };
        if admin {
            res.headers_mut().set(MEMBERS, &self.active_list())?;
        }
        Ok(res)
    }

    async fn dispatch(&self, mut req: Request) -> Outcome {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/peer") => {
                let from: NodeId = header(&req, FROM)?;
                let sent: u64 = header(&req, SENT)?;
                let age = now_ms().saturating_sub(sent);
                if age > self.max_frame_age() {
                    let max = self.max_frame_age();
                    let e = format!("a frame sent {age} ms ago is past the limit of {max} ms");
                    return Err(ApiError::new(409, "stale_frame", e).into());
                }
                let body = req.bytes().await?;
                let message = codec::decode::<Message<Value>>(&body, MAX_FRAME)
                    .map_err(|e| ApiError::new(400, "bad_frame", e.to_string()))?;
                validate(&message).map_err(|e| ApiError::new(400, "bad_frame", e))?;
                self.receive(from, message)?;
                let replies = codec::encode(&self.settle(Some(from)).await?);
                let (frames, bytes) = self.sent.get();
                self.sent.set((frames, bytes + replies.len() as u64));
                Ok(super::bytes(200, crate::api::POSTCARD, replies)?)
            }
            (Method::Get, "/admin/members") => Ok(json(200, &self.view())?),
            (Method::Post, "/admin/add") => {
                let id: NodeId = header(&req, NEW_NODE)?;
                self.with(|n| n.add_node(id, now_ms()))
                    .map_err(|e| ApiError::new(409, "cannot_add", format!("{e:?}")))?;
                self.settle(None).await?;
                Ok(json(200, &serde_json::json!({ "added": id.to_string() }))?)
            }
            (Method::Post, "/admin/retire") => self.retire().await,
            (Method::Put, "/admin/partition") => {
                let body = req.bytes().await?;
                let groups: Vec<BTreeSet<NodeId>> = codec::decode(&body, MAX_FRAME)
                    .map_err(|e| ApiError::new(400, "bad_partition", e.to_string()))?;
                self.with(|n| n.set_partition(Partition::new(groups)));
                self.settle(None).await?;
                Ok(json(200, &self.view())?)
            }
            _ => Err(crate::api::not_found(&req.path()).into()),
        }
    }

    async fn retire(&self) -> Outcome {
        let started = self.with(|n| n.begin_retire());
        let heir = match started {
            Ok(heir) => heir,
            Err(e) => {
                return Err(ApiError::new(409, "cannot_retire", format!("{e:?}")).into());
            }
        };
        self.settle(None).await?;
        let status = self.with(|n| n.status());
        if !matches!(status, Status::Retired { .. }) {
            return Err(ApiError::new(
                502,
                "handoff_incomplete",
                format!("the handoff to {heir} did not complete; retry to resume it"),
            )
            .into());
        }
        // Wake every stream so browsers reconnect to a live node.
        self.streams.borrow_mut().clear();
        Ok(json(
            200,
            &serde_json::json!({ "heir": heir.to_string(), "view": self.view() }),
        )?)
    }

    fn view(&self) -> serde_json::Value {
        self.with(|n| {
            let members: BTreeMap<String, serde_json::Value> = n
                .members()
                .all()
                .iter()
                .map(|(id, s)| {
                    let v = match s {
                        Status::Active => serde_json::json!("active"),
                        Status::Draining { heir } => serde_json::json!({ "draining": heir.to_string() }),
                        Status::Retired { heir } => serde_json::json!({ "retired": heir.to_string() }),
                    };
                    (id.to_string(), v)
                })
                .collect();
            let groups: Vec<Vec<String>> = n
                .partition()
                .groups()
                .iter()
                .map(|g| g.iter().map(NodeId::to_string).collect())
                .collect();
            serde_json::json!({
                "node": n.id().to_string(),
                "status": members.get(&n.id().to_string()).cloned().unwrap_or(serde_json::json!("active")),
                "members": members,
                "partition": groups,
                "keys_in_memory": n.keys().count(),
                "leaves": n.leaf_counts().0,
                "leaves_moving": n.leaf_counts().1,
                "refused_states": n.refused(),
                "sent": { "frames": self.sent.get().0, "bytes": self.sent.get().1 },
                "requests": {
                    "total": self.requests.borrow().total(),
                    "per_second": self.requests.borrow().per_second(now_ms()),
                    "window_ms": REQUEST_WINDOW_MS,
                },
                "tombstones": n.tombstone_counts().0,
                "tombstones_collected": n.tombstone_counts().1,
            })
        })
    }
}

/// Checks every state, key and the membership in a peer frame.
fn validate(message: &Message<Value>) -> Result<(), String> {
    let mut keys: Vec<&Key> = Vec::new();
    let (members, states): (Option<&Membership>, Vec<&(Key, Value)>) = match message {
        Message::Gossip {
            members, states, ..
        } => (members.as_ref(), states.iter().collect()),
        Message::Handoff { members, states } => (Some(members), states.iter().collect()),
        Message::Transfer { members, leaves } => (
            Some(members),
            leaves.iter().flat_map(|(_, states)| states).collect(),
        ),
        Message::Summary { members, .. } => (Some(members), Vec::new()),
        Message::Reap { keys: asked, .. } | Message::Forget { keys: asked } => {
            keys.extend(asked.iter().map(|(k, _)| k));
            (None, Vec::new())
        }
        Message::Reaped {
            members, refused, ..
        } => {
            keys.extend(refused);
            (Some(members), Vec::new())
        }
        Message::Digest { .. }
        | Message::HandoffDone
        | Message::Keys { .. }
        | Message::Transferred { .. } => (None, Vec::new()),
    };
    if let Some(m) = members {
        m.validate().map_err(|e| e.to_string())?;
    }
    for key in keys.into_iter().chain(states.iter().map(|(k, _)| k)) {
        let (_, name) = Kind::of_key(key).ok_or_else(|| format!("`{key}` names no known kind"))?;
        crate::api::check_name(name).map_err(|e| e.message)?;
    }
    for (key, state) in states {
        state.validate().map_err(|e| format!("{key}: {e}"))?;
        state.check_key(key).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Adds the [`ADDED_COLUMNS`] a database lacks; whether it lacked any.
fn migrate(sql: &worker::SqlStorage) -> worker::Result<bool> {
    let mut added = false;
    for (table, column) in ADDED_COLUMNS {
        let mut has = false;
        for row in sql
            .exec(&format!("PRAGMA table_info({table})"), None)?
            .raw()
        {
            // (cid, name, type, notnull, dflt_value, pk)
            has |= matches!(row?.get(1), Some(SqlStorageValue::String(name)) if name == column);
        }
        if !has {
            sql.exec(
                &format!("ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"),
                None,
            )?;
            added = true;
        }
    }
    Ok(added)
}

/// A `(key, state, own, …)` row; one that does not decode is logged and `None`.
fn decode_row(row: &[SqlStorageValue]) -> Option<(Key, Row<Value>)> {
    let [SqlStorageValue::String(key), SqlStorageValue::Blob(bytes), SqlStorageValue::Integer(own), ..] =
        row
    else {
        return None;
    };
    // This node wrote the row: concurrent writes merged at several
    // replicas may have taken a register past one write's limits.
    match codec::decode::<Value>(bytes, MAX_FRAME) {
        Ok(state) => Some((
            key.clone(),
            Row {
                state,
                own_writes: *own != 0,
            },
        )),
        Err(e) => {
            worker::console_error!("skipping stored {key}: {e}");
            None
        }
    }
}

/// Counts each leaf's tombstones into `leaves`, once, for a database
/// made before the count was kept: a row at a time.
fn count_tombstones(sql: &worker::SqlStorage) -> worker::Result<()> {
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    let rows = sql.exec("SELECT key, state, own, leaf FROM kv", None)?;
    for row in rows.raw() {
        let row = row?;
        if let (Some((_, r)), Some(SqlStorageValue::Integer(leaf))) = (decode_row(&row), row.get(3))
        {
            if r.state.is_tombstone() {
                *counts.entry(*leaf).or_default() += 1;
            }
        }
    }
    for (leaf, n) in counts {
        sql.exec(
            "UPDATE leaves SET tombstones = ? WHERE leaf = ?",
            vec![n.into(), leaf.into()],
        )?;
    }
    Ok(())
}

/// `(key, state, own)` rows; a row that does not decode is skipped.
fn decode_rows(rows: worker::SqlCursor) -> worker::Result<Vec<(Key, Row<Value>)>> {
    let mut out = Vec::new();
    for row in rows.raw() {
        out.extend(decode_row(&row?));
    }
    Ok(out)
}

fn store_leaf(sql: &worker::SqlStorage, leaf: Leaf, row: LeafRow) -> worker::Result<()> {
    if row == LeafRow::default() {
        sql.exec(
            "DELETE FROM leaves WHERE leaf = ?",
            vec![i64::from(leaf).into()],
        )?;
    } else {
        sql.exec(
            "INSERT OR REPLACE INTO leaves (leaf, digest, tombstones) VALUES (?, ?, ?)",
            vec![
                i64::from(leaf).into(),
                row.digest.to_le_bytes().to_vec().into(),
                i64::from(row.tombstones).into(),
            ],
        )?;
    }
    Ok(())
}

async fn read_bytes(storage: &worker::Storage, key: &str) -> worker::Result<Option<Vec<u8>>> {
    storage.get::<Vec<u8>>(key).await
}
