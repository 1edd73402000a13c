//! Handing leaves over. When the membership changes, a node that holds a
//! ring leaf it no longer replicates sends it, in pages of at most
//! `frame_bytes` of rows, to the leaf's replicas ([`Message::Transfer`]),
//! and drops it only once every replica confirmed every page with the
//! digest of the rows it stored ([`Message::Transferred`]). Until then it
//! sends the missing pages again every anti-entropy round; a write taken
//! meanwhile changes the leaf's digest and restarts the leaf.
//!
//! A draining node replicates nothing: it hands its ring leaves to their
//! replicas and its every-node leaves to its heir, which folds the drained
//! node's entries into its own as it stores each page. Those do not
//! restart on a change: the drained node takes no writes, and what other
//! nodes gossip to it meanwhile they also gossip to the heir.

use super::apply::Spread;
use super::message::RowStates;
use super::node::{successor, Node};
use super::{row_digest, Leaf, Membership, Message, ObjectId, Placement, Policy, RowKey, Status};
use crate::{NodeId, NodeMap, NodeSet};
use crate::{VecMap, VecSet};

/// Most pages sent to one replica per round.
const PAGES_PER_ROUND: usize = 16;

/// A leaf on its way to its replicas.
#[derive(Debug)]
struct Moving {
    /// the leaf's digest when it was paged; `None` when a change does not
    /// restart it (a draining node's leaves for its heir)
    digest: Option<u64>,
    targets: NodeSet,
    pages: Vec<Page>,
    /// the pages each target confirmed
    acked: NodeMap<VecSet<u32>>,
    /// the pages sent to each target since the last resend, unconfirmed
    sent: NodeMap<VecSet<u32>>,
}

#[derive(Debug)]
struct Page {
    /// the sum of the row digests sent last
    digest: u64,
    rows: Vec<(ObjectId, RowKey)>,
}

impl Moving {
    fn done(&self) -> bool {
        self.targets
            .iter()
            .all(|t| self.acked.get(t).map_or(0, VecSet::len) == self.pages.len())
    }
}

#[derive(Debug, Default)]
pub(crate) struct Transfers {
    moving: VecMap<Leaf, Moving>,
}

impl Transfers {
    pub fn len(&self) -> usize {
        self.moving.len()
    }

    pub fn is_empty(&self) -> bool {
        self.moving.is_empty()
    }
}

impl Node {
    /// The heir a draining node hands its every-node leaves to.
    fn heir(&self) -> Option<NodeId> {
        match self.status() {
            Status::Draining { heir } => Some(successor(&self.members, heir)),
            _ => None,
        }
    }

    /// Leaves this node holds but no longer replicates.
    pub(super) fn foreign_leaves(&self) -> Vec<Leaf> {
        self.leaves
            .iter()
            .map(|(l, _)| l)
            .filter(|l| !self.is_replica(*l))
            .collect()
    }

    fn transfer_targets(&self, leaf: Leaf) -> NodeSet {
        match self.heir() {
            Some(heir) if Placement::leaf_policy(leaf) == Policy::Everywhere => {
                NodeSet::from_iter([heir])
            }
            _ => self
                .placement
                .leaf_replicas(leaf, &self.members)
                .into_iter()
                .filter(|n| *n != self.id)
                .collect(),
        }
    }

    /// Whether every row of `leaf` is in memory with its state.
    pub(super) fn leaf_loaded_whole(&self, leaf: Leaf) -> bool {
        self.knows_leaf(leaf)
            && self
                .table
                .leaf_objects(leaf)
                .all(|(id, o)| self.knows_rows(id) && o.rows.values().all(|s| s.state.is_some()))
    }

