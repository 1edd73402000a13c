//! Helpers for the engine's unit tests: nodes over the built-in kinds,
//! register rows, and a loop that delivers what nodes send.

use super::{Config, Effect, Message, Node, ObjectId};
use crate::crdt::{MvRegister, Payload};
use crate::kinds::CATALOG;
use crate::NodeId;

/// Node `id` of a cluster that starts with `nodes` nodes.
pub fn node(id: u32, nodes: u32) -> Node {
    let config = Config {
        initial_nodes: nodes,
        ..Config::default()
    };
    Node::new(NodeId(id), config, CATALOG)
}

/// Nodes `0..n` of a cluster of `config`.
pub fn cluster(n: u32, config: &Config) -> Vec<Node> {
    (0..n)
        .map(|i| Node::new(NodeId(i), config.clone(), CATALOG))
        .collect()
}

/// The register `kv:NAME`.
pub fn kv(name: &str) -> ObjectId {
    ObjectId::new("kv", name).expect("a valid name")
}

/// Writes `text` to register `object` at `node`, over what it holds.
pub fn put(node: &mut Node, object: &ObjectId, text: &str, now: u64) {
    let mut x = node.exec(object.clone(), now);
    let held: MvRegister = x.row_as("");
    let stamp = x.stamp("");
    x.put(
        "",
        &held.write(stamp, held.context(), Payload::Text(text.into())),
    );
    x.commit().expect("accepts writes");
}

/// Deletes what `node` holds of register `object`.
pub fn delete(node: &mut Node, object: &ObjectId, now: u64) {
    let mut x = node.exec(object.clone(), now);
    let held: MvRegister = x.row_as("");
    x.put("", &held.delete(held.context()));
    x.commit().expect("accepts writes");
}

/// The messages among `effects`.
pub fn sends(effects: Vec<Effect>) -> Vec<(NodeId, Message)> {
    effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Send { to, message } => Some((to, message)),
            _ => None,
        })
        .collect()
}

/// Delivers what `nodes` send at `now`, and what that causes, until none
/// is left, but for the messages `lose(from, to, message)` picks.
pub fn deliver(
    nodes: &mut [Node],
    now: u64,
    mut lose: impl FnMut(NodeId, NodeId, &Message) -> bool,
) {
    let mut queue = std::collections::VecDeque::new();
    loop {
        for n in nodes.iter_mut() {
            let from = n.id();
            queue.extend(
                sends(n.take_effects())
                    .into_iter()
                    .map(|(to, m)| (from, to, m)),
            );
        }
        let Some((from, to, message)) = queue.pop_front() else {
            return;
        };
        if lose(from, to, &message) {
            continue;
        }
        if let Some(n) = nodes.iter_mut().find(|n| n.id() == to) {
            n.receive(from, message, now);
        }
    }
}
