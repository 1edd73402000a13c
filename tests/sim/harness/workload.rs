//! A chaotic run: a seeded cluster under every fault, with clients
//! writing and an admin resizing it, then settled and checked.

use super::converge::RegisterCounts;
use super::{config, set_keys, Faults, Sim, TrafficFigures, KV_KEYS};
use edge_crdt::crdt::Bias;
use edge_crdt::Rng;

/// What a chaotic run writes, and how the cluster is resized.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// The cluster size; 6 to 8 at random when `None`.
    pub nodes: Option<u32>,
    /// Per mille of client writes that go to sets (of those not to registers).
    pub set_share: u64,
    /// Per mille of client writes that go to registers.
    pub kv_share: u64,
    /// How many nodes to add and to retire: at random (1–2 and 1–3, the
    /// latter skipped if not started during the faults) when `None`; else
    /// exactly, finishing after the faults if need be.
    pub resizes: Option<(u64, u64)>,
    /// Between retries of a retirement.
    pub retry_ms: u64,
    /// No crashes or partitions (loss, duplicates and delays stay), and
    /// twice as long: every node answers, so tombstones are collected
    /// while clients still write.
    pub steady: bool,
}

/// What a chaotic run did with sets.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetSummary {
    pub writes: u64,
    /// Add/remove pairs of one element at one stamp.
    pub equal_pairs: usize,
    /// Elements decided by the bias at the end.
    pub ties: usize,
    pub remove_wins: usize,
    pub stale_after_restart: u64,
}

impl SetSummary {
    pub fn add(&mut self, o: &SetSummary) {
        self.writes += o.writes;
        self.equal_pairs += o.equal_pairs;
        self.ties += o.ties;
        self.remove_wins += o.remove_wins;
        self.stale_after_restart += o.stale_after_restart;
    }
}

/// What a chaotic run did with registers.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvSummary {
    pub writes: u64,
    pub deletes: u64,
    /// Writes taken by a node its client's view did not name a replica.
    pub off_replica: u64,
    pub end: RegisterCounts,
    /// Tombstones collected; and of those, while clients still wrote.
    pub collected: u64,
    pub collected_while_writing: u64,
    pub transfers: u64,
    pub row_deletes: u64,
    pub handoffs: u64,
    pub added: u64,
    pub retired: u64,
    pub lazy_loads: u64,
}

impl KvSummary {
    pub fn add(&mut self, o: &KvSummary) {
        self.writes += o.writes;
        self.deletes += o.deletes;
        self.off_replica += o.off_replica;
        self.end.live += o.end.live;
        self.end.superseded += o.end.superseded;
        self.end.kept += o.end.kept;
        self.end.deleted += o.end.deleted;
        self.collected += o.collected;
        self.collected_while_writing += o.collected_while_writing;
        self.transfers += o.transfers;
        self.row_deletes += o.row_deletes;
        self.handoffs += o.handoffs;
        self.added += o.added;
        self.retired += o.retired;
        self.lazy_loads += o.lazy_loads;
    }
}

/// The seeds to run: `SIM_SEED=<n>` one, `SIM_SEED=<a>..<b>` a range, else 1 to 20.
pub fn seeds() -> Vec<u64> {
    let Ok(s) = std::env::var("SIM_SEED") else {
        return (1..=20).collect();
    };
    let bound = |b: &str| {
        b.trim()
            .parse::<u64>()
            .expect("SIM_SEED=a..b with u64 bounds")
    };
    match s.trim().split_once("..") {
        Some((a, b)) => (bound(a)..bound(b)).collect(),
        None => vec![s
            .trim()
            .parse()
            .expect("SIM_SEED must be a u64 or a range a..b")],
    }
}

/// When the admin adds and retires nodes: `(adds, retirements)`.
fn schedule(rng: &mut Rng, resizes: Option<(u64, u64)>) -> (Vec<u64>, Vec<u64>) {
    let (mut adds, mut retires): (Vec<u64>, Vec<u64>) = match resizes {
        None => {
            let retirements = rng.range(1, 3);
            let retires = (0..retirements).map(|_| rng.range(500, 7_000)).collect();
            let adds = (0..rng.range(1, 2))
                .map(|_| rng.range(1_000, 8_000))
                .collect();
            (adds, retires)
        }
        // Grow first, then shrink.
        Some((adds, retirements)) => (
            (0..adds).map(|_| rng.range(300, 3_000)).collect(),
            (0..retirements).map(|_| rng.range(3_000, 8_000)).collect(),
        ),
    };
    adds.sort_unstable();
    retires.sort_unstable();
    (adds, retires)
}

