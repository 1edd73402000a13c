//! A seeded, deterministic network simulator for `Node<Value, ByKind>`,
//! hosting PN-counters (`counter:NAME`) and LWW sets (`set:NAME`) on every
//! node, and multi-value registers (`kv:NAME`) on three replicas of a hash
//! ring.
//!
//! Virtual time in milliseconds; messages in flight with random delays
//! (so they are reordered), random loss and duplication; partitions that
//! come and go, both in the network and set on the nodes; crash-restarts
//! that keep only what the node's storage effects wrote to its "disk" (a
//! [`MemoryStore`]), after which the node restores only its membership,
//! partition and leaf digests and loads states as its inputs need them,
//! the way the Durable Object host drives it; client writes; an admin who
//! retires nodes one at a time and adds nodes.
//! Each node reads its own wall clock, skewed by a few milliseconds (and
//! re-skewed when it restarts elsewhere), for its timestamps and timers;
//! many nodes share one skew, and clients sometimes insert and remove one
//! element at two nodes in the same millisecond, so equal timestamps occur.
//!
//! Register clients write through a random replica of the key, as some
//! live node's (possibly stale) view names it, blind or with the context
//! they read there (now, or earlier), and delete with the context they
//! read. Every acknowledged write is logged with its dot, every write and
//! delete with the context it was made with: the register oracle. As each
//! write is acknowledged, its dot must be new, and its delta may cover no
//! acknowledged write that neither its client nor an earlier acknowledged
//! context saw (else that write is lost); every register value a node
//! holds must be an acknowledged write.
//!
//! At the end every fault stops and every live node must hold exactly the
//! total of the acknowledged writes of every counter, exactly the
//! membership an oracle computes from the acknowledged set writes (latest
//! add against latest remove, ties to the bias of the earliest creation),
//! and the same states as every other live node. Every register is held,
//! identically, by exactly its replicas in the final membership (no leaf
//! is still moving), and every acknowledged register write is either a
//! live sibling or covered by the context of an acknowledged write or
//! delete; no live sibling is one an acknowledged context covered (a
//! resurrection) or one nobody wrote, and the context every replica holds
//! covers every acknowledged write and every acknowledged context (no
//! acknowledged write or delete is lost). A register every write of which
//! was deleted reads, at each of its replicas, as an empty register that
//! keeps its context (a tombstone: the core keeps them for good).
//!
//! Focused scenarios at the end of the file reproduce, each with calm
//! faults and a fixed seed, one way a register could go wrong.
//!
//! `SIM_SEED=<n> cargo test --test simulator` replays one seed;
//! `SIM_SEED=<a>..<b>` runs a range of seeds; `SIM_TRACE=<key>` prints
//! every write, message and storage effect that touches one key.
#![cfg(not(target_arch = "wasm32"))]

use edge_crdt::cluster::{
    ByKind, Config, Effect, Membership, MemoryStore, Message, Node, Partition, Placement,
    RetireError, Status, WriteError,
};
use edge_crdt::crdt::{
    Bias, CausalContext, Crdt, Dot, Element, Kind, LwwSet, Payload, PnCounter, Stamp,
    TooManySiblings, Value,
};
use edge_crdt::NodeId;
use std::collections::{BTreeMap, BTreeSet};

type Replica = Node<Value, ByKind>;

/// Counter keys written with steps of either sign.
const MIXED_KEYS: [&str; 2] = [HOME, BLOG];
const HOME: &str = "counter:home";
const BLOG: &str = "counter:blog";
/// A counter only ever incremented: its value may never go down anywhere.
const UP_KEY: &str = "counter:visits";
/// Set keys. Clients create the first now and then, with either bias; the
/// second is never created, so it stays add-wins.
const SET_KEYS: [&str; 2] = ["set:fruits", "set:tags"];
/// How many register keys clients write (in a steady run, ten times as
/// many, so that a deleted key is often left alone long enough to collect).
const KV_KEYS: u64 = 20;
/// Wall-clock time at virtual time 0, in Unix milliseconds.
const WALL_START: u64 = 1_700_000_000_000;
/// Copies of each register, and ring points per node.
const REPLICAS: usize = 3;
const VNODES: u32 = 64;

fn placement() -> ByKind {
    ByKind::new(REPLICAS, VNODES)
}

fn kv_key(i: u64) -> String {
    Kind::Register.key(&format!("k{i}"))
}

fn is_kv(key: &str) -> bool {
    matches!(Kind::of_key(key), Some((Kind::Register, _)))
}

/// The elements clients write: few, so writes collide.
fn elements() -> [Element; 6] {
    [
        Element::Str("apple".into()),
        Element::Str("pear".into()),
        Element::Str("fig".into()),
        Element::Num("3".into()),
        Element::Num("0.25".into()),
        Element::Bool(false),
    ]
}

/// The value of a counter; 0 when absent.
fn count(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_counter).map_or(0, PnCounter::value)
}

fn text(p: &Payload) -> String {
    match p {
        Payload::Text(t) => t.clone(),
        Payload::Bytes(b) => format!("{b:?}"),
    }
}

/// A key's value, for reports.
fn show(key: &str, v: Option<&Value>) -> String {
    match v {
        Some(Value::Set(s)) => {
            let members: Vec<String> = s.members().map(Element::to_string).collect();
            format!("{key}={{{}}}", members.join(","))
        }
        Some(Value::Register(r)) => {
            let values: Vec<String> = r
                .siblings()
                .map(|(d, v)| format!("{}@{}:{}", text(&v.payload), d.node.0, d.counter))
                .collect();
            format!("{key}=[{}]", values.join("|"))
        }
        v => format!("{key}={}", count(v)),
    }
}

/// A set write.
#[derive(Clone, Debug)]
enum SetOp {
    Insert(Vec<Element>),
    Remove(Vec<Element>),
    Create(Bias),
}

/// The acknowledged writes of one set key, with the timestamps the nodes
/// gave them: the oracle.
#[derive(Clone, Debug, Default)]
struct SetLog {
    /// The elements added (`true`) or removed at each timestamp.
    entries: BTreeMap<(u64, bool), BTreeSet<Element>>,
    creations: BTreeSet<(u64, Bias)>,
    /// The latest add and the latest remove of each element, kept as the
    /// entries are logged.
    latest: BTreeMap<Element, (Option<u64>, Option<u64>)>,
}

impl SetLog {
    fn log(&mut self, op: SetOp, time: u64) {
        let (es, add) = match op {
            SetOp::Insert(es) => (es, true),
            SetOp::Remove(es) => (es, false),
            SetOp::Create(bias) => {
                self.creations.insert((time, bias));
                return;
            }
        };
        for e in es {
            let slot = self.latest.entry(e.clone()).or_default();
            let side = if add { &mut slot.0 } else { &mut slot.1 };
            *side = Some(side.map_or(time, |t| t.max(time)));
            self.entries.entry((time, add)).or_default().insert(e);
        }
    }

    /// Whether `e` was added (`add`) or removed at `time` by an
    /// acknowledged write.
    fn has(&self, e: &Element, add: bool, time: u64) -> bool {
        self.entries
            .get(&(time, add))
            .is_some_and(|es| es.contains(e))
    }

    /// The earliest creation (AddWins first among equal stamps).
    fn created(&self) -> Option<(u64, Bias)> {
        self.creations.first().copied()
    }

    fn bias(&self) -> Bias {
        self.created().map_or(Bias::AddWins, |c| c.1)
    }

    /// The LWW rule over the log.
    fn members(&self) -> BTreeSet<Element> {
        let bias = self.bias();
        self.latest
            .iter()
            .filter(|(_, (add, remove))| match (add, remove) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(a), Some(r)) => a > r || (a == r && bias == Bias::AddWins),
            })
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// The entries a set that has merged every write keeps after pruning.
    fn kept(&self) -> (BTreeMap<Element, u64>, BTreeMap<Element, u64>) {
        let (mut adds, mut removes) = (BTreeMap::new(), BTreeMap::new());
        for (e, &(add, remove)) in &self.latest {
            if let Some(a) = add.filter(|a| remove.is_none_or(|r| *a >= r)) {
                adds.insert(e.clone(), a);
            }
            if let Some(r) = remove.filter(|r| add.is_none_or(|a| *r >= a)) {
                removes.insert(e.clone(), r);
            }
        }
        (adds, removes)
    }

    /// Elements whose latest add and latest remove have one timestamp.
    fn ties(&self) -> usize {
        self.latest
            .values()
            .filter(|(a, r)| a.is_some() && a == r)
            .count()
    }

    /// Pairs of an add and a remove of one element at one timestamp.
    fn equal_pairs(&self) -> usize {
        self.entries
            .iter()
            .filter(|((_, add), _)| *add)
            .map(|((t, _), es)| es.iter().filter(|e| self.has(e, false, *t)).count())
            .sum()
    }
}

/// One acknowledged register write.
#[derive(Clone, Debug)]
struct KvWrite {
    dot: Dot,
    /// The node that took it, and whether that node's view named it a
    /// replica of the key.
    at: NodeId,
    replica: bool,
    /// Virtual time of the acknowledgement.
    when: u64,
}

/// The acknowledged writes and deletes of one register key: the oracle.
#[derive(Clone, Debug, Default)]
struct RegLog {
    writes: Vec<KvWrite>,
    /// The payload of each acknowledged write, by its dot.
    payloads: BTreeMap<Dot, Payload>,
    /// Every dot some acknowledged write or delete was made with a context
    /// containing: the union of those contexts.
    superseded: CausalContext,
    /// Acknowledged deletes with a non-empty context.
    deletes: u64,
    /// The contexts of the tombstones of the key that were collected: the
    /// replicas may have forgotten these dots.
    collected: CausalContext,
}

/// Where a register client's context comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ctx {
    /// none: a blind write
    Blind,
    /// read from the node the request goes to, just before
    Read,
    /// the one this client read from some node earlier
    Remembered,
    /// this one
    Given(CausalContext),
}

/// What the final check found about the registers.
#[derive(Clone, Copy, Debug, Default)]
struct KvSummary {
    writes: u64,
    deletes: u64,
    /// Writes taken by a node its client's view did not name a replica.
    off_replica: u64,
    /// Acknowledged writes live at the end, and superseded by a context.
    live: u64,
    superseded: u64,
    /// Keys whose every write was deleted, and whose tombstones were
    /// collected: no node holds a row of them.
    deleted: u64,
    /// Tombstones collected, by the nodes that collect them; and of those,
    /// while clients still wrote.
    collected: u64,
    collected_while_writing: u64,
    /// Keys holding values at the end.
    kept: u64,
    transfers: u64,
    row_deletes: u64,
    handoffs: u64,
    added: u64,
    retired: u64,
    lazy_loads: u64,
}

impl KvSummary {
    fn add(&mut self, o: &KvSummary) {
        self.writes += o.writes;
        self.deletes += o.deletes;
        self.off_replica += o.off_replica;
        self.live += o.live;
        self.superseded += o.superseded;
        self.deleted += o.deleted;
        self.collected += o.collected;
        self.collected_while_writing += o.collected_while_writing;
        self.kept += o.kept;
        self.transfers += o.transfers;
        self.row_deletes += o.row_deletes;
        self.handoffs += o.handoffs;
        self.added += o.added;
        self.retired += o.retired;
        self.lazy_loads += o.lazy_loads;
    }
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len() as u64) as usize])
    }
}

/// A node's disk: the rows its storage effects wrote.
#[derive(Default)]
struct Disk {
    store: MemoryStore<Value>,
    /// The partition last stored (the store keeps it to itself).
    partition: Option<Partition>,
}

impl Disk {
    fn record(&mut self, effect: &Effect<Value>) {
        if let Effect::StorePartition(p) = effect {
            self.partition = Some(p.clone());
        }
        self.store.record(effect);
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.store
            .states()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    fn members(&self) -> Option<&Membership> {
        self.store.members()
    }
}

struct Slot {
    /// `None` while crashed.
    node: Option<Replica>,
    disk: Disk,
    /// When a crashed node comes back.
    restart_at: u64,
    /// The last value of [`UP_KEY`] this node held (across restarts).
    last_up_value: i64,
    /// How far this node's wall clock is ahead of true time, in ms.
    skew: i64,
    /// Whether the node has restarted: its clock then starts afresh, and it
    /// holds in memory only what it loaded since.
    restarted: bool,
}

struct Packet {
    from: NodeId,
    to: NodeId,
    message: Message<Value>,
}

/// Fault rates, per mille unless said otherwise.
#[derive(Clone, Debug)]
struct Faults {
    loss: u64,
    duplicate: u64,
    /// Delays are uniform in `1..=max_delay` ms ...
    max_delay: u64,
    /// ... plus, with this chance, up to 2 s more.
    long_delay: u64,
    /// Chance per step that a node crashes.
    crash: u64,
    /// Chance per step that a partition starts.
    partition: u64,
    /// Report messages to a crashed node with `send_failed` (else drop them).
    report_failures: bool,
    /// Drop every anti-entropy digest: only gossip flows.
    block_anti_entropy: bool,
}

impl Faults {
    fn chaos() -> Self {
        Faults {
            loss: 50,
            duplicate: 50,
            max_delay: 80,
            long_delay: 20,
            crash: 4,
            partition: 4,
            report_failures: true,
            block_anti_entropy: false,
        }
    }

