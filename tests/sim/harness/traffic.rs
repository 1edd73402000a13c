//! What the nodes' messages would cost on the edge, where each node is a
//! Durable Object and each message it sends is one HTTP subrequest, except
//! a message back to the peer whose request it is handling: that travels
//! in the HTTP response, free.
//!
//! An invocation is one tick (alarm) of a node, the handling of one
//! request frame, or one other call into a node (a client's operation, a
//! settle after the admin or an operator set something). Its subrequests
//! are the requests it sends, including the follow-ups it sends while it
//! handles the answers to its own requests (the host handles those in one
//! loop: `src/edge/host.rs`, `perform` and `deliver`). The rules:
//!
//! - a tick, or another call into node X, opens a new invocation of X; its
//!   sends are requests of it;
//! - node Y handling a request from X (X's invocation I) opens a new
//!   invocation J of Y; Y's sends to X are answers (they belong to I, and
//!   cost nothing), its sends to any other node are requests of J;
//! - node X handling an answer (of its invocation I) goes on with I: its
//!   sends are requests of I (back to the answering peer too, as in the
//!   host), except sends to the node whose request I is handling, if I
//!   handles one: those are answers, as the host puts every message to
//!   that peer in its response;
//! - a failure reported to a sender (a send to a crashed node, a cut that
//!   errors, a frame refused as stale) goes on with the invocation that
//!   sent the frame, or opens a new one when that is unknown (a frame a
//!   scenario made up).
//!
//! A duplicated frame is handled twice, so a duplicated answer may bring
//! its follow-ups twice: they are counted, as the host would send them.
//! Every frame is counted once when sent, whether the network then loses
//! or duplicates it, with its encoded size.

use edge_crdt::NodeId;

/// How an invocation started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A tick (the alarm) of the node.
    Tick,
    /// A request frame from another node.
    Request,
    /// A client's operation, the admin, a settle, a failure report whose
    /// invocation is unknown, a frame a scenario sends.
    Other,
}

/// One invocation of a node.
#[derive(Clone, Copy, Debug)]
pub struct Invocation {
    pub node: NodeId,
    pub start: Start,
    /// For one handling a request: the requester, and its invocation.
    pub reply_to: Option<(NodeId, u64)>,
    /// The requests sent in it (its subrequests).
    pub frames: u32,
    /// Whether it started during the chaos phase.
    pub chaos: bool,
    /// For a tick: whether the node was live (not retired) by its own account.
    pub live: bool,
}

/// Every invocation of a run, and what the frames weighed.
#[derive(Debug)]
pub struct Traffic {
    /// By id.
    pub invocations: Vec<Invocation>,
    /// Whether invocations that start now are in the chaos phase.
    pub chaos: bool,
    /// Frames sent, and their encoded bytes: requests and answers.
    pub requests: u64,
    pub answers: u64,
    pub bytes: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            invocations: Vec::new(),
            chaos: true,
            requests: 0,
            answers: 0,
            bytes: 0,
        }
    }
}

/// The figures of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrafficFigures {
    /// Tick invocations of live nodes in the chaos phase, and their requests.
    pub ticks: u64,
    pub tick_frames: u64,
    /// The most requests of one tick invocation, and of one invocation
    /// handling a request, and of any invocation (in the chaos phase).
    pub max_tick: u32,
    pub max_request: u32,
    pub max_any: u32,
    /// The most requests of one other invocation (a client's operation,
    /// an admin's call, a settle after a restart).
    pub max_other: u32,
    /// Every frame sent in the run, requests and answers, and their bytes.
    pub frames: u64,
    pub bytes: u64,
}

impl TrafficFigures {
    /// Requests per tick invocation, on average.
    pub fn per_tick(&self) -> f64 {
        self.tick_frames as f64 / self.ticks.max(1) as f64
    }

    /// Adds another run's figures: sums, and maxima.
    pub fn add(&mut self, o: &TrafficFigures) {
        self.ticks += o.ticks;
        self.tick_frames += o.tick_frames;
        self.max_tick = self.max_tick.max(o.max_tick);
        self.max_request = self.max_request.max(o.max_request);
        self.max_any = self.max_any.max(o.max_any);
        self.max_other = self.max_other.max(o.max_other);
        self.frames += o.frames;
        self.bytes += o.bytes;
    }
}

impl Traffic {
    /// Opens a new invocation of `node`.
    pub fn open(
        &mut self,
        node: NodeId,
        start: Start,
        reply_to: Option<(NodeId, u64)>,
        live: bool,
    ) -> u64 {
        self.invocations.push(Invocation {
            node,
            start,
            reply_to,
            frames: 0,
            chaos: self.chaos,
            live,
        });
        self.invocations.len() as u64 - 1
    }

    /// Whether a send from invocation `inv` to `to` is an answer, and the
    /// invocation it belongs to; a request is counted in `inv`.
    pub fn sent(&mut self, inv: u64, to: NodeId, bytes: usize) -> (bool, u64) {
        self.bytes += bytes as u64;
        let invocation = &mut self.invocations[inv as usize];
        match invocation.reply_to {
            Some((requester, theirs)) if requester == to => {
                self.answers += 1;
                (true, theirs)
            }
            _ => {
                invocation.frames += 1;
                self.requests += 1;
                (false, inv)
            }
        }
    }

    pub fn get(&self, inv: u64) -> &Invocation {
        &self.invocations[inv as usize]
    }

    /// The figures of the run so far.
    pub fn figures(&self) -> TrafficFigures {
        let mut f = TrafficFigures {
            frames: self.requests + self.answers,
            bytes: self.bytes,
            ..TrafficFigures::default()
        };
        for i in self.invocations.iter().filter(|i| i.chaos) {
            f.max_any = f.max_any.max(i.frames);
            match i.start {
                Start::Tick if i.live => {
                    f.ticks += 1;
                    f.tick_frames += u64::from(i.frames);
                    f.max_tick = f.max_tick.max(i.frames);
                }
                Start::Tick => {}
                Start::Request => f.max_request = f.max_request.max(i.frames),
                Start::Other => f.max_other = f.max_other.max(i.frames),
            }
        }
        f
    }
}
