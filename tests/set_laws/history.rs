//! Random histories: the operations, the generators, and the replay that
//! logs each insert, remove and creation for the oracle.

use crate::oracle::{elements, Event, Sample, Side, Unpruned};
use crate::witnessed::{History, Witnessed};
use edge_crdt::crdt::{Bias, Crdt, Element, Hlc, LwwSet};
use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// One step of a history. Wall times are offsets from a history-wide time
/// that only moves by `advance`, so different replicas often read the same
/// millisecond, and `back` makes one replica's clock step back.
#[derive(Clone, Debug)]
enum Op {
    /// Replica `node` inserts or removes `picks` from the pool.
    Write {
        node: usize,
        side: Side,
        picks: Vec<usize>,
        advance: u64,
        back: u64,
    },
    /// Two clients at the same moment: replica `a` inserts the element
    /// `pick` and replica `b` removes it, both reading wall time `advance`
    /// ms later (so two clocks that saw nothing later give one stamp).
    Concurrent {
        a: usize,
        b: usize,
        pick: usize,
        advance: u64,
    },
    /// Replica `node` creates the set; at a clock stamp or at `raw`.
    Create {
        node: usize,
        bias: Bias,
        raw: Option<u64>,
        advance: u64,
    },
    /// Replica `to` merges the whole state of replica `from`; its clock
    /// observes the result when `observe` (as a cluster node does).
    Merge {
        from: usize,
        to: usize,
        observe: bool,
    },
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

fn run(n: usize, ops: &[Op]) -> Run {
    let mut replicas = vec![Sample::empty(); n];
    let mut clocks = vec![Hlc::default(); n];
    let mut time = 1u64;
    let mut out = Run {
        log: Vec::new(),
        deltas: Vec::new(),
        snapshots: Vec::new(),
        finals: Vec::new(),
    };
    for op in ops {
        if let Op::Concurrent {
            a,
            b,
            pick,
            advance,
        } = op
        {
            time += advance;
            for (node, side) in [(*a, Side::Add), (*b, Side::Remove)] {
                let write = Op::Write {
                    node,
                    side,
                    picks: vec![*pick],
                    advance: 0,
                    back: 0,
                };
                play(&write, &mut replicas, &mut clocks, &mut time, &mut out);
            }
            continue;
        }
        play(op, &mut replicas, &mut clocks, &mut time, &mut out);
    }
    out.finals = replicas;
    out
}

/// Plays one operation other than [`Op::Concurrent`].
fn play(op: &Op, replicas: &mut [Sample], clocks: &mut [Hlc], time: &mut u64, out: &mut Run) {
    let (node, delta) = match op {
        Op::Write {
            node,
            side,
            picks,
            advance,
            back,
        } => {
            *time += advance;
            let stamp = clocks[*node].now(time.saturating_sub(*back));
            let set = &replicas[*node].set;
            (*node, write(set, *side, picks, stamp, &mut out.log))
        }
        Op::Create {
            node,
            bias,
            raw,
            advance,
        } => {
            *time += advance;
            let stamp = raw.unwrap_or_else(|| clocks[*node].now(*time));
            (*node, create(*bias, stamp, &mut out.log))
        }
        Op::Concurrent { .. } => unreachable!("played as two writes"),
        Op::Merge { from, to, observe } => {
            merge(*from, *to, *observe, replicas, clocks, out);
            return;
        }
    };
    replicas[node].absorb(&delta);
    out.deltas.push(delta);
    out.snapshots.push(replicas[node].clone());
}

/// The delta of inserting or removing the `picks` of the pool at `stamp`
/// at a replica holding `set`, one logged entry per element.
fn write(set: &LwwSet, side: Side, picks: &[usize], stamp: u64, log: &mut Vec<Event>) -> Sample {
    let pool = elements();
    let chosen: BTreeSet<Element> = picks.iter().map(|i| pool[*i].clone()).collect();
    let delta = match side {
        Side::Add => set.insert(chosen.iter().cloned(), stamp),
        Side::Remove => set.remove(chosen.iter().cloned(), stamp),
    };
    let mut full = Unpruned::default();
    let mut known = BTreeSet::new();
    for e in chosen {
        let target = match side {
            Side::Add => &mut full.adds,
            Side::Remove => &mut full.removes,
        };
        target.insert(e.clone(), stamp);
        known.insert(log.len());
        log.push(Event::Entry {
            element: e,
            side,
            stamp,
        });
    }
    Sample {
        set: delta,
        full,
        known,
    }
}

/// The delta of creating the set with `bias` at `stamp`, logged.
fn create(bias: Bias, stamp: u64, log: &mut Vec<Event>) -> Sample {
    let full = Unpruned {
        created: Some((stamp, bias)),
        ..Unpruned::default()
    };
    let known = BTreeSet::from([log.len()]);
    log.push(Event::Create { bias, stamp });
    Sample {
        set: LwwSet::new(bias, stamp),
        full,
        known,
    }
}

/// Replica `to` merges the whole state of replica `from`, its clock
/// observing the result when `observe`.
fn merge(
    from: usize,
    to: usize,
    observe: bool,
    replicas: &mut [Sample],
    clocks: &mut [Hlc],
    out: &mut Run,
) {
    if from == to {
        return;
    }
    let state = replicas[from].clone();
    replicas[to].absorb(&state);
    if observe {
        if let Some(t) = replicas[to].set.latest_stamp() {
            clocks[to].observe(t);
        }
    }
    out.snapshots.push(replicas[to].clone());
}

pub fn bias() -> impl Strategy<Value = Bias> {
    prop_oneof![Just(Bias::AddWins), Just(Bias::RemoveWins)]
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    let side = prop_oneof![Just(Side::Add), Just(Side::Remove)];
    // Time stands still half the time; a clock reads behind a third of it.
    let advance = prop_oneof![2 => Just(0u64), 1 => 1..3u64];
    let back = prop_oneof![2 => Just(0u64), 1 => 1..4u64];
    // Two hot elements take most writes.
    let pick = prop_oneof![3 => 0..2usize, 1 => 0..elements().len()];
    let picks = vec(pick, 1..=2);
    // Raw creation stamps are early: below most clock stamps.
    let raw = prop_oneof![Just(None), (1..=Hlc::stamp_of(4)).prop_map(Some)];
    prop_oneof![
        8 => (0..n, side, picks, advance.clone(), back).prop_map(|(node, side, picks, advance, back)| Op::Write {
            node,
            side,
            picks,
            advance,
            back,
        }),
        2 => (0..n, 0..n, 0..2usize, 1..3u64).prop_map(|(a, b, pick, advance)| Op::Concurrent {
            a,
            b,
            pick,
            advance,
        }),
        1 => (0..n, bias(), raw, advance).prop_map(|(node, bias, raw, advance)| Op::Create {
            node,
            bias,
            raw,
            advance,
        }),
        4 => (0..n, 0..n, any::<bool>()).prop_map(|(from, to, observe)| Op::Merge { from, to, observe }),
    ]
}

/// A random history over 2 to 4 replicas.
pub fn history() -> impl Strategy<Value = Run> {
    (2..=4usize)
        .prop_flat_map(|n| (Just(n), vec(op(n), 1..60)))
        .prop_map(|(n, ops)| run(n, &ops))
}
