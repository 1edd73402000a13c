//! One replica node: events in, effects out.

use super::{fnv1a, Key, Membership, Message, Partition, Placement, Status};
use crate::crdt::{Crdt, Hlc};
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// How far anti-entropy slows down on a node that has not changed: a node
/// that changes probes its peers at the full rate, and either side of a
/// probe repairs both, so a quiet node need not probe often.
pub const MAX_IDLE_BACKOFF: u64 = 8;

/// Timing of a node, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How many nodes the cluster starts with: `node-0` … `node-{n-1}`.
    pub initial_nodes: u32,
    /// At most one gossip batch per peer, and one subscriber push per key,
    /// per this interval.
    pub gossip_interval_ms: u64,
    /// How often the node compares digests with one peer.
    pub anti_entropy_interval_ms: u64,
    /// How often subscribers get a heartbeat.
    pub heartbeat_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial_nodes: 4,
            gossip_interval_ms: 250,
            anti_entropy_interval_ms: 2_000,
            heartbeat_interval_ms: 15_000,
        }
    }
}

/// Something the adapter must do for the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect<T> {
    /// Deliver `message` to peer `to`; report failure with [`Node::send_failed`].
    Send {
        /// the peer
        to: NodeId,
        /// the message
        message: Message<T>,
    },
    /// Persist the state of `key` before acknowledging what caused it.
    Store {
        /// the key
        key: Key,
        /// its whole state
        state: T,
    },
    /// Persist the membership.
    StoreMembers(Membership),
    /// Persist the partition.
    StorePartition(Partition),
    /// Push the state of `key` to its subscribers.
    Publish {
        /// the key
        key: Key,
        /// its whole state
        state: T,
    },
    /// Send subscribers a heartbeat.
    Heartbeat,
}

/// Why a write was not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError<E> {
    /// The data type refused the operation.
    Rejected(E),
    /// This node is draining or retired; `forward_to` accepts writes.
    NotAccepting {
        /// a node that accepts writes, if one is known
        forward_to: Option<NodeId>,
    },
}

/// Why a retirement could not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetireError {
    /// This node is already retired.
    AlreadyRetired,
    /// Another node is draining; retire one node at a time.
    Busy(NodeId),
    /// No other active node could be the heir.
    LastNode,
    /// The membership does not name this node.
    NotMember,
}

/// Why a node could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddError {
    /// The id is already in the membership (ids are never reused).
    Known(NodeId),
}

#[derive(Debug)]
struct Outbox<T> {
    states: BTreeMap<Key, T>,
    members: bool,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Outbox {
            states: BTreeMap::new(),
            members: false,
        }
    }
}

impl<T> Outbox<T> {
    fn is_empty(&self) -> bool {
        self.states.is_empty() && !self.members
    }
}

/// A replica node of a cluster that replicates values of type `T`.
#[derive(Debug)]
pub struct Node<T: Crdt, P: Placement> {
    id: NodeId,
    config: Config,
    placement: P,
    members: Membership,
    partition: Partition,
    data: BTreeMap<Key, T>,
    digests: BTreeMap<Key, u64>,
    outbox: BTreeMap<NodeId, Outbox<T>>,
    subscribers: BTreeMap<Key, usize>,
    unpublished: BTreeSet<Key>,
    effects: Vec<Effect<T>>,
    next_flush: u64,
    next_anti_entropy: u64,
    /// Anti-entropy rounds since this node last changed: each doubles the
    /// wait before the next, up to [`MAX_IDLE_BACKOFF`] times the interval.
    idle_rounds: u32,
    /// The latest wall-clock time a write or tick brought.
    now: u64,
    next_heartbeat: u64,
    anti_entropy_turn: usize,
    clock: Hlc,
}

/// Who writes and when: handed to a write's operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// the node taking the write
    pub node: NodeId,
    /// a hybrid-logical-clock timestamp, later than any this node has seen
    pub time: u64,
}

impl<T: Crdt, P: Placement> Node<T, P> {
    /// A node with no data, knowing only the initial members.
    pub fn new(id: NodeId, config: Config, placement: P) -> Self {
        let members = Membership::initial(config.initial_nodes);
        Node {
            id,
            config,
            placement,
            members,
            partition: Partition::default(),
            data: BTreeMap::new(),
            digests: BTreeMap::new(),
            outbox: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            unpublished: BTreeSet::new(),
            effects: Vec::new(),
            next_flush: 0,
            next_anti_entropy: 0,
            idle_rounds: 0,
            now: 0,
            next_heartbeat: 0,
            anti_entropy_turn: 0,
            clock: Hlc::default(),
        }
    }

