//! Bounded fanout: whom a node pushes an object's deltas (and news of the
//! membership) to.
//!
//! When a group has at most `fanout` other nodes, a node pushes to each of
//! them directly, and nobody relays. In a larger group each node pushes to
//! its *fingers*: the nodes `b⁰, b¹, …, b^(fanout−1)` places after it in
//! the group sorted by id (wrapping), where `b` is the least base with
//! `b^fanout ≥ n`. A node that a delta changed passes it on
//! ([`relay_targets`]): a finger `d` places after the sender covers the
//! places up to the sender's next finger, and passes the delta to its own
//! fingers nearer than that, so the fingers form a tree from each writer
//! (base 2: a binomial tree) and a node gets about one copy of each delta
//! instead of one per finger pointing at it.
//!
//! Why every acknowledged write reaches every replica: the writer stores
//! the write with the checks it owes its fingers ([`super::repair`]), and
//! each node that sends rows owes the receiver a check, cleared only when
//! a probe finds the two equal. A frame that arrives extends the tree; one
//! that is lost or refused is found by the sender's owed probe within a few
//! rounds, and the rows repair ships are gossip the receiver passes on as
//! if the frame had arrived. Random probes (one a round per node) repair
//! what is left, and a replica new to a leaf is owed a check by each that
//! stays. Without faults a delta
//! reaches every node within `⌈log₂ n⌉` relays when `n ≤ 2^fanout` (128
//! nodes: 7 relays at fanout 8), each a gossip interval at most; in
//! general within `(b − 1)·fanout`.

use crate::NodeId;

/// The nodes `me` pushes to among `group` (which may or may not hold
/// `me`), at most `fanout` (at least 1), in finger order.
pub fn fingers(me: NodeId, group: &[NodeId], fanout: usize) -> Vec<NodeId> {
    let fanout = fanout.max(1);
    let mut ring: Vec<NodeId> = group.iter().copied().filter(|n| *n != me).collect();
    crate::heapsort::sort_dedup(&mut ring);
    if ring.len() <= fanout {
        return ring;
    }
    // `me` sits at its place by id: the fingers count from there.
    let at = ring.partition_point(|n| *n < me);
    ring.insert(at, me);
    let n = ring.len();
    let base = base_for(n, fanout);
    let mut out = Vec::with_capacity(fanout);
    let mut step = 1usize;
    while step < n && out.len() < fanout {
        let peer = ring[(at + step) % n];
        if !out.contains(&peer) {
            out.push(peer);
        }
        step = step.saturating_mul(base);
    }
    out
}

/// Whom `me` passes on a delta that `from` sent, in a group that relays.
/// When `me` is one of `from`'s fingers, `d` places after it, `me` covers
/// the places up to `from`'s next finger, `(b − 1)·d` after `me`, and
/// passes the delta only to its fingers nearer than that: the fingers
/// then form a tree from each writer, and a node gets each delta about
/// once instead of once per finger pointing at it. A delta from anyone
/// else (a repair, an answer) goes on to all its fingers but the sender.
pub fn relay_targets(me: NodeId, from: NodeId, group: &[NodeId], fanout: usize) -> Vec<NodeId> {
    let mine = fingers(me, group, fanout);
    let mut ring: Vec<NodeId> = group.iter().copied().chain([me]).collect();
    crate::heapsort::sort_dedup(&mut ring);
    let n = ring.len();
    let place = |x: NodeId| ring.binary_search(&x).ok();
    let limit = match (place(me), place(from)) {
        (Some(at), Some(sender)) if fingers(from, group, fanout).contains(&me) => {
            (base_for(n, fanout) - 1) * ((at + n - sender) % n)
        }
        _ => n,
    };
    let at = place(me).unwrap_or(0);
    mine.into_iter()
        .filter(|f| *f != from && place(*f).is_some_and(|p| (p + n - at) % n < limit))
        .collect()
}

/// The requests one invocation of a node (an alarm, a peer's request, a
/// client's call) sends at most, answers to the requester aside: the
/// fanout and two, far under the platform's 50 subrequests. The adapter
/// counts them; a send past the budget is reported failed at once
/// ([`super::Engine::send_failed`]), so its rows go back to their buffer
/// and transfers, collections and repair try again next round.
pub fn invocation_budget(fanout: usize) -> usize {
    fanout.max(1) + 2
}

/// Whether a node that a delta changed passes it on in a group of
/// `others` other nodes: only when it does not reach them all itself.
pub fn relays(others: usize, fanout: usize) -> bool {
    others > fanout.max(1)
}

/// The least base `b ≥ 2` with `b^fanout ≥ n`.
fn base_for(n: usize, fanout: usize) -> usize {
    let mut base = 2usize;
    while base
        .checked_pow(fanout as u32)
        .is_some_and(|reach| reach < n)
    {
        base += 1;
    }
    base
}

