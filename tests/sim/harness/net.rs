//! The network: frames in flight, each delivered after a random delay (so
//! they are reordered), some lost or duplicated; partitions that cut the
//! network, or are set on the nodes, or both; and failures reported to
//! senders (a send to a crashed node, a cut that errors, a frame refused
//! as stale).

use super::show::{brief, mentions};
use super::traffic::Start;
use super::Sim;
use edge_crdt::codec;
use edge_crdt::engine::{open_frame, EngineError, Frame, FrameError, Message, Partition};
use edge_crdt::kinds::CATALOG;
use edge_crdt::{NodeId, NodeSet};
use std::collections::BTreeMap;

/// Fault rates, per mille unless said otherwise.
#[derive(Clone, Debug)]
pub struct Faults {
    pub loss: u64,
    pub duplicate: u64,
    /// Delays are uniform in `1..=max_delay` ms ...
    pub max_delay: u64,
    /// ... plus, with this chance, up to 2 s more.
    pub long_delay: u64,
    /// Chance per step that a node crashes.
    pub crash: u64,
    /// Chance per step that a partition starts.
    pub partition: u64,
    /// Report frames to a crashed node to their senders (else drop them).
    pub report_failures: bool,
    /// Drop every anti-entropy digest: only gossip flows.
    pub block_anti_entropy: bool,
}

impl Faults {
    pub fn chaos() -> Self {
        Faults {
            loss: 50,
            duplicate: 50,
            max_delay: 80,
            long_delay: 20,
            crash: 4,
            partition: 4,
            report_failures: true,
            block_anti_entropy: false,
        }
    }

    pub fn calm() -> Self {
        Faults {
            loss: 0,
            duplicate: 0,
            max_delay: 20,
            long_delay: 0,
            crash: 0,
            partition: 0,
            report_failures: true,
            block_anti_entropy: false,
        }
    }
}

/// Where a partition cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    Network,
    Nodes,
    Both,
}

/// A frame on its way.
#[derive(Clone, Debug)]
pub struct Packet {
    pub from: NodeId,
    pub to: NodeId,
    /// The encoded [`Frame`], as a node receives it.
    pub frame: Vec<u8>,
    /// Whether it answers a request of `to`'s (it travels in the HTTP
    /// response on the edge), else it is a request (a subrequest).
    pub answer: bool,
    /// The invocation it belongs to (`Sim::traffic`): the sender's for a
    /// request, the receiver's (the requester's) for an answer; `None` for
    /// a frame a scenario made up.
    pub inv: Option<u64>,
    /// The sender's invocation that sent it.
    pub sent_in: Option<u64>,
}

impl Packet {
    /// A request frame of `message`, sent at wall time `sent`, in no
    /// known invocation.
    pub fn new(from: NodeId, to: NodeId, sent: u64, message: Message) -> Self {
        let frame = codec::encode(&Frame {
            from,
            sent,
            message,
        });
        Packet {
            from,
            to,
            frame,
            answer: false,
            inv: None,
            sent_in: None,
        }
    }

    /// The message it carries.
    pub fn message(&self) -> Message {
        let frame: Frame =
            codec::decode(&self.frame, codec::MAX_FRAME).expect("a frame the simulator encoded");
        frame.message
    }
}

/// What is in flight, and the partitions.
#[derive(Debug, Default)]
pub struct Network {
    /// By delivery time, then sending order.
    pub in_flight: BTreeMap<(u64, u64), Packet>,
    seq: u64,
    /// Frames between its groups are dropped.
    pub cut: Partition,
    /// The partition set on the nodes themselves.
    pub node_cut: Partition,
    /// When the current partition heals.
    pub cut_ends: u64,
}

impl Network {
    /// Puts `packet` in flight, to arrive at `at`.
    pub fn insert(&mut self, at: u64, packet: Packet) {
        self.seq += 1;
        self.in_flight.insert((at, self.seq), packet);
    }

    /// Takes out every packet `pick` selects.
    pub fn take(&mut self, pick: impl Fn(&Packet) -> bool) -> Vec<Packet> {
        let keys: Vec<(u64, u64)> = self
            .in_flight
            .iter()
            .filter(|(_, p)| pick(p))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.in_flight.remove(&k))
            .collect()
    }

    pub fn is_partitioned(&self) -> bool {
        !self.cut.groups().is_empty() || !self.node_cut.groups().is_empty()
    }
}

impl Sim {
    /// Sends `message` from `from` to `to` as a frame stamped with the
    /// sender's wall clock, through the faults: a request, in a new
    /// invocation of `from`.
    pub fn send(&mut self, from: NodeId, to: NodeId, message: Message) {
        let inv = self.open(from, Start::Other, None);
        self.send_in(inv, from, to, message);
    }

    /// Sends `message` from `from` to `to` in `from`'s invocation `inv`:
    /// an answer if it goes to the peer whose request `inv` handles, else
    /// a request counted in `inv`.
    pub fn send_in(&mut self, inv: u64, from: NodeId, to: NodeId, message: Message) {
        let digest = matches!(message, Message::Digest { .. });
        let mut packet = Packet::new(from, to, self.wall(from), message);
        let name = message_name(&packet);
        let (answer, belongs) = self.traffic.sent(inv, to, packet.frame.len());
        if let Some(over) = self
            .frames_trace
            .filter(|t| !answer && self.traffic.get(inv).frames > *t)
        {
            let i = self.traffic.get(inv);
            eprintln!("{} ms: {from} invocation {inv} ({:?}) sends its frame {} (over {over}): {name} to {to}", self.now, i.start, i.frames);
        }
        (packet.answer, packet.inv, packet.sent_in) = (answer, Some(belongs), Some(inv));
        if self.rng.chance(self.faults.loss) || (digest && self.faults.block_anti_entropy) {
            self.stats.lost += 1;
            return;
        }
        // An answer travels in its request's HTTP response: it may be lost
        // with it, not repeated. (The draw is made anyway, so that seeds
        // replay the same faults.)
        let copies = if self.rng.chance(self.faults.duplicate) && !answer {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.rng.range(1, self.faults.max_delay);
            if self.rng.chance(self.faults.long_delay) {
                delay += self.rng.below(2_000);
            }
            self.net.insert(self.now + delay, packet.clone());
        }
    }

