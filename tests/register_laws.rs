//! Laws of the multi-value register on reachable states, against an oracle
//! computed from the causal history.
//!
//! Every state here comes out of a random history over 2 to 5 replicas,
//! each with its own [`Hlc`] fed wall times that stall and step back:
//! client reads at a replica (capturing its context), writes that carry
//! either no context (blind), the context of an earlier read at any replica
//! (possibly stale), or the replica's current context, deletes that carry a
//! read's context, whole-state merges between replicas, and deliveries of
//! earlier deltas to any replica in any order, duplicates included.
//!
//! Each state travels with the indices of the logged writes and deletes it
//! has seen. The oracle knows each write's dot and the dots each write or
//! delete saw (the dots of the context it carried, computed from the log,
//! not from [`CausalContext`]): a state's context is every dot its events
//! carry, and its siblings are exactly its writes whose dot none of its
//! events saw.
//!
//! Dot numbering, as the oracle models it: a write's dot is `(node, top + 1)`
//! when the writing replica's context (per the log) holds a dot of `node`
//! up to `top`, and `(node, stamp)` when it holds none. Either way the write
//! saw exactly the dots of the context it carried, nothing below its own
//! dot. A node's clock only moves forward, so its dots never repeat, even
//! for a key it forgot (handed off) and writes again.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::for_each_permutation;
#[path = "common/witnessed.rs"]
mod witnessed;
use witnessed::{deliveries, join, three_states, History, Witnessed};

use edge_crdt::codec::{self, DecodeError};
use edge_crdt::crdt::{
    CausalContext, Crdt, Dot, Hlc, MvRegister, Payload, Stamp, TooManySiblings, Versioned,
    MAX_MERGED_SIBLINGS, MAX_SIBLINGS,
};
use edge_crdt::NodeId;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A write at `node` that has kept the key since its last write there.
fn at(node: NodeId, time: u64) -> Stamp {
    Stamp {
        node,
        time,
        holds_own_writes: true,
    }
}

/// Most replicas a history has.
const MAX_NODES: usize = 5;

/// A history has fewer operations than this, so fewer writes than
/// [`MAX_SIBLINGS`]: blind writes never reach the sibling limit.
const MAX_OPS: usize = 48;
const _: () = assert!(MAX_OPS < MAX_SIBLINGS);

/// A set of dots as the oracle keeps it: every dot, explicitly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Dots(BTreeSet<Dot>);

impl Dots {
    fn contains(&self, d: &Dot) -> bool {
        self.0.contains(d)
    }

    fn insert(&mut self, d: Dot) {
        assert!(d.counter > 0, "counter 0 is never a dot");
        self.0.insert(d);
    }

    fn extend(&mut self, other: &Dots) {
        self.0.extend(other.0.iter().copied());
    }

    /// The greatest counter of `node` in the set, if it holds any.
    fn top(&self, node: NodeId) -> Option<u64> {
        self.of(node).max()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The counters of `node` in the set, ascending.
    fn of(&self, node: NodeId) -> impl Iterator<Item = u64> + '_ {
        self.0
            .iter()
            .filter(move |d| d.node == node)
            .map(|d| d.counter)
    }

    /// Counters of `node` around every place where membership may change.
    fn edges(&self, node: NodeId) -> impl Iterator<Item = u64> + '_ {
        self.of(node).flat_map(|c| [c - 1, c, c + 1])
    }

    /// The compact layout of this set, built by hand: the vector entry of a
    /// node is the longest run `1..=n` in the set, the cloud the maximal
    /// runs of consecutive counters above it.
    fn layout(&self) -> RawContext {
        let mut out = RawContext::default();
        // In dot order: by node, then counter.
        for d in &self.0 {
            let n = out.vv.get(&d.node).copied().unwrap_or(0);
            if d.counter == n + 1 && !out.cloud.contains_key(&d.node) {
                out.vv.insert(d.node, d.counter);
                continue;
            }
            let runs = out.cloud.entry(d.node).or_default();
            match runs.values_mut().next_back() {
                Some(last) if *last + 1 == d.counter => *last = d.counter,
                _ => {
                    runs.insert(d.counter, d.counter);
                }
            }
        }
        out
    }
}

/// One logged operation; a state's knowledge is a set of indices of these.
#[derive(Clone, Debug)]
enum Event {
    /// A write: its dot, its sibling and the dots it saw: exactly those of
    /// the context it carried.
    Write {
        dot: Dot,
        value: Versioned,
        saw: Dots,
    },
    /// A delete: the dots of the context it carried.
    Delete { saw: Dots },
}

/// What the oracle says a state with some knowledge holds.
#[derive(Clone, Debug)]
struct Truth {
    /// The known writes no known event saw.
    live: BTreeMap<Dot, Versioned>,
    /// Every dot a known event carries.
    context: Dots,
}

fn truth(log: &[Event], known: &BTreeSet<usize>) -> Truth {
    let mut seen = Dots::default();
    let mut context = Dots::default();
    let mut writes = BTreeMap::new();
    for i in known {
        match &log[*i] {
            Event::Write { dot, value, saw } => {
                seen.extend(saw);
                context.extend(saw);
                context.insert(*dot);
                writes.insert(*dot, value.clone());
            }
            Event::Delete { saw } => {
                seen.extend(saw);
                context.extend(saw);
            }
        }
    }
    writes.retain(|dot, _| !seen.contains(dot));
    Truth {
        live: writes,
        context,
    }
}

/// The dot of a write by `node` at `stamp`, at a replica whose context (per
/// the log) is `context`: the next after the node's top there, or with none
/// there the stamp.
fn next_dot(context: &Dots, node: NodeId, stamp: u64) -> Dot {
    let counter = match context.top(node) {
        Some(top) => top + 1,
        None => stamp.max(1),
    };
    Dot { node, counter }
}

/// Every dot worth probing: for each node, counters 0 (never a dot) to 2,
/// and each side of every dot in the log, so each end of every run of dots
/// a set of them can hold.
fn universe(log: &[Event]) -> Vec<Dot> {
    let mut out = BTreeSet::new();
    for node in 0..MAX_NODES as u32 {
        let node = NodeId(node);
        let mut probe = |c: u64| {
            out.insert(Dot { node, counter: c });
        };
        (0..=2).for_each(&mut probe);
        for e in log {
            let saw = match e {
                Event::Write { dot, saw, .. } => {
                    if dot.node == node {
                        [dot.counter - 1, dot.counter, dot.counter + 1]
                            .into_iter()
                            .for_each(&mut probe);
                    }
                    saw
                }
                Event::Delete { saw } => saw,
            };
            saw.edges(node).for_each(&mut probe);
        }
    }
    out.into_iter().collect()
}

/// The oracle's set as a context, in the compact layout it must have.
fn context_of(dots: &Dots) -> CausalContext {
    let raw = RawRegister {
        values: BTreeMap::new(),
        context: dots.layout(),
    };
    let decoded = decode_raw(&raw).unwrap_or_else(|e| panic!("{raw:?}: {e:?}"));
    decoded.context().clone()
}

