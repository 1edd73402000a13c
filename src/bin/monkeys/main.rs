//! Chaos clients for the LWW element set API of a local cluster: random
//! writers, offline-then-online replicas and viewers, all at once, then a
//! check that every node and viewer converged on the set that the log of
//! acknowledged operations implies.
//!
//! ```text
//! cargo run --release --bin monkeys -- --url http://127.0.0.1:8787 \
//!     --normal 4 --offline-online 2 --viewer 2 --seconds 30 --bias remove-wins
//! ```
//!
//! Modes (any together, each with its worker count):
//! - `--normal N`: inserts and deletes of 1-3 elements from a shared pool, at
//!   a random node (`?node=node-K`), at random intervals. Each write's
//!   timestamp is read from the reply's `stamp`.
//! - `--offline-online N`: each keeps a local `LwwSet` and its own `Hlc` on
//!   the local wall clock (shifted by a skew of up to ±2 s, and for half of
//!   them coarse, so that clients tie), makes a burst of changes offline,
//!   then pushes its whole replica to `/update` with the sync token, pulls
//!   `/updates?since=`, and repeats. Now and then a change is the opposite
//!   of another client's recent write at the same stamp: a tie, which the
//!   bias decides.
//! - `--viewer N`: each keeps a replica from `/updates?since=` polling at a
//!   random node (re-polling from `--window-ms` before the last `latest`,
//!   since late entries carry older stamps) or from an SSE stream
//!   (`--viewer-mode sse|poll|both`, default both: even viewers poll, odd
//!   ones stream). A poller shows its entries under the bias of the last
//!   reply: a node that has not yet heard of the creation says add-wins.
//!
//! When the load stops: waits until every node answers the same members and
//! `latest` for a few polls in a row, waits for the viewers to catch up, and
//! compares every node and viewer with an oracle: the LWW rule, with the
//! set's bias, over the log of acknowledged operations. Writes whose outcome
//! is unknown (a timeout, a 5xx) are not in the log: their elements are left
//! out of the oracle comparison and counted. Exits 1 on a mismatch, when the
//! nodes do not converge, or when nothing was acknowledged; 2 on bad
//! arguments or setup. Every random choice comes from `--seed` (the timing,
//! and so the interleaving, does not repeat). `--max-ops` bounds each load
//! worker's writes; every loop also ends at a time limit.
//!
//! Only loopback addresses are accepted, and only plain http.
//!
//! The code: `args` (options, `--help`), `run` (one run, start to end),
//! `workers` (the threads), `oracle` and `report` (the check), and what
//! they use: `http`, `sse`, `set_api`, `shared`, `pool`, `clock` (and the crate's `Rng`),
//! `converge`, `loopback`.

// Only the native build has the HTTP client: on wasm32 this is empty.
#[cfg(not(target_arch = "wasm32"))]
mod args;
#[cfg(not(target_arch = "wasm32"))]
mod clock;
#[cfg(not(target_arch = "wasm32"))]
mod converge;
#[cfg(not(target_arch = "wasm32"))]
mod http;
#[cfg(not(target_arch = "wasm32"))]
mod loopback;
#[cfg(not(target_arch = "wasm32"))]
mod oracle;
#[cfg(not(target_arch = "wasm32"))]
mod pool;
#[cfg(not(target_arch = "wasm32"))]
mod report;
#[cfg(not(target_arch = "wasm32"))]
#[cfg(not(target_arch = "wasm32"))]
mod run;
#[cfg(not(target_arch = "wasm32"))]
mod set_api;
#[cfg(not(target_arch = "wasm32"))]
mod shared;
#[cfg(not(target_arch = "wasm32"))]
mod sse;
#[cfg(not(target_arch = "wasm32"))]
mod workers;

#[cfg(target_arch = "wasm32")]
fn main() {}

/// Exit codes: 0 when every check holds (or for `--help`), 1 on a
/// mismatch, 2 on bad arguments or a failed setup.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match args::parse(&args, args::default_token) {
        Ok(args::Command::Help) => {
            println!("{}", args::USAGE);
            std::process::exit(0);
        }
        Ok(args::Command::Run(opts)) => opts,
        Err(e) => {
            eprintln!("monkeys: {e}\n\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    let code = match run::run(opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("monkeys: {e}");
            2
        }
    };
    std::process::exit(code);
}
