//! Objects' wakes: a kind asks to run [`RowType::on_wake`] on an object
//! later ([`SyncCx::wake_in`]), for timers of its own sync (a dormant
//! topic's rebroadcast, a retried backfill). A due wake loads what it
//! asked for (the object's local rows, or every row) before it runs.
//!
//! [`RowType::on_wake`]: super::RowType::on_wake
//! [`SyncCx::wake_in`]: super::SyncCx::wake_in

use super::exec::SyncCx;
use super::needs::Needs;
use super::node::Node;
use super::ObjectId;
use crate::vec_map::VecMap;

/// The wakes asked for, and those due but waiting for storage.
#[derive(Debug, Default)]
pub(super) struct Wakes {
    /// when each object wakes, and whether it reads every row
    asked: VecMap<ObjectId, (u64, bool)>,
    /// due, loading what they read
    due: VecMap<ObjectId, bool>,
}

impl Wakes {
    /// Asks to wake `object` at `at` (the earlier of two asks; whole if
    /// either is).
    pub(super) fn ask(&mut self, object: &ObjectId, at: u64, whole: bool) {
        let wake = self
            .asked
            .get_or_insert_with(object.clone(), || (at, whole));
        *wake = (wake.0.min(at), wake.1 || whole);
    }

    /// The earliest wake asked for.
    pub(super) fn next(&self) -> Option<u64> {
        self.asked.values().map(|(at, _)| *at).min()
    }
}

impl Node {
    /// At a tick: runs the wakes left waiting since the last (whatever
    /// storage gave them), then those now due whose rows are in memory;
    /// the others wait for [`Node::wanted`] to load them.
    pub(super) fn wake_due(&mut self, now: u64) {
        self.run_wakes(true);
        let mut due = Vec::new();
        self.wakes.asked.retain(|object, (at, whole)| {
            let ready = *at <= now;
            if ready {
                due.push((object.clone(), *whole));
            }
            !ready
        });
        for (object, whole) in due {
            let w = self.wakes.due.get_or_insert_with(object, || whole);
            *w |= whole;
        }
        self.run_wakes(false);
    }

    /// What the due wakes read that is not in memory.
    pub(super) fn need_wakes(&self) -> Needs {
        self.wakes
            .due
            .iter()
            .fold(Needs::default(), |n, (o, whole)| {
                n.and(self.needs_object(o, &[], *whole))
            })
    }

    /// Runs the due wakes whose rows are loaded (`all`: every due wake).
    pub(super) fn run_wakes(&mut self, all: bool) {
        let mut ready = Vec::new();
        let due = std::mem::take(&mut self.wakes.due);
        for (object, whole) in due {
            if all || self.needs_object(&object, &[], whole).is_empty() {
                ready.push(object);
            } else {
                self.wakes.due.insert(object, whole);
            }
        }
        for object in ready {
            if let Some(kind) = self.row_type(&object) {
                kind.on_wake(&mut SyncCx::watching(self, &object));
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn two_asks_keep_the_earlier_time_and_any_whole() {
        let mut w = Wakes::default();
        let a = ObjectId::new("stream", "a").unwrap();
        w.ask(&a, 50, false);
        w.ask(&a, 90, true);
        assert_eq!(w.asked.get(&a), Some(&(50, true)));
        assert_eq!(w.next(), Some(50));
    }
}
