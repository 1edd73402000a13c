//! The key-value register: an [`MvRegister`] per key, in one row, on
//! `REPLICAS` nodes of the hash ring. Concurrent writes are kept as
//! siblings; a write or delete that carries a read's context replaces
//! exactly what that read saw. A listing runs at every node and the
//! router merges the pages.
//!
//! ```
//! use edge_crdt::crdt::{CausalContext, Crdt, Payload};
//! use edge_crdt::engine::{Config, Engine, MemoryStore, ObjectId};
//! use edge_crdt::kinds::register::{Op, Outcome, Register};
//! use edge_crdt::kinds::{Call, Kind, CATALOG};
//! use edge_crdt::NodeId;
//! let mut engine = Engine::start(NodeId(0), Config::default(), CATALOG, MemoryStore::default()).unwrap();
//! let object = Some(ObjectId::new("kv", "greeting").unwrap());
//! let mut call = Call { engine: &mut engine, object, now: 1_000 };
//! let put = Op::Put { payload: Payload::Text("hello".into()), context: CausalContext::default() };
//! let Outcome::Register { state, .. } = Register::execute(put, &mut call).unwrap() else { panic!() };
//! assert_eq!(state.siblings().count(), 1);
//! let Outcome::Register { state, .. } = Register::execute(Op::Delete { context: None }, &mut call).unwrap() else { panic!() };
//! assert!(state.is_empty() && state.is_tombstone());
//! ```

use super::{single_row_event, Kind, OpHost};
use crate::codec::{self, MAX_STATE};
use crate::crdt::{CausalContext, Crdt, MvRegister, Payload, TooManySiblings, MAX_SIBLINGS};
use crate::engine::{ObjectId, Policy, RowKey, RowType, Rows};
use crate::error::{ApiError, ErrorCode};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The register kind.
pub struct Register;

const ROW: &str = "";

static ROWS: Rows<MvRegister> = Rows::new(Policy::Ring);

/// Most bytes of registers one node puts in a listing page (at least one
/// key is always sent): keeps every page well below a frame.
pub const PAGE_BYTES: usize = 1 << 20;

/// A client operation on a register, or (`List`) on the kind at a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// read it
    Read,
    /// write a value that replaces what `context` covers
    Put {
        /// the value
        payload: Payload,
        /// what the write replaces (empty: a blind write, a new sibling)
        context: CausalContext,
    },
    /// delete what `context` covers (`None`: every sibling this replica has seen)
    Delete {
        /// what the delete replaces
        context: Option<CausalContext>,
    },
    /// this node's registers whose keys start with `prefix`, after `after`
    List {
        /// stored-key prefix, `kv:…`
        prefix: String,
        /// the stored key to list after
        after: Option<ObjectId>,
        /// at most this many
        limit: usize,
    },
}

/// What an operation gives back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// the register after the operation, at the node that ran it
    Register {
        /// the node
        node: NodeId,
        /// the register
        state: MvRegister,
    },
    /// one node's page of a listing
    Page(NodePage),
}

/// One node's part of a listing: its registers under the prefix after the
/// cursor, in key order (stored keys, `kv:NAME`); `more` when it holds
/// further keys past the last one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePage {
    /// stored keys and their registers, in key order
    pub entries: Vec<(String, MvRegister)>,
    /// whether the node has keys after the last entry
    pub more: bool,
}

impl NodePage {
    /// A node's page from up to `limit + 1` registers in key order (the
    /// extra one only tells that there are more), cut at [`PAGE_BYTES`].
    pub fn new(rows: Vec<(String, MvRegister)>, limit: usize) -> Self {
        let mut more = rows.len() > limit;
        let mut entries = Vec::new();
        let mut size = 0;
        for (key, register) in rows.into_iter().take(limit) {
            size += codec::encode(&register).len() + key.len();
            if size > PAGE_BYTES && !entries.is_empty() {
                more = true;
                break;
            }
            entries.push((key, register));
        }
        NodePage { entries, more }
    }
}

fn refused(e: TooManySiblings) -> ApiError {
    let TooManySiblings(kept) = e;
    ApiError::new(
        ErrorCode::TooManySiblings,
        format!(
            "this write would keep {kept} siblings besides its own, over the limit of \
             {MAX_SIBLINGS}: read the key (GET) and write with the `context` of that read, \
             which replaces the siblings it saw"
        ),
    )
}

fn too_large(size: usize) -> ApiError {
    ApiError::new(
        ErrorCode::RegisterTooLarge,
        format!(
            "with its siblings the key would hold {size} bytes, over the limit of {MAX_STATE}: \
             read the key (GET) and write with the `context` of that read, which replaces the \
             siblings it saw"
        ),
    )
}

fn not_active() -> ApiError {
    ApiError::new(ErrorCode::NotActive, "this node takes no writes")
}

/// The delta of a write or delete, checked against the size limit and
/// the register's invariants.
fn checked(register: &MvRegister, delta: MvRegister) -> Result<MvRegister, ApiError> {
    let mut after = register.clone();
    after.merge(&delta);
    // A stored state over MAX_STATE would not load again.
    let size = codec::encode(&after).len();
    if size > MAX_STATE {
        return Err(too_large(size));
    }
    // Nor is a state stored that peers would refuse: a dot past the
    // counters' limit, after a client's context at it, or a context over
    // its size, after deletes with the contexts of many nodes.
    after.validate().map_err(|e| {
        let why = format!("with this context the key would break a limit: {}", e.0);
        ApiError::new(ErrorCode::BadContext, why)
    })?;
    Ok(delta)
}