    /// Pages every loaded foreign leaf that is new or changed and sends
    /// its pages; sends the missing pages again when `force` or a round is
    /// due. A draining node that holds nothing more sends its handoff.
    pub(super) fn move_leaves(&mut self, force: bool) {
        if !self.is_member() || !self.status().is_live() {
            return;
        }
        let foreign = self.foreign_leaves();
        self.transfers.moving.retain(|l, _| foreign.contains(l));
        let retry = self.now >= self.repair.next_round || force;
        for leaf in foreign.iter().copied() {
            if !self.leaf_loaded_whole(leaf) {
                continue;
            }
            let targets = self.transfer_targets(leaf);
            let digest = (self.heir().is_none() || Placement::leaf_policy(leaf) == Policy::Ring)
                .then(|| self.leaves.get(leaf).digest);
            let fresh =
                self.transfers.moving.get(&leaf).is_none_or(|m| {
                    m.targets != targets || (digest.is_some() && m.digest != digest)
                });
            if fresh {
                let moving = self.page_leaf(leaf, digest, targets);
                self.transfers.moving.insert(leaf, moving);
            } else if !retry {
                continue;
            }
            self.send_pages(leaf);
        }
        if foreign.is_empty() && self.leaves.len() == 0 && (force || retry) {
            if let Some(heir) = self.heir().filter(|_| self.spend()) {
                let members = self.members.clone();
                self.send(heir, Message::Handoff { members });
            }
        }
    }

    /// Splits a loaded leaf into pages of at most `frame_bytes` of rows.
    fn page_leaf(&self, leaf: Leaf, digest: Option<u64>, targets: NodeSet) -> Moving {
        let mut pages = Vec::new();
        let mut page = Page {
            digest: 0,
            rows: Vec::new(),
        };
        let mut size = 0;
        for (id, o) in self.table.leaf_objects(leaf) {
            for (key, slot) in &o.rows {
                let len = slot.state.as_ref().map_or(0, Vec::len) + key.len() + id.as_str().len();
                if size + len > self.config.frame_bytes && !page.rows.is_empty() {
                    pages.push(std::mem::replace(
                        &mut page,
                        Page {
                            digest: 0,
                            rows: Vec::new(),
                        },
                    ));
                    size = 0;
                }
                size += len;
                page.digest = page.digest.wrapping_add(slot.info.digest);
                page.rows.push((id.clone(), key.clone()));
            }
        }
        if !page.rows.is_empty() {
            pages.push(page);
        }
        Moving {
            digest,
            targets,
            pages,
            acked: NodeMap::new(),
            sent: NodeMap::new(),
        }
    }

    /// Sends each reachable target the pages of `leaf` it has not confirmed.
    fn send_pages(&mut self, leaf: Leaf) {
        let Some(m) = self.transfers.moving.get_mut(&leaf) else {
            return;
        };
        m.sent.clear();
        let targets: Vec<NodeId> = m.targets.iter().copied().collect();
        self.send_missing(leaf, &targets, PAGES_PER_ROUND);
    }

    /// Sends each of `targets` reachable at most `most` pages of `leaf` it
    /// has neither confirmed nor been sent since the last resend; returns
    /// how many went.
    fn send_missing(&mut self, leaf: Leaf, targets: &[NodeId], most: usize) -> usize {
        let Some(m) = self.transfers.moving.get(&leaf) else {
            return 0;
        };
        let mut sends = Vec::new();
        let mut digests = Vec::new();
        for target in targets {
            if self.partition.separates(self.id, *target) {
                continue;
            }
            let (acked, sent) = (m.acked.get(target), m.sent.get(target));
            let missing = (0..m.pages.len() as u32).filter(|p| {
                acked.is_none_or(|a| !a.contains(p)) && sent.is_none_or(|s| !s.contains(p))
            });
            for (nth, page) in missing.take(most).enumerate() {
                let (rows, digest) = self.page_rows(&m.pages[page as usize].rows);
                digests.push((page, digest));
                sends.push((nth, *target, page, rows));
            }
        }
        // Each target's first missing page, then each one's second, and so
        // on: a budget cut short still moves every target along. (Within a
        // round by target: a target is named once.)
        crate::heapsort::sort_by(&mut sends, |a, b| (a.0, a.1) < (b.0, b.1));
        let m = self.transfers.moving.get_mut(&leaf).expect("checked above");
        for (page, digest) in digests {
            m.pages[page as usize].digest = digest;
        }
        let mut went = 0;
        for (_, to, page, rows) in sends {
            if !self.spend() {
                // The budget is spent: confirmations and the next round
                // send the rest.
                break;
            }
            went += 1;
            let m = self.transfers.moving.get_mut(&leaf).expect("checked above");
            m.sent.get_or_default(to).insert(page);
            let members = self.members.clone();
            self.send(
                to,
                Message::Transfer {
                    members,
                    leaf,
                    page,
                    rows,
                },
            );
        }
        went
    }

