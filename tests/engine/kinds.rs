//! The kinds these tests host besides the built-in ones: multi-row
//! objects (`table`, `tally`), a kind that logs every accepted delta
//! (`journal`), a kind with its own sync protocol (`mesh`) and one that
//! keeps a local row derived from its rows (`census`), in a test
//! [`Catalog`].

use edge_crdt::crdt::{Crdt, InvalidState, MvRegister, PnCounter};
use edge_crdt::engine::{Catalog, Merged, Policy, RowError, RowKey, RowType, Rows, SyncCx};
use edge_crdt::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A grow-only set of notes: the row type of `journal` and `mesh`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notes(pub BTreeSet<String>);

impl Notes {
    /// One note.
    pub fn one(note: &str) -> Notes {
        Notes(BTreeSet::from([note.to_owned()]))
    }
}

impl Crdt for Notes {
    fn merge(&mut self, other: &Self) -> bool {
        let before = self.0.len();
        self.0.extend(other.0.iter().cloned());
        self.0.len() != before
    }

    fn validate(&self) -> Result<(), InvalidState> {
        Ok(())
    }
}

/// Objects of many registers, on three replicas of the ring.
static TABLE: Rows<MvRegister> = Rows::new(Policy::Ring);

/// Objects of many counters, on every node.
static TALLY: Rows<PnCounter> = Rows::new(Policy::Everywhere);

static NOTES: Rows<Notes> = Rows::new(Policy::Everywhere);

/// Notes on every node whose log keeps every accepted delta as it came,
/// with its row: a [`JournalEntry`].
pub struct Journal;

/// What `journal` logs: the row and the delta accepted.
pub type JournalEntry = (RowKey, Notes);

/// Forwards every [`RowType`] method but those a test kind overrides.
macro_rules! delegate_rows {
    ($inner:expr) => {
        fn policy(&self) -> Policy {
            $inner.policy()
        }
        fn merge(
            &self,
            state: Option<&[u8]>,
            delta: &[u8],
            limit: u64,
        ) -> Result<Merged, RowError> {
            $inner.merge(state, delta, limit)
        }
        fn check(&self, key: &str, row: &[u8]) -> Result<(), InvalidState> {
            $inner.check(key, row)
        }
        fn latest_stamp(&self, row: &[u8]) -> Option<u64> {
            $inner.latest_stamp(row)
        }
        fn absorb(&self, row: &[u8], retired: NodeId, heir: NodeId) -> Option<Vec<u8>> {
            $inner.absorb(row, retired, heir)
        }
    };
}

impl RowType for Journal {
    delegate_rows!(NOTES);

    fn log_entry(&self, row: &str, delta: &[u8]) -> Option<Vec<u8>> {
        let delta: Notes = postcard::from_bytes(delta).ok()?;
        postcard::to_allocvec(&(row, delta)).ok()
    }
}

static RING_NOTES: Rows<Notes> = Rows::new(Policy::Ring);

/// Notes on the ring that replicas sync by their own protocol: after a
/// change a replica tells the others which rows it has ([`MeshSay::Have`]);
/// one that lacks some asks ([`MeshSay::Want`]) and merges the answer
/// ([`MeshSay::Rows`]) through [`SyncCx::apply`].
pub struct Mesh;

/// What a `mesh` replica says through `Message::Sync`.
#[derive(Debug, Serialize, Deserialize)]
pub enum MeshSay {
    /// these rows changed here: each with the hash of its state
    Have(Vec<(RowKey, u64)>),
    /// send me these rows
    Want(Vec<RowKey>),
    /// the rows asked for, with their states
    Rows(Vec<(RowKey, Vec<u8>)>),
}

impl RowType for Mesh {
    delegate_rows!(RING_NOTES);

