//! Viewers: replicas fed by `/updates?since=` polling at random nodes, or
//! by the SSE stream of one node.

use crate::clock::sleep_ms;
use crate::http::Http;
use crate::set_api::{bias_named, pull, PullError};
use crate::shared::{Shared, Shown};
use crate::sse::{self, End, EventStream};
use edge_crdt::codec;
use edge_crdt::crdt::{Bias, Crdt, Hlc, LwwSet};
use edge_crdt::Rng;
use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Polls `/updates` from `--window-ms` before the last `latest` (late
/// entries carry older stamps) and shows the set under the reply's bias.
pub fn poll_viewer(shared: &Shared, mut rng: Rng, shown: &Shown) {
    let http = Http::new(&shared.opts.base, Duration::from_secs(20));
    let window = Hlc::stamp_of(shared.opts.window_ms);
    // Entries only: the bias comes with each reply, and a node that has
    // not yet heard of the creation answers add-wins, the default.
    let mut replica = LwwSet::default();
    let mut since = 0;
    let mut polls = 0;
    while polls < shared.viewer_max_ops && !shared.viewers_over() {
        polls += 1;
        let path = shared.updates_path(since, &mut rng);
        match pull(&http, &path, &mut replica) {
            Ok(reply) => {
                since = reply["latest"].as_u64().unwrap_or(0).saturating_sub(window);
                // The set as that node would show it: its bias, our
                // entries (the creation's stamp stays local).
                let bias = reply["bias"].as_str().and_then(bias_named);
                let mut view = LwwSet::new(bias.unwrap_or(Bias::AddWins), 1);
                view.merge(&replica);
                *shown.lock().unwrap() = Some(view.members().cloned().collect());
                shared.counters.polls.fetch_add(1, Relaxed);
            }
            Err(e) => {
                shared.counters.viewer_errors.fetch_add(1, Relaxed);
                match e {
                    PullError::Reply(text) => shared.note(&text),
                    PullError::Http(f) => shared.note(f.text()),
                }
            }
        }
        sleep_ms(rng.range(100, 300));
    }
}

/// Follows the SSE stream of node `node`, each event the whole state.
pub fn sse_viewer(shared: &Shared, node: u64, shown: &Shown) {
    // Each stream lives at most 20 s, then reconnects (and gets the whole
    // state again), so that a quiet stream cannot block forever.
    let http = Http::new(&shared.opts.base, Duration::from_secs(20));
    let path = format!("{}/events?node=node-{node}", shared.set_path);
    let mut replica = LwwSet::default();
    let mut connects = 0;
    while connects < shared.viewer_max_ops && !shared.viewers_over() {
        connects += 1;
        let stream = match sse::subscribe(&http, &path) {
            Ok(stream) => stream,
            Err(e) => {
                shared.counters.viewer_errors.fetch_add(1, Relaxed);
                shared.note(&e);
                sleep_ms(500);
                continue;
            }
        };
        if follow(shared, &path, stream, &mut replica, shown) {
            return;
        }
        sleep_ms(200);
    }
}

/// Merges every event of `stream` into `replica` until the stream ends
/// (false) or the viewers are told to stop (true).
fn follow(
    shared: &Shared,
    path: &str,
    mut stream: EventStream<impl Read>,
    replica: &mut LwwSet,
    shown: &Shown,
) -> bool {
    loop {
        match stream.next_line() {
            Err(End::Closed) => return false,
            Err(End::TooLong) => {
                shared.note(&format!("{path}: a line over 4 MiB"));
                return false;
            }
            Ok(None) => {}
            Ok(Some(data)) => match codec::state_from_base64::<LwwSet>(data) {
                Ok(state) => {
                    replica.merge(&state);
                    *shown.lock().unwrap() = Some(replica.members().cloned().collect());
                    shared.counters.events.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    shared.counters.viewer_errors.fetch_add(1, Relaxed);
                    shared.note(&format!("{path}: an event that is not a set: {e}"));
                }
            },
        }
        if shared.viewers_over() {
            return true;
        }
    }
}
