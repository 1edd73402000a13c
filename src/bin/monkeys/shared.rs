//! What the workers share: the options, the pool, deadlines, counters, the
//! first errors, and the board of writes to tie with.

use crate::args::Options;
use crate::http::Failure;
use crate::pool::Pool;
use edge_crdt::crdt::Element;
use edge_crdt::Rng;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

/// One acknowledged write of one element.
#[derive(Clone, Debug)]
pub struct Logged {
    pub add: bool,
    pub element: Element,
    pub stamp: u64,
}

/// What a load worker hands back.
#[derive(Default)]
pub struct WorkerLog {
    pub log: Vec<Logged>,
    /// elements of writes whose outcome is unknown
    pub uncertain: Vec<Element>,
}

#[derive(Default)]
pub struct Counters {
    pub normal_acked: AtomicU64,
    pub offline_acked: AtomicU64,
    pub syncs: AtomicU64,
    pub errors: AtomicU64,
    pub uncertain: AtomicU64,
    pub polls: AtomicU64,
    pub events: AtomicU64,
    pub viewer_errors: AtomicU64,
}

/// The members a viewer shows, once it has received the set.
pub type Shown = Mutex<Option<BTreeSet<Element>>>;

/// How many first errors are kept for the report.
const FIRST_ERRORS: usize = 8;

pub struct Shared {
    pub opts: Options,
    pub pool: Pool,
    pub set_path: String,
    pub load_deadline: Instant,
    pub hard_deadline: Instant,
    /// Viewers stop at the hard deadline; this bound (10 requests a
    /// second until then) only backs it up. `--max-ops` bounds writes:
    /// a viewer cut short could not be checked.
    pub viewer_max_ops: u64,
    pub counters: Counters,
    pub stop_viewers: AtomicBool,
    pub fatal: Mutex<Option<String>>,
    pub first_errors: Mutex<Vec<String>>,
    pub ties: TieBoard,
}

impl Shared {
    /// Counts a failed request and notes its text.
    pub fn error(&self, f: &Failure) {
        self.counters.errors.fetch_add(1, Relaxed);
        if let Failure::Uncertain(_) = f {
            self.counters.uncertain.fetch_add(1, Relaxed);
        }
        self.note(f.text());
    }

    /// Keeps `text` if it is among the first few errors.
    pub fn note(&self, text: &str) {
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < FIRST_ERRORS {
            first.push(text.to_owned());
        }
    }

    /// Stops the load: the run cannot succeed (the first reason is kept).
    pub fn fail(&self, why: String) {
        let mut fatal = self.fatal.lock().unwrap();
        if fatal.is_none() {
            *fatal = Some(why);
        }
    }

    pub fn failed(&self) -> bool {
        self.fatal.lock().unwrap().is_some()
    }

    pub fn load_over(&self) -> bool {
        Instant::now() >= self.load_deadline || self.failed()
    }

    pub fn viewers_over(&self) -> bool {
        self.stop_viewers.load(Relaxed) || Instant::now() >= self.hard_deadline
    }

    /// A random node's name.
    pub fn node(&self, rng: &mut Rng) -> String {
        format!("node-{}", rng.below(self.opts.nodes))
    }

    /// `/updates` from `since`, at a random node.
    pub fn updates_path(&self, since: u64, rng: &mut Rng) -> String {
        format!(
            "{}/updates?since={since}&node={}",
            self.set_path,
            self.node(rng)
        )
    }
}

/// A recent write that another worker may repeat with the opposite
/// operation at the same stamp: two clients stamping alike, a tie that the
/// bias decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tie {
    pub worker: usize,
    /// the element's index in the pool
    pub index: usize,
    pub stamp: u64,
    pub add: bool,
}

/// The last few writes posted for ties.
#[derive(Default)]
pub struct TieBoard(Mutex<Vec<Tie>>);

impl TieBoard {
    const SIZE: usize = 16;

    pub fn post(&self, tie: Tie) {
        let mut board = self.0.lock().unwrap();
        if board.len() >= Self::SIZE {
            board.remove(0);
        }
        board.push(tie);
    }

    /// The newest write of another worker than `worker`, taken off.
    pub fn take(&self, worker: usize) -> Option<Tie> {
        let mut board = self.0.lock().unwrap();
        let at = board.iter().rposition(|t| t.worker != worker)?;
        Some(board.remove(at))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn tie(worker: usize, stamp: u64) -> Tie {
        Tie {
            worker,
            index: 0,
            stamp,
            add: true,
        }
    }

    #[test]
    fn a_worker_takes_the_newest_tie_of_another() {
        let board = TieBoard::default();
        board.post(tie(1, 10));
        board.post(tie(2, 20));
        board.post(tie(1, 30));
        assert_eq!(board.take(1), Some(tie(2, 20)));
        assert_eq!(board.take(1), None);
        assert_eq!(board.take(2), Some(tie(1, 30)));
        assert_eq!(board.take(2), Some(tie(1, 10)));
        assert_eq!(board.take(2), None);
    }

    #[test]
    fn the_board_keeps_the_last_sixteen() {
        let board = TieBoard::default();
        (0..20).for_each(|s| board.post(tie(1, s)));
        let taken: Vec<_> = std::iter::from_fn(|| board.take(0))
            .map(|t| t.stamp)
            .collect();
        assert_eq!(taken, (4..20).rev().collect::<Vec<_>>());
    }
}
