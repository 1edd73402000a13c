//! Our PN-counter against `crdts::PNCounter` (crdts 7.3.2, actor `u32`) on
//! the same states, side by side in one run: the time of a clone plus a
//! merge, and the size of the postcard encoding, each against its target.
//! Exits non-zero if a target is missed.
//!
//! Run with `cargo bench --bench counter_layout`; `BENCH_COUNTER_SEED=<n>`
//! picks another seed (default 1).
//!
//! # States
//!
//! A visit counter on 68 nodes, `node-0` to `node-67`, built through each
//! crate's own API from one seeded history: every node adds a count drawn
//! log-uniformly from 1,000 to 500,000; 12 of nodes 0..64 and node 66
//! subtract 10 to 5,000 (log-uniform); then nodes 64..68 retire into four
//! distinct heirs among nodes 0..64 (ours: `absorb`, so the heirs' entries
//! carry 4 records in the increments and 1 in the decrements). crdts has
//! no retirement: its writes of a retired node are made at the heir's actor,
//! so both hold the same live entries with the same counts (checked entry
//! by entry through crdts' postcard bytes), and only ours has the records.
//! Replica `b` is `a` after three more writes at three live nodes: the
//! common merge, a few entries apart.
//!
//! # Timing
//!
//! One operation is `let mut x = a.clone(); x.merge(b)`, the result dropped.
//! crdts' `merge` takes `b` by value, so its copies of `b` are made before
//! the clock starts, 64 at a time (and it frees them inside the merge, as
//! its API requires). A sample is 40 timed batches of 64 operations; ours
//! and crdts alternate, in a changing order, over 21 rounds after 3 rounds
//! of warm-up, and each side's median sample is reported.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use crdts::{CmRDT, CvRDT, PNCounter};
    use edge_crdt::crdt::{Crdt, GCounter, PnCounter};
    use edge_crdt::{NodeId, Rng};
    use std::collections::BTreeMap;
    use std::hint::black_box;
    use std::time::Instant;

    const LIVE: u32 = 64;
    const RETIRED: u32 = 4;
    const BATCH: usize = 64;
    const BATCHES: usize = 40;
    const WARM_UP: usize = 3;
    const ROUNDS: usize = 21;
    const TIME_TARGET: f64 = 0.5;
    const SIZE_TARGET: f64 = 0.8;

    /// `k` distinct numbers below `n`, sorted.
    fn distinct(rng: &mut Rng, k: usize, n: u32) -> Vec<u32> {
        let mut out = Vec::new();
        while out.len() < k {
            let x = rng.below(u64::from(n)) as u32;
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out.sort_unstable();
        out
    }

    /// Log-uniform in `lo..hi`.
    fn log_uniform(rng: &mut Rng, lo: f64, hi: f64) -> i64 {
        (lo * (hi / lo).powf(rng.unit())) as i64
    }

    /// One replica in both implementations.
    #[derive(Clone, Default)]
    struct Replica {
        ours: PnCounter,
        theirs: PNCounter<u32>,
    }

    impl Replica {
        /// `node` adds `by`; crdts writes it at `actor`.
        fn add(&mut self, node: u32, actor: u32, by: i64) {
            let delta = self.ours.add(NodeId(node), by).expect("a live node writes");
            self.ours.merge(&delta);
            let op = if by >= 0 {
                self.theirs.inc_many(actor, by.unsigned_abs())
            } else {
                self.theirs.dec_many(actor, by.unsigned_abs())
            };
            self.theirs.apply(op);
        }
    }

    /// Replicas `a` and `b` of the module doc.
    fn states(seed: u64) -> (Replica, Replica) {
        let mut rng = Rng::new(seed);
        let heirs = distinct(&mut rng, RETIRED as usize, LIVE);
        let actor = |node: u32| node.checked_sub(LIVE).map_or(node, |i| heirs[i as usize]);
        let mut a = Replica::default();
        for node in 0..LIVE + RETIRED {
            a.add(node, actor(node), log_uniform(&mut rng, 1e3, 5e5));
        }
        for node in distinct(&mut rng, 12, LIVE).into_iter().chain([LIVE + 2]) {
            a.add(node, actor(node), -log_uniform(&mut rng, 10.0, 5e3));
        }
        for retired in LIVE..LIVE + RETIRED {
            let fold = a
                .ours
                .absorb(NodeId(retired), NodeId(actor(retired)))
                .expect("a retiree with an entry is folded");
            a.ours.merge(&fold);
        }
        let mut b = a.clone();
        for node in distinct(&mut rng, 3, LIVE) {
            b.add(node, node, log_uniform(&mut rng, 10.0, 1e3));
        }
        (a, b)
    }

    /// Asserts that both implementations hold the same counts.
    fn check_same(r: &Replica) {
        assert_eq!(r.ours.value().to_string(), r.theirs.read().to_string());
        // crdts' postcard form is that of its two actor-to-count maps.
        let bytes = postcard::to_allocvec(&r.theirs).expect("crdts encodes");
        type Maps = (BTreeMap<u32, u64>, BTreeMap<u32, u64>);
        let (p, n): Maps = postcard::from_bytes(&bytes).expect("two maps");
        let map = |half: &GCounter| -> BTreeMap<u32, u64> {
            half.entries().iter().map(|e| (e.node.0, e.count)).collect()
        };
        assert_eq!(p, map(r.ours.increments()), "increments differ");
        assert_eq!(n, map(r.ours.decrements()), "decrements differ");
    }

    /// Nanoseconds per operation over one sample; `op(i)` is batch item `i`.
    fn sample<P>(prepare: impl Fn() -> P, op: impl Fn(P)) -> f64 {
        let mut total = 0.0;
        for _ in 0..BATCHES {
            let inputs: Vec<P> = (0..BATCH).map(|_| prepare()).collect();
            let start = Instant::now();
            for input in inputs {
                op(input);
            }
            total += start.elapsed().as_nanos() as f64;
        }
        total / (BATCHES * BATCH) as f64
    }

    fn ours(a: &PnCounter, b: &PnCounter) -> f64 {
        sample(
            || (),
            |()| {
                let mut x = black_box(a).clone();
                black_box(x.merge(black_box(b)));
                drop(black_box(x));
            },
        )
    }

    fn crdts(a: &PNCounter<u32>, b: &PNCounter<u32>) -> f64 {
        sample(
            || b.clone(),
            |b| {
                let mut x = black_box(a).clone();
                x.merge(black_box(b));
                drop(black_box(x));
            },
        )
    }

    fn median(mut xs: Vec<f64>) -> f64 {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    }

    fn time(ns: f64) -> String {
        if ns < 1e3 {
            format!("{ns:.0} ns")
        } else {
            format!("{:.2} µs", ns / 1e3)
        }
    }

    /// Prints one figure; whether it meets its target.
    fn figure(what: &str, ours: String, theirs: String, ratio: f64, target: f64) -> bool {
        println!("{what}: ours {ours}, crdts {theirs}, ratio {ratio:.2} (target <= {target})");
        ratio <= target
    }

    /// Times clone-plus-merge of `b` into `a` for both; whether on target.
    fn clone_merge(a: &Replica, b: &Replica) -> bool {
        let (mut mine, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..WARM_UP + ROUNDS {
            let (x, y) = if round % 2 == 0 {
                let x = ours(&a.ours, &b.ours);
                (x, crdts(&a.theirs, &b.theirs))
            } else {
                let y = crdts(&a.theirs, &b.theirs);
                (ours(&a.ours, &b.ours), y)
            };
            if round >= WARM_UP {
                mine.push(x);
                theirs.push(y);
                ratios.push(x / y);
            }
        }
        let (m, t) = (median(mine), median(theirs));
        let n = a.ours.increments().entries().len();
        let ok = figure(
            &format!("clone+merge, {n} entries"),
            time(m),
            time(t),
            m / t,
            TIME_TARGET,
        );
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        println!("  ratio per round: {lo:.2} to {hi:.2} over {ROUNDS} rounds");
        ok
    }

    /// Compares the postcard sizes of replica `name`; whether on target.
    fn size(name: &str, r: &Replica) -> bool {
        let mine = postcard::to_allocvec(&r.ours).expect("ours encodes").len();
        let theirs = postcard::to_allocvec(&r.theirs)
            .expect("crdts encodes")
            .len();
        let records =
            r.ours.increments().retirements().count() + r.ours.decrements().retirements().count();
        let n = r.ours.increments().entries().len();
        let what =
            format!("postcard size of {name}, {n} entries with {records} retirement records");
        let ratio = mine as f64 / theirs as f64;
        figure(
            &what,
            format!("{mine} B"),
            format!("{theirs} B"),
            ratio,
            SIZE_TARGET,
        )
    }

    pub fn main() {
        let seed = std::env::var("BENCH_COUNTER_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let (a, b) = states(seed);
        check_same(&a);
        check_same(&b);
        let mut joined = a.clone();
        joined.ours.merge(&b.ours);
        joined.theirs.merge(b.theirs.clone());
        check_same(&joined);
        assert_eq!(joined.ours, b.ours, "b is a few writes past a");
        println!("seed {seed}: value {}, {} live nodes", a.ours.value(), LIVE);
        let fast = clone_merge(&a, &b);
        let small = size("a", &a) & size("b", &b);
        if !(fast && small) {
            eprintln!("a target is missed");
            std::process::exit(1);
        }
    }
}
