//! `GET /admin/traffic` and `POST /admin/autoscale`: the cluster's client
//! traffic, summed from what each active node reports, and the one resize
//! step the [`Sizing`] policy calls for.

use super::admin::SizingQuery;
use super::call::{Added, Retired};
use super::http::HttpRequest;
use crate::engine::Sizing;
use crate::error::{ApiError, ErrorCode};
use crate::{NodeId, NodeMap};
use serde::{Serialize, Serializer};

/// What one node reports of the client requests it served.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NodeTraffic {
    /// since the node's object started
    pub total: u64,
    /// over the node's rate window
    pub per_second: f64,
}

/// The next resize step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// the cluster has the recommended size, or a node did not answer
    Stay,
    /// add one node
    Add,
    /// retire this node (a draining one first, else the least busy)
    Remove(NodeId),
}

/// The cluster's traffic and the step towards the recommended size.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// each active node's traffic; `None` when it did not answer
    pub nodes: NodeMap<Option<NodeTraffic>>,
    /// the sum of the active nodes' rates
    pub per_second: f64,
    /// the policy the recommendation follows
    pub sizing: Sizing,
    /// active nodes for this traffic
    pub recommended: usize,
    /// what `POST /admin/autoscale` does next
    pub step: Step,
}

impl Report {
    /// Sums the answers of the active nodes and picks the next step. A
    /// retirement under way is finished first; with an answer missing the
    /// total is unknown, so nothing changes.
    pub fn new(
        answers: NodeMap<Option<NodeTraffic>>,
        draining: Option<NodeId>,
        sizing: Sizing,
    ) -> Report {
        let per_second = answers.values().flatten().map(|t| t.per_second).sum();
        let recommended = sizing.recommend(answers.len(), per_second);
        let complete = answers.values().all(Option::is_some);
        let least_busy = answers
            .iter()
            .filter_map(|(id, t)| t.map(|t| (t.per_second, t.total, *id)))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)))
            .map(|(_, _, id)| id);
        let step = match draining {
            Some(id) => Step::Remove(id),
            None if !complete => Step::Stay,
            None if recommended > answers.len() => Step::Add,
            None if recommended < answers.len() => least_busy.map_or(Step::Stay, Step::Remove),
            None => Step::Stay,
        };
        Report {
            nodes: answers,
            per_second,
            sizing,
            recommended,
            step,
        }
    }

    /// The body of `GET /admin/traffic`.
    pub fn view(&self) -> TrafficView {
        let (action, node) = match self.step {
            Step::Stay => ("none", None),
            Step::Add => ("add", None),
            Step::Remove(id) => ("remove", Some(id)),
        };
        TrafficView {
            nodes: self.nodes.iter().map(|(id, t)| (*id, Answer(*t))).collect(),
            active: self.nodes.len(),
            per_second: self.per_second,
            policy: Policy {
                node_rps: self.sizing.node_rps,
                min_nodes: self.sizing.min_nodes,
                max_nodes: self.sizing.max_nodes,
            },
            recommended: self.recommended,
            next: Next { action, node },
            result: None,
        }
    }
}

/// A node's traffic, or `"unreachable"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Answer(pub Option<NodeTraffic>);

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(t) => t.serialize(s),
            None => s.serialize_str("unreachable"),
        }
    }
}

/// The sizing policy, as shown.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Policy {
    /// requests per second one node should serve at most
    pub node_rps: f64,
    /// fewest active nodes
    pub min_nodes: usize,
    /// most active nodes
    pub max_nodes: usize,
}

/// The next step, as shown: `{"action": "add" | "remove" | "none", "node"}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Next {
    /// what autoscale does next
    pub action: &'static str,
    /// the node it retires
    pub node: Option<NodeId>,
}

/// What an autoscale step did: the reply of the add or the retirement.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StepResult {
    /// a node was added
    Added(Added),
    /// a node was retired
    Retired(Retired),
    /// the step failed (a retirement still handing over, say)
    Failed(ApiError),
}