    fn calm() -> Self {
        Faults {
            loss: 0,
            duplicate: 0,
            max_delay: 20,
            long_delay: 0,
            crash: 0,
            partition: 0,
            report_failures: true,
            block_anti_entropy: false,
        }
    }
}

#[derive(Default, Debug)]
struct Stats {
    acked: u64,
    refused: u64,
    delivered: u64,
    lost: u64,
    cut: u64,
    failed: u64,
    crashes: u64,
    partitions: u64,
    set_writes: u64,
    /// Set writes whose timestamp was not after every stamp of the state
    /// they were made from, at a node that had restarted.
    stale_after_restart: u64,
    kv_writes: u64,
    kv_deletes: u64,
    /// Tombstones collected (counted at the node that collects them).
    collected: u64,
    /// Register requests by where their context came from.
    kv_blind: u64,
    kv_read: u64,
    kv_remembered: u64,
    /// Register requests forwarded by a node that does not take writes.
    kv_forwarded: u64,
    /// Register requests to a crashed node, or refused by every node tried.
    kv_refused: u64,
    /// Register writes refused for too many siblings.
    kv_rejected: u64,
    /// Acknowledged register writes a node took while its client's view
    /// did not name it a replica.
    kv_off_replica: u64,
    /// Loads a node asked for (keys or leaves), after a restart.
    loads: u64,
    transfers: u64,
    transferred: u64,
    handoffs: u64,
    row_deletes: u64,
}

/// The admin: retires nodes one at a time and adds nodes.
#[derive(Default)]
struct Admin {
    /// When to start each retirement.
    retire_at: Vec<u64>,
    /// When to add each node.
    add_at: Vec<u64>,
    /// The node being retired and when to retry.
    current: Option<(NodeId, u64)>,
    /// How long to wait between retries of a retirement.
    retry_ms: u64,
    retired: Vec<(NodeId, NodeId)>,
    added: Vec<NodeId>,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    config: Config,
    slots: BTreeMap<NodeId, Slot>,
    /// In flight, by delivery time and then sending order.
    net: BTreeMap<(u64, u64), Packet>,
    seq: u64,
    /// Messages between groups are dropped by the network.
    net_partition: Partition,
    /// The partition set on the nodes themselves.
    node_partition: Partition,
    partition_ends: u64,
    faults: Faults,
    admin: Admin,
    expected: BTreeMap<String, i64>,
    /// The acknowledged writes of each set key.
    sets: BTreeMap<String, SetLog>,
    /// The acknowledged writes and deletes of each register key.
    regs: BTreeMap<String, RegLog>,
    /// The context a register client last read, per key.
    client_ctx: BTreeMap<String, CausalContext>,
    /// Payloads are `v<n>`, numbered in order.
    kv_seq: u64,
    /// Per mille of client writes that go to sets.
    set_share: u64,
    /// Per mille of client writes that go to registers.
    kv_share: u64,
    /// How many register keys clients write.
    kv_keys: u64,
    /// The placement the checks use (its own, so nodes keep their caches).
    placement: ByKind,
    /// `SIM_TRACE=<key>`: print every event that touches the key.
    trace: Option<String>,
    stats: Stats,
}

/// Whether `message` carries or names `key`, for tracing.
fn mentions(message: &Message<Value>, key: &str) -> bool {
    match message {
        Message::Gossip { states, want, .. } => {
            states.iter().any(|(k, _)| k == key) || want.iter().any(|k| k == key)
        }
        Message::Handoff { states, .. } => states.iter().any(|(k, _)| k == key),
        Message::Transfer { leaves, .. } => leaves
            .iter()
            .any(|(_, states)| states.iter().any(|(k, _)| k == key)),
        Message::Keys { leaves } => leaves
            .iter()
            .any(|(_, ks)| ks.iter().any(|(k, _)| k == key)),
        Message::Reap { keys, .. } | Message::Forget { keys } => keys.iter().any(|(k, _)| k == key),
        Message::Reaped { refused, .. } => refused.iter().any(|k| k == key),
        Message::Digest { .. }
        | Message::Summary { .. }
        | Message::HandoffDone
        | Message::Transferred { .. } => false,
    }
}

/// A message in brief, with the state of `key` it carries.
fn brief(message: &Message<Value>, key: &str) -> String {
    let state = |states: &Vec<(String, Value)>| {
        states
            .iter()
            .find(|(k, _)| k == key)
            .map(|(k, v)| show(k, Some(v)))
            .unwrap_or_default()
    };
    match message {
        Message::Gossip { states, want, .. } => {
            format!(
                "Gossip {} want {}",
                state(states),
                want.iter().any(|k| k == key)
            )
        }
        Message::Handoff { states, .. } => format!("Handoff {}", state(states)),
        Message::Transfer { leaves, .. } => {
            let carried: Vec<String> = leaves
                .iter()
                .filter(|(_, states)| states.iter().any(|(k, _)| k == key))
                .map(|(leaf, states)| format!("leaf {leaf} {}", state(states)))
                .collect();
            format!("Transfer {}", carried.join(" "))
        }
        other => {
            let text = format!("{other:?}");
            text.chars().take(120).collect()
        }
    }
}

fn config(n: u32) -> Config {
    Config {
        initial_nodes: n,
        gossip_interval_ms: 50,
        anti_entropy_interval_ms: 400,
        heartbeat_interval_ms: 15_000,
        // Longer than any message is in flight (`Faults`: 2,080 ms at most).
        tombstone_grace_ms: 3_000,
        ..Config::default()
    }
}

impl Sim {
    fn new(seed: u64, config: Config, faults: Faults) -> Self {
        let mut sim = Sim {
            seed,
            rng: Rng(seed),
            now: 0,
            slots: BTreeMap::new(),
            net: BTreeMap::new(),
            seq: 0,
            net_partition: Partition::default(),
            node_partition: Partition::default(),
            partition_ends: 0,
            faults,
            admin: Admin {
                retry_ms: 300,
                ..Admin::default()
            },
            expected: BTreeMap::new(),
            sets: BTreeMap::new(),
            regs: BTreeMap::new(),
            client_ctx: BTreeMap::new(),
            kv_seq: 0,
            set_share: 300,
            kv_share: 0,
            kv_keys: KV_KEYS,
            placement: placement(),
            trace: std::env::var("SIM_TRACE").ok(),
            stats: Stats::default(),
            config,
        };
        for i in 0..sim.config.initial_nodes {
            sim.spawn(NodeId(i));
        }
        sim
    }

    /// Half the clocks agree to the millisecond; the others are off by up
    /// to 20 ms either way.
    fn random_skew(&mut self) -> i64 {
        if self.rng.chance(500) {
            0
        } else {
            self.rng.range(0, 40) as i64 - 20
        }
    }

    /// Node `id`'s wall clock now: its time for every input.
    fn wall(&self, id: NodeId) -> u64 {
        let skew = self.slots.get(&id).map_or(0, |s| s.skew);
        (WALL_START + self.now).saturating_add_signed(skew)
    }

    fn spawn(&mut self, id: NodeId) {
        let node = Replica::new(id, self.config.clone(), placement());
        let skew = self.random_skew();
        self.slots.insert(
            id,
            Slot {
                node: Some(node),
                disk: Disk::default(),
                restart_at: 0,
                last_up_value: 0,
                skew,
                restarted: false,
            },
        );
        let p = self.node_partition.clone();
        if let Some(n) = self.node_mut(id) {
            n.set_partition(p);
        }
        self.settle(id);
    }

    fn fail(&self, why: impl std::fmt::Display) -> ! {
        let mut report = String::new();
        for (id, slot) in &self.slots {
            // The disk: a restarted node holds only part of it in memory.
            let values: Vec<String> = slot
                .disk
                .store
                .states()
                .map(|(k, v)| show(k, Some(v)))
                .collect();
            match &slot.node {
                None => report += &format!("\n  {id}: crashed; disk {}", values.join(" ")),
                Some(n) => {
                    report += &format!(
                        "\n  {id}: {:?} {} members {:?} leaves {:?}",
                        n.status(),
                        values.join(" "),
                        n.members().all(),
                        n.leaf_counts(),
                    );
                }
            }
        }
        let sets: Vec<String> = self
            .sets
            .iter()
            .map(|(k, log)| format!("{k}={:?} ({:?})", log.members(), log.bias()))
            .collect();
        panic!(
            "seed {} (replay with SIM_SEED={}) at {} ms: {why}\n  expected {:?} {}{report}\n  {:?}",
            self.seed,
            self.seed,
            self.now,
            self.expected,
            sets.join(" "),
            self.stats
        );
    }

    fn is_up(&self, id: NodeId) -> bool {
        self.slots.get(&id).is_some_and(|s| s.node.is_some())
    }

    fn node(&self, id: NodeId) -> Option<&Replica> {
        self.slots.get(&id).and_then(|s| s.node.as_ref())
    }

    fn node_mut(&mut self, id: NodeId) -> Option<&mut Replica> {
        self.slots.get_mut(&id).and_then(|s| s.node.as_mut())
    }

    fn ids(&self) -> Vec<NodeId> {
        self.slots.keys().copied().collect()
    }

    /// Up nodes that consider themselves active.
    fn active_up(&self) -> Vec<NodeId> {
        self.ids()
            .into_iter()
            .filter(|id| self.node(*id).is_some_and(|n| n.status() == Status::Active))
            .collect()
    }

    /// The status of node `id` by its own account (a crashed one by its disk).
    fn own_status(&self, id: NodeId) -> Status {
        let slot = &self.slots[&id];
        match &slot.node {
            Some(n) => n.status(),
            None => slot
                .disk
                .members()
                .and_then(|m| m.status(id))
                .unwrap_or(Status::Active),
        }
    }

    /// Nodes that are not retired by their own account.
    fn not_retired(&self) -> Vec<NodeId> {
        self.ids()
            .into_iter()
            .filter(|id| self.own_status(*id).is_live())
            .collect()
    }

    /// What node `id` holds for `key`: in memory, else on its disk (what
    /// a load would bring).
    fn peek(&self, id: NodeId, key: &str) -> Option<&Value> {
        let slot = self.slots.get(&id)?;
        slot.node
            .as_ref()
            .and_then(|n| n.read(key))
            .or_else(|| slot.disk.get(key))
    }

    /// Loads what a client request for `key` at `id` needs, as the host does.
    fn load_key(&mut self, id: NodeId, key: &str) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let Slot {
            node: Some(node),
            disk,
            ..
        } = slot
        else {
            return;
        };
        let needs = node.needs_key(key);
        if !needs.is_empty() {
            self.stats.loads += 1;
        }
        disk.store.supply(node, needs);
    }

    /// A client read of `key` at `id`.
    fn read(&mut self, id: NodeId, key: &str) -> Option<Value> {
        self.load_key(id, key);
        self.node(id).and_then(|n| n.read(key)).cloned()
    }

