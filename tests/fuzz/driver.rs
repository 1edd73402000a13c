//! The one driver: it feeds a [`Target`] its seeds (valid encodings from
//! the real encoders, each of which must be accepted), then mutants of
//! them and of the accepted mutants it keeps, splices and random bytes,
//! and runs every input under `catch_unwind`. A panic, a broken property
//! (a [`Verdict::Broken`]) or an allocation out of proportion to the input
//! is a crash: reported with the target's name, how the input was made,
//! the shortest input found that still fails (in hex) and the line that
//! replays it.
//!
//! Knobs (environment): `FUZZ_INPUTS` per target (default
//! [`DEFAULT_INPUTS`]), `FUZZ_SECONDS` per target (then inputs are
//! unbounded unless `FUZZ_INPUTS` is set too), `FUZZ_SEED`, `FUZZ_TARGET`
//! (a part of the names to run), `FUZZ_REPLAY` (one input in hex),
//! `FUZZ_PROGRESS` (seconds between progress lines).

use crate::alloc::allocated_by;
use crate::mutate::{Mutator, Verb};
use edge_crdt::Rng;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Inputs per target in a plain `cargo test`.
pub const DEFAULT_INPUTS: u64 = 5000;

/// The seed of a plain `cargo test`: the same inputs every run.
const DEFAULT_SEED: u64 = 0x5eed_f022;

/// Bytes an input may allocate per byte of its own, besides its target's base.
const ALLOC_PER_BYTE: usize = 256;

/// Accepted mutants kept to mutate further.
const POOL: usize = 512;

/// Stack of the thread a target runs on: a Worker's is 1 MiB.
const STACK: usize = 1 << 20;

/// What a target made of one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// it decoded (and kept every property checked)
    Accepted,
    /// it was refused with an error
    Refused,
    /// it broke a property: what went wrong
    Broken(String),
}

type Check = Box<dyn Fn(&[u8]) -> Verdict + Send + Sync>;

/// A decoder under test.
pub struct Target {
    /// `area/decoder`
    name: String,
    /// valid encodings from the real encoders
    seeds: Vec<Vec<u8>>,
    /// tokens of its format, for mutations
    dict: &'static [&'static [u8]],
    /// bytes one input may allocate besides [`ALLOC_PER_BYTE`] per input byte
    alloc_base: usize,
    check: Check,
}

impl Target {
    /// A target named `name` that runs `check` on each input.
    pub fn new(
        name: impl Into<String>,
        seeds: Vec<Vec<u8>>,
        check: impl Fn(&[u8]) -> Verdict + Send + Sync + 'static,
    ) -> Target {
        Target {
            name: name.into(),
            seeds,
            dict: &[],
            alloc_base: 4 << 20,
            check: Box::new(check),
        }
    }

    /// With tokens of its format.
    pub fn dict(self, dict: &'static [&'static [u8]]) -> Target {
        Target { dict, ..self }
    }

    /// With a larger allocation allowance per input.
    pub fn alloc_base(self, bytes: usize) -> Target {
        Target {
            alloc_base: bytes,
            ..self
        }
    }

    /// Runs one input: accepted or not, or why it is a crash.
    fn try_input(&self, input: &[u8]) -> Result<bool, String> {
        QUIET.with(|q| q.set(true));
        let ran = catch_unwind(AssertUnwindSafe(|| allocated_by(|| (self.check)(input))));
        QUIET.with(|q| q.set(false));
        let limit = self.alloc_base + ALLOC_PER_BYTE * input.len();
        match ran {
            Err(_) => Err(PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default()),
            Ok((Verdict::Broken(why), _)) => Err(why),
            Ok((_, bytes)) if bytes > limit => Err(format!(
                "allocated {bytes} bytes for a {}-byte input (limit {limit})",
                input.len()
            )),
            Ok((verdict, _)) => Ok(verdict == Verdict::Accepted),
        }
    }
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside a target are kept for the report instead of printed.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                PANIC.with(|p| *p.borrow_mut() = Some(format!("a panic: {info}")));
            } else {
                default(info);
            }
        }));
    });
}

