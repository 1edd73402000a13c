//! The nodes: each an engine over its disk while up, only its disk while
//! crashed. Whatever an engine hands back after an input goes through
//! [`Sim::perform`]: its storage effects are checked, its messages sent,
//! and the node checked against the oracles.

use super::show::{brief, describe, mentions};
use super::traffic::Start;
use super::{Disk, Sim};
use edge_crdt::crdt::{Crdt, LwwSet, MvRegister};
use edge_crdt::engine::{fanout, Effect, Engine, Message, ObjectId, Outputs, Status};
use edge_crdt::kinds::CATALOG;
use edge_crdt::NodeId;

use crate::oracle::{check_held_register, check_held_set};

/// A node's engine, or after a crash only its disk.
pub enum Host {
    Up(Box<Engine<Disk>>),
    Down(Box<Disk>),
}

pub struct Slot {
    host: Host,
    /// When a crashed node comes back.
    pub restart_at: u64,
    /// How far this node's wall clock is ahead of true time, in ms.
    pub skew: i64,
    /// Whether it has restarted: it then holds in memory only what it
    /// loaded since.
    pub restarted: bool,
    /// The disk's load count when [`Sim::check_loaded`] last ran.
    loads_checked: u64,
    /// How many tombstones the node had collected since it started, as
    /// [`Sim::collected_since`] last saw.
    reaped: u64,
}

impl Slot {
    pub fn engine(&self) -> Option<&Engine<Disk>> {
        match &self.host {
            Host::Up(e) => Some(e),
            Host::Down(_) => None,
        }
    }

    pub fn engine_mut(&mut self) -> Option<&mut Engine<Disk>> {
        match &mut self.host {
            Host::Up(e) => Some(e),
            Host::Down(_) => None,
        }
    }

    pub fn disk(&self) -> &Disk {
        match &self.host {
            Host::Up(e) => &e.store,
            Host::Down(d) => d,
        }
    }
}

/// A row's state decoded.
pub fn decode<T: Crdt>(state: &[u8]) -> T {
    postcard::from_bytes(state).expect("a row the engine checked")
}

impl Sim {
    /// Half the clocks agree to the millisecond; the others are off by up
    /// to 20 ms either way.
    fn random_skew(&mut self) -> i64 {
        if self.rng.chance(500) {
            0
        } else {
            self.rng.range(0, 40) as i64 - 20
        }
    }

    /// Starts a new node `id` with an empty disk.
    pub fn spawn(&mut self, id: NodeId) {
        let engine = Engine::start(id, self.config.clone(), CATALOG, Disk::default())
            .expect("an empty disk");
        let skew = self.random_skew();
        let host = Host::Up(Box::new(engine));
        self.slots.insert(
            id,
            Slot {
                host,
                restart_at: 0,
                skew,
                restarted: false,
                loads_checked: 0,
                reaped: 0,
            },
        );
        let p = self.net.node_cut.clone();
        self.set_partition_on(id, p);
    }

    /// Node `id` crashes: it keeps only its disk, for `down_for` ms.
    pub fn crash(&mut self, id: NodeId, down_for: u64) {
        self.check_disk(id);
        let restart_at = self.now.saturating_add(down_for);
        let slot = self.slots.get_mut(&id).expect("a node");
        slot.host = match std::mem::replace(&mut slot.host, Host::Down(Box::default())) {
            Host::Up(engine) => {
                slot.restart_at = restart_at;
                self.stats.crashes += 1;
                Host::Down(Box::new(engine.store))
            }
            down => down,
        };
    }

    /// Brings a crashed node back from its disk, maybe on another machine
    /// with another clock; the operator's partition setting reaches it.
    pub fn restart(&mut self, id: NodeId) {
        if self.is_up(id) {
            return;
        }
        if self.rng.chance(500) {
            let skew = self.random_skew();
            self.slots.get_mut(&id).expect("a node").skew = skew;
        }
        let slot = self.slots.get_mut(&id).expect("a node");
        let Host::Down(disk) = std::mem::replace(&mut slot.host, Host::Down(Box::default())) else {
            unreachable!("checked down");
        };
        slot.restarted = true;
        slot.reaped = 0;
        let mut engine =
            Engine::start(id, self.config.clone(), CATALOG, *disk).expect("a disk it wrote");
        let effects = engine.node.take_effects();
        slot.host = Host::Up(Box::new(engine));
        if !effects.is_empty() {
            self.fail(format!("{id}: restoring had effects: {effects:?}"));
        }
        let p = self.net.node_cut.clone();
        self.set_partition_on(id, p);
    }

