//! A few `Engine<MemoryStore>` nodes on one virtual clock, with a message
//! queue that delivers encoded frames through `Engine::receive_frame`,
//! in the order they were sent (or, with `disorder`, in any order and some
//! twice), unless a test loses them. A frame refused across a partition
//! is reported failed to its sender, as the host does.

use edge_crdt::codec;
use edge_crdt::engine::{
    Catalog, Config, Engine, EngineError, Exec, Frame, FrameError, Membership, MemoryStore,
    Message, ObjectId, Outputs, Placement, Policy, RowKey, Status,
};
use edge_crdt::kinds::{Call, Kind};
use edge_crdt::{ApiError, NodeId, Rng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Messages sent and rows shipped, by message name.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// messages delivered, by name
    pub messages: BTreeMap<&'static str, usize>,
    /// rows carried by delivered `Gossip` and `Transfer` messages
    pub rows: usize,
    /// the distinct rows those carried
    pub distinct: BTreeSet<(ObjectId, RowKey)>,
    /// the bytes of the frames delivered
    pub bytes: usize,
}

impl Tally {
    fn count(&mut self, message: &Message) {
        *self.messages.entry(message.name()).or_default() += 1;
        if let Message::Gossip { rows, .. } | Message::Transfer { rows, .. } = message {
            for (object, states) in rows {
                self.rows += states.len();
                self.distinct
                    .extend(states.iter().map(|(r, _)| (object.clone(), r.clone())));
            }
        }
    }

    /// How many messages of `name` were delivered.
    pub fn of(&self, name: &str) -> usize {
        self.messages.get(name).copied().unwrap_or(0)
    }
}

/// Nodes, their stores, a queue of messages and a clock.
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Engine<MemoryStore>>,
    pub config: Config,
    pub catalog: &'static dyn Catalog,
    pub now: u64,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    /// what was delivered since the last [`Cluster::reset_tally`]
    pub tally: Tally,
    /// when set, messages arrive out of order and some twice
    pub disorder: Option<Rng>,
}

