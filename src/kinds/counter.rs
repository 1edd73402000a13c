//! The visit counter: a [`PnCounter`] per name, on every active node, in
//! one row. Retirement folds a drained node's entries into its heir's.
//!
//! ```
//! use edge_crdt::engine::{Config, Engine, MemoryStore, ObjectId};
//! use edge_crdt::kinds::counter::{Counter, Op};
//! use edge_crdt::kinds::{Call, Kind, CATALOG};
//! use edge_crdt::NodeId;
//! let mut engine = Engine::start(NodeId(0), Config::default(), CATALOG, MemoryStore::default()).unwrap();
//! let object = Some(ObjectId::new("counter", "home").unwrap());
//! let mut call = Call { engine: &mut engine, object, now: 1_000 };
//! let done = Counter::execute(Op::Increment { by: 3 }, &mut call).unwrap();
//! assert_eq!(done.state.value(), 3);
//! ```

use super::{single_row_event, Kind, OpHost};
use crate::crdt::{PnCounter, PnError};
use crate::engine::{Policy, RowKey, RowType, Rows};
use crate::error::{ApiError, ErrorCode};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The counter kind.
pub struct Counter;

/// A counter's one row.
const ROW: &str = "";

static ROWS: Rows<PnCounter> = Rows::new(Policy::Everywhere);

/// A client operation on a counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// read it
    Read,
    /// add `by` (negative: subtract) at the node that takes it
    Increment {
        /// the step
        by: i64,
    },
}

/// The counter after the operation, as the node that ran it sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// the node
    pub node: NodeId,
    /// the whole counter
    pub state: PnCounter,
}

impl Kind for Counter {
    const PREFIX: &'static str = "counter";
    type Op = Op;
    type Outcome = Outcome;

    fn rows() -> &'static dyn RowType {
        &ROWS
    }

    fn execute(op: Op, host: &mut dyn OpHost) -> Result<Outcome, ApiError> {
        host.prepare(&[RowKey::new()], false)?;
        let mut x = host.exec()?;
        if let Op::Increment { by } = op {
            let delta = x
                .row_as::<PnCounter>(ROW)
                .add(x.node(), by)
                .map_err(|e| match e {
                    PnError::Overflow => ApiError::new(
                        ErrorCode::Overflow,
                        "this node's share of the counter would overflow",
                    ),
                    PnError::Retired => ApiError::new(ErrorCode::Retired, "this node is retired"),
                })?;
            x.put(ROW, &delta);
            x.commit()
                .map_err(|_| ApiError::new(ErrorCode::NotActive, "this node takes no writes"))?;
        }
        Ok(Outcome {
            node: x.node(),
            state: x.row_as(ROW),
        })
    }

    fn event(rows: &[(RowKey, Vec<u8>)]) -> String {
        single_row_event::<PnCounter>(rows)
    }
}
