//! A contact: an LWW map of `name`, `phone`, `email` and `tombstone`, each
//! column with its own stamp. An address book is a grow-only set of them,
//! keyed by a client-made UUID: the rows of one object, never removed
//! (deleting sets `tombstone`, and a later write can clear it).
//!
//! A delta is one column of one contact, `{id, column, value, timestamp}`;
//! its row is a [`ContactRow`] with that one column, so merging deltas and
//! merging rows are the same join.
//!
//! ```
//! use edge_crdt::crdt::contacts::{Column, ContactDelta, ContactId, ContactRow, HlcStamp, Value};
//! use edge_crdt::crdt::Crdt;
//! let id: ContactId = "123E4567-E89B-12D3-A456-426614174000".parse().unwrap();
//! assert_eq!(id.as_str(), "123e4567-e89b-12d3-a456-426614174000");
//! let at = |millis| HlcStamp { millis, counter: 0, writer: edge_crdt::crdt::contacts::ClockId::client(7) };
//! let mut row = ContactRow::default();
//! row.merge(&ContactDelta::new(id.clone(), Column::Name, Value::Text("Bob".into()), at(2)).unwrap().row);
//! row.merge(&ContactDelta::new(id, Column::Name, Value::Text("Jim".into()), at(1)).unwrap().row);
//! assert_eq!(row.text(Column::Name), Some("Bob"));
//! ```

use super::stamp::HlcStamp;
use crate::crdt::{Crdt, InvalidState};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Most bytes in a contact's name.
pub const MAX_NAME_BYTES: usize = 256;
/// Most bytes in a phone number.
pub const MAX_PHONE_BYTES: usize = 64;
/// Most bytes in an email address (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Most contacts in one address book, deleted ones included.
pub const MAX_CONTACTS: usize = 10_000;

/// A contact's id: a UUID, kept in its canonical form (lowercase, with
/// hyphens), so every spelling of one UUID names one contact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContactId(String);

impl ContactId {
    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContactId {
    type Err = String;

    fn from_str(text: &str) -> Result<ContactId, String> {
        let uuid = uuid::Uuid::try_parse(text)
            .map_err(|_| "a contact id is a UUID, like `123e4567-e89b-12d3-a456-426614174000`")?;
        Ok(ContactId(uuid.hyphenated().to_string()))
    }
}

impl TryFrom<String> for ContactId {
    type Error = String;

    fn try_from(text: String) -> Result<ContactId, String> {
        text.parse()
    }
}

impl From<ContactId> for String {
    fn from(id: ContactId) -> String {
        id.0
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A column of a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Column {
    /// text, at most [`MAX_NAME_BYTES`]
    Name,
    /// text, at most [`MAX_PHONE_BYTES`]
    Phone,
    /// text, at most [`MAX_EMAIL_BYTES`]
    Email,
    /// `true`: deleted
    Tombstone,
}

impl Column {
    /// Every column, in the row's order.
    pub const ALL: [Column; 4] = [
        Column::Name,
        Column::Phone,
        Column::Email,
        Column::Tombstone,
    ];

    /// Its name in the API and in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Phone => "phone",
            Column::Email => "email",
            Column::Tombstone => "tombstone",
        }
    }

    /// Most bytes of a text value (0 for the tombstone, a flag).
    pub fn max_bytes(self) -> usize {
        match self {
            Column::Name => MAX_NAME_BYTES,
            Column::Phone => MAX_PHONE_BYTES,
            Column::Email => MAX_EMAIL_BYTES,
            Column::Tombstone => 0,
        }
    }
}

impl FromStr for Column {
    type Err = String;

    fn from_str(text: &str) -> Result<Column, String> {
        Column::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| "the columns are `name`, `phone`, `email` and `tombstone`".into())
    }
}

/// A column's value: text, or the tombstone's flag. In JSON a string or a
/// boolean; in postcard a tagged enum.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    /// `name`, `phone`, `email`
    Text(String),
    /// `tombstone`
    Flag(bool),
}

