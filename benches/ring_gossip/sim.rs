//! The simulated cluster: `Engine<MemoryStore>` nodes on one virtual clock,
//! driven as the Durable Object host drives a node, with a seeded network
//! that delivers every frame after a latency.

use crate::seed::SeedModel;
use crate::tally::Traffic;
use crate::{Params, ALARM_FLOOR_MS, EPOCH_MS, GOSSIP_MS, LATENCY_MS, NODES, REPLICAS};
use edge_crdt::codec;
use edge_crdt::crdt::{Crdt, MvRegister, Payload};
use edge_crdt::engine::{Config, Engine, Frame, MemoryStore, Message, ObjectId, Outputs};
use edge_crdt::kinds::register::{Op, Outcome, Register};
use edge_crdt::kinds::{Call, Kind, CATALOG};
use edge_crdt::{NodeId, Rng};
use std::collections::BTreeMap;
use std::time::Instant;

/// Progress goes to stderr every this much virtual time.
const PROGRESS_EVERY_MS: u64 = 30_000;

enum Event {
    Write,
    Alarm(usize),
    Deliver { to: usize, frame: Vec<u8> },
    SeedRound,
    Progress,
}

pub struct Sim {
    pub params: Params,
    pub engines: Vec<Engine<MemoryStore>>,
    pub keys: Vec<ObjectId>,
    /// The replicas of each key, in the initial membership.
    pub replicas: Vec<Vec<NodeId>>,
    /// Whether each key was ever written.
    pub written: Vec<bool>,
    /// Each node's one alarm, as the host keeps it.
    alarms: Vec<Option<u64>>,
    queue: BTreeMap<(u64, u64), Event>,
    seq: u64,
    workload: Rng,
    network: Rng,
    pub traffic: Traffic,
    pub seed: SeedModel,
    wall: Instant,
}

