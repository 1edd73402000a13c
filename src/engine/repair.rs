//! Anti-entropy: a Merkle tree of digest sums over what two nodes both
//! replicate, compared one level per message. Every anti-entropy interval
//! (slower while the node is idle) the node sends its root to a peer
//! drawn at random; on a mismatch the levels descend: buckets of leaves, leaves,
//! objects, then rows a range at a time, until the two exchange exactly
//! the rows that differ. No step lists every object or row of a node.
//!
//! Writes in flight (buffered for up to a gossip interval, then on the
//! wire) make buckets differ for a moment, and under steady writes most
//! probes see some: descending for them would only find rows that gossip
//! is bringing anyway. So a bucket that differs is compared leaf by leaf
//! only if it also differed at the previous comparison with that peer;
//! when buckets differ for the first time, the next round (a gossip
//! interval later at least) probes the same peer again, so a divergence
//! that stays is repaired one round later.

use super::leaves::{bucket, bucket_leaves};
use super::message::{RowRange, RowRefs};
use super::node::Node;
use super::{fnv1a, Leaf, Membership, Message, ObjectId, RowKey};
use crate::VecMap;
use crate::{NodeId, NodeMap, NodeSet};

/// How far anti-entropy slows down on a node that has not changed: a node
/// that changes probes its peers at the full rate, and either side of a
/// probe repairs both, so a quiet node need not probe often.
pub const MAX_IDLE_BACKOFF: u64 = 8;

/// Peers owed a check that one round probes, besides its random one.
const OWED_PROBES: usize = 2;

/// Most buckets one round compares leaf by leaf.
const BUCKETS_PER_ROUND: usize = 8;

/// Most leaves one round compares object by object.
const LEAVES_PER_ROUND: usize = 32;

/// Most rows of one object one round compares.
const ROWS_PER_RANGE: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Repair {
    /// When the next round is due.
    pub next_round: u64,
    /// Rounds since this node last changed: each doubles the wait before
    /// the next, up to [`MAX_IDLE_BACKOFF`] times the interval.
    pub idle_rounds: u32,
    /// Rounds so far: the draw of each round's peer, and where each
    /// comparison starts.
    turn: usize,
    /// Per object with more rows than one range: where the next starts.
    cursors: VecMap<ObjectId, RowKey>,
    /// Per peer, the buckets that differed at the last comparison, in order.
    suspects: NodeMap<Vec<u16>>,
    /// A peer whose buckets differed for the first time: the next round
    /// probes it again, out of turn.
    recheck: Option<NodeId>,
    /// Peers probed again: their answer asks for no further recheck.
    rechecked: NodeSet,
    /// Peers this node sent rows by gossip since a probe last found the
    /// two equal ([`Message::Same`]): every other round probes one, so a
    /// frame lost on its way is repaired within a few rounds, whatever the
    /// cluster's size, and no such peer is left idle.
    pub unconfirmed: NodeSet,
    /// Rows this node has pushed or asked for by anti-entropy.
    pub repaired_rows: u64,
    /// A due round gave way to a gossip flush: the next tick is its.
    pub waited: bool,
}

impl Repair {
    /// Schedules the round after one that ran at `now`: at the full rate
    /// while a peer waits to be probed.
    pub fn schedule(&mut self, now: u64, interval: u64) {
        if !self.unconfirmed.is_empty() {
            self.idle_rounds = 0;
        }
        let backoff = (1u64 << self.idle_rounds.min(16)).min(MAX_IDLE_BACKOFF);
        self.next_round = now + interval * backoff;
        self.idle_rounds = self.idle_rounds.saturating_add(1);
    }

    /// Something changed: back to the full rate, the next round by `soon`.
    pub fn busy(&mut self, soon: u64) {
        if self.idle_rounds > 0 {
            self.idle_rounds = 0;
            self.next_round = self.next_round.min(soon);
        }
    }
}

/// `items` rotated to start at `turn`, cut to `most`: each round starts at
/// another place, so every item gets its turn.
fn rotated<T>(mut items: Vec<T>, turn: usize, most: usize) -> Vec<T> {
    let start = turn % items.len().max(1);
    items.rotate_left(start);
    items.truncate(most);
    items
}