    /// Delivers every frame due by now. What is sent meanwhile arrives 1 ms
    /// later at the earliest.
    pub fn deliver_due(&mut self) {
        while let Some(entry) = self.net.in_flight.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let packet = entry.remove();
            self.deliver(packet);
        }
    }

    fn deliver(&mut self, p: Packet) {
        if !self.slots.contains_key(&p.to) {
            return;
        }
        if self.net.cut.separates(p.from, p.to) {
            self.stats.cut += 1;
            // A cut connection sometimes errors, sometimes times out silently.
            if self.rng.chance(500) {
                self.report_failure(p);
            }
            return;
        }
        if !self.is_up(p.to) {
            if self.faults.report_failures {
                self.report_failure(p);
            }
            return;
        }
        let wall = self.wall(p.to);
        self.trace_delivery(&p);
        let engine = self.engine_mut(p.to).expect("up");
        let received = match p.answer {
            // An answer comes back in the request's response: the host
            // opens it and hands its message to the engine (no gossip
            // answers an answer).
            true => {
                let max_age = engine.node.config().max_frame_age();
                open_frame(&p.frame, CATALOG, wall, max_age)
                    .map_err(EngineError::Frame)
                    .and_then(|f| {
                        let out = engine.receive(f.from, f.message, wall);
                        out.map(|o| (f.from, o)).map_err(EngineError::from)
                    })
            }
            false => engine.receive_frame(&p.frame, wall),
        };
        match received {
            Ok((from, out)) if from == p.from => {
                self.stats.delivered += 1;
                // An answer goes on with the receiver's invocation; a
                // request opens one, answering its sender's.
                let inv = match (p.answer, p.inv) {
                    (true, Some(inv)) => inv,
                    (_, theirs) => {
                        let reply_to = theirs.map(|i| (p.from, i));
                        self.open(p.to, Start::Request, reply_to)
                    }
                };
                self.perform_in(inv, p.to, out);
            }
            Ok((from, _)) => self.fail(format!("a frame from {} opened as from {from}", p.from)),
            // Refused across the receiver's partition (set on one node
            // and not yet on the other): its sender learns it failed, as
            // the host does from the error status.
            Err(EngineError::Frame(FrameError::Partitioned { .. })) => {
                self.stats.cut += 1;
                self.report_failure(p);
            }
            Err(EngineError::Frame(e @ FrameError::Stale { .. })) => {
                if self.trace.is_some() {
                    eprintln!(
                        "{} ms: {} refused a frame from {}: {e}",
                        self.now, p.to, p.from
                    );
                }
                self.stats.stale += 1;
                // A late answer is dropped; its sender never learns.
                if !p.answer {
                    self.report_failure(p);
                }
            }
            Err(e) => self.fail(format!("{} refused a frame from {}: {e}", p.to, p.from)),
        }
    }

    fn trace_delivery(&self, p: &Packet) {
        let Some(key) = self.trace.as_deref() else {
            return;
        };
        let message = p.message();
        if mentions(&message, key) {
            let status = self.engine(p.to).map(|e| e.node.status());
            eprintln!(
                "{} ms: {} -> {} ({status:?}): {}",
                self.now,
                p.from,
                p.to,
                brief(&message, key)
            );
        }
    }

    /// Tells the sender its frame did not arrive; what it sends then
    /// belongs to the invocation that sent the frame, if known.
    pub fn report_failure(&mut self, p: Packet) {
        let Some(engine) = self.engine_mut(p.from) else {
            return;
        };
        match engine.send_failed(p.to, p.message()) {
            Ok(out) => {
                self.stats.failed += 1;
                let inv = match p.sent_in {
                    Some(inv) => inv,
                    None => self.open(p.from, Start::Other, None),
                };
                self.perform_in(inv, p.from, out);
            }
            Err(e) => self.fail(format!("{}: {e}", p.from)),
        }
    }

    /// Cuts the cluster into `groups` (nodes named in none form one more).
    pub fn partition(&mut self, groups: Vec<NodeSet>, cut: Cut) {
        let p = Partition::new(groups);
        if cut != Cut::Nodes {
            self.net.cut = p.clone();
        }
        if cut != Cut::Network {
            self.set_node_partition(p);
        }
    }

    /// Sets `p` on every up node (a crashed one gets it when it restarts).
    pub fn set_node_partition(&mut self, p: Partition) {
        self.net.node_cut = p.clone();
        for id in self.ids() {
            self.set_partition_on(id, p.clone());
        }
    }

    /// Sets `p` on node `id` alone.
    pub fn set_partition_on(&mut self, id: NodeId, p: Partition) {
        if let Some(engine) = self.engine_mut(id) {
            engine.node.set_partition(p);
            self.settle_node(id);
        }
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.net.cut = Partition::default();
        if !self.net.node_cut.groups().is_empty() {
            self.set_node_partition(Partition::default());
        }
    }
}

fn message_name(p: &Packet) -> &'static str {
    p.message().name()
}
