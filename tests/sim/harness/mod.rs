//! The simulated world: nodes (an [`Engine`] each over its own disk, with
//! a skewed wall clock), the network between them, the faults, the admin
//! and the clients; and the verbs scenarios are written with.

mod admin;
mod client;
mod converge;
mod disk;
mod net;
mod nodes;
mod run;
mod show;
mod traffic;
mod workload;

pub use client::Ctx;
pub use disk::Disk;
pub use net::{Cut, Faults, Packet};
pub use show::describe;
pub use traffic::{Start, Traffic, TrafficFigures};
pub use workload::{
    chaos_run, chaos_run_with, last_chaos_traffic, register_runs, seeds, Convergence, RunOptions,
    SetSummary, Workload,
};

use crate::oracle::{Counters, RegLog, SetLog};
use admin::Admin;
use edge_crdt::crdt::CausalContext;
use edge_crdt::engine::{Config, Engine, Membership, ObjectId, Placement, Policy, Status};
use edge_crdt::{NodeId, Rng};
use net::Network;
use nodes::Slot;
use std::collections::BTreeMap;

/// Wall-clock time at virtual time 0, in Unix milliseconds.
pub const WALL_START: u64 = 1_700_000_000_000;
/// Copies of each register, and ring points per node.
pub const REPLICAS: usize = 3;
pub const VNODES: u32 = 64;
/// How many registers clients write (ten times as many in a steady run,
/// so that a deleted one is often left alone long enough to collect).
pub const KV_KEYS: u64 = 20;

fn object(prefix: &str, name: &str) -> ObjectId {
    ObjectId::new(prefix, name).expect("a valid name")
}

/// Counters written with steps of either sign.
pub fn home() -> ObjectId {
    object("counter", "home")
}

pub fn blog() -> ObjectId {
    object("counter", "blog")
}

/// The counter only ever incremented: it may never go down anywhere.
pub fn visits() -> ObjectId {
    object("counter", "visits")
}

/// Clients create the first set now and then, with either bias; the
/// second is never created, so it stays add-wins.
pub fn set_keys() -> [ObjectId; 2] {
    [object("set", "fruits"), object("set", "tags")]
}

pub fn set_key(name: &str) -> ObjectId {
    object("set", name)
}

pub fn kv_key(i: u64) -> ObjectId {
    object("kv", &format!("k{i}"))
}

/// The placement the checks use.
pub fn placement() -> Placement {
    Placement::new(REPLICAS, VNODES)
}

/// The replicas of register `key` in `members` (a placement caches the
/// ring of one membership: keep one per membership).
pub fn ring_replicas(placement: &Placement, key: &ObjectId, members: &Membership) -> Vec<NodeId> {
    placement.replicas(key, Policy::Ring, members)
}

/// The first register whose replicas among `n` initial nodes satisfy `pick`.
pub fn kv_key_where(n: u32, pick: impl Fn(&[NodeId]) -> bool) -> ObjectId {
    let (members, placement) = (Membership::initial(n), placement());
    (0..)
        .map(kv_key)
        .find(|k| pick(&ring_replicas(&placement, k, &members)))
        .expect("some key")
}

/// The simulated node settings: fast timers, and a tombstone grace longer
/// than any message is in flight (frames older than half of it are refused).
pub fn config(n: u32) -> Config {
    Config {
        initial_nodes: n,
        gossip_interval_ms: 50,
        anti_entropy_interval_ms: 400,
        heartbeat_interval_ms: 15_000,
        tombstone_grace_ms: 3_000,
        ..Config::default()
    }
}

/// Counts of what happened, for reports and for the scenarios' checks.
#[derive(Default, Debug)]
pub struct Stats {
    pub acked: u64,
    pub refused: u64,
    pub delivered: u64,
    pub lost: u64,
    pub cut: u64,
    pub failed: u64,
    /// Frames refused as older than the limit (reported to their senders).
    pub stale: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub set_writes: u64,
    /// Set writes stamped no later than the state they were made from, at
    /// a node that had restarted.
    pub stale_after_restart: u64,
    pub kv_writes: u64,
    pub kv_deletes: u64,
    /// Tombstones collected (counted at the node that collects them).
    pub collected: u64,
    pub kv_blind: u64,
    pub kv_read: u64,
    pub kv_remembered: u64,
    /// Register requests forwarded by a node that takes no writes.
    pub kv_forwarded: u64,
    /// Register requests to a crashed node, or refused by every node tried.
    pub kv_refused: u64,
    /// Register writes refused for too many siblings.
    pub kv_rejected: u64,
    /// Acknowledged register writes at a node whose view named it no replica.
    pub kv_off_replica: u64,
    pub transfers: u64,
    pub transferred: u64,
    pub handoffs: u64,
    pub row_deletes: u64,
}

/// What register clients remember, and how writes are shared out.
#[derive(Debug)]
pub struct Clients {
    /// The context a register client last read, per key.
    pub ctx: BTreeMap<ObjectId, CausalContext>,
    /// Payloads are `v<n>`, numbered in order.
    pub kv_seq: u64,
    /// Per mille of client writes that go to sets, of those not to registers.
    pub set_share: u64,
    /// Per mille of client writes that go to registers.
    pub kv_share: u64,
    /// How many registers clients write.
    pub kv_keys: u64,
}

