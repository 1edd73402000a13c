//! The end of a run: every fault stops, and the cluster must converge.
//! Every live node then holds the acknowledged total of every counter, the
//! oracle's members (and exactly the pruned entries) of every set, the same
//! membership and the same counter and set rows as every other; no leaf is
//! moving; every register is held alike by exactly its replicas; no
//! retired node holds a row; every tombstone is collected; and the
//! register oracle holds at every replica.

use super::nodes::decode;
use super::{ring_replicas, Disk, Faults, Sim};
use edge_crdt::crdt::{Crdt, LwwSet, MvRegister};
use edge_crdt::engine::{Engine, Membership, ObjectId, Status};
use edge_crdt::NodeId;
use std::collections::BTreeMap;

/// What the final register check found.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterCounts {
    /// Acknowledged writes live at the end, and superseded by a context.
    pub live: u64,
    pub superseded: u64,
    /// Registers holding values at the end.
    pub kept: u64,
    /// Registers whose every write was deleted and whose tombstone was
    /// collected: no node holds a row of them.
    pub deleted: u64,
}

/// A node's counter and set rows on disk.
/// Whether `object`'s kind lives on ring replicas (registers, topics).
fn on_ring(object: &ObjectId) -> bool {
    edge_crdt::kinds::CATALOG
        .row_type(object.prefix())
        .is_some_and(|k| k.policy() == edge_crdt::engine::Policy::Ring)
}

/// A node's counter and set rows (all but the ring objects'), in order.
fn gossiped_rows(e: &Engine<Disk>) -> impl Iterator<Item = (&ObjectId, &String, &[u8])> {
    let rows = e.store.tables.rows().filter(|(o, _, _)| !on_ring(o));
    rows.map(|(o, r, s)| (o, r, &s.state[..]))
}

type Rows<'a> = BTreeMap<(&'a ObjectId, &'a String), &'a [u8]>;

impl Sim {
    /// Whether the cluster has converged; if not, why.
    pub fn converged(&self, registers: bool) -> Result<(), String> {
        if self.admin.busy() {
            return Err("a retirement is still under way".into());
        }
        if self.fast_checks {
            self.alike()?;
        }
        let mut reference: Option<(NodeId, &Membership, Rows)> = None;
        for id in self.ids() {
            if !self.own_status(id).is_live() {
                if let Some((object, _, _)) = self.disk(id).tables.rows().next() {
                    return Err(format!("{id} is retired, yet holds {object}"));
                }
                continue;
            }
            let (members, rows) = self.node_converged(id)?;
            match &reference {
                None => reference = Some((id, members, rows)),
                Some((other, theirs, _)) if *theirs != members => {
                    return Err(format!("{id} and {other} know different memberships"));
                }
                Some((other, _, theirs)) if *theirs != rows => {
                    return Err(format!("{id} and {other} hold different states"));
                }
                Some(_) => {}
            }
        }
        let Some((_, members, _)) = reference else {
            return Err("no live node".into());
        };
        if registers {
            self.registers_placed(members)?;
        }
        Ok(())
    }

    /// Conditions of [`Sim::converged`] cheap to check (no row decoded):
    /// no retired node holds a row; every live node is up, active, moves
    /// no leaf, knows one membership and holds the same counter and set
    /// rows; every register is placed.
    fn alike(&self) -> Result<(), String> {
        let mut reference: Option<(NodeId, &Engine<Disk>)> = None;
        for id in self.ids() {
            if !self.own_status(id).is_live() {
                if let Some((object, _, _)) = self.disk(id).tables.rows().next() {
                    return Err(format!("{id} is retired, yet holds {object}"));
                }
                continue;
            }
            let Some(engine) = self.engine(id) else {
                return Err(format!("{id} is down"));
            };
            if engine.node.status() != Status::Active {
                return Err(format!("{id} is {:?}", engine.node.status()));
            }
            if engine.node.leaf_counts().1 > 0 {
                return Err(format!("{id} is still handing off leaves"));
            }
            let Some((other, theirs)) = reference else {
                reference = Some((id, engine));
                continue;
            };
            if theirs.node.members() != engine.node.members() {
                return Err(format!("{id} and {other} know different memberships"));
            }
            if !gossiped_rows(theirs).eq(gossiped_rows(engine)) {
                return Err(format!("{id} and {other} hold different states"));
            }
        }
        match reference {
            Some((_, e)) => self.registers_placed(e.node.members()),
            None => Err("no live node".into()),
        }
    }

    /// Live node `id` is up, active, moves no leaf and agrees with the
    /// counter and set oracles; its membership and non-register rows.
    fn node_converged(&self, id: NodeId) -> Result<(&Membership, Rows<'_>), String> {
        let Some(engine) = self.engine(id) else {
            return Err(format!("{id} is down"));
        };
        if engine.node.status() != Status::Active {
            return Err(format!("{id} is {:?}", engine.node.status()));
        }
        let moving = engine.node.leaf_counts().1;
        if moving > 0 {
            return Err(format!("{id} is still handing off {moving} leaves"));
        }
        self.counters.check_final(id, |o| self.count(id, o))?;
        for (key, log) in &self.sets {
            let set: LwwSet = self.peek(id, key).map(decode).unwrap_or_default();
            log.check_final(&set)
                .map_err(|why| format!("{id}: {key}: {why}"))?;
        }
        let rows = engine.store.tables.rows().filter(|(o, _, _)| !on_ring(o));
        let rows = rows.map(|(o, r, s)| ((o, r), &s.state[..])).collect();
        Ok((engine.node.members(), rows))
    }

