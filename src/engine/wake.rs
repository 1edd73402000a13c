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
    /// the objects (and whole or not) as last stored
    stored: Vec<(ObjectId, bool)>,
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

    /// A restarted node's stored wakes: due at its first tick.
    pub(super) fn restore(&mut self, wakes: Vec<(ObjectId, bool)>) {
        for (object, whole) in &wakes {
            self.ask(object, 0, *whole);
        }
        self.stored = wakes;
    }

    /// The objects with a wake, if they are not the ones last stored.
    pub(super) fn changed(&mut self) -> Option<Vec<(ObjectId, bool)>> {
        let asked = self.asked.iter().map(|(o, (_, whole))| (o, *whole));
        let due = self.due.iter().map(|(o, whole)| (o, *whole));
        let mut now: Vec<(ObjectId, bool)> =
            asked.chain(due).map(|(o, w)| (o.clone(), w)).collect();
        crate::heapsort::sort(&mut now);
        now.dedup_by(|a, b| a.0 == b.0);
        if now == self.stored {
            return None;
        }
        self.stored = now.clone();
        Some(now)
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
    fn the_set_of_wakes_is_stored_when_it_changes_and_restored_due_at_once() {
        let mut w = Wakes::default();
        let a = ObjectId::new("stream", "a").unwrap();
        w.ask(&a, 50, false);
        assert_eq!(w.changed(), Some(vec![(a.clone(), false)]));
        w.ask(&a, 40, false);
        assert_eq!(w.changed(), None, "a new time alone is not stored");
        let mut back = Wakes::default();
        back.restore(vec![(a.clone(), true)]);
        assert_eq!((back.next(), back.changed()), (Some(0), None));
    }

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