/// Of two lists of `(key, digest)` sorted by key: the keys of `mine` the
/// other holds otherwise or not at all, and the keys of `theirs` that
/// `mine` holds otherwise or not at all.
fn diff<K: Ord + Clone>(mine: &[(K, u64)], theirs: &[(K, u64)]) -> (Vec<K>, Vec<K>) {
    let (mut ours, mut others) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < mine.len() || j < theirs.len() {
        match (mine.get(i), theirs.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                if a.1 != b.1 {
                    ours.push(a.0.clone());
                    others.push(b.0.clone());
                }
                (i, j) = (i + 1, j + 1);
            }
            (Some(a), b) if b.is_none_or(|b| a.0 < b.0) => {
                ours.push(a.0.clone());
                i += 1;
            }
            (_, Some(b)) => {
                others.push(b.0.clone());
                j += 1;
            }
            _ => break,
        }
    }
    (ours, others)
}

/// The keys whose digests differ between two sorted lists, in order.
fn differing<K: Ord + Clone>(mine: &[(K, u64)], theirs: &[(K, u64)]) -> Vec<K> {
    let (mut ours, others) = diff(mine, theirs);
    ours.extend(others);
    crate::heapsort::sort_dedup(&mut ours);
    ours
}

/// A peer's list, sorted by key with one entry per key (the least digest
/// of a repeated one): a peer is only trusted so far.
fn sorted<K: Ord + Clone>(list: &[(K, u64)]) -> Vec<(K, u64)> {
    let mut list = list.to_vec();
    crate::heapsort::sort(&mut list);
    list.dedup_by(|a, b| a.0 == b.0);
    list
}

impl Node {
    /// Whether this node and `peer` both replicate `leaf`.
    pub(super) fn shares(&self, leaf: Leaf, peer: NodeId) -> bool {
        let replicas = self.placement.leaf_replicas(leaf, &self.members);
        replicas.contains(&self.id) && replicas.contains(&peer)
    }

    fn shared_buckets(&self, peer: NodeId) -> Vec<(u16, u64)> {
        self.leaves.buckets(|leaf| self.shares(leaf, peer))
    }

    /// The digests of the leaves this node holds and shares with `peer`
    /// in `buckets`, in leaf order (whatever order `buckets` comes in: a
    /// round's buckets are rotated, and `differing` merges sorted lists).
    fn shared_leaves(&self, peer: NodeId, buckets: &[u16]) -> Vec<(Leaf, u64)> {
        let mut buckets = buckets.to_vec();
        crate::heapsort::sort_dedup(&mut buckets);
        buckets
            .iter()
            .flat_map(|b| bucket_leaves(*b))
            .filter(|l| self.leaves.has(*l) && self.shares(*l, peer))
            .map(|l| (l, self.leaves.get(l).digest))
            .collect()
    }

    /// The digest of the leaves this node shares with `peer` and of the
    /// membership: anti-entropy compares it first.
    pub fn root_for(&self, peer: NodeId) -> u64 {
        let members = fnv1a(&postcard::to_allocvec(&self.members).unwrap_or_default());
        self.shared_buckets(peer)
            .iter()
            .fold(members, |root, (_, d)| root.wrapping_add(*d))
    }

    /// How many rounds this node has run: where rotations start.
    pub(super) fn repair_turn(&self) -> usize {
        self.repair.turn
    }

