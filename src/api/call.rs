//! What the router and a node object say to each other: one typed request
//! and one typed reply, as postcard. No headers, no op names.
//!
//! ```
//! use edge_crdt::api::call::{NodeRequest, Target};
//! use edge_crdt::codec;
//! use edge_crdt::engine::ObjectId;
//! let req = NodeRequest::Op {
//!     target: Target::Object(ObjectId::new("counter", "home").unwrap()),
//!     op: vec![1, 2],
//!     forwarded: false,
//! };
//! let back: NodeRequest = codec::decode(&codec::encode(&req), 1 << 10).unwrap();
//! assert_eq!(back, req);
//! ```

use crate::engine::{Membership, ObjectId, Status};
use crate::error::ApiError;
use crate::{NodeId, NodeMap, NodeSet};
use serde::{Deserialize, Serialize};

/// What an operation runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// one object, at one of its replicas
    Object(ObjectId),
    /// the kind with this prefix at each node (a listing)
    Kind(String),
}

/// A request of the router (or, forwarded, of another node) to a node object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeRequest {
    /// A kind's encoded operation.
    Op {
        /// what it runs on
        target: Target,
        /// the kind's operation, encoded
        op: Vec<u8>,
        /// passed on once already: run it here
        forwarded: bool,
    },
    /// Open a stream of the object's changes.
    Subscribe {
        /// the object
        object: ObjectId,
        /// passed on once already
        forwarded: bool,
    },
    /// An admin request.
    Admin(AdminOp),
}

/// An admin request to one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOp {
    /// the node's view
    View,
    /// add node `id` (only an active node may)
    Add(NodeId),
    /// start or go on with this node's retirement
    Retire,
    /// set the partition (no groups: heal)
    Partition(Vec<NodeSet>),
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReply {
    /// the node that answered
    pub node: NodeId,
    /// the active nodes in its view, for the router's table
    pub active: Vec<NodeId>,
    /// the encoded outcome, or why there is none
    pub result: Result<Vec<u8>, ApiError>,
}

/// A member's status as the admin views show it: `"active"`,
/// `{"draining": "node-2"}`, `{"retired": "node-2"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusView {
    /// takes writes
    Active,
    /// handing over to this heir
    Draining(NodeId),
    /// folded into this heir
    Retired(NodeId),
}

impl From<Status> for StatusView {
    fn from(s: Status) -> Self {
        match s {
            Status::Active => StatusView::Active,
            Status::Draining { heir } => StatusView::Draining(heir),
            Status::Retired { heir } => StatusView::Retired(heir),
        }
    }
}

/// Peer traffic: frames sent and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// frames
    pub frames: u64,
    /// bytes
    pub bytes: u64,
}

/// The client requests a node served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    /// since the object started
    pub total: u64,
    /// over the last `window_ms`
    pub per_second: f64,
    /// the rate's window
    pub window_ms: u64,
}

/// One node's view: `GET /admin/nodes/:id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// the node
    pub node: NodeId,
    /// its own status
    pub status: StatusView,
    /// every member as it sees it
    pub members: NodeMap<StatusView>,
    /// the partition's groups
    pub partition: Vec<NodeSet>,
    /// objects in memory
    pub keys_in_memory: u64,
    /// leaves holding data
    pub leaves: u64,
    /// leaves being handed off
    pub leaves_moving: u64,
    /// gossiped rows refused for stamps beyond the drift
    pub refused_states: u64,
    /// peer traffic
    pub sent: Sent,
    /// peer traffic by peer: frames this node sent it, and the bytes of
    /// those and of its answers to the peer's frames
    pub sent_to: NodeMap<Sent>,
    /// rows pushed or asked for by anti-entropy since the object started
    pub repaired_rows: u64,
    /// client traffic
    pub requests: Requests,
    /// tombstones held
    pub tombstones: u64,
    /// tombstones collected since the object started
    pub tombstones_collected: u64,
}

impl NodeView {
    /// The members' statuses as a map, from a membership.
    pub fn members_of(m: &Membership) -> NodeMap<StatusView> {
        m.all()
            .iter()
            .map(|(id, s)| (*id, StatusView::from(*s)))
            .collect()
    }
}

/// `POST /admin/nodes`: the node added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    /// its id
    pub added: NodeId,
}

/// `POST /admin/nodes/:id/retire`: done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retired {
    /// the node that absorbed it
    pub heir: NodeId,
    /// its view once retired
    pub view: NodeView,
}