/// The same set built through the context's own API, three ways: dots
/// inserted in ascending order (each run grows at its end), in descending
/// order (at its start), and single-dot contexts joined odd positions
/// first (runs bridged from both sides).
fn contexts_by_api(dots: &Dots) -> [CausalContext; 3] {
    let mut ascending = CausalContext::default();
    for d in &dots.0 {
        ascending.insert(*d);
    }
    let mut descending = CausalContext::default();
    for d in dots.0.iter().rev() {
        descending.insert(*d);
    }
    let mut joined = CausalContext::default();
    let odd_first = dots
        .0
        .iter()
        .skip(1)
        .step_by(2)
        .chain(dots.0.iter().step_by(2));
    for d in odd_first {
        let mut one = CausalContext::default();
        one.insert(*d);
        joined.join(&one);
    }
    [ascending, descending, joined]
}

fn sibling_dots(reg: &MvRegister) -> BTreeSet<Dot> {
    reg.siblings().map(|(d, _)| *d).collect()
}

/// A state with its knowledge.
#[derive(Clone, Debug)]
struct Sample {
    reg: MvRegister,
    known: BTreeSet<usize>,
}

impl Witnessed for Sample {
    type State = MvRegister;

    fn empty() -> Sample {
        Sample {
            reg: MvRegister::default(),
            known: BTreeSet::new(),
        }
    }

    fn state(&self) -> &MvRegister {
        &self.reg
    }

    fn state_mut(&mut self) -> &mut MvRegister {
        &mut self.reg
    }

    fn known(&self) -> &BTreeSet<usize> {
        &self.known
    }

    fn merge_witnesses(&mut self, other: &Sample) {
        self.known.extend(other.known.iter().copied());
    }
}

/// Every check a reachable state must pass.
fn check(log: &[Event], s: &Sample) -> Result<(), TestCaseError> {
    let reg = &s.reg;
    reg.validate().map_err(|e| {
        TestCaseError::fail(format!("reachable state fails validation: {e}: {reg:?}"))
    })?;
    let decoded = codec::decode_state::<MvRegister>(&codec::encode(reg));
    prop_assert_eq!(decoded.as_ref(), Ok(reg));
    prop_assert_eq!(reg.absorb(NodeId(0), NodeId(1)), None);

    let want = truth(log, &s.known);
    let got: BTreeMap<Dot, Versioned> = reg.siblings().map(|(d, v)| (*d, v.clone())).collect();
    prop_assert_eq!(
        &got,
        &want.live,
        "siblings differ from the oracle: {:?}",
        reg
    );
    prop_assert_eq!(reg.is_empty(), want.live.is_empty());

    // The context is exactly the oracle's set of dots, in compact form.
    let ctx = reg.context();
    for d in universe(log) {
        prop_assert_eq!(
            ctx.contains(d),
            want.context.contains(&d),
            "contains({:?}) in {:?}",
            d,
            ctx
        );
    }
    let canonical = context_of(&want.context);
    prop_assert_eq!(ctx, &canonical);
    for (how, by_api) in contexts_by_api(&want.context).iter().enumerate() {
        prop_assert_eq!(by_api, &canonical, "built by the API, way {}", how);
        prop_assert_eq!(by_api.validate(), Ok(()));
    }
    prop_assert!(ctx.covers(&canonical) && canonical.covers(ctx));
    prop_assert_eq!(ctx.is_empty(), want.context.is_empty());
    for node in 0..MAX_NODES as u32 {
        let node = NodeId(node);
        let top = want.context.top(node);
        prop_assert_eq!(ctx.knows(node), top.is_some());
        prop_assert_eq!(ctx.next_dot(node).counter, top.unwrap_or(0) + 1);
    }

    // Last writer wins by (stamp, dot).
    let best = want
        .live
        .iter()
        .max_by_key(|(d, v)| (v.stamp, **d))
        .map(|(_, v)| v);
    prop_assert_eq!(reg.resolve(), best);
    prop_assert_eq!(
        reg.latest_stamp(),
        want.live.values().map(|v| v.stamp).max()
    );
    Ok(())
}

/// Which context a write carries.
#[derive(Clone, Debug)]
enum Seen {
    /// None at all.
    Blind,
    /// The context of an earlier read (any replica), picked modulo their number.
    Read(usize),
    /// The writing replica's current context.
    Current,
}

/// One step of a history. Wall times are offsets from a history-wide time
/// that only moves by `advance`, so replicas often read the same
/// millisecond (equal stamps at two replicas), and `back` steps one back.
#[derive(Clone, Debug)]
enum Op {
    /// A client reads replica `node` and keeps its context.
    Read { node: usize },
    /// A client writes at replica `node`.
    Write {
        node: usize,
        seen: Seen,
        advance: u64,
        back: u64,
    },
    /// A client deletes at replica `node` what an earlier read saw (a
    /// fresh read of `node` when `read` is `None` or there is none yet).
    Delete { node: usize, read: Option<usize> },
    /// Replica `to` merges the whole state of replica `from`; its clock
    /// observes the merged state's latest stamp when `observe`.
    Merge {
        from: usize,
        to: usize,
        observe: bool,
    },
    /// Replica `to` receives an earlier delta (modulo their number), maybe
    /// again.
    Deliver {
        to: usize,
        delta: usize,
        observe: bool,
    },
}

/// A client's read: the context the API hands out, and the oracle's view.
#[derive(Clone, Debug)]
struct Read {
    ctx: CausalContext,
    dots: Dots,
    /// The state read.
    state: Sample,
}

/// How often the interesting cases came up.
#[derive(Clone, Debug, Default)]
struct Stats {
    /// Writes with a read's context that left a sibling the read had not seen.
    stale_kept: usize,
    /// Deletes that removed a sibling.
    deletes_removed: usize,
    /// Writes that were not the winner right away (the clock had not observed).
    unobserved_losers: usize,
    /// Writes that won over a sibling they did not replace.
    won_over_siblings: usize,
    /// Writes at one stamp from two replicas.
    equal_stamps: usize,
}

/// What a history produced.
#[derive(Clone, Debug)]
struct Run {
    log: Vec<Event>,
    /// Every delta, in the order it was made.
    deltas: Vec<Sample>,
    /// Every state a replica passed through.
    snapshots: Vec<Sample>,
    /// The final state of each replica.
    finals: Vec<Sample>,
    reads: Vec<Read>,
    /// Each delete: the read whose context it carried, and the state of its
    /// replica right after it.
    deletes: Vec<(usize, Sample)>,
    /// The clock of each replica at the end.
    clocks: Vec<Hlc>,
    /// The history-wide wall time at the end.
    time: u64,
    stats: Stats,
}

impl History for Run {
    type Sample = Sample;

    fn deltas(&self) -> &[Sample] {
        &self.deltas
    }

    fn snapshots(&self) -> &[Sample] {
        &self.snapshots
    }

    fn finals(&self) -> &[Sample] {
        &self.finals
    }

    fn events(&self) -> usize {
        self.log.len()
    }
}

