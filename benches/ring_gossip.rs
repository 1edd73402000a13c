//! Gossip bytes per register write at steady state, R = 3: our cluster
//! against the seed's whole-state gossip and against a lower bound, in one
//! seeded, deterministic run on one write workload.
//!
//! Run with `cargo bench --bench ring_gossip` (or `scripts/bench-ring.sh`).
//! `BENCH_RING_SEED=<n>` picks another seed (default 42).
//!
//! # Workload
//!
//! Virtual time in milliseconds (from a Unix-like epoch, so timestamps have
//! their real size). A write every 5 ms (200 writes/s) to one of 2,000
//! `kv:` keys drawn uniformly, with a 100-byte random text payload, at one
//! of the key's 3 replicas drawn uniformly from the placement
//! (`ByKind::new(3, 64)` over the 8 initial members). The write is a
//! read-modify-write at that replica: the new value replaces the context
//! the replica holds (what a client that just read there would send), so
//! registers keep one sibling except for writes that race gossip. 60 s of
//! warm-up (every key is written about six times) are excluded; the next
//! 120 s are measured; then writes stop, the cluster settles for 30 s and
//! every replica of every key must hold the same state and no other node
//! any (a check of the simulation, not measured).
//!
//! # (1) Ours
//!
//! Eight `Node<Value, ByKind>`, gossip every 250 ms, anti-entropy every
//! 2,000 ms, driven like `src/edge/host.rs` drives a node: after every event
//! the node's effects are performed and its one alarm is set to
//! `max(next_deadline(), now + 5 ms)` unless an earlier alarm is already
//! set; the first alarms are staggered over the first gossip interval.
//! Every `Effect::Send` is delivered, none lost, after a seeded latency of
//! 2–8 ms (so messages can cross and arrive reordered). The figure is the
//! sum of `codec::encode(&message).len()` over every `Effect::Send` emitted
//! during the measured 120 s (delta gossip, digests, summaries and the
//! anti-entropy repairs alike), divided by the writes made in those 120 s.
//!
//! # (2) Seed
//!
//! The seed (`shared/seeds/ring.md`) gossiped each node's whole register map
//! to its peers. Modelled generously, on the same run: every 250 ms of the
//! measured window, every node A sends each other node B one frame,
//! `codec::encode(&Vec<(Key, Value)>)`, holding every register A holds of
//! which both A and B are replicas, as A holds it at that moment: all
//! shared registers on every gossip round, but only to replicas (the seed
//! sent to all nodes), and no framing besides the codec's. A pair that
//! shares no register sends nothing. The frame sizes are summed from each
//! node's per-key encoded sizes, kept up to date from its `Effect::Store`s;
//! every 40th round is also encoded in full and must match exactly.
//!
//! # (3) Lower bound
//!
//! Each measured write's delta (the `Value` the write returns, with its
//! causal context) sent exactly once to each of the other R - 1 replicas:
//! `(R - 1) * codec::encode(&(key, delta)).len()`, no batching, no
//! anti-entropy, no framing beyond the codec's envelope.
//!
//! # Tombstone collection
//!
//! After the check, every 10th key is deleted at its first replica with the
//! context held there, and the cluster runs (no other writes) until every
//! tombstone is collected, with the default `tombstone_grace_ms`. The figure
//! is the bytes of the collection messages (`Reap`, `Reaped`, `Forget`) per
//! tombstone, against the storage it frees: the tombstone's encoded size
//! with its key at each of its R replicas.
//!
//! # Output
//!
//! stdout, one line each: the workload, then
//! `ring gossip: ours X B/write, seed Y B/write (ratio X/Y), lower bound Z B/write (ratio X/Z)`,
//! then our bytes by message kind, the anti-entropy counts, and the
//! registers' size at the end. Progress goes to stderr.

use edge_crdt::cluster::{ByKind, Config, Effect, Membership, Message, Node, Placement};
use edge_crdt::codec;
use edge_crdt::crdt::{Kind, MvRegister, Stamp, TooManySiblings, Value};
use edge_crdt::NodeId;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

const NODES: u32 = 8;
const REPLICAS: usize = 3;
const VNODES: u32 = 64;
const GOSSIP_MS: u64 = 250;
const ANTI_ENTROPY_MS: u64 = 2_000;
const WARMUP_MS: u64 = 60_000;
const MEASURE_MS: u64 = 120_000;
const SETTLE_MS: u64 = 30_000;
const WRITE_EVERY_MS: u64 = 5;
const KEYS: usize = 2_000;
const VALUE_BYTES: usize = 100;
/// Network latency, uniform in this range (inclusive), in milliseconds.
const LATENCY_MS: (u64, u64) = (2, 8);
/// The host sets an alarm no sooner than this after the current event.
const ALARM_FLOOR_MS: u64 = 5;
/// Virtual time 0 on the wall clock, in Unix milliseconds.
const EPOCH_MS: u64 = 1_700_000_000_000;
/// One seed round in this many is encoded in full to check the sums.
const SEED_CHECK_EVERY: u64 = 40;
const PROGRESS_EVERY_MS: u64 = 30_000;
const DEFAULT_SEED: u64 = 42;

