//! Address books (the Contacts system): contacts as LWW maps of columns,
//! stamped by per-client hybrid logical clocks.

mod book;
mod row;
mod stamp;

pub use book::{Applied, BookRow, CLIENT_ROWS, MAX_RANGES};
pub use row::{
    check_value, BadValue, Column, ContactDelta, ContactId, ContactRow, Field, Value, MAX_CONTACTS,
    MAX_EMAIL_BYTES, MAX_NAME_BYTES, MAX_PHONE_BYTES,
};
pub use stamp::{ClockId, ContactClock, HlcStamp, StampError};