struct Replica {
    state: Sample,
    clock: Hlc,
    /// Whether the clock observed every state this replica merged.
    observed_all: bool,
}

fn run(n: usize, ops: &[Op]) -> Run {
    let mut replicas: Vec<Replica> = (0..n)
        .map(|_| Replica {
            state: Sample::empty(),
            clock: Hlc::default(),
            observed_all: true,
        })
        .collect();
    let mut time = 1u64;
    let mut out = Run {
        log: Vec::new(),
        deltas: Vec::new(),
        snapshots: Vec::new(),
        finals: Vec::new(),
        reads: Vec::new(),
        deletes: Vec::new(),
        clocks: Vec::new(),
        time: 0,
        stats: Stats::default(),
    };
    for op in ops {
        play(op, &mut replicas, &mut time, &mut out);
    }
    out.time = time;
    out.clocks = replicas.iter().map(|r| r.clock).collect();
    out.finals = replicas.into_iter().map(|r| r.state).collect();
    out
}

/// Captures a read of `r`; returns its index in `out.reads`.
fn read(r: &Replica, out: &mut Run) -> usize {
    let dots = truth(&out.log, &r.state.known).context;
    out.reads.push(Read {
        ctx: r.state.reg.context().clone(),
        dots,
        state: r.state.clone(),
    });
    out.reads.len() - 1
}

/// Merges `incoming` into replica `r`, as a node does.
fn receive(r: &mut Replica, incoming: &Sample, observe: bool, out: &mut Run) {
    r.state.absorb(incoming);
    let latest = incoming.reg.latest_stamp().unwrap_or(0);
    if observe {
        r.clock.observe(latest);
    } else if latest > r.clock.last() {
        r.observed_all = false;
    }
    out.snapshots.push(r.state.clone());
}

fn play(op: &Op, replicas: &mut [Replica], time: &mut u64, out: &mut Run) {
    match op {
        Op::Read { node } => {
            read(&replicas[*node], out);
        }
        Op::Write {
            node,
            seen,
            advance,
            back,
        } => {
            *time += advance;
            let id = NodeId(*node as u32);
            let index = out.log.len();
            let (ctx, dots, from_read) = match seen {
                Seen::Read(i) if !out.reads.is_empty() => {
                    let r = &out.reads[i % out.reads.len()];
                    (r.ctx.clone(), r.dots.clone(), true)
                }
                Seen::Blind => (CausalContext::default(), Dots::default(), false),
                Seen::Read(_) | Seen::Current => {
                    let r = read(&replicas[*node], out);
                    (out.reads[r].ctx.clone(), out.reads[r].dots.clone(), false)
                }
            };
            let r = &mut replicas[*node];
            // The clock is past every stamp the replica holds when it has
            // observed everything it merged.
            let latest = r.state.reg.latest_stamp().unwrap_or(0);
            if r.observed_all {
                assert!(r.clock.last() >= latest, "an observing clock fell behind");
            }
            let caught_up = r.clock.last() >= latest;
            let stamp = r.clock.now(time.saturating_sub(*back));
            let payload = if index.is_multiple_of(2) {
                Payload::Text(format!("w{index}"))
            } else {
                Payload::Bytes(index.to_le_bytes().to_vec())
            };
            let value = Versioned { payload, stamp };
            let delta = r
                .state
                .reg
                .write(at(id, stamp), &ctx, value.payload.clone());
            // The dot: the next one after the node's top in the replica's
            // context, per the log; with none there, the write's stamp. The
            // write saw exactly the context it carried.
            let dot = next_dot(&truth(&out.log, &r.state.known).context, id, stamp);
            let saw = dots;
            // A node's dots never repeat: each is above all its earlier ones.
            for e in &out.log {
                if let Event::Write { dot: d, .. } = e {
                    assert!(
                        d.node != id || d.counter < dot.counter,
                        "{dot:?} after {d:?}"
                    );
                }
            }
            let written: Vec<(Dot, Versioned)> =
                delta.siblings().map(|(d, v)| (*d, v.clone())).collect();
            assert_eq!(written, vec![(dot, value.clone())], "the write's delta");
            let mut carried = saw.clone();
            carried.insert(dot);
            assert_eq!(
                delta.context(),
                &context_of(&carried),
                "the delta's context is what the write saw and its dot, nothing below"
            );
            for e in &out.log {
                if let Event::Write {
                    value: v, dot: d, ..
                } = e
                {
                    if v.stamp == stamp && d.node != id {
                        out.stats.equal_stamps += 1;
                    }
                }
            }
            out.log.push(Event::Write {
                dot,
                value: value.clone(),
                saw: saw.clone(),
            });

            // The write replaces exactly the siblings its context covered,
            // not the ones that arrived after its read.
            let before = sibling_dots(&r.state.reg);
            let delta = Sample {
                reg: delta,
                known: BTreeSet::from([index]),
            };
            r.state.absorb(&delta);
            let mut want: BTreeSet<Dot> = before
                .iter()
                .filter(|d| !saw.contains(d))
                .copied()
                .collect();
            let kept = !want.is_empty();
            want.insert(dot);
            assert_eq!(
                sibling_dots(&r.state.reg),
                want,
                "a write that saw {saw:?} over {before:?}"
            );
            if from_read && kept {
                out.stats.stale_kept += 1;
            }
            let winner = r.state.reg.resolve() == Some(&value);
            if caught_up {
                assert!(
                    winner,
                    "a write after observing everything must win: {:?}",
                    r.state.reg
                );
                if kept {
                    out.stats.won_over_siblings += 1;
                }
            } else if !winner {
                out.stats.unobserved_losers += 1;
            }
            out.deltas.push(delta);
            out.snapshots.push(r.state.clone());
        }
        Op::Delete { node, read: pick } => {
            let which = match pick {
                Some(i) if !out.reads.is_empty() => i % out.reads.len(),
                _ => read(&replicas[*node], out),
            };
            let (ctx, dots) = (out.reads[which].ctx.clone(), out.reads[which].dots.clone());
            let r = &mut replicas[*node];
            let delta = Sample {
                reg: r.state.reg.delete(&ctx),
                known: BTreeSet::from([out.log.len()]),
            };
            assert!(delta.reg.is_empty());
            out.log.push(Event::Delete { saw: dots.clone() });
            let before = sibling_dots(&r.state.reg);
            r.state.absorb(&delta);
            let want: BTreeSet<Dot> = before
                .iter()
                .filter(|d| !dots.contains(d))
                .copied()
                .collect();
            assert_eq!(sibling_dots(&r.state.reg), want, "a delete of {dots:?}");
            if want.len() < before.len() {
                out.stats.deletes_removed += 1;
            }
            out.deltas.push(delta);
            out.snapshots.push(r.state.clone());
            out.deletes.push((which, r.state.clone()));
        }
        Op::Merge { from, to, observe } => {
            if from != to {
                let incoming = replicas[*from].state.clone();
                receive(&mut replicas[*to], &incoming, *observe, out);
            }
        }
        Op::Deliver { to, delta, observe } => {
            if !out.deltas.is_empty() {
                let incoming = out.deltas[delta % out.deltas.len()].clone();
                receive(&mut replicas[*to], &incoming, *observe, out);
            }
        }
    }
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    // Time stands still half the time; a clock reads behind a third of it.
    let advance = prop_oneof![2 => Just(0u64), 1 => 1..3u64];
    let back = prop_oneof![2 => Just(0u64), 1 => 1..4u64];
    let seen = prop_oneof![
        1 => Just(Seen::Blind),
        2 => any::<usize>().prop_map(Seen::Read),
        2 => Just(Seen::Current),
    ];
    prop_oneof![
        2 => (0..n).prop_map(|node| Op::Read { node }),
        5 => (0..n, seen, advance, back).prop_map(|(node, seen, advance, back)| Op::Write {
            node,
            seen,
            advance,
            back,
        }),
        1 => (0..n, proptest::option::of(any::<usize>()))
            .prop_map(|(node, read)| Op::Delete { node, read }),
        3 => (0..n, 0..n, any::<bool>()).prop_map(|(from, to, observe)| Op::Merge { from, to, observe }),
        3 => (0..n, any::<usize>(), any::<bool>())
            .prop_map(|(to, delta, observe)| Op::Deliver { to, delta, observe }),
    ]
}