/// SplitMix64: a small seeded generator, enough for a workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn text(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
        (0..len)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

enum Event {
    Write,
    Tick(usize),
    Deliver {
        from: NodeId,
        to: NodeId,
        message: Message<Value>,
    },
    SeedRound,
    Progress,
}

/// Every how many keys one is deleted for the collection figure.
const DELETE_EVERY: usize = 10;
/// The longest the collection may take, in virtual time.
const COLLECT_LIMIT_MS: u64 = 600_000;

/// Frames, bytes and entries (states or key digests) of one message kind.
#[derive(Clone, Copy, Default)]
struct Tally {
    frames: u64,
    bytes: u64,
    entries: u64,
}

impl Tally {
    fn add(&mut self, bytes: usize, entries: usize) {
        self.frames += 1;
        self.bytes += bytes as u64;
        self.entries += entries as u64;
    }
}

/// Our traffic by kind: delta gossip (flushes), digests, summaries, and
/// anti-entropy repairs (the `Gossip` a summary or a `want` triggers).
const KINDS: [&str; 6] = [
    "delta gossip",
    "root digest",
    "leaf digests",
    "key digests",
    "repair",
    "other",
];

struct Sim {
    nodes: Vec<Node<Value, ByKind>>,
    keys: Vec<String>,
    key_index: HashMap<String, usize>,
    /// The replicas of each key, in the initial membership.
    replicas: Vec<Vec<NodeId>>,
    /// `shared[a][b]`: the keys of which both `a` and `b` are replicas.
    shared: Vec<Vec<Vec<usize>>>,
    /// `sizes[n][k]`: the postcard size of `(key, state)` at node `n`, 0 if absent.
    sizes: Vec<Vec<u32>>,
    alarms: Vec<Option<u64>>,
    queue: BTreeMap<(u64, u64), Event>,
    seq: u64,
    workload: Rng,
    network: Rng,
    measure_from: u64,
    measure_to: u64,
    writes: u64,
    ours: [Tally; KINDS.len()],
    seed: Tally,
    seed_rounds: u64,
    seed_checked: u64,
    lower_bytes: u64,
    /// From when collection messages are counted, and their tally.
    collect_from: u64,
    collection: Tally,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let config = Config {
            initial_nodes: NODES,
            gossip_interval_ms: GOSSIP_MS,
            anti_entropy_interval_ms: ANTI_ENTROPY_MS,
            ..Config::default()
        };
        let nodes: Vec<Node<Value, ByKind>> = (0..NODES)
            .map(|i| Node::new(NodeId(i), config.clone(), ByKind::new(REPLICAS, VNODES)))
            .collect();
        let placement = ByKind::new(REPLICAS, VNODES);
        let members = Membership::initial(NODES);
        let keys: Vec<String> = (0..KEYS)
            .map(|i| Kind::Register.key(&format!("item-{i:04}")))
            .collect();
        let key_index = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        let replicas: Vec<Vec<NodeId>> = keys
            .iter()
            .map(|k| placement.replicas(k, &members))
            .collect();
        let n = NODES as usize;
        let mut shared = vec![vec![Vec::new(); n]; n];
        for (k, r) in replicas.iter().enumerate() {
            assert_eq!(r.len(), REPLICAS, "{} has {r:?}", keys[k]);
            for a in r {
                for b in r {
                    if a != b {
                        shared[a.0 as usize][b.0 as usize].push(k);
                    }
                }
            }
        }
        let start = EPOCH_MS;
        let measure_from = start + WARMUP_MS;
        let mut sim = Sim {
            nodes,
            keys,
            key_index,
            replicas,
            shared,
            sizes: vec![vec![0; KEYS]; n],
            alarms: vec![None; n],
            queue: BTreeMap::new(),
            seq: 0,
            workload: Rng(seed),
            network: Rng(seed ^ 0x6e65_7477_6f72_6b00),
            measure_from,
            measure_to: measure_from + MEASURE_MS,
            writes: 0,
            ours: [Tally::default(); KINDS.len()],
            seed: Tally::default(),
            seed_rounds: 0,
            seed_checked: 0,
            lower_bytes: 0,
            collect_from: u64::MAX,
            collection: Tally::default(),
        };
        for i in 0..n {
            let at = start + i as u64 * GOSSIP_MS / u64::from(NODES);
            sim.alarms[i] = Some(at);
            sim.schedule(at, Event::Tick(i));
        }
        sim.schedule(start, Event::Write);
        sim.schedule(measure_from, Event::SeedRound);
        sim.schedule(start + PROGRESS_EVERY_MS, Event::Progress);
        sim
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn measuring(&self, now: u64) -> bool {
        (self.measure_from..self.measure_to).contains(&now)
    }

