//! A node that forgot the key (handed it off, or collected it) and writes
//! again: its new dot repeats none of its old ones, and its write removes
//! nothing it did not see.

use crate::history::{history, Read, Run};
use crate::oracle::{check, context_of, next_dot, sibling_dots, truth, Dots, Event, Sample};
use crate::witnessed::{join, History, Witnessed};
use crate::{at, dot};
use edge_crdt::crdt::{CausalContext, Crdt, Dot, Hlc, MvRegister, Payload, Stamp, Versioned};
use edge_crdt::NodeId;
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::{BTreeMap, BTreeSet};

proptest! {
    #![proptest_config(crate::config())]

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
    let o = other.index(run.finals.len());
    let mut world = Forgetting::start(run, w, o, run.time.saturating_sub(back))?;
    if deleted {
        world.delete_everything_at_other()?;
    }
    let fresh = world.forget_and_write()?;
    world.the_key_lives_on(&fresh)?;
    let everywhere = world.a_stale_write_at_other(stale, delivered, &fresh)?;
    world.a_read_write_replaces_everything(everywhere)
}

/// The history of [`forgotten`] as it goes on past the end of `run`.
struct Forgetting<'a> {
    run: &'a Run,
    log: Vec<Event>,
    replicas: Vec<Sample>,
    clocks: Vec<Hlc>,
    /// The wall time every clock reads from here on.
    wall: u64,
    /// The node that forgets, and its replica.
    w: NodeId,
    at_w: usize,
    /// The other replica, where a client writes with an old context.
    o: usize,
    /// Every replica's final state merged (and the delete, if any).
    all: Sample,
    /// A client's read of `all` before `w` forgets.
    read_before: Read,
}

/// The first write of `w` after it forgot the key.
struct Fresh {
    delta: Sample,
    value: Versioned,
    dot: Dot,
}

/// The siblings of `reg`, in dot order.
fn siblings(reg: &MvRegister) -> Vec<(Dot, Versioned)> {
    reg.siblings().map(|(d, v)| (*d, v.clone())).collect()
}

impl<'a> Forgetting<'a> {
    fn start(run: &'a Run, w: NodeId, o: usize, wall: u64) -> Result<Self, TestCaseError> {
        let log = run.log.clone();
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
        Ok(Forgetting {
            run,
            log,
            replicas: run.finals.clone(),
            clocks: run.clocks.clone(),
            wall,
            w,
            at_w: w.0 as usize,
            o,
            all,
            read_before,
        })
    }

    /// A client deletes everything, at the other replica, with the read
    /// from before.
    fn delete_everything_at_other(&mut self) -> Result<(), TestCaseError> {
        let o = self.o;
        let tombstone = Sample {
            reg: self.replicas[o].reg.delete(&self.read_before.ctx),
            known: BTreeSet::from([self.log.len()]),
        };
        self.log.push(Event::Delete {
            saw: self.read_before.dots.clone(),
        });
        self.replicas[o].absorb(&tombstone);
        self.all.absorb(&tombstone);
        prop_assert!(self.all.reg.is_empty() && !self.all.reg.context().is_empty());
        check(&self.log, &self.replicas[o])
    }

    /// `w` forgets the key; its clock goes on, and it writes blind.
    fn forget_and_write(&mut self) -> Result<Fresh, TestCaseError> {
        let (w, at_w) = (self.w, self.at_w);
        self.replicas[at_w] = Sample::empty();
        let stamp = self.clocks[at_w].now(self.wall);
        let value = Versioned {
            payload: Payload::Text("after forgetting".into()),
            stamp,
        };
        let delta = self.replicas[at_w].reg.write(
            at(w, stamp),
            &CausalContext::default(),
            value.payload.clone(),
        );
        let dot = Dot {
            node: w,
            counter: stamp,
        };
        self.check_fresh_delta(&delta, dot, &value)?;
        let delta = Sample {
            reg: delta,
            known: BTreeSet::from([self.log.len()]),
        };
        self.log.push(Event::Write {
            dot,
            value: value.clone(),
            saw: Dots::default(),
        });
        self.replicas[at_w].absorb(&delta);
        check(&self.log, &self.replicas[at_w])?;
        Ok(Fresh { delta, value, dot })
    }

