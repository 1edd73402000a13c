//! Virtual time passing: a step delivers what is due, ticks the nodes
//! whose timers are due, lets the clients and the admin act; random faults
//! crash nodes and cut the network; closing waves of writes end a run.

use super::{blog, home, kv_key, set_keys, visits, Ctx, Cut, Sim};
use crate::oracle::SetOp;
use edge_crdt::crdt::{Bias, Element};
use edge_crdt::{NodeId, NodeSet, Rng};

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

impl Sim {
    /// One step of `dt` ms: deliver, tick, then the world acts.
    pub fn step(&mut self, dt: u64, writes: bool) {
        self.now += dt;
        self.deliver_due();
        self.tick_due();
        if writes && self.rng.chance(300) {
            self.random_write();
        }
        self.admin_step();
    }

    /// Runs `ms` of virtual time in steps of 10 ms, with no client writes.
    pub fn run(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.step(10, false);
        }
    }

    /// Crashes (at most two nodes down at once), restarts when due, and
    /// partitions that come and go.
    pub fn random_faults(&mut self) {
        let down = self.ids().into_iter().filter(|id| !self.is_up(*id)).count();
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
        if self.net.is_partitioned() && self.now >= self.net.cut_ends {
            self.heal();
        } else if !self.net.is_partitioned() && self.rng.chance(self.faults.partition) {
            self.random_partition();
        }
    }

    fn random_partition(&mut self) {
        let groups = self.rng.range(2, 3) as usize;
        let mut sets = vec![NodeSet::new(); groups];
        for id in self.ids() {
            sets[self.rng.below(groups as u64) as usize].insert(id);
        }
        // Leave the last group unnamed sometimes: it is a group too.
        if self.rng.chance(300) {
            sets.pop();
        }
        let cut = [Cut::Network, Cut::Nodes, Cut::Both][self.rng.below(3) as usize];
        self.partition(sets, cut);
        self.net.cut_ends = self.now + self.rng.range(200, 3_000);
        self.stats.partitions += 1;
    }

    fn random_write(&mut self) {
        if self.clients.kv_share > 0 && self.rng.chance(self.clients.kv_share) {
            self.random_kv_op();
            return;
        }
        let id = self.rng.pick(&self.ids()).expect("nodes");
        if self.rng.chance(self.clients.set_share) {
            self.random_set_write(id);
        } else if self.rng.chance(400) {
            let by = self.rng.range(1, 1000) as i64;
            self.increment(id, &visits(), by);
        } else {
            let key = if self.rng.chance(500) { home() } else { blog() };
            let mut by = self.rng.range(1, 1000) as i64;
            if self.rng.chance(400) {
                by = -by;
            }
            self.increment(id, &key, by);
        }
    }

    fn random_set_write(&mut self, id: NodeId) {
        let [fruits, tags] = set_keys();
        let key = if self.rng.chance(500) {
            fruits.clone()
        } else {
            tags
        };
        let pool = elements();
        let element = |rng: &mut Rng| pool[rng.below(pool.len() as u64) as usize].clone();
        let roll = self.rng.below(1000);
        if roll < 15 && key == fruits {
            let bias = if self.rng.chance(500) {
                Bias::AddWins
            } else {
                Bias::RemoveWins
            };
            self.set_write(id, &key, SetOp::Create(bias));
        } else if roll < 200 {
            // Two clients in the same millisecond at two nodes: one inserts
            // an element, the other removes it.
            let other = self.rng.pick(&self.ids()).expect("nodes");
            let e = element(&mut self.rng);
            self.set_write(id, &key, SetOp::Insert(vec![e.clone()]));
            self.set_write(other, &key, SetOp::Remove(vec![e]));
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
            self.set_write(id, &key, op);
        }
    }

    /// A register client: a random key, through a random replica of it as
    /// a random live member's view names them, blind or with a context it
    /// read, writing or deleting.
    fn random_kv_op(&mut self) {
        let key = kv_key(self.rng.below(self.clients.kv_keys));
        let live = |id: &NodeId| {
            self.engine(*id)
                .is_some_and(|e| e.node.is_member() && e.node.status().is_live())
        };
        let viewers: Vec<NodeId> = self.ids().into_iter().filter(live).collect();
        let Some(viewer) = self.rng.pick(&viewers) else {
            return;
        };
        let replicas = self.engine(viewer).expect("up").node.replicas(&key);
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
        match how {
            Ctx::Blind => self.stats.kv_blind += 1,
            Ctx::Read => self.stats.kv_read += 1,
            Ctx::Remembered | Ctx::Given(_) => self.stats.kv_remembered += 1,
        }
        self.kv_request(target, &key, how, delete);
    }

    /// For every set element, a client inserts it at one node while another
    /// removes it at another node, in the same millisecond: the last word
    /// on many elements is a tie, for the bias to decide.
    pub fn closing_wave(&mut self) {
        for key in set_keys() {
            for e in elements() {
                self.step(1, false);
                self.random_faults();
                let a = self.rng.pick(&self.ids()).expect("nodes");
                let b = self.rng.pick(&self.ids()).expect("nodes");
                self.set_write(a, &key, SetOp::Insert(vec![e.clone()]));
                self.set_write(b, &key, SetOp::Remove(vec![e]));
            }
        }
    }

    /// Under the faults still, clients read a third of the registers at a
    /// replica and delete what they read: some end deleted, as tombstones.
    pub fn kv_closing_wave(&mut self) {
        for i in 0..self.clients.kv_keys {
            self.step(1, false);
            self.random_faults();
            if !self.rng.chance(333) {
                continue;
            }
            let key = kv_key(i);
            let Some(viewer) = self.rng.pick(&self.active_up()) else {
                continue;
            };
            let replicas = self.engine(viewer).expect("up").node.replicas(&key);
            if let Some(target) = self.rng.pick(&replicas) {
                self.kv_request(target, &key, Ctx::Read, true);
            }
        }
    }
}