    /// Runs node `id`'s own work (loading what it wants first), then
    /// performs its effects: storage first, then sends.
    fn settle(&mut self, id: NodeId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let Slot {
            node: Some(node),
            disk,
            ..
        } = slot
        else {
            return;
        };
        let mut problem = None;
        let mut last = None;
        loop {
            let wanted = node.wanted();
            if wanted.is_empty() {
                break;
            }
            if last.as_ref() == Some(&wanted) {
                problem = Some(format!("{id} still wants {wanted:?} after loading it"));
                break;
            }
            self.stats.loads += 1;
            disk.store.supply(node, wanted.clone());
            node.resume();
            last = Some(wanted);
        }
        let effects = node.take_effects();
        let mut sends = Vec::new();
        // Tombstones this node dropped, and those it collected (it tells
        // the other replicas to forget them).
        let mut dropped: BTreeMap<String, CausalContext> = BTreeMap::new();
        let mut collected = BTreeMap::new();
        for effect in effects {
            if let Effect::Delete { key } = &effect {
                let reg = disk.get(key).and_then(Value::as_register);
                if let Some(r) = reg.filter(|r| r.is_tombstone()) {
                    dropped.insert(key.clone(), r.context().clone());
                }
            }
            if let Effect::Send {
                message: Message::Forget { keys },
                ..
            } = &effect
            {
                for (key, _) in keys {
                    if let Some(context) = dropped.get(key) {
                        collected.insert(key.clone(), context.clone());
                    }
                }
            }
            match &effect {
                Effect::Store {
                    key, leaf, state, ..
                } => {
                    if let Err(e) = state.validate() {
                        problem = Some(format!("{id} stores an invalid {key}: {e}"));
                    }
                    if *leaf != node.leaf(key) {
                        problem = Some(format!("{id} stores {key} under leaf {leaf}"));
                    }
                }
                Effect::Delete { .. } => self.stats.row_deletes += 1,
                _ => {}
            }
            if let (Some(t), Effect::Store { key, state, .. }) = (&self.trace, &effect) {
                if t == key {
                    eprintln!("{} ms: {id} stores {}", self.now, show(key, Some(state)));
                }
            }
            if let (Some(t), Effect::Delete { key }) = (&self.trace, &effect) {
                if t == key {
                    eprintln!("{} ms: {id} deletes {key}", self.now);
                }
            }
            if let (Some(t), Effect::Send { to, message }) = (&self.trace, &effect) {
                if mentions(message, t) {
                    eprintln!("{} ms: {id} sends {to} {}", self.now, brief(message, t));
                }
            }
            disk.record(&effect);
            if let Effect::Send { to, message } = effect {
                match &message {
                    Message::Transfer { .. } => self.stats.transfers += 1,
                    Message::Transferred { .. } => self.stats.transferred += 1,
                    Message::Handoff { .. } => self.stats.handoffs += 1,
                    _ => {}
                }
                sends.push((to, message));
            }
        }
        if let Some(why) = problem {
            self.fail(why);
        }
        for (key, context) in collected {
            self.stats.collected += 1;
            self.regs.entry(key).or_default().collected.join(&context);
        }
        for (to, message) in sends {
            self.send(id, to, message);
        }
        self.check_node(id);
    }

    /// The disk holds what the node holds in memory (and, for a node that
    /// never restarted, nothing more): checked when it crashes, since that
    /// is when it matters, and at the end.
    fn check_disk(&self, id: NodeId) {
        let slot = &self.slots[&id];
        let Some(node) = &slot.node else { return };
        for key in node.keys() {
            if slot.disk.get(key) != node.read(key) {
                self.fail(format!(
                    "{id}: memory and disk differ: {} on disk, {} in memory",
                    show(key, slot.disk.get(key)),
                    show(key, node.read(key))
                ));
            }
        }
        if !slot.restarted {
            let memory: BTreeSet<&String> = node.keys().collect();
            if let Some((key, _)) = slot.disk.store.states().find(|(k, _)| !memory.contains(k)) {
                self.fail(format!(
                    "{id}: {key} is on disk only, yet it never restarted"
                ));
            }
        }
        let stored_members = match slot.disk.members() {
            Some(m) => m == node.members(),
            None => *node.members() == Membership::initial(self.config.initial_nodes),
        };
        if !stored_members {
            self.fail(format!("{id}: stored membership differs"));
        }
        if slot.disk.partition.clone().unwrap_or_default() != *node.partition() {
            self.fail(format!("{id}: stored partition differs"));
        }
    }

    fn check_node(&mut self, id: NodeId) {
        let Some(node) = self.node(id) else { return };
        // Increments only: never over the acknowledged total, never down.
        if node.status().is_live() {
            let v = count(self.peek(id, UP_KEY));
            let total = self.expected.get(UP_KEY).copied().unwrap_or(0);
            if v > total {
                self.fail(format!(
                    "{id}: {UP_KEY} = {v}, over the acknowledged {total}"
                ));
            }
            let last = self.slots[&id].last_up_value;
            if v < last {
                self.fail(format!("{id}: {UP_KEY} went down from {last} to {v}"));
            }
            self.slots.get_mut(&id).expect("slot").last_up_value = v;
        }
        self.check_sets(id);
        self.check_registers(id);
    }

    fn check_sets(&self, id: NodeId) {
        // Every set entry a node holds is an acknowledged write, with the
        // timestamp it was acknowledged with.
        for key in SET_KEYS {
            let Some(value) = self.peek(id, key) else {
                continue;
            };
            let Some(set) = value.as_set() else {
                self.fail(format!("{id}: {key} holds {value:?}"));
            };
            let log = self.sets.get(key);
            let (adds, removes) = set.entries();
            let logged = |e: &Element, add: bool, t: u64| log.is_some_and(|l| l.has(e, add, t));
            for (e, t) in adds {
                if !logged(e, true, *t) {
                    self.fail(format!(
                        "{id}: {key} holds an add of {e} at {t} never acknowledged"
                    ));
                }
            }
            for (e, t) in removes {
                if !logged(e, false, *t) {
                    self.fail(format!(
                        "{id}: {key} holds a remove of {e} at {t} never acknowledged"
                    ));
                }
            }
            if let Some(c) = set.created() {
                if !log.is_some_and(|l| l.creations.contains(&c)) {
                    self.fail(format!(
                        "{id}: {key} holds a creation {c:?} never acknowledged"
                    ));
                }
            }
        }
    }

    /// Every register value a node holds in memory is an acknowledged
    /// write, with the dot and payload it was acknowledged with.
    fn check_registers(&self, id: NodeId) {
        let Some(node) = self.node(id) else { return };
        for key in node.keys().filter(|k| is_kv(k)) {
            let Some(reg) = node.read(key).and_then(Value::as_register) else {
                self.fail(format!("{id}: {key} holds {:?}", node.read(key)));
            };
            let log = self.regs.get(key);
            for (dot, v) in reg.siblings() {
                if log.and_then(|l| l.payloads.get(dot)) != Some(&v.payload) {
                    self.fail(format!(
                        "{id}: {key} holds {} at {dot:?}, never acknowledged",
                        text(&v.payload)
                    ));
                }
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: Message<Value>) {
        let digest = matches!(message, Message::Digest { .. });
        if self.rng.chance(self.faults.loss) || (digest && self.faults.block_anti_entropy) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.rng.range(1, self.faults.max_delay);
            if self.rng.chance(self.faults.long_delay) {
                delay += self.rng.below(2_000);
            }
            self.seq += 1;
            let packet = Packet {
                from,
                to,
                message: message.clone(),
            };
            self.net.insert((self.now + delay, self.seq), packet);
        }
    }

    fn deliver_due(&mut self) {
        // What is sent while delivering arrives 1 ms later at the earliest.
        while let Some(entry) = self.net.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let p = entry.remove();
            self.deliver(p);
        }
    }

    fn deliver(&mut self, p: Packet) {
        if !self.slots.contains_key(&p.to) {
            return;
        }
        if self.net_partition.separates(p.from, p.to) {
            self.stats.cut += 1;
            // A cut connection sometimes errors, sometimes times out silently.
            if self.rng.chance(500) {
                self.report_failure(p);
            }
            return;
        }
        if !self.is_up(p.to) {
            if self.faults.report_failures {
                self.report_failure(p);
            }
            return;
        }
        self.stats.delivered += 1;
        let wall = self.wall(p.to);
        let slot = self.slots.get_mut(&p.to).expect("slot");
        let node = slot.node.as_mut().expect("up");
        let needs = node.needs_for(p.from, &p.message);
        if !needs.is_empty() {
            self.stats.loads += 1;
        }
        slot.disk.store.supply(node, needs);
        if let Some(key) = self.trace.as_deref().filter(|k| mentions(&p.message, k)) {
            eprintln!(
                "{} ms: {} -> {} ({:?}): {}",
                self.now,
                p.from,
                p.to,
                node.status(),
                brief(&p.message, key)
            );
        }
        node.receive(p.from, p.message, wall);
        self.settle(p.to);
    }

    fn report_failure(&mut self, p: Packet) {
        if let Some(sender) = self.node_mut(p.from) {
            sender.send_failed(p.to, p.message);
            self.stats.failed += 1;
            self.settle(p.from);
        }
    }

    fn tick_due(&mut self) {
        for id in self.ids() {
            let wall = self.wall(id);
            let due = self
                .node(id)
                .and_then(Replica::next_deadline)
                .is_some_and(|d| wall >= d);
            if due {
                self.node_mut(id).expect("up").tick(wall);
                self.settle(id);
            }
        }
    }

    /// A client write at `id`; returns whether it was acknowledged.
    fn write(&mut self, id: NodeId, key: &str, by: i64) -> bool {
        let wall = self.wall(id);
        self.load_key(id, key);
        let Some(node) = self.node_mut(id) else {
            self.stats.refused += 1;
            return false;
        };
        let add = |v: &Value, at: Stamp| match v {
            Value::Empty => PnCounter::default().add(at.node, by).map(Value::Counter),
            Value::Counter(c) => c.add(at.node, by).map(Value::Counter),
            Value::Set(_) | Value::Register(_) => {
                panic!("another kind under the counter key {key}")
            }
        };
        match node.write(key, wall, add) {
            Ok(_) => {
                *self.expected.entry(key.to_owned()).or_default() += by;
                self.stats.acked += 1;
                self.settle(id);
                true
            }
            Err(_) => {
                self.stats.refused += 1;
                if !self.node_mut(id).expect("up").take_effects().is_empty() {
                    self.fail(format!("{id}: a refused write had effects"));
                }
                false
            }
        }
    }

    /// A client's set write at `id`; returns the timestamp the node gave
    /// it when acknowledged.
    fn set_write(&mut self, id: NodeId, key: &str, op: SetOp) -> Option<u64> {
        let wall = self.wall(id);
        let restarted = self.slots.get(&id).is_some_and(|s| s.restarted);
        self.load_key(id, key);
        let Some(node) = self.node_mut(id) else {
            self.stats.refused += 1;
            return None;
        };
        // (the timestamp given, the latest stamp of the state it was made from)
        let mut used = None;
        let delta = |v: &Value, at: Stamp| {
            let empty = LwwSet::default();
            let set = match v {
                Value::Empty => &empty,
                Value::Set(s) => s,
                Value::Counter(_) | Value::Register(_) => {
                    return Err(format!("another kind under the set key {key}"))
                }
            };
            used = Some((at.time, set.latest_stamp()));
            Ok(Value::Set(match &op {
                SetOp::Insert(es) => set.insert(es.iter().cloned(), at.time),
                SetOp::Remove(es) => set.remove(es.iter().cloned(), at.time),
                SetOp::Create(bias) => LwwSet::new(*bias, at.time),
            }))
        };
        match node.write(key, wall, delta) {
            Ok(_) => {
                let (time, latest) = used.expect("the operation ran");
                if latest.is_some_and(|l| time <= l) {
                    if !restarted {
                        self.fail(format!(
                            "{id}: {op:?} on {key} stamped {time}, not after the state's {latest:?}"
                        ));
                    }
                    self.stats.stale_after_restart += 1;
                }
                self.sets.entry(key.to_owned()).or_default().log(op, time);
                self.stats.acked += 1;
                self.stats.set_writes += 1;
                self.settle(id);
                Some(time)
            }
            Err(WriteError::Rejected(why)) => self.fail(format!("{id}: {why}")),
            Err(WriteError::NotAccepting { .. }) => {
                self.stats.refused += 1;
                if !self.node_mut(id).expect("up").take_effects().is_empty() {
                    self.fail(format!("{id}: a refused write had effects"));
                }
                None
            }
        }
    }

