//! Which nodes hold a key. The engine buffers a key's deltas for exactly
//! the replicas a policy names; every policy is a pure function of the key
//! and the membership.
//!
//! ```
//! use edge_crdt::cluster::{HashRing, Membership, Placement};
//! let members = Membership::initial(8);
//! let ring = HashRing::new(3, 64);
//! let replicas = ring.replicas("user:42", &members);
//! assert_eq!(replicas.len(), 3);
//! assert_eq!(replicas, ring.replicas("user:42", &members)); // deterministic
//! ```

use super::{fnv1a, Membership};
use crate::NodeId;
use std::cell::RefCell;

/// A group of keys that share their replicas under every membership: the
/// unit of anti-entropy digests and of handoff when the replicas change.
pub type Leaf = u32;

/// Leaves of a key space: keys fall into one of this many by their hash.
pub const LEAVES: u32 = 1 << 12;

/// A placement policy: the replicas of a key among the members.
pub trait Placement {
    /// The leaf of `key`.
    fn leaf(&self, key: &str) -> Leaf;

    /// The nodes that keep a copy of every key of `leaf`, in preference order.
    fn leaf_replicas(&self, leaf: Leaf, members: &Membership) -> Vec<NodeId>;

    /// The nodes that keep a copy of `key`, in preference order.
    fn replicas(&self, key: &str, members: &Membership) -> Vec<NodeId> {
        self.leaf_replicas(self.leaf(key), members)
    }
}

/// The leaf of a key by its hash: the top bits.
fn leaf_of(key: &str) -> Leaf {
    (hash(key) >> (64 - LEAVES.trailing_zeros())) as Leaf
}

/// Every live node holds every key: the policy of the visit counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllNodes;

impl Placement for AllNodes {
    fn leaf(&self, key: &str) -> Leaf {
        leaf_of(key)
    }

    fn leaf_replicas(&self, _leaf: Leaf, members: &Membership) -> Vec<NodeId> {
        members.live().collect()
    }
}

/// A consistent-hash ring: each active node owns `vnodes` points on a
/// circle of [`LEAVES`] slots, and a key's replicas are the first
/// `replicas` distinct nodes clockwise from its leaf. Points sit on leaf
/// boundaries, so every key of a leaf has the same replicas. Adding one
/// node to `n` moves only the leaves whose arc the new points split: about
/// `1/(n+1)` of them. Draining nodes hold no points: their keys move to
/// the nodes that stay.
#[derive(Debug)]
pub struct HashRing {
    replicas: usize,
    vnodes: u32,
    /// The points of the last membership asked about.
    cache: RefCell<Option<Points>>,
}

/// A ring's live nodes and their points, sorted by hash.
#[derive(Debug)]
struct Points {
    nodes: Vec<NodeId>,
    sorted: Vec<(Leaf, NodeId)>,
}

impl HashRing {
    /// A ring placing `replicas` copies of each key, with `vnodes` points per node.
    pub fn new(replicas: usize, vnodes: u32) -> Self {
        HashRing {
            replicas: replicas.max(1),
            vnodes: vnodes.max(1),
            cache: RefCell::new(None),
        }
    }

    fn points(&self, nodes: Vec<NodeId>) -> Points {
        let mut sorted: Vec<(Leaf, NodeId)> = nodes
            .iter()
            .flat_map(|n| (0..self.vnodes).map(move |v| (leaf_of(&format!("{n}#{v}")), *n)))
            .collect();
        sorted.sort_unstable();
        Points { nodes, sorted }
    }
}

