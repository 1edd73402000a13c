//! One replica node: events in, effects out. A facade: the state of each
//! concern lives in its own module ([`table`](super::table) of objects and
//! rows, [`leaves`](super::leaves), [`gossip`](super::gossip) outboxes,
//! [`repair`](super::repair) (anti-entropy), [`transfer`](super::transfer)
//! of leaves on resize, [`retire`](super::retire), [`reap`](super::reap)
//! (tombstone collection) and [`publish`](super::publish)); this file
//! holds them together and routes each input to them.

use super::clock::Clock;
use super::gossip::Outboxes;
use super::kind::{Catalog, Policy, RowType};
use super::leaves::{LeafRow, Leaves};
use super::needs::{ObjectMeta, RowInfo};
use super::publish::Publisher;
use super::reap::Reaper;
use super::repair::Repair;
use super::table::Table;
use super::transfer::Transfers;
use super::{fanout, Leaf, Membership, Message, ObjectId, Partition, Placement, RowKey, Status};
use crate::{NodeId, NodeSet};

/// Timing and sizes of a node, in milliseconds and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How many nodes the cluster starts with: `node-0` … `node-{n-1}`.
    pub initial_nodes: u32,
    /// At most one gossip batch per peer, and one subscriber push per
    /// object, per this interval.
    pub gossip_interval_ms: u64,
    /// How often the node compares digests with one peer (and retries
    /// transfers and collections).
    pub anti_entropy_interval_ms: u64,
    /// How often subscribers get a heartbeat.
    pub heartbeat_interval_ms: u64,
    /// Gossiped rows stamped further ahead of this node's clock are refused.
    pub max_drift_ms: u64,
    /// How long a tombstone waits, once every node has confirmed it, before
    /// every node is asked again and it is dropped: longer than any message
    /// between nodes may take (older frames are refused).
    pub tombstone_grace_ms: u64,
    /// Copies of each ring object.
    pub replicas: usize,
    /// Points of each node on the ring.
    pub vnodes: u32,
    /// Most row bytes one message carries: larger batches go in pages.
    pub frame_bytes: usize,
    /// Most peers one gossip flush sends to; larger groups relay
    /// ([`fanout`](super::fanout)).
    pub gossip_fanout: usize,
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
            replicas: 3,
            vnodes: 64,
            frame_bytes: 1 << 20,
            gossip_fanout: 8,
        }
    }
}

impl Config {
    /// The oldest a peer frame may be: half the tombstone grace.
    pub fn max_frame_age(&self) -> u64 {
        self.tombstone_grace_ms / 2
    }
}

/// Something the adapter must do for the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Deliver `message` to peer `to`; report failure with [`Node::send_failed`].
    Send {
        /// the peer
        to: NodeId,
        /// the message
        message: Message,
    },
    /// Persist a row's state, before acknowledging what caused it.
    StoreRow {
        /// its object
        object: ObjectId,
        /// the row
        row: RowKey,
        /// its whole state
        state: Vec<u8>,
        /// its digest and flags
        info: RowInfo,
    },
    /// Remove a row: it was handed off, or it was a tombstone every node confirmed.
    DeleteRow {
        /// its object
        object: ObjectId,
        /// the row
        row: RowKey,
    },
    /// Persist an object's metadata.
    StoreObject {
        /// the object
        object: ObjectId,
        /// what the node keeps of it besides its rows
        meta: ObjectMeta,
    },
    /// Remove an object that holds no rows and no log.
    DeleteObject {
        /// the object
        object: ObjectId,
    },
    /// Persist a leaf's digest and tombstone count (empty: remove it).
    StoreLeaf {
        /// the leaf
        leaf: Leaf,
        /// what the node knows of it without loading it
        row: LeafRow,
    },
    /// Append an entry to an object's log.
    Append {
        /// the object
        object: ObjectId,
        /// its number in this node's sequence for the object
        seq: u64,
        /// the kind's bytes
        entry: Vec<u8>,
    },
    /// Drop an object's log entries numbered below `below`.
    TrimLog {
        /// the object
        object: ObjectId,
        /// the first entry kept
        below: u64,
    },
    /// Persist the membership.
    StoreMembers(Membership),
    /// Persist the partition.
    StorePartition(Partition),
    /// Persist a floor for the node's clock.
    StoreClock(u64),
    /// Persist the objects with a wake asked for, and whether each reads
    /// every row: a restarted node wakes them at once.
    StoreWakes(Vec<(ObjectId, bool)>),
    /// Persist the peers owed a check ([`super::repair`]'s unconfirmed
    /// peers): a restarted node probes them, so a write it acknowledged
    /// but had not gossiped yet still reaches them.
    StoreUnconfirmed(NodeSet),
    /// Push changed rows of `object` to its subscribers.
    Publish {
        /// the object
        object: ObjectId,
        /// the rows that changed since the last push, with their states
        rows: Vec<(RowKey, Vec<u8>)>,
    },
    /// Send subscribers a heartbeat.
    Heartbeat,
}

