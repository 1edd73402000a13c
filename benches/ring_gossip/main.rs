//! Gossip bytes per register write at steady state, R = 3: our cluster
//! against the seed's whole-state gossip and against a lower bound, in one
//! seeded, deterministic run on one write workload.
//!
//! Run with `cargo bench --bench ring_gossip` (or `scripts/bench-ring.sh`,
//! which runs it at 2,000 and at 10,000 keys). `BENCH_RING_KEYS=<n>` sets
//! the key count (default 2,000), `BENCH_RING_SEED=<n>` the seed (42).
//!
//! # Workload
//!
//! Virtual time in milliseconds (from a Unix-like epoch, so timestamps have
//! their real size). A write every 5 ms (200 writes/s) to one of the
//! `kv:` keys drawn uniformly, with a 100-byte random text payload, at one
//! of the key's 3 replicas drawn uniformly (the engine's placement with
//! `replicas: 3, vnodes: 64` over the 8 initial members). The write is a
//! read-modify-write at that replica, run as the node object runs a
//! client's (`Register::execute`, `Op::Read` then `Op::Put` with the
//! read's context): the new value replaces what the replica holds, so
//! registers keep one sibling except for writes that race gossip. 60 s of
//! warm-up are excluded; the next 120 s are measured; then writes stop,
//! the cluster settles for 30 s and every replica of every key must hold
//! the same state and no other node any (a check of the simulation, not
//! measured).
//!
//! # (1) Ours
//!
//! Eight `Engine<MemoryStore>` nodes (`Config::default()` but 8 initial
//! nodes: gossip every 250 ms, anti-entropy every 2,000 ms), driven as
//! `src/edge/host.rs` drives a node: after every input (a client operation
//! and `settle`, a frame through `receive_frame`, an alarm's `tick`) the
//! outputs are performed and the node's one alarm is set to
//! `max(next_deadline(), now + 5 ms)` unless an earlier alarm is already
//! set; the first alarms are staggered over the first gossip interval.
//! Every send goes out as an encoded `Frame { from, sent, message }`,
//! none lost, delivered after a seeded latency of 2–8 ms (so messages can
//! cross and arrive reordered). The figure is the sum of
//! `codec::encode(&message).len()` over every send during the measured
//! 120 s (delta gossip, the anti-entropy levels `Digest`, `Buckets`,
//! `Leaves`, `Objects`, `Rows` and the repairs alike), divided by the
//! writes made in those 120 s; the frames as sent, with their sender and
//! time, are reported beside it.
//!
//! # (2) Seed
//!
//! The seed (`shared/seeds/ring.md`) gossiped each node's whole register map
//! to its peers. Modelled generously, on the same run: every 250 ms of the
//! measured window, every node A sends each other node B one frame,
//! `codec::encode(&Vec<(ObjectId, MvRegister)>)`, holding every register A
//! holds of which both A and B are replicas, as A holds it at that moment:
//! all shared registers on every gossip round, but only to replicas (the
//! seed sent to all nodes), and no framing besides the codec's. A pair that
//! shares no register sends nothing. The frame sizes are summed from each
//! node's per-key encoded sizes, kept up to date from its stored rows;
//! every 40th round is also encoded in full and must match exactly.
//!
//! # (3) Lower bound
//!
//! Each measured write's delta (a register with the new value and the
//! read's context) sent exactly once to each of the other R - 1 replicas
//! as the engine ships a row: `(R - 1) * codec::encode(&(object, row key,
//! row bytes)).len()`, no batching, no anti-entropy, no framing beyond the
//! codec's envelope.
//!
//! # Tombstone collection
//!
//! After the check, every 10th key that was ever written is deleted at its
//! first replica with the context held there (a key never written has
//! nothing to delete and leaves no tombstone), and the cluster runs (no
//! other writes) until every tombstone is collected, with the default
//! `tombstone_grace_ms`: one collection per deleted key, and no replica
//! holds any of them. The figure is the bytes of the collection messages
//! (`Reap`, `Reaped`, `Forget`) per tombstone, against the storage it
//! frees: the tombstone's encoded size with its key at each of its R
//! replicas.
//!
//! # Output
//!
//! stdout, one line each: the workload, then
//! `ring gossip: ours X B/write, seed Y B/write (ratio X/Y), lower bound Z B/write (ratio X/Z)`,
//! then our bytes by message kind, the anti-entropy counts, the seed
//! model and the registers' size at the end, and the collection. Progress
//! goes to stderr.

