//! The report: a progress line a second during the load, then the result,
//! with every node and viewer checked against the oracle.

use crate::clock::sleep_ms;
use crate::converge::Quiet;
use crate::oracle::Oracle;
use crate::set_api::{bias_name, NodeView};
use crate::shared::{Counters, Shared};
use crate::workers::Viewer;
use edge_crdt::crdt::Element;
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The thread that prints a line a second.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Progress {
    pub fn start(shared: Arc<Shared>, start: Instant) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let thread = thread::spawn(move || {
            let mut last = 0;
            let mut tick = 0u64;
            while !stop.load(Relaxed) {
                sleep_ms(100);
                if Instant::now() < start + Duration::from_secs(tick + 1) {
                    continue;
                }
                tick += 1;
                last = print_progress(&shared.counters, tick, last);
                let _ = std::io::stdout().flush();
            }
        });
        Progress { done, thread }
    }

    pub fn stop(self) {
        self.done.store(true, Relaxed);
        let _ = self.thread.join();
    }
}

/// One progress line; returns the operations acknowledged so far.
fn print_progress(c: &Counters, tick: u64, last: u64) -> u64 {
    let normal = c.normal_acked.load(Relaxed);
    let offline = c.offline_acked.load(Relaxed);
    let acked = normal + offline;
    println!(
        "[{tick:>3}s] acked {acked} (normal {normal}, offline {offline} in {} syncs), {} ops/s, errors {} ({} uncertain); viewers: {} polls, {} events, {} errors",
        c.syncs.load(Relaxed),
        acked - last,
        c.errors.load(Relaxed),
        c.uncertain.load(Relaxed),
        c.polls.load(Relaxed),
        c.events.load(Relaxed),
        c.viewer_errors.load(Relaxed),
    );
    acked
}

/// What a run leaves to report.
pub struct Outcome<'a> {
    pub shared: &'a Shared,
    /// the oracle, with every logged entry recorded
    pub oracle: &'a Oracle,
    /// how many element entries the workers logged
    pub logged: usize,
    /// elements of writes whose outcome is unknown, left out of the check
    pub uncertain: &'a BTreeSet<Element>,
    pub load_secs: f64,
    pub quiet: &'a Quiet,
    pub viewers: &'a [Viewer],
    /// how long the viewers took to show the nodes' set, if they did
    pub viewers_after: Option<Duration>,
}

/// Prints the result; returns the exit code, 0 when every node and viewer
/// holds the set the oracle gives, else 1.
pub fn report(o: &Outcome) -> i32 {
    let mut mismatches: Vec<String> = Vec::new();
    if let Some(why) = o.shared.fatal.lock().unwrap().clone() {
        mismatches.push(format!("stopped early: {why}"));
    }
    let expected = o.oracle.members();
    let acked = print_load(o);
    if acked == 0 {
        mismatches.push("nothing was acknowledged".into());
    }
    if !print_convergence(o) {
        mismatches.push("the nodes did not converge".into());
    }
    check_nodes(o, &expected, &mut mismatches);
    let viewers_ok = check_viewers(o, &expected, &mut mismatches);
    if o.shared.opts.viewers > 0 {
        print_viewers(o, viewers_ok);
    }
    println!(
        "oracle: {} members from {} logged entries, latest {}, bias {}; {} elements end in a tie that the bias decides",
        expected.len(),
        o.logged,
        o.oracle.latest,
        bias_name(o.oracle.bias),
        o.oracle.ties(),
    );
    for m in &mismatches {
        println!("MISMATCH: {m}");
    }
    print_summary(o, acked, viewers_ok, mismatches.len());
    if mismatches.is_empty() {
        println!(
            "OK: every node and viewer holds the set the log of acknowledged operations implies"
        );
        0
    } else {
        println!("FAILED: {} mismatch(es)", mismatches.len());
        1
    }
}

