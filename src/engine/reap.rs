//! Tombstone collection. A tombstone is a row that only keeps removed
//! values removed (a deleted register's causal context). The first replica
//! of its leaf collects it: it asks every live node, as many each
//! anti-entropy round as the round's budget allows ([`Message::Reap`]), whether it holds the row with the same digest,
//! or, not a replica, nothing of its leaf. An answer counts only from a
//! node with the asker's membership; a membership change starts over.
//! When every node agreed, the collector waits the tombstone grace, asks
//! again under a new round, then drops the row and tells the other
//! replicas to drop theirs if unchanged ([`Message::Forget`]). No message
//! outlives the grace (older frames are refused), so no stale copy can
//! bring the deleted values back.

use super::node::Node;
use super::{Leaf, Membership, Message, ObjectId, RowKey};
use crate::{NodeId, NodeMap, NodeSet};
use crate::{VecMap, VecSet};

/// Most tombstones one node collects at a time.
const REAP_BATCH: usize = 256;

/// Most leaves with tombstones a node loads at a time to collect them.
pub(super) const REAP_LEAVES: usize = 8;

type RowId = (ObjectId, RowKey);

/// A tombstone asked about: its row and digest.
type Asked = (ObjectId, RowKey, u64);

/// A tombstone being collected.
#[derive(Debug)]
struct Reaping {
    /// the current question's id (a clock stamp of the asking node)
    round: u64,
    digest: u64,
    /// live nodes that have not agreed in this round
    waiting: NodeSet,
    /// when every node first agreed: the second round starts a grace later
    agreed_at: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Reaper {
    reaping: VecMap<RowId, Reaping>,
    /// tombstones collected since the node started
    pub reaped: u64,
    /// [`Message::Forget`]s that could not be sent: the next rounds send
    /// them again
    unsent: NodeMap<Vec<Asked>>,
}

impl Reaper {
    /// A new view: every collection asks anew.
    pub fn restart(&mut self) {
        self.reaping.clear();
    }

    /// Keeps a [`Message::Forget`] that did not reach `to` for the next round.
    pub fn forget_failed(&mut self, to: NodeId, rows: Vec<Asked>) {
        self.unsent.get_or_default(to).extend(rows);
    }

    /// Whether some node has yet to answer a question: rounds keep the
    /// full rate until it has.
    pub fn asking(&self) -> bool {
        self.reaping.values().any(|r| !r.waiting.is_empty())
    }

    pub fn forget(&mut self, object: &ObjectId, row: &str) {
        self.reaping.remove(&(object.clone(), row.to_owned()));
    }
}

impl Node {
    /// Whether this node collects the tombstones of `leaf`: its first replica.
    pub(super) fn collects(&self, leaf: Leaf) -> bool {
        self.accepts_writes()
            && self.placement.leaf_replicas(leaf, &self.members).first() == Some(&self.id)
    }

    /// The loaded tombstones and their digests, in row order (the table's
    /// objects and rows are in order).
    fn tombstones(&self) -> Vec<(RowId, u64)> {
        let found: Vec<(RowId, u64)> = self
            .table
            .objects()
            .filter(|(_, o)| o.meta.tombstones > 0)
            .flat_map(|(id, o)| {
                o.rows
                    .iter()
                    .filter(|(_, s)| s.info.tombstone)
                    .map(move |(k, s)| ((id.clone(), k.clone()), s.info.digest))
            })
            .collect();
        debug_assert!(found.windows(2).all(|w| w[0].0 < w[1].0));
        found
    }

