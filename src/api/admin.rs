//! The admin routes, parsed. Every one needs `Authorization: Bearer
//! $ADMIN_TOKEN` (the router checks it before it reads the body).
//!
//! ```
//! use edge_crdt::api::admin::{parse, AdminRoute};
//! use edge_crdt::api::http::{HttpRequest, Method};
//! use edge_crdt::NodeId;
//! let req = HttpRequest::new(Method::Delete, "/admin/nodes/node-3");
//! assert_eq!(parse(&req, &["nodes", "node-3"]), Ok(AdminRoute::Retire(NodeId(3))));
//! let req = HttpRequest::new(Method::Patch, "/admin/nodes");
//! assert_eq!(parse(&req, &["nodes"]).unwrap_err().status(), 405);
//! ```

use super::http::{json_object, HttpRequest, Method};
use super::parse_node;
use super::traffic::parse_sizing;
use crate::engine::Sizing;
use crate::error::{ApiError, ErrorCode};
use crate::{NodeId, NodeSet};

/// An admin request.
#[derive(Clone, Debug, PartialEq)]
pub enum AdminRoute {
    /// `GET /admin/nodes`: an active node's view
    Nodes,
    /// `POST /admin/nodes`: add a node
    Add,
    /// `GET /admin/nodes/:id`: that node's view
    Node(NodeId),
    /// `POST /admin/nodes/:id/retire` or `DELETE /admin/nodes/:id`
    Retire(NodeId),
    /// `GET /admin/traffic`, with the policy's overrides
    Traffic(SizingQuery),
    /// `POST /admin/autoscale`, with the policy's overrides
    Autoscale(SizingQuery),
    /// `PUT /admin/partition` (groups) or `DELETE /admin/partition` (none)
    Partition(Vec<NodeSet>),
    /// `GET /admin/live`: every member's view each second, as server-sent events
    Live,
    /// `POST /admin/nodes/:id/peer`: a raw peer frame, delivered to that
    /// node's `/peer` as if a peer sent it (to test what a node refuses)
    Peer(NodeId),
}

/// The sizing policy's overrides in a query: applied to the configured policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SizingQuery {
    /// `node_rps`
    pub node_rps: Option<u64>,
    /// `min_nodes`
    pub min_nodes: Option<u64>,
    /// `max_nodes`
    pub max_nodes: Option<u64>,
}

impl SizingQuery {
    /// The configured policy with these overrides; 400 `bad_policy` when
    /// the bounds cross.
    pub fn apply(&self, configured: Sizing) -> Result<Sizing, ApiError> {
        let sizing = Sizing {
            node_rps: self.node_rps.map_or(configured.node_rps, |v| v as f64),
            min_nodes: self.min_nodes.map_or(configured.min_nodes, |v| v as usize),
            max_nodes: self.max_nodes.map_or(configured.max_nodes, |v| v as usize),
        };
        if sizing.min_nodes > sizing.max_nodes {
            return Err(ApiError::new(
                ErrorCode::BadPolicy,
                format!(
                    "min_nodes ({}) is more than max_nodes ({})",
                    sizing.min_nodes, sizing.max_nodes
                ),
            ));
        }
        Ok(sizing)
    }
}

const NODES: &[&str] = &["GET", "POST"];
const NODE: &[&str] = &["GET", "DELETE"];

