//! `GET /admin/traffic` and `POST /admin/autoscale`: the cluster's client
//! traffic, summed from what each active node reports, and the one resize
//! step the [`Sizing`] policy calls for.

use super::{query_param, ApiError};
use crate::cluster::Sizing;
use crate::NodeId;
use serde::Serialize;
use std::collections::BTreeMap;

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
    pub nodes: BTreeMap<NodeId, Option<NodeTraffic>>,
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
        answers: BTreeMap<NodeId, Option<NodeTraffic>>,
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

    /// The JSON body of `GET /admin/traffic`.
    pub fn to_json(&self) -> serde_json::Value {
        let nodes: BTreeMap<String, serde_json::Value> = self
            .nodes
            .iter()
            .map(|(id, t)| {
                let v = t.map_or(serde_json::json!("unreachable"), |t| serde_json::json!(t));
                (id.to_string(), v)
            })
            .collect();
        let (step, node) = match self.step {
            Step::Stay => ("none", None),
            Step::Add => ("add", None),
            Step::Remove(id) => ("remove", Some(id.to_string())),
        };
        serde_json::json!({
            "nodes": nodes,
            "active": self.nodes.len(),
            "per_second": self.per_second,
            "policy": {
                "node_rps": self.sizing.node_rps,
                "min_nodes": self.sizing.min_nodes,
                "max_nodes": self.sizing.max_nodes,
            },
            "recommended": self.recommended,
            "next": { "action": step, "node": node },
        })
    }
}

/// The configured policy, with what the query overrides: `node_rps`,
/// `min_nodes` and `max_nodes` (to ask "what if", or to resize by hand).
pub fn parse_sizing(url: &str, configured: Sizing) -> Result<Sizing, ApiError> {
    let number = |name: &str, max: u64| -> Result<Option<u64>, ApiError> {
        let Some(text) = query_param(url, name) else {
            return Ok(None);
        };
        match text.parse::<u64>() {
            Ok(v) if (1..=max).contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::new(
                400,
                "bad_policy",
                format!("`{name}` must be a whole number from 1 to {max}, not {text:?}"),
            )),
        }
    };
    let sizing = Sizing {
        node_rps: number("node_rps", 1_000_000)?.map_or(configured.node_rps, |v| v as f64),
        min_nodes: number("min_nodes", 64)?.map_or(configured.min_nodes, |v| v as usize),
        max_nodes: number("max_nodes", 64)?.map_or(configured.max_nodes, |v| v as usize),
    };
    if sizing.min_nodes > sizing.max_nodes {
        return Err(ApiError::new(
            400,
            "bad_policy",
            format!(
                "min_nodes ({}) is more than max_nodes ({})",
                sizing.min_nodes, sizing.max_nodes
            ),
        ));
    }
    Ok(sizing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Sizing = Sizing {
        node_rps: 10.0,
        min_nodes: 2,
        max_nodes: 6,
    };

    fn answers(rates: &[Option<f64>]) -> BTreeMap<NodeId, Option<NodeTraffic>> {
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
        assert_eq!(r.to_json()["nodes"]["node-1"], "unreachable");
        assert_eq!(r.to_json()["next"]["action"], "none");
    }

    #[test]
    fn the_query_overrides_the_policy_and_bad_values_are_refused() {
        let s = parse_sizing("https://x/admin/traffic?min_nodes=5&max_nodes=5", POLICY);
        assert_eq!(
            s,
            Ok(Sizing {
                min_nodes: 5,
                max_nodes: 5,
                ..POLICY
            })
        );
        assert_eq!(parse_sizing("https://x/admin/traffic", POLICY), Ok(POLICY));
        for bad in ["node_rps=0", "min_nodes=65", "max_nodes=x", "min_nodes=7"] {
            let e = parse_sizing(&format!("https://x/?{bad}"), POLICY).unwrap_err();
            assert_eq!(
                (e.status, e.error),
                (400, "bad_policy"),
                "{bad}: {}",
                e.message
            );
        }
    }
}