/// The load's figures and first errors; returns the operations
/// acknowledged.
fn print_load(o: &Outcome) -> u64 {
    let c = &o.shared.counters;
    let normal = c.normal_acked.load(Relaxed);
    let offline = c.offline_acked.load(Relaxed);
    let acked = normal + offline;
    let secs = o.load_secs;
    println!();
    println!("== result");
    println!(
        "acknowledged: {acked} ops in {secs:.1} s = {:.1} ops/s (normal: {normal} writes, {:.1}/s; offline-online: {offline} changes in {} syncs, {:.1}/s); {} element entries logged",
        acked as f64 / secs,
        normal as f64 / secs,
        c.syncs.load(Relaxed),
        offline as f64 / secs,
        o.logged,
    );
    println!(
        "errors: {} ({} with unknown outcome; {} elements left out of the oracle check); viewer errors: {}",
        c.errors.load(Relaxed),
        c.uncertain.load(Relaxed),
        o.uncertain.len(),
        c.viewer_errors.load(Relaxed),
    );
    for e in o.shared.first_errors.lock().unwrap().iter() {
        println!("  error: {e}");
    }
    acked
}

/// Whether the nodes converged, and when; returns whether they did.
fn print_convergence(o: &Outcome) -> bool {
    let after = o.quiet.after.as_secs_f64();
    if !o.quiet.converged {
        println!("converged: NO, the nodes still disagree {after:.1} s after the load stopped");
        return false;
    }
    let v = o.quiet.agreed().expect("converged views are Ok");
    println!(
        "converged: yes, all {} nodes agree ({} members, latest {}, bias {}) {after:.3} s after the load stopped",
        o.shared.opts.nodes,
        v.members.len(),
        v.latest,
        v.bias,
    );
    true
}

/// Every node against the oracle (and so against each other).
fn check_nodes(o: &Outcome, expected: &BTreeSet<Element>, mismatches: &mut Vec<String>) {
    for (n, view) in o.quiet.views.iter().enumerate() {
        match view {
            Err(e) => mismatches.push(format!("node-{n}: no answer: {e}")),
            Ok(v) => check_node(o, n, v, expected, mismatches),
        }
    }
}

fn check_node(
    o: &Outcome,
    n: usize,
    v: &NodeView,
    expected: &BTreeSet<Element>,
    mismatches: &mut Vec<String>,
) {
    let oracle = o.oracle;
    let bias = bias_name(oracle.bias);
    if v.bias != bias {
        mismatches.push(format!("node-{n}: bias {} instead of {bias}", v.bias));
    }
    if let Some((extra, missing)) = difference(&v.members, expected, o.uncertain) {
        let first = extra.iter().chain(&missing).next().expect("one differs");
        mismatches.push(format!(
            "node-{n} against the oracle: {} extra, {} missing; {}",
            show(&extra),
            show(&missing),
            oracle.explain(first)
        ));
    }
    // An uncertain write may have been stored, with a later stamp.
    let latest_ok = if o.uncertain.is_empty() {
        v.latest == oracle.latest
    } else {
        v.latest >= oracle.latest
    };
    if !latest_ok {
        mismatches.push(format!(
            "node-{n}: latest {} but the log's latest is {}",
            v.latest, oracle.latest
        ));
    }
}

/// Every viewer against the nodes' set, and the oracle; returns how many
/// hold the nodes' set.
fn check_viewers(o: &Outcome, expected: &BTreeSet<Element>, mismatches: &mut Vec<String>) -> usize {
    let agreed = o.quiet.agreed();
    let mut viewers_ok = 0;
    for (i, viewer) in o.viewers.iter().enumerate() {
        let kind = if viewer.sse { "sse" } else { "poll" };
        let Some(members) = viewer.shown.lock().unwrap().clone() else {
            mismatches.push(format!("viewer {i} ({kind}): never received the set"));
            continue;
        };
        let mut ok = agreed.is_some();
        if let Some(target) = agreed {
            if let Some((extra, missing)) = difference(&members, &target.members, &BTreeSet::new())
            {
                ok = false;
                mismatches.push(format!(
                    "viewer {i} ({kind}) against the nodes: {} extra, {} missing",
                    show(&extra),
                    show(&missing)
                ));
            }
        }
        if let Some((extra, missing)) = difference(&members, expected, o.uncertain) {
            mismatches.push(format!(
                "viewer {i} ({kind}) against the oracle: {} extra, {} missing",
                show(&extra),
                show(&missing)
            ));
        }
        viewers_ok += usize::from(ok);
    }
    viewers_ok
}

