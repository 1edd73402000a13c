//! The clients: counter steps, set writes, and register reads, writes and
//! deletes with a context read now or earlier. Each runs through the
//! node's kind as the host runs it, is logged in the oracle when the node
//! acknowledges it, and is then settled.

use super::nodes::decode;
use super::Sim;
use crate::oracle::{KvWrite, SetOp};
use edge_crdt::crdt::{CausalContext, Crdt, Element, LwwSet, MvRegister, Payload, PnCounter};
use edge_crdt::engine::{Effect, ObjectId};
use edge_crdt::kinds::contacts::{self, Contacts};
use edge_crdt::kinds::counter::{self, Counter};
use edge_crdt::kinds::register::{self, Register};
use edge_crdt::kinds::set::{self, Set};
use edge_crdt::kinds::stream::{ops as stream, Stream};
use edge_crdt::kinds::{Call, Kind};
use edge_crdt::{ApiError, ErrorCode, NodeId};
use std::collections::BTreeSet;

/// Where a register client's context comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// None: a blind write.
    Blind,
    /// Read from the node the request goes to, just before.
    Read,
    /// The one this client read from some node earlier.
    Remembered,
    /// This one.
    Given(CausalContext),
}

/// How one register request at one node went.
enum Attempt {
    Acked,
    Down,
    Forward(Option<NodeId>),
    Rejected,
}

impl Sim {
    /// Runs `op` on `object` at node `id`, at its wall clock; `None` when
    /// the node is down. The caller logs the outcome, then [`Sim::finish`]es.
    fn execute<K: Kind>(
        &mut self,
        id: NodeId,
        object: &ObjectId,
        op: K::Op,
    ) -> Option<Result<K::Outcome, ApiError>> {
        let now = self.wall(id);
        let engine = self.engine_mut(id)?;
        let mut call = Call {
            engine,
            object: Some(object.clone()),
            now,
        };
        Some(K::execute(op, &mut call))
    }

    /// Settles node `id` after a client operation: a refused write may
    /// store a clock floor, nothing else.
    fn finish(&mut self, id: NodeId, refused: bool) {
        let Some(engine) = self.engine_mut(id) else {
            return;
        };
        let out = engine
            .settle()
            .unwrap_or_else(|e| self.fail(format!("{id}: {e}")));
        if refused {
            if let Some(e) = out
                .stored
                .iter()
                .find(|e| !matches!(e, Effect::StoreClock(_)))
            {
                self.fail(format!("{id}: a refused write stored {e:?}"));
            }
        }
        self.perform(id, out);
    }

    /// Reads `object` at node `id` through kind `K`, as a client would.
    fn read<K: Kind>(&mut self, id: NodeId, object: &ObjectId, op: K::Op) -> Option<K::Outcome> {
        let outcome = self.execute::<K>(id, object, op)?;
        let outcome =
            outcome.unwrap_or_else(|e| self.fail(format!("{id}: reading {object}: {e:?}")));
        self.finish(id, false);
        Some(outcome)
    }

    /// An address-book operation at node `id`, as the host runs it;
    /// `None` when the node is down.
    pub fn contacts(
        &mut self,
        id: NodeId,
        object: &ObjectId,
        op: contacts::Op,
    ) -> Option<Result<contacts::Outcome, ApiError>> {
        let result = self.execute::<Contacts>(id, object, op)?;
        self.finish(id, result.is_err());
        Some(result)
    }

    /// An event-stream operation at node `id`, as the host runs it;
    /// `None` when the node is down.
    pub fn stream(
        &mut self,
        id: NodeId,
        object: &ObjectId,
        op: stream::Op,
    ) -> Option<Result<stream::Outcome, ApiError>> {
        let result = self.execute::<Stream>(id, object, op)?;
        self.finish(id, result.is_err());
        Some(result)
    }

    pub fn read_counter(&mut self, id: NodeId, object: &ObjectId) -> Option<PnCounter> {
        self.read::<Counter>(id, object, counter::Op::Read)
            .map(|o| o.state)
    }

    pub fn read_set(&mut self, id: NodeId, object: &ObjectId) -> Option<LwwSet> {
        self.read::<Set>(id, object, set::Op::Read).map(|o| o.state)
    }

