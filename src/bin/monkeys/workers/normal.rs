//! Random writers: inserts and deletes of a few pool elements at random
//! nodes, each write's stamp read from the reply.

use crate::clock::sleep_ms;
use crate::http::{clip, Failure, Http};
use crate::shared::{Logged, Shared, Tie, WorkerLog};
use edge_crdt::Rng;
use serde_json::Value as Json;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

pub fn normal_worker(shared: &Shared, worker: usize, mut rng: Rng) -> WorkerLog {
    let http = Http::new(&shared.opts.base, Duration::from_secs(20));
    let mut out = WorkerLog::default();
    let mut ops = 0;
    while ops < shared.opts.max_ops && !shared.load_over() {
        ops += 1;
        write(shared, &http, worker, &mut rng, &mut out);
        sleep_ms(rng.below(shared.opts.pause_ms + 1));
    }
    out
}

/// One insert or delete of a batch; logs it when acknowledged.
fn write(shared: &Shared, http: &Http, worker: usize, rng: &mut Rng, out: &mut WorkerLog) {
    let pool = &shared.pool;
    let add = rng.chance(550);
    let batch = pool.batch(rng);
    let body = Json::Array(batch.iter().map(|&i| pool.spell(i, rng)).collect());
    let path = format!(
        "{}/{}?node={}",
        shared.set_path,
        if add { "insert" } else { "delete" },
        shared.node(rng)
    );
    let reply = match http.post(&path, &body, shared.opts.write_token.as_deref()) {
        Ok(reply) => reply,
        Err(f) => {
            if let Failure::Uncertain(_) = f {
                out.uncertain.extend(pool.elements(&batch));
            }
            shared.error(&f);
            return;
        }
    };
    let Some(stamp) = reply["stamp"].as_u64().filter(|&s| s > 0) else {
        shared.fail(format!(
            "{path}: the reply has no `stamp` (is the Worker built from this tree?): {}",
            clip(&reply.to_string(), 200)
        ));
        out.uncertain.extend(pool.elements(&batch));
        return;
    };
    out.log
        .extend(pool.elements(&batch).into_iter().map(|element| Logged {
            add,
            element,
            stamp,
        }));
    shared.counters.normal_acked.fetch_add(1, Relaxed);
    if rng.chance(200) {
        shared.ties.post(Tie {
            worker,
            index: batch[0],
            stamp,
            add,
        });
    }
}