/// Parses `/admin/{rest}`.
pub fn parse(req: &HttpRequest, rest: &[&str]) -> Result<AdminRoute, ApiError> {
    let m = &req.method;
    let wrong = |allowed: &[&str]| Err(ApiError::method(m.as_str(), allowed));
    match rest {
        ["nodes"] => match m {
            Method::Get => Ok(AdminRoute::Nodes),
            Method::Post => Ok(AdminRoute::Add),
            _ => wrong(NODES),
        },
        ["nodes", id] => match m {
            Method::Get => Ok(AdminRoute::Node(parse_node(id)?)),
            Method::Delete => Ok(AdminRoute::Retire(parse_node(id)?)),
            _ => wrong(NODE),
        },
        ["nodes", id, "peer"] => match m {
            Method::Post => Ok(AdminRoute::Peer(parse_node(id)?)),
            _ => wrong(&["POST"]),
        },
        ["nodes", id, "retire"] => match m {
            Method::Post => Ok(AdminRoute::Retire(parse_node(id)?)),
            _ => wrong(&["POST"]),
        },
        ["traffic"] => match m {
            Method::Get => Ok(AdminRoute::Traffic(parse_sizing(req)?)),
            _ => wrong(&["GET"]),
        },
        ["autoscale"] => match m {
            Method::Post => Ok(AdminRoute::Autoscale(parse_sizing(req)?)),
            _ => wrong(&["POST"]),
        },
        ["live"] => match m {
            Method::Get => Ok(AdminRoute::Live),
            _ => wrong(&["GET"]),
        },
        ["partition"] => match m {
            Method::Put => Ok(AdminRoute::Partition(parse_groups(&req.body)?)),
            Method::Delete => Ok(AdminRoute::Partition(Vec::new())),
            _ => wrong(&["PUT", "DELETE"]),
        },
        _ => Err(ApiError::not_found(&req.path)),
    }
}

/// `{"groups": [["node-0", "node-1"], ["node-2"]]}`: no node in two groups.
fn parse_groups(body: &[u8]) -> Result<Vec<NodeSet>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        groups: Vec<Vec<String>>,
    }
    let bad = |m: String| ApiError::new(ErrorCode::BadPartition, m);
    let parsed: Body =
        json_object(body, r#"{"groups": [["node-0", ...], ...]}"#).map_err(|e| bad(e.message))?;
    let mut seen = NodeSet::new();
    let mut groups = Vec::new();
    for g in parsed.groups {
        let mut set = NodeSet::new();
        for id in g {
            let id: NodeId = id
                .parse()
                .map_err(|e: crate::node_id::BadNodeId| bad(e.to_string()))?;
            if !seen.insert(id) {
                return Err(bad(format!("{id} is in two groups")));
            }
            set.insert(id);
        }
        groups.push(set);
    }
    Ok(groups)
}

#[cfg(test)]
mod test {
    use super::*;

    fn req(method: Method, url: &str, body: &str) -> HttpRequest {
        let mut r = HttpRequest::new(method, url);
        r.body = body.as_bytes().to_vec();
        r
    }

    #[test]
    fn partitions_parse_and_refuse_overlaps_and_arrays() {
        let ok = req(
            Method::Put,
            "/admin/partition",
            r#"{"groups": [["node-0"], ["node-1", "node-2"]]}"#,
        );
        let AdminRoute::Partition(groups) = parse(&ok, &["partition"]).unwrap() else {
            panic!("a partition");
        };
        assert_eq!(groups.len(), 2);
        for body in [
            r#"{"groups": [["node-0"], ["node-0"]]}"#,
            r#"[[["node-0"]]]"#,
            r#"{"groups": [["x"]]}"#,
        ] {
            let e = parse(&req(Method::Put, "/admin/partition", body), &["partition"]).unwrap_err();
            assert_eq!(e.error, ErrorCode::BadPartition, "{body}");
        }
        let heal = req(Method::Delete, "/admin/partition", "");
        assert_eq!(
            parse(&heal, &["partition"]),
            Ok(AdminRoute::Partition(Vec::new()))
        );
    }

    #[test]
    fn unknown_methods_and_paths() {
        let q = req(Method::Other("QUERY".into()), "/admin/traffic", "");
        let e = parse(&q, &["traffic"]).unwrap_err();
        assert_eq!((e.status(), e.message.contains("use GET")), (405, true));
        let p = req(Method::Post, "/admin/partition", "");
        let e = parse(&p, &["partition"]).unwrap_err();
        assert_eq!(e.message, "POST is not allowed here; use PUT or DELETE");
        assert_eq!(e.allow.as_deref(), Some("PUT, DELETE"), "the Allow header");
        assert_eq!(parse(&q, &["nope"]).unwrap_err().status(), 404);
        let bad = req(Method::Get, "/admin/nodes/node-x", "");
        assert_eq!(
            parse(&bad, &["nodes", "node-x"]).unwrap_err().error,
            ErrorCode::BadNode
        );
    }
}
