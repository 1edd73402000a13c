//! One replica node: events in, effects out.
//!
//! The node keeps in memory only the keys it was given: an adapter whose
//! storage outlives the node restores the membership and the leaf digests
//! ([`Node::restore`]), then before each input loads what [`Node::needs_key`],
//! [`Node::needs_for`] or [`Node::wanted`] names and hands it over with
//! [`Node::load`]. A fresh node holds everything it ever stored, so it
//! needs nothing.

use super::{fnv1a, Key, Leaf, Membership, Message, Partition, Placement, Status};
use crate::crdt::{Crdt, Hlc, Stamp};
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// How far anti-entropy slows down on a node that has not changed: a node
/// that changes probes its peers at the full rate, and either side of a
/// probe repairs both, so a quiet node need not probe often.
pub const MAX_IDLE_BACKOFF: u64 = 8;

/// Most leaves one anti-entropy round compares key by key.
const LEAVES_PER_ROUND: usize = 32;

/// Most leaves one transfer carries.
const TRANSFER_BATCH: usize = 64;

/// Most tombstones one node collects at a time.
const REAP_BATCH: usize = 256;

/// Most leaves with tombstones a node loads at a time to collect them.
const REAP_LEAVES: usize = 8;

/// How far ahead of its latest stamp a node's stored clock floor is set.
const CLOCK_FLOOR_STEP_MS: u64 = 1_000;

/// Timing of a node, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How many nodes the cluster starts with: `node-0` … `node-{n-1}`.
    pub initial_nodes: u32,
    /// At most one gossip batch per peer, and one subscriber push per key,
    /// per this interval.
    pub gossip_interval_ms: u64,
    /// How often the node compares digests with one peer (and retries
    /// transfers).
    pub anti_entropy_interval_ms: u64,
    /// How often subscribers get a heartbeat.
    pub heartbeat_interval_ms: u64,
    /// Gossiped states stamped further ahead of this node's clock are refused.
    pub max_drift_ms: u64,
    /// How long a tombstone waits, once every node has confirmed it, before
    /// every node is asked again and it is dropped: longer than any message
    /// between nodes can take (the edge refuses older frames).
    pub tombstone_grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial_nodes: 4,
            gossip_interval_ms: 250,
            anti_entropy_interval_ms: 2_000,
            heartbeat_interval_ms: 15_000,
            max_drift_ms: 60_000,
            tombstone_grace_ms: 60_000,
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
        /// its leaf, for loading by leaf
        leaf: Leaf,
        /// its whole state
        state: T,
        /// whether it holds every write this node made to the key
        own_writes: bool,
    },
    /// Remove `key` from storage: it was handed off, or it was a tombstone
    /// every node confirmed.
    Delete {
        /// the key
        key: Key,
    },
    /// Persist a leaf's digest and tombstone count (0, 0: the leaf is empty).
    StoreLeaf {
        /// the leaf
        leaf: Leaf,
        /// what the node knows of the leaf without loading it
        row: LeafRow,
    },
    /// Persist the membership.
    StoreMembers(Membership),
    /// Persist the partition.
    StorePartition(Partition),
    /// Persist a floor for the node's clock: restored, the node stamps
    /// above it, so its writes' dots stay new even if its wall clock is
    /// behind the stamps it gave before a restart.
    StoreClock(u64),
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

/// One stored key, as [`Node::load`] takes it back.
#[derive(Clone, Debug, PartialEq)]
pub struct Row<T> {
    /// the key's state
    pub state: T,
    /// whether it holds every write this node made to the key
    pub own_writes: bool,
}

/// One stored leaf: what a node knows of it before loading its keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeafRow {
    /// the sum of its keys' digests (0: empty)
    pub digest: u64,
    /// how many of its keys are tombstones
    pub tombstones: u32,
}

/// What must be in memory before an input: single keys (present or not),
/// and whole leaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// keys to load, each with its state or none
    pub keys: Vec<Key>,
    /// leaves to load with every key in them
    pub leaves: Vec<Leaf>,
}

impl Needs {
    /// Whether nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.leaves.is_empty()
    }
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

/// A leaf with every state in it.
type LeafStates<T> = (Leaf, Vec<(Key, T)>);

/// A leaf with every stored row in it.
type LeafRows<T> = (Leaf, Vec<(Key, Row<T>)>);

/// A leaf on its way to its replicas: the digest it had when sent, the
/// replicas it goes to and those that have not confirmed it. It is sent
/// again every anti-entropy round until confirmed.
#[derive(Debug)]
struct Pending {
    digest: u64,
    targets: BTreeSet<NodeId>,
    waiting: BTreeSet<NodeId>,
}

/// A tombstone being collected: every live node is asked twice, a grace
/// period apart, whether it holds the same state or nothing of its leaf;
/// the first replica of the leaf asks and, when all agreed twice, drops it
/// and tells the other replicas to.
#[derive(Debug)]
struct Reaping {
    /// the current question's id (a clock stamp of the asking node)
    round: u64,
    digest: u64,
    /// live nodes that have not agreed in this round
    waiting: BTreeSet<NodeId>,
    /// when every node first agreed: the second round starts a grace later
    agreed_at: Option<u64>,
}

/// A replica node of a cluster that replicates values of type `T`.
#[derive(Debug)]
pub struct Node<T: Crdt, P: Placement> {
    id: NodeId,
    config: Config,
    placement: P,
    members: Membership,
    partition: Partition,
    /// The states in memory: a subset of what is stored, unless `complete`.
    data: BTreeMap<Key, T>,
    digests: BTreeMap<Key, u64>,
    by_leaf: BTreeMap<Leaf, BTreeSet<Key>>,
    /// The sum of the key digests of each leaf this node stores.
    leaves: BTreeMap<Leaf, u64>,
    /// How many keys of each leaf are tombstones, and which loaded ones.
    tombstones: BTreeMap<Leaf, u32>,
    tombstone_keys: BTreeSet<Key>,
    /// Keys whose state holds every write this node made to them.
    own_writes: BTreeSet<Key>,
    reaping: BTreeMap<Key, Reaping>,
    reaped: u64,
    /// Whether `data` holds every key this node stores.
    complete: bool,
    loaded_keys: BTreeSet<Key>,
    loaded_leaves: BTreeSet<Leaf>,
    /// Leaves this node no longer replicates, being handed to their replicas.
    moving: BTreeMap<Leaf, Pending>,
    outbox: BTreeMap<NodeId, Outbox<T>>,
    subscribers: BTreeMap<Key, usize>,
    unpublished: BTreeSet<Key>,
    effects: Vec<Effect<T>>,
    next_flush: u64,
    next_anti_entropy: u64,
    /// Anti-entropy rounds since this node last changed: each doubles the
    /// wait before the next, up to [`MAX_IDLE_BACKOFF`] times the interval.
    idle_rounds: u32,
    /// The latest wall-clock time an input brought.
    now: u64,
    next_heartbeat: u64,
    anti_entropy_turn: usize,
    clock: Hlc,
    /// The clock floor last stored: every stamp given so far is below it.
    clock_floor: u64,
    refused: u64,
}

