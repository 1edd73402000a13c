//! One run: set up the set, run the load and the viewers, wait for the
//! cluster to agree, and report.

use crate::args::Options;
use crate::converge::{quiesce, wait_for_viewers};
use crate::http::Http;
use crate::oracle::Oracle;
use crate::pool::Pool;
use crate::report::{report, Outcome, Progress};
use crate::set_api::{bias_name, bias_named, merge_reply, set_path};
use crate::shared::{Logged, Shared, WorkerLog};
use crate::workers::{spawn_load, spawn_viewers};
use edge_crdt::crdt::{Element, LwwSet};
use edge_crdt::Rng;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the viewers may take to catch up once the nodes agree.
const VIEWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the chaos clients; the exit code, or why the run could not start.
pub fn run(opts: Options) -> Result<i32, String> {
    print_start(&opts);
    let set_path = set_path(&opts.set);
    let http = Http::new(&opts.base, Duration::from_secs(30));
    let mut rng = Rng::stream(opts.seed, 0);
    let mut oracle = start_set(&http, &set_path, &opts, &mut rng)?;
    let pool = Pool::new(opts.pool, &mut rng);
    let start = Instant::now();
    let shared = Arc::new(shared_state(opts, pool, set_path, start));
    let opts = &shared.opts;

    // Viewers first, so that they see the load from the start.
    let viewers = spawn_viewers(&shared);
    let load = spawn_load(&shared);
    let progress = Progress::start(shared.clone(), start);
    let (log, uncertain) = join_load(load)?;
    let stopped = Instant::now();
    let load_secs = (stopped - start).as_secs_f64();
    println!(
        "load stopped after {load_secs:.1} s; waiting for the nodes to agree (up to {} s)",
        opts.converge_timeout
    );

    let converge_timeout = Duration::from_secs_f64(opts.converge_timeout);
    let quiet = quiesce(&shared, stopped, converge_timeout, 4);
    let viewers_after = match quiet.agreed() {
        Some(target) if opts.viewers > 0 && quiet.converged => {
            wait_for_viewers(&viewers, target, VIEWER_TIMEOUT)
        }
        _ => None,
    };
    shared.stop_viewers.store(true, Relaxed);
    progress.stop();

    for entry in &log {
        oracle.record(entry.add, &entry.element, entry.stamp);
    }
    Ok(report(&Outcome {
        shared: &shared,
        oracle: &oracle,
        logged: log.len(),
        uncertain: &uncertain,
        load_secs,
        quiet: &quiet,
        viewers: &viewers,
        viewers_after,
    }))
}

fn print_start(opts: &Options) {
    println!(
        "monkeys: seed {} (rerun with --seed {}), {} against {} ({} nodes), set {:?} ({})",
        opts.seed,
        opts.seed,
        format_args!(
            "{} normal, {} offline-online, {} viewer ({:?})",
            opts.normal, opts.offline, opts.viewers, opts.viewer_mode
        ),
        opts.base,
        opts.nodes,
        opts.set,
        bias_name(opts.bias),
    );
}

/// Reads what the set already holds, then creates it with the bias; the
/// oracle starts from both.
fn start_set(http: &Http, set_path: &str, opts: &Options, rng: &mut Rng) -> Result<Oracle, String> {
    // What the set already holds counts in the oracle: the union of every
    // node's entries.
    let mut before = LwwSet::default();
    for n in 0..opts.nodes {
        let reply = http
            .get(&format!("{set_path}/updates?since=0&node=node-{n}"))
            .map_err(|f| format!("cannot read the set at node-{n}: {}", f.text()))?;
        merge_reply(&mut before, &reply)?;
    }
    let (old_adds, old_removes) = before.entries();
    if !old_adds.is_empty() || !old_removes.is_empty() {
        println!(
            "the set already holds {} entries: they count in the oracle",
            old_adds.len() + old_removes.len()
        );
    }
    let created = http
        .put(
            &format!("{set_path}?node=node-{}", rng.below(opts.nodes)),
            &json!({"bias": bias_name(opts.bias)}),
            opts.write_token.as_deref(),
        )
        .map_err(|f| format!("cannot create the set: {}", f.text()))?;
    let created_stamp = created["stamp"]
        .as_u64()
        .ok_or("the creation's reply has no `stamp`: is the Worker built from this tree?")?;
    if created["bias"].as_str().and_then(bias_named) != Some(opts.bias) {
        return Err(format!(
            "the set has bias {}, not {}",
            created["bias"],
            bias_name(opts.bias)
        ));
    }
    let mut oracle = Oracle::new(opts.bias, created_stamp);
    for (e, t) in old_adds {
        oracle.record(true, e, *t);
    }
    for (e, t) in old_removes {
        oracle.record(false, e, *t);
    }
    Ok(oracle)
}

/// The state the workers share, for a load that starts at `start`.
fn shared_state(opts: Options, pool: Pool, set_path: String, start: Instant) -> Shared {
    let load = Duration::from_secs_f64(opts.seconds);
    let converge_timeout = Duration::from_secs_f64(opts.converge_timeout);
    let hard = load + converge_timeout + VIEWER_TIMEOUT + Duration::from_secs(30);
    Shared {
        set_path,
        pool,
        load_deadline: start + load,
        hard_deadline: start + hard,
        viewer_max_ops: hard.as_secs() * 10 + 100,
        counters: Default::default(),
        stop_viewers: AtomicBool::new(false),
        fatal: Mutex::new(None),
        first_errors: Mutex::new(Vec::new()),
        ties: Default::default(),
        opts,
    }
}

/// Waits for the load workers: their logs together, and the elements of
/// writes whose outcome is unknown.
fn join_load(
    threads: Vec<JoinHandle<WorkerLog>>,
) -> Result<(Vec<Logged>, BTreeSet<Element>), String> {
    let mut log = Vec::new();
    let mut uncertain = BTreeSet::new();
    for t in threads {
        let out = t.join().map_err(|_| "a worker panicked".to_owned())?;
        log.extend(out.log);
        uncertain.extend(out.uncertain);
    }
    Ok((log, uncertain))
}