pub struct Sim {
    pub seed: u64,
    pub rng: Rng,
    /// Virtual time, ms.
    pub now: u64,
    pub config: Config,
    pub slots: BTreeMap<NodeId, Slot>,
    pub net: Network,
    pub faults: Faults,
    pub admin: Admin,
    pub counters: Counters,
    pub sets: BTreeMap<ObjectId, SetLog>,
    pub regs: BTreeMap<ObjectId, RegLog>,
    pub clients: Clients,
    /// The context of the register tombstone each node stores: what a
    /// collection forgets.
    tombstones: BTreeMap<(NodeId, ObjectId), CausalContext>,
    /// The placement the checks use (their own, so nodes keep their caches).
    pub placement: Placement,
    /// `SIM_TRACE=<object>`: print every event that touches it.
    pub trace: Option<String>,
    /// `SIM_FRAMES_TRACE=<n>`: print each request an invocation sends past its n-th.
    pub frames_trace: Option<u32>,
    pub stats: Stats,
    /// Every invocation of every node, and the frames sent.
    pub traffic: Traffic,
    /// Cheaper checks for large clusters (scale runs): the increment-only
    /// counter is checked after a perform that stored or deleted one of
    /// its rows and after every 16th perform, not after every perform; and
    /// convergence is tried on cheap conditions (memberships, rows alike,
    /// registers placed) before the oracles are read at every node. What
    /// the end of a run checks is the same.
    pub fast_checks: bool,
    /// Performs since the start, for sampling the checks.
    performs: u64,
}

impl Sim {
    pub fn new(seed: u64, config: Config, faults: Faults) -> Self {
        let mut sim = Sim {
            seed,
            rng: Rng::new(seed),
            now: 0,
            slots: BTreeMap::new(),
            net: Network::default(),
            faults,
            admin: Admin::new(300),
            counters: Counters::new(visits()),
            sets: BTreeMap::new(),
            regs: BTreeMap::new(),
            clients: Clients {
                ctx: BTreeMap::new(),
                kv_seq: 0,
                set_share: 300,
                kv_share: 0,
                kv_keys: KV_KEYS,
            },
            tombstones: BTreeMap::new(),
            placement: placement(),
            trace: std::env::var("SIM_TRACE").ok(),
            frames_trace: std::env::var("SIM_FRAMES_TRACE")
                .ok()
                .and_then(|v| v.parse().ok()),
            stats: Stats::default(),
            traffic: Traffic::default(),
            fast_checks: false,
            performs: 0,
            config,
        };
        for i in 0..sim.config.initial_nodes {
            sim.spawn(NodeId(i));
        }
        sim
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.slots.keys().copied().collect()
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.engine(id).is_some()
    }

    pub fn engine(&self, id: NodeId) -> Option<&Engine<Disk>> {
        self.slots.get(&id)?.engine()
    }

    pub fn engine_mut(&mut self, id: NodeId) -> Option<&mut Engine<Disk>> {
        self.slots.get_mut(&id)?.engine_mut()
    }

    /// Node `id`'s disk, up or down.
    pub fn disk(&self, id: NodeId) -> &Disk {
        self.slots[&id].disk()
    }

    /// Node `id`'s wall clock now: its time for every input.
    pub fn wall(&self, id: NodeId) -> u64 {
        let skew = self.slots.get(&id).map_or(0, |s| s.skew);
        (WALL_START + self.now).saturating_add_signed(skew)
    }

    /// Up nodes that consider themselves active members.
    pub fn active_up(&self) -> Vec<NodeId> {
        let active = |e: &Engine<Disk>| e.node.is_member() && e.node.status() == Status::Active;
        self.ids()
            .into_iter()
            .filter(|id| self.engine(*id).is_some_and(active))
            .collect()
    }

    /// The status of node `id` by its own account (a crashed one by its disk).
    pub fn own_status(&self, id: NodeId) -> Status {
        match self.engine(id) {
            Some(e) => e.node.status(),
            None => self
                .disk(id)
                .tables
                .members()
                .and_then(|m| m.status(id))
                .unwrap_or(Status::Active),
        }
    }

    /// Sets every wall clock to true time.
    pub fn sync_clocks(&mut self) {
        for slot in self.slots.values_mut() {
            slot.skew = 0;
        }
    }

    /// Nodes that are not retired by their own account.
    pub fn not_retired(&self) -> Vec<NodeId> {
        self.ids()
            .into_iter()
            .filter(|id| self.own_status(*id).is_live())
            .collect()
    }

    /// The replicas of `key` in node 0's view.
    pub fn replicas_of(&self, key: &ObjectId) -> Vec<NodeId> {
        self.engine(NodeId(0))
            .expect("node 0 is up")
            .node
            .replicas(key)
    }

    /// Every stored row of `key`, at any node, described.
    pub fn rows(&self, key: &ObjectId) -> Vec<(NodeId, String)> {
        let held = |id: &NodeId| {
            self.disk(*id)
                .tables
                .row(key, "")
                .map(|s| (*id, describe(key, s)))
        };
        self.slots.keys().filter_map(held).collect()
    }

    /// Stops the run with `why`, the seed to replay it, and the world.
    pub fn fail(&self, why: impl std::fmt::Display) -> ! {
        let sets: Vec<String> = self
            .sets
            .iter()
            .map(|(k, log)| format!("{k}={:?} ({:?})", log.members(), log.bias()))
            .collect();
        panic!(
            "seed {} (replay with SIM_SEED={}) at {} ms: {why}\n  expected {:?} {}{}\n  {:?}",
            self.seed,
            self.seed,
            self.now,
            self.counters.expected,
            sets.join(" "),
            self.report(),
            self.stats
        );
    }
}