/// A cluster for `seed` set up for `workload`.
fn chaos_sim(seed: u64, workload: Workload) -> Sim {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let n = rng.range(6, 8) as u32;
    let faults = match workload.steady {
        true => Faults {
            crash: 0,
            partition: 0,
            ..Faults::chaos()
        },
        false => Faults::chaos(),
    };
    let mut sim = Sim::new(seed, config(workload.nodes.unwrap_or(n)), faults);
    sim.clients.set_share = workload.set_share;
    sim.clients.kv_share = workload.kv_share;
    if workload.steady {
        sim.clients.kv_keys = 10 * KV_KEYS;
    }
    sim.admin.retry_ms = workload.retry_ms;
    // The admin starts each retirement as soon as its time has come and
    // the previous one is done, so they may follow closely.
    (sim.admin.add_at, sim.admin.retire_at) = schedule(&mut rng, workload.resizes);
    sim
}

/// What one chaotic run did, and how long it took to converge once the
/// faults stopped.
#[derive(Clone, Copy, Debug)]
pub struct RunSummary {
    pub sets: SetSummary,
    pub kv: KvSummary,
    pub took: u64,
    /// Acknowledged client writes.
    pub acked: u64,
    /// What the run's frames would cost on the edge (`harness/traffic.rs`).
    pub traffic: TrafficFigures,
}

/// Convergence times over many runs.
#[derive(Clone, Debug, Default)]
pub struct Convergence {
    runs: u64,
    total_ms: u64,
    max_ms: u64,
    /// Every run's time, in the order added.
    took: Vec<u64>,
}

impl Convergence {
    pub fn add(&mut self, took: u64) {
        self.runs += 1;
        self.total_ms += took;
        self.max_ms = self.max_ms.max(took);
        self.took.push(took);
    }

    pub fn runs(&self) -> u64 {
        self.runs
    }

    pub fn mean_ms(&self) -> u64 {
        self.total_ms / self.runs.max(1)
    }

    pub fn max_ms(&self) -> u64 {
        self.max_ms
    }

    /// The `q`-quantile (0 to 1) of the times, by the nearest rank: the
    /// least time at least `q` of the runs took no longer than; 0 with no run.
    pub fn quantile_ms(&self, q: f64) -> u64 {
        let mut sorted = self.took.clone();
        sorted.sort_unstable();
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted
            .get(rank.clamp(1, sorted.len().max(1)) - 1)
            .copied()
            .unwrap_or(0)
    }

    pub fn median_ms(&self) -> u64 {
        self.quantile_ms(0.5)
    }

    pub fn p90_ms(&self) -> u64 {
        self.quantile_ms(0.9)
    }

    /// Prints the figures for `what`.
    pub fn report(&self, what: &str) {
        let mean = self.mean_ms();
        eprintln!(
            "{what}: {} runs converged after the faults in {mean} ms on average, {} ms at most",
            self.runs, self.max_ms
        );
        eprintln!(
            "{what}: convergence median {} ms, p90 {} ms, max {} ms",
            self.median_ms(),
            self.p90_ms(),
            self.max_ms
        );
    }
}

/// How a chaotic run is checked.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// How long the cluster may take to converge once the faults stop.
    pub settle_limit_ms: u64,
    /// [`Sim::fast_checks`].
    pub fast_checks: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            settle_limit_ms: 30_000,
            fast_checks: false,
        }
    }
}

thread_local! {
    static LAST_CHAOS_TRAFFIC: std::cell::Cell<Option<TrafficFigures>> =
        const { std::cell::Cell::new(None) };
}

/// The traffic figures of the last chaotic run on this thread, as they
/// stood when its faults stopped (the ticks and invocations of the chaos
/// phase, less follow-ups still in flight), even if the run then failed.
pub fn last_chaos_traffic() -> Option<TrafficFigures> {
    LAST_CHAOS_TRAFFIC.get()
}

/// One chaotic run of `seed`.
pub fn chaos_run(seed: u64, workload: Workload) -> RunSummary {
    chaos_run_with(seed, workload, RunOptions::default())
}