    /// The fresh write's delta holds its value at its stamp's dot and
    /// carries that dot alone, above every dot `w` gave before and in no
    /// context read before.
    fn check_fresh_delta(
        &self,
        delta: &MvRegister,
        new_dot: Dot,
        fresh: &Versioned,
    ) -> Result<(), TestCaseError> {
        let (w, stamp) = (self.w, new_dot.counter);
        prop_assert_eq!(siblings(delta), vec![(new_dot, fresh.clone())]);
        // A blind first write saw nothing: its context is its own dot alone.
        let mut own = Dots::default();
        own.insert(new_dot);
        prop_assert_eq!(delta.context(), &context_of(&own));
        for below in [1, stamp - 1] {
            let d = dot(w.0, below);
            prop_assert!(!delta.context().contains(d), "{:?} covers {:?}", delta, d);
        }
        for e in &self.log {
            if let Event::Write { dot: d, .. } = e {
                prop_assert!(
                    d.node != w || d.counter < stamp,
                    "{:?} repeats {:?}",
                    new_dot,
                    d
                );
            }
        }
        prop_assert!(!self.read_before.ctx.contains(new_dot));
        for r in &self.run.reads {
            prop_assert!(!r.ctx.contains(new_dot) && !r.dots.contains(&new_dot));
        }
        Ok(())
    }

    /// Where the key lives on, the write removes nothing: every value
    /// stays, `w`'s own earlier ones included.
    fn the_key_lives_on(&self, fresh: &Fresh) -> Result<(), TestCaseError> {
        let with_all = join(&self.all, &fresh.delta);
        check(&self.log, &with_all)?;
        let mut kept = sibling_dots(&self.all.reg);
        kept.insert(fresh.dot);
        prop_assert_eq!(sibling_dots(&with_all.reg), kept);
        Ok(())
    }

    /// A client writes at `other` with a context read before (`stale`
    /// picks it), after the fresh write reached it when `delivered`: the
    /// fresh value stays a sibling. Returns both replicas merged.
    fn a_stale_write_at_other(
        &mut self,
        stale: Index,
        delivered: bool,
        fresh: &Fresh,
    ) -> Result<Sample, TestCaseError> {
        let (o, at_w) = (self.o, self.at_w);
        let mut olds: Vec<&Read> = self.run.reads.iter().collect();
        olds.push(&self.read_before);
        let old = *stale.get(&olds);
        if o != at_w && delivered {
            self.replicas[o].absorb(&fresh.delta);
        }
        let id = NodeId(o as u32);
        let stamp = self.clocks[o].now(self.wall);
        let late_value = Versioned {
            payload: Payload::Text("stale".into()),
            stamp,
        };
        let late_dot = next_dot(
            &truth(&self.log, &self.replicas[o].known).context,
            id,
            stamp,
        );
        let late = self.replicas[o]
            .reg
            .write(at(id, stamp), &old.ctx, late_value.payload.clone());
        prop_assert_eq!(siblings(&late), vec![(late_dot, late_value.clone())]);
        let mut carried = old.dots.clone();
        carried.insert(late_dot);
        prop_assert_eq!(late.context(), &context_of(&carried));
        prop_assert!(!late.context().contains(fresh.dot));
        let late = Sample {
            reg: late,
            known: BTreeSet::from([self.log.len()]),
        };
        self.log.push(Event::Write {
            dot: late_dot,
            value: late_value,
            saw: old.dots.clone(),
        });
        self.replicas[o].absorb(&late);
        check(&self.log, &self.replicas[o])?;
        let everywhere = join(&self.replicas[at_w], &self.replicas[o]);
        let other_way = join(&self.replicas[o], &self.replicas[at_w]);
        prop_assert_eq!(&everywhere.reg, &other_way.reg);
        check(&self.log, &everywhere)?;
        prop_assert!(everywhere
            .reg
            .siblings()
            .any(|(d, v)| *d == fresh.dot && *v == fresh.value));
        Ok(everywhere)
    }

    /// A client that read the new value (in `last`) does replace it, and
    /// all the rest.
    fn a_read_write_replaces_everything(&mut self, mut last: Sample) -> Result<(), TestCaseError> {
        let w = self.w;
        let seen = last.reg.context().clone();
        let stamp = self.clocks[self.at_w].now(self.wall);
        let value = Versioned {
            payload: Payload::Text("read".into()),
            stamp,
        };
        let known = truth(&self.log, &last.known).context;
        let last_dot = next_dot(&known, w, stamp);
        let delta = Sample {
            reg: last.reg.write(at(w, stamp), &seen, value.payload.clone()),
            known: BTreeSet::from([self.log.len()]),
        };
        self.log.push(Event::Write {
            dot: last_dot,
            value: value.clone(),
            saw: known,
        });
        last.absorb(&delta);
        check(&self.log, &last)?;
        prop_assert_eq!(siblings(&last.reg), vec![(last_dot, value)]);
        Ok(())
    }
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