    /// Restores stored membership, partition and states, with no effects.
    pub fn restore(
        &mut self,
        members: Option<Membership>,
        partition: Option<Partition>,
        states: impl IntoIterator<Item = (Key, T)>,
    ) {
        if let Some(m) = members {
            self.members.merge(&m);
        }
        if let Some(p) = partition {
            self.partition = p;
        }
        for (key, state) in states {
            self.observe(&state);
            self.set_digest(&key, &state);
            self.data.insert(key, state);
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's status. A node the membership does not name yet reads
    /// Active but is no member: it only listens until it learns it was added.
    pub fn status(&self) -> Status {
        self.members.status(self.id).unwrap_or(Status::Active)
    }

    /// Whether the membership names this node.
    pub fn is_member(&self) -> bool {
        self.members.status(self.id).is_some()
    }

    /// Whether this node takes client writes: a member and active.
    pub fn accepts_writes(&self) -> bool {
        self.members.status(self.id) == Some(Status::Active)
    }

    /// The membership as this node knows it.
    pub fn members(&self) -> &Membership {
        &self.members
    }

    /// The current partition.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// The state of `key`, if this node has one.
    pub fn read(&self, key: &str) -> Option<&T> {
        self.data.get(key)
    }

    /// The replicas of `key` in this node's view, in preference order.
    pub fn replicas(&self, key: &str) -> Vec<NodeId> {
        self.placement.replicas(key, &self.members)
    }

    /// Every key this node holds.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.data.keys()
    }

    /// The digest of the keys this node shares with `peer` (both are
    /// replicas of them) and of the membership: anti-entropy compares it.
    pub fn root_for(&self, peer: NodeId) -> u64 {
        let members = fnv1a(&postcard::to_allocvec(&self.members).unwrap_or_default());
        self.digests
            .iter()
            .filter(|(key, _)| self.shared_with(key, peer))
            .fold(members, |root, (_, d)| root.wrapping_add(*d))
    }

    /// Whether this node and `peer` are both replicas of `key`.
    fn shared_with(&self, key: &str, peer: NodeId) -> bool {
        let replicas = self.placement.replicas(key, &self.members);
        replicas.contains(&self.id) && replicas.contains(&peer)
    }

    /// Takes the queued effects, in the order they arose.
    pub fn take_effects(&mut self) -> Vec<Effect<T>> {
        std::mem::take(&mut self.effects)
    }

    /// When [`Node::tick`] next has work, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.is_member() || !self.status().is_live() {
            return None;
        }
        let pending = self
            .unpublished
            .iter()
            .any(|k| self.subscribers.contains_key(k))
            || self
                .outbox
                .iter()
                .any(|(peer, b)| !b.is_empty() && !self.partition.separates(self.id, *peer));
        let mut at = self.next_anti_entropy;
        if pending {
            at = at.min(self.next_flush);
        }
        if !self.subscribers.is_empty() {
            at = at.min(self.next_heartbeat);
        }
        Some(at)
    }

    /// Applies a client write at wall-clock time `now_ms`: `op` reads the
    /// current state and a [`Stamp`] and returns a delta, which is merged,
    /// stored and gossiped.
    pub fn write<E>(
        &mut self,
        key: &str,
        now_ms: u64,
        op: impl FnOnce(&T, Stamp) -> Result<T, E>,
    ) -> Result<&T, WriteError<E>> {
        if !self.accepts_writes() {
            return Err(WriteError::NotAccepting {
                forward_to: self.forward_target(),
            });
        }
        self.now = self.now.max(now_ms);
        let stamp = Stamp {
            node: self.id,
            time: self.clock.now(now_ms),
        };
        let empty = T::default();
        let delta =
            op(self.data.get(key).unwrap_or(&empty), stamp).map_err(WriteError::Rejected)?;
        self.apply(key, &delta, Some(None));
        Ok(&self.data[key])
    }

    /// A node that accepts writes in place of this one.
    pub fn forward_target(&self) -> Option<NodeId> {
        match self.status() {
            Status::Active if self.is_member() => Some(self.id),
            Status::Draining { heir } | Status::Retired { heir }
                if self.members.status(heir) == Some(Status::Active) =>
            {
                Some(heir)
            }
            _ => self.members.active().next(),
        }
    }

    /// Starts a subscription to `key`'s changes.
    pub fn subscribe(&mut self, key: &str) {
        *self.subscribers.entry(key.to_owned()).or_default() += 1;
    }

    /// Ends one subscription to `key`.
    pub fn unsubscribe(&mut self, key: &str) {
        if let Some(n) = self.subscribers.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.subscribers.remove(key);
                self.unpublished.remove(key);
            }
        }
    }

    /// Cuts gossip between groups (or heals, with no groups).
    pub fn set_partition(&mut self, partition: Partition) {
        if partition != self.partition {
            self.partition = partition.clone();
            self.effects.push(Effect::StorePartition(partition));
        }
    }

    /// Adds node `id` to the membership. Ids must come from one allocator
    /// (the edge uses a registry object): two nodes' views may both lack a
    /// fresh id, so a node cannot pick one safely on its own.
    pub fn add_node(&mut self, id: NodeId, now: u64) -> Result<(), AddError> {
        if self.members.status(id).is_some() {
            return Err(AddError::Known(id));
        }
        let mut grown = self.members.clone();
        grown.set(id, Status::Active);
        self.merge_members(&grown);
        // Tell the newcomer at once and start its catch-up.
        self.send(
            id,
            Message::Gossip {
                members: Some(self.members.clone()),
                states: Vec::new(),
                want: Vec::new(),
            },
        );
        if let Some(b) = self.outbox.get_mut(&id) {
            b.members = false;
        }
        self.send(
            id,
            Message::Digest {
                root: self.root_for(id),
            },
        );
        self.next_anti_entropy = self.next_anti_entropy.min(now);
        Ok(())
    }

    /// Starts (or retries) the retirement of this node.
    ///
    /// The node stops accepting writes (status Draining, with a chosen heir)
    /// and sends its whole state to the heir. The heir merges it, folds this
    /// node's entries into its own with [`Crdt::absorb`], stores the result,
    /// gossips it, marks this node Retired and answers
    /// [`Message::HandoffDone`]. A lost handoff is retried by calling this
    /// again; the heir's fold is idempotent.
    ///
    /// The heir is chosen from this node's view, which may be stale: it may
    /// have retired already. A retired node never answers, and it folded no
    /// node it did not mark retired first, so a retry sends the handoff to
    /// the node the heir retired into (to the end of that chain), which
    /// folds this node in its place. Returns the node the handoff went to.
    pub fn begin_retire(&mut self) -> Result<NodeId, RetireError> {
        if !self.is_member() {
            return Err(RetireError::NotMember);
        }
        let heir = match self.status() {
            Status::Retired { .. } => return Err(RetireError::AlreadyRetired),
            Status::Draining { heir } => heir,
            Status::Active => {
                if let Some(other) = self.members.draining().filter(|d| *d != self.id) {
                    return Err(RetireError::Busy(other));
                }
                let active: Vec<NodeId> = self.members.active().filter(|n| *n != self.id).collect();
                let heir = active
                    .iter()
                    .find(|n| **n > self.id)
                    .or(active.first())
                    .copied()
                    .ok_or(RetireError::LastNode)?;
                let mut m = self.members.clone();
                m.set(self.id, Status::Draining { heir });
                self.merge_members(&m);
                heir
            }
        };
        let to = successor(&self.members, heir);
        let states = self
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.send(
            to,
            Message::Handoff {
                members: self.members.clone(),
                states,
            },
        );
        Ok(to)
    }

    /// Handles a message from peer `from`.
    pub fn receive(&mut self, from: NodeId, message: Message<T>) {
        if !self.status().is_live()
            || (message.is_gossip() && self.partition.separates(self.id, from))
        {
            return;
        }
        match message {
            Message::Gossip {
                members,
                states,
                want,
            } => {
                if let Some(m) = members {
                    self.merge_members(&m);
                }
                for (key, state) in &states {
                    self.apply(key, state, None);
                }
                let states = self.states_of(want);
                if !states.is_empty() {
                    self.send(
                        from,
                        Message::Gossip {
                            members: None,
                            states,
                            want: Vec::new(),
                        },
                    );
                }
            }
            Message::Digest { root } => {
                if root != self.root_for(from) {
                    // A divergence: probe at the full rate until it is gone.
                    self.became_busy();
                    let keys = self
                        .digests
                        .iter()
                        .filter(|(k, _)| self.shared_with(k, from))
                        .map(|(k, d)| (k.clone(), *d))
                        .collect();
                    self.send(
                        from,
                        Message::Summary {
                            members: self.members.clone(),
                            keys,
                        },
                    );
                }
            }
            Message::Summary { members, keys } => {
                self.merge_members(&members);
                let theirs: BTreeMap<Key, u64> = keys.into_iter().collect();
                let differs = |k: &Key, d: &u64| theirs.get(k) != Some(d);
                let push: Vec<Key> = self
                    .digests
                    .iter()
                    .filter(|(k, d)| differs(k, d) && self.shared_with(k, from))
                    .map(|(k, _)| k.clone())
                    .collect();
                let want: Vec<Key> = theirs
                    .iter()
                    .filter(|(k, d)| self.digests.get(*k) != Some(*d) && self.shared_with(k, from))
                    .map(|(k, _)| k.clone())
                    .collect();
                let states = self.states_of(push);
                if !states.is_empty() || !want.is_empty() {
                    self.became_busy();
                    self.send(
                        from,
                        Message::Gossip {
                            members: None,
                            states,
                            want,
                        },
                    );
                }
            }
            Message::Handoff { members, states } => self.take_over(from, &members, &states),
            Message::HandoffDone => {
                if let Status::Draining { heir } = self.status() {
                    if heir == from || successor(&self.members, heir) == from {
                        let mut m = self.members.clone();
                        m.set(self.id, Status::Retired { heir: from });
                        self.merge_members(&m);
                        self.outbox.clear();
                    }
                }
            }
        }
    }

    /// Reports that `message` to `to` was not delivered.
    pub fn send_failed(&mut self, to: NodeId, message: Message<T>) {
        if let Message::Gossip {
            members, states, ..
        } = message
        {
            if self.members.status(to).is_some_and(Status::is_live) {
                let b = self.outbox.entry(to).or_default();
                b.members |= members.is_some();
                for (key, state) in states {
                    b.states.entry(key).or_default().merge(&state);
                }
            }
        }
    }

    /// Advances the clock to `now`: flushes gossip and subscriber pushes
    /// when their interval has passed, and runs anti-entropy and heartbeats.
    pub fn tick(&mut self, now: u64) {
        self.now = self.now.max(now);
        if !self.is_member() || !self.status().is_live() {
            return;
        }
        if now >= self.next_flush {
            self.flush();
            self.next_flush = now + self.config.gossip_interval_ms;
        }
        if now >= self.next_anti_entropy {
            let peers: Vec<NodeId> = self
                .peers()
                .filter(|p| !self.partition.separates(self.id, *p))
                .collect();
            if !peers.is_empty() {
                let peer = peers[self.anti_entropy_turn % peers.len()];
                self.anti_entropy_turn = self.anti_entropy_turn.wrapping_add(1);
                let root = self.root_for(peer);
                self.send(peer, Message::Digest { root });
            }
            let backoff = (1u64 << self.idle_rounds.min(16)).min(MAX_IDLE_BACKOFF);
            self.next_anti_entropy = now + self.config.anti_entropy_interval_ms * backoff;
            self.idle_rounds = self.idle_rounds.saturating_add(1);
        }
        if !self.subscribers.is_empty() && now >= self.next_heartbeat {
            self.effects.push(Effect::Heartbeat);
            self.next_heartbeat = now + self.config.heartbeat_interval_ms;
        }
    }

    fn flush(&mut self) {
        let mut sends = Vec::new();
        for (peer, b) in &mut self.outbox {
            if b.is_empty() || self.partition.separates(self.id, *peer) {
                continue;
            }
            let members = std::mem::take(&mut b.members).then(|| self.members.clone());
            let states = std::mem::take(&mut b.states).into_iter().collect();
            sends.push((
                *peer,
                Message::Gossip {
                    members,
                    states,
                    want: Vec::new(),
                },
            ));
        }
        for (to, message) in sends {
            self.send(to, message);
        }
        let published: Vec<Key> = std::mem::take(&mut self.unpublished).into_iter().collect();
        for key in published {
            if let Some(state) = self.data.get(&key) {
                self.effects.push(Effect::Publish {
                    key,
                    state: state.clone(),
                });
            }
        }
    }

    fn take_over(&mut self, from: NodeId, members: &Membership, states: &[(Key, T)]) {
        let Some(named) = members.status(from).and_then(Status::heir) else {
            return;
        };
        if named != self.id {
            // Only as the end of the chain of the heir's own retirements.
            let mut view = self.members.clone();
            view.merge(members);
            if successor(&view, named) != self.id {
                return;
            }
        }
        self.merge_members(members);
        if !self.accepts_writes() {
            // Only an active heir may absorb; the drain waits for an admin.
            return;
        }
        for (key, state) in states {
            // The drained node gossips no more: pass its state on.
            self.apply(key, state, Some(Some(from)));
        }
        let folds: Vec<(Key, T)> = self
            .data
            .iter()
            .filter_map(|(k, v)| v.absorb(from, self.id).map(|d| (k.clone(), d)))
            .collect();
        for (key, delta) in &folds {
            self.apply(key, delta, Some(Some(from)));
        }
        let mut m = self.members.clone();
        m.set(from, Status::Retired { heir: self.id });
        self.merge_members(&m);
        self.send(from, Message::HandoffDone);
    }

    /// Merges `delta` into `key`. `gossip_except`: `None` to keep it local,
    /// `Some(skip)` to buffer it for every other replica except `skip`.
    fn apply(&mut self, key: &str, delta: &T, gossip_except: Option<Option<NodeId>>) {
        let state = match self.data.get_mut(key) {
            Some(state) => {
                if !state.merge(delta) {
                    return;
                }
                state.clone()
            }
            None => {
                let mut state = T::default();
                if !state.merge(delta) {
                    return;
                }
                self.data.insert(key.to_owned(), state.clone());
                state
            }
        };
        self.observe(&state);
        self.became_busy();
        self.set_digest(key, &state);
        if self.subscribers.contains_key(key) {
            self.unpublished.insert(key.to_owned());
        }
        if let Some(skip) = gossip_except {
            for peer in self.placement.replicas(key, &self.members) {
                if peer != self.id && Some(peer) != skip {
                    let b = self.outbox.entry(peer).or_default();
                    b.states.entry(key.to_owned()).or_default().merge(delta);
                }
            }
        }
        self.effects.push(Effect::Store {
            key: key.to_owned(),
            state,
        });
    }

    /// Back to the full anti-entropy rate after a change.
    fn became_busy(&mut self) {
        if self.idle_rounds > 0 {
            self.idle_rounds = 0;
            let soon = self.now + self.config.anti_entropy_interval_ms;
            self.next_anti_entropy = self.next_anti_entropy.min(soon);
        }
    }

    fn observe(&mut self, state: &T) {
        if let Some(t) = state.latest_stamp() {
            self.clock.observe(t);
        }
    }

    fn set_digest(&mut self, key: &str, state: &T) {
        let mut bytes = key.as_bytes().to_vec();
        bytes.extend(postcard::to_allocvec(state).unwrap_or_default());
        let digest = fnv1a(&bytes);
        self.digests.insert(key.to_owned(), digest);
    }

    fn merge_members(&mut self, other: &Membership) {
        if !self.members.merge(other) {
            return;
        }
        self.became_busy();
        self.effects
            .push(Effect::StoreMembers(self.members.clone()));
        let peers: Vec<NodeId> = self.peers().collect();
        self.outbox.retain(|id, _| peers.contains(id));
        for peer in peers {
            self.outbox.entry(peer).or_default().members = true;
        }
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.live().filter(move |n| *n != self.id)
    }

    fn states_of(&self, keys: Vec<Key>) -> Vec<(Key, T)> {
        keys.into_iter()
            .filter_map(|k| self.data.get(&k).map(|v| (k, v.clone())))
            .collect()
    }

    fn send(&mut self, to: NodeId, message: Message<T>) {
        self.effects.push(Effect::Send { to, message });
    }
}

