//! The LWW element set: an [`LwwSet`] per name, on every active node, in
//! one row, with a creation bias that breaks ties between an add and a
//! remove with the same stamp.
//!
//! ```
//! use edge_crdt::crdt::{Bias, Element};
//! use edge_crdt::engine::{Config, Engine, MemoryStore, ObjectId};
//! use edge_crdt::kinds::set::{Op, Set};
//! use edge_crdt::kinds::{Call, Kind, CATALOG};
//! use edge_crdt::NodeId;
//! let mut engine = Engine::start(NodeId(0), Config::default(), CATALOG, MemoryStore::default()).unwrap();
//! let object = Some(ObjectId::new("set", "fruits").unwrap());
//! let mut call = Call { engine: &mut engine, object, now: 1_000 };
//! Set::execute(Op::Create { bias: Bias::RemoveWins }, &mut call).unwrap();
//! let apple = Element::Str("apple".into());
//! let done = Set::execute(Op::Insert(vec![apple.clone()]), &mut call).unwrap();
//! assert!(done.state.contains(&apple) && done.stamp.is_some());
//! assert!(Set::execute(Op::Create { bias: Bias::AddWins }, &mut call).is_err());
//! ```

use super::{single_row_event, Kind, OpHost};
use crate::crdt::{Bias, Element, LwwSet};
use crate::engine::{Policy, RowKey, RowType, Rows};
use crate::error::{ApiError, ErrorCode};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The set kind.
pub struct Set;

const ROW: &str = "";

static ROWS: Rows<LwwSet> = Rows::new(Policy::Everywhere);

/// A client operation on a set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// read it
    Read,
    /// create it with a bias (again with the same bias: no change)
    Create {
        /// the bias
        bias: Bias,
    },
    /// add elements at the node's clock
    Insert(Vec<Element>),
    /// remove elements at the node's clock
    Delete(Vec<Element>),
    /// merge a whole replica's entries (stamps checked by the router)
    Update(LwwSet),
}

/// The set after the operation, as the node that ran it sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// the node
    pub node: NodeId,
    /// the whole set
    pub state: LwwSet,
    /// the stamp the node gave the write (create, insert, delete)
    pub stamp: Option<u64>,
}

impl Kind for Set {
    const PREFIX: &'static str = "set";
    type Op = Op;
    type Outcome = Outcome;

    fn rows() -> &'static dyn RowType {
        &ROWS
    }

    fn execute(op: Op, host: &mut dyn OpHost) -> Result<Outcome, ApiError> {
        host.prepare(&[RowKey::new()], false)?;
        let mut x = host.exec()?;
        let current: LwwSet = x.row_as(ROW);
        let mut stamp = None;
        let delta = match op {
            Op::Read => None,
            Op::Create { bias } => {
                if let Some((_, had)) = current.created().filter(|(_, b)| *b != bias) {
                    let had = crate::api::set::BiasName::from(had).as_str();
                    let e = format!("the set exists with bias {had}");
                    return Err(ApiError::new(ErrorCode::AlreadyCreated, e));
                }
                let time = x.stamp(ROW).time;
                stamp = Some(time);
                Some(LwwSet::new(bias, time))
            }
            Op::Insert(elements) | Op::Delete(elements) if elements.is_empty() => {
                return Err(ApiError::new(
                    ErrorCode::BadBatch,
                    "send at least one element",
                ));
            }
            Op::Insert(elements) => {
                let time = x.stamp(ROW).time;
                stamp = Some(time);
                Some(current.insert(elements, time))
            }
            Op::Delete(elements) => {
                let time = x.stamp(ROW).time;
                stamp = Some(time);
                Some(current.remove(elements, time))
            }
            Op::Update(replica) => Some(replica),
        };
        if let Some(delta) = delta {
            x.put(ROW, &delta);
            x.commit()
                .map_err(|_| ApiError::new(ErrorCode::NotActive, "this node takes no writes"))?;
        }
        Ok(Outcome {
            node: x.node(),
            state: x.row_as(ROW),
            stamp,
        })
    }

    fn event(rows: &[(RowKey, Vec<u8>)]) -> String {
        single_row_event::<LwwSet>(rows)
    }
}
