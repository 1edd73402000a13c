//! The worker threads: random writers, offline-online replicas, viewers.

mod normal;
mod offline;
mod viewer;

use crate::shared::{Shared, Shown, WorkerLog};
use edge_crdt::Rng;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// A viewer as the checker sees it.
pub struct Viewer {
    pub sse: bool,
    pub shown: Arc<Shown>,
}

/// Starts the viewers. They are not joined: an SSE read may wait for the
/// next event, and the process ends when the check is done.
pub fn spawn_viewers(shared: &Arc<Shared>) -> Vec<Viewer> {
    let opts = &shared.opts;
    (0..opts.viewers)
        .map(|i| {
            let shown = Arc::new(Mutex::new(None));
            let sse = opts.viewer_mode.streams(i);
            let rng = Rng::stream(opts.seed, 3_000 + i as u64);
            let node = i as u64 % opts.nodes;
            let (shared, state) = (shared.clone(), shown.clone());
            thread::spawn(move || {
                if sse {
                    viewer::sse_viewer(&shared, node, &state)
                } else {
                    viewer::poll_viewer(&shared, rng, &state)
                }
            });
            Viewer { sse, shown }
        })
        .collect()
}

/// Starts the writers and the offline-online replicas.
pub fn spawn_load(shared: &Arc<Shared>) -> Vec<JoinHandle<WorkerLog>> {
    let opts = &shared.opts;
    let mut threads = Vec::new();
    for i in 0..opts.normal {
        let shared = shared.clone();
        let rng = Rng::stream(opts.seed, 1_000 + i as u64);
        threads.push(thread::spawn(move || {
            normal::normal_worker(&shared, i, rng)
        }));
    }
    for i in 0..opts.offline {
        let shared = shared.clone();
        let rng = Rng::stream(opts.seed, 2_000 + i as u64);
        let worker = 1_000 + i;
        threads.push(thread::spawn(move || {
            offline::offline_worker(&shared, worker, rng)
        }));
    }
    threads
}
