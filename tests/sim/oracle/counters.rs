//! The counter oracle: each counter ends at the total of its acknowledged
//! steps, and the counter only ever incremented never shows more than its
//! total at any node, nor goes down at an active node (across restarts).

use edge_crdt::engine::ObjectId;
use edge_crdt::NodeId;
use std::collections::BTreeMap;

/// The acknowledged totals.
#[derive(Debug)]
pub struct Counters {
    /// The counter written with positive steps only.
    up: ObjectId,
    /// The total of the acknowledged steps of each counter written.
    pub expected: BTreeMap<ObjectId, i64>,
    /// The last value of `up` each active node held.
    last_up: BTreeMap<NodeId, i64>,
}

impl Counters {
    /// An oracle in which `up` is only ever incremented.
    pub fn new(up: ObjectId) -> Self {
        Counters {
            up,
            expected: BTreeMap::new(),
            last_up: BTreeMap::new(),
        }
    }

    /// The counter only ever incremented.
    pub fn up(&self) -> &ObjectId {
        &self.up
    }

    /// A step `by` of `object` was acknowledged.
    pub fn acked(&mut self, object: &ObjectId, by: i64) {
        *self.expected.entry(object.clone()).or_default() += by;
    }

    /// The acknowledged total of `object`.
    pub fn total(&self, object: &ObjectId) -> i64 {
        self.expected.get(object).copied().unwrap_or(0)
    }

    /// Node `id` holds `value` of the increment-only counter: never over
    /// the acknowledged total, and while `active`, never below what it held.
    pub fn check_up(&mut self, id: NodeId, value: i64, active: bool) -> Result<(), String> {
        let total = self.total(&self.up);
        if value > total {
            return Err(format!(
                "{id}: {} = {value}, over the acknowledged {total}",
                self.up
            ));
        }
        if !active {
            return Ok(());
        }
        let last = self.last_up.insert(id, value).unwrap_or(0);
        if value < last {
            return Err(format!(
                "{id}: {} went down from {last} to {value}",
                self.up
            ));
        }
        Ok(())
    }

    /// Node `id` holds exactly the total of every counter, as `value` reads it.
    pub fn check_final(&self, id: NodeId, value: impl Fn(&ObjectId) -> i64) -> Result<(), String> {
        for (object, want) in &self.expected {
            let got = value(object);
            if got != *want {
                return Err(format!("{id}: {object} = {got}, expected {want}"));
            }
        }
        Ok(())
    }
}
