//! The seed's whole-state gossip, modelled on the same run: every gossip
//! interval of the measured window, every node sends each other node one
//! frame holding every register the two replicate, as the sender holds it.

use crate::tally::Tally;
use edge_crdt::codec;
use edge_crdt::crdt::MvRegister;
use edge_crdt::engine::{Effect, Engine, MemoryStore, ObjectId};
use edge_crdt::NodeId;
use std::collections::HashMap;

/// One seed round in this many is encoded in full to check the sums.
const CHECK_EVERY: u64 = 40;

pub struct SeedModel {
    /// `shared[a][b]`: the keys of which both `a` and `b` are replicas.
    shared: Vec<Vec<Vec<usize>>>,
    /// `sizes[n][k]`: the postcard size of `(object, register)` at node `n`,
    /// 0 if absent.
    sizes: Vec<Vec<u32>>,
    /// key by object, to follow the stored rows
    index: HashMap<ObjectId, usize>,
    pub frames: Tally,
    pub rounds: u64,
    pub checked: u64,
}

impl SeedModel {
    pub fn new(nodes: usize, keys: &[ObjectId], replicas: &[Vec<NodeId>]) -> Self {
        let mut shared = vec![vec![Vec::new(); nodes]; nodes];
        for (k, r) in replicas.iter().enumerate() {
            for a in r {
                for b in r.iter().filter(|b| *b != a) {
                    shared[a.0 as usize][b.0 as usize].push(k);
                }
            }
        }
        SeedModel {
            shared,
            sizes: vec![vec![0; keys.len()]; nodes],
            index: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i))
                .collect(),
            frames: Tally::default(),
            rounds: 0,
            checked: 0,
        }
    }

    /// Follows a storage effect of node `n`.
    pub fn stored(&mut self, n: usize, effect: &Effect) {
        match effect {
            Effect::StoreRow { object, state, .. } => {
                let k = self.index[object];
                let id = object.as_str().len();
                self.sizes[n][k] = (varint_len(id) + id + state.len()) as u32;
            }
            Effect::DeleteRow { object, .. } => self.sizes[n][self.index[object]] = 0,
            _ => {}
        }
    }

    /// The encoded size of key `k` with its register at node `n`, 0 if absent.
    pub fn size(&self, n: usize, k: usize) -> u32 {
        self.sizes[n][k]
    }

    /// One round: every node sends each other replica all the registers
    /// the two share. Every `CHECK_EVERY`th round is encoded in full.
    pub fn round(&mut self, engines: &[Engine<MemoryStore>], keys: &[ObjectId]) {
        let check = self.rounds.is_multiple_of(CHECK_EVERY);
        for a in 0..engines.len() {
            for b in (0..engines.len()).filter(|b| *b != a) {
                let held = self.shared[a][b].iter().map(|k| self.sizes[a][*k]);
                let entries = held.clone().filter(|s| *s > 0).count();
                if entries == 0 {
                    continue;
                }
                let sum: u64 = held.map(u64::from).sum();
                let bytes = 1 + varint_len(entries) + sum as usize;
                if check {
                    let frame = self.frame(&engines[a], keys, &self.shared[a][b]);
                    assert_eq!(
                        codec::encode(&frame).len(),
                        bytes,
                        "seed frame node-{a} -> node-{b}: summed size differs from the encoding"
                    );
                    self.checked += 1;
                }
                self.frames.add(bytes, entries);
            }
        }
        self.rounds += 1;
    }

    /// The seed's frame: the registers `engine` holds of `shared`.
    fn frame(
        &self,
        engine: &Engine<MemoryStore>,
        keys: &[ObjectId],
        shared: &[usize],
    ) -> Vec<(ObjectId, MvRegister)> {
        shared
            .iter()
            .filter_map(|k| {
                let bytes = engine.store.row(&keys[*k], "")?;
                let register = postcard::from_bytes(bytes).expect("a stored register decodes");
                Some((keys[*k].clone(), register))
            })
            .collect()
    }
}

/// The length of a postcard (LEB128) varint of `n`.
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}