/// `Value` as postcard sees it.
#[derive(Serialize, Deserialize)]
enum Tagged {
    Text(String),
    Flag(bool),
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self, s.is_human_readable()) {
            (Value::Text(t), true) => s.serialize_str(t),
            (Value::Flag(f), true) => s.serialize_bool(*f),
            (Value::Text(t), false) => Tagged::Text(t.clone()).serialize(s),
            (Value::Flag(f), false) => Tagged::Flag(*f).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return Ok(match Tagged::deserialize(d)? {
                Tagged::Text(t) => Value::Text(t),
                Tagged::Flag(f) => Value::Flag(f),
            });
        }
        struct Either;
        impl serde::de::Visitor<'_> for Either {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, or true or false for `tombstone`")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Value, E> {
                Ok(Value::Text(text.to_owned()))
            }
            fn visit_bool<E: serde::de::Error>(self, flag: bool) -> Result<Value, E> {
                Ok(Value::Flag(flag))
            }
        }
        d.deserialize_any(Either)
    }
}

/// A value with its stamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// the value
    pub value: Value,
    /// when and by whom it was written
    pub stamp: HlcStamp,
}

impl Field {
    /// Whether `self` wins over `other`: the later stamp, and on one
    /// stamp (a writer reusing it) the greater value, so every replica
    /// picks the same.
    fn wins_over(&self, other: &Field) -> bool {
        (self.stamp, &self.value) > (other.stamp, &other.value)
    }
}

/// One contact: each column's latest value, if it was ever written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRow {
    fields: [Option<Field>; 4],
}

/// A value that does not fit its column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadValue(pub String);

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that `value` fits `column`: its type, and its size.
pub fn check_value(column: Column, value: &Value) -> Result<(), BadValue> {
    match (column, value) {
        (Column::Tombstone, Value::Flag(_)) => Ok(()),
        (Column::Tombstone, Value::Text(_)) => {
            Err(BadValue("`tombstone` takes true or false".into()))
        }
        (_, Value::Flag(_)) => Err(BadValue(format!("`{}` takes text", column.name()))),
        (_, Value::Text(text)) if text.len() > column.max_bytes() => Err(BadValue(format!(
            "`{}` is {} bytes; at most {} are allowed",
            column.name(),
            text.len(),
            column.max_bytes()
        ))),
        _ => Ok(()),
    }
}

impl ContactRow {
    /// The row of one column's write.
    pub fn of(column: Column, value: Value, stamp: HlcStamp) -> Result<ContactRow, BadValue> {
        check_value(column, &value)?;
        let mut row = ContactRow::default();
        row.fields[column as usize] = Some(Field { value, stamp });
        Ok(row)
    }

    /// A column's value and stamp, if it was ever written.
    pub fn field(&self, column: Column) -> Option<&Field> {
        self.fields[column as usize].as_ref()
    }