    /// A client's read of a set's members at node `id`.
    pub fn members_at(&mut self, id: NodeId, object: &ObjectId) -> BTreeSet<Element> {
        self.read_set(id, object)
            .map(|s| s.members().cloned().collect())
            .unwrap_or_default()
    }

    pub fn read_register(&mut self, id: NodeId, object: &ObjectId) -> Option<MvRegister> {
        match self.read::<Register>(id, object, register::Op::Read)? {
            register::Outcome::Register { state, .. } => Some(state),
            register::Outcome::Page(_) => self.fail("a read answered with a listing page"),
        }
    }

    /// The context a client reads at `id`.
    pub fn context_at(&mut self, id: NodeId, object: &ObjectId) -> CausalContext {
        self.read_register(id, object)
            .map(|r| r.context().clone())
            .unwrap_or_default()
    }

    /// A client adds `by` to a counter at `id`; returns whether it was acknowledged.
    pub fn increment(&mut self, id: NodeId, object: &ObjectId, by: i64) -> bool {
        let Some(result) = self.execute::<Counter>(id, object, counter::Op::Increment { by })
        else {
            self.stats.refused += 1;
            return false;
        };
        if result.is_ok() {
            self.counters.acked(object, by);
            self.stats.acked += 1;
        } else {
            self.stats.refused += 1;
        }
        self.finish(id, result.is_err());
        result.is_ok()
    }

    /// A client's set write at `id`; returns the stamp the node gave it
    /// when acknowledged. A restarted node may stamp no later than the
    /// state it wrote from (counted); any other node must stamp later.
    pub fn set_write(&mut self, id: NodeId, object: &ObjectId, op: SetOp) -> Option<u64> {
        let restarted = self.slots.get(&id).is_some_and(|s| s.restarted);
        let Some(before) = self.read_set(id, object) else {
            self.stats.refused += 1;
            return None;
        };
        let kind_op = match &op {
            SetOp::Insert(es) => set::Op::Insert(es.clone()),
            SetOp::Remove(es) => set::Op::Delete(es.clone()),
            SetOp::Create(bias) => set::Op::Create { bias: *bias },
        };
        let outcome = match self.execute::<Set>(id, object, kind_op).expect("up") {
            Ok(outcome) => outcome,
            Err(e) if matches!(e.error, ErrorCode::NotActive | ErrorCode::AlreadyCreated) => {
                self.stats.refused += 1;
                self.finish(id, true);
                return None;
            }
            Err(e) => self.fail(format!("{id}: {op:?} on {object}: {e:?}")),
        };
        let time = outcome
            .stamp
            .unwrap_or_else(|| self.fail(format!("{id}: {op:?} was not stamped")));
        if before.latest_stamp().is_some_and(|l| time <= l) {
            if !restarted {
                let latest = before.latest_stamp();
                self.fail(format!(
                    "{id}: {op:?} on {object} stamped {time}, not after the state's {latest:?}"
                ));
            }
            self.stats.stale_after_restart += 1;
        }
        self.sets.entry(object.clone()).or_default().log(op, time);
        self.stats.acked += 1;
        self.stats.set_writes += 1;
        self.finish(id, false);
        Some(time)
    }

    /// A register client's request at node `id`: a write of a fresh
    /// payload (or a delete) made with the context `how` names. A node
    /// that takes no writes names one that does, and the request goes
    /// there, once. Returns whether it was acknowledged.
    pub fn kv_request(&mut self, mut id: NodeId, key: &ObjectId, how: Ctx, delete: bool) -> bool {
        for hop in 0..2 {
            match self.kv_attempt(id, key, &how, delete) {
                Attempt::Acked => return true,
                Attempt::Forward(Some(to)) if to != id && hop == 0 => {
                    self.stats.kv_forwarded += 1;
                    id = to;
                }
                Attempt::Rejected => {
                    self.stats.kv_rejected += 1;
                    return false;
                }
                Attempt::Down | Attempt::Forward(_) => break,
            }
        }
        self.stats.kv_refused += 1;
        false
    }