fn print_viewers(o: &Outcome, viewers_ok: usize) {
    let c = &o.shared.counters;
    let all = o.shared.opts.viewers;
    let polls = o.viewers.iter().filter(|v| !v.sse).count();
    let when = o.viewers_after.map_or(String::new(), |d| {
        format!(", all {:.3} s after the nodes agreed", d.as_secs_f64())
    });
    println!(
        "viewers: {viewers_ok} of {all} hold the nodes' set ({polls} polling: {} polls; {} on SSE: {} events){when}",
        c.polls.load(Relaxed),
        all - polls,
        c.events.load(Relaxed),
    );
}

/// The one line that scripts read.
fn print_summary(o: &Outcome, acked: u64, viewers_ok: usize, mismatches: usize) {
    let c = &o.shared.counters;
    println!(
        "summary: acked={acked} ops_per_s={:.1} normal={} offline={} syncs={} errors={} uncertain={} converged={} converge_ms={} viewers_ok={viewers_ok}/{} mismatches={mismatches}",
        acked as f64 / o.load_secs,
        c.normal_acked.load(Relaxed),
        c.offline_acked.load(Relaxed),
        c.syncs.load(Relaxed),
        c.errors.load(Relaxed),
        c.uncertain.load(Relaxed),
        if o.quiet.converged { "yes" } else { "no" },
        o.quiet.after.as_millis(),
        o.shared.opts.viewers,
    );
}

/// The elements of `got` not in `want` (extra) and of `want` not in `got`
/// (missing), those in `skip` aside; `None` when both are empty.
fn difference(
    got: &BTreeSet<Element>,
    want: &BTreeSet<Element>,
    skip: &BTreeSet<Element>,
) -> Option<(Vec<Element>, Vec<Element>)> {
    let extra: Vec<_> = got
        .difference(want)
        .filter(|e| !skip.contains(*e))
        .cloned()
        .collect();
    let missing: Vec<_> = want
        .difference(got)
        .filter(|e| !skip.contains(*e))
        .cloned()
        .collect();
    (!extra.is_empty() || !missing.is_empty()).then_some((extra, missing))
}

/// `2 [a, b]`: the count and the first five.
fn show(list: &[Element]) -> String {
    let first: Vec<String> = list.iter().take(5).map(|e| e.to_string()).collect();
    let more = if list.len() > 5 { ", …" } else { "" };
    format!("{} [{}{more}]", list.len(), first.join(", "))
}

#[cfg(test)]
mod test {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<Element> {
        items.iter().map(|s| Element::Str((*s).into())).collect()
    }

    #[test]
    fn differences_leave_out_the_uncertain() {
        let got = set(&["a", "b", "x"]);
        let want = set(&["a", "c", "y"]);
        let (extra, missing) = difference(&got, &want, &set(&["x", "y"])).unwrap();
        assert_eq!(
            (show(&extra), show(&missing)),
            ("1 [\"b\"]".into(), "1 [\"c\"]".into())
        );
        assert!(difference(&got, &want, &set(&["b", "c", "x", "y"])).is_none());
        assert!(difference(&want, &want, &BTreeSet::new()).is_none());
    }

    #[test]
    fn show_lists_the_first_five() {
        let list: Vec<_> = set(&["a", "b", "c", "d", "e", "f"]).into_iter().collect();
        assert_eq!(show(&list), "6 [\"a\", \"b\", \"c\", \"d\", \"e\", …]");
        assert_eq!(show(&[]), "0 []");
    }
}