    /// One anti-entropy round of collection: starts the second question of
    /// tombstones whose grace has passed, asks about new tombstones, and
    /// asks again the nodes that have not answered.
    pub(super) fn reap_round(&mut self) {
        let grace = self.config.tombstone_grace_ms;
        let tombstones = self.tombstones();
        // A tombstone that changed is no longer the one the nodes confirmed.
        self.reaper.reaping.retain(|k, r| {
            let digest = tombstones.binary_search_by(|(t, _)| t.cmp(k));
            digest.is_ok_and(|at| tombstones[at].1 == r.digest)
        });
        let peers: NodeSet = self.peers().collect();
        let now = self.now;
        let second: Vec<RowId> = self
            .reaper
            .reaping
            .iter()
            .filter(|(_, r)| {
                r.waiting.is_empty() && r.agreed_at.is_some_and(|t| now >= t.saturating_add(grace))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let room = REAP_BATCH.saturating_sub(self.reaper.reaping.len());
        let first: Vec<(RowId, u64)> = tombstones
            .into_iter()
            .filter(|(k, _)| !self.reaper.reaping.contains_key(k) && self.collects(self.leaf(&k.0)))
            .take(room)
            .collect();
        if !second.is_empty() || !first.is_empty() {
            let (round, floor) = self.clock.stamp(self.now);
            if let Some(floor) = floor {
                self.effects.push(super::Effect::StoreClock(floor));
            }
            for key in second {
                let r = self.reaper.reaping.get_mut(&key).expect("listed");
                r.round = round;
                r.waiting.clone_from(&peers);
            }
            for (key, digest) in first {
                let waiting = peers.clone();
                let r = Reaping {
                    round,
                    digest,
                    waiting,
                    agreed_at: None,
                };
                self.reaper.reaping.insert(key, r);
            }
        }
        self.ask_reaps();
        self.resend_forgets();
    }

    /// Sends the forgets that failed before, as the round's budget allows.
    fn resend_forgets(&mut self) {
        let unsent: Vec<(NodeId, Vec<Asked>)> = std::mem::take(&mut self.reaper.unsent)
            .into_iter()
            .collect();
        for (to, rows) in unsent {
            if !self.members.status(to).is_some_and(super::Status::is_live) {
                continue;
            }
            match self.spend() {
                true => self.send(to, Message::Forget { rows }),
                false => self.reaper.forget_failed(to, rows),
            }
        }
    }

    /// Asks each reachable node that has not agreed; completes rounds
    /// every node agreed to.
    fn ask_reaps(&mut self) {
        let mut asks: VecMap<(NodeId, u64), Vec<Asked>> = VecMap::new();
        let mut done = Vec::new();
        for ((object, row), r) in &self.reaper.reaping {
            if r.waiting.is_empty() {
                done.push((object.clone(), row.clone()));
            }
            for peer in &r.waiting {
                if !self.partition.separates(self.id, *peer) {
                    let ask = (object.clone(), row.clone(), r.digest);
                    asks.get_or_default((*peer, r.round)).push(ask);
                }
            }
        }
        // As many nodes as the round's budget allows, starting at another
        // place each round: the others are asked in the next rounds.
        let asks: Vec<((NodeId, u64), Vec<Asked>)> = asks.into_iter().collect();
        let start = self.repair_turn() % asks.len().max(1);
        let (later, first) = asks.split_at(start);
        for ((to, round), rows) in first.iter().chain(later) {
            if !self.spend() {
                break;
            }
            let message = Message::Reap {
                round: *round,
                rows: rows.clone(),
            };
            self.send(*to, message);
        }
        self.agreed(done);
    }

    pub(super) fn on_reap(&mut self, from: NodeId, round: u64, rows: Vec<(ObjectId, RowKey, u64)>) {
        let mut refused = Vec::new();
        for (object, row, digest) in rows {
            let leaf = self.leaf(&object);
            let holds_same = if self.is_replica(leaf) {
                self.knows_row(&object, &row)
                    && self.table.info(&object, &row).map(|i| i.digest) == Some(digest)
            } else {
                !self.leaves.has(leaf)
            };
            if holds_same {
                // What is buffered for the row is part of the tombstone
                // now; sent late, it could outlive it.
                self.outbox.drop_row(&object, &row);
            } else {
                refused.push((object, row));
            }
        }
        let members = self.members.clone();
        self.send(
            from,
            Message::Reaped {
                round,
                members,
                refused,
            },
        );
    }

    pub(super) fn on_reaped(
        &mut self,
        from: NodeId,
        round: u64,
        members: &Membership,
        refused: Vec<(ObjectId, RowKey)>,
    ) {
        // An answer counts only from a node with this node's view: a node
        // the views differ on could hold the leaf unasked.
        self.merge_members(members);
        if *members != self.members {
            return;
        }
        // Every Reap of a round to a peer names all its rows that still
        // wait for that peer: the answer covers them.
        let refused: VecSet<RowId> = refused.into_iter().collect();
        if !refused.is_empty() {
            // The two differ: anti-entropy probes the peer soon.
            self.owe_check([from]);
            self.became_busy();
        }
        let mut done = Vec::new();
        for (key, r) in &mut self.reaper.reaping {
            if r.round == round
                && !refused.contains(key)
                && r.waiting.remove(&from)
                && r.waiting.is_empty()
            {
                done.push(key.clone());
            }
        }
        self.agreed(done);
    }

    pub(super) fn on_forget(&mut self, rows: Vec<(ObjectId, RowKey, u64)>) {
        for (object, row, digest) in rows {
            let info = self.table.info(&object, &row);
            if info.is_some_and(|i| i.tombstone && i.digest == digest) {
                self.forget_row(&object, &row);
            }
        }
    }

    /// Every live node agreed about `rows` in their current round: after
    /// the first, the grace period starts; after the second, the
    /// tombstones go, and the other replicas are told to drop them.
    fn agreed(&mut self, rows: Vec<RowId>) {
        let grace = self.config.tombstone_grace_ms;
        let mut forgets: NodeMap<Vec<(ObjectId, RowKey, u64)>> = NodeMap::new();
        for key in rows {
            let info = self.table.info(&key.0, &key.1);
            let Some(r) = self.reaper.reaping.get_mut(&key) else {
                continue;
            };
            if !info.is_some_and(|i| i.tombstone && i.digest == r.digest) {
                self.reaper.reaping.remove(&key);
                continue;
            }
            match r.agreed_at {
                None => r.agreed_at = Some(self.now),
                Some(t) if self.now >= t.saturating_add(grace) => {
                    let digest = r.digest;
                    for to in self.replicas(&key.0) {
                        if to != self.id {
                            forgets
                                .get_or_default(to)
                                .push((key.0.clone(), key.1.clone(), digest));
                        }
                    }
                    self.forget_row(&key.0, &key.1);
                    self.reaper.reaped += 1;
                }
                // Agreed once; the second question waits for the grace.
                Some(_) => {}
            }
        }
        for (to, rows) in forgets {
            self.send(to, Message::Forget { rows });
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::engine::testing::{cluster, delete, deliver, kv, put, sends};
    use crate::engine::{Config, Status};

    /// Four nodes, a register's tombstone at its three replicas; the index
    /// of its collector and of the node that is no replica.
    fn tombstoned() -> (Vec<Node>, ObjectId, usize, usize) {
        let mut nodes = cluster(4, &Config::default());
        let key = kv("gone");
        let replicas = nodes[0].replicas(&key);
        let first = replicas[0].0 as usize;
        let outsider = (0..4)
            .find(|n| !replicas.contains(&NodeId(*n as u32)))
            .unwrap();
        put(&mut nodes[first], &key, "x", 1_000);
        delete(&mut nodes[first], &key, 1_000);
        nodes.iter_mut().for_each(|n| n.tick(1_000));
        deliver(&mut nodes, 1_000, |_, _, m| {
            matches!(m, Message::Reap { .. })
        });
        nodes[first].reaper.restart();
        (nodes, key, first, outsider)
    }

    fn waiting(n: &Node, key: &ObjectId) -> NodeSet {
        n.reaper.reaping[&(key.clone(), String::new())]
            .waiting
            .clone()
    }

    #[test]
    fn every_live_node_is_asked_and_answers_count_only_with_the_askers_view() {
        let (mut nodes, key, first, outsider) = tombstoned();
        let c = &mut nodes[first];
        assert!(c.collects(c.leaf(&key)));
        c.reap_round();
        let asked: NodeSet = sends(c.take_effects())
            .into_iter()
            .map(|(to, _)| to)
            .collect();
        assert_eq!(asked, c.peers().collect(), "the outsider is asked too");
        let round = c.reaper.reaping[&(key.clone(), String::new())].round;
        let from = NodeId(outsider as u32);
        let answer = |members: Membership, refused: Vec<RowId>| Message::Reaped {
            round,
            members,
            refused,
        };
        c.receive(from, answer(Membership::initial(3), Vec::new()), 1_000);
        assert!(
            waiting(c, &key).contains(&from),
            "an older view does not count"
        );
        let members = c.members.clone();
        c.receive(
            from,
            answer(members.clone(), vec![(key.clone(), String::new())]),
            1_000,
        );
        assert!(waiting(c, &key).contains(&from), "a refusal does not count");
        c.receive(from, answer(members, Vec::new()), 1_000);
        assert!(!waiting(c, &key).contains(&from));
        // A new view asks anew.
        let mut grown = c.members.clone();
        grown.set(NodeId(7), Status::Active);
        c.merge_members(&grown);
        assert!(c.reaper.reaping.is_empty());
    }

    #[test]
    fn a_tombstone_goes_after_two_agreements_a_grace_apart() {
        let (mut nodes, key, first, _) = tombstoned();
        let grace = nodes[first].config.tombstone_grace_ms;
        nodes[first].reap_round();
        deliver(&mut nodes, 1_000, |_, _, _| false);
        let reaping = &nodes[first].reaper.reaping[&(key.clone(), String::new())];
        assert_eq!((reaping.waiting.len(), reaping.agreed_at), (0, Some(1_000)));
        nodes[first].now = 1_000 + grace - 1;
        nodes[first].reap_round();
        assert!(
            sends(nodes[first].take_effects()).is_empty(),
            "the second question waits"
        );
        nodes[first].now = 1_000 + grace;
        nodes[first].reap_round();
        deliver(&mut nodes, 1_000 + grace, |_, _, _| false);
        assert_eq!(nodes[first].reaper.reaped, 1);
        assert!(
            nodes.iter().all(|n| n.row(&key, "").is_none()),
            "forgotten at every replica"
        );
    }

    #[test]
    fn a_changed_tombstone_starts_over() {
        let (mut nodes, key, first, _) = tombstoned();
        nodes[first].reap_round();
        deliver(&mut nodes, 1_000, |_, _, _| false);
        put(&mut nodes[first], &key, "back", 1_500);
        nodes[first].reap_round();
        assert!(nodes[first].reaper.reaping.is_empty());
    }
}