/// A random history over 2 to 5 replicas, with fewer than [`MAX_OPS`]
/// operations.
fn history() -> impl Strategy<Value = Run> {
    (2..=MAX_NODES)
        .prop_flat_map(|n| (Just(n), vec(op(n), 1..MAX_OPS)))
        .prop_map(|(n, ops)| run(n, &ops))
}

/// Every replica, and a fresh one, receives `messages` in order: after each
/// it agrees with the oracle on what it has seen, and at the end all hold
/// the same state, whose siblings are the oracle's unseen writes of the
/// whole log.
fn observe(run: &Run, messages: &[Sample]) -> Result<(), TestCaseError> {
    let everything = run.everything();
    let want = truth(&run.log, &everything);
    let mut receivers = run.finals.clone();
    receivers.push(Sample::empty());
    let mut reference: Option<MvRegister> = None;
    for mut r in receivers {
        for m in messages {
            r.absorb(m);
            check(&run.log, &r)?;
        }
        prop_assert_eq!(&r.known, &everything);
        let got: BTreeMap<Dot, Versioned> =
            r.reg.siblings().map(|(d, v)| (*d, v.clone())).collect();
        prop_assert_eq!(&got, &want.live);
        match &reference {
            None => reference = Some(r.reg.clone()),
            Some(other) => prop_assert_eq!(other, &r.reg, "replicas that saw everything differ"),
        }
    }
    Ok(())
}

// 256 cases each by default; `PROPTEST_CASES=n` runs more.
proptest! {
    #[test]
    fn prop_reachable_states_are_valid_and_agree_with_the_oracle(run in history()) {
        for s in run.pool() {
            check(&run.log, &s)?;
        }
        for r in &run.reads {
            prop_assert_eq!(&r.ctx, &context_of(&r.dots));
        }
    }

    #[test]
    fn prop_merge_commutes((run, a, b, _) in three_states(history())) {
        witnessed::merge_commutes(&a, &b, &|s| check(&run.log, s))?;
    }

    #[test]
    fn prop_merge_associates((run, a, b, c) in three_states(history())) {
        witnessed::merge_associates(&a, &b, &c, &|s| check(&run.log, s))?;
    }

    #[test]
    fn prop_merge_idempotent((_run, a, b, _) in three_states(history())) {
        witnessed::merge_idempotent(&a, &b)?;
    }

    #[test]
    fn prop_merge_reports_change((run, a, b, c) in three_states(history())) {
        // `Sample::absorb` asserts that the returned flag matches the change.
        let ab = join(&a, &b);
        let _ = join(&ab, &a);
        let _ = join(&b, &ab);
        let _ = join(&c, &ab);
        let _ = join(&Sample::empty(), &a);
        let _ = join(&a, &Sample::empty());
        // Merging a delta changes a state exactly when the state lacks a
        // dot of its context (its own, or one it saw), or holds a sibling
        // the delta saw and replaced.
        for d in &run.deltas {
            let mut s = a.clone();
            let changed = s.absorb(d);
            let replaces = a
                .reg
                .siblings()
                .any(|(dot, _)| d.reg.context().contains(*dot) && d.reg.siblings().all(|(x, _)| x != dot));
            prop_assert_eq!(changed, replaces || !a.reg.context().covers(d.reg.context()));
        }
    }

    #[test]
    fn prop_deltas_equal_states(
        (run, order) in history().prop_flat_map(|run| {
            let order: Vec<usize> = (0..run.deltas.len()).collect();
            (Just(run), Just(order).prop_shuffle())
        })
    ) {
        let by_states =
            witnessed::deltas_equal_states(&run.finals, &run.deltas, &order, &run.everything())?;
        check(&run.log, &by_states)?;
    }

    #[test]
    fn prop_every_delivery_order_agrees_with_the_oracle((run, messages) in deliveries(history())) {
        observe(&run, &messages)?;
    }

    #[test]
    fn prop_a_deleted_value_never_comes_back(run in history()) {
        let pool = run.pool();
        for (which, after) in &run.deletes {
            let read = &run.reads[*which];
            // Whatever is merged later, no value the delete saw reappears.
            for x in &pool {
                let merged = join(after, x);
                for d in sibling_dots(&merged.reg) {
                    prop_assert!(!read.dots.contains(&d), "{:?} came back after a delete of {:?}", d, read.dots);
                }
                // A stale state, one the delete's read had seen all of,
                // changes nothing at all.
                if x.known.is_subset(&read.state.known) {
                    let mut s = after.clone();
                    prop_assert!(!s.absorb(x), "a stale state changed a deleted register");
                }
            }
            let mut s = after.clone();
            prop_assert!(!s.absorb(&read.state), "the state the delete read changed it");
        }
    }

    #[test]
    fn prop_a_node_that_forgot_the_key_writes_a_fresh_dot_and_removes_nothing_unseen(
        run in history(),
        writer in any::<Index>(),
        stale in any::<Index>(),
        other in any::<Index>(),
        back in 0..3u64,
        deleted in any::<bool>(),
        delivered in any::<bool>(),
    ) {
        forgotten(&run, writer, stale, other, back, deleted, delivered)?;
    }

    #[test]
    fn prop_a_node_that_dropped_the_key_and_hears_part_of_its_dots_back_writes_a_new_dot(
        run in history(),
        writer in any::<Index>(),
        heard in any::<Index>(),
        back in 0..3u64,
    ) {
        // After it dropped the key (handed off or collected), a node learns
        // some old context again (a client's write elsewhere carried it),
        // and writes: not holding its own writes, it must not continue the
        // run it hears of, which may stop short of its real last dot.
        let issued: BTreeMap<NodeId, Vec<u64>> = run.log.iter().fold(
            BTreeMap::new(),
            |mut m, e| {
                if let Event::Write { dot, .. } = e {
                    m.entry(dot.node).or_insert_with(Vec::new).push(dot.counter);
                }
                m
            },
        );
        let nodes: Vec<NodeId> = issued.keys().copied().collect();
        if nodes.is_empty() || run.reads.is_empty() {
            return Ok(());
        }
        let w = *writer.get(&nodes);
        let old = &run.reads[heard.index(run.reads.len())];
        let mut state = MvRegister::default();
        state.merge(&state.delete(&old.ctx));
        let mut clock = run.clocks[w.0 as usize];
        let at = Stamp {
            holds_own_writes: false,
            ..at(w, clock.now(run.time.saturating_sub(back)))
        };
        let delta = state.write(at, &CausalContext::default(), Payload::Bytes(vec![]));
        let (dot, _) = delta.siblings().next().expect("the write's value");
        let top = issued[&w].iter().max().copied().unwrap_or(0);
        prop_assert!(dot.counter > top, "{:?} reuses a counter up to {}", dot, top);
        prop_assert!(!old.ctx.contains(*dot));
    }
}