impl Sim {
    pub fn new(params: Params) -> Self {
        let config = Config {
            initial_nodes: NODES,
            replicas: REPLICAS,
            ..Config::default()
        };
        let engines: Vec<Engine<MemoryStore>> = (0..NODES)
            .map(|i| {
                Engine::start(NodeId(i), config.clone(), CATALOG, MemoryStore::default())
                    .expect("starts")
            })
            .collect();
        let keys: Vec<ObjectId> = (0..params.keys)
            .map(|i| ObjectId::new("kv", &format!("item-{i:04}")).expect("a valid name"))
            .collect();
        let replicas: Vec<Vec<NodeId>> = keys.iter().map(|k| engines[0].node.replicas(k)).collect();
        assert!(replicas.iter().all(|r| r.len() == REPLICAS));
        let start = EPOCH_MS;
        let measure_from = start + params.warmup_ms;
        let seed = SeedModel::new(engines.len(), &keys, &replicas);
        let mut sim = Sim {
            alarms: vec![None; engines.len()],
            engines,
            written: vec![false; keys.len()],
            keys,
            replicas,
            queue: BTreeMap::new(),
            seq: 0,
            workload: Rng::new(params.seed),
            network: Rng::new(params.seed ^ 0x6e65_7477_6f72_6b00),
            traffic: Traffic::new(measure_from..measure_from + params.measure_ms),
            seed,
            wall: Instant::now(),
            params,
        };
        // The first alarms are staggered over the first gossip interval.
        for i in 0..sim.engines.len() {
            let at = start + i as u64 * GOSSIP_MS / u64::from(NODES);
            sim.alarms[i] = Some(at);
            sim.schedule(at, Event::Alarm(i));
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

    /// The end of the measured window.
    pub fn measure_to(&self) -> u64 {
        self.traffic.measure.end
    }

    /// Runs every event up to `until`.
    pub fn run(&mut self, until: u64) {
        while let Some(entry) = self.queue.first_entry() {
            let (now, _) = *entry.key();
            if now > until {
                break;
            }
            match entry.remove() {
                Event::Write => self.write(now),
                Event::Alarm(n) => {
                    if self.alarms[n] == Some(now) {
                        self.alarms[n] = None;
                        let out = self.engines[n].tick(now).expect("ticks");
                        self.perform(n, out, now, true);
                    }
                }
                Event::Deliver { to, frame } => {
                    let (_, out) = self.engines[to]
                        .receive_frame(&frame, now)
                        .expect("a frame the node takes");
                    let answers_delta = answers_delta(&frame);
                    self.perform(to, out, now, answers_delta);
                }
                Event::SeedRound => {
                    self.seed.round(&self.engines, &self.keys);
                    if now + GOSSIP_MS < self.measure_to() {
                        self.schedule(now + GOSSIP_MS, Event::SeedRound);
                    }
                }
                Event::Progress => self.progress(now),
            }
        }
    }

    fn progress(&mut self, now: u64) {
        let phase = if now < self.traffic.measure.start {
            "warm-up"
        } else if now < self.measure_to() {
            "measuring"
        } else if now < self.traffic.collect_from {
            "settling"
        } else {
            "collecting tombstones"
        };
        eprintln!(
            "ring gossip: {} keys: {:>3} s virtual ({phase}), {:.1} s wall",
            self.keys.len(),
            (now - EPOCH_MS) / 1_000,
            self.wall.elapsed().as_secs_f64()
        );
        self.schedule(now + PROGRESS_EVERY_MS, Event::Progress);
    }

    /// Runs a register operation on `object` at node `n`, as the node
    /// object runs a client's; the register after it.
    fn register(&mut self, n: usize, object: &ObjectId, op: Op, now: u64) -> MvRegister {
        let engine = &mut self.engines[n];
        let mut call = Call {
            engine,
            object: Some(object.clone()),
            now,
        };
        match Register::execute(op, &mut call).expect("a register operation") {
            Outcome::Register { state, .. } => state,
            Outcome::Page(_) => unreachable!("not a listing"),
        }
    }

    /// A client write at a random replica of a random key: a read, then a
    /// write with the read's context.
    fn write(&mut self, now: u64) {
        let k = self.workload.below(self.keys.len() as u64) as usize;
        let at = self.replicas[k][self.workload.below(REPLICAS as u64) as usize];
        let payload = Payload::Text(text(&mut self.workload, crate::VALUE_BYTES));
        let (n, object) = (at.0 as usize, self.keys[k].clone());
        let held = self.register(n, &object, Op::Read, now);
        let put = Op::Put {
            payload,
            context: held.context().clone(),
        };
        // The write replaces every value the replica held, so the register
        // after it is exactly the write's delta (its one value, and the
        // read's context with the new dot).
        let delta = self.register(n, &object, put, now);
        assert_eq!(
            delta.siblings().count(),
            1,
            "a read-modify-write leaves one value"
        );
        let bytes = postcard::to_allocvec(&delta).expect("encodes");
        self.traffic.wrote(now, &object, "", &bytes, REPLICAS - 1);
        self.written[k] = true;
        let out = self.engines[n].settle().expect("settles");
        self.perform(n, out, now, false);
        if now + crate::WRITE_EVERY_MS < self.measure_to() {
            self.schedule(now + crate::WRITE_EVERY_MS, Event::Write);
        }
    }

    /// Performs node `n`'s outputs as the host does: every message goes
    /// out as a frame, delivered after a latency; then the alarm is set.
    /// `delta`: its `Gossip` is delta gossip (a tick's flush, or the
    /// buffer an answer to a delta frame carries).
    fn perform(&mut self, n: usize, out: Outputs, now: u64, delta: bool) {
        let from = self.engines[n].node.id();
        for effect in &out.stored {
            self.seed.stored(n, effect);
        }
        for (to, message) in out.sends {
            let frame = Frame {
                from,
                sent: now,
                message,
            };
            let bytes = codec::encode(&frame);
            self.traffic.sent(&frame.message, bytes.len(), now, delta);
            let at = now + self.network.range(LATENCY_MS.0, LATENCY_MS.1);
            self.schedule(
                at,
                Event::Deliver {
                    to: to.0 as usize,
                    frame: bytes,
                },
            );
        }
        self.arm(n, now);
    }

    /// Sets node `n`'s alarm to `max(next_deadline, now + 5 ms)` unless an
    /// earlier one is set.
    fn arm(&mut self, n: usize, now: u64) {
        let Some(at) = self.engines[n].node.next_deadline() else {
            return;
        };
        let at = at.max(now + ALARM_FLOOR_MS);
        if self.alarms[n].is_some_and(|set| set <= at) {
            return;
        }
        self.alarms[n] = Some(at);
        self.schedule(at, Event::Alarm(n));
    }

    /// Deletes `doomed` keys, each at its first replica with the context
    /// held there, then lets the deletes spread; returns the storage their
    /// tombstones take at all replicas.
    pub fn delete(&mut self, doomed: &[usize], now: u64) -> u64 {
        self.traffic.collect_from = now;
        for k in doomed {
            let n = self.replicas[*k][0].0 as usize;
            let object = self.keys[*k].clone();
            let after = self.register(n, &object, Op::Delete { context: None }, now);
            assert!(
                after.is_tombstone(),
                "{object}: the delete leaves a tombstone"
            );
            let out = self.engines[n].settle().expect("settles");
            self.perform(n, out, now, false);
        }
        self.run(now + 2 * GOSSIP_MS);
        doomed
            .iter()
            .flat_map(|k| self.replicas[*k].iter().map(move |r| (r.0 as usize, *k)))
            .map(|(n, k)| u64::from(self.seed.size(n, k)))
            .sum()
    }

    /// Runs until no node holds a tombstone; returns when that was.
    pub fn run_until_collected(&mut self, from: u64, limit_ms: u64) -> u64 {
        let mut now = from;
        while self.engines.iter().any(|e| e.node.tombstone_counts().0 > 0) {
            assert!(now - from < limit_ms, "tombstones not collected");
            now += 1_000;
            self.run(now);
        }
        now
    }

    /// The stored register row of `object` at node `n`.
    fn row(&self, n: usize, object: &ObjectId) -> Option<&[u8]> {
        self.engines[n].store.row(object, "")
    }

    /// Every replica of every key holds the same state; no other node any.
    pub fn check_converged(&self) {
        for (k, key) in self.keys.iter().enumerate() {
            let first = self.row(self.replicas[k][0].0 as usize, key);
            for (n, e) in self.engines.iter().enumerate() {
                let held = self.row(n, key);
                if self.replicas[k].contains(&e.node.id()) {
                    assert_eq!(held, first, "{key}: replicas {:?} differ", self.replicas[k]);
                } else {
                    assert!(
                        held.is_none(),
                        "{key} held by {}, not a replica",
                        e.node.id()
                    );
                }
            }
        }
    }

    /// No replica holds any of `keys` any more.
    pub fn check_gone(&self, keys: &[usize]) {
        for k in keys {
            for r in &self.replicas[*k] {
                let key = &self.keys[*k];
                assert!(
                    self.row(r.0 as usize, key).is_none(),
                    "{key} still held at {r}"
                );
            }
        }
    }

    /// The mean encoded size of `(key, register)` and the mean sibling
    /// count over every replica's copy.
    pub fn register_stats(&self) -> (f64, f64) {
        let (mut copies, mut bytes, mut siblings) = (0u64, 0u64, 0u64);
        for (k, key) in self.keys.iter().enumerate() {
            for r in &self.replicas[k] {
                let n = r.0 as usize;
                if let Some(row) = self.row(n, key) {
                    let reg: MvRegister =
                        postcard::from_bytes(row).expect("a stored register decodes");
                    copies += 1;
                    bytes += u64::from(self.seed.size(n, k));
                    siblings += reg.siblings().count() as u64;
                }
            }
        }
        let copies = copies.max(1) as f64;
        (bytes as f64 / copies, siblings as f64 / copies)
    }
}

/// `len` random letters, digits and spaces.
fn text(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// Whether `frame` is delta gossip (a `Gossip` that wants nothing): its
/// answer carries the receiver's buffer for the sender, delta gossip too.
fn answers_delta(frame: &[u8]) -> bool {
    let frame: Frame = codec::decode(frame, usize::MAX).expect("a frame we encoded");
    matches!(frame.message, Message::Gossip { want, .. } if want.is_empty())
}