#[cfg(test)]
mod test {
    use super::*;

    fn group(n: u32) -> Vec<NodeId> {
        (0..n).map(|i| NodeId(i * 3 + 1)).collect()
    }

    /// Relays (rounds) until a delta written at `origin` has reached every
    /// node of `g`, when each node passes what is new to it to its fingers.
    fn rounds_to_reach_all(g: &[NodeId], origin: NodeId, fanout: usize) -> usize {
        let mut reached = vec![origin];
        let mut frontier = vec![origin];
        let mut rounds = 0;
        while reached.len() < g.len() {
            let mut next = Vec::new();
            for node in &frontier {
                for peer in fingers(*node, g, fanout) {
                    if !reached.contains(&peer) {
                        reached.push(peer);
                        next.push(peer);
                    }
                }
            }
            assert!(
                !next.is_empty(),
                "stuck at {} of {}",
                reached.len(),
                g.len()
            );
            frontier = next;
            rounds += 1;
        }
        rounds
    }

    /// Copies each node receives when `origin` pushes to its fingers and
    /// each node passes what is new to it to its [`relay_targets`].
    fn tree_copies(g: &[NodeId], origin: NodeId, fanout: usize) -> Vec<usize> {
        let mut copies = vec![0usize; g.len()];
        let index = |n: NodeId| g.iter().position(|x| *x == n).unwrap();
        copies[index(origin)] = 1;
        let mut queue: std::collections::VecDeque<(NodeId, NodeId)> = fingers(origin, g, fanout)
            .into_iter()
            .map(|f| (origin, f))
            .collect();
        while let Some((from, to)) = queue.pop_front() {
            copies[index(to)] += 1;
            if copies[index(to)] == 1 {
                let next = relay_targets(to, from, g, fanout);
                queue.extend(next.into_iter().map(|f| (to, f)));
            }
        }
        copies
    }

    #[test]
    fn the_relay_tree_reaches_every_node_about_once() {
        for n in [10u32, 17, 32, 64, 100, 128, 129, 300] {
            let g = group(n);
            for fanout in [2usize, 4, 8] {
                let (mut most, mut total, mut origins) = (0, 0, 0);
                // Every origin of the small groups, a sample of the large.
                for origin in g.iter().step_by((n as usize / 16).max(1)) {
                    origins += 1;
                    let copies = tree_copies(&g, *origin, fanout);
                    assert!(
                        copies.iter().all(|c| *c >= 1),
                        "n {n} fanout {fanout}: a node missed"
                    );
                    most = most.max(*copies.iter().max().unwrap());
                    total += copies.iter().sum::<usize>();
                }
                let mean = total as f64 / (f64::from(n) * f64::from(origins));
                // Flooding the fingers gives each node log_b(n) copies.
                assert!(
                    mean <= 2.0,
                    "n {n} fanout {fanout}: {mean:.2} copies a node"
                );
                assert!(
                    most <= 6,
                    "n {n} fanout {fanout}: {most} copies at one node"
                );
            }
        }
    }

    #[test]
    fn a_small_group_is_pushed_to_whole() {
        let g = group(9);
        assert_eq!(fingers(g[0], &g, 8), g[1..].to_vec());
        assert!(!relays(8, 8));
        assert!(relays(9, 8));
    }

    #[test]
    fn fingers_are_bounded_and_never_the_node_itself() {
        for n in [10, 32, 100, 128, 300, 1_000] {
            let g = group(n);
            for fanout in [1, 2, 4, 8] {
                for me in &g {
                    let f = fingers(*me, &g, fanout);
                    assert!(f.len() <= fanout && !f.is_empty(), "n {n} fanout {fanout}");
                    assert!(!f.contains(me));
                }
            }
        }
    }

    #[test]
    fn every_node_is_reached_within_the_bound() {
        for n in [10u32, 17, 32, 64, 100, 128, 129, 256, 300] {
            let g = group(n);
            for fanout in [2usize, 4, 8] {
                let base = base_for(n as usize, fanout);
                let bound = (base - 1) * fanout;
                let worst = g
                    .iter()
                    .step_by((n as usize / 16).max(1))
                    .map(|o| rounds_to_reach_all(&g, *o, fanout))
                    .max()
                    .unwrap();
                assert!(worst <= bound, "n {n} fanout {fanout}: {worst} > {bound}");
                if n <= 1 << fanout {
                    let log2 = (n as f64).log2().ceil() as usize;
                    assert!(worst <= log2, "n {n} fanout {fanout}: {worst} > {log2}");
                }
            }
        }
    }

    #[test]
    fn a_node_outside_the_group_counts_from_its_place() {
        let g = group(40);
        let outsider = NodeId(2);
        let f = fingers(outsider, &g, 4);
        assert_eq!(f.len(), 4);
        assert_eq!(f[0], NodeId(4), "the next node by id first");
    }
}