/// A node that wrote before forgets the key (it handed the key off) while
/// the other replicas keep theirs, after a delete of everything at `other`
/// when `deleted`. Its next write there starts a fresh register: its dot is
/// its clock's stamp, above every dot it gave before and in no context read
/// before, and its delta carries that dot alone, so it removes no value it
/// did not see, the node's own earlier writes included. A client's write at
/// `other` that carries an old context (`stale`) keeps the new value as a
/// sibling, and a client that read everything replaces every value.
fn forgotten(
    run: &Run,
    writer: Index,
    stale: Index,
    other: Index,
    back: u64,
    deleted: bool,
    delivered: bool,
) -> Result<(), TestCaseError> {
    let writers: Vec<NodeId> = run
        .log
        .iter()
        .filter_map(|e| match e {
            Event::Write { dot, .. } => Some(dot.node),
            Event::Delete { .. } => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if writers.is_empty() {
        return Ok(());
    }
    let w = *writer.get(&writers);
    let at_w = w.0 as usize;
    let n = run.finals.len();
    let o = other.index(n);
    let mut log = run.log.clone();
    let mut replicas = run.finals.clone();
    let mut clocks = run.clocks.clone();
    let wall = run.time.saturating_sub(back);

    let mut all = Sample::empty();
    for f in &run.finals {
        all.absorb(f);
    }
    prop_assert_eq!(&all.known, &run.everything());
    let read_before = Read {
        ctx: all.reg.context().clone(),
        dots: truth(&log, &all.known).context,
        state: all.clone(),
    };
    prop_assert!(read_before.ctx.knows(w));
    if deleted {
        let tombstone = Sample {
            reg: replicas[o].reg.delete(&read_before.ctx),
            known: BTreeSet::from([log.len()]),
        };
        log.push(Event::Delete {
            saw: read_before.dots.clone(),
        });
        replicas[o].absorb(&tombstone);
        all.absorb(&tombstone);
        prop_assert!(all.reg.is_empty() && !all.reg.context().is_empty());
        check(&log, &replicas[o])?;
    }

    // `w` forgets the key; its clock goes on.
    replicas[at_w] = Sample::empty();
    let stamp = clocks[at_w].now(wall);
    let fresh = Versioned {
        payload: Payload::Text("after forgetting".into()),
        stamp,
    };
    let delta = replicas[at_w].reg.write(
        at(w, stamp),
        &CausalContext::default(),
        fresh.payload.clone(),
    );
    let new_dot = Dot {
        node: w,
        counter: stamp,
    };
    prop_assert_eq!(
        delta
            .siblings()
            .map(|(d, v)| (*d, v.clone()))
            .collect::<Vec<_>>(),
        vec![(new_dot, fresh.clone())]
    );
    // A blind first write saw nothing: its context is its own dot alone.
    let mut own = Dots::default();
    own.insert(new_dot);
    prop_assert_eq!(delta.context(), &context_of(&own));
    for below in [1, stamp - 1] {
        let d = Dot {
            node: w,
            counter: below,
        };
        prop_assert!(!delta.context().contains(d), "{:?} covers {:?}", delta, d);
    }
    for e in &log {
        if let Event::Write { dot: d, .. } = e {
            prop_assert!(
                d.node != w || d.counter < stamp,
                "{:?} repeats {:?}",
                new_dot,
                d
            );
        }
    }
    prop_assert!(!read_before.ctx.contains(new_dot));
    for r in &run.reads {
        prop_assert!(!r.ctx.contains(new_dot) && !r.dots.contains(&new_dot));
    }
    let delta = Sample {
        reg: delta,
        known: BTreeSet::from([log.len()]),
    };
    log.push(Event::Write {
        dot: new_dot,
        value: fresh.clone(),
        saw: Dots::default(),
    });
    replicas[at_w].absorb(&delta);
    check(&log, &replicas[at_w])?;

    // Where the key lives on, the write removes nothing: every value stays,
    // `w`'s own earlier ones included.
    let with_all = join(&all, &delta);
    check(&log, &with_all)?;
    let mut kept = sibling_dots(&all.reg);
    kept.insert(new_dot);
    prop_assert_eq!(sibling_dots(&with_all.reg), kept);

    // A client writes at `other` with a context read before.
    let mut olds: Vec<&Read> = run.reads.iter().collect();
    olds.push(&read_before);
    let old = *stale.get(&olds);
    if o != at_w && delivered {
        replicas[o].absorb(&delta);
    }
    let id = NodeId(o as u32);
    let stamp = clocks[o].now(wall);
    let late_value = Versioned {
        payload: Payload::Text("stale".into()),
        stamp,
    };
    let late_dot = next_dot(&truth(&log, &replicas[o].known).context, id, stamp);
    let late = replicas[o]
        .reg
        .write(at(id, stamp), &old.ctx, late_value.payload.clone());
    prop_assert_eq!(
        late.siblings()
            .map(|(d, v)| (*d, v.clone()))
            .collect::<Vec<_>>(),
        vec![(late_dot, late_value.clone())]
    );
    let mut carried = old.dots.clone();
    carried.insert(late_dot);
    prop_assert_eq!(late.context(), &context_of(&carried));
    prop_assert!(!late.context().contains(new_dot));
    let late = Sample {
        reg: late,
        known: BTreeSet::from([log.len()]),
    };
    log.push(Event::Write {
        dot: late_dot,
        value: late_value,
        saw: old.dots.clone(),
    });
    replicas[o].absorb(&late);
    check(&log, &replicas[o])?;
    let everywhere = join(&replicas[at_w], &replicas[o]);
    let other_way = join(&replicas[o], &replicas[at_w]);
    prop_assert_eq!(&everywhere.reg, &other_way.reg);
    check(&log, &everywhere)?;
    prop_assert!(everywhere
        .reg
        .siblings()
        .any(|(d, v)| *d == new_dot && *v == fresh));

    // A client that read the new value does replace it, and all the rest.
    let mut last = everywhere;
    let seen = last.reg.context().clone();
    let stamp = clocks[at_w].now(wall);
    let value = Versioned {
        payload: Payload::Text("read".into()),
        stamp,
    };
    let known = truth(&log, &last.known).context;
    let last_dot = next_dot(&known, w, stamp);
    let delta = Sample {
        reg: last.reg.write(at(w, stamp), &seen, value.payload.clone()),
        known: BTreeSet::from([log.len()]),
    };
    log.push(Event::Write {
        dot: last_dot,
        value: value.clone(),
        saw: known,
    });
    last.absorb(&delta);
    check(&log, &last)?;
    prop_assert_eq!(
        last.reg
            .siblings()
            .map(|(d, v)| (*d, v.clone()))
            .collect::<Vec<_>>(),
        vec![(last_dot, value)]
    );
    Ok(())
}

fn dot(node: u32, counter: u64) -> Dot {
    Dot {
        node: NodeId(node),
        counter,
    }
}

#[test]
fn every_order_of_six_deltas_agrees_with_the_oracle() {
    let (a, b, c) = (0, 1, 2);
    let write = |node, seen| Op::Write {
        node,
        seen,
        advance: 1,
        back: 0,
    };
    // Time starts at 1 ms and each write advances it by 1: a node's first
    // dot is its stamp, its next one the counter after.
    let s = Hlc::stamp_of;
    let ops = [
        write(a, Seen::Blind),   // a1 = (a, s(2))
        write(b, Seen::Blind),   // b1 = (b, s(3)), concurrent with a1
        Op::Read { node: a },    // read 0: {a1}
        Op::Read { node: b },    // read 1: {b1}
        write(c, Seen::Read(0)), // c1 = (c, s(4)) saw a1 only (a stale read at another replica)
        Op::Delete {
            node: a,
            read: Some(1),
        }, // deletes b1, at a replica that never held it
        Op::Merge {
            from: b,
            to: a,
            observe: true,
        }, // b1 does not come back
        write(b, Seen::Blind),   // b2 = (b, s(3) + 1) at s(5), concurrent with everything
        write(a, Seen::Current), // a2 = (a, s(2) + 1) at s(6) saw a1 and b1, not c1 or b2
    ];
    let run = run(3, &ops);
    assert_eq!(run.deltas.len(), 6);
    let want = truth(&run.log, &run.everything());
    let live: BTreeSet<Dot> = want.live.keys().copied().collect();
    assert_eq!(
        live,
        BTreeSet::from([dot(0, s(2) + 1), dot(1, s(3) + 1), dot(2, s(4))])
    );
    let stamps: Vec<u64> = want.live.values().map(|v| v.stamp).collect();
    assert_eq!(stamps, vec![s(6), s(5), s(4)]);
    let mut count = 0;
    let mut finals = BTreeSet::new();
    for_each_permutation(&run.deltas, |order| {
        observe(&run, order).unwrap_or_else(|e| panic!("order {order:?}: {e}"));
        let mut s = Sample::empty();
        for m in order {
            s.absorb(m);
        }
        finals.insert(codec::encode(&s.reg));
        count += 1;
    });
    assert_eq!(count, 720);
    assert_eq!(finals.len(), 1, "every order converges to one state");
}

#[test]
fn a_stale_write_keeps_what_arrived_after_its_read() {
    let none = CausalContext::default();
    let mut a = MvRegister::default();
    a.merge(&a.write(at(NodeId(0), 1), &none, Payload::Text("a".into())));
    let read = a.context().clone();
    let mut b = MvRegister::default();
    b.merge(&b.write(at(NodeId(1), 2), &none, Payload::Text("b".into())));
    a.merge(&b);
    a.merge(&a.write(at(NodeId(0), 3), &read, Payload::Text("c".into())));
    assert!(
        !a.context().contains(dot(1, 1)),
        "b's first write covers nothing below its dot"
    );
    // b's first dot is its stamp; a's second write continues after a's first.
    assert_eq!(sibling_dots(&a), BTreeSet::from([dot(0, 2), dot(1, 2)]));
    assert_eq!(
        a.resolve().map(|v| &v.payload),
        Some(&Payload::Text("c".into()))
    );
    // Equal stamps: the greater dot wins.
    let mut c = MvRegister::default();
    c.merge(&c.write(at(NodeId(2), 3), &none, Payload::Text("d".into())));
    a.merge(&c);
    assert_eq!(
        a.resolve().map(|v| &v.payload),
        Some(&Payload::Text("d".into()))
    );
}

#[test]
fn a_node_that_forgot_a_key_keeps_its_earlier_writes() {
    let none = CausalContext::default();
    // Node 0 writes at its replica, then hands the key to node 1's replica
    // and forgets it.
    let mut a = MvRegister::default();
    a.merge(&a.write(at(NodeId(0), 5), &none, Payload::Text("first".into())));
    let mut b = a.clone();
    b.merge(&b.write(at(NodeId(1), 6), &none, Payload::Text("concurrent".into())));
    // Node 0 writes again to a fresh register: the dot is its stamp, and
    // the delta saw nothing else.
    let again = MvRegister::default().write(at(NodeId(0), 9), &none, Payload::Text("again".into()));
    assert_eq!(sibling_dots(&again), BTreeSet::from([dot(0, 9)]));
    let mut only = CausalContext::default();
    only.insert(dot(0, 9));
    assert_eq!(again.context(), &only);
    assert!(!again.context().contains(dot(0, 5)) && !again.context().contains(dot(0, 8)));
    // Where the key lives on, the earlier write stays a sibling.
    assert!(b.merge(&again));
    assert_eq!(
        sibling_dots(&b),
        BTreeSet::from([dot(0, 5), dot(0, 9), dot(1, 6)])
    );
    // Back at node 0's replica the dots continue after its stamp.
    let mut c = MvRegister::default();
    c.merge(&again);
    let next = c.write(at(NodeId(0), 10), &none, Payload::Text("next".into()));
    assert_eq!(sibling_dots(&next), BTreeSet::from([dot(0, 10)]));
}

#[test]
fn consecutive_writes_keep_one_context_entry_per_node() {
    // Node 0 writes 1,000 times at its replica, half of them with a stale
    // read, and node 1 writes at its own; the replicas exchange states now
    // and then. Each node's dots form one run from its first stamp.
    let mut clocks = [Hlc::default(); 2];
    let mut a = MvRegister::default();
    let mut b = MvRegister::default();
    let mut stale = a.context().clone();
    let (mut first_a, mut first_b) = (None, None);
    for i in 0..1_000u64 {
        let wall = 1_000 + i / 3;
        let seen = if i % 2 == 0 {
            a.context().clone()
        } else {
            stale.clone()
        };
        if i % 10 == 0 {
            stale = a.context().clone();
        }
        let stamp = clocks[0].now(wall);
        first_a.get_or_insert(stamp);
        a.merge(&a.write(
            at(NodeId(0), stamp),
            &seen,
            Payload::Bytes(i.to_le_bytes().to_vec()),
        ));
        let stamp = clocks[1].now(wall);
        first_b.get_or_insert(stamp);
        let seen = b.context().clone();
        b.merge(&b.write(at(NodeId(1), stamp), &seen, Payload::Bytes(vec![1])));
        if i % 100 == 99 {
            a.merge(&b);
            b.merge(&a);
            clocks[0].observe(a.latest_stamp().unwrap());
            clocks[1].observe(b.latest_stamp().unwrap());
        }
        assert!(
            a.siblings().count() <= 12,
            "{i}: {} siblings",
            a.siblings().count()
        );
    }
    a.merge(&b);
    assert_eq!(a.validate(), Ok(()));
    let (first_a, first_b) = (first_a.unwrap(), first_b.unwrap());
    let want = RawContext {
        vv: BTreeMap::new(),
        cloud: BTreeMap::from([
            (NodeId(0), BTreeMap::from([(first_a, first_a + 999)])),
            (NodeId(1), BTreeMap::from([(first_b, first_b + 999)])),
        ]),
    };
    let got: RawContext = codec::decode(&codec::encode(a.context()), codec::MAX_STATE).unwrap();
    assert_eq!(got, want, "one run per node");
    // The version byte, two lengths, and per node its id, a length and a
    // run's two counters (3 bytes each at these stamps).
    assert!(
        codec::encode(a.context()).len() <= 20,
        "a context of two runs stays small: {:?}",
        codec::encode(a.context())
    );
    assert_eq!(a.context().next_dot(NodeId(0)).counter, first_a + 1_000);
    // A node whose first dot is 1 keeps one vector entry instead.
    let mut c = MvRegister::default();
    for stamp in 1..=1_000 {
        let seen = c.context().clone();
        c.merge(&c.write(at(NodeId(2), stamp), &seen, Payload::Bytes(vec![])));
    }
    let got: RawContext = codec::decode(&codec::encode(c.context()), codec::MAX_STATE).unwrap();
    assert_eq!(
        got,
        RawContext {
            vv: BTreeMap::from([(NodeId(2), 1_000)]),
            cloud: BTreeMap::new(),
        }
    );
}

#[test]
fn the_generator_reaches_the_interesting_cases() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = history();
    let cases = 200;
    let mut totals = Stats::default();
    let (mut concurrent, mut emptied, mut tie_resolved, mut stale_deltas) = (0, 0, 0, 0);
    let (mut long_runs, mut split_runs) = (0, 0);
    for _ in 0..cases {
        let run = proptest::strategy::ValueTree::current(&strategy.new_tree(&mut runner).unwrap());
        let s = &run.stats;
        totals.stale_kept += usize::from(s.stale_kept > 0);
        totals.deletes_removed += usize::from(s.deletes_removed > 0);
        totals.unobserved_losers += usize::from(s.unobserved_losers > 0);
        totals.won_over_siblings += usize::from(s.won_over_siblings > 0);
        totals.equal_stamps += usize::from(s.equal_stamps > 0);
        let want = truth(&run.log, &run.everything());
        concurrent += usize::from(want.live.len() >= 2);
        emptied += usize::from(run.deletes.iter().any(|(_, s)| {
            s.reg.is_empty()
                && s.known
                    .iter()
                    .any(|i| matches!(run.log[*i], Event::Write { .. }))
        }));
        tie_resolved += usize::from(run.pool().iter().any(|s| {
            let top = s.reg.latest_stamp();
            s.reg
                .siblings()
                .filter(|(_, v)| Some(v.stamp) == top)
                .count()
                >= 2
        }));
        // Contexts whose runs hold several dots, and nodes with several runs.
        let layouts: Vec<RawContext> = run
            .pool()
            .iter()
            .map(|s| truth(&run.log, &s.known).context.layout())
            .collect();
        long_runs += usize::from(
            layouts
                .iter()
                .any(|l| l.cloud.values().flatten().any(|(first, last)| last > first)),
        );
        split_runs += usize::from(
            layouts
                .iter()
                .any(|l| l.cloud.values().any(|runs| runs.len() >= 2)),
        );
        // A replica received a delta whose write another write had already replaced.
        stale_deltas += usize::from(run.deltas.iter().any(|d| {
            run.finals
                .iter()
                .any(|f| !d.reg.is_empty() && !f.reg.context().covers(d.reg.context()))
        }));
    }
    eprintln!(
        "of {cases} histories: {totals:?}, {concurrent} with concurrent siblings at the end, {emptied} emptied by a delete, {tie_resolved} with a stamp tie among siblings, {stale_deltas} with a delta some replica never got, {long_runs} with a run of several dots, {split_runs} with a node's dots in several runs"
    );
    assert!(totals.stale_kept >= cases / 4, "stale writes kept siblings");
    assert!(
        totals.deletes_removed >= cases / 4,
        "deletes removed siblings"
    );
    assert!(
        totals.unobserved_losers >= cases / 10,
        "unobserved clocks lost"
    );
    assert!(totals.won_over_siblings >= cases / 4, "observed writes won");
    assert!(totals.equal_stamps >= cases / 10, "equal stamps");
    assert!(concurrent >= cases / 3, "concurrent siblings survived");
    assert!(emptied >= cases / 5, "deleted registers");
    assert!(tie_resolved >= cases / 20, "stamp ties among siblings");
    assert!(stale_deltas >= cases / 4, "deltas some replica never got");
    assert!(long_runs >= cases / 2, "runs of several dots");
    assert!(split_runs >= cases / 5, "a node's dots in several runs");
}

/// The serde layout of [`MvRegister`], to build states its API cannot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RawRegister {
    values: BTreeMap<Dot, Versioned>,
    context: RawContext,
}