    /// Sends the root to the peer to check again, if any; else to the
    /// next [`OWED_PROBES`] peers sent gossip since their last probe, in
    /// turn, and to one reachable peer drawn at random. Whatever the
    /// cluster's size, a peer a lost frame left behind is probed within
    /// a few rounds by its sender, and any node is probed by about one
    /// random peer per round; either probe repairs both sides.
    pub(super) fn anti_entropy_round(&mut self) {
        let peers: Vec<NodeId> = self
            .peers()
            .filter(|p| !self.partition.separates(self.id, *p))
            .collect();
        if let Some(p) = self.repair.recheck.take().filter(|p| peers.contains(p)) {
            self.repair.rechecked.insert(p);
            self.probe(p);
            return;
        }
        // Those that left are forgotten; those a partition hides wait.
        let live: NodeSet = self.peers().collect();
        self.repair.unconfirmed.retain(|p| live.contains(p));
        let owed: Vec<NodeId> = self
            .repair
            .unconfirmed
            .iter()
            .copied()
            .filter(|p| peers.contains(p))
            .collect();
        let turn = self.repair.turn;
        let mut probes: Vec<NodeId> = (0..owed.len().min(OWED_PROBES))
            .map(|i| owed[(turn * OWED_PROBES + i) % owed.len()])
            .collect();
        let mut draw = crate::Rng::stream(u64::from(self.id.0), turn as u64);
        if let Some(p) = draw.pick(&peers).filter(|p| !probes.contains(p)) {
            probes.push(p);
        }
        self.repair.turn = turn.wrapping_add(1);
        for (i, peer) in probes.into_iter().enumerate() {
            // The first probe is the round's own; the others take from
            // what it may send for transfers and collection.
            if i > 0 && !self.spend() {
                break;
            }
            self.repair.rechecked.remove(&peer);
            self.probe(peer);
        }
    }

    fn probe(&mut self, peer: NodeId) {
        let root = self.root_for(peer);
        self.send(peer, Message::Digest { root });
    }

    pub(super) fn on_digest(&mut self, from: NodeId, root: u64) {
        if root == self.root_for(from) {
            self.on_same(from);
            self.send(from, Message::Same);
        } else {
            // A divergence: probe at the full rate until it is gone.
            self.became_busy();
            let buckets = self.shared_buckets(from);
            let members = self.members.clone();
            self.send(from, Message::Buckets { members, buckets });
        }
    }

    /// This node and `from` agree on all they both replicate: nothing
    /// sent to it is left to confirm.
    pub(super) fn on_same(&mut self, from: NodeId) {
        self.repair.unconfirmed.remove(&from);
    }

    pub(super) fn on_buckets(&mut self, from: NodeId, members: &Membership, theirs: &[(u16, u64)]) {
        self.merge_members(members);
        if *members != self.members {
            // The peer's view is older: the next gossip brings it ours
            // (a newcomer that missed its addition learns it here).
            self.outbox.tell_members(from);
        }
        let differ = differing(&self.shared_buckets(from), &sorted(theirs));
        if !differ.is_empty() {
            // Compare again soon, to tell a divergence from writes in flight.
            self.became_busy();
        }
        let buckets = self.confirmed(from, differ);
        let buckets = rotated(buckets, self.repair.turn, BUCKETS_PER_ROUND);
        if !buckets.is_empty() {
            let leaves = self.shared_leaves(from, &buckets);
            self.send(from, Message::Leaves { buckets, leaves });
        }
    }

    /// Of the buckets that differ from `peer`'s, those to compare leaf by
    /// leaf: the ones that differed at the previous comparison too. The
    /// others wait for the next, which the next round brings unless this
    /// was that recheck.
    fn confirmed(&mut self, peer: NodeId, differ: Vec<u16>) -> Vec<u16> {
        let before = self
            .repair
            .suspects
            .insert(peer, differ.clone())
            .unwrap_or_default();
        let (now, later): (Vec<u16>, Vec<u16>) = differ
            .into_iter()
            .partition(|b| before.binary_search(b).is_ok());
        if !self.repair.rechecked.remove(&peer) && !later.is_empty() {
            self.repair.recheck = Some(peer);
        }
        now
    }

    /// The shared leaves of `buckets` whose digests differ from `theirs`,
    /// a round's worth.
    pub(super) fn differing_leaves(
        &self,
        from: NodeId,
        buckets: &[u16],
        theirs: &[(Leaf, u64)],
    ) -> Vec<Leaf> {
        let theirs: Vec<(Leaf, u64)> = sorted(theirs)
            .into_iter()
            .filter(|(l, _)| buckets.contains(&bucket(*l)) && self.shares(*l, from))
            .collect();
        let leaves = differing(&self.shared_leaves(from, buckets), &theirs);
        rotated(leaves, self.repair.turn, LEAVES_PER_ROUND)
    }

