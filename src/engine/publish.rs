//! Subscribers: the rows of a subscribed object that changed are pushed at
//! most once per gossip interval, and subscribers get a heartbeat.

use super::node::Node;
use super::{Effect, ObjectId, RowKey};
use crate::{VecMap, VecSet};

#[derive(Debug, Default)]
pub(crate) struct Publisher {
    subscribers: VecMap<ObjectId, usize>,
    unpublished: VecMap<ObjectId, VecSet<RowKey>>,
    next_heartbeat: u64,
}

impl Publisher {
    /// A row changed: remember it if anyone listens.
    pub fn changed(&mut self, object: &ObjectId, row: &str) {
        if self.subscribers.contains_key(object) {
            self.unpublished
                .get_or_default(object.clone())
                .insert(row.to_owned());
        }
    }

    /// A row is gone: nothing of it to push.
    pub fn forget(&mut self, object: &ObjectId, row: &str) {
        if let Some(rows) = self.unpublished.get_mut(object) {
            rows.remove(row);
        }
    }

    /// Whether a push waits.
    pub fn pending(&self) -> bool {
        !self.unpublished.is_empty()
    }

    /// When the next heartbeat is due, while anyone listens.
    pub fn next_heartbeat(&self) -> Option<u64> {
        (!self.subscribers.is_empty()).then_some(self.next_heartbeat)
    }

    /// Whether a heartbeat is due now; if so, schedules the next.
    pub fn heartbeat_due(&mut self, now: u64, interval: u64) -> bool {
        if self.subscribers.is_empty() || now < self.next_heartbeat {
            return false;
        }
        self.next_heartbeat = now + interval;
        true
    }
}

impl Node {
    /// Starts a subscription to `object`'s changes.
    pub fn subscribe(&mut self, object: &ObjectId) {
        *self.publisher.subscribers.get_or_default(object.clone()) += 1;
    }

    /// Ends one subscription to `object`.
    pub fn unsubscribe(&mut self, object: &ObjectId) {
        let p = &mut self.publisher;
        if let Some(n) = p.subscribers.get_mut(object) {
            *n -= 1;
            if *n == 0 {
                p.subscribers.remove(object);
                p.unpublished.remove(object);
            }
        }
    }

    /// Queues one push per object with changed rows.
    pub(super) fn flush_publish(&mut self) {
        for (object, rows) in std::mem::take(&mut self.publisher.unpublished) {
            let rows: Vec<(RowKey, Vec<u8>)> = rows
                .into_iter()
                .filter_map(|r| {
                    let state = self.table.state(&object, &r)?.to_vec();
                    Some((r, state))
                })
                .collect();
            if !rows.is_empty() {
                self.effects.push(Effect::Publish { object, rows });
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn only_subscribed_objects_collect_changes() {
        let mut p = Publisher::default();
        let a = ObjectId::new("counter", "a").unwrap();
        p.changed(&a, "");
        assert!(!p.pending());
        p.subscribers.insert(a.clone(), 1);
        p.changed(&a, "");
        assert!(p.pending());
        assert_eq!(p.next_heartbeat(), Some(0));
        assert!(p.heartbeat_due(10, 100));
        assert!(!p.heartbeat_due(50, 100));
        assert_eq!(p.next_heartbeat(), Some(110));
    }
}