    /// Runs every event up to `until`.
    fn run(&mut self, until: u64, wall: Instant) {
        while let Some(entry) = self.queue.first_entry() {
            let (now, _) = *entry.key();
            if now > until {
                break;
            }
            match entry.remove() {
                Event::Write => self.write(now),
                Event::Tick(n) => {
                    if self.alarms[n] == Some(now) {
                        self.alarms[n] = None;
                        self.nodes[n].tick(now);
                        self.settle(n, now, true);
                    }
                }
                Event::Deliver { from, to, message } => {
                    let n = to.0 as usize;
                    self.nodes[n].receive(from, message, now);
                    self.settle(n, now, false);
                }
                Event::SeedRound => self.seed_round(now),
                Event::Progress => {
                    let t = now - EPOCH_MS;
                    let phase = if now < self.measure_from {
                        "warm-up"
                    } else if now < self.measure_to {
                        "measuring"
                    } else if now < self.collect_from {
                        "settling"
                    } else {
                        "collecting tombstones"
                    };
                    eprintln!(
                        "ring gossip: {:>3} s virtual ({phase}), {:.1} s wall",
                        t / 1_000,
                        wall.elapsed().as_secs_f64()
                    );
                    self.schedule(now + PROGRESS_EVERY_MS, Event::Progress);
                }
            }
        }
    }

    /// A client write at a random replica of a random key.
    fn write(&mut self, now: u64) {
        let k = self.workload.below(KEYS as u64) as usize;
        let at = self.replicas[k][self.workload.below(REPLICAS as u64) as usize];
        let payload = edge_crdt::crdt::Payload::Text(self.workload.text(VALUE_BYTES));
        let key = self.keys[k].clone();
        let n = at.0 as usize;
        let mut delta = None;
        self.nodes[n]
            .write(&key, now, |v: &Value, stamp: Stamp| {
                let empty = MvRegister::default();
                let reg = v.as_register().unwrap_or(&empty);
                let seen = reg.context().clone();
                reg.admits(&seen)?;
                let d = Value::Register(reg.write(stamp, &seen, payload));
                delta = Some(d.clone());
                Ok::<_, TooManySiblings>(d)
            })
            .expect("a write replacing the context it read is admitted");
        if self.measuring(now) {
            self.writes += 1;
            let delta = delta.expect("the write made a delta");
            self.lower_bytes += ((REPLICAS - 1) * codec::encode(&(&key, &delta)).len()) as u64;
        }
        self.settle(n, now, false);
        if now + WRITE_EVERY_MS < self.measure_to {
            self.schedule(now + WRITE_EVERY_MS, Event::Write);
        }
    }

    /// Performs node `n`'s effects as the host does, then sets its alarm.
    fn settle(&mut self, n: usize, now: u64, ticked: bool) {
        let from = self.nodes[n].id();
        for effect in self.nodes[n].take_effects() {
            match effect {
                Effect::Send { to, message } => {
                    if now >= self.collect_from
                        && matches!(
                            message,
                            Message::Reap { .. } | Message::Reaped { .. } | Message::Forget { .. }
                        )
                    {
                        self.collection.add(codec::encode(&message).len(), 0);
                    }
                    if self.measuring(now) {
                        let (kind, entries) = match &message {
                            Message::Gossip { states, .. } if ticked => (0, states.len()),
                            Message::Gossip { states, want, .. } => (4, states.len() + want.len()),
                            Message::Digest { .. } => (1, 0),
                            Message::Summary { leaves, .. } => (2, leaves.len()),
                            Message::Keys { leaves } => {
                                (3, leaves.iter().map(|(_, keys)| keys.len()).sum())
                            }
                            _ => (5, 0),
                        };
                        self.ours[kind].add(codec::encode(&message).len(), entries);
                    }
                    let (lo, hi) = LATENCY_MS;
                    let at = now + lo + self.network.below(hi - lo + 1);
                    self.schedule(at, Event::Deliver { from, to, message });
                }
                Effect::Store { key, state, .. } => {
                    let k = self.key_index[&key];
                    // The envelope's version byte is the frame's, not the entry's.
                    self.sizes[n][k] = (codec::encode(&(&key, &state)).len() - 1) as u32;
                }
                _ => {}
            }
        }
        let Some(at) = self.nodes[n].next_deadline() else {
            return;
        };
        let at = at.max(now + ALARM_FLOOR_MS);
        if self.alarms[n].is_some_and(|set| set <= at) {
            return;
        }
        self.alarms[n] = Some(at);
        self.schedule(at, Event::Tick(n));
    }

