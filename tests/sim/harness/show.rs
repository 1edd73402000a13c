//! Text for reports and traces: row states decoded, messages in brief.

use super::nodes::decode;
use super::Sim;
use crate::oracle::payload_text as text;
use edge_crdt::crdt::{Element, LwwSet, MvRegister, PnCounter};
use edge_crdt::engine::{Message, ObjectId, RowStates};

/// A row's state, decoded for people.
pub fn describe(object: &ObjectId, state: &[u8]) -> String {
    match object.prefix() {
        "counter" => format!("{object}={}", decode::<PnCounter>(state).value()),
        "set" => {
            let members: Vec<String> = decode::<LwwSet>(state)
                .members()
                .map(Element::to_string)
                .collect();
            format!("{object}={{{}}}", members.join(","))
        }
        "kv" => {
            let reg: MvRegister = decode(state);
            let values: Vec<String> = reg
                .siblings()
                .map(|(d, v)| format!("{}@{}:{}", text(&v.payload), d.node.0, d.counter))
                .collect();
            format!("{object}=[{}]", values.join("|"))
        }
        _ => format!("{object}={} bytes", state.len()),
    }
}

fn carries(rows: &RowStates, key: &str) -> bool {
    rows.iter().any(|(o, _)| o.as_str() == key)
}

/// Whether `message` carries or names the object `key`, for tracing.
pub fn mentions(message: &Message, key: &str) -> bool {
    match message {
        Message::Gossip { rows, want, .. } => {
            carries(rows, key) || want.iter().any(|(o, _)| o.as_str() == key)
        }
        Message::Transfer { rows, .. } => carries(rows, key),
        Message::Objects { leaves } => leaves
            .iter()
            .any(|(_, os)| os.iter().any(|(o, _)| o.as_str() == key)),
        Message::Rows { ranges } => ranges.iter().any(|r| r.object.as_str() == key),
        Message::Reap { rows, .. } | Message::Forget { rows } => {
            rows.iter().any(|(o, _, _)| o.as_str() == key)
        }
        Message::Reaped { refused, .. } => refused.iter().any(|(o, _)| o.as_str() == key),
        Message::Sync { payloads } => payloads.iter().any(|(o, _)| o.as_str() == key),
        Message::Digest { .. }
        | Message::Buckets { .. }
        | Message::Leaves { .. }
        | Message::Transferred { .. }
        | Message::Handoff { .. }
        | Message::HandoffDone
        | Message::Same => false,
    }
}

/// A message in brief, with the state of `key` it carries.
pub fn brief(message: &Message, key: &str) -> String {
    let state = |rows: &RowStates| {
        let carried = rows.iter().filter(|(o, _)| o.as_str() == key);
        let states = carried.flat_map(|(o, rs)| rs.iter().map(move |(_, s)| describe(o, s)));
        states.collect::<Vec<_>>().join(" ")
    };
    match message {
        Message::Gossip { rows, want, .. } => {
            let wanted = want.iter().any(|(o, _)| o.as_str() == key);
            format!("Gossip {} want {wanted}", state(rows))
        }
        Message::Transfer {
            leaf, page, rows, ..
        } => format!("Transfer leaf {leaf} page {page} {}", state(rows)),
        other => format!("{other:?}").chars().take(160).collect(),
    }
}

impl Sim {
    /// Every node: its status, membership, leaves and what its disk holds.
    pub fn report(&self) -> String {
        let mut report = String::new();
        for (id, slot) in &self.slots {
            let tables = &slot.disk().tables;
            let values: Vec<String> = tables
                .rows()
                .map(|(o, _, s)| describe(o, &s.state))
                .collect();
            match slot.engine() {
                None => report += &format!("\n  {id}: crashed; disk {}", values.join(" ")),
                Some(e) => {
                    let n = &e.node;
                    report += &format!(
                        "\n  {id}: {:?} {} members {:?} leaves {:?}",
                        n.status(),
                        values.join(" "),
                        n.members().all(),
                        n.leaf_counts()
                    );
                }
            }
        }
        report
    }
}
