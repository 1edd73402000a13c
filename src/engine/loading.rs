//! What an input needs in memory, and taking it from storage. A node
//! restored from storage holds only its membership and leaf rows; before
//! each input the driver asks what is missing ([`Node::needs_object`],
//! [`Node::needs_for`], [`Node::wanted`]), loads it ([`Node::load`]) and
//! asks again, since what a step needs can depend on what the step before
//! loaded (a leaf's objects, then their rows).

use super::needs::{Loaded, Needs};
use super::node::Node;
use super::reap::REAP_LEAVES;
use super::{Leaf, Message, ObjectId, RowKey, Status};
use crate::NodeId;

impl Node {
    /// The rows (states, or absence) of `object` that are not in memory.
    fn need_rows<'a>(
        &self,
        object: &ObjectId,
        rows: impl IntoIterator<Item = &'a RowKey>,
    ) -> Needs {
        let mut named = false;
        let mut rows: Vec<(ObjectId, RowKey)> = rows
            .into_iter()
            .inspect(|_| named = true)
            .filter(|r| !self.knows_row(object, r))
            .map(|r| (object.clone(), r.clone()))
            .collect();
        if named {
            // A change of any row may move the kind's local rows.
            rows.extend(self.need_locals(object));
        }
        Needs {
            rows,
            ..Needs::default()
        }
    }

    /// The local rows of `object` that are not in memory.
    fn need_locals(&self, object: &ObjectId) -> Vec<(ObjectId, RowKey)> {
        let locals = self.locals(object).iter();
        let unknown = locals.filter(|l| !self.knows_row(object, l));
        unknown.map(|l| (object.clone(), (*l).to_owned())).collect()
    }

    /// The rows arriving from a peer, and those their kind reads to take
    /// them.
    fn need_arrivals(&self, object: &ObjectId, rows: &[(RowKey, Vec<u8>)]) -> Needs {
        let mut keys: Vec<RowKey> = rows.iter().map(|(r, _)| r.clone()).collect();
        if let Some(kind) = self.row_type(object) {
            keys.extend(rows.iter().flat_map(|(r, s)| kind.reads(r, s)));
        }
        self.need_rows(object, &keys)
    }

    /// Every row of `object` with its state: its listing first, then the
    /// states it lacks.
    fn need_whole(&self, object: &ObjectId) -> Needs {
        if !self.knows_rows(object) {
            return Needs {
                listings: vec![object.clone()],
                ..Needs::default()
            };
        }
        let missing: Vec<RowKey> = self
            .table
            .get(object)
            .into_iter()
            .flat_map(|o| o.rows.iter())
            .filter(|(_, s)| s.state.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        self.need_rows(object, &missing)
    }

    /// Every row of every object of `leaf`, with states.
    fn need_leaf_whole(&self, leaf: Leaf) -> Needs {
        if !self.knows_leaf(leaf) {
            return Needs {
                leaves: vec![leaf],
                ..Needs::default()
            };
        }
        let objects: Vec<ObjectId> = self
            .table
            .leaf_objects(leaf)
            .map(|(id, _)| id.clone())
            .collect();
        objects
            .iter()
            .fold(Needs::default(), |n, id| n.and(self.need_whole(id)))
    }

    /// What a client operation on `object` needs: the rows it names, or
    /// with `whole` every row, and its kind's local rows.
    pub fn needs_object(&self, object: &ObjectId, rows: &[RowKey], whole: bool) -> Needs {
        let mut named = self.need_rows(object, rows);
        named.rows.extend(self.need_locals(object));
        let meta = if self.knows_object(object) {
            Needs::default()
        } else {
            Needs {
                objects: vec![object.clone()],
                ..Needs::default()
            }
        };
        let all = if whole {
            self.need_whole(object)
        } else {
            Needs::default()
        };
        named.and(meta).and(all)
    }

    /// What handling `message` needs in memory. Ask again after loading:
    /// a comparison needs a leaf's objects before their rows.
    pub fn needs_for(&self, from: NodeId, message: &Message) -> Needs {
        match message {
            Message::Gossip {
                members,
                rows,
                want,
            } => {
                // Objects this node does not replicate in the view the
                // frame brings are skipped: no need to read them.
                let mut view = self.members.clone();
                if let Some(m) = members {
                    view.merge(m);
                }
                let mine = rows.iter().filter(|(o, _)| {
                    self.placement
                        .leaf_replicas(self.leaf(o), &view)
                        .contains(&self.id)
                });
                let mut needs = Needs::default();
                for (object, rows) in mine {
                    needs = needs.and(self.need_arrivals(object, rows));
                }
                for (object, rows) in want {
                    needs = needs.and(self.need_rows(object, rows));
                }
                needs
            }
            Message::Leaves { buckets, leaves } => Needs {
                leaves: self
                    .differing_leaves(from, buckets, leaves)
                    .into_iter()
                    .filter(|l| !self.knows_leaf(*l))
                    .collect(),
                ..Needs::default()
            },
            Message::Objects { leaves } => self.needs_objects(from, leaves),
            Message::Rows { ranges } => {
                let mut needs = Needs::default();
                for range in ranges
                    .iter()
                    .filter(|r| self.shares(self.leaf(&r.object), from))
                {
                    needs = if self.knows_rows(&range.object) {
                        needs.and(self.need_rows(&range.object, &self.compare_range(range).0))
                    } else {
                        needs.and(Needs {
                            listings: vec![range.object.clone()],
                            ..Needs::default()
                        })
                    };
                }
                needs
            }
            Message::Transfer { rows, .. } => rows.iter().fold(Needs::default(), |n, (o, rs)| {
                n.and(self.need_arrivals(o, rs))
            }),
            Message::Reap { rows, .. } | Message::Forget { rows } => {
                rows.iter().fold(Needs::default(), |n, (o, r, _)| {
                    if self.is_replica(self.leaf(o)) {
                        n.and(self.need_rows(o, [r]))
                    } else {
                        n
                    }
                })
            }
            Message::Sync { payloads } => self.need_sync(payloads),
            Message::Digest { .. }
            | Message::Buckets { .. }
            | Message::Transferred { .. }
            | Message::Handoff { .. }
            | Message::HandoffDone
            | Message::Same
            | Message::Reaped { .. } => Needs::default(),
        }
    }

    /// For [`Message::Sync`]: what each kind names for its payload, or
    /// its whole object.
    fn need_sync(&self, payloads: &[(ObjectId, Vec<u8>)]) -> Needs {
        payloads.iter().fold(Needs::default(), |n, (o, p)| {
            let Some(kind) = self.row_type(o) else {
                return n;
            };
            let named = self.need_rows(o, &kind.sync_needs(p));
            let whole = match kind.sync_needs_whole(p) {
                true => self.needs_object(o, &[], true),
                false => Needs::default(),
            };
            n.and(named).and(whole)
        })
    }

    /// For [`Message::Objects`]: the shared leaves' objects, then the
    /// listings of those whose digests differ.
    fn needs_objects(&self, from: NodeId, leaves: &[(Leaf, Vec<(ObjectId, u64)>)]) -> Needs {
        let unknown: Vec<Leaf> = leaves
            .iter()
            .map(|(l, _)| *l)
            .filter(|l| self.shares(*l, from) && !self.knows_leaf(*l))
            .collect();
        if !unknown.is_empty() {
            return Needs {
                leaves: unknown,
                ..Needs::default()
            };
        }
        Needs {
            listings: self
                .differing_objects(from, leaves)
                .into_iter()
                .filter(|id| !self.knows_rows(id))
                .collect(),
            ..Needs::default()
        }
        .tidy()
    }

    /// What the node's own work needs in memory: the leaves it hands
    /// over, whole, and else a few leaves with tombstones to collect.
    /// Load it, then call [`Node::resume`].
    pub fn wanted(&self) -> Needs {
        if !self.is_member() || !self.status().is_live() {
            return Needs::default();
        }
        let wakes = self.need_wakes();
        if !wakes.is_empty() {
            return wakes;
        }
        let moving = self
            .foreign_leaves()
            .into_iter()
            .fold(Needs::default(), |n, l| n.and(self.need_leaf_whole(l)));
        if !moving.is_empty() {
            return moving;
        }
        let collected: Vec<Leaf> = self
            .leaves
            .with_tombstones()
            .filter(|l| self.collects(*l))
            .collect();
        let unknown: Vec<Leaf> = collected
            .iter()
            .copied()
            .filter(|l| !self.knows_leaf(*l))
            .take(REAP_LEAVES)
            .collect();
        if !unknown.is_empty() {
            return Needs {
                leaves: unknown,
                ..Needs::default()
            };
        }
        let listings = collected
            .iter()
            .flat_map(|l| self.table.leaf_objects(*l))
            .filter(|(id, o)| o.meta.tombstones > 0 && !self.knows_rows(id))
            .map(|(id, _)| id.clone())
            .take(REAP_LEAVES * 8)
            .collect();
        Needs {
            listings,
            ..Needs::default()
        }
    }

    /// Takes what storage loaded. What is already in memory is newer and
    /// stays. The clock moves past every stamp in the loaded rows.
    pub fn load(&mut self, loaded: Loaded) {
        for (object, key, row) in &loaded.rows {
            let (Some(kind), Some(row)) = (self.row_type(object), row) else {
                continue;
            };
            if kind.locals().contains(&key.as_str()) {
                continue;
            }
            if let Some(t) = kind.latest_stamp(&row.state) {
                self.clock.observe(t);
            }
        }
        let placement = &self.placement;
        let catalog = self.catalog;
        let locals = |id: &ObjectId| {
            catalog
                .row_type(id.prefix())
                .map_or(&[][..], |k| k.locals())
        };
        self.table.load(
            loaded,
            |id| {
                let policy = catalog.row_type(id.prefix()).map(|k| k.policy());
                placement.leaf(id, policy.unwrap_or(super::Policy::Everywhere))
            },
            |id, row| locals(id).contains(&row),
        );
    }

    /// Continues the work [`Node::wanted`] waited for.
    pub fn resume(&mut self) {
        self.run_wakes(false);
        let draining = matches!(self.status(), Status::Draining { .. });
        self.move_leaves(draining);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::engine::testing::{kv, node, put};
    use crate::engine::{Effect, LeafRow, Membership, MemoryStore, Placement, Policy, Store};

    /// A node restarted with data in the leaf of every one of `keys`.
    fn restarted(me: u32, keys: &[ObjectId]) -> Node {
        let mut n = node(me, 4);
        let row = LeafRow {
            digest: 1,
            tombstones: 0,
        };
        let leaves: Vec<(Leaf, LeafRow)> = keys.iter().map(|k| (n.leaf(k), row)).collect();
        n.restore(None, None, None, leaves);
        n
    }

    #[test]
    fn gossip_needs_only_the_rows_this_node_replicates_in_the_frames_view() {
        let me = NodeId(1);
        let keys: Vec<ObjectId> = (0..40).map(|i| kv(&format!("k{i}"))).collect();
        let n = restarted(me.0, &keys);
        let gossip = |members| Message::Gossip {
            members,
            rows: keys
                .iter()
                .map(|k| (k.clone(), vec![(String::new(), vec![0])]))
                .collect(),
            want: Vec::new(),
        };
        let replicated_in = |view: &Membership| -> Vec<(ObjectId, RowKey)> {
            let p = Placement::new(3, 64);
            let mut mine: Vec<_> = keys
                .iter()
                .filter(|k| p.replicas(k, Policy::Ring, view).contains(&me))
                .map(|k| (k.clone(), String::new()))
                .collect();
            mine.sort();
            mine
        };
        let mine = replicated_in(&Membership::initial(4));
        assert!(!mine.is_empty() && mine.len() < keys.len());
        assert_eq!(n.needs_for(NodeId(0), &gossip(None)).rows, mine);
        // In the frame's view node 0 drains: this node replicates more.
        let mut drained = Membership::initial(4);
        drained.set(NodeId(0), Status::Draining { heir: NodeId(2) });
        let more = replicated_in(&drained);
        assert!(more.len() > mine.len());
        assert_eq!(n.needs_for(NodeId(0), &gossip(Some(drained))).rows, more);
    }

    #[test]
    fn a_client_operation_needs_its_object_and_the_rows_it_names() {
        let key = kv("a");
        let n = restarted(0, std::slice::from_ref(&key));
        let needs = n.needs_object(&key, &[String::new()], false);
        assert_eq!(needs.objects, vec![key.clone()]);
        assert_eq!(needs.rows, vec![(key.clone(), String::new())]);
        assert_eq!(n.needs_object(&key, &[], true).listings, vec![key.clone()]);
        // An object of an empty leaf may keep a log: its metadata is read too.
        let fresh = node(0, 4);
        let mut fresh = fresh;
        fresh.restore(None, None, None, Vec::new());
        assert_eq!(fresh.needs_object(&key, &[], false).objects, vec![key]);
    }

    #[test]
    fn a_restarted_node_loads_a_leaf_it_hands_over_whole_step_by_step() {
        let mut n = node(0, 4);
        let key = (0..)
            .map(|i| kv(&format!("k{i}")))
            .find(|k| n.replicas(k).contains(&NodeId(0)))
            .unwrap();
        put(&mut n, &key, "x", 1_000);
        let mut store = MemoryStore::default();
        store.write(&n.take_effects()).unwrap();
        // Restarted in a view where the leaf moved away from it.
        let mut grown = Membership::initial(4);
        let mut next = 4;
        let placement = Placement::new(3, 64);
        while placement
            .replicas(&key, Policy::Ring, &grown)
            .contains(&NodeId(0))
        {
            grown.set(NodeId(next), Status::Active);
            next += 1;
        }
        store.record(&Effect::StoreMembers(grown)).unwrap();
        let restored = store.restore(crate::kinds::CATALOG).unwrap();
        let mut again = node(0, 4);
        again.restore(restored.members, None, None, restored.leaves);
        let leaf = again.leaf(&key);
        let mut steps = Vec::new();
        loop {
            let wanted = again.wanted();
            if wanted.is_empty() {
                break;
            }
            steps.push((
                wanted.leaves.len(),
                wanted.listings.len(),
                wanted.rows.len(),
            ));
            again.load(store.load(&wanted).unwrap());
            assert!(steps.len() < 5, "{steps:?}");
        }
        assert_eq!(
            steps,
            [(1, 0, 0), (0, 1, 0), (0, 0, 1)],
            "the leaf, its listing, its row"
        );
        assert!(again.leaf_loaded_whole(leaf));
    }
}