/// The serde layout of [`CausalContext`]: the version vector, and per node
/// the runs of dots above it, first counter to last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RawContext {
    vv: BTreeMap<NodeId, u64>,
    cloud: BTreeMap<NodeId, BTreeMap<u64, u64>>,
}

/// A register with `values` (dot, stamp), vector entries (node, n) and
/// runs (node, first, last).
fn raw(values: &[(Dot, u64)], vv: &[(u32, u64)], runs: &[(u32, u64, u64)]) -> RawRegister {
    let mut cloud: BTreeMap<NodeId, BTreeMap<u64, u64>> = BTreeMap::new();
    for (node, first, last) in runs {
        cloud
            .entry(NodeId(*node))
            .or_default()
            .insert(*first, *last);
    }
    RawRegister {
        values: values
            .iter()
            .map(|(d, stamp)| {
                (
                    *d,
                    Versioned {
                        payload: Payload::Bytes(vec![1]),
                        stamp: *stamp,
                    },
                )
            })
            .collect(),
        context: RawContext {
            vv: vv.iter().map(|(n, c)| (NodeId(*n), *c)).collect(),
            cloud,
        },
    }
}

fn decode_raw(r: &RawRegister) -> Result<MvRegister, DecodeError> {
    codec::decode_state::<MvRegister>(&codec::encode(r))
}

