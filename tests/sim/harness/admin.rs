//! The admin: retires nodes one at a time, retrying each until it is
//! retired, and adds nodes, with ids from one allocator (as the edge's
//! registry object hands them out).

use super::Sim;
use edge_crdt::engine::{RetireError, Status};
use edge_crdt::NodeId;

#[derive(Debug, Default)]
pub struct Admin {
    /// When to start each retirement.
    pub retire_at: Vec<u64>,
    /// When to add each node.
    pub add_at: Vec<u64>,
    /// The node being retired, and when to retry.
    pub current: Option<(NodeId, u64)>,
    /// Between retries of a retirement.
    pub retry_ms: u64,
    /// Each retired node and its heir.
    pub retired: Vec<(NodeId, NodeId)>,
    pub added: Vec<NodeId>,
}

impl Admin {
    pub fn new(retry_ms: u64) -> Self {
        Admin {
            retry_ms,
            ..Admin::default()
        }
    }

    /// Whether a retirement is under way or waits its time.
    pub fn busy(&self) -> bool {
        self.current.is_some() || !self.retire_at.is_empty()
    }
}

impl Sim {
    pub fn admin_step(&mut self) {
        self.admin_retire();
        self.admin_add();
    }

    /// Retries the current retirement when due, or starts the next.
    fn admin_retire(&mut self) {
        let now = self.now;
        match self.admin.current {
            Some((_, retry_at)) if now < retry_at => {}
            Some((victim, _)) => self.retry_retire(victim),
            None if self.admin.retire_at.first().is_some_and(|at| now >= *at) => {
                self.start_retire()
            }
            None => {}
        }
    }

    fn retry_retire(&mut self, victim: NodeId) {
        self.admin.current = Some((victim, self.now + self.admin.retry_ms));
        let Some(engine) = self.engine_mut(victim) else {
            return;
        };
        if let Status::Retired { heir } = engine.node.status() {
            self.admin.retired.push((victim, heir));
            self.admin.current = None;
            return;
        }
        match engine.node.begin_retire() {
            Ok(_) | Err(RetireError::Busy(_)) => {}
            Err(e) => self.fail(format!("retrying the retirement of {victim}: {e:?}")),
        }
        self.settle_node(victim);
    }

    /// Retires a random active node, keeping at least three active.
    fn start_retire(&mut self) {
        let active = self.active_up();
        if active.len() < 4 {
            return;
        }
        let victim = self.rng.pick(&active).expect("active nodes");
        match self.engine_mut(victim).expect("up").node.begin_retire() {
            Ok(_) => {
                self.admin.retire_at.remove(0);
                self.admin.current = Some((victim, self.now + self.admin.retry_ms));
            }
            // Another drain is not finished in this node's view, or a new
            // node has not yet heard that it was added: later.
            Err(RetireError::Busy(_) | RetireError::NotMember) => {}
            Err(e) => self.fail(format!("retiring {victim}: {e:?}")),
        }
        self.settle_node(victim);
    }

    /// Adds the next node through a random active one, when its time has come.
    fn admin_add(&mut self) {
        if self.admin.add_at.first().is_none_or(|at| self.now < *at) {
            return;
        }
        let Some(adder) = self.rng.pick(&self.active_up()) else {
            return;
        };
        self.admin.add_at.remove(0);
        let id = NodeId(self.slots.keys().map(|n| n.0 + 1).max().unwrap_or(0));
        let wall = self.wall(adder);
        if let Err(e) = self.engine_mut(adder).expect("up").node.add_node(id, wall) {
            self.fail(format!("{adder} could not add {id}: {e:?}"));
        }
        self.settle_node(adder);
        self.spawn(id);
        self.admin.added.push(id);
    }
}
