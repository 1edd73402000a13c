//! A node's storage kept in memory, for simulations, benchmarks and tests:
//! it records the storage effects and answers what a node needs, the way
//! an adapter does with real storage.
//!
//! ```
//! use edge_crdt::cluster::{AllNodes, Config, MemoryStore, Node};
//! use edge_crdt::crdt::PnCounter;
//! use edge_crdt::NodeId;
//! let mut node = Node::new(NodeId(0), Config::default(), AllNodes);
//! let mut disk = MemoryStore::default();
//! node.write("hits", 5, |c: &PnCounter, at| c.add(at.node, 2)).unwrap();
//! node.take_effects().iter().for_each(|e| disk.record(e));
//! // A restart: only the membership and leaf digests come back at once.
//! let mut again = Node::new(NodeId(0), Config::default(), AllNodes);
//! disk.restore(&mut again);
//! let key = "hits".to_string();
//! let needs = again.needs_key(&key);
//! disk.supply(&mut again, needs);
//! assert_eq!(again.read("hits").map(|c| c.value()), Some(2));
//! ```

use super::{Effect, Key, Leaf, LeafRow, Membership, Needs, Node, Partition, Placement, Row};
use crate::crdt::Crdt;
use std::collections::BTreeMap;

/// The rows a node has stored.
#[derive(Clone, Debug)]
pub struct MemoryStore<T> {
    members: Option<Membership>,
    partition: Option<Partition>,
    clock_floor: Option<u64>,
    states: BTreeMap<Key, (Leaf, Row<T>)>,
    leaves: BTreeMap<Leaf, LeafRow>,
}

impl<T> Default for MemoryStore<T> {
    fn default() -> Self {
        MemoryStore {
            members: None,
            partition: None,
            clock_floor: None,
            states: BTreeMap::new(),
            leaves: BTreeMap::new(),
        }
    }
}

impl<T: Crdt> MemoryStore<T> {
    /// Performs `effect` if it is a storage effect.
    pub fn record(&mut self, effect: &Effect<T>) {
        match effect {
            Effect::Store {
                key,
                leaf,
                state,
                own_writes,
            } => {
                let row = Row {
                    state: state.clone(),
                    own_writes: *own_writes,
                };
                self.states.insert(key.clone(), (*leaf, row));
            }
            Effect::Delete { key } => {
                self.states.remove(key);
            }
            Effect::StoreLeaf { leaf, row } if *row == LeafRow::default() => {
                self.leaves.remove(leaf);
            }
            Effect::StoreLeaf { leaf, row } => {
                self.leaves.insert(*leaf, *row);
            }
            Effect::StoreMembers(m) => self.members = Some(m.clone()),
            Effect::StorePartition(p) => self.partition = Some(p.clone()),
            Effect::StoreClock(floor) => self.clock_floor = Some(*floor),
            Effect::Send { .. } | Effect::Publish { .. } | Effect::Heartbeat => {}
        }
    }

    /// Starts `node` from these rows, as after a restart.
    pub fn restore<P: Placement>(&self, node: &mut Node<T, P>) {
        node.restore(
            self.members.clone(),
            self.partition.clone(),
            self.clock_floor,
            self.leaves.iter().map(|(l, r)| (*l, *r)),
        );
    }

    /// Loads what `node` needs.
    pub fn supply<P: Placement>(&self, node: &mut Node<T, P>, needs: Needs) {
        if needs.is_empty() {
            return;
        }
        let keys = needs
            .keys
            .into_iter()
            .map(|k| {
                let row = self.states.get(&k).map(|(_, r)| r.clone());
                (k, row)
            })
            .collect();
        let leaves = needs
            .leaves
            .into_iter()
            .map(|leaf| {
                let states = self
                    .states
                    .iter()
                    .filter(|(_, (l, _))| *l == leaf)
                    .map(|(k, (_, r))| (k.clone(), r.clone()))
                    .collect();
                (leaf, states)
            })
            .collect();
        node.load(keys, leaves);
    }

    /// Every stored state.
    pub fn states(&self) -> impl Iterator<Item = (&Key, &T)> {
        self.states.iter().map(|(k, (_, r))| (k, &r.state))
    }

    /// The stored membership.
    pub fn members(&self) -> Option<&Membership> {
        self.members.as_ref()
    }
}