    /// The current states of a page's rows, and their digest sum.
    fn page_rows(&self, refs: &[(ObjectId, RowKey)]) -> (RowStates, u64) {
        let mut rows: RowStates = Vec::new();
        let mut digest = 0u64;
        for (object, row) in refs {
            let (Some(state), Some(info)) =
                (self.table.state(object, row), self.table.info(object, row))
            else {
                continue;
            };
            digest = digest.wrapping_add(info.digest);
            match rows.last_mut() {
                Some((o, states)) if o == object => states.push((row.clone(), state.to_vec())),
                _ => rows.push((object.clone(), vec![(row.clone(), state.to_vec())])),
            }
        }
        (rows, digest)
    }

    /// Whether this node folds `from`'s rows in as its heir: `from` drains
    /// towards this node, or towards a node that retired into it.
    pub(super) fn absorbs_for(&self, from: NodeId, members: &Membership) -> bool {
        let Some(Status::Draining { heir }) = members.status(from) else {
            return false;
        };
        if heir == self.id {
            return true;
        }
        let mut view = self.members.clone();
        view.merge(members);
        successor(&view, heir) == self.id
    }

    pub(super) fn on_transfer(
        &mut self,
        from: NodeId,
        members: &Membership,
        leaf: Leaf,
        page: u32,
        rows: RowStates,
    ) {
        self.merge_members(members);
        let heir =
            Placement::leaf_policy(leaf) == Policy::Everywhere && self.absorbs_for(from, members);
        if (heir && !self.accepts_writes()) || !(heir || self.is_replica(leaf)) {
            // Only an active heir may fold a node in: the drain waits.
            return;
        }
        if rows
            .iter()
            .any(|(o, rs)| rs.iter().any(|(r, _)| !self.knows_row(o, r)))
        {
            return;
        }
        let spread = if heir {
            // The drained node gossips no more: pass its rows on.
            Spread::Gossip { except: Some(from) }
        } else {
            Spread::Quiet
        };
        let mut digest = 0u64;
        for (object, states) in &rows {
            let mut changed = false;
            for (row, state) in states {
                digest = digest.wrapping_add(row_digest(object, row, state));
                changed |= self.apply(object, row, state, u64::MAX, spread) == Ok(true);
                if heir {
                    self.absorb_row(from, object, row);
                }
            }
            if changed && !heir {
                // The other replicas may lack it too: anti-entropy checks.
                let others = self.replicas(object).into_iter().filter(|p| *p != from);
                self.owe_check(others.collect::<Vec<_>>());
            }
        }
        self.send(
            from,
            Message::Transferred {
                pages: vec![(leaf, page, digest)],
            },
        );
    }

    /// Folds `retired`'s entries in `row` into this node's.
    fn absorb_row(&mut self, retired: NodeId, object: &ObjectId, row: &str) {
        let (Some(kind), Some(state)) = (self.row_type(object), self.table.state(object, row))
        else {
            return;
        };
        if let Some(delta) = kind.absorb(state, retired, self.id) {
            let _ = self.apply(
                object,
                row,
                &delta,
                u64::MAX,
                Spread::Gossip {
                    except: Some(retired),
                },
            );
        }
    }