impl Effect {
    /// Whether storage performs this effect.
    pub fn is_storage(&self) -> bool {
        !matches!(
            self,
            Effect::Send { .. } | Effect::Publish { .. } | Effect::Heartbeat
        )
    }
}

/// Why a retirement could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

impl std::fmt::Display for RetireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetireError::AlreadyRetired => write!(f, "the node is already retired"),
            RetireError::Busy(other) => write!(f, "{other} is retiring: retire one node at a time"),
            RetireError::LastNode => write!(f, "no other active node could absorb it"),
            RetireError::NotMember => write!(f, "the node is not a member yet"),
        }
    }
}

/// Why a node could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddError {
    /// The id is already in the membership (ids are never reused).
    Known(NodeId),
}

/// A replica node.
pub struct Node {
    pub(super) id: NodeId,
    pub(super) config: Config,
    pub(super) catalog: &'static dyn Catalog,
    pub(super) placement: Placement,
    pub(super) members: Membership,
    pub(super) partition: Partition,
    pub(super) clock: Clock,
    pub(super) table: Table,
    pub(super) leaves: Leaves,
    pub(super) outbox: Outboxes,
    pub(super) repair: Repair,
    pub(super) transfers: Transfers,
    pub(super) reaper: Reaper,
    pub(super) publisher: Publisher,
    pub(super) wakes: super::wake::Wakes,
    pub(super) effects: Vec<Effect>,
    /// The latest wall-clock time an input brought.
    pub(super) now: u64,
    /// Gossiped rows refused for stamps beyond the drift.
    pub(super) refused: u64,
    /// What this input may still send for transfers, handoffs and
    /// collection ([`Node::spend`]).
    pub(super) requests_left: usize,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("members", &self.members)
            .field("objects", &self.table.len())
            .field("leaves", &self.leaves.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::Known(id) => write!(f, "{id} is a member already (ids are never reused)"),
        }
    }
}

impl Node {
    /// A node with no data, knowing only the initial members.
    pub fn new(id: NodeId, config: Config, catalog: &'static dyn Catalog) -> Self {
        Node {
            id,
            members: Membership::initial(config.initial_nodes),
            requests_left: round_budget(&config),
            placement: Placement::new(config.replicas, config.vnodes),
            config,
            catalog,
            partition: Partition::default(),
            clock: Clock::default(),
            table: Table::default(),
            leaves: Leaves::default(),
            outbox: Outboxes::default(),
            repair: Repair::default(),
            transfers: Transfers::default(),
            reaper: Reaper::default(),
            publisher: Publisher::default(),
            wakes: Default::default(),
            effects: Vec::new(),
            now: 0,
            refused: 0,
        }
    }