    pub(super) fn on_leaves(&mut self, from: NodeId, buckets: &[u16], theirs: &[(Leaf, u64)]) {
        let leaves: Vec<(Leaf, Vec<(ObjectId, u64)>)> = self
            .differing_leaves(from, buckets, theirs)
            .into_iter()
            .filter(|l| self.knows_leaf(*l))
            .map(|l| (l, self.object_digests(l)))
            .collect();
        if !leaves.is_empty() {
            self.became_busy();
            self.send(from, Message::Objects { leaves });
        }
    }

    /// The digest of every object this node holds in `leaf`, in order.
    fn object_digests(&self, leaf: Leaf) -> Vec<(ObjectId, u64)> {
        self.table
            .leaf_objects(leaf)
            .map(|(id, o)| (id.clone(), o.meta.digest))
            .collect()
    }

    /// The objects of shared, loaded leaves whose digests differ from `theirs`.
    pub(super) fn differing_objects(
        &self,
        from: NodeId,
        theirs: &[(Leaf, Vec<(ObjectId, u64)>)],
    ) -> Vec<ObjectId> {
        let mut out = Vec::new();
        for (leaf, objects) in theirs {
            if !self.shares(*leaf, from) || !self.knows_leaf(*leaf) {
                continue;
            }
            out.extend(differing(&self.object_digests(*leaf), &sorted(objects)));
        }
        out
    }

    pub(super) fn on_objects(&mut self, from: NodeId, theirs: &[(Leaf, Vec<(ObjectId, u64)>)]) {
        let differing: Vec<ObjectId> = self
            .differing_objects(from, theirs)
            .into_iter()
            .filter(|id| self.knows_rows(id))
            .collect();
        let ranges: Vec<RowRange> = differing
            .into_iter()
            .map(|id| self.next_range(id))
            .collect();
        if !ranges.is_empty() {
            self.became_busy();
            self.send(from, Message::Rows { ranges });
        }
    }

    /// The next range of an object's rows to compare, and its digests.
    fn next_range(&mut self, object: ObjectId) -> RowRange {
        let after = self.repair.cursors.remove(&object);
        let mut rows: Vec<(RowKey, u64)> = self
            .table
            .get(&object)
            .into_iter()
            .flat_map(|o| o.rows.iter())
            .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
            .take(ROWS_PER_RANGE + 1)
            .map(|(k, s)| (k.clone(), s.info.digest))
            .collect();
        let upto = (rows.len() > ROWS_PER_RANGE).then(|| {
            rows.truncate(ROWS_PER_RANGE);
            rows[ROWS_PER_RANGE - 1].0.clone()
        });
        if let Some(u) = &upto {
            self.repair.cursors.insert(object.clone(), u.clone());
        }
        RowRange {
            object,
            after,
            upto,
            rows,
        }
    }

    /// For a range of rows: the rows this node holds that differ (to
    /// push) and the peer's rows this node lacks or holds otherwise (to
    /// ask for).
    pub(super) fn compare_range(&self, range: &RowRange) -> (Vec<RowKey>, Vec<RowKey>) {
        let in_range = |k: &RowKey| {
            range.after.as_ref().is_none_or(|a| k > a) && range.upto.as_ref().is_none_or(|u| k <= u)
        };
        let mine: Vec<(RowKey, u64)> = self
            .table
            .get(&range.object)
            .into_iter()
            .flat_map(|o| o.rows.iter())
            .filter(|(k, _)| in_range(k))
            .map(|(k, s)| (k.clone(), s.info.digest))
            .collect();
        let mut theirs = sorted(&range.rows);
        theirs.retain(|(k, _)| in_range(k));
        diff(&mine, &theirs)
    }