    pub(super) fn on_transferred(&mut self, from: NodeId, pages: &[(Leaf, u32, u64)]) {
        let (mut done, mut more, mut credit) = (Vec::new(), Vec::new(), 0);
        for (leaf, page, digest) in pages {
            let held = self.leaves.get(*leaf).digest;
            let Some(m) = self.transfers.moving.get_mut(leaf) else {
                continue;
            };
            let current = m.digest.is_none_or(|d| d == held);
            let matches = m
                .pages
                .get(*page as usize)
                .is_some_and(|p| p.digest == *digest || m.digest.is_none());
            if current && matches && m.targets.contains(&from) {
                m.acked.get_or_default(from).insert(*page);
                credit += 1;
                if m.done() {
                    done.push(*leaf);
                } else if !more.contains(leaf) {
                    more.push(*leaf);
                }
            }
        }
        for leaf in &done {
            self.transfers.moving.remove(leaf);
            self.forget_leaf(*leaf);
        }
        // Each confirmation lets one more page go to `from` without waiting
        // for the next round: its own leaf's next, else another leaf's (a
        // round's budget may have left whole leaves unsent).
        let others = self
            .transfers
            .moving
            .iter()
            .filter(|(l, m)| m.targets.contains(&from) && !more.contains(l))
            .map(|(l, _)| *l)
            .collect::<Vec<_>>();
        for leaf in more.into_iter().chain(others) {
            if credit == 0 {
                break;
            }
            credit -= self.send_missing(leaf, &[from], credit);
        }
        if !done.is_empty() && self.transfers.is_empty() && self.foreign_leaves().is_empty() {
            self.move_leaves(true);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::engine::testing::{cluster, deliver, kv, put};
    use crate::engine::Config;

    /// Six objects of one ring leaf that node 4 joins, the leaf, and the
    /// node that leaves it.
    fn moving_leaf() -> (Vec<ObjectId>, Leaf, NodeId) {
        let p = Placement::new(3, 64);
        let before = Membership::initial(4);
        let mut after = before.clone();
        after.set(NodeId(4), Status::Active);
        let names = || (0..).map(|i| kv(&format!("o{i}")));
        let first = names()
            .find(|o| p.replicas(o, Policy::Ring, &after).contains(&NodeId(4)))
            .unwrap();
        let leaf = p.leaf(&first, Policy::Ring);
        let objects = names()
            .filter(|o| p.leaf(o, Policy::Ring) == leaf)
            .take(6)
            .collect();
        let kept = p.leaf_replicas(leaf, &after);
        let old = p
            .leaf_replicas(leaf, &before)
            .into_iter()
            .find(|n| !kept.contains(n))
            .unwrap();
        (objects, leaf, old)
    }

    /// A five-node cluster (node 4 not yet a member) whose moving leaf's
    /// objects were written at the node that leaves it, and gossiped:
    /// the nodes, the objects, the leaf and that node's index.
    fn written_leaf(config: &Config) -> (Vec<Node>, Vec<ObjectId>, Leaf, usize) {
        let (objects, leaf, old) = moving_leaf();
        let mut nodes = cluster(5, config);
        let at = old.0 as usize;
        for o in &objects {
            put(&mut nodes[at], o, &"x".repeat(100), 1_000);
        }
        nodes.iter_mut().for_each(|n| n.tick(1_000));
        deliver(&mut nodes, 1_000, |_, _, _| false);
        (nodes, objects, leaf, at)
    }

    fn page_bytes(rows: &RowStates) -> usize {
        rows.iter()
            .flat_map(|(o, rs)| {
                rs.iter()
                    .map(move |(r, s)| o.as_str().len() + r.len() + s.len())
            })
            .sum()
    }

    #[test]
    fn moving_is_done_when_every_target_confirmed_every_page() {
        let page = || Page {
            digest: 0,
            rows: Vec::new(),
        };
        let mut m = Moving {
            digest: Some(1),
            targets: NodeSet::from_iter([NodeId(1), NodeId(2)]),
            pages: vec![page(), page()],
            acked: NodeMap::new(),
            sent: NodeMap::new(),
        };
        m.acked.insert(NodeId(1), VecSet::from_iter([0, 1]));
        m.acked.insert(NodeId(2), VecSet::from_iter([1]));
        assert!(!m.done());
        m.acked.get_mut(&NodeId(2)).unwrap().insert(0);
        assert!(m.done());
    }

    #[test]
    fn a_leaf_goes_in_pages_and_is_forgotten_only_once_every_page_is_confirmed() {
        let config = Config {
            initial_nodes: 4,
            frame_bytes: 256,
            // A budget that sends every page at once (see the next test).
            gossip_fanout: 1_000,
            ..Config::default()
        };
        let (mut nodes, objects, leaf, at) = written_leaf(&config);
        nodes[0].add_node(NodeId(4), 2_000).unwrap();
        nodes.iter_mut().for_each(|n| n.tick(2_000));
        let mut pages = std::collections::BTreeSet::new();
        deliver(&mut nodes, 2_000, |_, to, m| match m {
            Message::Transfer { rows, page, .. } => {
                assert!(
                    page_bytes(rows) <= 256
                        || rows.iter().map(|(_, r)| r.len()).sum::<usize>() == 1
                );
                pages.insert((to, *page));
                false
            }
            Message::Transferred { .. } => true,
            _ => false,
        });
        let targets = nodes[at].transfers.moving[&leaf].targets.clone();
        let count = nodes[at].transfers.moving[&leaf].pages.len() as u32;
        assert!(count >= 3, "{count} pages");
        assert_eq!(
            pages.len(),
            targets.len() * count as usize,
            "every page to every target"
        );

        // Every page confirmed but the last one: the leaf stays.
        nodes[at].move_leaves(true);
        deliver(
            &mut nodes,
            2_000,
            |_, _, m| matches!(m, Message::Transferred { pages } if pages[0].1 == count - 1),
        );
        assert!(nodes[at].leaves.has(leaf) && nodes[at].transfers.len() == 1);
        // A confirmation whose digest is not the page's counts for nothing.
        let wrong = Message::Transferred {
            pages: vec![(leaf, count - 1, 7)],
        };
        nodes[at].receive(targets.as_slice()[0], wrong, 2_000);
        assert!(nodes[at].leaves.has(leaf));
        // A write meanwhile restarts the leaf: its pages go again.
        put(&mut nodes[at], &objects[0], "changed", 2_500);
        nodes[at].move_leaves(true);
        assert!(nodes[at].transfers.moving[&leaf].acked.is_empty());
        deliver(&mut nodes, 2_500, |_, _, _| false);
        assert!(
            !nodes[at].leaves.has(leaf),
            "every page confirmed: forgotten"
        );
        assert_eq!(nodes[at].transfers.len(), 0);
        for n in targets {
            let held = nodes[n.0 as usize].table.state(&objects[0], "");
            assert!(
                held.is_some_and(|s| s.windows(7).any(|w| w == b"changed")),
                "{n} has the write"
            );
        }
    }

    #[test]
    fn each_input_sends_at_most_its_budget_and_confirmations_send_the_rest() {
        let config = Config {
            initial_nodes: 4,
            frame_bytes: 256,
            ..Config::default()
        };
        let budget = config.gossip_fanout - 2;
        let (mut nodes, objects, leaf, at) = written_leaf(&config);
        nodes[at].requests_left = 0;
        nodes[at].add_node(NodeId(4), 2_000).unwrap();
        // Every input, a round's or a confirmation's, keeps to the budget.
        let (mut now, mut rounds, mut sent) = (2_000, 0, 0);
        let mut queue = std::collections::VecDeque::new();
        while nodes[at].leaves.has(leaf) {
            assert!(rounds < 20, "the leaf never left");
            for n in nodes.iter_mut() {
                let from = n.id();
                let out = crate::engine::testing::sends(n.take_effects());
                let transfers = out
                    .iter()
                    .filter(|(_, m)| matches!(m, Message::Transfer { .. }))
                    .count();
                assert!(transfers <= budget, "{transfers} in one input");
                sent += transfers;
                queue.extend(out.into_iter().map(|(to, m)| (from, to, m)));
            }
            if let Some((from, to, m)) = queue.pop_front() {
                nodes[to.0 as usize].receive(from, m, now);
                continue;
            }
            // The next round (no flush in the way).
            now += 20_000;
            nodes[at].outbox.next_flush = u64::MAX;
            nodes[at].tick(now);
            rounds += 1;
        }
        let pages = 3 * objects.len() / 2;
        assert!(sent > budget, "{sent} pages in {rounds} rounds ({pages})");
    }
}