/// The node that absorbs a draining node whose chosen heir is `heir`:
/// `heir`, or if `heir` has retired, the node it retired into, and so on.
///
/// A node folds others only while active, and marks each one retired in its
/// membership before it drains itself, so a membership that shows `heir`
/// retired shows every node `heir` folded as retired too: a node still
/// draining towards a retired heir was never folded, and the successor may
/// fold it without counting it twice.
fn successor(members: &Membership, heir: NodeId) -> NodeId {
    let mut at = heir;
    for _ in 0..members.all().len() {
        match members.status(at) {
            Some(Status::Retired { heir: next }) if next != at => at = next,
            _ => break,
        }
    }
    at
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::cluster::AllNodes;
    use crate::crdt::{PnCounter, PnError};

    fn node(id: u32) -> Node<PnCounter, AllNodes> {
        Node::new(NodeId(id), Config::default(), AllNodes)
    }

    fn add(n: &mut Node<PnCounter, AllNodes>) -> Result<i64, WriteError<PnError>> {
        n.write("k", 0, |s: &PnCounter, at| s.add(at.node, 1))
            .map(PnCounter::value)
    }

    #[test]
    fn a_node_outside_the_membership_only_listens_until_added() {
        let mut stranger = node(9);
        assert!(!stranger.is_member());
        assert_eq!(
            add(&mut stranger),
            Err(WriteError::NotAccepting {
                forward_to: Some(NodeId(0))
            })
        );
        assert_eq!(stranger.next_deadline(), None);
        assert_eq!(stranger.begin_retire(), Err(RetireError::NotMember));

        let mut adder = node(0);
        adder.add_node(NodeId(9), 0).unwrap();
        assert_eq!(
            adder.add_node(NodeId(9), 0),
            Err(AddError::Known(NodeId(9)))
        );
        for effect in adder.take_effects() {
            if let Effect::Send { to, message } = effect {
                assert_eq!(to, NodeId(9));
                stranger.receive(NodeId(0), message);
            }
        }
        assert!(stranger.accepts_writes());
        assert_eq!(add(&mut stranger), Ok(1));
    }

    #[test]
    fn anti_entropy_slows_down_while_idle_and_speeds_up_on_change() {
        let mut n = node(0);
        let interval = Config::default().anti_entropy_interval_ms;
        let mut gaps = Vec::new();
        let mut last = 0;
        for _ in 0..6 {
            let at = n.next_deadline().unwrap();
            n.tick(at);
            n.take_effects();
            gaps.push(at - last);
            last = at;
        }
        assert_eq!(gaps[1..], [1, 2, 4, 8, 8].map(|k| k * interval));
        add(&mut n).unwrap();
        let next = n.next_anti_entropy;
        assert!(
            next <= last + interval,
            "a change brings the next round near"
        );
    }

    /// Eight nodes place registers on three replicas each; a third of all
    /// messages is lost, for 500 s of virtual time. Anti-entropy, which
    /// compares only the keys two nodes share, repairs every replica, and
    /// no other node gets a copy.
    #[test]
    fn ring_placed_keys_reach_exactly_their_replicas() {
        use crate::cluster::ByKind;
        use crate::crdt::{CausalContext, Kind, MvRegister, Payload, Value};
        let config = Config {
            initial_nodes: 8,
            ..Config::default()
        };
        let mut nodes: Vec<Node<Value, ByKind>> = (0..8)
            .map(|i| Node::new(NodeId(i), config.clone(), ByKind::new(3, 64)))
            .collect();
        let placement = ByKind::new(3, 64);
        let members = Membership::initial(8);
        let keys: Vec<String> = (0..40)
            .map(|i| Kind::Register.key(&format!("k{i}")))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            let at = placement.replicas(key, &members)[i % 3].0 as usize;
            let payload = Payload::Text(format!("v{i}"));
            nodes[at]
                .write(key, 1_000, |v: &Value, stamp| {
                    let reg = v.as_register().cloned().unwrap_or_default();
                    let seen = CausalContext::default();
                    Ok::<_, ()>(Value::Register(
                        reg.write(stamp.node, &seen, payload, stamp.time),
                    ))
                })
                .unwrap();
        }
        let mut lost = 7u64;
        for round in 0..2_000u64 {
            let now = 1_000 + round * 250;
            for n in &mut nodes {
                n.tick(now);
            }
            let mut queue: Vec<(NodeId, NodeId, Message<Value>)> = Vec::new();
            loop {
                for n in &mut nodes {
                    for effect in n.take_effects() {
                        if let Effect::Send { to, message } = effect {
                            queue.push((n.id(), to, message));
                        }
                    }
                }
                let Some((from, to, message)) = queue.pop() else {
                    break;
                };
                // A seeded LCG drops about a third of all messages.
                lost = lost
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                if !(lost >> 33).is_multiple_of(3) {
                    nodes[to.0 as usize].receive(from, message);
                }
            }
        }
        for (i, key) in keys.iter().enumerate() {
            let replicas = placement.replicas(key, &members);
            for n in &nodes {
                let held = n.read(key).and_then(Value::as_register);
                if replicas.contains(&n.id()) {
                    let values: Vec<_> = held
                        .map(MvRegister::siblings)
                        .into_iter()
                        .flatten()
                        .collect();
                    assert_eq!(values.len(), 1, "{key} at replica {}", n.id());
                    assert_eq!(values[0].1.payload, Payload::Text(format!("v{i}")));
                } else {
                    assert!(held.is_none(), "{key} copied to {}, not a replica", n.id());
                }
            }
        }
    }
}