    /// A register client's request at node `id`: a write of a fresh
    /// payload to `key` (or a delete) made with the context `how` names.
    /// A node that takes no writes names one that does, and the request
    /// goes there, once. Returns whether it was acknowledged.
    fn kv_request(&mut self, mut id: NodeId, key: &str, how: Ctx, delete: bool) -> bool {
        for hop in 0..2 {
            let how = how.clone();
            if !self.is_up(id) {
                self.stats.kv_refused += 1;
                return false;
            }
            let held = self.read(id, key);
            let ctx = match how {
                Ctx::Blind => CausalContext::default(),
                Ctx::Read => held
                    .as_ref()
                    .and_then(Value::as_register)
                    .map(|r| r.context().clone())
                    .unwrap_or_default(),
                Ctx::Remembered => self.client_ctx.get(key).cloned().unwrap_or_default(),
                Ctx::Given(ref c) => c.clone(),
            };
            if how == Ctx::Read {
                self.client_ctx.insert(key.to_owned(), ctx.clone());
            }
            let payload = Payload::Text(format!("v{}", self.kv_seq + 1));
            let wall = self.wall(id);
            // The write's stamp and the context of the delta it made.
            let mut made = None;
            let op = |v: &Value, stamp: Stamp| -> Result<Value, TooManySiblings> {
                let reg = v.as_register().cloned().unwrap_or_default();
                let delta = if delete {
                    reg.delete(&ctx)
                } else {
                    reg.admits(&ctx)?;
                    reg.write(stamp, &ctx, payload.clone())
                };
                made = Some((stamp, delta.context().clone()));
                Ok(Value::Register(delta))
            };
            let node = self.node_mut(id).expect("up");
            let replica = node.replicas(key).contains(&id);
            match node.write(key, wall, op) {
                Ok(state) => {
                    let (stamp, delta_ctx) = made.expect("the operation ran");
                    if self.trace.as_deref() == Some(key) {
                        eprintln!(
                            "{} ms: {id} ({} replica) acknowledges a {} with {ctx:?}: {}",
                            self.now,
                            if replica { "a" } else { "not a" },
                            if delete { "delete" } else { "write" },
                            show(key, Some(&state))
                        );
                    }
                    if delete {
                        self.log_kv_delete(key, &ctx);
                    } else {
                        self.kv_seq += 1;
                        let write = (stamp, delta_ctx, payload, replica);
                        self.log_kv_write(id, key, &ctx, &state, write);
                    }
                    self.settle(id);
                    return true;
                }
                Err(e) => {
                    if !self.node_mut(id).expect("up").take_effects().is_empty() {
                        self.fail(format!("{id}: a refused register write had effects"));
                    }
                    match e {
                        WriteError::NotAccepting {
                            forward_to: Some(to),
                        } if to != id && hop == 0 => {
                            self.stats.kv_forwarded += 1;
                            id = to;
                        }
                        WriteError::NotAccepting { .. } => {
                            self.stats.kv_refused += 1;
                            return false;
                        }
                        WriteError::Rejected(TooManySiblings(_)) => {
                            self.stats.kv_rejected += 1;
                            return false;
                        }
                    }
                }
            }
        }
        self.stats.kv_refused += 1;
        false
    }

    fn log_kv_delete(&mut self, key: &str, ctx: &CausalContext) {
        let log = self.regs.entry(key.to_owned()).or_default();
        if !ctx.is_empty() {
            log.deletes += 1;
            self.stats.kv_deletes += 1;
        }
        log.superseded.join(ctx);
        self.stats.acked += 1;
    }

    /// Logs an acknowledged register write: its dot is the sibling with
    /// the write's stamp in the state the write returned.
    fn log_kv_write(
        &mut self,
        id: NodeId,
        key: &str,
        ctx: &CausalContext,
        state: &Value,
        (stamp, delta_ctx, payload, replica): (Stamp, CausalContext, Payload, bool),
    ) {
        let Some(reg) = state.as_register() else {
            self.fail(format!("{id}: a write of {key} returned {state:?}"));
        };
        let found = reg
            .siblings()
            .find(|(d, v)| d.node == stamp.node && v.stamp == stamp.time)
            .map(|(d, v)| (*d, v.payload.clone()));
        let Some((dot, held)) = found else {
            self.fail(format!(
                "{id}: the write of {} to {key} at {stamp:?} is not live in the state it returned: {}",
                text(&payload),
                show(key, Some(state))
            ));
        };
        if held != payload {
            self.fail(format!(
                "{id}: {key} at {dot:?} holds {held:?}, not {payload:?}"
            ));
        }
        let log = self.regs.entry(key.to_owned()).or_default();
        // The delta may cover only what its client saw, and its own dot: a
        // write that covers another acknowledged write nobody saw replaces
        // a value it should have kept as a sibling.
        let shadowed: Vec<(Dot, Payload)> = log
            .payloads
            .iter()
            .filter(|(d, _)| {
                delta_ctx.contains(**d) && !ctx.contains(**d) && !log.superseded.contains(**d)
            })
            .map(|(d, p)| (*d, p.clone()))
            .collect();
        let reused = log.payloads.insert(dot, payload.clone());
        log.writes.push(KvWrite {
            dot,
            at: id,
            replica,
            when: self.now,
        });
        log.superseded.join(ctx);
        let earlier: Vec<String> = log
            .writes
            .iter()
            .filter(|w| shadowed.iter().any(|(d, _)| *d == w.dot))
            .map(|w| format!("{:?} taken by {} at {} ms", w.dot, w.at, w.when))
            .collect();
        if let Some(old) = reused {
            self.fail(format!(
                "{id}: the write of {} to {key} reuses dot {dot:?} of the acknowledged write of {}",
                text(&payload),
                text(&old)
            ));
        }
        if !shadowed.is_empty() {
            self.fail(format!(
                "{id}: the write of {} to {key} (dot {dot:?}, client context {ctx:?}, {} replica) \
                 covers acknowledged writes its client never saw and no acknowledged context \
                 covered: {earlier:?}; its delta context is {delta_ctx:?}",
                text(&payload),
                if replica { "a" } else { "not a" },
            ));
        }
        self.stats.acked += 1;
        self.stats.kv_writes += 1;
        if !replica {
            self.stats.kv_off_replica += 1;
        }
    }

    /// A register client: a random key, through a random replica of it as
    /// a random live node's view names them, blind or with a context it
    /// read, writing or deleting.
    fn random_kv_op(&mut self) {
        let key = kv_key(self.rng.below(self.kv_keys));
        let viewers: Vec<NodeId> = self
            .ids()
            .into_iter()
            .filter(|id| {
                self.node(*id)
                    .is_some_and(|n| n.is_member() && n.status().is_live())
            })
            .collect();
        let Some(viewer) = self.rng.pick(&viewers) else {
            return;
        };
        let replicas = self.node(viewer).expect("up").replicas(&key);
        let Some(target) = self.rng.pick(&replicas) else {
            return;
        };
        let (how, delete) = match self.rng.below(100) {
            0..30 => (Ctx::Blind, false),
            30..68 => (Ctx::Read, false),
            68..76 => (Ctx::Remembered, false),
            76..94 => (Ctx::Read, true),
            _ => (Ctx::Remembered, true),
        };
        match &how {
            Ctx::Blind => self.stats.kv_blind += 1,
            Ctx::Read => self.stats.kv_read += 1,
            Ctx::Remembered | Ctx::Given(_) => self.stats.kv_remembered += 1,
        }
        self.kv_request(target, &key, how, delete);
    }

    /// Under the faults still, clients read a third of the registers at a
    /// replica and delete what they read: some keys end deleted, as
    /// tombstones.
    fn kv_closing_wave(&mut self) {
        for i in 0..self.kv_keys {
            self.step(1, false);
            self.random_faults();
            if !self.rng.chance(333) {
                continue;
            }
            let key = kv_key(i);
            let viewers = self.active_up();
            let Some(viewer) = self.rng.pick(&viewers) else {
                continue;
            };
            let replicas = self.node(viewer).expect("up").replicas(&key);
            if let Some(target) = self.rng.pick(&replicas) {
                self.kv_request(target, &key, Ctx::Read, true);
            }
        }
    }

    fn random_set_write(&mut self, id: NodeId) {
        let key = self.rng.pick(&SET_KEYS).expect("keys");
        let pool = elements();
        let element = |rng: &mut Rng| pool[rng.below(pool.len() as u64) as usize].clone();
        let roll = self.rng.below(1000);
        if roll < 15 && key == SET_KEYS[0] {
            let bias = if self.rng.chance(500) {
                Bias::AddWins
            } else {
                Bias::RemoveWins
            };
            self.set_write(id, key, SetOp::Create(bias));
        } else if roll < 200 {
            // Two clients in the same millisecond at two nodes: one inserts
            // an element, the other removes it.
            let other = self.rng.pick(&self.ids()).expect("nodes");
            let e = element(&mut self.rng);
            self.set_write(id, key, SetOp::Insert(vec![e.clone()]));
            self.set_write(other, key, SetOp::Remove(vec![e]));
        } else {
            let mut es = vec![element(&mut self.rng)];
            if self.rng.chance(300) {
                es.push(element(&mut self.rng));
            }
            let op = if self.rng.chance(550) {
                SetOp::Insert(es)
            } else {
                SetOp::Remove(es)
            };
            self.set_write(id, key, op);
        }
    }

    /// For every set element, a client inserts it at one node while another
    /// removes it at another node, in the same millisecond: the last word
    /// on many elements is a tie, for the bias to decide.
    fn closing_wave(&mut self) {
        for key in SET_KEYS {
            for e in elements() {
                self.step(1, false);
                self.random_faults();
                let (a, b) = (self.rng.pick(&self.ids()), self.rng.pick(&self.ids()));
                let (a, b) = (a.expect("nodes"), b.expect("nodes"));
                self.set_write(a, key, SetOp::Insert(vec![e.clone()]));
                self.set_write(b, key, SetOp::Remove(vec![e]));
            }
        }
    }

    fn random_write(&mut self) {
        if self.kv_share > 0 && self.rng.chance(self.kv_share) {
            self.random_kv_op();
            return;
        }
        let id = self.rng.pick(&self.ids()).expect("nodes");
        if self.rng.chance(self.set_share) {
            self.random_set_write(id);
        } else if self.rng.chance(400) {
            let by = self.rng.range(1, 1000) as i64;
            self.write(id, UP_KEY, by);
        } else {
            let key = self.rng.pick(&MIXED_KEYS).expect("keys");
            let mut by = self.rng.range(1, 1000) as i64;
            if self.rng.chance(400) {
                by = -by;
            }
            self.write(id, key, by);
        }
    }

    fn crash(&mut self, id: NodeId, down_for: u64) {
        let now = self.now;
        self.check_disk(id);
        let slot = self.slots.get_mut(&id).expect("slot");
        if slot.node.take().is_some() {
            slot.restart_at = now.saturating_add(down_for);
            self.stats.crashes += 1;
        }
    }

    /// Brings a crashed node back from its disk: membership, partition and
    /// leaf digests at once; states as its inputs need them.
    fn restart(&mut self, id: NodeId) {
        let slot = self.slots.get_mut(&id).expect("slot");
        if slot.node.is_some() {
            return;
        }
        slot.restarted = true;
        // It may come back on another machine, with another clock.
        if self.rng.chance(500) {
            let skew = self.random_skew();
            self.slots.get_mut(&id).expect("slot").skew = skew;
        }
        let slot = self.slots.get_mut(&id).expect("slot");
        let mut node = Replica::new(id, self.config.clone(), placement());
        slot.disk.store.restore(&mut node);
        let restore_effects = node.take_effects();
        slot.node = Some(node);
        if !restore_effects.is_empty() {
            self.fail(format!("{id}: restore had effects: {restore_effects:?}"));
        }
        // The operator's current partition setting reaches it again.
        let p = self.node_partition.clone();
        self.node_mut(id).expect("up").set_partition(p);
        self.settle(id);
    }

    fn set_node_partition(&mut self, p: Partition) {
        self.node_partition = p.clone();
        for id in self.ids() {
            if let Some(n) = self.node_mut(id) {
                n.set_partition(p.clone());
                self.settle(id);
            }
        }
    }

    fn random_faults(&mut self) {
        // Crashes: at most two nodes down at once.
        let down = self.slots.values().filter(|s| s.node.is_none()).count();
        if down < 2 && self.rng.chance(self.faults.crash) {
            let id = self.rng.pick(&self.ids()).expect("nodes");
            let down_for = if self.rng.chance(200) {
                self.rng.range(2_000, 5_000)
            } else {
                self.rng.range(50, 1_500)
            };
            self.crash(id, down_for);
        }
        for id in self.ids() {
            if !self.is_up(id) && self.now >= self.slots[&id].restart_at {
                self.restart(id);
            }
        }
        // Partitions come and go.
        let partitioned =
            !self.net_partition.groups().is_empty() || !self.node_partition.groups().is_empty();
        if partitioned && self.now >= self.partition_ends {
            self.heal();
        } else if !partitioned && self.rng.chance(self.faults.partition) {
            let groups = self.rng.range(2, 3) as usize;
            let mut sets = vec![BTreeSet::new(); groups];
            for id in self.ids() {
                sets[self.rng.below(groups as u64) as usize].insert(id);
            }
            // Leave the last group unnamed sometimes: it is a group too.
            if self.rng.chance(300) {
                sets.pop();
            }
            let p = Partition::new(sets);
            match self.rng.below(3) {
                0 => self.net_partition = p,
                1 => self.set_node_partition(p),
                _ => {
                    self.net_partition = p.clone();
                    self.set_node_partition(p);
                }
            }
            self.partition_ends = self.now + self.rng.range(200, 3_000);
            self.stats.partitions += 1;
        }
    }

    fn heal(&mut self) {
        self.net_partition = Partition::default();
        if !self.node_partition.groups().is_empty() {
            self.set_node_partition(Partition::default());
        }
    }

    fn admin_step(&mut self) {
        self.admin_retire();
        self.admin_add();
    }