/// `GET /admin/traffic`, and with `result` `POST /admin/autoscale`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrafficView {
    /// each active node's traffic
    pub nodes: NodeMap<Answer>,
    /// how many active nodes there are
    pub active: usize,
    /// their summed rate
    pub per_second: f64,
    /// the policy
    pub policy: Policy,
    /// the active nodes this traffic calls for
    pub recommended: usize,
    /// the next step
    pub next: Next,
    /// what the step did (autoscale only; `null` when it did nothing)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Option<StepResult>>,
}

/// The sizing policy's overrides in the query: `node_rps`, `min_nodes`,
/// `max_nodes` (to ask "what if", or to resize by hand).
pub fn parse_sizing(req: &HttpRequest) -> Result<SizingQuery, ApiError> {
    let number = |name: &str, max: u64| -> Result<Option<u64>, ApiError> {
        let Some(text) = req.query(name) else {
            return Ok(None);
        };
        match text.parse::<u64>() {
            Ok(v) if (1..=max).contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::new(
                ErrorCode::BadPolicy,
                format!(
                    "`{name}` must be a whole number from 1 to {max}, not {:?}",
                    crate::error::clip(text)
                ),
            )),
        }
    };
    Ok(SizingQuery {
        node_rps: number("node_rps", 1_000_000)?,
        min_nodes: number("min_nodes", 64)?,
        max_nodes: number("max_nodes", 64)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Sizing = Sizing {
        node_rps: 10.0,
        min_nodes: 2,
        max_nodes: 6,
    };

    fn answers(rates: &[Option<f64>]) -> NodeMap<Option<NodeTraffic>> {
        rates
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let t = r.map(|per_second| NodeTraffic {
                    total: (per_second * 10.0) as u64,
                    per_second,
                });
                (NodeId(i as u32), t)
            })
            .collect()
    }

    #[test]
    fn a_busy_cluster_grows() {
        let r = Report::new(answers(&[Some(12.0), Some(11.0), Some(9.0)]), None, POLICY);
        assert_eq!(r.per_second, 32.0);
        assert_eq!(r.recommended, 4);
        assert_eq!(r.step, Step::Add);
    }

    #[test]
    fn a_quiet_cluster_retires_its_least_busy_node() {
        let r = Report::new(
            answers(&[Some(1.0), Some(0.5), Some(0.5), Some(2.0)]),
            None,
            POLICY,
        );
        assert_eq!(r.recommended, 2);
        // Equal rates and totals: the higher id goes.
        assert_eq!(r.step, Step::Remove(NodeId(2)));
    }

    #[test]
    fn a_retirement_under_way_goes_first_and_a_silent_node_holds_changes_back() {
        let quiet = answers(&[Some(0.0), Some(0.0), Some(0.0)]);
        let r = Report::new(quiet, Some(NodeId(7)), POLICY);
        assert_eq!(r.step, Step::Remove(NodeId(7)));
        let r = Report::new(answers(&[Some(0.0), None, Some(0.0)]), None, POLICY);
        assert_eq!(r.step, Step::Stay);
        let json = serde_json::to_value(r.view()).unwrap();
        assert_eq!(json["nodes"]["node-1"], "unreachable");
        assert_eq!(json["next"]["action"], "none");
        assert!(json.get("result").is_none());
    }

    #[test]
    fn the_query_overrides_the_policy_and_bad_values_are_refused() {
        use crate::api::http::Method;
        let sizing = |url: &str| {
            let req = HttpRequest::new(Method::Get, url);
            parse_sizing(&req).and_then(|q| q.apply(POLICY))
        };
        let s = sizing("/admin/traffic?min_nodes=5&max_nodes=5");
        assert_eq!(
            s,
            Ok(Sizing {
                min_nodes: 5,
                max_nodes: 5,
                ..POLICY
            })
        );
        assert_eq!(sizing("/admin/traffic"), Ok(POLICY));
        for bad in ["node_rps=0", "min_nodes=65", "max_nodes=x", "min_nodes=7"] {
            let e = sizing(&format!("/?{bad}")).unwrap_err();
            assert_eq!(e.error, ErrorCode::BadPolicy, "{bad}: {}", e.message);
        }
    }
}