fn key_digest<T: Crdt>(key: &str, state: &T) -> u64 {
    let mut bytes = key.as_bytes().to_vec();
    bytes.extend(postcard::to_allocvec(state).unwrap_or_default());
    fnv1a(&bytes)
}

/// The digest of a batch of states, as a leaf digest sums them.
fn states_digest<T: Crdt>(states: &[(Key, T)]) -> u64 {
    states
        .iter()
        .fold(0u64, |d, (k, v)| d.wrapping_add(key_digest(k, v)))
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
            by_leaf: BTreeMap::new(),
            leaves: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            tombstone_keys: BTreeSet::new(),
            own_writes: BTreeSet::new(),
            reaping: BTreeMap::new(),
            reaped: 0,
            complete: true,
            loaded_keys: BTreeSet::new(),
            loaded_leaves: BTreeSet::new(),
            moving: BTreeMap::new(),
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
            clock_floor: 0,
            refused: 0,
        }
    }

    /// Restores stored membership, partition, clock floor and leaf rows,
    /// with no effects. States come later, as inputs need them
    /// ([`Node::load`]).
    pub fn restore(
        &mut self,
        members: Option<Membership>,
        partition: Option<Partition>,
        clock_floor: Option<u64>,
        leaves: impl IntoIterator<Item = (Leaf, LeafRow)>,
    ) {
        if let Some(m) = members {
            self.members.merge(&m);
        }
        if let Some(p) = partition {
            self.partition = p;
        }
        if let Some(floor) = clock_floor {
            self.clock.observe(floor);
            self.clock_floor = floor;
        }
        for (leaf, row) in leaves {
            if row.digest != 0 {
                self.leaves.insert(leaf, row.digest);
                self.complete = false;
            }
            if row.tombstones != 0 {
                self.tombstones.insert(leaf, row.tombstones);
            }
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

    /// The state of `key`, if this node has one in memory.
    pub fn read(&self, key: &str) -> Option<&T> {
        self.data.get(key)
    }

    /// The replicas of `key` in this node's view, in preference order.
    pub fn replicas(&self, key: &str) -> Vec<NodeId> {
        self.placement.replicas(key, &self.members)
    }

    /// The leaf of `key`.
    pub fn leaf(&self, key: &str) -> Leaf {
        self.placement.leaf(key)
    }

    /// The keys in memory.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.data.keys()
    }

    /// How many leaves hold data here, and how many of them are being
    /// handed off to other replicas.
    pub fn leaf_counts(&self) -> (usize, usize) {
        (self.leaves.len(), self.moving.len())
    }

    /// Gossiped states refused so far for timestamps beyond the drift.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// How many stored keys are tombstones, and how many this node has
    /// collected since it started.
    pub fn tombstone_counts(&self) -> (u64, u64) {
        let held = self.tombstones.values().map(|n| u64::from(*n)).sum();
        (held, self.reaped)
    }

    // ---- loading ---------------------------------------------------------

    fn key_loaded(&self, key: &str) -> bool {
        self.complete
            || self.loaded_keys.contains(key)
            || self.leaf_loaded(self.placement.leaf(key))
    }

    fn leaf_loaded(&self, leaf: Leaf) -> bool {
        self.complete || self.loaded_leaves.contains(&leaf) || !self.leaves.contains_key(&leaf)
    }

    fn needs_keys<'a>(&self, keys: impl IntoIterator<Item = &'a Key>) -> Needs {
        let mut keys: Vec<Key> = keys
            .into_iter()
            .filter(|k| !self.key_loaded(k))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        Needs {
            keys,
            leaves: Vec::new(),
        }
    }

    fn needs_leaves(&self, leaves: impl IntoIterator<Item = Leaf>) -> Needs {
        let mut leaves: Vec<Leaf> = leaves
            .into_iter()
            .filter(|l| !self.leaf_loaded(*l))
            .collect();
        leaves.sort_unstable();
        leaves.dedup();
        Needs {
            keys: Vec::new(),
            leaves,
        }
    }

    /// What a client write or read of `key` needs in memory.
    pub fn needs_key(&self, key: &str) -> Needs {
        self.needs_keys([&key.to_owned()])
    }

    /// What handling `message` needs in memory.
    pub fn needs_for(&self, from: NodeId, message: &Message<T>) -> Needs {
        match message {
            Message::Gossip {
                members,
                states,
                want,
            } => {
                // Keys this node does not replicate in the view the frame
                // brings are skipped: no need to read them.
                let merged;
                let view = match members {
                    Some(m) => {
                        let mut v = self.members.clone();
                        v.merge(m);
                        merged = v;
                        &merged
                    }
                    None => &self.members,
                };
                let replicated = states
                    .iter()
                    .map(|(k, _)| k)
                    .filter(|k| self.placement.replicas(k, view).contains(&self.id));
                self.needs_keys(replicated.chain(want))
            }
            Message::Transfer { leaves, .. } => {
                self.needs_keys(leaves.iter().flat_map(|(_, s)| s.iter().map(|(k, _)| k)))
            }
            Message::Summary { leaves, .. } => {
                let theirs: BTreeMap<Leaf, u64> = leaves.iter().copied().collect();
                self.needs_leaves(self.differing_leaves(&theirs, from))
            }
            Message::Keys { leaves } => self.needs_leaves(leaves.iter().map(|(l, _)| *l)),
            Message::Handoff { states, .. } => self.needs_keys(states.iter().map(|(k, _)| k)),
            Message::Reap { keys, .. } | Message::Forget { keys } => {
                self.needs_keys(keys.iter().map(|(k, _)| k))
            }
            Message::Digest { .. }
            | Message::HandoffDone
            | Message::Transferred { .. }
            | Message::Reaped { .. } => Needs::default(),
        }
    }

    /// What the node's own work needs in memory: leaves to hand off, while
    /// draining everything for the heir, and else a few leaves with
    /// tombstones to collect. Load it, then call [`Node::resume`].
    pub fn wanted(&self) -> Needs {
        if !self.is_member() || !self.status().is_live() {
            return Needs::default();
        }
        let foreign = self.foreign_leaves();
        if foreign.is_empty() && matches!(self.status(), Status::Draining { .. }) {
            return self.needs_leaves(self.leaves.keys().copied());
        }
        let moving = self.needs_leaves(foreign);
        if !moving.is_empty() {
            return moving;
        }
        let mut reap = self.needs_leaves(
            self.tombstones
                .keys()
                .copied()
                .filter(|l| self.collects(*l)),
        );
        reap.leaves.truncate(REAP_LEAVES);
        reap
    }

    /// Takes states from storage: single keys (`None`: not stored) and
    /// whole leaves. What is already in memory is newer and stays.
    pub fn load(&mut self, keys: Vec<(Key, Option<Row<T>>)>, leaves: Vec<LeafRows<T>>) {
        for (key, row) in keys {
            if let Some(row) = row {
                self.take_stored(key.clone(), row);
            }
            self.loaded_keys.insert(key);
        }
        for (leaf, rows) in leaves {
            for (key, row) in rows {
                self.take_stored(key, row);
            }
            self.loaded_leaves.insert(leaf);
        }
    }

    fn take_stored(&mut self, key: Key, row: Row<T>) {
        if self.data.contains_key(&key) || self.loaded_keys.contains(&key) {
            return;
        }
        if let Some(t) = row.state.latest_stamp() {
            self.clock.observe(t);
        }
        let leaf = self.placement.leaf(&key);
        self.digests
            .insert(key.clone(), key_digest(&key, &row.state));
        self.by_leaf.entry(leaf).or_default().insert(key.clone());
        if row.state.is_tombstone() {
            self.tombstone_keys.insert(key.clone());
        }
        if row.own_writes {
            self.own_writes.insert(key.clone());
        }
        self.data.insert(key, row.state);
    }

    /// Merges states an older storage layout kept and stores them, with no
    /// gossip (every node imports its own). Each key must be loaded
    /// ([`Node::needs_key`]).
    pub fn import(&mut self, states: Vec<(Key, T)>) {
        for (key, state) in states {
            debug_assert!(self.key_loaded(&key), "{key} imported before it was loaded");
            self.apply(&key, &state, None);
        }
    }

    /// Continues the work [`Node::wanted`] waited for.
    pub fn resume(&mut self) {
        let draining = matches!(self.status(), Status::Draining { .. });
        self.move_foreign_leaves(draining);
    }

    // ---- digests ---------------------------------------------------------

    /// Whether this node and `peer` both replicate `leaf`.
    fn shares(&self, leaf: Leaf, peer: NodeId) -> bool {
        let replicas = self.placement.leaf_replicas(leaf, &self.members);
        replicas.contains(&self.id) && replicas.contains(&peer)
    }

    /// The digests of the leaves this node holds and shares with `peer`.
    fn shared_leaves(&self, peer: NodeId) -> BTreeMap<Leaf, u64> {
        self.leaves
            .iter()
            .filter(|(leaf, _)| self.shares(**leaf, peer))
            .map(|(l, d)| (*l, *d))
            .collect()
    }

    /// The digest of the leaves this node shares with `peer` and of the
    /// membership: anti-entropy compares it first.
    pub fn root_for(&self, peer: NodeId) -> u64 {
        let members = fnv1a(&postcard::to_allocvec(&self.members).unwrap_or_default());
        self.shared_leaves(peer)
            .iter()
            .fold(members, |root, (leaf, d)| {
                let mut bytes = leaf.to_le_bytes().to_vec();
                bytes.extend(d.to_le_bytes());
                root.wrapping_add(fnv1a(&bytes))
            })
    }

    /// Shared leaves whose digests differ from `theirs`, a round's worth.
    fn differing_leaves(&self, theirs: &BTreeMap<Leaf, u64>, peer: NodeId) -> Vec<Leaf> {
        let mine = self.shared_leaves(peer);
        let mut differ: Vec<Leaf> = mine
            .iter()
            .filter(|(l, d)| theirs.get(l) != Some(d))
            .map(|(l, _)| *l)
            .chain(
                theirs
                    .iter()
                    .filter(|(l, d)| mine.get(l) != Some(d) && self.shares(**l, peer))
                    .map(|(l, _)| *l),
            )
            .collect();
        differ.sort_unstable();
        differ.dedup();
        // Start at a different place each round, so every leaf gets its turn.
        let start = self.anti_entropy_turn % differ.len().max(1);
        differ.rotate_left(start);
        differ.truncate(LEAVES_PER_ROUND);
        differ
    }

    fn leaf_keys(&self, leaf: Leaf) -> impl Iterator<Item = &Key> {
        self.by_leaf.get(&leaf).into_iter().flatten()
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

    // ---- client input ------------------------------------------------------

    /// Applies a client write at wall-clock time `now_ms`: `op` reads the
    /// current state and a [`Stamp`] and returns a delta, which is merged,
    /// stored and gossiped. `key` must be loaded ([`Node::needs_key`]).
    pub fn write<E>(
        &mut self,
        key: &str,
        now_ms: u64,
        op: impl FnOnce(&T, Stamp) -> Result<T, E>,
    ) -> Result<T, WriteError<E>> {
        debug_assert!(self.key_loaded(key), "{key} written before it was loaded");
        if !self.accepts_writes() {
            return Err(WriteError::NotAccepting {
                forward_to: self.forward_target(),
            });
        }
        self.now = self.now.max(now_ms);
        let stamp = Stamp {
            node: self.id,
            time: self.clock.now(now_ms),
            holds_own_writes: self.own_writes.contains(key),
        };
        if stamp.time >= self.clock_floor {
            self.clock_floor = stamp.time + Hlc::stamp_of(CLOCK_FLOOR_STEP_MS);
            self.effects.push(Effect::StoreClock(self.clock_floor));
        }
        let empty = T::default();
        let delta =
            op(self.data.get(key).unwrap_or(&empty), stamp).map_err(WriteError::Rejected)?;
        self.own_writes.insert(key.to_owned());
        self.apply(key, &delta, Some(None));
        Ok(self.data.get(key).cloned().unwrap_or_default())
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

    // ---- membership ----------------------------------------------------------

    /// Adds node `id` to the membership. Ids must come from one allocator
    /// (the edge uses a registry object): two nodes' views may both lack a
    /// fresh id, so a node cannot pick one safely on its own.
    ///
    /// Leaves whose replicas now include the newcomer reach it from the
    /// nodes that stop replicating them ([`Message::Transfer`]) and by
    /// anti-entropy from the others.
    pub fn add_node(&mut self, id: NodeId, now: u64) -> Result<(), AddError> {
        if self.members.status(id).is_some() {
            return Err(AddError::Known(id));
        }
        self.now = self.now.max(now);
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
    /// and leaves every hash-ring leaf, which it hands to the leaf's new
    /// replicas ([`Message::Transfer`]) until each has stored it. Then it
    /// sends what remains (the keys every node holds) to the heir. The heir
    /// merges it, folds this node's entries into its own with
    /// [`Crdt::absorb`], stores the result, gossips it, marks this node
    /// Retired and answers [`Message::HandoffDone`]. A lost handoff is
    /// retried by calling this again; the heir's fold is idempotent.
    ///
    /// The heir is chosen from this node's view, which may be stale: it may
    /// have retired already. A retired node never answers, and it folded no
    /// node it did not mark retired first, so a retry sends the handoff to
    /// the node the heir retired into (to the end of that chain), which
    /// folds this node in its place. Returns the node the handoff goes to.
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
        self.move_foreign_leaves(true);
        Ok(successor(&self.members, heir))
    }

    /// Leaves this node holds but no longer replicates.
    fn foreign_leaves(&self) -> Vec<Leaf> {
        self.leaves
            .keys()
            .filter(|l| {
                !self
                    .placement
                    .leaf_replicas(**l, &self.members)
                    .contains(&self.id)
            })
            .copied()
            .collect()
    }

    /// Sends each loaded foreign leaf to its replicas: at once when it is
    /// new or changed, else again when `force` or anti-entropy is due.
    /// A draining node with no foreign leaf left sends the heir its handoff
    /// (when `force`).
    fn move_foreign_leaves(&mut self, force: bool) {
        if !self.is_member() || !self.status().is_live() {
            return;
        }
        let foreign = self.foreign_leaves();
        self.moving.retain(|l, _| foreign.contains(l));
        let retry = self.now >= self.next_anti_entropy || force;
        let mut batches: BTreeMap<NodeId, Vec<LeafStates<T>>> = BTreeMap::new();
        for leaf in foreign.iter().copied() {
            if !self.leaf_loaded(leaf) {
                continue;
            }
            let digest = self.leaves.get(&leaf).copied().unwrap_or(0);
            let targets: BTreeSet<NodeId> = self
                .placement
                .leaf_replicas(leaf, &self.members)
                .into_iter()
                .collect();
            let fresh = self
                .moving
                .get(&leaf)
                .is_none_or(|p| p.digest != digest || p.targets != targets);
            if fresh {
                self.moving.insert(
                    leaf,
                    Pending {
                        digest,
                        waiting: targets.clone(),
                        targets,
                    },
                );
            } else if !retry {
                continue;
            }
            let states: Vec<(Key, T)> = self
                .leaf_keys(leaf)
                .filter_map(|k| self.data.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            for to in &self.moving[&leaf].waiting {
                if !self.partition.separates(self.id, *to) {
                    batches.entry(*to).or_default().push((leaf, states.clone()));
                }
            }
        }
        for (to, leaves) in batches {
            let mut leaves = leaves.into_iter().peekable();
            while leaves.peek().is_some() {
                let batch = leaves.by_ref().take(TRANSFER_BATCH).collect();
                self.send(
                    to,
                    Message::Transfer {
                        members: self.members.clone(),
                        leaves: batch,
                    },
                );
            }
        }
        if force && foreign.is_empty() {
            if let Status::Draining { heir } = self.status() {
                if self.leaves.keys().all(|l| self.leaf_loaded(*l)) {
                    let states = self
                        .data
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let to = successor(&self.members, heir);
                    self.send(
                        to,
                        Message::Handoff {
                            members: self.members.clone(),
                            states,
                        },
                    );
                }
            }
        }
    }

    // ---- peer input ------------------------------------------------------------

    /// Handles a message from peer `from` at wall-clock time `now_ms`. What
    /// [`Node::needs_for`] names must be loaded; what is not is skipped.
    pub fn receive(&mut self, from: NodeId, message: Message<T>, now_ms: u64) {
        self.now = self.now.max(now_ms);
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
                    // The sender keeps what it sends: a key this node does not
                    // replicate (any more) stays with those that do.
                    if !self.key_loaded(key) || !self.replicas(key).contains(&self.id) {
                        continue;
                    }
                    if self.too_far_ahead(state) {
                        self.refused += 1;
                        continue;
                    }
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
                    let leaves = self.shared_leaves(from).into_iter().collect();
                    self.send(
                        from,
                        Message::Summary {
                            members: self.members.clone(),
                            leaves,
                        },
                    );
                }
            }
            Message::Summary { members, leaves } => {
                self.merge_members(&members);
                if members != self.members {
                    // The peer's view is older: the next gossip brings it ours
                    // (a newcomer that missed its addition learns it here).
                    self.outbox.entry(from).or_default().members = true;
                }
                let theirs: BTreeMap<Leaf, u64> = leaves.into_iter().collect();
                let leaves: Vec<(Leaf, Vec<(Key, u64)>)> = self
                    .differing_leaves(&theirs, from)
                    .into_iter()
                    .filter(|l| self.leaf_loaded(*l))
                    .map(|l| {
                        let keys = self
                            .leaf_keys(l)
                            .map(|k| (k.clone(), self.digests.get(k).copied().unwrap_or(0)))
                            .collect();
                        (l, keys)
                    })
                    .collect();
                if !leaves.is_empty() {
                    self.became_busy();
                    self.send(from, Message::Keys { leaves });
                }
            }
            Message::Keys { leaves } => {
                let mut push = Vec::new();
                let mut want = Vec::new();
                for (leaf, theirs) in leaves {
                    if !self.shares(leaf, from) || !self.leaf_loaded(leaf) {
                        continue;
                    }
                    let theirs: BTreeMap<Key, u64> = theirs.into_iter().collect();
                    push.extend(
                        self.leaf_keys(leaf)
                            .filter(|k| theirs.get(*k) != self.digests.get(*k))
                            .cloned(),
                    );
                    want.extend(
                        theirs
                            .iter()
                            .filter(|(k, d)| self.digests.get(*k) != Some(d))
                            .map(|(k, _)| k.clone()),
                    );
                }
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
            Message::Transfer { members, leaves } => {
                self.merge_members(&members);
                let mut stored = Vec::new();
                for (leaf, states) in leaves {
                    let replicas = self.placement.leaf_replicas(leaf, &self.members);
                    if !replicas.contains(&self.id)
                        || states.iter().any(|(k, _)| !self.key_loaded(k))
                    {
                        continue;
                    }
                    for (key, state) in &states {
                        self.apply(key, state, None);
                    }
                    stored.push((leaf, states_digest(&states)));
                }
                if !stored.is_empty() {
                    self.send(from, Message::Transferred { leaves: stored });
                }
            }
            Message::Transferred { leaves } => {
                let mut done = false;
                for (leaf, digest) in leaves {
                    let held = self.leaves.get(&leaf).copied().unwrap_or(0);
                    let Some(p) = self.moving.get_mut(&leaf) else {
                        continue;
                    };
                    if p.digest != digest || held != digest {
                        continue;
                    }
                    p.waiting.remove(&from);
                    if p.waiting.is_empty() {
                        self.moving.remove(&leaf);
                        self.forget_leaf(leaf);
                        done = true;
                    }
                }
                if done && self.moving.is_empty() && self.foreign_leaves().is_empty() {
                    self.move_foreign_leaves(true);
                }
            }
            Message::Reap { round, keys } => {
                let mut refused = Vec::new();
                for (key, digest) in keys {
                    let leaf = self.placement.leaf(&key);
                    let holds_same = if self.is_replica(leaf) {
                        self.key_loaded(&key) && self.digests.get(&key) == Some(&digest)
                    } else {
                        !self.leaves.contains_key(&leaf)
                    };
                    if holds_same {
                        // What is buffered for the key is part of the
                        // tombstone now; sent late, it could outlive it.
                        for b in self.outbox.values_mut() {
                            b.states.remove(&key);
                        }
                    } else {
                        refused.push(key);
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
            Message::Reaped {
                round,
                members,
                refused,
            } => {
                // An answer counts only from a node with this node's view:
                // a node the views differ on could hold the leaf unasked.
                self.merge_members(&members);
                if members != self.members {
                    return;
                }
                // Every Reap of a round to a peer names all its keys that
                // still wait for that peer: the answer covers them.
                let refused: BTreeSet<Key> = refused.into_iter().collect();
                let mut done = Vec::new();
                for (key, r) in &mut self.reaping {
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
            Message::Forget { keys } => {
                for (key, digest) in keys {
                    if self.tombstone_keys.contains(&key) && self.digests.get(&key) == Some(&digest)
                    {
                        self.forget_key(&key);
                    }
                }
            }
        }
    }

    fn too_far_ahead(&self, state: &T) -> bool {
        state
            .latest_stamp()
            .is_some_and(|t| t != 0 && Hlc::check(t, self.now, self.config.max_drift_ms).is_err())
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
                    // Not for a key dropped or turned tombstone since: a
                    // stale delta must not outlive the tombstone's collection.
                    if self.data.get(&key).is_some_and(|s| !s.is_tombstone()) {
                        b.states.entry(key).or_default().merge(&state);
                    }
                }
            }
        }
        // Transfers, handoffs and collections are retried by their owners.
    }

    // ---- timers ------------------------------------------------------------------

    /// Advances the clock to `now`: flushes gossip and subscriber pushes
    /// when their interval has passed; runs anti-entropy, transfer retries,
    /// tombstone collection and heartbeats.
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
            self.move_foreign_leaves(false);
            if !self.moving.is_empty() {
                self.idle_rounds = 0;
            }
            self.reap();
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

    // ---- tombstone collection -------------------------------------------------

    /// Whether this node replicates `leaf`.
    fn is_replica(&self, leaf: Leaf) -> bool {
        self.placement
            .leaf_replicas(leaf, &self.members)
            .contains(&self.id)
    }

    /// Whether this node collects the tombstones of `leaf`: its first replica.
    fn collects(&self, leaf: Leaf) -> bool {
        self.accepts_writes()
            && self.placement.leaf_replicas(leaf, &self.members).first() == Some(&self.id)
    }

    /// One anti-entropy round of collection: starts the second question of
    /// tombstones whose grace has passed, asks about new tombstones, and
    /// asks again the nodes that have not answered.
    fn reap(&mut self) {
        let grace = self.config.tombstone_grace_ms;
        // A tombstone that changed is no longer the one the nodes confirmed.
        let (digests, tombstones) = (&self.digests, &self.tombstone_keys);
        self.reaping
            .retain(|k, r| tombstones.contains(k) && digests.get(k) == Some(&r.digest));
        let peers: BTreeSet<NodeId> = self.peers().collect();
        let second: Vec<Key> = self
            .reaping
            .iter()
            .filter(|(_, r)| {
                r.agreed_at
                    .is_some_and(|t| self.now >= t.saturating_add(grace))
            })
            .filter(|(_, r)| r.waiting.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        let room = REAP_BATCH.saturating_sub(self.reaping.len());
        let first: Vec<Key> = self
            .tombstone_keys
            .iter()
            .filter(|k| !self.reaping.contains_key(*k) && self.collects(self.placement.leaf(k)))
            .take(room)
            .cloned()
            .collect();
        if !second.is_empty() || !first.is_empty() {
            let round = self.clock.now(self.now);
            for key in second {
                let r = self.reaping.get_mut(&key).expect("listed");
                r.round = round;
                r.waiting.clone_from(&peers);
            }
            for key in first {
                let digest = self.digests[&key];
                let r = Reaping {
                    round,
                    digest,
                    waiting: peers.clone(),
                    agreed_at: None,
                };
                self.reaping.insert(key, r);
            }
        }
        let mut asks: BTreeMap<(NodeId, u64), Vec<(Key, u64)>> = BTreeMap::new();
        let mut done = Vec::new();
        for (key, r) in &self.reaping {
            if r.waiting.is_empty() {
                done.push(key.clone());
            }
            for peer in &r.waiting {
                if !self.partition.separates(self.id, *peer) {
                    asks.entry((*peer, r.round))
                        .or_default()
                        .push((key.clone(), r.digest));
                }
            }
        }
        for ((to, round), keys) in asks {
            self.send(to, Message::Reap { round, keys });
        }
        self.agreed(done);
    }

    /// Every live node agreed about `keys` in their current round: after
    /// the first, the grace period starts; after the second, the tombstones
    /// go, and the other replicas are told to drop them.
    fn agreed(&mut self, keys: Vec<Key>) {
        let grace = self.config.tombstone_grace_ms;
        let mut forgets: BTreeMap<NodeId, Vec<(Key, u64)>> = BTreeMap::new();
        for key in keys {
            let Some(r) = self.reaping.get_mut(&key) else {
                continue;
            };
            if self.digests.get(&key) != Some(&r.digest) || !self.tombstone_keys.contains(&key) {
                self.reaping.remove(&key);
                continue;
            }
            match r.agreed_at {
                None => r.agreed_at = Some(self.now),
                Some(t) if self.now >= t.saturating_add(grace) => {
                    let digest = r.digest;
                    for to in self.replicas(&key) {
                        if to != self.id {
                            forgets.entry(to).or_default().push((key.clone(), digest));
                        }
                    }
                    self.forget_key(&key);
                    self.reaped += 1;
                }
                // Agreed once; the second question waits for the grace.
                Some(_) => {}
            }
        }
        for (to, keys) in forgets {
            self.send(to, Message::Forget { keys });
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
        if !self.accepts_writes() || states.iter().any(|(k, _)| !self.key_loaded(k)) {
            // Only an active heir with the keys at hand may absorb; the
            // drain waits for a retry.
            return;
        }
        for (key, state) in states {
            // The drained node gossips no more: pass its state on.
            self.apply(key, state, Some(Some(from)));
        }
        // The drained node wrote only keys it held, and it sent them all.
        let folds: Vec<(Key, T)> = states
            .iter()
            .filter_map(|(k, _)| {
                let v = self.data.get(k)?;
                v.absorb(from, self.id).map(|d| (k.clone(), d))
            })
            .collect();
        for (key, delta) in &folds {
            self.apply(key, delta, Some(Some(from)));
        }
        let mut m = self.members.clone();
        m.set(from, Status::Retired { heir: self.id });
        self.merge_members(&m);
        self.send(from, Message::HandoffDone);
    }

    // ---- state -------------------------------------------------------------------

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
        if let Some(t) = state.latest_stamp() {
            self.clock.observe(t);
        }
        self.became_busy();
        self.set_digest(key, Some(&state));
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
        let leaf = self.placement.leaf(key);
        self.effects.push(Effect::Store {
            key: key.to_owned(),
            leaf,
            state,
            own_writes: self.own_writes.contains(key),
        });
    }

    /// Drops `key` here: its replicas store it, or it was a tombstone every
    /// node confirmed.
    fn forget_key(&mut self, key: &str) {
        if self.data.remove(key).is_none() {
            return;
        }
        self.set_digest(key, None);
        self.loaded_keys.insert(key.to_owned());
        self.unpublished.remove(key);
        self.own_writes.remove(key);
        self.reaping.remove(key);
        for b in self.outbox.values_mut() {
            b.states.remove(key);
        }
        self.effects.push(Effect::Delete {
            key: key.to_owned(),
        });
    }

    fn forget_leaf(&mut self, leaf: Leaf) {
        let keys: Vec<Key> = self.leaf_keys(leaf).cloned().collect();
        for key in keys {
            self.forget_key(&key);
        }
    }

    /// Keeps the key's digest, its leaf's sum and tombstone count and the
    /// indexes in step with its state (`None`: gone), and queues the leaf's
    /// new row for storage.
    fn set_digest(&mut self, key: &str, state: Option<&T>) {
        let leaf = self.placement.leaf(key);
        let was_tombstone = self.tombstone_keys.remove(key);
        let is_tombstone = state.is_some_and(Crdt::is_tombstone);
        if is_tombstone {
            self.tombstone_keys.insert(key.to_owned());
        }
        let count = self.tombstones.get(&leaf).copied().unwrap_or(0);
        let count = match (was_tombstone, is_tombstone) {
            (false, true) => count.saturating_add(1),
            (true, false) => count.saturating_sub(1),
            _ => count,
        };
        if count == 0 {
            self.tombstones.remove(&leaf);
        } else {
            self.tombstones.insert(leaf, count);
        }
        let old = self.digests.remove(key).unwrap_or(0);
        let new = match state {
            Some(s) => {
                let d = key_digest(key, s);
                self.digests.insert(key.to_owned(), d);
                self.by_leaf.entry(leaf).or_default().insert(key.to_owned());
                d
            }
            None => {
                if let Some(keys) = self.by_leaf.get_mut(&leaf) {
                    keys.remove(key);
                    if keys.is_empty() {
                        self.by_leaf.remove(&leaf);
                    }
                }
                0
            }
        };
        if !self.leaves.contains_key(&leaf) {
            // An empty leaf was wholly in memory; it stays so.
            self.loaded_leaves.insert(leaf);
        }
        let sum = self
            .leaves
            .get(&leaf)
            .copied()
            .unwrap_or(0)
            .wrapping_sub(old)
            .wrapping_add(new);
        if sum == 0 {
            self.leaves.remove(&leaf);
        } else {
            self.leaves.insert(leaf, sum);
        }
        let row = LeafRow {
            digest: sum,
            tombstones: count,
        };
        self.effects.push(Effect::StoreLeaf { leaf, row });
    }

    /// Back to the full anti-entropy rate after a change.
    fn became_busy(&mut self) {
        if self.idle_rounds > 0 {
            self.idle_rounds = 0;
            let soon = self.now + self.config.anti_entropy_interval_ms;
            self.next_anti_entropy = self.next_anti_entropy.min(soon);
        }
    }

    fn merge_members(&mut self, other: &Membership) {
        if !self.members.merge(other) {
            return;
        }
        self.became_busy();
        // Collection asks every live node: a new view asks anew.
        self.reaping.clear();
        self.effects
            .push(Effect::StoreMembers(self.members.clone()));
        let peers: Vec<NodeId> = self.peers().collect();
        self.outbox.retain(|id, _| peers.contains(id));
        for peer in peers {
            self.outbox.entry(peer).or_default().members = true;
        }
        // Replicas may have changed: hand off what this node no longer keeps.
        self.move_foreign_leaves(false);
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
            .map(|c| c.value())
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
                stranger.receive(NodeId(0), message, 0);
            }
        }
        assert!(stranger.accepts_writes());
        assert_eq!(add(&mut stranger), Ok(1));
    }

    #[test]
    fn a_restarted_node_stamps_above_its_stored_clock_floor() {
        let stamp_of = |n: &mut Node<PnCounter, AllNodes>, wall: u64| {
            let mut time = 0;
            n.write("k", wall, |s: &PnCounter, at| {
                time = at.time;
                s.add(at.node, 1)
            })
            .unwrap();
            time
        };
        let mut n = node(0);
        let mut disk = crate::cluster::MemoryStore::default();
        // Its clock ran ahead of its wall clock: it observed a later stamp.
        n.clock.observe(Hlc::stamp_of(50_000));
        let before = stamp_of(&mut n, 1_000);
        n.take_effects().iter().for_each(|e| disk.record(e));
        // It restarts where the wall clock reads the same.
        let mut again = node(0);
        disk.restore(&mut again);
        let needs = again.needs_key("k");
        disk.supply(&mut again, needs);
        assert!(stamp_of(&mut again, 1_000) > before);
    }

    #[test]
    fn imported_states_are_merged_and_stored_without_gossip() {
        let mut n = node(0);
        add(&mut n).unwrap();
        n.take_effects();
        let old = PnCounter::default().add(NodeId(1), 5).unwrap();
        n.import(vec![("k".into(), old.clone()), ("j".into(), old)]);
        assert_eq!(n.read("k").map(PnCounter::value), Some(6));
        let effects = n.take_effects();
        let stored: Vec<&str> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Store { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(stored, ["k", "j"]);
        assert!(!effects.iter().any(|e| matches!(e, Effect::Send { .. })));
        n.tick(10_000);
        let gossiped_j = n.take_effects().into_iter().any(|e| {
            matches!(e, Effect::Send { message: Message::Gossip { states, .. }, .. }
                if states.iter().any(|(k, _)| k == "j"))
        });
        assert!(!gossiped_j, "an import is not gossiped");
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
                    Ok::<_, ()>(Value::Register(reg.write(stamp, &seen, payload)))
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
                    nodes[to.0 as usize].receive(from, message, 1_000 + round * 250);
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

    /// A small cluster of `Node<Value, ByKind>` with a disk per node, driven
    /// the way the edge host drives one: needs loaded before every input.
    struct Ring {
        nodes: BTreeMap<NodeId, Node<Value, ByKind>>,
        disks: BTreeMap<NodeId, crate::cluster::MemoryStore<Value>>,
        now: u64,
    }

    use crate::cluster::ByKind;
    use crate::crdt::{CausalContext, Kind, MvRegister, Payload, Value};

    impl Ring {
        fn new(n: u32) -> Self {
            let config = Config {
                initial_nodes: n,
                ..Config::default()
            };
            let nodes = (0..n)
                .map(|i| {
                    (
                        NodeId(i),
                        Node::new(NodeId(i), config.clone(), ByKind::new(3, 64)),
                    )
                })
                .collect();
            let disks = (0..n).map(|i| (NodeId(i), Default::default())).collect();
            Ring {
                nodes,
                disks,
                now: 1_000_000,
            }
        }

        fn node(&mut self, id: NodeId) -> &mut Node<Value, ByKind> {
            self.nodes.get_mut(&id).expect("a node")
        }

        /// Delivers every message (dropping those `lose` picks) until quiet.
        fn run(&mut self, mut lose: impl FnMut(NodeId, &Message<Value>) -> bool) {
            let mut queue = Vec::new();
            loop {
                for (id, n) in &mut self.nodes {
                    let disk = self.disks.get_mut(id).expect("a disk");
                    loop {
                        let wanted = n.wanted();
                        if wanted.is_empty() {
                            break;
                        }
                        disk.supply(n, wanted);
                        n.resume();
                    }
                    for effect in n.take_effects() {
                        disk.record(&effect);
                        if let Effect::Send { to, message } = effect {
                            queue.push((*id, to, message));
                        }
                    }
                }
                let Some((from, to, message)) = queue.pop() else {
                    break;
                };
                if lose(from, &message) {
                    continue;
                }
                let now = self.now;
                if let (Some(n), Some(disk)) = (self.nodes.get_mut(&to), self.disks.get(&to)) {
                    disk.supply(n, n.needs_for(from, &message));
                    n.receive(from, message, now);
                }
            }
        }

        /// Advances time by `ms` in gossip-interval ticks, delivering everything.
        fn pass(&mut self, ms: u64) {
            let end = self.now + ms;
            while self.now < end {
                self.now += 250;
                let now = self.now;
                self.nodes.values_mut().for_each(|n| n.tick(now));
                self.run(|_, _| false);
            }
        }

        fn put(&mut self, at: NodeId, key: &str, text: &str, seen: &CausalContext) {
            let now = self.now;
            let disk = self.disks.get(&at).expect("a disk").clone();
            let n = self.node(at);
            disk.supply(n, n.needs_key(key));
            n.write(key, now, |v: &Value, stamp| {
                let reg = v.as_register().cloned().unwrap_or_default();
                Ok::<_, ()>(Value::Register(reg.write(
                    stamp,
                    seen,
                    Payload::Text(text.into()),
                )))
            })
            .unwrap();
        }

        /// The stored register of `key` at each node that stores one.
        fn stored(&self, key: &str) -> BTreeMap<NodeId, MvRegister> {
            self.disks
                .iter()
                .filter_map(|(id, d)| {
                    d.states()
                        .find(|(k, _)| *k == key)
                        .and_then(|(_, v)| v.as_register().cloned())
                        .map(|r| (*id, r))
                })
                .collect()
        }

        fn texts(reg: &MvRegister) -> Vec<String> {
            reg.siblings()
                .map(|(_, v)| match &v.payload {
                    Payload::Text(t) => t.clone(),
                    Payload::Bytes(_) => String::new(),
                })
                .collect()
        }
    }

    fn kv(i: usize) -> String {
        Kind::Register.key(&format!("k{i}"))
    }

    /// Growing 4 -> 6 and shrinking to 3 with a third of the transfers
    /// lost: every key ends stored at exactly its replicas, with its value.
    #[test]
    fn resizes_hand_keys_to_their_new_replicas_before_letting_go() {
        let mut ring = Ring::new(4);
        let none = CausalContext::default();
        for i in 0..60 {
            let at = ring.node(NodeId(0)).replicas(&kv(i))[i % 3];
            ring.put(at, &kv(i), &format!("v{i}"), &none);
        }
        ring.pass(1_000);
        for new in [4, 5] {
            let config = Config {
                initial_nodes: 4,
                ..Config::default()
            };
            ring.nodes.insert(
                NodeId(new),
                Node::new(NodeId(new), config, ByKind::new(3, 64)),
            );
            ring.disks.insert(NodeId(new), Default::default());
            let now = ring.now;
            ring.node(NodeId(0)).add_node(NodeId(new), now).unwrap();
            let mut turn = 0;
            ring.run(|_, m| {
                turn += 1;
                matches!(m, Message::Transfer { .. }) && turn % 3 == 0
            });
            ring.pass(20_000);
        }
        for leaving in [1, 3, 5] {
            ring.node(NodeId(leaving)).begin_retire().unwrap();
            ring.pass(20_000);
            while !matches!(ring.node(NodeId(leaving)).status(), Status::Retired { .. }) {
                ring.node(NodeId(leaving)).begin_retire().unwrap();
                ring.pass(2_000);
            }
        }
        ring.pass(30_000);
        let members = ring.node(NodeId(0)).members().clone();
        assert_eq!(
            members.active().collect::<Vec<_>>(),
            [NodeId(0), NodeId(2), NodeId(4)]
        );
        for i in 0..60 {
            let stored = ring.stored(&kv(i));
            let holders: Vec<NodeId> = stored.keys().copied().collect();
            let mut replicas = ByKind::new(3, 64).replicas(&kv(i), &members);
            replicas.sort();
            assert_eq!(holders, replicas, "{} stored at", kv(i));
            for reg in stored.values() {
                assert_eq!(Ring::texts(reg), [format!("v{i}")]);
            }
        }
    }

    /// A delete leaves a tombstone at every replica, repaired by
    /// anti-entropy where gossip lost it; a stale copy of the deleted value
    /// never comes back, and a write from a context read before the delete
    /// is not covered by the tombstone.
    #[test]
    fn a_delete_reaches_every_replica_and_the_deleted_value_stays_gone() {
        let mut ring = Ring::new(5);
        let key = kv(7);
        let replicas = ring.node(NodeId(0)).replicas(&key);
        let none = CausalContext::default();
        ring.put(replicas[1], &key, "old", &none);
        ring.pass(1_000);
        let read = ring.stored(&key)[&replicas[2]].clone();
        let stale = Message::Gossip {
            members: None,
            states: vec![(key.clone(), Value::Register(read.clone()))],
            want: Vec::new(),
        };
        let at = replicas[2];
        let now = ring.now;
        ring.node(at)
            .write(&key, now, |v: &Value, _| {
                let reg = v.as_register().cloned().unwrap_or_default();
                Ok::<_, ()>(Value::Register(reg.delete(read.context())))
            })
            .unwrap();
        // Gossip of the delete is lost: anti-entropy must carry it.
        ring.nodes.values_mut().for_each(|n| n.tick(now + 250));
        ring.run(|_, m| matches!(m, Message::Gossip { want, .. } if want.is_empty()));
        ring.pass(20_000);
        let stored = ring.stored(&key);
        assert_eq!(stored.len(), 3, "a tombstone at every replica");
        assert!(stored.values().all(MvRegister::is_empty), "{stored:?}");
        for to in &replicas {
            ring.node(*to).receive(replicas[1], stale.clone(), now);
        }
        ring.pass(2_000);
        assert!(ring.stored(&key).values().all(MvRegister::is_empty));
        ring.put(replicas[1], &key, "new", read.context());
        ring.pass(2_000);
        for reg in ring.stored(&key).values() {
            assert_eq!(Ring::texts(reg), ["new"]);
        }
    }

    /// A node restarted from its disk starts with leaf digests only and
    /// reads keys as inputs need them; anti-entropy still repairs it.
    #[test]
    fn a_tombstone_goes_once_every_node_agreed_twice_a_grace_apart() {
        let mut ring = Ring::new(5);
        let key = kv(3);
        let replicas = ring.node(NodeId(0)).replicas(&key);
        let outsider = (0..5).map(NodeId).find(|n| !replicas.contains(n)).unwrap();
        let (first, grace) = (replicas[0], Config::default().tombstone_grace_ms);
        ring.put(replicas[1], &key, "old", &CausalContext::default());
        ring.pass(1_000);
        let seen = ring.stored(&key)[&first].context().clone();
        let now = ring.now;
        ring.node(first)
            .write(&key, now, |v: &Value, _| {
                let reg = v.as_register().cloned().unwrap_or_default();
                Ok::<_, ()>(Value::Register(reg.delete(&seen)))
            })
            .unwrap();
        // A node that is no replica must answer too: it could hold the key.
        for _ in 0..(3 * grace / 250) {
            ring.now += 250;
            let now = ring.now;
            ring.nodes.values_mut().for_each(|n| n.tick(now));
            ring.run(|from, m| from == outsider && matches!(m, Message::Reaped { .. }));
        }
        assert_eq!(ring.stored(&key).len(), 3, "collected without the outsider");
        assert!(ring.node(first).reaping[&key].agreed_at.is_none());
        // Once it answers: the first round ends, and nothing goes for a grace.
        let mut agreed = None;
        while agreed.is_none() {
            ring.pass(250);
            agreed = ring.node(first).reaping.get(&key).and_then(|r| r.agreed_at);
        }
        let agreed = agreed.unwrap();
        while ring.now + 250 < agreed + grace {
            ring.pass(250);
            assert_eq!(ring.stored(&key).len(), 3, "collected before the grace");
        }
        ring.pass(5 * Config::default().anti_entropy_interval_ms);
        assert_eq!(ring.stored(&key), BTreeMap::new(), "collected everywhere");
        assert_eq!(ring.node(first).tombstone_counts(), (0, 1));
        // The key takes writes again, numbered above its forgotten dots.
        ring.put(replicas[2], &key, "new", &seen);
        ring.pass(2_000);
        for reg in ring.stored(&key).values() {
            assert_eq!(Ring::texts(reg), ["new"]);
        }
    }

    #[test]
    fn a_restarted_node_loads_only_what_inputs_need() {
        let mut ring = Ring::new(3);
        let none = CausalContext::default();
        for i in 0..40 {
            ring.put(NodeId(0), &kv(i), "x", &none);
        }
        ring.pass(1_000);
        let config = Config {
            initial_nodes: 3,
            ..Config::default()
        };
        let mut again = Node::new(NodeId(1), config, ByKind::new(3, 64));
        ring.disks[&NodeId(1)].restore(&mut again);
        assert_eq!(again.keys().count(), 0);
        assert_eq!(
            again.root_for(NodeId(0)),
            ring.node(NodeId(0)).root_for(NodeId(1))
        );
        ring.nodes.insert(NodeId(1), again);
        // Writes made while it was away reach it by anti-entropy.
        for i in 0..5 {
            ring.put(
                NodeId(0),
                &kv(i),
                "y",
                &ring.stored(&kv(i))[&NodeId(0)].context().clone(),
            );
        }
        ring.pass(10_000);
        let loaded = ring.node(NodeId(1)).keys().count();
        assert!(loaded < 40, "loaded {loaded} keys, not all 40");
        for i in 0..5 {
            assert_eq!(Ring::texts(&ring.stored(&kv(i))[&NodeId(1)]), ["y"]);
        }
    }

    #[test]
    fn gossip_needs_only_the_keys_this_node_replicates_in_the_frames_view() {
        let config = Config {
            initial_nodes: 4,
            ..Config::default()
        };
        let me = NodeId(1);
        let mut n: Node<Value, ByKind> = Node::new(me, config, ByKind::new(3, 64));
        // Restarted with data in every key's leaf: keys are read as inputs
        // need them.
        let keys: Vec<Key> = (0..40).map(kv).collect();
        let row = LeafRow {
            digest: 1,
            tombstones: 0,
        };
        let leaves: Vec<(Leaf, LeafRow)> = keys.iter().map(|k| (n.leaf(k), row)).collect();
        n.restore(None, None, None, leaves);
        let gossip = |members| Message::Gossip {
            members,
            states: keys.iter().map(|k| (k.clone(), Value::Empty)).collect(),
            want: Vec::new(),
        };
        let replicated_in = |view: &Membership| {
            let mut ks: Vec<Key> = keys
                .iter()
                .filter(|k| ByKind::new(3, 64).replicas(k, view).contains(&me))
                .cloned()
                .collect();
            ks.sort();
            ks
        };
        let mine = replicated_in(&Membership::initial(4));
        assert!(!mine.is_empty() && mine.len() < keys.len());
        assert_eq!(n.needs_for(NodeId(0), &gossip(None)).keys, mine);
        // In the frame's view node 0 drains: this node replicates more.
        let mut drained = Membership::initial(4);
        drained.set(NodeId(0), Status::Draining { heir: NodeId(2) });
        let more = replicated_in(&drained);
        assert!(more.len() > mine.len());
        assert_eq!(n.needs_for(NodeId(0), &gossip(Some(drained))).keys, more);
    }

    #[test]
    fn gossip_stamped_beyond_the_drift_is_refused() {
        let mut a = Node::new(NodeId(0), Config::default(), ByKind::new(3, 64));
        let far = crate::crdt::Hlc::stamp_of(10_000_000);
        let at = Stamp {
            node: NodeId(1),
            time: far,
            holds_own_writes: true,
        };
        let reg = MvRegister::default().write(
            at,
            &CausalContext::default(),
            Payload::Text("future".into()),
        );
        let message = Message::Gossip {
            members: None,
            states: vec![(kv(1), Value::Register(reg))],
            want: Vec::new(),
        };
        a.receive(NodeId(1), message.clone(), 1_000);
        assert_eq!((a.read(&kv(1)), a.refused()), (None, 1));
        a.receive(NodeId(1), message, 10_000_000);
        assert!(a.read(&kv(1)).is_some(), "accepted once the clock is there");
    }
}