mod seed;
mod sim;
mod tally;

use edge_crdt::engine::Config;
use sim::Sim;
use std::time::Instant;
use tally::{Tally, Traffic, BUCKETS, DELTA, DIGEST, KINDS, LEAVES, OBJECTS, REPAIR, ROWS};

const NODES: u32 = 8;
const REPLICAS: usize = 3;
const GOSSIP_MS: u64 = 250;
const WARMUP_MS: u64 = 60_000;
const MEASURE_MS: u64 = 120_000;
const SETTLE_MS: u64 = 30_000;
const WRITE_EVERY_MS: u64 = 5;
const DEFAULT_KEYS: usize = 2_000;
const VALUE_BYTES: usize = 100;
/// Network latency, uniform in this range (inclusive), in milliseconds.
const LATENCY_MS: (u64, u64) = (2, 8);
/// The host sets an alarm no sooner than this after the current event.
const ALARM_FLOOR_MS: u64 = 5;
/// Virtual time 0 on the wall clock, in Unix milliseconds.
const EPOCH_MS: u64 = 1_700_000_000_000;
const DEFAULT_SEED: u64 = 42;
/// Every how many keys one is deleted for the collection figure.
const DELETE_EVERY: usize = 10;
/// The longest the collection may take, in virtual time.
const COLLECT_LIMIT_MS: u64 = 600_000;

/// What one run is asked to do.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub seed: u64,
    pub keys: usize,
    pub warmup_ms: u64,
    pub measure_ms: u64,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{name}: an unsigned integer, not {s:?}")),
        Err(_) => default,
    }
}

fn main() {
    let params = Params {
        seed: env_number("BENCH_RING_SEED", DEFAULT_SEED),
        keys: env_number("BENCH_RING_KEYS", DEFAULT_KEYS),
        warmup_ms: WARMUP_MS,
        measure_ms: MEASURE_MS,
    };
    assert!(params.keys > 0, "BENCH_RING_KEYS: at least one key");
    let wall = Instant::now();
    let mut sim = Sim::new(params);
    let end = sim.measure_to() + SETTLE_MS;
    sim.run(end);
    sim.check_converged();
    report_workload(&sim);
    report_traffic(&sim.traffic, sim.seed.frames);
    report_seed(&sim);
    collect(&mut sim, end);
    eprintln!(
        "ring gossip: {} keys: done in {:.1} s wall",
        params.keys,
        wall.elapsed().as_secs_f64()
    );
}

fn report_workload(sim: &Sim) {
    let p = sim.params;
    println!(
        "ring gossip: workload: {NODES} nodes, R={REPLICAS}, gossip {GOSSIP_MS} ms, \
         anti-entropy {} ms, {} writes/s on {} kv: keys, {VALUE_BYTES}-byte values, \
         latency {}-{} ms, seed {}; {} writes measured over {} s after {} s warm-up",
        Config::default().anti_entropy_interval_ms,
        1_000 / WRITE_EVERY_MS,
        p.keys,
        LATENCY_MS.0,
        LATENCY_MS.1,
        p.seed,
        sim.traffic.writes,
        p.measure_ms / 1_000,
        p.warmup_ms / 1_000,
    );
}