#[test]
fn the_raw_layout_matches() {
    let none = CausalContext::default();
    let mut reg = MvRegister::default();
    // Node 0's first dot is its stamp 1, then the next: a vector entry.
    reg.merge(&reg.write(at(NodeId(0), 1), &none, Payload::Text("x".into())));
    reg.merge(&reg.write(at(NodeId(0), 2), &none, Payload::Text("y".into())));
    // Node 1's are 6 and 7, a run; a delete that saw (1, 9) leaves a gap at 8.
    let mut other = MvRegister::default();
    other.merge(&other.write(at(NodeId(1), 6), &none, Payload::Bytes(vec![2])));
    other.merge(&other.write(at(NodeId(1), 8), &none, Payload::Bytes(vec![3])));
    reg.merge(&other);
    let mut gap = CausalContext::default();
    gap.insert(dot(1, 9));
    reg.merge(&reg.delete(&gap));
    let bytes = codec::encode(&reg);
    let back: RawRegister = codec::decode(&bytes, codec::MAX_STATE).unwrap();
    assert_eq!(codec::encode(&back), bytes);
    assert_eq!(
        back.values.keys().copied().collect::<Vec<_>>(),
        vec![dot(0, 1), dot(0, 2), dot(1, 6), dot(1, 7)]
    );
    assert_eq!(back.context.vv, BTreeMap::from([(NodeId(0), 2)]));
    assert_eq!(
        back.context.cloud,
        BTreeMap::from([(NodeId(1), BTreeMap::from([(6, 7), (9, 9)]))])
    );
    assert_eq!(decode_raw(&back), Ok(reg));
    // The same bytes, built by hand.
    let by_hand = RawRegister {
        values: back.values.clone(),
        context: raw(&[], &[(0, 2)], &[(1, 6, 7), (1, 9, 9)]).context,
    };
    assert_eq!(codec::encode(&by_hand), bytes);
    // Hand-built valid states are accepted.
    let ok = raw(&[(dot(0, 1), 1), (dot(2, 4), 9)], &[(0, 2)], &[(2, 4, 4)]);
    assert!(decode_raw(&ok).is_ok());
    let inside = raw(&[(dot(0, 5), 1)], &[], &[(0, 4, 6), (0, 8, 8)]);
    assert!(decode_raw(&inside).is_ok());
}

