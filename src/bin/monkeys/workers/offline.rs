//! Offline-then-online replicas: a burst of changes on a local `LwwSet`
//! stamped by the client's own skewed HLC, then a push of the whole replica
//! to `/update` and a pull of `/updates?since=`, and again. Now and then a
//! change is the opposite of another client's recent write at the same
//! stamp: a tie, which the bias decides.

use crate::clock::{sleep_ms, SkewedHlc};
use crate::http::{Failure, Http};
use crate::set_api::{pull, PullError};
use crate::shared::{Logged, Shared, Tie, WorkerLog};
use edge_crdt::crdt::{Crdt, Element, Hlc, LwwSet};
use edge_crdt::Rng;
use edge_crdt::VecMap;
use serde_json::{json, Value as Json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

pub fn offline_worker(shared: &Shared, worker: usize, mut rng: Rng) -> WorkerLog {
    let mut replica = Replica {
        shared,
        worker,
        http: Http::new(&shared.opts.base, Duration::from_secs(20)),
        clock: SkewedHlc::random(&mut rng),
        window: Hlc::stamp_of(shared.opts.window_ms),
        set: LwwSet::default(),
        pending: Vec::new(),
        out: WorkerLog::default(),
        since: 0,
    };
    let max_ops = shared.opts.max_ops;
    let mut ops = 0;
    while ops < max_ops && !shared.load_over() {
        ops += replica.offline_burst(&mut rng, max_ops - ops);
        if replica.sync(&mut rng) {
            replica.pull(&mut rng);
        }
    }
    replica.last_sync(&mut rng)
}

/// A change made offline, not yet acknowledged by a sync.
struct Pending {
    log: Vec<Logged>,
    /// a sync that carried it failed without telling whether it was stored
    uncertain: bool,
}

/// One offline-online client.
struct Replica<'a> {
    shared: &'a Shared,
    worker: usize,
    http: Http,
    clock: SkewedHlc,
    /// how far before the last `latest` a pull starts
    window: u64,
    set: LwwSet,
    pending: Vec<Pending>,
    out: WorkerLog,
    since: u64,
}

impl Replica<'_> {
    /// Up to `most` changes over a while; returns how many were made.
    fn offline_burst(&mut self, rng: &mut Rng, most: u64) -> u64 {
        let changes = rng.range(5, 40).min(most);
        let gap = rng.range(200, 2_500) / changes;
        let mut made = 0;
        for _ in 0..changes {
            if self.shared.load_over() {
                break;
            }
            made += 1;
            self.change(rng);
            sleep_ms(gap);
        }
        made
    }

    /// One insert or remove on the local replica.
    fn change(&mut self, rng: &mut Rng) {
        let tie = if rng.chance(150) {
            self.shared.ties.take(self.worker)
        } else {
            None
        };
        let (add, batch, stamp) = match tie {
            // The opposite of another client's write, stamped alike.
            Some(tie) => {
                self.clock.observe(tie.stamp);
                (!tie.add, vec![tie.index], tie.stamp)
            }
            None => {
                let add = rng.chance(500);
                let batch = self.shared.pool.batch(rng);
                let stamp = self.clock.stamp();
                if rng.chance(200) {
                    self.shared.ties.post(Tie {
                        worker: self.worker,
                        index: batch[0],
                        stamp,
                        add,
                    });
                }
                (add, batch, stamp)
            }
        };
        let elements = self.shared.pool.elements(&batch);
        let delta = if add {
            self.set.insert(elements.iter().cloned(), stamp)
        } else {
            self.set.remove(elements.iter().cloned(), stamp)
        };
        self.set.merge(&delta);
        let log = elements.into_iter().map(|element| Logged {
            add,
            element,
            stamp,
        });
        self.pending.push(Pending {
            log: log.collect(),
            uncertain: false,
        });
    }

    /// Pushes the whole replica to `/update`; true when it was stored (or
    /// there was nothing to push).
    fn sync(&mut self, rng: &mut Rng) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let (adds, removes) = self.set.entries();
        let body = json!({"adds": entry_list(adds), "removes": entry_list(removes)});
        let shared = self.shared;
        let path = format!("{}/update?node={}", shared.set_path, shared.node(rng));
        let token = shared.opts.sync_token.as_deref();
        match self.http.post(&path, &body, token) {
            Ok(_) => {
                let changes = self.pending.len() as u64;
                let acked = self.pending.drain(..).flat_map(|p| p.log);
                self.out.log.extend(acked);
                shared.counters.offline_acked.fetch_add(changes, Relaxed);
                shared.counters.syncs.fetch_add(1, Relaxed);
                true
            }
            Err(f) => {
                if let Failure::Uncertain(_) = f {
                    self.pending.iter_mut().for_each(|p| p.uncertain = true);
                }
                if let Failure::Refused(401 | 503, why) = &f {
                    shared.fail(format!("the sync token does not open /update: {why}"));
                }
                shared.error(&f);
                false
            }
        }
    }

    /// Merges what others wrote since the last pull (less the window).
    fn pull(&mut self, rng: &mut Rng) {
        let path = self.shared.updates_path(self.since, rng);
        match pull(&self.http, &path, &mut self.set) {
            Ok(reply) => {
                let latest = reply["latest"].as_u64().unwrap_or(0);
                self.clock.observe(latest);
                self.since = latest.saturating_sub(self.window);
            }
            Err(PullError::Reply(text)) => self.shared.note(&text),
            Err(PullError::Http(f)) => self.shared.error(&f),
        }
    }

    /// The last changes: a few tries, then whatever is left is unknown (if
    /// a try may have stored it) or not stored at all.
    fn last_sync(mut self, rng: &mut Rng) -> WorkerLog {
        for attempt in 0..4 {
            if self.sync(rng) || self.shared.failed() {
                break;
            }
            sleep_ms(250 << attempt);
        }
        for p in self.pending {
            if p.uncertain {
                self.out
                    .uncertain
                    .extend(p.log.into_iter().map(|l| l.element));
            }
        }
        self.out
    }
}

/// `[[element, t], …]`, as `/update` takes them.
fn entry_list(entries: &VecMap<Element, u64>) -> Json {
    Json::Array(
        entries
            .iter()
            .map(|(e, t)| json!([e.to_json(), t]))
            .collect(),
    )
}