    /// Runs node `id`'s own work and performs what it gives back.
    pub fn settle_node(&mut self, id: NodeId) {
        let Some(engine) = self.engine_mut(id) else {
            return;
        };
        match engine.settle() {
            Ok(out) => self.perform(id, out),
            Err(e) => self.fail(format!("{id}: {e}")),
        }
    }

    /// Ticks every node whose timers are due by its wall clock.
    pub fn tick_due(&mut self) {
        for id in self.ids() {
            let wall = self.wall(id);
            let Some(engine) = self.engine_mut(id) else {
                continue;
            };
            if engine.node.next_deadline().is_some_and(|d| wall >= d) {
                match engine.tick(wall) {
                    Ok(out) => {
                        let inv = self.open(id, Start::Tick, None);
                        self.perform_in(inv, id, out);
                    }
                    Err(e) => self.fail(format!("{id}: {e}")),
                }
            }
        }
    }

    /// Opens a new invocation of node `id` (`Sim::traffic`).
    pub fn open(&mut self, id: NodeId, start: Start, reply_to: Option<(NodeId, u64)>) -> u64 {
        let live = self.engine(id).is_some_and(|e| e.node.status().is_live());
        self.traffic.open(id, start, reply_to, live)
    }

    /// Performs what node `id` gave back, in a new invocation of its own
    /// (a client's operation, a settle).
    pub fn perform(&mut self, id: NodeId, out: Outputs) {
        let inv = self.open(id, Start::Other, None);
        self.perform_in(inv, id, out);
    }

    /// Whether a request from invocation `inv` to `to` would pass its
    /// budget ([`fanout::invocation_budget`]); answers are free.
    fn over_budget(&self, inv: u64, to: NodeId) -> bool {
        let i = self.traffic.get(inv);
        let answer = i.reply_to.is_some_and(|(requester, _)| requester == to);
        !answer && i.frames as usize >= fanout::invocation_budget(self.config.gossip_fanout)
    }

    /// Performs what node `id` gave back in its invocation `inv`: checks
    /// what it stored and the tombstones it collected, sends its messages,
    /// checks the node.
    pub fn perform_in(&mut self, inv: u64, id: NodeId, out: Outputs) {
        self.check_loaded(id);
        let collected = self.collected_since(id);
        let dropped = self.check_stored(id, &out.stored, collected > 0);
        if dropped != collected {
            self.fail(format!(
                "{id} collected {collected} tombstones, yet dropped {dropped}"
            ));
        }
        self.stats.collected += collected;
        for (to, message) in out.sends {
            match &message {
                Message::Transfer { .. } => self.stats.transfers += 1,
                Message::Transferred { .. } => self.stats.transferred += 1,
                Message::Handoff { .. } => self.stats.handoffs += 1,
                _ => {}
            }
            if let Some(key) = self.trace.as_deref().filter(|k| mentions(&message, k)) {
                eprintln!("{} ms: {id} sends {to} {}", self.now, brief(&message, key));
            }
            if self.over_budget(inv, to) {
                // As the host does: a send past the invocation's budget fails.
                if let Some(engine) = self.engine_mut(id) {
                    let out = engine.send_failed(to, message);
                    let out = out.unwrap_or_else(|e| self.fail(format!("{id}: {e}")));
                    self.perform_in(inv, id, out);
                }
                continue;
            }
            self.send_in(inv, id, to, message);
        }
        self.performs += 1;
        let up = self.counters.up();
        let touched = |e: &Effect| match e {
            Effect::StoreRow { object, .. } | Effect::DeleteRow { object, .. } => object == up,
            _ => false,
        };
        if !self.fast_checks || self.performs.is_multiple_of(16) || out.stored.iter().any(touched) {
            self.check_node(id);
        }
    }

    /// After a load, what a settled node still wants its storage lacks
    /// (the driver gives up when a load brings nothing new).
    fn check_loaded(&mut self, id: NodeId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let loads = slot.disk().loads;
        if std::mem::replace(&mut slot.loads_checked, loads) == loads {
            return;
        }
        let wanted = slot.engine().map(|e| e.node.wanted());
        if let Some(wanted) = wanted.filter(|w| !w.is_empty()) {
            self.fail(format!("{id} still wants {wanted:?} after loading it"));
        }
    }