    /// Retires one node at a time, retrying every `retry_ms` until it is
    /// retired.
    fn admin_retire(&mut self) {
        let now = self.now;
        let retry = self.admin.retry_ms;
        if let Some((victim, retry_at)) = self.admin.current {
            if now < retry_at {
                return;
            }
            self.admin.current = Some((victim, now + retry));
            let Some(node) = self.node_mut(victim) else {
                return;
            };
            if let Status::Retired { heir } = node.status() {
                self.admin.retired.push((victim, heir));
                self.admin.current = None;
                return;
            }
            match node.begin_retire() {
                Ok(_) | Err(RetireError::Busy(_)) => {}
                Err(e) => self.fail(format!("retrying the retirement of {victim}: {e:?}")),
            }
            self.settle(victim);
        } else if self.admin.retire_at.first().is_some_and(|at| now >= *at) {
            let active = self.active_up();
            // Keep at least three active nodes.
            if active.len() < 4 {
                return;
            }
            let victim = self.rng.pick(&active).expect("active");
            let node = self.node_mut(victim).expect("up");
            match node.begin_retire() {
                Ok(_) => {
                    self.admin.retire_at.remove(0);
                    self.admin.current = Some((victim, now + retry));
                }
                // Another drain is not finished in this node's view, or a
                // new node has not yet heard that it was added: later.
                Err(RetireError::Busy(_) | RetireError::NotMember) => {}
                Err(e) => self.fail(format!("retiring {victim}: {e:?}")),
            }
            self.settle(victim);
        }
    }

    fn admin_add(&mut self) {
        let now = self.now;
        if self.admin.add_at.first().is_some_and(|at| now >= *at) {
            let Some(adder) = self.rng.pick(&self.active_up()) else {
                return;
            };
            self.admin.add_at.remove(0);
            // One allocator hands out ids, as the edge's registry object does.
            let id = NodeId(self.slots.keys().map(|n| n.0 + 1).max().unwrap_or(0));
            let wall = self.wall(adder);
            if let Err(e) = self.node_mut(adder).expect("up").add_node(id, wall) {
                self.fail(format!("{adder} could not add {id}: {e:?}"));
            }
            self.settle(adder);
            self.spawn(id);
            self.admin.added.push(id);
        }
    }

    /// One step of virtual time: deliver, tick, then the world acts.
    fn step(&mut self, dt: u64, writes: bool) {
        self.now += dt;
        self.deliver_due();
        self.tick_due();
        if writes && self.rng.chance(300) {
            self.random_write();
        }
        self.admin_step();
    }