/// How long a run goes, from the environment.
#[derive(Clone, Debug)]
struct Budget {
    inputs: Option<u64>,
    time: Option<Duration>,
    seed: u64,
    filter: Option<String>,
    replay: Option<Vec<u8>>,
    progress: Option<Duration>,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    let text = std::env::var(name).ok()?;
    let value = text.trim().parse().ok();
    assert!(value.is_some(), "{name}={text} does not parse");
    value
}

impl Budget {
    /// The budget the environment sets.
    fn from_env() -> Budget {
        let time = env::<f64>("FUZZ_SECONDS").map(Duration::from_secs_f64);
        let inputs = env("FUZZ_INPUTS").or(time.is_none().then_some(DEFAULT_INPUTS));
        Budget {
            inputs,
            time,
            seed: env("FUZZ_SEED").unwrap_or(DEFAULT_SEED),
            filter: std::env::var("FUZZ_TARGET").ok(),
            replay: std::env::var("FUZZ_REPLAY").ok().map(|h| unhex(&h)),
            progress: env::<f64>("FUZZ_PROGRESS").map(Duration::from_secs_f64),
        }
    }

    fn done(&self, inputs: u64, elapsed: Duration) -> bool {
        self.inputs.is_some_and(|n| inputs >= n) || self.time.is_some_and(|t| elapsed >= t)
    }
}

/// One failing input.
struct Crash {
    input: Vec<u8>,
    how: String,
    why: String,
}

/// What a run of one target did.
struct Report {
    name: String,
    inputs: u64,
    accepted: u64,
    crashes: u64,
    first: Vec<Crash>,
    elapsed: Duration,
}

impl Report {
    fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "fuzz {:<32} {:>9} inputs {:>9.0}/s {:>4.0}% decoded {:>3} crashes",
            self.name,
            self.inputs,
            self.inputs as f64 / secs,
            100.0 * self.accepted as f64 / self.inputs.max(1) as f64,
            self.crashes
        )
    }
}

/// Runs each target the budget selects; fails with every crash found.
pub fn fuzz(targets: Vec<Target>) {
    install_hook();
    let budget = Budget::from_env();
    let mut failures = Vec::new();
    let selected = targets
        .into_iter()
        .filter(|t| budget.filter.as_ref().is_none_or(|f| t.name.contains(f)));
    for target in selected {
        let name = target.name.clone();
        let b = budget.clone();
        let report = std::thread::Builder::new()
            .name(format!("fuzz {name}"))
            .stack_size(STACK)
            .spawn(move || run_target(&target, &b))
            .expect("a thread")
            .join()
            .unwrap_or_else(|_| panic!("the driver itself failed on {name}"));
        println!("{}", report.line());
        if report.crashes > 0 {
            failures.push(report);
        }
    }
    let details: Vec<String> = failures.iter().map(describe).collect();
    assert!(details.is_empty(), "\n{}", details.join("\n\n"));
}

/// The report of a crash, with its shortest failing input and a replay line.
fn describe(r: &Report) -> String {
    let mut out = format!("CRASH in fuzz target `{}`: {} crashes", r.name, r.crashes);
    for c in &r.first {
        let head = &c.input[..c.input.len().min(64)];
        let more = if head.len() < c.input.len() {
            "…"
        } else {
            ""
        };
        out += &format!(
            "\n- {}\n  made as: {}\n  input ({} bytes): {}{more}\n  replay: FUZZ_TARGET={} FUZZ_REPLAY={} cargo test --test fuzz",
            c.why,
            c.how,
            c.input.len(),
            hex(head),
            r.name,
            hex(&c.input)
        );
    }
    out
}