impl Kind for Register {
    const PREFIX: &'static str = "kv";
    type Op = Op;
    type Outcome = Outcome;

    fn rows() -> &'static dyn RowType {
        &ROWS
    }

    fn execute(op: Op, host: &mut dyn OpHost) -> Result<Outcome, ApiError> {
        if let Op::List {
            prefix,
            after,
            limit,
        } = op
        {
            let rows = host.list(&prefix, after.as_ref(), limit.saturating_add(1))?;
            let rows = rows
                .into_iter()
                .map(|(id, rows)| {
                    let state = rows.first().and_then(|(_, b)| postcard::from_bytes(b).ok());
                    (String::from(id.as_str()), state.unwrap_or_default())
                })
                .collect();
            return Ok(Outcome::Page(NodePage::new(rows, limit)));
        }
        host.prepare(&[RowKey::new()], false)?;
        let mut x = host.exec()?;
        let register: MvRegister = x.row_as(ROW);
        let delta = match op {
            Op::Put { payload, context } => {
                register.admits(&context).map_err(refused)?;
                let stamp = x.stamp(ROW);
                Some(checked(
                    &register,
                    register.write(stamp, &context, payload),
                )?)
            }
            Op::Delete { context } => {
                let seen = context.unwrap_or_else(|| register.context().clone());
                let delta = register.delete(&seen);
                // Nothing to delete and nothing new to remember: no write.
                let changes = register.clone().merge(&delta);
                changes.then(|| checked(&register, delta)).transpose()?
            }
            Op::Read | Op::List { .. } => None,
        };
        if let Some(delta) = delta {
            x.put(ROW, &delta);
            x.commit().map_err(|_| not_active())?;
        }
        Ok(Outcome::Register {
            node: x.node(),
            state: x.row_as(ROW),
        })
    }

    fn event(rows: &[(RowKey, Vec<u8>)]) -> String {
        single_row_event::<MvRegister>(rows)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::Stamp;
    use crate::engine::{Config, Engine, MemoryStore};
    use crate::kinds::{Call, CATALOG};

    fn register(text: &str) -> MvRegister {
        let at = Stamp {
            node: NodeId(0),
            time: 1,
            holds_own_writes: true,
        };
        let r = MvRegister::default();
        let mut out = r.clone();
        out.merge(&r.write(at, &CausalContext::default(), Payload::Text(text.into())));
        out
    }

    #[test]
    fn a_write_after_a_context_at_the_counters_limit_is_refused() {
        let mut seen = CausalContext::default();
        seen.insert(crate::crdt::Dot {
            node: NodeId(0),
            counter: crate::crdt::MAX_COUNTER - 1,
        });
        let at = Stamp {
            node: NodeId(0),
            time: 1,
            holds_own_writes: true,
        };
        let r = MvRegister::default();
        let once = checked(&r, r.write(at, &seen, Payload::Text("a".into()))).unwrap();
        let mut r = r.clone();
        r.merge(&once);
        let twice = checked(&r, r.write(at, r.context(), Payload::Text("b".into())));
        assert_eq!(twice.unwrap_err().error, ErrorCode::BadContext);
    }

    /// Runs `op` on key `k` at a node of one.
    fn run(e: &mut Engine<MemoryStore>, op: Op) -> Result<Outcome, ApiError> {
        let object = Some(ObjectId::new("kv", "k").unwrap());
        let out = Register::execute(
            op,
            &mut Call {
                engine: e,
                object,
                now: 1_000,
            },
        );
        e.settle().unwrap();
        out
    }

    #[test]
    fn deletes_cannot_grow_a_context_past_its_size() {
        // Each context is within its size; their union is not.
        let of_nodes = |first: u32| {
            let mut c = CausalContext::default();
            for n in first..first + 3_000 {
                c.insert(crate::crdt::Dot {
                    node: NodeId(n),
                    counter: 1,
                });
            }
            Some(c)
        };
        let config = Config {
            initial_nodes: 1,
            ..Config::default()
        };
        let mut e = Engine::start(NodeId(0), config, CATALOG, MemoryStore::default()).unwrap();
        assert!(run(
            &mut e,
            Op::Delete {
                context: of_nodes(0)
            }
        )
        .is_ok());
        let refused = run(
            &mut e,
            Op::Delete {
                context: of_nodes(10_000),
            },
        );
        assert_eq!(refused.unwrap_err().error, ErrorCode::BadContext);
    }

    #[test]
    fn node_pages_say_whether_more_follow() {
        let rows = |n: usize| -> Vec<(String, MvRegister)> {
            (0..n)
                .map(|i| (format!("kv:k{i}"), register("x")))
                .collect()
        };
        let p = NodePage::new(rows(3), 2);
        assert_eq!((p.entries.len(), p.more), (2, true));
        let p = NodePage::new(rows(2), 2);
        assert_eq!((p.entries.len(), p.more), (2, false));
        let big = register(&"x".repeat(600 << 10));
        let p = NodePage::new(vec![("kv:a".into(), big.clone()), ("kv:b".into(), big)], 5);
        assert_eq!((p.entries.len(), p.more), (1, true), "cut at PAGE_BYTES");
    }
}