    fn sync_needs(&self, payload: &[u8]) -> Vec<RowKey> {
        match postcard::from_bytes(payload) {
            Ok(MeshSay::Have(rows)) => rows.into_iter().map(|(k, _)| k).collect(),
            Ok(MeshSay::Want(rows)) => rows,
            Ok(MeshSay::Rows(rows)) => rows.into_iter().map(|(k, _)| k).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn on_sync(&self, cx: &mut SyncCx<'_>, from: NodeId, payload: &[u8]) {
        let say = |m: &MeshSay| postcard::to_allocvec(m).expect("encodes");
        match postcard::from_bytes(payload) {
            Ok(MeshSay::Have(rows)) => {
                let lacking: Vec<RowKey> = rows
                    .into_iter()
                    .filter(|(r, hash)| cx.knows(r) && cx.row(r).map(state_hash) != Some(*hash))
                    .map(|(r, _)| r)
                    .collect();
                if !lacking.is_empty() {
                    cx.send(from, say(&MeshSay::Want(lacking)));
                }
            }
            Ok(MeshSay::Want(rows)) => {
                let states = rows
                    .into_iter()
                    .filter_map(|r| Some((r.clone(), cx.row(&r)?.to_vec())))
                    .collect();
                cx.send(from, say(&MeshSay::Rows(states)));
            }
            Ok(MeshSay::Rows(rows)) => {
                for (row, state) in rows {
                    cx.apply(&row, &state);
                }
            }
            Err(_) => {}
        }
    }

    fn on_applied(&self, cx: &mut SyncCx<'_>, row: &str) {
        let Some(hash) = cx.row(row).map(state_hash) else {
            return;
        };
        let have =
            postcard::to_allocvec(&MeshSay::Have(vec![(row.to_owned(), hash)])).expect("encodes");
        for peer in cx.replicas() {
            if peer != cx.node() {
                cx.send(peer, have.clone());
            }
        }
    }
}

/// A stable hash of a row's state (SipHash with fixed keys).
fn state_hash(state: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    state.hash(&mut h);
    h.finish()
}

/// Notes on the ring, each object keeping for its node the set of its
/// row keys in the local row [`CENSUS_KEYS`], as rows arrive.
pub struct Census;

/// The local row of a `census` object: its row keys, as postcard.
pub const CENSUS_KEYS: &str = "~keys";

impl RowType for Census {
    delegate_rows!(RING_NOTES);

    fn locals(&self) -> &'static [&'static str] {
        &[CENSUS_KEYS]
    }

    fn on_applied(&self, cx: &mut SyncCx<'_>, row: &str) {
        let mut keys: BTreeSet<String> = cx
            .local(CENSUS_KEYS)
            .map(|b| postcard::from_bytes(b).expect("a census decodes"))
            .unwrap_or_default();
        if keys.insert(row.to_owned()) {
            cx.set_local(
                CENSUS_KEYS,
                Some(postcard::to_allocvec(&keys).expect("encodes")),
            );
        }
    }
}

static JOURNAL: Journal = Journal;
static MESH: Mesh = Mesh;
static CENSUS: Census = Census;

/// The built-in kinds and the test kinds, by prefix.
pub struct TestKinds;

impl Catalog for TestKinds {
    fn row_type(&self, prefix: &str) -> Option<&dyn RowType> {
        match prefix {
            "table" => Some(&TABLE),
            "tally" => Some(&TALLY),
            "journal" => Some(&JOURNAL),
            "mesh" => Some(&MESH),
            "census" => Some(&CENSUS),
            "stream" => Some(&edge_crdt::kinds::stream::Events),
            other => edge_crdt::kinds::CATALOG.row_type(other),
        }
    }
    fn prefixes(&self) -> Vec<&'static str> {
        let mut all = vec!["table", "tally", "journal", "mesh", "census", "stream"];
        all.extend(edge_crdt::kinds::CATALOG.prefixes());
        all
    }
}

/// The test catalog, as the engine takes it.
pub fn catalog() -> &'static dyn Catalog {
    Box::leak(Box::new(TestKinds))
}