    /// The seed's gossip round: every node sends each other replica all the
    /// registers the two share.
    fn seed_round(&mut self, now: u64) {
        let check = self.seed_rounds.is_multiple_of(SEED_CHECK_EVERY);
        let n = NODES as usize;
        for a in 0..n {
            for b in (0..n).filter(|b| *b != a) {
                let held = self.shared[a][b].iter().map(|k| self.sizes[a][*k]);
                let entries = held.clone().filter(|s| *s > 0).count();
                if entries == 0 {
                    continue;
                }
                let sum: u64 = held.map(u64::from).sum();
                let bytes = 1 + varint_len(entries) + sum as usize;
                if check {
                    let frame: Vec<(String, Value)> = self.shared[a][b]
                        .iter()
                        .filter_map(|k| {
                            let key = &self.keys[*k];
                            self.nodes[a].read(key).map(|v| (key.clone(), v.clone()))
                        })
                        .collect();
                    assert_eq!(
                        codec::encode(&frame).len(),
                        bytes,
                        "seed frame node-{a} -> node-{b}: summed size differs from the encoding"
                    );
                    self.seed_checked += 1;
                }
                self.seed.add(bytes, entries);
            }
        }
        self.seed_rounds += 1;
        if now + GOSSIP_MS < self.measure_to {
            self.schedule(now + GOSSIP_MS, Event::SeedRound);
        }
    }

    /// Deletes every `DELETE_EVERY`th key at its first replica; returns how
    /// many keys, and the storage their tombstones take at all replicas
    /// once the deletes have spread.
    fn delete_some(&mut self, now: u64, wall: Instant) -> (u64, u64) {
        self.collect_from = now;
        let doomed: Vec<usize> = (0..KEYS).step_by(DELETE_EVERY).collect();
        for k in &doomed {
            let n = self.replicas[*k][0].0 as usize;
            let key = self.keys[*k].clone();
            self.nodes[n]
                .write(&key, now, |v: &Value, _| {
                    let reg = v.as_register().cloned().unwrap_or_default();
                    Ok::<_, ()>(Value::Register(reg.delete(reg.context())))
                })
                .expect("a delete");
            self.settle(n, now, false);
        }
        self.run(now + 2 * GOSSIP_MS, wall);
        let stored: u64 = doomed
            .iter()
            .flat_map(|k| {
                self.replicas[*k]
                    .iter()
                    .map(|r| u64::from(self.sizes[r.0 as usize][*k]))
            })
            .sum();
        (doomed.len() as u64, stored)
    }

    /// Runs until no node holds a tombstone; returns when that was.
    fn run_until_collected(&mut self, from: u64, wall: Instant) -> u64 {
        let mut now = from;
        while self.nodes.iter().any(|n| n.tombstone_counts().0 > 0) {
            assert!(now - from < COLLECT_LIMIT_MS, "tombstones not collected");
            now += 1_000;
            self.run(now, wall);
        }
        now
    }

    /// Every replica of every key holds the same state; no other node any.
    fn check_converged(&self) {
        for (k, key) in self.keys.iter().enumerate() {
            let first = self.nodes[self.replicas[k][0].0 as usize].read(key);
            for node in &self.nodes {
                let held = node.read(key);
                if self.replicas[k].contains(&node.id()) {
                    assert_eq!(held, first, "{key}: replicas {:?} differ", self.replicas[k]);
                } else {
                    assert!(held.is_none(), "{key} held by {}, not a replica", node.id());
                }
            }
        }
    }

    /// The mean encoded size of `(key, register)` and the mean sibling count
    /// over every replica's copy.
    fn register_stats(&self) -> (f64, f64) {
        let (mut copies, mut bytes, mut siblings) = (0u64, 0u64, 0u64);
        for (k, key) in self.keys.iter().enumerate() {
            for r in &self.replicas[k] {
                let n = r.0 as usize;
                if let Some(reg) = self.nodes[n].read(key).and_then(Value::as_register) {
                    copies += 1;
                    bytes += u64::from(self.sizes[n][k]);
                    siblings += reg.siblings().count() as u64;
                }
            }
        }
        let copies = copies.max(1) as f64;
        (bytes as f64 / copies, siblings as f64 / copies)
    }
}

