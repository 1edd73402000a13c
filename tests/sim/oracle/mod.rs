//! What the cluster must agree with: the acknowledged writes of each kind,
//! logged as the nodes acknowledge them, and the rules that follow.

mod counters;
mod registers;
mod sets;

pub use counters::Counters;
pub use registers::{check_held_register, payload_text, KvWrite, RegLog};
pub use sets::{check_held_set, SetLog, SetOp};
