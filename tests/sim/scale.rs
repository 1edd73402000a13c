//! Scale: the chaos workload on clusters of a given size, and what it
//! costs: how long convergence takes once the faults stop, how many
//! subrequests a node's invocations send (`harness/traffic.rs`), and how
//! many bytes travel per acknowledged write.
//!
//! `scale_figures` (ignored: `bash scripts/sim-scale.sh`) prints the
//! figures for `SIM_SCALE_NODES` (default "8 32 128") over
//! `SIM_SCALE_SEEDS` seeds (default 100, or `SIM_SEED`) as a Markdown
//! table, and writes them as JSON to `target/sim-scale.json` (or
//! `SIM_SCALE_OUT`). A run that fails (by default, no convergence 30 s
//! after the faults stopped: `SIM_SCALE_LIMIT_MS`) is counted as failed,
//! the others go on, and the test fails at the end. It runs with the
//! cheaper checks of `Sim::fast_checks` (`SIM_SCALE_FULL_CHECKS=1` for
//! the full ones: the same figures, about twice as slow at 128 nodes).
//!
//! The figures, per cluster size N:
//! - convergence: median, p90 (nearest rank) and max of how long the
//!   cluster took to converge after the faults stopped;
//! - frames per node per tick: the requests (subrequests on the edge) of
//!   each tick invocation of a live node in the chaos phase, including
//!   their follow-ups, on average over every such tick (those that sent
//!   nothing too), and the most in one; the most in any invocation
//!   (ticks, requests handled, client and admin calls), and in one
//!   handling a request;
//! - bytes per write per node: the encoded bytes of every frame sent in
//!   the run (requests and answers, faults and settling), divided by the
//!   acknowledged client writes and by N.

use crate::harness::{
    chaos_run_with, config, home, last_chaos_traffic, seeds, Convergence, Faults, Packet,
    RunOptions, Sim, Start, TrafficFigures, Workload,
};
use edge_crdt::engine::Message;
use edge_crdt::NodeId;
use std::time::Instant;

/// The chaos workload (counters, sets and a few registers) on `n` nodes;
/// `SIM_SCALE_MIX=counters` (every node) or `registers` (3 replicas on
/// the ring) writes one kind only, to weigh the placements.
fn workload(n: u32) -> Workload {
    let (set_share, kv_share) = match env_or("SIM_SCALE_MIX", "chaos").as_str() {
        "chaos" => (300, 150),
        "counters" => (0, 0),
        "registers" => (0, 1000),
        other => panic!("SIM_SCALE_MIX: chaos, counters or registers, not {other}"),
    };
    Workload {
        nodes: Some(n),
        set_share,
        kv_share,
        resizes: None,
        retry_ms: 300,
        steady: false,
    }
}

/// The figures of many runs on one cluster size.
#[derive(Debug, Default)]
struct Figures {
    nodes: u32,
    convergence: Convergence,
    traffic: TrafficFigures,
    acked: u64,
    /// Real time the runs took, in seconds.
    secs: f64,
    /// Seeds whose runs failed (no convergence within the limit, or a
    /// check): in the frames per invocation (their chaos phase), not in
    /// the convergence times nor the bytes per write.
    failed: Vec<u64>,
}

impl Figures {
    fn bytes_per_write_per_node(&self) -> f64 {
        self.traffic.bytes as f64 / self.acked.max(1) as f64 / f64::from(self.nodes.max(1))
    }