#[test]
fn validate_rejects_broken_states() {
    let bad = |r: RawRegister, why: &str| {
        let decoded = decode_raw(&r);
        assert!(
            matches!(decoded, Err(DecodeError::Invalid(_))),
            "{why}: {r:?} gave {decoded:?}"
        );
    };
    // A value whose dot is outside the context.
    bad(raw(&[(dot(0, 1), 1)], &[], &[]), "no context");
    bad(raw(&[(dot(0, 3), 1)], &[(0, 2)], &[]), "past the vector");
    bad(raw(&[(dot(0, 3), 1)], &[(0, 1)], &[(0, 4, 5)]), "in a gap");
    bad(raw(&[(dot(0, 7), 1)], &[], &[(0, 4, 6)]), "past a run");
    bad(raw(&[(dot(0, 3), 1)], &[], &[(0, 4, 6)]), "before a run");
    bad(raw(&[(dot(1, 1), 1)], &[(0, 1)], &[]), "another node");
    bad(
        raw(&[(dot(1, 4), 1)], &[], &[(0, 4, 4)]),
        "another node's run",
    );
    // A context that is not compact.
    bad(
        raw(&[], &[(0, 1)], &[(0, 2, 2)]),
        "a cloud run closing the gap",
    );
    bad(
        raw(&[], &[(0, 1)], &[(0, 2, 5)]),
        "a longer cloud run closing the gap",
    );
    bad(
        raw(&[], &[(0, 3)], &[(0, 2, 2)]),
        "a cloud run under the vector",
    );
    bad(
        raw(&[], &[(0, 3)], &[(0, 2, 6)]),
        "a cloud run overlapping the vector",
    );
    bad(raw(&[], &[], &[(0, 1, 1)]), "a first dot in the cloud");
    bad(raw(&[], &[], &[(0, 1, 4)]), "a first run in the cloud");
    bad(raw(&[], &[], &[(0, 3, 4), (0, 5, 6)]), "adjacent runs");
    bad(raw(&[], &[], &[(0, 3, 5), (0, 4, 6)]), "overlapping runs");
    bad(raw(&[], &[], &[(0, 3, 8), (0, 4, 6)]), "a run inside a run");
    bad(
        raw(&[], &[], &[(0, 5, 3)]),
        "a run that ends before it starts",
    );
    let mut empty_runs = raw(&[], &[(0, 1)], &[]);
    empty_runs.context.cloud.insert(NodeId(1), BTreeMap::new());
    bad(empty_runs, "a node with no runs");
    // A zero counter: in the vector, in the cloud, or in a value's dot.
    bad(raw(&[], &[(0, 0)], &[]), "a zero vector entry");
    bad(raw(&[], &[(0, 1)], &[(1, 0, 0)]), "a zero cloud dot");
    bad(raw(&[], &[(0, 1)], &[(1, 0, 3)]), "a cloud run from 0");
    bad(
        raw(&[(dot(0, 0), 1)], &[(0, 2)], &[]),
        "a value at counter 0",
    );
    bad(
        raw(&[(dot(0, 0), 1)], &[], &[]),
        "a value at counter 0, no context",
    );
    // Timestamp 0.
    bad(raw(&[(dot(0, 1), 0)], &[(0, 1)], &[]), "stamp 0");
    // At most 4096 vector entries and runs in all.
    let sized = |entries: u64| {
        let vv: Vec<(u32, u64)> = (0..8).map(|n| (n, 1)).collect();
        let runs: Vec<(u32, u64, u64)> = (0..entries - 8)
            .map(|i| (9, 3 + 2 * i, 3 + 2 * i))
            .collect();
        raw(&[], &vv, &runs)
    };
    assert!(decode_raw(&sized(4096)).is_ok());
    bad(sized(4097), "4097 entries");

    // Replicas that admit writes concurrently merge past MAX_SIBLINGS: a
    // remote state may carry up to MAX_MERGED_SIBLINGS, and no more.
    let none = CausalContext::default();
    let mut reg = MvRegister::default();
    for i in 0..MAX_MERGED_SIBLINGS {
        let node = NodeId(i as u32);
        assert!(reg.merge(&MvRegister::default().write(
            at(node, 1),
            &none,
            Payload::Bytes(vec![])
        )));
    }
    assert_eq!(reg.siblings().count(), MAX_MERGED_SIBLINGS);
    assert_eq!(reg.validate(), Ok(()));
    assert_eq!(reg.admits(&none), Err(TooManySiblings(MAX_MERGED_SIBLINGS)));
    let one_more = reg.write(at(NodeId(0), 2), &none, Payload::Bytes(vec![]));
    reg.merge(&one_more);
    assert_eq!(reg.siblings().count(), MAX_MERGED_SIBLINGS + 1);
    assert!(reg.validate().is_err());
    assert!(matches!(
        codec::decode_state::<MvRegister>(&codec::encode(&reg)),
        Err(DecodeError::Invalid(_))
    ));
}