fn run_target(target: &Target, budget: &Budget) -> Report {
    let mut report = Report {
        name: target.name.clone(),
        inputs: 0,
        accepted: 0,
        crashes: 0,
        first: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let start = Instant::now();
    let mut inputs = Inputs::new(target, budget);
    let mut shown = start;
    while !budget.done(report.inputs, start.elapsed()) {
        let Some((input, how)) = inputs.next(report.inputs) else {
            break;
        };
        match target.try_input(&input) {
            Ok(true) => {
                report.accepted += 1;
                inputs.keep(input, report.inputs);
            }
            Ok(false) if inputs.is_seed(report.inputs) => {
                report.crashes += 1;
                let why = "a seed from the real encoders is refused".to_owned();
                report.first.push(Crash { input, how, why });
            }
            Ok(false) => {}
            Err(why) => {
                report.crashes += 1;
                if report.first.len() < 3 {
                    let input = shorten(target, input);
                    let why = target.try_input(&input).err().unwrap_or(why);
                    report.first.push(Crash { input, how, why });
                }
            }
        }
        report.inputs += 1;
        if budget.progress.is_some_and(|p| shown.elapsed() >= p) {
            shown = Instant::now();
            report.elapsed = start.elapsed();
            println!("  … {}", report.line());
        }
    }
    report.elapsed = start.elapsed();
    report
}

/// Where the inputs of a run come from: the seeds, then mutants, splices
/// and random bytes; or the one input to replay.
struct Inputs<'a> {
    seeds: &'a [Vec<u8>],
    pool: Vec<Vec<u8>>,
    mutator: Mutator<'a>,
    /// `Some` when replaying: the input, until it is taken
    replay: Option<Option<Vec<u8>>>,
}

impl<'a> Inputs<'a> {
    fn new(target: &'a Target, budget: &Budget) -> Self {
        let stream = target.name.bytes().fold(0u64, |h, b| {
            h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(b))
        });
        Inputs {
            seeds: &target.seeds,
            pool: target.seeds.clone(),
            mutator: Mutator {
                rng: Rng::stream(budget.seed, stream),
                dict: target.dict,
            },
            replay: budget.replay.clone().map(Some),
        }
    }

    /// Input number `n`, and how it was made.
    fn next(&mut self, n: u64) -> Option<(Vec<u8>, String)> {
        if let Some(replay) = &mut self.replay {
            return replay.take().map(|r| (r, "FUZZ_REPLAY".to_owned()));
        }
        if let Some(seed) = self.seeds.get(n as usize) {
            return Some((seed.clone(), format!("seed {n}")));
        }
        if self.pool.is_empty() || self.mutator.rng.chance(50) {
            return Some((self.mutator.random(), "random bytes".to_owned()));
        }
        let i = self.mutator.rng.below(self.pool.len() as u64) as usize;
        let j = self.mutator.rng.below(self.pool.len() as u64) as usize;
        let mut input = self.pool[i].clone();
        let verbs = if self.mutator.rng.chance(100) {
            self.mutator.apply(Verb::Splice, &mut input, &self.pool[j]);
            vec![Verb::Splice]
        } else {
            self.mutator.mutate(&mut input, &self.pool[j])
        };
        Some((
            input,
            format!("pool input {i} (of {}) + {verbs:?}", self.pool.len()),
        ))
    }

    /// Whether input number `n` is a seed.
    fn is_seed(&self, n: u64) -> bool {
        self.replay.is_none() && (n as usize) < self.seeds.len()
    }

    /// Keeps an accepted mutant to mutate further.
    fn keep(&mut self, input: Vec<u8>, n: u64) {
        if self.is_seed(n) {
            return;
        }
        if self.pool.len() < POOL {
            self.pool.push(input);
        } else {
            let spare = POOL - self.seeds.len().min(POOL);
            if spare > 0 {
                let i = self.seeds.len() + self.mutator.rng.below(spare as u64) as usize;
                self.pool[i] = input;
            }
        }
    }
}

/// A shorter input that still fails: chunks dropped while it does.
fn shorten(target: &Target, input: Vec<u8>) -> Vec<u8> {
    let mut best = input;
    let mut chunk = best.len() / 2;
    let mut tries = 0;
    while chunk > 0 && tries < 1000 {
        let mut at = 0;
        let mut shrunk = false;
        while at + chunk <= best.len() && tries < 1000 {
            let mut candidate = best.clone();
            candidate.drain(at..at + chunk);
            tries += 1;
            if target.try_input(&candidate).is_err() {
                best = candidate;
                shrunk = true;
            } else {
                at += chunk;
            }
        }
        if !shrunk {
            chunk /= 2;
        }
    }
    best
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("FUZZ_REPLAY is hex"))
        .collect()
}