    fn row(&self) -> String {
        let s = |ms: u64| ms as f64 / 1000.0;
        let c = &self.convergence;
        let t = &self.traffic;
        let seeds = match self.failed.len() {
            0 => c.runs().to_string(),
            failed => format!("{} ({failed} failed)", c.runs() + failed as u64),
        };
        let ticks = format!("{:.2} / {}", t.per_tick(), t.max_tick);
        let any = format!(
            "{} (ticks {}, requests {}, other {})",
            t.max_any, t.max_tick, t.max_request, t.max_other
        );
        let (convergence, bytes) = match c.runs() {
            0 => ("none converged".to_string(), "—".to_string()),
            _ => (
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    s(c.median_ms()),
                    s(c.p90_ms()),
                    s(c.max_ms())
                ),
                format!("{:.0}", self.bytes_per_write_per_node()),
            ),
        };
        format!(
            "| {} | {seeds} | {convergence} | {ticks} | {any} | {bytes} |",
            self.nodes
        )
    }

    fn json(&self) -> serde_json::Value {
        let c = &self.convergence;
        let t = &self.traffic;
        serde_json::json!({
            "nodes": self.nodes,
            "seeds": c.runs(),
            "failed_seeds": self.failed,
            "convergence_ms": {
                "median": c.median_ms(),
                "p90": c.p90_ms(),
                "max": c.max_ms(),
                "mean": c.mean_ms(),
            },
            "frames_per_node_per_tick": {
                "mean": t.per_tick(),
                "max": t.max_tick,
            },
            "max_frames_per_invocation": {
                "any": t.max_any,
                "tick": t.max_tick,
                "request": t.max_request,
                "other": t.max_other,
            },
            "tick_invocations": t.ticks,
            "frames": t.frames,
            "bytes": t.bytes,
            "acked_writes": self.acked,
            "bytes_per_write_per_node": self.bytes_per_write_per_node(),
            "real_seconds": self.secs,
        })
    }
}

const HEADER: &str = "| N | seeds | convergence median / p90 / max (s) \
     | frames per node per tick mean / max (tick invocations) \
     | max frames in any invocation | bytes per write per node |\n\
     |---|---|---|---|---|---|";

/// Runs the chaos workload on `n` nodes with every seed in `seeds`,
/// printing each run's progress. A failed run fails the caller, unless
/// `go_on`: it is then counted in [`Figures::failed`].
fn measure(n: u32, seeds: &[u64], options: RunOptions, go_on: bool) -> Figures {
    let mut f = Figures {
        nodes: n,
        ..Figures::default()
    };
    for &seed in seeds {
        let started = Instant::now();
        let run = match go_on {
            false => chaos_run_with(seed, workload(n), options),
            true => match std::panic::catch_unwind(|| chaos_run_with(seed, workload(n), options)) {
                Ok(run) => run,
                Err(_) => {
                    let secs = started.elapsed().as_secs_f64();
                    f.secs += secs;
                    f.failed.push(seed);
                    // Its chaos phase counts in the frames per invocation,
                    // not in the bytes per write.
                    if let Some(t) = last_chaos_traffic() {
                        f.traffic.add(&TrafficFigures {
                            frames: 0,
                            bytes: 0,
                            ..t
                        });
                    }
                    eprintln!(
                        "scale: seed {seed}, {n} nodes: FAILED (above), {secs:.1} s real time \
                         (replay with SIM_SEED={seed})"
                    );
                    continue;
                }
            },
        };
        let secs = started.elapsed().as_secs_f64();
        f.secs += secs;
        f.convergence.add(run.took);
        f.traffic.add(&run.traffic);
        f.acked += run.acked;
        eprintln!(
            "scale: seed {seed}, {n} nodes: converged in {} ms, {:.2} frames per tick \
             (max {}), {secs:.1} s real time (replay with SIM_SEED={seed})",
            run.took,
            run.traffic.per_tick(),
            run.traffic.max_any
        );
    }
    f
}

