//! Bounded fanout: whom a node pushes an object's deltas (and news of the
//! membership) to.
//!
//! When a group has at most `fanout` other nodes, a node pushes to each of
//! them directly, and nobody relays. In a larger group each node pushes to
//! its *fingers*: the nodes `b⁰, b¹, …, b^(fanout−1)` places after it in
//! the group sorted by id (wrapping), where `b` is the least base with
//! `b^fanout ≥ n`; and a node that a delta changed passes it on to its own
//! fingers, but the sender. Any place `d < n` after a node is a sum of at
//! most `(b − 1)·fanout` fingers (its digits in base `b`), and a node
//! passes on every delta that is new to it, so a delta reaches every node
//! of the group within that many relays: `⌈log₂ n⌉` relays when
//! `n ≤ 2^fanout` (128 nodes: 7 relays at fanout 8), each a gossip
//! interval at most. A node receives it once per finger pointing at it:
//! `log_b n` copies, so the bytes per write and node grow with `log n`.
//! What a lost frame or a crash keeps from a node, anti-entropy repairs.

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
