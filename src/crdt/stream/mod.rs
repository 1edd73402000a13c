//! Event streams as Merkle-Clocks: content-addressed events per topic
//! ([`Event`], ids are DAG-CBOR sha2-256 CIDv1s) and a topic's DAG
//! ([`Dag`]) with its heads, missing links and one total order, written
//! out as a CARv1 file ([`car`]).

mod car;
mod dag;
mod event;
mod text;

pub use car::{car, read_car};
pub use cid::Cid;
pub use dag::Dag;
pub use event::{block_id, is_event_id, BadEvent, Event, Limits, DAG_CBOR, SHA2_256};
pub use text::IdText;