    /// Every stored row is valid and, for sets and registers, made of
    /// acknowledged writes; every object is stored under its leaf. When
    /// `collecting`, the register tombstones dropped were collected: their
    /// contexts may be forgotten. Returns how many.
    fn check_stored(&mut self, id: NodeId, effects: &[Effect], collecting: bool) -> u64 {
        let mut dropped = 0;
        for effect in effects {
            self.trace_effect(id, effect);
            match effect {
                Effect::StoreRow {
                    object,
                    row,
                    state,
                    info,
                } => {
                    let kind = CATALOG.row_type(object.prefix()).expect("a known kind");
                    if kind.locals().contains(&row.as_str()) {
                        continue;
                    }
                    if let Err(e) = kind
                        .check(row, state)
                        .and_then(|_| self.check_held(object, state))
                    {
                        self.fail(format!("{id} stores {}: {e}", describe(object, state)));
                    }
                    if object.prefix() == "kv" {
                        let key = (id, object.clone());
                        match info.tombstone {
                            true => self
                                .tombstones
                                .insert(key, decode::<MvRegister>(state).context().clone()),
                            false => self.tombstones.remove(&key),
                        };
                    }
                }
                Effect::StoreObject { object, meta } => {
                    let leaf = self.engine(id).expect("up").node.leaf(object);
                    if meta.leaf != leaf {
                        self.fail(format!(
                            "{id} stores {object} under leaf {}, not {leaf}",
                            meta.leaf
                        ));
                    }
                }
                Effect::DeleteRow { object, .. } => {
                    self.stats.row_deletes += 1;
                    let tombstone = self.tombstones.remove(&(id, object.clone()));
                    if let Some(context) = tombstone.filter(|_| collecting) {
                        self.regs
                            .entry(object.clone())
                            .or_default()
                            .collected
                            .join(&context);
                        dropped += 1;
                    }
                }
                _ => {}
            }
        }
        dropped
    }

    fn check_held(
        &self,
        object: &ObjectId,
        state: &[u8],
    ) -> Result<(), edge_crdt::crdt::InvalidState> {
        let held = match object.prefix() {
            "set" => check_held_set(self.sets.get(object), &decode::<LwwSet>(state)),
            "kv" => check_held_register(self.regs.get(object), &decode::<MvRegister>(state)),
            _ => Ok(()),
        };
        held.map_err(edge_crdt::crdt::InvalidState)
    }

    fn trace_effect(&self, id: NodeId, effect: &Effect) {
        let Some(key) = self.trace.as_deref() else {
            return;
        };
        match effect {
            Effect::StoreRow {
                object, row, state, ..
            } if object.as_str() == key => {
                eprintln!(
                    "{} ms: {id} stores `{row}` {}",
                    self.now,
                    describe(object, state)
                );
            }
            Effect::DeleteRow { object, row } if object.as_str() == key => {
                eprintln!("{} ms: {id} deletes {object} `{row}`", self.now);
            }
            _ => {}
        }
    }

    /// How many tombstones node `id` collected since last asked.
    fn collected_since(&mut self, id: NodeId) -> u64 {
        let reaped = self.engine(id).map_or(0, |e| e.node.tombstone_counts().1);
        let slot = self.slots.get_mut(&id).expect("a node");
        reaped.saturating_sub(std::mem::replace(&mut slot.reaped, reaped))
    }

    /// The increment-only counter: never over the total at any node,
    /// never down at an active member (a draining node hands its rows off).
    fn check_node(&mut self, id: NodeId) {
        let Some(engine) = self.engine(id) else {
            return;
        };
        let active = engine.node.is_member() && engine.node.status() == Status::Active;
        let up = self.counters.up().clone();
        let value = self.count(id, &up);
        if let Err(why) = self.counters.check_up(id, value, active) {
            self.fail(why);
        }
    }

    /// What node `id` holds of `object`'s row: in memory, else on its disk.
    pub fn peek(&self, id: NodeId, object: &ObjectId) -> Option<&[u8]> {
        let slot = self.slots.get(&id)?;
        slot.engine()
            .and_then(|e| e.node.row(object, ""))
            .or_else(|| slot.disk().tables.row(object, ""))
    }
}
