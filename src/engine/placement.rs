//! Which nodes hold an object. An object is placed as a whole: its id
//! falls into a **leaf**, and every object of a leaf has the same replicas
//! under every membership. Leaves `0..LEAVES` are ring leaves (the kinds
//! placed by [`Policy::Ring`]); `LEAVES..2 * LEAVES` hold the objects that
//! live on every active node.
//!
//! ```
//! use edge_crdt::engine::{Membership, ObjectId, Placement, Policy};
//! let members = Membership::initial(8);
//! let placement = Placement::new(3, 64);
//! let id = ObjectId::new("kv", "user:42").unwrap();
//! let leaf = placement.leaf(&id, Policy::Ring);
//! let replicas = placement.leaf_replicas(leaf, &members);
//! assert_eq!(replicas.len(), 3);
//! assert_eq!(replicas, placement.leaf_replicas(leaf, &members)); // deterministic
//! let counter = ObjectId::new("counter", "home").unwrap();
//! assert_eq!(placement.replicas(&counter, Policy::Everywhere, &members).len(), 8);
//! ```

use super::{fnv1a, Membership, ObjectId, Policy};
use crate::NodeId;
use std::cell::RefCell;

/// A group of objects that share their replicas under every membership:
/// the unit of anti-entropy digests and of handoff when replicas change.
pub type Leaf = u32;

/// Leaves of one policy: objects fall into one of this many by their hash.
pub const LEAVES: u32 = 1 << 12;

/// The leaf of a text by its hash: the top bits.
fn leaf_of(text: &str) -> Leaf {
    (hash(text) >> (64 - LEAVES.trailing_zeros())) as Leaf
}

/// FNV-1a spread by a SplitMix64 finalizer, so similar texts land far apart.
fn hash(text: &str) -> u64 {
    let mut z = fnv1a(text.as_bytes()).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Places objects: ring leaves on a [`HashRing`], the others on every
/// active node. A draining node replicates nothing: it hands every leaf
/// over.
#[derive(Debug)]
pub struct Placement {
    ring: HashRing,
}

impl Placement {
    /// Ring objects on `replicas` nodes, with `vnodes` points per node.
    pub fn new(replicas: usize, vnodes: u32) -> Self {
        Placement {
            ring: HashRing::new(replicas, vnodes),
        }
    }

    /// The leaf of `object`, whose kind places it by `policy`.
    pub fn leaf(&self, object: &ObjectId, policy: Policy) -> Leaf {
        let leaf = leaf_of(object.as_str());
        match policy {
            Policy::Ring => leaf,
            Policy::Everywhere => LEAVES + leaf,
        }
    }

    /// The policy of the objects in `leaf`.
    pub fn leaf_policy(leaf: Leaf) -> Policy {
        if leaf < LEAVES {
            Policy::Ring
        } else {
            Policy::Everywhere
        }
    }

    /// The nodes that keep a copy of every object of `leaf`, in preference order.
    pub fn leaf_replicas(&self, leaf: Leaf, members: &Membership) -> Vec<NodeId> {
        match Self::leaf_policy(leaf) {
            Policy::Ring => self.ring.leaf_replicas(leaf, members),
            Policy::Everywhere => members.active().collect(),
        }
    }

    /// The replicas of `object`, in preference order.
    pub fn replicas(&self, object: &ObjectId, policy: Policy, members: &Membership) -> Vec<NodeId> {
        self.leaf_replicas(self.leaf(object, policy), members)
    }
}

/// A consistent-hash ring: each active node owns `vnodes` points on a
/// circle of [`LEAVES`] slots, and a leaf's replicas are the first
/// `replicas` distinct nodes clockwise from it. Points sit on leaf
/// boundaries, so every object of a leaf has the same replicas. Adding one
/// node to `n` moves only the leaves whose arc the new points split: about
/// `1/(n+1)` of them. Draining nodes hold no points: their leaves move to
/// the nodes that stay.
#[derive(Debug)]
pub struct HashRing {
    replicas: usize,
    vnodes: u32,
    /// The points of the last membership asked about.
    cache: RefCell<Option<Points>>,
}

/// A ring's active nodes and their points, sorted by slot.
#[derive(Debug)]
struct Points {
    nodes: Vec<NodeId>,
    sorted: Vec<(Leaf, NodeId)>,
}

impl HashRing {
    /// A ring placing `replicas` copies of each leaf, with `vnodes` points per node.
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
        crate::heapsort::sort(&mut sorted);
        Points { nodes, sorted }
    }

    /// The replicas of ring leaf `leaf` among the active members.
    pub fn leaf_replicas(&self, leaf: Leaf, members: &Membership) -> Vec<NodeId> {
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

#[cfg(test)]
mod test {
    use super::*;
    use crate::engine::Status;

    fn leaves() -> impl Iterator<Item = Leaf> {
        (0..20_000u32).map(|i| leaf_of(&format!("kv:key-{i}")))
    }

    #[test]
    fn policies_pick_their_leaves_and_replicas() {
        let members = Membership::initial(8);
        let p = Placement::new(3, 64);
        let kv = ObjectId::new("kv", "a").unwrap();
        let counter = ObjectId::new("counter", "a").unwrap();
        assert!(p.leaf(&kv, Policy::Ring) < LEAVES);
        assert!(p.leaf(&counter, Policy::Everywhere) >= LEAVES);
        assert_eq!(p.replicas(&kv, Policy::Ring, &members).len(), 3);
        assert_eq!(p.replicas(&counter, Policy::Everywhere, &members).len(), 8);
    }

    #[test]
    fn replicas_are_distinct_active_nodes() {
        let mut members = Membership::initial(5);
        members.set(NodeId(2), Status::Retired { heir: NodeId(3) });
        let ring = HashRing::new(3, 64);
        for leaf in leaves().take(500) {
            let r = ring.leaf_replicas(leaf, &members);
            assert_eq!(r.len(), 3);
            assert!(!r.contains(&NodeId(2)));
            assert!(r.iter().all(|n| r.iter().filter(|m| *m == n).count() == 1));
        }
        assert_eq!(
            HashRing::new(5, 8)
                .leaf_replicas(0, &Membership::initial(2))
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
        for leaf in leaves() {
            load[ring.leaf_replicas(leaf, &members)[0].0 as usize] += 1;
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
    fn adding_a_node_moves_about_one_in_n_plus_one_leaves_and_only_to_it() {
        // One ring per membership, so each keeps its points cached.
        let (ring, grown) = (HashRing::new(3, 128), HashRing::new(3, 128));
        let before = Membership::initial(8);
        let mut after = before.clone();
        after.set(NodeId(8), Status::Active);
        let mut moved = 0;
        for leaf in leaves() {
            let (old, new) = (
                ring.leaf_replicas(leaf, &before),
                grown.leaf_replicas(leaf, &after),
            );
            if old[0] != new[0] {
                moved += 1;
                assert_eq!(new[0], NodeId(8), "leaf {leaf} moved between old nodes");
            }
            let kept: Vec<_> = new.iter().filter(|n| **n != NodeId(8)).collect();
            assert!(kept.iter().all(|n| old.contains(n)), "{old:?} -> {new:?}");
        }
        let share = moved as f64 / 20_000.0;
        let ideal = 1.0 / 9.0;
        assert!(
            (share - ideal).abs() < ideal * 0.35,
            "{share:.3} moved; ideal {ideal:.3}"
        );
    }
}