fn table(figures: &[Figures]) -> String {
    let rows: Vec<String> = figures.iter().map(Figures::row).collect();
    format!("{HEADER}\n{}", rows.join("\n"))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[test]
#[ignore = "minutes to hours: run by scripts/sim-scale.sh"]
fn scale_figures() {
    let sizes: Vec<u32> = env_or("SIM_SCALE_NODES", "8 32 128")
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("SIM_SCALE_NODES: node counts"))
        .collect();
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(_) => seeds(),
        Err(_) => {
            let count: u64 = env_or("SIM_SCALE_SEEDS", "100")
                .parse()
                .expect("SIM_SCALE_SEEDS: a count");
            (1..=count).collect()
        }
    };
    // Cheaper checks while the run goes on (the end checks everything):
    // at 128 nodes the full ones would take most of the time.
    let options = RunOptions {
        settle_limit_ms: env_or("SIM_SCALE_LIMIT_MS", "30000")
            .parse()
            .expect("SIM_SCALE_LIMIT_MS: milliseconds"),
        fast_checks: env_or("SIM_SCALE_FULL_CHECKS", "0") == "0",
    };
    let mut figures = Vec::new();
    for n in sizes {
        figures.push(measure(n, &seeds, options, true));
        eprintln!("\n{}\n", table(&figures));
    }
    let out = std::env::var("SIM_SCALE_OUT")
        .unwrap_or_else(|_| format!("{}/target/sim-scale.json", env!("CARGO_MANIFEST_DIR")));
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir).expect("the output's folder");
    }
    let json: Vec<serde_json::Value> = figures.iter().map(Figures::json).collect();
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json).expect("json") + "\n",
    )
    .expect("writing the figures");
    println!("{}", table(&figures));
    eprintln!("figures written to {out}");
    let failed: Vec<(u32, &[u64])> = figures
        .iter()
        .filter(|f| !f.failed.is_empty())
        .map(|f| (f.nodes, &f.failed[..]))
        .collect();
    assert!(failed.is_empty(), "failed runs (nodes, seeds): {failed:?}");
}

#[test]
fn chaos_at_32_nodes_converges() {
    // A handful of seeds (chaos_run fails a run that does not converge
    // within 30 s of the faults stopping).
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(_) => seeds(),
        Err(_) => (1..=3).collect(),
    };
    let options = RunOptions {
        fast_checks: true,
        ..RunOptions::default()
    };
    let f = measure(32, &seeds, options, false);
    eprintln!("\n{}\n", table(&[f]));
}

/// Steps 1 ms at a time for `ms`, returning every frame sent meanwhile
/// (with no loss every one is still in flight at the end of its step).
fn capture(sim: &mut Sim, ms: u64) -> Vec<Packet> {
    let mut seen = sim.net.in_flight.keys().map(|k| k.1).max().unwrap_or(0);
    let mut sent = Vec::new();
    for _ in 0..ms {
        sim.step(1, false);
        for ((_, seq), p) in &sim.net.in_flight {
            if *seq > seen {
                sent.push(p.clone());
            }
        }
        seen = sim.net.in_flight.keys().map(|k| k.1).max().unwrap_or(seen);
    }
    sent
}

/// Each invocation from `first` on counted exactly the requests captured
/// in it; each answer went to the requester of the invocation that sent it.
fn check_accounting(sim: &Sim, sent: &[Packet], first: u64) {
    for p in sent.iter().filter(|p| p.answer) {
        let by = sim.traffic.get(p.sent_in.expect("known"));
        assert_eq!(by.node, p.from);
        assert_eq!(by.reply_to, Some((p.to, p.inv.expect("known"))), "{p:?}");
        assert_eq!(sim.traffic.get(p.inv.expect("known")).node, p.to);
    }
    for p in sent.iter().filter(|p| !p.answer) {
        assert_eq!(
            p.inv, p.sent_in,
            "a request belongs to its sender's invocation"
        );
        assert_eq!(sim.traffic.get(p.inv.expect("known")).node, p.from);
    }
    for i in first..sim.traffic.invocations.len() as u64 {
        let requests = sent
            .iter()
            .filter(|p| !p.answer && p.inv == Some(i))
            .count();
        let inv = sim.traffic.get(i);
        assert_eq!(inv.frames as usize, requests, "invocation {i}: {inv:?}");
    }
}