    fn kv_attempt(&mut self, id: NodeId, key: &ObjectId, how: &Ctx, delete: bool) -> Attempt {
        let Some(held) = self.read_register(id, key) else {
            return Attempt::Down;
        };
        let ctx = match how {
            Ctx::Blind => CausalContext::default(),
            Ctx::Read => held.context().clone(),
            Ctx::Remembered => self.clients.ctx.get(key).cloned().unwrap_or_default(),
            Ctx::Given(c) => c.clone(),
        };
        if *how == Ctx::Read {
            self.clients.ctx.insert(key.clone(), ctx.clone());
        }
        let payload = Payload::Text(format!("v{}", self.clients.kv_seq + 1));
        let replica = self
            .engine(id)
            .expect("up")
            .node
            .replicas(key)
            .contains(&id);
        let op = if delete {
            register::Op::Delete {
                context: Some(ctx.clone()),
            }
        } else {
            register::Op::Put {
                payload: payload.clone(),
                context: ctx.clone(),
            }
        };
        let state = match self.execute::<Register>(id, key, op).expect("up") {
            Ok(register::Outcome::Register { state, .. }) => state,
            Ok(register::Outcome::Page(_)) => self.fail("a write answered with a listing page"),
            Err(e) if e.error == ErrorCode::NotActive => {
                self.finish(id, true);
                return Attempt::Forward(self.engine(id).and_then(|e| e.node.forward_target()));
            }
            Err(e) if e.error == ErrorCode::TooManySiblings => {
                self.finish(id, true);
                return Attempt::Rejected;
            }
            Err(e) => self.fail(format!("{id}: a request on {key}: {e:?}")),
        };
        self.trace_ack(id, key, &ctx, delete, replica, &state);
        if delete {
            self.regs.entry(key.clone()).or_default().log_delete(&ctx);
            self.stats.kv_deletes += u64::from(!ctx.is_empty());
            self.stats.acked += 1;
        } else {
            self.clients.kv_seq += 1;
            self.log_kv_write(id, key, &ctx, &state, payload, replica);
        }
        self.finish(id, false);
        Attempt::Acked
    }

    fn trace_ack(
        &self,
        id: NodeId,
        key: &ObjectId,
        ctx: &CausalContext,
        delete: bool,
        replica: bool,
        state: &MvRegister,
    ) {
        if self.trace.as_deref() == Some(key.as_str()) {
            let what = if delete { "delete" } else { "write" };
            let replica = if replica { "a" } else { "not a" };
            let held = super::describe(key, &postcard::to_allocvec(state).expect("encodes"));
            eprintln!(
                "{} ms: {id} ({replica} replica) acknowledges a {what} with {ctx:?}: {held}",
                self.now
            );
        }
    }

    /// Logs an acknowledged register write: its dot is the sibling of
    /// `payload` (payloads are unique) in the state the write returned,
    /// and its delta's context is the client's plus that dot.
    fn log_kv_write(
        &mut self,
        id: NodeId,
        key: &ObjectId,
        ctx: &CausalContext,
        state: &MvRegister,
        payload: Payload,
        replica: bool,
    ) {
        let Some(dot) = state
            .siblings()
            .find(|(_, v)| v.payload == payload)
            .map(|(d, _)| *d)
        else {
            let held = super::describe(key, &postcard::to_allocvec(state).expect("encodes"));
            self.fail(format!("{id}: the write of {payload:?} to {key} is not live in the state it returned: {held}"));
        };
        if dot.node != id {
            self.fail(format!(
                "{id}: the write of {payload:?} to {key} took the dot {dot:?} of another node"
            ));
        }
        let mut delta_ctx = ctx.clone();
        delta_ctx.insert(dot);
        let write = KvWrite {
            dot,
            at: id,
            replica,
            when: self.now,
        };
        let logged = self
            .regs
            .entry(key.clone())
            .or_default()
            .log_write(write, payload, ctx, &delta_ctx);
        if let Err(why) = logged {
            let replica = if replica { "a" } else { "not a" };
            self.fail(format!("{id} ({replica} replica): {key}: {why}"));
        }
        self.stats.acked += 1;
        self.stats.kv_writes += 1;
        self.stats.kv_off_replica += u64::from(!replica);
    }

    /// The value of counter `object` node `id` holds, in memory or on disk.
    pub fn count(&self, id: NodeId, object: &ObjectId) -> i64 {
        self.peek(id, object)
            .map_or(0, |s| decode::<PnCounter>(s).value())
    }
}