/// The length of a postcard (LEB128) varint of `n`.
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn main() {
    let seed = match std::env::var("BENCH_RING_SEED") {
        Ok(s) => s.parse().expect("BENCH_RING_SEED: an unsigned integer"),
        Err(_) => DEFAULT_SEED,
    };
    let wall = Instant::now();
    let mut sim = Sim::new(seed);
    let end = sim.measure_to + SETTLE_MS;
    sim.run(end, wall);
    sim.check_converged();

    let writes = sim.writes.max(1) as f64;
    let per_write = |bytes: u64| bytes as f64 / writes;
    let ours_bytes: u64 = sim.ours.iter().map(|t| t.bytes).sum();
    let ours = per_write(ours_bytes);
    let seed_bpw = per_write(sim.seed.bytes);
    let lower = per_write(sim.lower_bytes);
    println!(
        "ring gossip: workload: {NODES} nodes, R={REPLICAS}, gossip {GOSSIP_MS} ms, \
         anti-entropy {ANTI_ENTROPY_MS} ms, {} writes/s on {KEYS} kv: keys, \
         {VALUE_BYTES}-byte values, latency {}-{} ms, seed {seed}; {} writes measured \
         over {} s after {} s warm-up",
        1_000 / WRITE_EVERY_MS,
        LATENCY_MS.0,
        LATENCY_MS.1,
        sim.writes,
        MEASURE_MS / 1_000,
        WARMUP_MS / 1_000,
    );
    println!(
        "ring gossip: ours {ours:.1} B/write, seed {seed_bpw:.1} B/write (ratio {:.3}), \
         lower bound {lower:.1} B/write (ratio {:.2})",
        ours / seed_bpw,
        ours / lower,
    );
    let parts: Vec<String> = KINDS
        .iter()
        .zip(&sim.ours)
        .filter(|(_, t)| t.frames > 0)
        .map(|(name, t)| {
            format!(
                "{name} {:.1} B/write ({} frames, {} entries)",
                per_write(t.bytes),
                t.frames,
                t.entries
            )
        })
        .collect();
    println!("ring gossip: ours by message: {}", parts.join(", "));
    let [_, digests, summaries, keys, repairs, _] = sim.ours;
    println!(
        "ring gossip: anti-entropy: {} root digests, {} answered with leaf digests ({:.0}%), \
         {} key-digest frames for {} keys, {} repair frames carrying {} states or wanted keys",
        digests.frames,
        summaries.frames,
        100.0 * summaries.frames as f64 / digests.frames.max(1) as f64,
        keys.frames,
        keys.entries,
        repairs.frames,
        repairs.entries,
    );
    let (mean_bytes, mean_siblings) = sim.register_stats();
    println!(
        "ring gossip: seed model: {} frames in {} rounds, {:.0} registers per frame \
         ({} frames checked against a full encoding); registers at the end: \
         {mean_bytes:.1} B encoded with their key, {mean_siblings:.3} siblings",
        sim.seed.frames,
        sim.seed_rounds,
        sim.seed.entries as f64 / sim.seed.frames.max(1) as f64,
        sim.seed_checked,
    );
    let deleted_at = end;
    let (deleted, freed) = sim.delete_some(deleted_at, wall);
    let collected_at = sim.run_until_collected(deleted_at, wall);
    let collected: u64 = sim.nodes.iter().map(|n| n.tombstone_counts().1).sum();
    assert_eq!(collected, deleted, "one collection per deleted key");
    for (k, key) in sim.keys.iter().enumerate().step_by(DELETE_EVERY) {
        assert!(
            sim.replicas[k]
                .iter()
                .all(|r| sim.nodes[r.0 as usize].read(key).is_none()),
            "{key} still held"
        );
    }
    let cost = sim.collection.bytes as f64 / deleted as f64;
    let gain = freed as f64 / deleted as f64;
    println!(
        "ring gossip: tombstone collection: {deleted} tombstones collected {:.0} s after \
         the deletes (grace {} s); messages {cost:.1} B per tombstone ({} frames), storage \
         freed {gain:.1} B per tombstone over its {REPLICAS} replicas (ratio {:.2})",
        (collected_at - deleted_at) as f64 / 1_000.0,
        Config::default().tombstone_grace_ms / 1_000,
        sim.collection.frames,
        cost / gain,
    );
    eprintln!(
        "ring gossip: done in {:.1} s wall",
        wall.elapsed().as_secs_f64()
    );
}