/// One chaotic run of `seed`, checked as `options` say.
pub fn chaos_run_with(seed: u64, workload: Workload, options: RunOptions) -> RunSummary {
    let mut sim = chaos_sim(seed, workload);
    sim.fast_checks = options.fast_checks;
    LAST_CHAOS_TRAFFIC.set(None);
    let chaos_ms = if workload.steady { 20_000 } else { 10_000 };
    while sim.now < chaos_ms {
        let dt = sim.rng.range(1, 10);
        sim.step(dt, true);
        sim.random_faults();
    }
    let collected_while_writing = sim.stats.collected;
    if workload.set_share > 0 && workload.kv_share < 1000 {
        sim.closing_wave();
    }
    if workload.kv_share > 0 {
        sim.kv_closing_wave();
    }
    if workload.resizes.is_none() {
        // A retirement that has not started by now is skipped.
        sim.admin.retire_at.clear();
    }
    // The chaos phase's figures, kept for a caller that catches the
    // failure of a run that does not converge.
    LAST_CHAOS_TRAFFIC.set(Some(sim.traffic.figures()));
    let took = sim.settle(options.settle_limit_ms);
    check_meaningful(&sim, workload);
    let sets = set_summary(&sim);
    let mut kv = kv_summary(&mut sim);
    kv.collected_while_writing = collected_while_writing;
    eprintln!(
        "seed {seed}: {} nodes, retired {:?}, added {:?}, {} active at the end, converged {took} ms \
         after the faults; {:?}; sets {sets:?}; registers {kv:?}",
        sim.config.initial_nodes,
        sim.admin.retired,
        sim.admin.added,
        sim.active_up().len(),
        sim.stats
    );
    RunSummary {
        sets,
        kv,
        took,
        acked: sim.stats.acked,
        traffic: sim.traffic.figures(),
    }
}

/// A run too thin to prove anything fails.
fn check_meaningful(sim: &Sim, workload: Workload) {
    if sim.counters.expected.is_empty() && sim.regs.is_empty() || sim.stats.acked < 100 {
        sim.fail("too few acknowledged writes for a meaningful run");
    }
    if workload.set_share >= 500
        && (sim.sets.len() < set_keys().len() || sim.stats.set_writes < 100)
    {
        sim.fail("too few acknowledged set writes for a meaningful run");
    }
    if let Some((adds, retirements)) = workload.resizes {
        if sim.admin.added.len() as u64 != adds || sim.admin.retired.len() as u64 != retirements {
            let (added, retired) = (&sim.admin.added, &sim.admin.retired);
            sim.fail(format!(
                "resized by {added:?} and {retired:?}, not {adds} and {retirements}"
            ));
        }
    }
}

fn set_summary(sim: &Sim) -> SetSummary {
    SetSummary {
        writes: sim.stats.set_writes,
        equal_pairs: sim.sets.values().map(|l| l.equal_pairs()).sum(),
        ties: sim.sets.values().map(|l| l.ties()).sum(),
        remove_wins: sim
            .sets
            .values()
            .filter(|l| l.bias() == Bias::RemoveWins)
            .count(),
        stale_after_restart: sim.stats.stale_after_restart,
    }
}

fn kv_summary(sim: &mut Sim) -> KvSummary {
    let end = sim.check_registers_final();
    let s = &sim.stats;
    KvSummary {
        writes: s.kv_writes,
        deletes: s.kv_deletes,
        off_replica: s.kv_off_replica,
        end,
        collected: s.collected,
        collected_while_writing: 0,
        transfers: s.transfers,
        row_deletes: s.row_deletes,
        handoffs: s.handoffs,
        added: sim.admin.added.len() as u64,
        retired: sim.admin.retired.len() as u64,
        lazy_loads: sim.slots.values().map(|s| s.disk().loads).sum(),
    }
}

/// Runs `workload` with every seed; the register summaries added up.
pub fn register_runs(what: &str, workload: Workload) -> KvSummary {
    let mut total = KvSummary::default();
    let mut convergence = Convergence::default();
    for seed in seeds() {
        eprintln!("simulating {what}, seed {seed} (replay with SIM_SEED={seed})");
        let run = chaos_run(seed, workload);
        total.add(&run.kv);
        convergence.add(run.took);
    }
    eprintln!("{what} over all seeds: {total:?}");
    convergence.report(what);
    total
}