    /// A text column's value.
    pub fn text(&self, column: Column) -> Option<&str> {
        match self.field(column).map(|f| &f.value) {
            Some(Value::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// Whether the contact is deleted.
    pub fn deleted(&self) -> bool {
        matches!(
            self.field(Column::Tombstone).map(|f| &f.value),
            Some(Value::Flag(true))
        )
    }

    /// The row as one delta per written column: its delta interval, what
    /// a replica that holds nothing of it needs.
    pub fn columns(&self) -> impl Iterator<Item = (Column, &Field)> {
        Column::ALL
            .into_iter()
            .filter_map(|c| self.field(c).map(|f| (c, f)))
    }
}

impl Crdt for ContactRow {
    fn merge(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for (mine, theirs) in self.fields.iter_mut().zip(&other.fields) {
            let Some(theirs) = theirs else { continue };
            if mine.as_ref().is_none_or(|m| theirs.wins_over(m)) {
                *mine = Some(theirs.clone());
                changed = true;
            }
        }
        changed
    }

    fn validate(&self) -> Result<(), InvalidState> {
        for (column, field) in self.columns() {
            check_value(column, &field.value).map_err(|e| InvalidState(e.0))?;
            if field.stamp.millis == 0 {
                return Err(InvalidState("millisecond 0 is not a timestamp".into()));
            }
        }
        Ok(())
    }

    fn latest_stamp(&self) -> Option<u64> {
        self.columns().map(|(_, f)| f.stamp.engine_stamp()).max()
    }
}

/// One client write: a column of a contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactDelta {
    /// the contact
    pub id: ContactId,
    /// the write, as a row of one column
    pub row: ContactRow,
}

impl ContactDelta {
    /// The delta `{id, column, value, timestamp}`, if the value fits.
    pub fn new(
        id: ContactId,
        column: Column,
        value: Value,
        stamp: HlcStamp,
    ) -> Result<ContactDelta, BadValue> {
        Ok(ContactDelta {
            id,
            row: ContactRow::of(column, value, stamp)?,
        })
    }

    /// Its column and field.
    pub fn column(&self) -> (Column, &Field) {
        self.row.columns().next().expect("a delta has one column")
    }
}

#[cfg(test)]
mod test {
    use super::super::ClockId;
    use super::*;

    fn at(millis: u64, writer: u64) -> HlcStamp {
        HlcStamp {
            millis,
            counter: 0,
            writer: ClockId(writer),
        }
    }

    fn text(column: Column, value: &str, stamp: HlcStamp) -> ContactRow {
        ContactRow::of(column, Value::Text(value.into()), stamp).unwrap()
    }

    #[test]
    fn columns_merge_on_their_own_and_ties_break_by_writer() {
        let mut row = text(Column::Name, "Bob", at(5, 1 << 32));
        assert!(row.merge(&text(Column::Phone, "555", at(1, 2 << 32))));
        assert!(!row.merge(&text(Column::Name, "Old", at(4, 9 << 32))));
        assert!(row.merge(&text(Column::Name, "Zed", at(5, 2 << 32))));
        assert_eq!(
            (row.text(Column::Name), row.text(Column::Phone)),
            (Some("Zed"), Some("555"))
        );
        let delete = ContactRow::of(Column::Tombstone, Value::Flag(true), at(6, 1 << 32)).unwrap();
        assert!(row.merge(&delete) && row.deleted());
        let undo = ContactRow::of(Column::Tombstone, Value::Flag(false), at(7, 1 << 32)).unwrap();
        assert!(row.merge(&undo) && !row.deleted());
        assert_eq!(row.columns().count(), 3);
    }

    #[test]
    fn values_must_fit_their_columns() {
        let stamp = at(1, 1 << 32);
        assert!(ContactRow::of(Column::Tombstone, Value::Text("1".into()), stamp).is_err());
        assert!(ContactRow::of(Column::Name, Value::Flag(true), stamp).is_err());
        let long = "x".repeat(MAX_PHONE_BYTES + 1);
        let err = ContactRow::of(Column::Phone, Value::Text(long), stamp).unwrap_err();
        assert_eq!(err.0, "`phone` is 65 bytes; at most 64 are allowed");
        assert!(ContactRow::of(
            Column::Email,
            Value::Text("e".repeat(MAX_EMAIL_BYTES)),
            stamp
        )
        .is_ok());
        assert_eq!("tombstone".parse(), Ok(Column::Tombstone));
        assert!("id".parse::<Column>().is_err());
        let zero = text(Column::Name, "x", at(0, 1 << 32));
        assert!(zero.validate().is_err());
    }

    #[test]
    fn ids_are_canonical_uuids() {
        let id: ContactId = "{123E4567-E89B-12D3-A456-426614174000}".parse().unwrap();
        assert_eq!(id.as_str(), "123e4567-e89b-12d3-a456-426614174000");
        for bad in ["", "123", "123e4567-e89b-12d3-a456-42661417400g", "bob"] {
            assert!(bad.parse::<ContactId>().is_err(), "{bad}");
        }
        let text = Value::Text("Bob".into());
        assert_eq!(serde_json::to_string(&text).unwrap(), r#""Bob""#);
        assert_eq!(
            serde_json::from_str::<Value>("true").unwrap(),
            Value::Flag(true)
        );
        assert!(serde_json::from_str::<Value>("3").is_err());
        let bytes = postcard::to_allocvec(&text).unwrap();
        assert_eq!(postcard::from_bytes::<Value>(&bytes).unwrap(), text);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ContactId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ContactId>(r#""nope""#).is_err());
    }
}