#[test]
fn a_tick_counts_the_frames_it_sends_and_answers_are_free() {
    // A calm 4-node cluster, quiet; one write at node 0, flushed by a tick
    // of node 0's as gossip to the others.
    let mut sim = Sim::new(7, config(4), Faults::calm());
    sim.run(2_000);
    check_flushing_tick(&mut sim, NodeId(0));
    // Another write whose gossip is lost: anti-entropy repairs it, in
    // requests answered level by level (digest, buckets, ...).
    check_repair_round(&mut sim, NodeId(0));
    sim.settle(10_000);
    let figures = sim.traffic.figures();
    assert_eq!(
        figures.frames,
        sim.traffic.requests + sim.traffic.answers,
        "{figures:?}"
    );
}

/// A write at `writer`, flushed by one of its ticks: the tick counts the
/// frames it sent.
fn check_flushing_tick(sim: &mut Sim, writer: NodeId) {
    assert!(sim.increment(writer, &home(), 5));
    let first = sim.traffic.invocations.len() as u64;
    let sent = capture(sim, 1_000);
    check_accounting(sim, &sent, first);
    let flush = |p: &&Packet| {
        p.from == writer
            && matches!(p.message(), Message::Gossip { rows, .. } if rows.iter().any(|(o, _)| *o == home()))
    };
    let tick = sent
        .iter()
        .find(flush)
        .and_then(|p| p.sent_in)
        .expect("flushed");
    let inv = sim.traffic.get(tick);
    assert_eq!((inv.node, inv.start), (writer, Start::Tick));
    let from_tick = sent.iter().filter(|p| p.sent_in == Some(tick)).count();
    assert!(from_tick > 0);
    assert_eq!(
        inv.frames as usize, from_tick,
        "the tick counts what it sent"
    );
    eprintln!(
        "the flushing tick sent {from_tick} frames; {} sent in all",
        sent.len()
    );
}

/// A write at `writer` whose flush is lost, repaired by anti-entropy: the
/// answers are counted as answers, and the follow-ups of a round belong to
/// the invocation that sent its digest.
fn check_repair_round(sim: &mut Sim, writer: NodeId) {
    assert!(sim.increment(writer, &home(), 7));
    sim.faults.loss = 1000;
    let lost = sim.stats.lost;
    while sim.stats.lost == lost {
        assert!(sim.now < 20_000, "{writer} never flushed its write");
        sim.step(1, false);
    }
    sim.faults.loss = 0;
    let (first, answers) = (sim.traffic.invocations.len() as u64, sim.traffic.answers);
    let sent = capture(sim, 3_000);
    check_accounting(sim, &sent, first);
    let answered: Vec<&Packet> = sent.iter().filter(|p| p.answer).collect();
    assert!(!answered.is_empty(), "anti-entropy answered");
    let names: Vec<String> = sent
        .iter()
        .map(|p| {
            format!(
                "{}->{} {}{}",
                p.from,
                p.to,
                p.message().name(),
                if p.answer { " (answer)" } else { "" }
            )
        })
        .collect();
    eprintln!("after the lost flush: {}", names.join(", "));
    // The follow-ups of an anti-entropy round (leaves, rows, the gossip
    // after the answer's gossip) belong to the invocation that sent the digest.
    let digests = |p: &&Packet| matches!(p.message(), Message::Digest { .. }) && !p.answer;
    let follow_up = |p: &&Packet| {
        !p.answer && matches!(p.message(), Message::Leaves { .. } | Message::Rows { .. })
    };
    let chained: Vec<&Packet> = sent.iter().filter(follow_up).collect();
    assert!(!chained.is_empty(), "a round went past the buckets");
    for p in chained {
        let start = sim.traffic.get(p.inv.expect("known"));
        assert_eq!(start.node, p.from);
        assert!(
            sent.iter()
                .filter(digests)
                .any(|d| d.inv == p.inv && d.to == p.to),
            "{} -> {}: {} not in the digest's invocation",
            p.from,
            p.to,
            p.message().name()
        );
    }
    assert_eq!(sim.traffic.answers - answers, answered.len() as u64);
}
