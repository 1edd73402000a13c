//! Random histories: the operations, the generators, and the replay that
//! logs each write and delete for the oracle and checks, as it goes, that
//! each write and delete did what the oracle says to its own replica.

use crate::at;
use crate::oracle::{context_of, next_dot, sibling_dots, truth, Dots, Event, Sample};
use crate::witnessed::{History, Witnessed};
use crate::{MAX_NODES, MAX_OPS};
use edge_crdt::crdt::{CausalContext, Crdt, Dot, Hlc, MvRegister, Payload, Versioned};
use edge_crdt::NodeId;
use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Which context a write carries.
#[derive(Clone, Debug)]
pub enum Seen {
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
pub enum Op {
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
pub struct Read {
    pub ctx: CausalContext,
    pub dots: Dots,
    /// The state read.
    pub state: Sample,
}

/// How often the interesting cases came up.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Writes with a read's context that left a sibling the read had not seen.
    pub stale_kept: usize,
    /// Deletes that removed a sibling.
    pub deletes_removed: usize,
    /// Writes that were not the winner right away (the clock had not observed).
    pub unobserved_losers: usize,
    /// Writes that won over a sibling they did not replace.
    pub won_over_siblings: usize,
    /// Writes at one stamp from two replicas.
    pub equal_stamps: usize,
}

/// What a history produced.
#[derive(Clone, Debug)]
pub struct Run {
    pub log: Vec<Event>,
    /// Every delta, in the order it was made.
    pub deltas: Vec<Sample>,
    /// Every state a replica passed through.
    pub snapshots: Vec<Sample>,
    /// The final state of each replica.
    pub finals: Vec<Sample>,
    pub reads: Vec<Read>,
    /// Each delete: the read whose context it carried, and the state of its
    /// replica right after it.
    pub deletes: Vec<(usize, Sample)>,
    /// The clock of each replica at the end.
    pub clocks: Vec<Hlc>,
    /// The history-wide wall time at the end.
    pub time: u64,
    pub stats: Stats,
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

pub fn run(n: usize, ops: &[Op]) -> Run {
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
            write(*node, seen, time.saturating_sub(*back), replicas, out);
        }
        Op::Delete { node, read: pick } => delete(*node, *pick, replicas, out),
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

/// A client's write at replica `node` with the context `seen` picks, its
/// clock reading wall time `wall`. Checks the write's delta and what it
/// did to the replica against the oracle, and logs it.
fn write(node: usize, seen: &Seen, wall: u64, replicas: &mut [Replica], out: &mut Run) {
    let id = NodeId(node as u32);
    let index = out.log.len();
    let (ctx, saw, from_read) = carried(node, seen, replicas, out);
    let r = &mut replicas[node];
    let (stamp, caught_up) = stamp(r, wall);
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
    check_write_delta(&out.log, &delta, dot, &value, &saw);
    out.stats.equal_stamps += equal_stamps(&out.log, id, stamp);
    out.log.push(Event::Write {
        dot,
        value: value.clone(),
        saw: saw.clone(),
    });

    let delta = Sample {
        reg: delta,
        known: BTreeSet::from([index]),
    };
    let kept = apply_write(r, &delta, dot, &saw);
    if from_read && kept {
        out.stats.stale_kept += 1;
    }
    tally_winner(r, &value, caught_up, kept, &mut out.stats);
    out.deltas.push(delta);
    out.snapshots.push(r.state.clone());
}

/// The context a write at replica `node` carries, as the API hands it out
/// and as the oracle sees it, and whether it is an earlier read's.
fn carried(
    node: usize,
    seen: &Seen,
    replicas: &[Replica],
    out: &mut Run,
) -> (CausalContext, Dots, bool) {
    match seen {
        Seen::Read(i) if !out.reads.is_empty() => {
            let r = &out.reads[i % out.reads.len()];
            (r.ctx.clone(), r.dots.clone(), true)
        }
        Seen::Blind => (CausalContext::default(), Dots::default(), false),
        Seen::Read(_) | Seen::Current => {
            let r = read(&replicas[node], out);
            (out.reads[r].ctx.clone(), out.reads[r].dots.clone(), false)
        }
    }
}

/// Reads `r`'s clock at `wall` for a write: the stamp, and whether the
/// clock was already past every stamp the replica holds.
fn stamp(r: &mut Replica, wall: u64) -> (u64, bool) {
    // The clock is past every stamp the replica holds when it has
    // observed everything it merged.
    let latest = r.state.reg.latest_stamp().unwrap_or(0);
    if r.observed_all {
        assert!(r.clock.last() >= latest, "an observing clock fell behind");
    }
    let caught_up = r.clock.last() >= latest;
    (r.clock.now(wall), caught_up)
}

/// The delta of a write that saw `saw` holds exactly its value at `dot`,
/// a dot its node never gave before, and a context of what it saw and its
/// dot, nothing below.
fn check_write_delta(log: &[Event], delta: &MvRegister, dot: Dot, value: &Versioned, saw: &Dots) {
    // A node's dots never repeat: each is above all its earlier ones.
    for e in log {
        if let Event::Write { dot: d, .. } = e {
            assert!(
                d.node != dot.node || d.counter < dot.counter,
                "{dot:?} after {d:?}"
            );
        }
    }
    let written: Vec<(Dot, Versioned)> = delta.siblings().map(|(d, v)| (*d, v.clone())).collect();
    assert_eq!(written, vec![(dot, value.clone())], "the write's delta");
    let mut carried = saw.clone();
    carried.insert(dot);
    assert_eq!(
        delta.context(),
        &context_of(&carried),
        "the delta's context is what the write saw and its dot, nothing below"
    );
}

/// How many logged writes of other nodes carry `stamp`.
fn equal_stamps(log: &[Event], id: NodeId, stamp: u64) -> usize {
    log.iter()
        .filter(|e| matches!(e, Event::Write { value, dot, .. } if value.stamp == stamp && dot.node != id))
        .count()
}

/// Merges a write's delta into its replica: the write replaces exactly the
/// siblings its context covered, not the ones that arrived after its read.
/// Returns whether any sibling was kept.
fn apply_write(r: &mut Replica, delta: &Sample, dot: Dot, saw: &Dots) -> bool {
    let before = sibling_dots(&r.state.reg);
    r.state.absorb(delta);
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
    kept
}

/// A write whose clock had caught up wins at once; one whose had not may
/// lose. Counts both for the coverage check.
fn tally_winner(r: &Replica, value: &Versioned, caught_up: bool, kept: bool, stats: &mut Stats) {
    let winner = r.state.reg.resolve() == Some(value);
    if caught_up {
        assert!(
            winner,
            "a write after observing everything must win: {:?}",
            r.state.reg
        );
        if kept {
            stats.won_over_siblings += 1;
        }
    } else if !winner {
        stats.unobserved_losers += 1;
    }
}

/// A client's delete at replica `node` of what an earlier read (or a fresh
/// one) saw: it removes exactly the siblings the read saw.
fn delete(node: usize, pick: Option<usize>, replicas: &mut [Replica], out: &mut Run) {
    let which = match pick {
        Some(i) if !out.reads.is_empty() => i % out.reads.len(),
        _ => read(&replicas[node], out),
    };
    let (ctx, dots) = (out.reads[which].ctx.clone(), out.reads[which].dots.clone());
    let r = &mut replicas[node];
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
pub fn history() -> impl Strategy<Value = Run> {
    (2..=MAX_NODES)
        .prop_flat_map(|n| (Just(n), vec(op(n), 1..MAX_OPS)))
        .prop_map(|(n, ops)| run(n, &ops))
}