impl Cluster {
    /// `config.initial_nodes` nodes with empty stores.
    pub fn new(config: Config, catalog: &'static dyn Catalog) -> Self {
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            config,
            catalog,
            now: 1_000_000,
            queue: VecDeque::new(),
            tally: Tally::default(),
            disorder: None,
        };
        for i in 0..cluster.config.initial_nodes {
            cluster.spawn(NodeId(i));
        }
        cluster
    }

    /// Starts node `id` on an empty store (not a member until added).
    pub fn spawn(&mut self, id: NodeId) {
        let engine = Engine::start(
            id,
            self.config.clone(),
            self.catalog,
            MemoryStore::default(),
        )
        .expect("starts");
        self.nodes.insert(id, engine);
    }

    pub fn engine(&mut self, id: NodeId) -> &mut Engine<MemoryStore> {
        self.nodes.get_mut(&id).expect("a node")
    }

    pub fn store(&self, id: NodeId) -> &MemoryStore {
        &self.nodes[&id].store
    }

    /// Drops node `id`'s engine and starts it again from its store.
    pub fn restart(&mut self, id: NodeId) {
        let old = self.nodes.remove(&id).expect("a node");
        let engine =
            Engine::start(id, self.config.clone(), self.catalog, old.store).expect("restarts");
        self.nodes.insert(id, engine);
    }

    pub fn reset_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Queues what an input at `from` sends.
    pub fn enqueue(&mut self, from: NodeId, out: Outputs) {
        self.queue
            .extend(out.sends.into_iter().map(|(to, m)| (from, to, m)));
    }

    /// Queues `message` from `from` to `to`, as if `from` had sent it.
    pub fn send(&mut self, from: NodeId, to: NodeId, message: Message) {
        self.queue.push_back((from, to, message));
    }

    /// Runs `f` on node `at`'s engine, then queues what it sends.
    pub fn with(&mut self, at: NodeId, f: impl FnOnce(&mut Engine<MemoryStore>, u64)) {
        let now = self.now;
        let engine = self.engine(at);
        f(engine, now);
        let out = engine.settle().expect("settles");
        self.enqueue(at, out);
    }

    /// A client operation on `object` at `at`: loads `rows`, runs `f` and
    /// commits what it buffered.
    pub fn op(
        &mut self,
        at: NodeId,
        object: &ObjectId,
        rows: &[&str],
        f: impl FnOnce(&mut Exec<'_>),
    ) {
        let rows: Vec<RowKey> = rows.iter().map(|r| (*r).to_owned()).collect();
        self.with(at, |engine, now| {
            engine.prepare(object, &rows, false).expect("loads");
            let mut x = engine.node.exec(object.clone(), now);
            f(&mut x);
            x.commit().expect("accepts writes");
        });
    }

    /// A typed operation of kind `K` on `object` at `at`.
    pub fn call<K: Kind>(
        &mut self,
        at: NodeId,
        object: &ObjectId,
        op: K::Op,
    ) -> Result<K::Outcome, ApiError> {
        let mut outcome = None;
        self.with(at, |engine, now| {
            let mut call = Call {
                engine,
                object: Some(object.clone()),
                now,
            };
            outcome = Some(K::execute(op, &mut call));
        });
        outcome.expect("ran")
    }

    /// Advances time by `ms` in gossip-interval steps, delivering everything.
    pub fn pass(&mut self, ms: u64) {
        self.pass_losing(ms, |_, _, _| false);
    }

    /// Like [`Cluster::pass`], losing the messages `lose` picks.
    pub fn pass_losing(&mut self, ms: u64, lose: impl FnMut(NodeId, NodeId, &Message) -> bool) {
        self.pass_checked(ms, lose, |_| {});
    }

    /// Like [`Cluster::pass_losing`], calling `check` after every delivery.
    pub fn pass_checked(
        &mut self,
        ms: u64,
        mut lose: impl FnMut(NodeId, NodeId, &Message) -> bool,
        mut check: impl FnMut(&Cluster),
    ) {
        let end = self.now + ms;
        while self.now < end {
            self.now += self.config.gossip_interval_ms;
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                let now = self.now;
                let out = self.engine(id).tick(now).expect("ticks");
                self.enqueue(id, out);
                self.run_checked(&mut lose, &mut check);
            }
        }
    }

    /// Delivers queued messages, and what they cause, until none is left;
    /// `lose(from, to, message)` picks those that never arrive.
    pub fn run(&mut self, lose: impl FnMut(NodeId, NodeId, &Message) -> bool) {
        self.run_checked(lose, |_| {});
    }

    /// Like [`Cluster::run`], calling `check` after every delivery.
    pub fn run_checked(
        &mut self,
        mut lose: impl FnMut(NodeId, NodeId, &Message) -> bool,
        mut check: impl FnMut(&Cluster),
    ) {
        while let Some((from, to, message)) = self.next_message() {
            if lose(from, to, &message) || !self.nodes.contains_key(&to) {
                continue;
            }
            self.tally.count(&message);
            let frame = Frame {
                from,
                sent: self.now,
                message,
            };
            let bytes = codec::encode(&frame);
            self.tally.bytes += bytes.len();
            let now = self.now;
            match self.engine(to).receive_frame(&bytes, now) {
                Ok((_, out)) => self.enqueue(to, out),
                // Refused across the receiver's partition: the sender
                // learns that it failed, as the host does from the status.
                Err(EngineError::Frame(FrameError::Partitioned { .. })) => {
                    let out = self
                        .engine(from)
                        .send_failed(to, frame.message)
                        .expect("settles");
                    self.enqueue(from, out);
                }
                Err(e) => panic!("a frame the node takes: {e}"),
            }
            check(self);
        }
    }

    /// The next message to deliver: the oldest, or with `disorder` any
    /// one, which now and then stays queued to arrive again.
    fn next_message(&mut self) -> Option<(NodeId, NodeId, Message)> {
        let Some(rng) = &mut self.disorder else {
            return self.queue.pop_front();
        };
        let at = rng.below(self.queue.len() as u64) as usize;
        if rng.chance(50) {
            return self.queue.get(at).cloned();
        }
        self.queue.remove(at)
    }

    /// Nodes that store a row of `object`, with the rows each stores.
    pub fn holders(&self, object: &ObjectId) -> BTreeMap<NodeId, BTreeMap<RowKey, Vec<u8>>> {
        self.nodes
            .iter()
            .filter_map(|(id, e)| {
                let rows: BTreeMap<RowKey, Vec<u8>> = e
                    .store
                    .rows()
                    .filter(|(o, _, _)| *o == object)
                    .map(|(_, r, s)| (r.clone(), s.state.clone()))
                    .collect();
                (!rows.is_empty()).then_some((*id, rows))
            })
            .collect()
    }

    /// The stored state of one row at `at`, decoded.
    pub fn stored<R: serde::de::DeserializeOwned>(
        &self,
        at: NodeId,
        object: &ObjectId,
        row: &str,
    ) -> Option<R> {
        let bytes = self.store(at).row(object, row)?;
        Some(postcard::from_bytes(bytes).expect("a stored row decodes"))
    }
}

/// The object `prefix:name`.
pub fn id(prefix: &str, name: &str) -> ObjectId {
    ObjectId::new(prefix, name).expect("a valid name")
}

/// The replicas of a ring object in `members` (3 replicas, 64 vnodes).
pub fn ring_replicas(members: &Membership, object: &ObjectId) -> BTreeSet<NodeId> {
    let placement = Placement::new(3, 64);
    let leaf = placement.leaf(object, Policy::Ring);
    placement.leaf_replicas(leaf, members).into_iter().collect()
}

/// The first ring object `prefix:{stem}-N` whose leaf node 4 joins when
/// it is added to the initial 4 nodes.
pub fn joined_by_node_4(prefix: &str, stem: &str) -> ObjectId {
    let mut grown = Membership::initial(4);
    grown.set(NodeId(4), Status::Active);
    (0..)
        .map(|i| id(prefix, &format!("{stem}-{i}")))
        .find(|o| ring_replicas(&grown, o).contains(&NodeId(4)))
        .expect("some object moves")
}