    pub(super) fn on_rows(&mut self, from: NodeId, ranges: &[RowRange]) {
        let mut push: RowRefs = Vec::new();
        let mut want: RowRefs = Vec::new();
        for range in ranges {
            let leaf = self.leaf(&range.object);
            if !self.shares(leaf, from) || !self.knows_rows(&range.object) {
                continue;
            }
            let (p, w) = self.compare_range(range);
            if !p.is_empty() {
                push.push((range.object.clone(), p));
            }
            if !w.is_empty() {
                want.push((range.object.clone(), w));
            }
        }
        let rows = |refs: &RowRefs| refs.iter().map(|(_, keys)| keys.len() as u64).sum::<u64>();
        self.repair.repaired_rows += rows(&push) + rows(&want);
        let states = self.states_of(push);
        if !states.is_empty() || !want.is_empty() {
            self.became_busy();
            self.send_rows(from, None, states, want);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn differing_keys_include_either_sides_extras() {
        let a = [(1, 10), (2, 20), (3, 30)];
        let b = [(2, 20), (3, 31), (4, 40)];
        assert_eq!(differing(&a, &b), vec![1, 3, 4]);
        assert_eq!(diff(&a, &b), (vec![1, 3], vec![3, 4]));
        assert_eq!(sorted(&[(2, 1), (1, 5), (2, 9)]), vec![(1, 5), (2, 1)]);
        assert_eq!(rotated(vec![1, 2, 3, 4], 5, 2), vec![2, 3]);
        assert!(rotated(Vec::<u8>::new(), 3, 2).is_empty());
    }

    #[test]
    fn leaves_compare_in_order_whatever_order_the_buckets_come_in() {
        use crate::engine::testing::{kv, node, put};
        let mut a = node(0, 2);
        for i in 0..200 {
            put(&mut a, &kv(&format!("k{i}")), "x", 1_000);
        }
        let held: Vec<u16> = a
            .shared_buckets(NodeId(1))
            .iter()
            .map(|(b, _)| *b)
            .collect();
        let buckets = [held[held.len() - 1], held[0], held[1]];
        let same = a.shared_leaves(NodeId(1), &buckets);
        assert!(same.windows(2).all(|w| w[0].0 < w[1].0), "in leaf order");
        assert!(a.differing_leaves(NodeId(1), &buckets, &same).is_empty());
    }

    #[test]
    fn a_bucket_descends_when_it_differs_twice_and_the_next_round_checks_again() {
        use crate::engine::testing::{kv, node, put, sends};
        let mut nodes: Vec<Node> = (0..3).map(|i| node(i, 3)).collect();
        // Node 1 holds a row that node 0 lacks (its gossip lost).
        put(&mut nodes[1], &kv("k"), "x", 1_000);
        nodes[1].take_effects();
        let (members, theirs) = (nodes[1].members.clone(), nodes[1].shared_buckets(NodeId(0)));
        let a = &mut nodes[0];
        let names = |a: &mut Node| -> Vec<(NodeId, &str)> {
            sends(a.take_effects())
                .into_iter()
                .map(|(to, m)| (to, m.name()))
                .collect()
        };
        a.on_buckets(NodeId(1), &members, &theirs);
        assert_eq!(names(a), [], "a first difference may be writes in flight");
        // Whoever the draw names, the next round checks node 1 again.
        a.repair.turn = 1;
        a.anti_entropy_round();
        assert_eq!(names(a), [(NodeId(1), "digest")]);
        a.on_buckets(NodeId(1), &members, &theirs);
        assert_eq!(names(a), [(NodeId(1), "leaves")], "it stayed: compared");
        a.on_buckets(NodeId(1), &members, &theirs);
        assert_eq!(names(a), [(NodeId(1), "leaves")]);
        a.anti_entropy_round();
        assert_eq!(names(a).len(), 1);
        assert!(a.repair.recheck.is_none(), "no recheck: a peer drawn anew");
    }

    #[test]
    fn idle_rounds_back_off_and_a_change_brings_the_next_near() {
        let mut r = Repair::default();
        let mut gaps = Vec::new();
        let mut now = 0;
        for _ in 0..6 {
            r.schedule(now, 100);
            gaps.push(r.next_round - now);
            now = r.next_round;
        }
        assert_eq!(gaps, [100, 200, 400, 800, 800, 800]);
        r.schedule(now, 100);
        assert_eq!(r.next_round, now + 800);
        r.busy(now + 100);
        assert_eq!(r.next_round, now + 100);
    }
}
