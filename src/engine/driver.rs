//! The one driver loop, shared by the Durable Object host, the simulator
//! and the benchmarks: before an input, load what it needs; run the node;
//! then run its own work (loading what that waits for) and write every
//! storage effect as one batch, before anything is sent or acknowledged.
//! What is left, messages and pushes, goes back to the adapter.

use super::kind::Catalog;
use super::needs::Needs;
use super::node::{Config, Effect, Node};
use super::store::{Restored, Store, StoreError};
use super::validate::{open_frame, FrameError};
use super::{Message, ObjectId, RowKey};
use crate::NodeId;
use std::fmt;

/// How many load steps one input may take (a leaf's objects, their
/// listings, their rows): more means storage does not hold what it said.
const LOAD_STEPS: usize = 8;

/// A push to the subscribers of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// the object
    pub object: ObjectId,
    /// the rows that changed, with their states
    pub rows: Vec<(RowKey, Vec<u8>)>,
}

/// What the adapter performs after an input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    /// messages to peers, in order
    pub sends: Vec<(NodeId, Message)>,
    /// pushes to subscribers
    pub publishes: Vec<Publish>,
    /// whether subscribers get a heartbeat
    pub heartbeat: bool,
    /// the storage effects already written, in order (for tracing and checks)
    pub stored: Vec<Effect>,
}

impl Outputs {
    /// Adds what another input produced.
    pub fn extend(&mut self, other: Outputs) {
        self.sends.extend(other.sends);
        self.publishes.extend(other.publishes);
        self.heartbeat |= other.heartbeat;
        self.stored.extend(other.stored);
    }
}

/// Why an input failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// A peer frame was refused; nothing changed.
    Frame(FrameError),
    /// Storage failed.
    Store(StoreError),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Frame(e) => e.fmt(f),
            EngineError::Store(e) => e.fmt(f),
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e)
    }
}

/// A node and its storage.
pub struct Engine<S> {
    /// the node
    pub node: Node,
    /// its storage
    pub store: S,
    /// Leave the storage effects of each input in [`Outputs::stored`] for
    /// the adapter to write, in order, before anything they caused is sent
    /// or acknowledged: an adapter that groups the writes of requests that
    /// arrive together into one transaction.
    pub defer_writes: bool,
}

impl<S: Store> Engine<S> {
    /// Starts node `id` from what `store` holds.
    pub fn start(
        id: NodeId,
        config: Config,
        catalog: &'static dyn Catalog,
        mut store: S,
    ) -> Result<Self, StoreError> {
        let Restored {
            members,
            partition,
            clock,
            wakes,
            unconfirmed,
            leaves,
        } = store.restore(catalog)?;
        let mut node = Node::new(id, config, catalog);
        node.restore(members, partition, clock, leaves);
        node.restore_wakes(wakes);
        node.restore_unconfirmed(unconfirmed);
        Ok(Engine {
            node,
            store,
            defer_writes: false,
        })
    }

    /// Loads what `ask` names, and asks again, until nothing is missing.
    pub fn supply(&mut self, ask: impl Fn(&Node) -> Needs) -> Result<(), StoreError> {
        for _ in 0..LOAD_STEPS {
            let needs = ask(&self.node);
            if needs.is_empty() {
                return Ok(());
            }
            let loaded = self.store.load(&needs)?;
            self.node.load(loaded);
        }
        Ok(())
    }

    /// Loads what a client operation on `object` needs: the rows named,
    /// or with `whole` every row.
    pub fn prepare(
        &mut self,
        object: &ObjectId,
        rows: &[RowKey],
        whole: bool,
    ) -> Result<(), StoreError> {
        self.supply(|n| n.needs_object(object, rows, whole))
    }

    /// Opens a peer frame and handles its message; the answer (the
    /// outputs' sends to the sender) carries the gossip that waits for it.
    /// A frame this node's partition cuts it off from is refused
    /// ([`FrameError::Partitioned`]): its sender must count it failed, so
    /// what it carried stays in its buffers. (A partition is set and
    /// lifted one node at a time: a node already healed sends to one not
    /// yet healed, and a frame dropped as if delivered lost its rows to
    /// anti-entropy.)
    pub fn receive_frame(
        &mut self,
        bytes: &[u8],
        now: u64,
    ) -> Result<(NodeId, Outputs), EngineError> {
        let max_age = self.node.config().max_frame_age();
        let frame =
            open_frame(bytes, self.node.catalog, now, max_age).map_err(EngineError::Frame)?;
        let from = frame.from;
        if self.node.cut_off(from, &frame.message) {
            return Err(EngineError::Frame(FrameError::Partitioned { from }));
        }
        self.supply(|n| n.needs_for(from, &frame.message))?;
        self.node.receive(from, frame.message, now);
        self.node.answer_gossip(from);
        Ok((from, self.settle()?))
    }

    /// Handles a checked message from `from`.
    pub fn receive(
        &mut self,
        from: NodeId,
        message: Message,
        now: u64,
    ) -> Result<Outputs, StoreError> {
        self.supply(|n| n.needs_for(from, &message))?;
        self.node.receive(from, message, now);
        self.settle()
    }

    /// Runs the node's timers at `now`.
    pub fn tick(&mut self, now: u64) -> Result<Outputs, StoreError> {
        self.node.tick(now);
        self.settle()
    }

    /// Reports a message that did not reach `to`.
    pub fn send_failed(&mut self, to: NodeId, message: Message) -> Result<Outputs, StoreError> {
        self.node.send_failed(to, message);
        self.settle()
    }

    /// Runs the node's own work, loading what it waits for, then writes
    /// the storage effects as one batch (unless the adapter writes them,
    /// [`Engine::defer_writes`]) and returns the rest.
    pub fn settle(&mut self) -> Result<Outputs, StoreError> {
        let mut last = None;
        loop {
            let wanted = self.node.wanted();
            if wanted.is_empty() || last.as_ref() == Some(&wanted) {
                break;
            }
            let loaded = self.store.load(&wanted)?;
            self.node.load(loaded);
            self.node.resume();
            last = Some(wanted);
        }
        let effects = self.node.take_effects();
        let mut out = Outputs::default();
        for effect in effects {
            match effect {
                Effect::Send { to, message } => out.sends.push((to, message)),
                Effect::Publish { object, rows } => out.publishes.push(Publish { object, rows }),
                Effect::Heartbeat => out.heartbeat = true,
                stored => out.stored.push(stored),
            }
        }
        if !self.defer_writes {
            self.store.write(&out.stored)?;
        }
        Ok(out)
    }
}