    /// Every register is held alike by its replicas, and no ring object
    /// (a register, a topic) by another active node.
    fn registers_placed(&self, members: &Membership) -> Result<(), String> {
        // Each active node's register rows on disk.
        let held: BTreeMap<NodeId, BTreeMap<&ObjectId, &[u8]>> = members
            .active()
            .map(|id| {
                let rows = self.disk(id).tables.rows().filter(|(o, _, _)| on_ring(o));
                (id, rows.map(|(o, _, s)| (o, &s.state[..])).collect())
            })
            .collect();
        let row =
            |id: &NodeId, key: &ObjectId| held.get(id).and_then(|rows| rows.get(key).copied());
        // A tombstone being collected is gone at its collector first:
        // absent and a tombstone agree until the forget arrives.
        let tombstone =
            |s: &[u8]| postcard::from_bytes::<MvRegister>(s).is_ok_and(|r| r.is_tombstone());
        let agree = |a: Option<&[u8]>, b: Option<&[u8]>| match (a, b) {
            (None, Some(s)) | (Some(s), None) => tombstone(s),
            _ => a == b,
        };
        for key in self.regs.keys() {
            let replicas = ring_replicas(&self.placement, key, members);
            let first = row(&replicas[0], key);
            if let Some(r) = replicas.iter().find(|r| !agree(row(r, key), first)) {
                let show = |s: Option<&[u8]>| s.map(|s| super::describe(key, s));
                let (first_at, other) = (replicas[0], show(row(r, key)));
                return Err(format!(
                    "replicas disagree: {:?} at {first_at}, {other:?} at {r}",
                    show(first)
                ));
            }
        }
        for (id, rows) in &held {
            for key in rows.keys() {
                let replicas = ring_replicas(&self.placement, key, members);
                if !replicas.contains(id) {
                    return Err(format!(
                        "{id} holds {key}, not one of its replicas {replicas:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stops every fault and runs until converged, at most `limit_ms`
    /// more; then, with registers, until every tombstone is collected, and
    /// checks the register oracle. Returns how long convergence took.
    pub fn settle(&mut self, limit_ms: u64) -> u64 {
        self.traffic.chaos = false;
        self.faults = Faults::calm();
        self.heal();
        for id in self.ids() {
            self.restart(id);
        }
        let start = self.now;
        while let Err(why) = self.converged(true) {
            if self.now - start > limit_ms {
                self.fail(format!(
                    "no convergence {limit_ms} ms after the faults stopped: {why}"
                ));
            }
            self.step(10, false);
        }
        let took = self.now - start;
        self.run(1_000);
        if let Err(why) = self.converged(false) {
            self.fail(format!("diverged again after converging: {why}"));
        }
        if !self.regs.is_empty() {
            self.collect_tombstones(limit_ms);
            self.check_registers_final();
        }
        for id in self.ids() {
            self.check_disk(id);
        }
        took
    }

    /// Runs until the registers' replicas agree, for a second on end.
    fn registers_settle(&mut self, limit_ms: u64) {
        let start = self.now;
        let mut quiet = 0;
        while quiet < 100 {
            match self.converged(true) {
                Ok(()) => quiet += 1,
                Err(why) if self.now - start > limit_ms => self.fail(format!(
                    "registers not settled {limit_ms} ms after convergence: {why}"
                )),
                Err(_) => quiet = 0,
            }
            self.step(10, false);
        }
    }

    /// Runs until every tombstone is collected (two rounds of questions, a
    /// grace apart) and stays so: a replica's anti-entropy may hand a
    /// tombstone back to its collector just before the replica hears it
    /// is collected, and the collection starts over.
    fn collect_tombstones(&mut self, limit_ms: u64) {
        self.registers_settle(limit_ms);
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
    }

    /// A live node that holds tombstones, and how many.
    pub fn tombstones_held(&self) -> Option<(NodeId, u64)> {
        let held = |id: NodeId| Some((id, self.engine(id)?.node.tombstone_counts().0));
        self.not_retired()
            .into_iter()
            .filter_map(held)
            .find(|(_, n)| *n > 0)
    }

    /// The register oracle, on a converged cluster, read at every replica
    /// of each register in the final membership (loading as a client read
    /// does): the replicas agree, the oracle holds, and a register with no
    /// live value (never written, or deleted and collected) has no row anywhere.
    pub fn check_registers_final(&mut self) -> RegisterCounts {
        let mut counts = RegisterCounts::default();
        let Some(live) = self.not_retired().first().copied() else {
            return counts;
        };
        let members = self.engine(live).expect("up").node.members().clone();
        let keys: Vec<ObjectId> = self.regs.keys().cloned().collect();
        for key in &keys {
            let replicas = ring_replicas(&self.placement, key, &members);
            let held: Vec<MvRegister> = replicas
                .iter()
                .map(|r| self.read_register(*r, key).unwrap_or_default())
                .collect();
            if let Some(i) = (1..held.len()).find(|i| held[*i] != held[0]) {
                self.fail(format!(
                    "{key}: replicas disagree: {:?} at {}, {:?} at {}",
                    held[0], replicas[0], held[i], replicas[i]
                ));
            }
            let reg = &held[0];
            match self.regs[key].check_final(reg) {
                Ok((live, superseded)) => {
                    (counts.live, counts.superseded) =
                        (counts.live + live, counts.superseded + superseded)
                }
                Err(why) => self.fail(format!("{key} at the replicas {replicas:?}: {why}")),
            }
            if !reg.is_empty() {
                counts.kept += 1;
                continue;
            }
            if let Some((id, row)) = self.rows(key).first() {
                self.fail(format!(
                    "{key}: no value is live, yet {id} keeps a row: {row}"
                ));
            }
            counts.deleted += u64::from(!self.regs[key].writes.is_empty());
        }
        counts
    }
}