    /// Restores stored membership, partition, clock floor and leaf rows,
    /// with no effects. Objects come later, as inputs need them.
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
            self.clock.restore(floor);
        }
        self.table.forget_all();
        for (leaf, row) in leaves {
            self.leaves.restore(leaf, row);
        }
    }

    /// Asks again for the wakes a stopped node had asked for, at once.
    pub fn restore_wakes(&mut self, wakes: Vec<(ObjectId, bool)>) {
        self.wakes.restore(wakes);
    }

    /// Takes up the checks a stopped node owed its peers.
    pub fn restore_unconfirmed(&mut self, peers: NodeSet) {
        self.repair.unconfirmed = peers;
    }

    /// `peers` are owed a check; stored when that is news, in the batch
    /// of the change that caused it.
    pub(super) fn owe_check(&mut self, peers: impl IntoIterator<Item = NodeId>) {
        let mut grew = false;
        for peer in peers {
            grew |= peer != self.id && self.repair.unconfirmed.insert(peer);
        }
        if grew {
            let unconfirmed = self.repair.unconfirmed.clone();
            self.effects.push(Effect::StoreUnconfirmed(unconfirmed));
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's settings.
    pub fn config(&self) -> &Config {
        &self.config
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

    /// The row type of `object`'s kind.
    pub(super) fn row_type(&self, object: &ObjectId) -> Option<&'static dyn RowType> {
        self.catalog.row_type(object.prefix())
    }

    /// The keys of the local rows of `object`'s kind.
    pub(super) fn locals(&self, object: &ObjectId) -> &'static [&'static str] {
        self.row_type(object).map_or(&[], |k| k.locals())
    }

    /// Whether `row` of `object` is a local row ([`RowType::locals`]).
    pub fn is_local(&self, object: &ObjectId, row: &str) -> bool {
        self.locals(object).contains(&row)
    }

    /// Where `object`'s kind places it; `None` for an unknown kind.
    pub fn policy(&self, object: &ObjectId) -> Option<Policy> {
        self.row_type(object).map(RowType::policy)
    }

    /// The leaf of `object` (of a known kind).
    pub fn leaf(&self, object: &ObjectId) -> Leaf {
        let policy = self.policy(object).unwrap_or(Policy::Everywhere);
        self.placement.leaf(object, policy)
    }

    /// The replicas of `object` in this node's view, in preference order.
    pub fn replicas(&self, object: &ObjectId) -> Vec<NodeId> {
        self.placement
            .leaf_replicas(self.leaf(object), &self.members)
    }

    /// Whether this node replicates `leaf`.
    pub(super) fn is_replica(&self, leaf: Leaf) -> bool {
        self.placement
            .leaf_replicas(leaf, &self.members)
            .contains(&self.id)
    }

    /// Whether `object`'s metadata (or absence) is in memory.
    pub(super) fn knows_object(&self, object: &ObjectId) -> bool {
        self.table.knows(object, self.leaf(object))
    }

    /// Whether every row of `object` is in memory, with its digest.
    pub(super) fn knows_rows(&self, object: &ObjectId) -> bool {
        let leaf = self.leaf(object);
        self.table.knows_rows(object, leaf, self.leaves.has(leaf))
    }

    /// Whether the state (or absence) of a row is in memory, with its
    /// object's metadata: a change rewrites both.
    pub(super) fn knows_row(&self, object: &ObjectId, row: &str) -> bool {
        if self.is_local(object, row) {
            return self.table.knows_local(object, row);
        }
        let leaf = self.leaf(object);
        self.knows_object(object)
            && self
                .table
                .knows_row(object, row, leaf, self.leaves.has(leaf))
    }

    /// Whether every object's metadata in `leaf` is in memory.
    pub(super) fn knows_leaf(&self, leaf: Leaf) -> bool {
        self.table.knows_leaf(leaf, self.leaves.has(leaf))
    }

    /// The rows of `object` in memory, with their states when loaded.
    pub fn rows(&self, object: &ObjectId) -> impl Iterator<Item = (&RowKey, Option<&[u8]>)> {
        self.table
            .get(object)
            .into_iter()
            .flat_map(|o| o.rows.iter().map(|(k, s)| (k, s.state.as_deref())))
    }

    /// The state of one row in memory, a local one included.
    pub fn row(&self, object: &ObjectId, row: &str) -> Option<&[u8]> {
        match self.is_local(object, row) {
            true => self.table.local(object, row),
            false => self.table.state(object, row),
        }
    }

    /// The metadata of an object in memory.
    pub fn object(&self, object: &ObjectId) -> Option<ObjectMeta> {
        self.table
            .meta(object)
            .filter(|m| m.rows > 0 || m.log_next > 0)
    }

    /// The objects in memory that hold rows.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectId> {
        self.table.objects().map(|(id, _)| id)
    }

    /// How many leaves hold data here, and how many of them are being
    /// handed to other replicas.
    pub fn leaf_counts(&self) -> (usize, usize) {
        (self.leaves.len(), self.transfers.len())
    }

    /// Gossiped rows refused so far for stamps beyond the drift.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Rows this node has pushed or asked for by anti-entropy since it started.
    pub fn repaired_rows(&self) -> u64 {
        self.repair.repaired_rows
    }

    /// How many stored rows are tombstones, and how many this node has
    /// collected since it started.
    pub fn tombstone_counts(&self) -> (u64, u64) {
        (self.leaves.tombstones(), self.reaper.reaped)
    }

    /// Takes the queued effects, in the order they arose: the end of an
    /// input, so the next starts with the whole request budget.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        self.requests_left = round_budget(&self.config);
        if let Some(wakes) = self.wakes.changed() {
            self.effects.push(Effect::StoreWakes(wakes));
        }
        std::mem::take(&mut self.effects)
    }

    /// When [`Node::tick`] next has work, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.is_member() || !self.status().is_live() {
            return None;
        }
        let mut at = self.repair.next_round;
        if self.publisher.pending() || self.outbox.pending(self.id, &self.partition) {
            at = at.min(self.outbox.next_flush);
        }
        if let Some(beat) = self.publisher.next_heartbeat() {
            at = at.min(beat);
        }
        if let Some(wake) = self.wakes.next() {
            at = at.min(wake);
        }
        Some(at)
    }

    /// Advances the clock to `now`: flushes gossip and subscriber pushes
    /// when their interval has passed; runs anti-entropy, transfer
    /// retries, tombstone collection and heartbeats.
    pub fn tick(&mut self, now: u64) {
        self.now = self.now.max(now);
        if !self.is_member() || !self.status().is_live() {
            return;
        }
        // A tick sends at most `gossip_fanout + 2` requests: a flush (one
        // frame to each of at most `gossip_fanout` peers) and a round (a
        // probe, then transfers, handoffs and collection) share them. A
        // round with too little room left waits for the next tick, which
        // runs it first.
        let flush_due = now >= self.outbox.next_flush
            && (self.publisher.pending() || self.outbox.pending(self.id, &self.partition));
        let round_due = now >= self.repair.next_round;
        let round_first = round_due && self.repair.waited;
        let mut sent = 0;
        if flush_due && !round_first {
            let before = self.sends_queued();
            self.flush_gossip();
            self.flush_publish();
            self.outbox.next_flush = now + self.config.gossip_interval_ms;
            sent = self.sends_queued() - before;
        }
        let room = fanout::invocation_budget(self.config.gossip_fanout).saturating_sub(sent);
        self.repair.waited = round_due && !round_first && room < 3;
        if round_due && !self.repair.waited {
            self.requests_left = round_budget(&self.config).min(room - 1);
            self.anti_entropy_round();
            self.move_leaves(false);
            self.reap_round();
            if !self.transfers.is_empty() || self.reaper.asking() {
                self.repair.idle_rounds = 0;
            }
            self.repair
                .schedule(now, self.config.anti_entropy_interval_ms);
        }
        if self
            .publisher
            .heartbeat_due(now, self.config.heartbeat_interval_ms)
        {
            self.effects.push(Effect::Heartbeat);
        }
        self.wake_due(now);
    }

    /// Handles a message from peer `from` at wall-clock time `now`. What
    /// [`Node::needs_for`] names must be loaded; what is not is skipped.
    pub fn receive(&mut self, from: NodeId, message: Message, now: u64) {
        self.now = self.now.max(now);
        if !self.status().is_live() || self.cut_off(from, &message) {
            return;
        }
        match message {
            Message::Gossip {
                members,
                rows,
                want,
            } => self.on_gossip(from, members, rows, want),
            Message::Digest { root } => self.on_digest(from, root),
            Message::Buckets { members, buckets } => self.on_buckets(from, &members, &buckets),
            Message::Leaves { buckets, leaves } => self.on_leaves(from, &buckets, &leaves),
            Message::Objects { leaves } => self.on_objects(from, &leaves),
            Message::Rows { ranges } => self.on_rows(from, &ranges),
            Message::Transfer {
                members,
                leaf,
                page,
                rows,
            } => self.on_transfer(from, &members, leaf, page, rows),
            Message::Transferred { pages } => self.on_transferred(from, &pages),
            Message::Handoff { members } => self.on_handoff(from, &members),
            Message::HandoffDone => self.on_handoff_done(from),
            Message::Same => self.on_same(from),
            Message::Reap { round, rows } => self.on_reap(from, round, rows),
            Message::Reaped {
                round,
                members,
                refused,
            } => self.on_reaped(from, round, &members, refused),
            Message::Forget { rows } => self.on_forget(rows),
            Message::Sync { payloads } => {
                for (object, payload) in payloads {
                    self.on_sync(from, &object, &payload);
                }
            }
        }
    }

    /// Whether this node's partition keeps `message` from `from` out.
    pub fn cut_off(&self, from: NodeId, message: &Message) -> bool {
        message.is_gossip() && self.partition.separates(self.id, from)
    }

    /// Reports that `message` to `to` was not delivered.
    pub fn send_failed(&mut self, to: NodeId, message: Message) {
        match message {
            Message::Gossip { members, rows, .. } => {
                self.gossip_failed(to, members.is_some(), rows);
            }
            Message::Forget { rows } => self.reaper.forget_failed(to, rows),
            // Transfers, handoffs, questions and repair are retried by
            // their owners.
            _ => {}
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
        let members = Some(self.members.clone());
        self.send(
            id,
            Message::Gossip {
                members,
                rows: Vec::new(),
                want: Vec::new(),
            },
        );
        self.outbox.sent_members(id);
        let root = self.root_for(id);
        self.send(id, Message::Digest { root });
        self.repair.next_round = self.repair.next_round.min(now);
        Ok(())
    }

    /// Joins a membership in; a change restarts collections, may move
    /// leaves, and is gossiped on.
    pub(super) fn merge_members(&mut self, other: &Membership) {
        self.merge_members_from(other, None);
    }

    /// Like [`Node::merge_members`], for a membership gossiped by `from`:
    /// the news goes on down the relay tree, not to every finger.
    pub(super) fn merge_members_from(&mut self, other: &Membership, from: Option<NodeId>) {
        let before = self.members.clone();
        if !self.members.merge(other) {
            return;
        }
        self.became_busy();
        self.owe_newcomers(&before);
        // Collection asks every live node: a new view asks anew.
        self.reaper.restart();
        self.effects
            .push(Effect::StoreMembers(self.members.clone()));
        // The news goes to this node's fingers among the live nodes, or
        // on down the relay tree from the node that told it.
        let peers: Vec<NodeId> = self.peers().collect();
        let fanout = self.config.gossip_fanout;
        let tell = match from {
            Some(from) => {
                let group: Vec<NodeId> = peers.iter().copied().chain([self.id]).collect();
                fanout::relay_targets(self.id, from, &group, fanout)
            }
            None => fanout::fingers(self.id, &peers, fanout),
        };
        self.outbox.set_peers(&peers, &tell);
        // Replicas may have changed: hand off what this node no longer keeps.
        self.move_leaves(false);
    }

    /// Each replica that joined a ring leaf this node keeps is owed a
    /// check: what a lost frame kept from the replica it replaced, no
    /// handoff brings, and probes drawn at random find one pair in `n`.
    fn owe_newcomers(&mut self, before: &Membership) {
        let mut owed = NodeSet::new();
        for (leaf, _) in self.leaves.iter() {
            if Placement::leaf_policy(leaf) != Policy::Ring {
                continue;
            }
            let now = self.placement.leaf_replicas(leaf, &self.members);
            if !now.contains(&self.id) {
                continue;
            }
            let old = self.placement.leaf_replicas(leaf, before);
            owed.extend(now.into_iter().filter(|n| !old.contains(n)));
        }
        self.owe_check(owed);
    }

    /// Back to the full anti-entropy rate after a change.
    pub(super) fn became_busy(&mut self) {
        let soon = self.now + self.config.anti_entropy_interval_ms;
        self.repair.busy(soon);
    }

    /// The live members other than this node.
    pub(super) fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.live().filter(move |n| *n != self.id)
    }

    /// Takes one request of the round's budget, if any is left.
    pub(super) fn spend(&mut self) -> bool {
        let left = self.requests_left > 0;
        self.requests_left = self.requests_left.saturating_sub(1);
        left
    }

    /// How many messages wait to be sent.
    fn sends_queued(&self) -> usize {
        self.effects
            .iter()
            .filter(|e| matches!(e, Effect::Send { .. }))
            .count()
    }

    pub(super) fn send(&mut self, to: NodeId, message: Message) {
        self.effects.push(Effect::Send { to, message });
    }
}

/// What one anti-entropy round may send for transfers, handoffs and
/// collection: the fanout less the probe's follow-ups beyond it.
pub(super) fn round_budget(config: &Config) -> usize {
    config.gossip_fanout.saturating_sub(2).max(1)
}

/// The node that absorbs a draining node whose chosen heir is `heir`:
/// `heir`, or if `heir` has retired, the node it retired into, and so on.
///
/// A node folds others only while active, and marks each one retired in its
/// membership before it drains itself, so a membership that shows `heir`
/// retired shows every node `heir` folded as retired too: a node still
/// draining towards a retired heir was never folded, and the successor may
/// fold it without counting it twice.
pub(super) fn successor(members: &Membership, heir: NodeId) -> NodeId {
    let mut at = heir;
    for _ in 0..members.all().len() {
        match members.status(at) {
            Some(Status::Retired { heir: next }) if next != at => at = next,
            _ => break,
        }
    }
    at
}