fn report_traffic(t: &Traffic, seed: Tally) {
    let ours = t.per_write(t.ours_bytes());
    let seed_bpw = t.per_write(seed.bytes);
    let lower = t.per_write(t.lower_bytes);
    println!(
        "ring gossip: ours {ours:.1} B/write, seed {seed_bpw:.1} B/write (ratio {:.3}), \
         lower bound {lower:.1} B/write (ratio {:.2})",
        ours / seed_bpw,
        ours / lower,
    );
    let parts: Vec<String> = KINDS
        .iter()
        .zip(&t.ours)
        .filter(|(_, k)| k.frames > 0)
        .map(|(name, k)| {
            format!(
                "{name} {:.1} B/write ({} frames, {} entries)",
                t.per_write(k.bytes),
                k.frames,
                k.entries
            )
        })
        .collect();
    println!("ring gossip: ours by message: {}", parts.join(", "));
    let repair = t.ours_bytes() - t.ours[DELTA].bytes;
    println!(
        "ring gossip: anti-entropy and repair {:.1} B/write ({:.1}% of the lower bound); \
         as sent, in frames with their sender and time: {:.1} B/write ({} frames)",
        t.per_write(repair),
        100.0 * repair as f64 / t.lower_bytes.max(1) as f64,
        t.per_write(t.wire.bytes),
        t.wire.frames,
    );
    let o = &t.ours;
    println!(
        "ring gossip: anti-entropy: {} digests, {} answered with buckets ({:.0}%), \
         {} leaves frames for {} leaves, {} objects frames for {} objects, \
         {} rows frames for {} rows, {} repair frames carrying {} rows or wanted rows",
        o[DIGEST].frames,
        o[BUCKETS].frames,
        100.0 * o[BUCKETS].frames as f64 / o[DIGEST].frames.max(1) as f64,
        o[LEAVES].frames,
        o[LEAVES].entries,
        o[OBJECTS].frames,
        o[OBJECTS].entries,
        o[ROWS].frames,
        o[ROWS].entries,
        o[REPAIR].frames,
        o[REPAIR].entries,
    );
}

fn report_seed(sim: &Sim) {
    let (mean_bytes, mean_siblings) = sim.register_stats();
    let s = &sim.seed;
    println!(
        "ring gossip: seed model: {} frames in {} rounds, {:.0} registers per frame \
         ({} frames checked against a full encoding); registers at the end: \
         {mean_bytes:.1} B encoded with their key, {mean_siblings:.3} siblings",
        s.frames.frames,
        s.rounds,
        s.frames.entries as f64 / s.frames.frames.max(1) as f64,
        s.checked,
    );
}

/// Deletes every `DELETE_EVERY`th written key, runs until every tombstone
/// is collected, checks and reports.
fn collect(sim: &mut Sim, deleted_at: u64) {
    let doomed: Vec<usize> = (0..sim.keys.len())
        .step_by(DELETE_EVERY)
        .filter(|k| sim.written[*k])
        .collect();
    let never = sim.keys.len().div_ceil(DELETE_EVERY) - doomed.len();
    let freed = sim.delete(&doomed, deleted_at);
    let collected_at = sim.run_until_collected(deleted_at, COLLECT_LIMIT_MS);
    let collected: u64 = sim
        .engines
        .iter()
        .map(|e| e.node.tombstone_counts().1)
        .sum();
    let deleted = doomed.len() as u64;
    assert_eq!(collected, deleted, "one collection per deleted key");
    sim.check_gone(&doomed);
    let c = sim.traffic.collection;
    let cost = c.bytes as f64 / deleted.max(1) as f64;
    let gain = freed as f64 / deleted.max(1) as f64;
    println!(
        "ring gossip: tombstone collection: {deleted} tombstones collected {:.0} s after \
         the deletes (grace {} s; {never} of every {DELETE_EVERY}th key never written, not \
         deleted); messages {cost:.1} B per tombstone ({} frames), storage freed {gain:.1} B \
         per tombstone over its {REPLICAS} replicas (ratio {:.2})",
        (collected_at - deleted_at) as f64 / 1_000.0,
        Config::default().tombstone_grace_ms / 1_000,
        c.frames,
        cost / gain,
    );
}