/// FNV-1a spread by a SplitMix64 finalizer, so similar texts land far apart.
fn hash(text: &str) -> u64 {
    let mut z = fnv1a(text.as_bytes()).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Placement for HashRing {
    fn leaf(&self, key: &str) -> Leaf {
        leaf_of(key)
    }

    fn leaf_replicas(&self, leaf: Leaf, members: &Membership) -> Vec<NodeId> {
        let nodes: Vec<NodeId> = members.active().collect();
        let mut cache = self.cache.borrow_mut();
        let want = self.replicas.min(nodes.len());
        if cache.as_ref().is_none_or(|p| p.nodes != nodes) {
            *cache = Some(self.points(nodes));
        }
        let points = &cache.as_ref().expect("filled above").sorted;
        // A point at slot p owns the leaves after the previous point, up to p.
        let start = points.partition_point(|(p, _)| *p < leaf);
        let mut out = Vec::with_capacity(want);
        for (_, node) in points.iter().cycle().skip(start).take(points.len()) {
            if out.len() == want {
                break;
            }
            if !out.contains(node) {
                out.push(*node);
            }
        }
        out
    }
}

/// The placement of [`Value`](crate::crdt::Value) keys by their kind:
/// registers (`kv:` keys) on a hash ring, every other kind on all nodes.
#[derive(Debug)]
pub struct ByKind {
    ring: HashRing,
}

impl ByKind {
    /// Registers on `replicas` nodes of a ring with `vnodes` points per node.
    pub fn new(replicas: usize, vnodes: u32) -> Self {
        ByKind {
            ring: HashRing::new(replicas, vnodes),
        }
    }
}

impl Placement for ByKind {
    /// Ring leaves are `0..LEAVES`; the leaves of all-node keys follow.
    fn leaf(&self, key: &str) -> Leaf {
        match crate::crdt::Kind::of_key(key) {
            Some((crate::crdt::Kind::Register, _)) => self.ring.leaf(key),
            _ => LEAVES + AllNodes.leaf(key),
        }
    }

    fn leaf_replicas(&self, leaf: Leaf, members: &Membership) -> Vec<NodeId> {
        if leaf < LEAVES {
            self.ring.leaf_replicas(leaf, members)
        } else {
            AllNodes.leaf_replicas(leaf, members)
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::cluster::Status;

    fn keys() -> impl Iterator<Item = String> {
        (0..20_000).map(|i| format!("key-{i}"))
    }

    #[test]
    fn by_kind_rings_registers_only() {
        let members = Membership::initial(8);
        let policy = ByKind::new(3, 64);
        assert_eq!(policy.replicas("kv:a", &members).len(), 3);
        assert_eq!(policy.replicas("counter:a", &members).len(), 8);
        assert_eq!(policy.replicas("set:a", &members).len(), 8);
    }

    #[test]
    fn replicas_are_distinct_live_nodes() {
        let mut members = Membership::initial(5);
        members.set(NodeId(2), Status::Retired { heir: NodeId(3) });
        let ring = HashRing::new(3, 64);
        for key in keys().take(500) {
            let r = ring.replicas(&key, &members);
            assert_eq!(r.len(), 3);
            assert!(!r.contains(&NodeId(2)));
            assert!(r.iter().all(|n| r.iter().filter(|m| *m == n).count() == 1));
        }
        assert_eq!(
            HashRing::new(5, 8)
                .replicas("k", &Membership::initial(2))
                .len(),
            2
        );
    }

    #[test]
    fn primaries_are_balanced() {
        let n = 8;
        let ring = HashRing::new(3, 128);
        let members = Membership::initial(n);
        let mut load = vec![0usize; n as usize];
        for key in keys() {
            load[ring.replicas(&key, &members)[0].0 as usize] += 1;
        }
        let mean = 20_000 / n as usize;
        for (node, l) in load.iter().enumerate() {
            let off = (*l as f64 - mean as f64).abs() / mean as f64;
            assert!(
                off < 0.25,
                "node-{node} holds {l} primaries, mean {mean}: {load:?}"
            );
        }
    }

    #[test]
    fn adding_a_node_moves_about_one_in_n_plus_one_keys_and_only_to_it() {
        // One ring per membership, so each keeps its points cached.
        let (ring, grown) = (HashRing::new(3, 128), HashRing::new(3, 128));
        let before = Membership::initial(8);
        let mut after = before.clone();
        after.set(NodeId(8), Status::Active);
        let mut moved = 0;
        for key in keys() {
            let (old, new) = (ring.replicas(&key, &before), grown.replicas(&key, &after));
            if old[0] != new[0] {
                moved += 1;
                assert_eq!(new[0], NodeId(8), "{key} moved between old nodes");
            }
            // Replica sets change only by taking in the new node.
            let kept: Vec<_> = new.iter().filter(|n| **n != NodeId(8)).collect();
            assert!(
                kept.iter().all(|n| old.contains(n)),
                "{key}: {old:?} -> {new:?}"
            );
        }
        let share = moved as f64 / 20_000.0;
        let ideal = 1.0 / 9.0;
        assert!(
            (share - ideal).abs() < ideal * 0.35,
            "{share:.3} of primaries moved; ideal {ideal:.3}"
        );
    }
}