    /// Every live node holds the expected total of every counter and the
    /// oracle's membership (and exactly the pruned entries) of every set,
    /// all hold the same membership and the same states of every key but
    /// the registers, and no leaf is moving; every register is held alike
    /// by its replicas and by no other active node.
    fn converged(&self, registers: bool) -> Result<(), String> {
        if self.admin.current.is_some() || !self.admin.retire_at.is_empty() {
            return Err("a retirement is still under way".into());
        }
        // The oracle of each set: membership, creation, pruned entries.
        type Oracle = (
            BTreeSet<Element>,
            Option<(u64, Bias)>,
            (BTreeMap<Element, u64>, BTreeMap<Element, u64>),
        );
        let oracles: Vec<(&String, Oracle)> = self
            .sets
            .iter()
            .map(|(k, log)| (k, (log.members(), log.created(), log.kept())))
            .collect();
        type Reference<'a> = (NodeId, &'a Membership, BTreeMap<&'a String, &'a Value>);
        let mut reference: Option<Reference> = None;
        for id in self.not_retired() {
            let Some(node) = self.node(id) else {
                return Err(format!("{id} is down"));
            };
            if node.status() != Status::Active {
                return Err(format!("{id} is {:?}", node.status()));
            }
            let moving = node.leaf_counts().1;
            if moving > 0 {
                return Err(format!("{id} is still handing off {moving} leaves"));
            }
            for (key, want) in &self.expected {
                let got = count(self.peek(id, key));
                if got != *want {
                    return Err(format!("{id}: {key} = {got}, expected {want}"));
                }
            }
            for (key, (want, created, (adds, removes))) in &oracles {
                let empty = LwwSet::default();
                let set = self.peek(id, key).and_then(Value::as_set).unwrap_or(&empty);
                let got: BTreeSet<Element> = set.members().cloned().collect();
                if got != *want {
                    return Err(format!("{id}: {key} = {got:?}, expected {want:?}"));
                }
                if set.created() != *created {
                    return Err(format!(
                        "{id}: {key} created {:?}, expected {created:?}",
                        set.created(),
                    ));
                }
                if set.entries() != (adds, removes) {
                    return Err(format!(
                        "{id}: {key} holds {:?}, expected entries {adds:?} {removes:?}",
                        set.entries()
                    ));
                }
            }
            // Its disk: memory holds a part of it, checked equal at the end.
            let states: BTreeMap<&String, &Value> = self.slots[&id]
                .disk
                .store
                .states()
                .filter(|(k, _)| !is_kv(k))
                .collect();
            match &reference {
                None => reference = Some((id, node.members(), states)),
                Some((other, members, theirs)) => {
                    if *members != node.members() {
                        return Err(format!("{id} and {other} know different memberships"));
                    }
                    if *theirs != states {
                        return Err(format!("{id} and {other} hold different states"));
                    }
                }
            }
        }
        let Some((_, members, _)) = reference else {
            return Err("no live node".into());
        };
        if !registers {
            return Ok(());
        }
        let row = |id: &NodeId, key: &str| self.slots[id].disk.get(key);
        for key in self.regs.keys() {
            let replicas = self.placement.replicas(key, members);
            let first = row(&replicas[0], key);
            for r in &replicas {
                let held = row(r, key);
                if held != first {
                    return Err(format!(
                        "replicas disagree: {} at {}, {} at {r}",
                        show(key, first),
                        replicas[0],
                        show(key, held)
                    ));
                }
            }
            for id in members.active() {
                if !replicas.contains(&id) && self.slots[&id].disk.get(key).is_some() {
                    return Err(format!(
                        "{id} holds {key}, not one of its replicas {replicas:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The register oracle, on a converged cluster, read at every replica
    /// of each key in the final membership (loading as a client read does):
    /// the replicas hold the same state; every acknowledged write is a live
    /// sibling or was covered by an acknowledged context; every live
    /// sibling is an acknowledged write no acknowledged context covered (no
    /// resurrection); the context, with the contexts of the tombstones
    /// collected, covers every acknowledged write and every acknowledged
    /// context (no write or delete lost); and a register with no live value
    /// (never written, or deleted and its tombstone collected) has no row
    /// anywhere.
    fn check_registers_final(&mut self) -> KvSummary {
        let mut s = KvSummary::default();
        let Some(live) = self.not_retired().first().copied() else {
            return s;
        };
        let members = self.node(live).expect("up").members().clone();
        let keys: Vec<String> = self.regs.keys().cloned().collect();
        for key in &keys {
            let replicas = self.placement.replicas(key, &members);
            let held: Vec<(NodeId, Option<Value>)> =
                replicas.iter().map(|r| (*r, self.read(*r, key))).collect();
            let (first, first_held) = &held[0];
            for (r, v) in &held[1..] {
                if v != first_held {
                    self.fail(format!(
                        "{key}: replicas disagree: {} at {first}, {} at {r}",
                        show(key, first_held.as_ref()),
                        show(key, v.as_ref())
                    ));
                }
            }
            let held = first_held.clone();
            if held.as_ref().is_some_and(|v| v.as_register().is_none()) {
                self.fail(format!("{key} holds {held:?}"));
            }
            let reg = held
                .as_ref()
                .and_then(Value::as_register)
                .cloned()
                .unwrap_or_default();
            let log = &self.regs[key];
            for w in &log.writes {
                let payload = &log.payloads[&w.dot];
                match reg.siblings().find(|(d, _)| **d == w.dot) {
                    Some((_, v)) if v.payload == *payload => s.live += 1,
                    Some((_, v)) => self.fail(format!(
                        "{key}: {:?} holds {}, acknowledged as {}",
                        w.dot,
                        text(&v.payload),
                        text(payload)
                    )),
                    None if log.superseded.contains(w.dot) => s.superseded += 1,
                    None => self.fail(format!(
                        "{key}: the acknowledged write of {} ({:?}, taken by {} at {} ms, \
                         {} replica in its view) is lost: it is not live at the replicas \
                         {replicas:?} ({}), and no acknowledged write or delete was made \
                         with a context containing it",
                        text(payload),
                        w.dot,
                        w.at,
                        w.when,
                        if w.replica { "a" } else { "not a" },
                        show(key, held.as_ref())
                    )),
                }
                if !reg.context().contains(w.dot) && !log.collected.contains(w.dot) {
                    self.fail(format!(
                        "{key}: the acknowledged write of {} ({:?}, taken by {} at {} ms) \
                         is outside the context its replicas {replicas:?} hold: {:?}",
                        text(payload),
                        w.dot,
                        w.at,
                        w.when,
                        reg.context()
                    ));
                }
            }
            let mut known = reg.context().clone();
            known.join(&log.collected);
            if !known.covers(&log.superseded) {
                self.fail(format!(
                    "{key}: the replicas {replicas:?} hold the context {:?}, which with the \
                     collected tombstones {:?} lacks dots of the acknowledged contexts {:?}: \
                     a write or delete is lost",
                    reg.context(),
                    log.collected,
                    log.superseded
                ));
            }
            for (dot, v) in reg.siblings() {
                if log.payloads.get(dot) != Some(&v.payload) {
                    self.fail(format!(
                        "{key}: {} at {dot:?} was never acknowledged",
                        text(&v.payload)
                    ));
                }
                if log.superseded.contains(*dot) {
                    self.fail(format!(
                        "{key}: {} at {dot:?} is live, yet an acknowledged write or delete \
                         replaced it (a resurrection)",
                        text(&v.payload)
                    ));
                }
            }
            if !reg.is_empty() {
                s.kept += 1;
            } else {
                // Never written, or deleted and collected: no row anywhere.
                for (id, slot) in &self.slots {
                    if let Some(v) = slot.disk.get(key) {
                        self.fail(format!(
                            "{key}: no value is live, yet {id} keeps a row: {}",
                            show(key, Some(v))
                        ));
                    }
                }
                if !log.writes.is_empty() {
                    s.deleted += 1;
                }
            }
        }
        s.writes = self.stats.kv_writes;
        s.deletes = self.stats.kv_deletes;
        s.off_replica = self.stats.kv_off_replica;
        s.transfers = self.stats.transfers;
        s.row_deletes = self.stats.row_deletes;
        s.collected = self.stats.collected;
        s.handoffs = self.stats.handoffs;
        s.added = self.admin.added.len() as u64;
        s.retired = self.admin.retired.len() as u64;
        s.lazy_loads = self.stats.loads;
        s
    }

    /// A live node that holds tombstones, and how many.
    fn tombstones_held(&self) -> Option<(NodeId, u64)> {
        self.not_retired()
            .into_iter()
            .filter_map(|id| Some((id, self.node(id)?.tombstone_counts().0)))
            .find(|(_, held)| *held > 0)
    }

    /// Runs until the registers' replicas agree, for a second on end.
    fn registers_settle(&mut self, limit_ms: u64) {
        let start = self.now;
        let mut quiet = 0;
        while quiet < 100 {
            match self.converged(true).err() {
                None => quiet += 1,
                Some(why) if self.now - start > limit_ms => self.fail(format!(
                    "registers not settled {limit_ms} ms after convergence: {why}"
                )),
                Some(_) => quiet = 0,
            }
            self.step(10, false);
        }
    }

    /// Stops every fault and runs until converged, at most `limit_ms` more;
    /// then, with registers, until their replicas agree, and checks the
    /// register oracle. Returns the virtual time convergence took.
    fn settle_down(&mut self, limit_ms: u64) -> u64 {
        self.faults = Faults::calm();
        self.heal();
        for id in self.ids() {
            self.restart(id);
        }
        let start = self.now;
        loop {
            if self.converged(true).is_ok() {
                break;
            }
            if self.now - start > limit_ms {
                let why = self.converged(true).unwrap_err();
                self.fail(format!(
                    "no convergence {limit_ms} ms after the faults stopped: {why}"
                ));
            }
            self.step(10, false);
        }
        let took = self.now - start;
        // And it stays converged.
        for _ in 0..100 {
            self.step(10, false);
        }
        if let Err(why) = self.converged(false) {
            self.fail(format!("diverged again after converging: {why}"));
        }
        if !self.regs.is_empty() {
            self.registers_settle(limit_ms);
            // Then until every tombstone is collected (two rounds of
            // questions, a grace period apart) and stays so: a replica's
            // anti-entropy may hand a tombstone back to the collector just
            // before the replica hears it is collected, and it starts over.
            let start = self.now;
            let grace = self.config.tombstone_grace_ms;
            loop {
                while let Some((id, held)) = self.tombstones_held() {
                    if self.now - start > limit_ms + 8 * grace {
                        self.fail(format!(
                            "{id} still holds {held} tombstones {} ms after convergence",
                            self.now - start
                        ));
                    }
                    self.step(10, false);
                }
                self.registers_settle(limit_ms);
                if self.tombstones_held().is_none() {
                    break;
                }
            }
            self.check_registers_final();
        }
        for id in self.ids() {
            self.check_disk(id);
        }
        took
    }
}

/// What a chaotic run writes, and how the cluster is resized.
#[derive(Clone, Copy, Debug)]
struct Workload {
    /// The cluster size; 6 to 8 at random when `None`.
    nodes: Option<u32>,
    /// Per mille of client writes that go to sets (of those not to registers).
    set_share: u64,
    /// Per mille of client writes that go to registers.
    kv_share: u64,
    /// How many nodes to add and to retire: at random (1–2 and 1–3, the
    /// latter skipped if not started during the faults) when `None`; else
    /// exactly, finishing after the faults if need be.
    resizes: Option<(u64, u64)>,
    /// Between retries of a retirement.
    retry_ms: u64,
    /// No crashes or partitions (loss, duplicates and delays stay), and
    /// twice as long: every node answers, so tombstones are collected
    /// while clients still write.
    steady: bool,
}

/// What a chaotic run did with sets.
#[derive(Clone, Copy, Debug, Default)]
struct SetSummary {
    writes: u64,
    /// Add/remove pairs of one element at one timestamp.
    equal_pairs: usize,
    /// Elements decided by the bias at the end.
    ties: usize,
    remove_wins: usize,
    stale_after_restart: u64,
}

/// One chaotic run of `seed`.
fn chaos_run(seed: u64, workload: Workload) -> (SetSummary, KvSummary) {
    let mut rng = Rng(seed ^ 0x5eed);
    let n = rng.range(6, 8) as u32;
    let n = workload.nodes.unwrap_or(n);
    let faults = if workload.steady {
        Faults {
            crash: 0,
            partition: 0,
            ..Faults::chaos()
        }
    } else {
        Faults::chaos()
    };
    let mut sim = Sim::new(seed, config(n), faults);
    sim.set_share = workload.set_share;
    sim.kv_share = workload.kv_share;
    if workload.steady {
        sim.kv_keys = 10 * KV_KEYS;
    }
    sim.admin.retry_ms = workload.retry_ms;
    let chaos_ms = if workload.steady { 20_000 } else { 10_000 };
    // Retirements: the admin starts each as soon as its time has come and
    // the previous one is done, so they may follow closely.
    let (mut adds, mut at): (Vec<u64>, Vec<u64>) = match workload.resizes {
        None => {
            let retirements = rng.range(1, 3);
            let at = (0..retirements).map(|_| rng.range(500, 7_000)).collect();
            let adds = (0..rng.range(1, 2))
                .map(|_| rng.range(1_000, 8_000))
                .collect();
            (adds, at)
        }
        // Grow first, then shrink.
        Some((adds, retirements)) => (
            (0..adds).map(|_| rng.range(300, 3_000)).collect(),
            (0..retirements).map(|_| rng.range(3_000, 8_000)).collect(),
        ),
    };
    at.sort_unstable();
    adds.sort_unstable();
    sim.admin.retire_at = at;
    sim.admin.add_at = adds;
    while sim.now < chaos_ms {
        let dt = sim.rng.range(1, 10);
        sim.step(dt, true);
        sim.random_faults();
    }
    let collected_while_writing = sim.stats.collected;
    if workload.set_share > 0 && workload.kv_share < 1000 {
        sim.closing_wave();
    }
    if workload.kv_share > 0 {
        sim.kv_closing_wave();
    }
    if workload.resizes.is_none() {
        // A retirement that has not started by now is skipped.
        sim.admin.retire_at.clear();
    }
    let took = sim.settle_down(30_000);
    if sim.expected.is_empty() && sim.regs.is_empty() || sim.stats.acked < 100 {
        sim.fail("too few acknowledged writes for a meaningful run");
    }
    if workload.set_share >= 500 && (sim.sets.len() < SET_KEYS.len() || sim.stats.set_writes < 100)
    {
        sim.fail("too few acknowledged set writes for a meaningful run");
    }
    if let Some((adds, retirements)) = workload.resizes {
        if sim.admin.added.len() as u64 != adds || sim.admin.retired.len() as u64 != retirements {
            sim.fail(format!(
                "resized by {:?} and {:?}, not {adds} and {retirements}",
                sim.admin.added, sim.admin.retired
            ));
        }
    }
    let summary = SetSummary {
        writes: sim.stats.set_writes,
        equal_pairs: sim.sets.values().map(SetLog::equal_pairs).sum(),
        ties: sim.sets.values().map(SetLog::ties).sum(),
        remove_wins: sim
            .sets
            .values()
            .filter(|l| l.bias() == Bias::RemoveWins)
            .count(),
        stale_after_restart: sim.stats.stale_after_restart,
    };
    let mut kv = sim.check_registers_final();
    kv.collected_while_writing = collected_while_writing;
    let active = sim.active_up().len();
    eprintln!(
        "seed {seed}: {n} nodes, retired {:?}, added {:?}, {active} active at the end, \
         converged {took} ms after the faults; {:?}; sets {summary:?}; registers {kv:?}",
        sim.admin.retired, sim.admin.added, sim.stats
    );
    (summary, kv)
}

fn seeds() -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => match s.trim().split_once("..") {
            // `SIM_SEED=a..b` runs a range, for soaking.
            Some((a, b)) => {
                let a: u64 = a.parse().expect("SIM_SEED=a..b with u64 bounds");
                (a..b.parse().expect("SIM_SEED=a..b with u64 bounds")).collect()
            }
            None => vec![s
                .trim()
                .parse()
                .expect("SIM_SEED must be a u64 or a range a..b")],
        },
        Err(_) => (1..=20).collect(),
    }
}

#[test]
fn chaos_converges_to_the_acknowledged_totals() {
    // Counters and sets, and a few registers.
    let workload = Workload {
        nodes: None,
        set_share: 300,
        kv_share: 150,
        resizes: None,
        retry_ms: 300,
        steady: false,
    };
    for seed in seeds() {
        eprintln!("simulating seed {seed} (replay with SIM_SEED={seed})");
        chaos_run(seed, workload);
    }
}

#[test]
fn chaos_sets_on_eight_nodes_converge_to_the_oracle() {
    // Mostly set writes, on 8 nodes, with every fault of the counter run.
    let workload = Workload {
        nodes: Some(8),
        set_share: 750,
        kv_share: 0,
        resizes: None,
        retry_ms: 300,
        steady: false,
    };
    let mut total = SetSummary::default();
    for seed in seeds() {
        eprintln!("simulating sets, seed {seed} (replay with SIM_SEED={seed})");
        let (s, _) = chaos_run(seed, workload);
        total.writes += s.writes;
        total.equal_pairs += s.equal_pairs;
        total.ties += s.ties;
        total.remove_wins += s.remove_wins;
        total.stale_after_restart += s.stale_after_restart;
    }
    eprintln!("sets over all seeds: {total:?}");
    if std::env::var("SIM_SEED").is_err() {
        // The default seeds must exercise what the oracle is there for.
        assert!(total.equal_pairs >= 20, "too few equal stamps: {total:?}");
        assert!(total.ties >= 5, "too few ties at the end: {total:?}");
        assert!(
            total.remove_wins >= 5,
            "too few remove-wins sets: {total:?}"
        );
    }
}

/// Runs `workload` with every seed; the register summaries added up.
fn register_runs(what: &str, workload: Workload) -> KvSummary {
    let mut total = KvSummary::default();
    for seed in seeds() {
        eprintln!("simulating {what}, seed {seed} (replay with SIM_SEED={seed})");
        let (_, kv) = chaos_run(seed, workload);
        total.add(&kv);
    }
    eprintln!("{what} over all seeds: {total:?}");
    total
}

#[test]
fn chaos_registers_on_a_resizing_ring_keep_every_acknowledged_write() {
    // R=3 on 8 nodes, grown to 10 and shrunk to 6 during the faults; most
    // writes go to registers, the others to counters and sets.
    let workload = Workload {
        nodes: Some(8),
        set_share: 300,
        kv_share: 700,
        resizes: Some((2, 4)),
        retry_ms: 0,
        steady: false,
    };
    let total = register_runs("registers", workload);
    if std::env::var("SIM_SEED").is_err() {
        // The default seeds must exercise what the oracle is there for.
        assert!(total.writes >= 2_000, "too few register writes: {total:?}");
        assert!(
            total.superseded >= 200,
            "too few superseded writes: {total:?}"
        );
        assert!(
            total.deleted >= 20,
            "too few registers deleted to the end: {total:?}"
        );
        assert!(
            total.off_replica >= 10,
            "too few writes off the replicas: {total:?}"
        );
        assert!(total.transfers >= 100, "too few transfers: {total:?}");
    }
}

#[test]
fn tombstones_are_collected_while_clients_write() {
    // Every node stays up and reachable, so collection runs during the
    // writes: stale contexts, late and duplicated messages and a resize
    // meet collected keys, and the oracle still finds every write.
    let workload = Workload {
        nodes: Some(8),
        set_share: 0,
        kv_share: 1000,
        resizes: Some((1, 1)),
        retry_ms: 0,
        steady: true,
    };
    let total = register_runs("collection", workload);
    if std::env::var("SIM_SEED").is_err() {
        assert!(
            total.collected_while_writing >= 200,
            "too few tombstones collected while clients wrote: {total:?}"
        );
    }
}

/// Calm network; node 3 is down for a long time while the others write.
/// `flush_first`: node 3's last write leaves its gossip buffer before the
/// crash (else the buffered delta dies with it).
fn long_crash(faults: Faults, flush_first: bool, seed: u64) -> (Sim, u64) {
    let mut sim = Sim::new(seed, config(4), faults);
    let three = NodeId(3);
    for i in 0..40 {
        sim.step(10, false);
        assert!(sim.write(NodeId(i % 4), HOME, 1 + i64::from(i)));
    }
    sim.step(100, false);
    assert!(sim.write(three, HOME, 1_000));
    if flush_first {
        sim.step(60, false);
    }
    sim.crash(three, u64::MAX);
    for i in 0..300 {
        sim.step(20, false);
        assert!(
            !sim.write(three, HOME, 5),
            "a crashed node acknowledges nothing"
        );
        assert!(sim.write(NodeId(i % 3), if i % 2 == 0 { HOME } else { BLOG }, 3));
    }
    for _ in 0..20 {
        sim.step(10, false);
    }
    let seen = count(sim.slots[&three].disk.get(BLOG));
    assert_eq!(seen, 0, "node 3 saw nothing while down");
    let home = |sim: &Sim, id| count(sim.node(NodeId(id)).unwrap().read(HOME));
    if !flush_first {
        assert_eq!(home(&sim, 0), home(&sim, 1));
        assert_eq!(
            home(&sim, 0) + 1_000,
            sim.expected[HOME],
            "node 3's last write is only on its disk"
        );
    }
    sim.restart(three);
    let start = sim.now;
    while sim.converged(true).is_err() {
        assert!(
            sim.now - start < 10_000,
            "node 3 did not catch up: {:?}",
            sim.converged(true)
        );
        sim.step(10, false);
    }
    let took = sim.now - start;
    (sim, took)
}

#[test]
fn crashed_node_catches_up_by_rebuffered_sends() {
    // No anti-entropy at all: the failed sends that were put back into the
    // senders' buffers must carry everything.
    let faults = Faults {
        block_anti_entropy: true,
        ..Faults::calm()
    };
    let (sim, took) = long_crash(faults, true, 7);
    assert!(
        sim.stats.failed > 100,
        "sends to the crashed node failed: {:?}",
        sim.stats
    );
    eprintln!(
        "caught up by re-buffered sends in {took} ms; {:?}",
        sim.stats
    );
}

#[test]
fn crashed_node_catches_up_by_anti_entropy() {
    // Messages to the crashed node vanish without a failure report, and the
    // write node 3 made just before crashing never left its buffer: only
    // anti-entropy can repair both directions.
    let faults = Faults {
        report_failures: false,
        ..Faults::calm()
    };
    let (sim, took) = long_crash(faults, false, 8);
    assert_eq!(sim.stats.failed, 0);
    eprintln!("caught up by anti-entropy in {took} ms; {:?}", sim.stats);
}

#[test]
fn split_brain_heals() {
    let mut sim = Sim::new(11, config(6), Faults::calm());
    let left: BTreeSet<NodeId> = (0..3).map(NodeId).collect();
    let right: BTreeSet<NodeId> = (3..6).map(NodeId).collect();
    let split = Partition::new(vec![left.clone(), right.clone()]);
    sim.net_partition = split.clone();
    sim.set_node_partition(split);
    let mut side_totals = [0i64; 2];
    for i in 0..400u32 {
        sim.step(10, false);
        let id = NodeId(i % 6);
        let by = i64::from(i % 7) + 1;
        if sim.write(id, HOME, by) {
            side_totals[usize::from(id.0 >= 3)] += by;
        }
        if i == 150 {
            // Node 1 retires into node 2 inside the left half.
            assert_eq!(
                sim.node_mut(NodeId(1)).unwrap().begin_retire(),
                Ok(NodeId(2))
            );
            sim.settle(NodeId(1));
        }
    }
    sim.step(500, false);
    sim.step(500, false);
    assert_eq!(
        sim.node(NodeId(1)).unwrap().status(),
        Status::Retired { heir: NodeId(2) }
    );
    // Each half agrees on its own total and knows nothing of the other.
    for (side, ids) in [&left, &right].into_iter().enumerate() {
        for id in ids {
            let node = sim.node(*id).unwrap();
            if node.status().is_live() {
                assert_eq!(count(node.read(HOME)), side_totals[side], "{id}");
            }
        }
    }
    assert!(side_totals[0] > 0 && side_totals[1] > 0);
    assert_eq!(sim.expected[HOME], side_totals[0] + side_totals[1]);
    // The right half has not heard of the retirement yet.
    assert_eq!(
        sim.node(NodeId(4)).unwrap().members().status(NodeId(1)),
        Some(Status::Active)
    );
    let took = sim.settle_down(10_000);
    eprintln!("split brain healed in {took} ms");
    for id in right {
        let node = sim.node(id).unwrap();
        assert_eq!(
            node.members().status(NodeId(1)),
            Some(Status::Retired { heir: NodeId(2) })
        );
        assert!(!node
            .read(HOME)
            .and_then(Value::as_counter)
            .unwrap()
            .contributions()
            .contains_key(&NodeId(1)));
    }
}

#[test]
fn retirement_towards_an_heir_that_already_retired_completes() {
    // Node 0 is down while node 1 retires into node 2, so when node 0 is
    // retired right after it comes back, its stale view picks node 1 as its
    // heir. Node 1 never answers again; the retries must reach node 2.
    let mut sim = Sim::new(21, config(5), Faults::calm());
    for i in 0..50u32 {
        sim.step(10, false);
        assert!(sim.write(NodeId(i % 5), UP_KEY, i64::from(i) + 1));
    }
    sim.step(100, false);
    sim.crash(NodeId(0), u64::MAX);
    assert_eq!(
        sim.node_mut(NodeId(1)).unwrap().begin_retire(),
        Ok(NodeId(2))
    );
    sim.settle(NodeId(1));
    for i in 0..100u32 {
        sim.step(10, false);
        sim.write(NodeId(1 + i % 4), UP_KEY, 2);
    }
    assert_eq!(
        sim.node(NodeId(1)).unwrap().status(),
        Status::Retired { heir: NodeId(2) }
    );
    sim.restart(NodeId(0));
    assert_eq!(
        sim.node(NodeId(0)).unwrap().members().status(NodeId(1)),
        Some(Status::Active)
    );
    sim.admin.current = Some((NodeId(0), sim.now));
    sim.step(1, false);
    assert_eq!(
        sim.node(NodeId(0)).unwrap().status(),
        Status::Draining { heir: NodeId(1) },
        "the stale view chose the retired node"
    );
    let took = sim.settle_down(10_000);
    assert_eq!(sim.admin.retired.len(), 1);
    let status = sim.node(NodeId(0)).unwrap().status();
    assert_eq!(
        status,
        Status::Retired { heir: NodeId(2) },
        "node 0 was folded into node 2"
    );
    for id in 2..5 {
        let node = sim.node(NodeId(id)).unwrap();
        let visits = node.read(UP_KEY).and_then(Value::as_counter).unwrap();
        assert_eq!(visits.retired().get(&NodeId(0)), Some(&NodeId(2)));
        assert_eq!(visits.retired().get(&NodeId(1)), Some(&NodeId(2)));
    }
    eprintln!("the stale retirement completed {took} ms after node 0 returned");
}

/// Sets all wall clocks to true time.
fn sync_clocks(sim: &mut Sim) {
    for slot in sim.slots.values_mut() {
        slot.skew = 0;
    }
}

/// A client's read of a set at node `id`.
fn members(sim: &mut Sim, id: NodeId, key: &str) -> BTreeSet<Element> {
    let value = sim.read(id, key);
    let set = value.as_ref().and_then(Value::as_set);
    set.map(|s| s.members().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn split_brain_sets_settle_on_the_earliest_bias() {
    // The left half creates the set add-wins, the right half remove-wins a
    // little later; each half writes, with equal timestamps across the cut
    // and inside the right half. Each half follows its own bias until the
    // halves meet; then the left's earlier creation reaches the right half
    // last and flips its tie.
    let mut sim = Sim::new(31, config(6), Faults::calm());
    sync_clocks(&mut sim);
    let left: BTreeSet<NodeId> = (0..3).map(NodeId).collect();
    let right: BTreeSet<NodeId> = (3..6).map(NodeId).collect();
    let split = Partition::new(vec![left.clone(), right.clone()]);
    sim.net_partition = split.clone();
    sim.set_node_partition(split);
    let key = "set:split";
    let [x, y, z] = ["x", "y", "z"].map(|s| Element::Str(s.into()));
    let write = |sim: &mut Sim, id: u32, op: SetOp| sim.set_write(NodeId(id), key, op).unwrap();

    sim.step(10, false);
    let early = write(&mut sim, 0, SetOp::Create(Bias::AddWins));
    sim.step(10, false);
    let late = write(&mut sim, 3, SetOp::Create(Bias::RemoveWins));
    assert!(early < late);
    sim.step(200, false);
    // One millisecond, two nodes across the cut: an insert and a remove.
    sim.step(10, false);
    let added = write(&mut sim, 1, SetOp::Insert(vec![x.clone()]));
    let removed = write(&mut sim, 4, SetOp::Remove(vec![x.clone()]));
    assert_eq!(added, removed, "one millisecond, one stamp");
    // The same inside the right half.
    sim.step(10, false);
    let added = write(&mut sim, 3, SetOp::Insert(vec![y.clone()]));
    let removed = write(&mut sim, 5, SetOp::Remove(vec![y.clone()]));
    assert_eq!(added, removed);
    // z is decided by time: the left's remove comes after the right's insert.
    sim.step(10, false);
    write(&mut sim, 4, SetOp::Insert(vec![z.clone()]));
    sim.step(10, false);
    write(&mut sim, 2, SetOp::Remove(vec![z.clone()]));
    for _ in 0..50 {
        sim.step(10, false);
    }

    for id in &left {
        let set = sim.node(*id).unwrap().read(key).and_then(Value::as_set);
        assert_eq!(set.unwrap().bias(), Bias::AddWins, "{id}");
        assert_eq!(
            members(&mut sim, *id, key),
            BTreeSet::from([x.clone()]),
            "{id}"
        );
    }
    for id in &right {
        let set = sim.node(*id).unwrap().read(key).and_then(Value::as_set);
        assert_eq!(set.unwrap().bias(), Bias::RemoveWins, "{id}");
        // y's tie goes to the remove; x was only removed here.
        assert_eq!(
            members(&mut sim, *id, key),
            BTreeSet::from([z.clone()]),
            "{id}"
        );
    }

    let took = sim.settle_down(10_000);
    eprintln!("the halves agreed {took} ms after the cut healed");
    for id in sim.ids() {
        let set = sim.node(id).unwrap().read(key).and_then(Value::as_set);
        assert_eq!(set.unwrap().created(), Some((early, Bias::AddWins)));
        assert_eq!(
            members(&mut sim, id, key),
            BTreeSet::from([x.clone(), y.clone()]),
            "{id}"
        );
    }
}

#[test]
fn a_restarted_node_stamps_writes_after_the_stamps_it_stored() {
    // Node 1's clock runs 5 s ahead (or a browser replica pushed stamps
    // within the allowed drift). Node 0 stores its adds of x and y, so its
    // clock moves past them. Node 2, which never restarted, removes y: the
    // remove wins. Node 0 crashes and restarts, and a client removes x
    // there, after seeing x: the node acknowledges the remove, but stamps it
    // from its wall clock alone, before the add it restored, so x stays.
    let mut sim = Sim::new(41, config(3), Faults::calm());
    sync_clocks(&mut sim);
    sim.slots.get_mut(&NodeId(1)).unwrap().skew = 5_000;
    let key = "set:clock";
    let [x, y] = ["x", "y"].map(|s| Element::Str(s.into()));
    sim.set_write(NodeId(1), key, SetOp::Insert(vec![x.clone(), y.clone()]))
        .unwrap();
    for _ in 0..20 {
        sim.step(10, false);
    }
    let both = BTreeSet::from([x.clone(), y.clone()]);
    assert_eq!(members(&mut sim, NodeId(0), key), both);
    sim.set_write(NodeId(2), key, SetOp::Remove(vec![y.clone()]))
        .unwrap();
    sim.crash(NodeId(0), 0);
    sim.restart(NodeId(0));
    assert_eq!(
        members(&mut sim, NodeId(0), key),
        both,
        "restored from disk"
    );
    sim.set_write(NodeId(0), key, SetOp::Remove(vec![x.clone()]))
        .unwrap();
    assert_eq!(
        sim.stats.stale_after_restart, 0,
        "node 0 stamped a write before a stamp it had stored"
    );
    assert!(
        !members(&mut sim, NodeId(0), key).contains(&x),
        "an acknowledged remove of a present element has no effect"
    );
}

// ---- registers: focused scenarios -------------------------------------------

impl Sim {
    /// Runs `ms` of virtual time, with no client writes.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.step(10, false);
        }
    }

    /// Every stored row of `key`, at any node.
    fn rows(&self, key: &str) -> Vec<(NodeId, String)> {
        self.slots
            .iter()
            .filter_map(|(id, slot)| slot.disk.get(key).map(|v| (*id, show(key, Some(v)))))
            .collect()
    }

    /// The replicas of `key` in node 0's view.
    fn replicas_of(&self, key: &str) -> Vec<NodeId> {
        self.node(NodeId(0)).expect("up").replicas(key)
    }

    /// The context a client reads at `id`.
    fn context_at(&mut self, id: NodeId, key: &str) -> CausalContext {
        let value = self.read(id, key);
        let reg = value.as_ref().and_then(Value::as_register);
        reg.map(|r| r.context().clone()).unwrap_or_default()
    }
}

/// The first register key whose replicas among `n` initial nodes satisfy `pick`.
fn kv_key_where(n: u32, pick: impl Fn(&[NodeId]) -> bool) -> String {
    let members = Membership::initial(n);
    (0..)
        .map(kv_key)
        .find(|k| pick(&placement().replicas(k, &members)))
        .expect("some key")
}

#[test]
fn a_delete_with_an_empty_context_stores_nothing() {
    // A client that read nothing deletes: that deletes nothing, and must not
    // leave a row either (an empty register is no tombstone, so no
    // collection would ever take it away).
    let mut sim = Sim::new(51, config(4), Faults::calm());
    let key = kv_key(0);
    let at = sim.replicas_of(&key)[0];
    assert!(sim.kv_request(at, &key, Ctx::Blind, true));
    sim.run(2_000);
    assert_eq!(sim.rows(&key), vec![], "an empty delete left rows");
}

#[test]
fn a_blind_write_at_a_node_that_handed_the_key_off_keeps_the_earlier_write() {
    // A node that is no replica takes a blind write, hands the key to its
    // replicas and forgets it; a second blind write there must leave the
    // first as a sibling: no client saw it.
    let mut sim = Sim::new(53, config(4), Faults::calm());
    let outsider = NodeId(3);
    let key = kv_key_where(4, |r| !r.contains(&outsider));
    assert!(sim.kv_request(outsider, &key, Ctx::Blind, false));
    sim.run(2_000);
    assert!(sim.slots[&outsider].disk.get(&key).is_none(), "handed off");
    assert!(sim.kv_request(outsider, &key, Ctx::Blind, false));
    sim.settle_down(10_000);
    let held = sim.read(sim.replicas_of(&key)[0], &key);
    let siblings = held
        .as_ref()
        .and_then(Value::as_register)
        .map(|r| r.siblings().count());
    assert_eq!(siblings, Some(2), "{}", show(&key, held.as_ref()));
}

impl Sim {
    /// Every replica of `key` holds its tombstone: no value, a context.
    fn assert_tombstones(&self, key: &str) {
        for r in self.replicas_of(key) {
            let held = self.slots[&r].disk.get(key);
            let reg = held.and_then(Value::as_register);
            assert!(
                reg.is_some_and(|r| r.is_empty() && !r.context().is_empty()),
                "{r} holds no tombstone: {}",
                show(key, held)
            );
        }
    }

    /// Runs until no node holds a row of `key`: its tombstone collected.
    fn run_until_collected(&mut self, key: &str) {
        let start = self.now;
        while !self.rows(key).is_empty() {
            assert!(
                self.now - start < 20_000,
                "{key} not collected: {:?}",
                self.rows(key)
            );
            self.step(10, false);
        }
    }
}

#[test]
fn a_write_after_a_collected_delete_never_reuses_a_dot() {
    // Replica a writes v1 and v2; a client reads after v1 only; everything
    // is deleted and the tombstone collected. The old client writes through
    // b with what it read, which names a's first dot and so tells a part of
    // its own dots back to a, which holds no row; then a writes blind: no
    // write may take the dot v2 had (every dot is checked new).
    let mut sim = Sim::new(54, config(4), Faults::calm());
    let key = kv_key(0);
    let replicas = sim.replicas_of(&key);
    let (a, b) = (replicas[0], replicas[1]);
    assert!(sim.kv_request(a, &key, Ctx::Blind, false));
    sim.run(500);
    let saw_v1 = sim.context_at(a, &key);
    assert!(sim.kv_request(a, &key, Ctx::Read, false));
    sim.run(500);
    assert!(sim.kv_request(a, &key, Ctx::Read, true));
    sim.run(500);
    sim.assert_tombstones(&key);
    sim.run_until_collected(&key);
    assert!(sim.kv_request(b, &key, Ctx::Given(saw_v1), false));
    sim.run(500);
    assert!(sim.kv_request(a, &key, Ctx::Blind, false));
    sim.settle_down(10_000);
}

#[test]
fn a_late_copy_of_a_deleted_register_does_not_bring_it_back() {
    // The network delivers a copy of a gossip message after the value it
    // carries was deleted everywhere, as late as a message can be: the
    // tombstone shadows it, and is collected all the same.
    let mut sim = Sim::new(55, config(4), Faults::calm());
    let key = kv_key(0);
    let replicas = sim.replicas_of(&key);
    let (a, b) = (replicas[0], replicas[1]);
    assert!(sim.kv_request(a, &key, Ctx::Blind, false));
    sim.run(500);
    let old = sim.read(a, &key).expect("written");
    assert!(sim.kv_request(a, &key, Ctx::Read, true));
    sim.run(500);
    sim.assert_tombstones(&key);
    let late = Message::Gossip {
        members: None,
        states: vec![(key.clone(), old)],
        want: Vec::new(),
    };
    // Sent before the delete reached b, it arrives the longest delay later.
    let packet = Packet {
        from: a,
        to: b,
        message: late,
    };
    sim.seq += 1;
    sim.net.insert((sim.now + 2_000, sim.seq), packet);
    sim.run_until_collected(&key);
    // The oracle: the deleted value must not be live again.
    sim.settle_down(10_000);
    assert_eq!(sim.rows(&key), Vec::new());
}

/// Node `a` writes `key`; `b` (another replica) deletes what it then
/// reads; returns the state `a` gossiped first.
fn written_then_deleted(sim: &mut Sim, key: &str, a: NodeId, b: NodeId) -> Value {
    assert!(sim.kv_request(a, key, Ctx::Blind, false));
    let old = sim.read(a, key).expect("written");
    let seen = old.as_register().expect("a register").context().clone();
    sim.run(500);
    assert!(sim.kv_request(b, key, Ctx::Given(seen), true));
    sim.run(500);
    old
}

#[test]
fn a_send_that_fails_after_the_collection_is_not_sent_again() {
    // A gossip call of a's, carrying the old value, fails only after every
    // node agreed and the tombstone was collected (a call can hang that
    // long): a must not buffer it again, or b would get the value back.
    let mut sim = Sim::new(60, config(4), Faults::calm());
    let key = kv_key(0);
    let replicas = sim.replicas_of(&key);
    let (a, b) = (replicas[1], replicas[2]);
    let old = written_then_deleted(&mut sim, &key, a, b);
    sim.run_until_collected(&key);
    let failed = Message::Gossip {
        members: None,
        states: vec![(key.clone(), old)],
        want: Vec::new(),
    };
    sim.node_mut(a).expect("up").send_failed(b, failed);
    sim.settle(a);
    sim.settle_down(10_000);
    assert_eq!(sim.rows(&key), Vec::new());
}

#[test]
fn a_delta_buffered_across_a_one_sided_cut_does_not_outlive_the_collection() {
    // a cannot reach b (only a's side is cut), so its write's delta waits
    // in its buffer for b; every node, a included, reaches the collector.
    // When a agrees the key is a tombstone, the buffered delta must go:
    // sent after the collection, it would bring the value back at b.
    let mut sim = Sim::new(61, config(4), Faults::calm());
    let key = kv_key(0);
    let replicas = sim.replicas_of(&key);
    let (a, b) = (replicas[1], replicas[2]);
    let others: BTreeSet<NodeId> = sim.ids().into_iter().filter(|n| *n != b).collect();
    sim.node_mut(a)
        .expect("up")
        .set_partition(Partition::new(vec![others]));
    sim.settle(a);
    written_then_deleted(&mut sim, &key, a, b);
    // The collector's Forget reaches b, and reaches a only after a's cut
    // heals and it has flushed its buffers.
    let mut held = Vec::new();
    let mut hold_forgets = |sim: &mut Sim| {
        let late: Vec<(u64, u64)> = sim
            .net
            .iter()
            .filter(|(_, p)| p.to == a && matches!(p.message, Message::Forget { .. }))
            .map(|(k, _)| *k)
            .collect();
        held.extend(late.into_iter().filter_map(|k| sim.net.remove(&k)));
    };
    let start = sim.now;
    while sim.slots[&b].disk.get(&key).is_some() {
        assert!(sim.now - start < 20_000, "b never collected {key}");
        sim.step(1, false);
        hold_forgets(&mut sim);
    }
    sim.node_mut(a)
        .expect("up")
        .set_partition(Partition::default());
    sim.settle(a);
    for _ in 0..300 {
        sim.step(1, false);
        hold_forgets(&mut sim);
    }
    for p in held {
        sim.seq += 1;
        sim.net.insert((sim.now + 1, sim.seq), p);
    }
    sim.settle_down(10_000);
    assert_eq!(sim.rows(&key), Vec::new());
}

#[test]
fn a_node_still_handing_a_key_off_holds_its_collection_back() {
    // x drains while it cannot reach y (only x's side is cut), the key's
    // new replica, so x keeps the key's old value in a leaf it is handing
    // off. The key is deleted; x is no replica and hears nothing of it. It
    // must not agree to the collection: once the cut heals, its transfer
    // would bring the old value to replicas that collected the tombstone.
    let mut sim = Sim::new(62, config(4), Faults::calm());
    let x = NodeId(3);
    let mut drained = Membership::initial(4);
    drained.set(x, Status::Draining { heir: NodeId(0) });
    let key = (0..)
        .map(kv_key)
        .find(|k| {
            let before = placement().replicas(k, &Membership::initial(4));
            let after = placement().replicas(k, &drained);
            before.contains(&x) && before.contains(&after[0])
        })
        .expect("some key");
    let after = placement().replicas(&key, &drained);
    let before = sim.replicas_of(&key);
    let y = *after
        .iter()
        .find(|n| !before.contains(n))
        .expect("a new replica");
    let collector = after[0];
    assert!(sim.kv_request(x, &key, Ctx::Blind, false));
    sim.run(500);
    let others: BTreeSet<NodeId> = sim.ids().into_iter().filter(|n| *n != y).collect();
    sim.node_mut(x)
        .expect("up")
        .set_partition(Partition::new(vec![others]));
    sim.settle(x);
    sim.admin.current = Some((x, sim.now));
    sim.run(500);
    assert!(sim.kv_request(collector, &key, Ctx::Read, true));
    sim.run(15_000);
    assert!(
        sim.slots[&x].disk.get(&key).is_some(),
        "x still holds the old value"
    );
    assert!(
        !sim.rows(&key).iter().all(|(n, _)| *n == x),
        "collected while x still hands the key off: {:?}",
        sim.rows(&key)
    );
    sim.node_mut(x)
        .expect("up")
        .set_partition(Partition::default());
    sim.settle(x);
    sim.settle_down(20_000);
    assert_eq!(sim.rows(&key), Vec::new());
}

#[test]
fn a_collector_that_restarts_finds_its_tombstones_again() {
    // The first replica holds tombstones, restarts (it loads keys lazily,
    // so it knows them only from its leaves' counts) and collects them.
    let mut sim = Sim::new(58, config(4), Faults::calm());
    // More tombstone leaves per collector than it loads at once.
    let keys: Vec<String> = (0..40).map(kv_key).collect();
    for key in &keys {
        let first = sim.replicas_of(key)[0];
        assert!(sim.kv_request(first, key, Ctx::Blind, false));
    }
    sim.run(500);
    for key in &keys {
        let first = sim.replicas_of(key)[0];
        assert!(sim.kv_request(first, key, Ctx::Read, true));
    }
    sim.run(300);
    for id in sim.ids() {
        sim.crash(id, 0);
        sim.restart(id);
    }
    for key in &keys {
        sim.assert_tombstones(key);
    }
    for key in &keys {
        sim.run_until_collected(key);
    }
    sim.settle_down(10_000);
}

#[test]
fn a_node_that_does_not_answer_holds_collection_back() {
    // While one node is down, nobody collects: it could hold the old value.
    let mut sim = Sim::new(59, config(4), Faults::calm());
    let key = kv_key(0);
    let first = sim.replicas_of(&key)[0];
    assert!(sim.kv_request(first, &key, Ctx::Blind, false));
    sim.run(500);
    assert!(sim.kv_request(first, &key, Ctx::Read, true));
    sim.run(300);
    let down = *sim.ids().iter().find(|id| **id != first).expect("another");
    sim.crash(down, u64::MAX);
    sim.run(15_000);
    assert!(
        !sim.rows(&key).is_empty(),
        "collected while {down} was down"
    );
    sim.restart(down);
    sim.run_until_collected(&key);
    sim.settle_down(10_000);
}

#[test]
fn a_drained_node_keeps_no_register_row() {
    // A replica drains; after it has handed the key off, a gossip message
    // sent while it was still a replica reaches it. It must not end
    // retired holding a copy that nobody will collect or hand off.
    let mut sim = Sim::new(56, config(4), Faults::calm());
    let leaving = NodeId(3);
    let key = kv_key_where(4, |r| r.contains(&leaving));
    let peer = *sim
        .replicas_of(&key)
        .iter()
        .find(|r| **r != leaving)
        .expect("another replica");
    assert!(sim.kv_request(peer, &key, Ctx::Blind, false));
    sim.run(500);
    let state = sim.read(peer, &key).expect("written");
    sim.admin.current = Some((leaving, sim.now));
    let mut late = Some(Message::Gossip {
        members: None,
        states: vec![(key.clone(), state)],
        want: Vec::new(),
    });
    let start = sim.now;
    while !matches!(sim.own_status(leaving), Status::Retired { .. }) {
        assert!(sim.now - start < 10_000, "no retirement");
        sim.step(1, false);
        let draining = matches!(sim.own_status(leaving), Status::Draining { .. });
        if draining && sim.slots[&leaving].disk.get(&key).is_none() {
            if let Some(message) = late.take() {
                sim.send(peer, leaving, message);
            }
        }
    }
    assert!(late.is_none(), "the late message was sent");
    sim.settle_down(10_000);
    let kept: Vec<String> = sim.slots[&leaving]
        .disk
        .store
        .states()
        .filter(|(k, _)| is_kv(k))
        .map(|(k, v)| show(k, Some(v)))
        .collect();
    assert_eq!(
        kept,
        Vec::<String>::new(),
        "{leaving} retired holding registers"
    );
}

#[test]
fn a_node_that_missed_the_news_of_its_addition_learns_it() {
    // The newcomer is down while every node learns of it and tells it (the
    // messages vanish without an error), then comes back knowing nothing,
    // and the membership changes no more. Anti-entropy must bring it the
    // membership that names it: until then it only listens.
    let faults = Faults {
        report_failures: false,
        ..Faults::calm()
    };
    let mut sim = Sim::new(57, config(4), faults);
    for i in 0..20u32 {
        sim.step(10, false);
        assert!(sim.write(NodeId(i % 4), HOME, 1));
    }
    sim.admin.add_at = vec![sim.now];
    sim.step(1, false);
    let newcomer = NodeId(4);
    assert_eq!(sim.admin.added, vec![newcomer]);
    sim.crash(newcomer, u64::MAX);
    sim.run(2_000);
    let took = sim.settle_down(10_000);
    eprintln!("the newcomer learnt it was added {took} ms after it came back");
}
