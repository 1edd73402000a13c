//! The properties the targets check, and targets made of them for any
//! type with an envelope.

use crate::driver::{Target, Verdict};
use edge_crdt::codec;
use edge_crdt::crdt::Crdt;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

/// Whatever `bytes` decode to by `decode` re-encodes by `encode` to bytes
/// that decode to the same value. Refused when they do not decode.
pub fn round_trip<T: PartialEq + Debug, E: Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
    encode: impl Fn(&T) -> Vec<u8>,
) -> Verdict {
    match decode(bytes) {
        Ok(value) => same_again(&value, decode(&encode(&value))),
        Err(_) => Verdict::Refused,
    }
}

/// `value` decoded again as `again`: accepted when they are equal.
pub fn same_again<T: PartialEq + Debug, E: Debug>(value: &T, again: Result<T, E>) -> Verdict {
    match again {
        Ok(back) if back == *value => Verdict::Accepted,
        Ok(back) => Verdict::Broken(format!(
            "the re-encoding decodes to another value:\n  first {value:?}\n  again {back:?}"
        )),
        Err(e) => Verdict::Broken(format!(
            "the re-encoding of {value:?} does not decode: {e:?}"
        )),
    }
}

/// The first broken verdict of several, or accepted if any was.
pub fn all(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut out = Verdict::Refused;
    for v in verdicts {
        match v {
            Verdict::Broken(_) => return v,
            Verdict::Accepted => out = Verdict::Accepted,
            Verdict::Refused => {}
        }
    }
    out
}

/// The envelope of a `T` of at most `max` bytes: it round-trips.
pub fn envelope<T>(name: &str, max: usize, values: &[T]) -> Target
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let seeds = values.iter().map(|v| codec::encode(v)).collect();
    Target::new(name, seeds, move |bytes| {
        round_trip(bytes, |b| codec::decode::<T>(b, max), |v| codec::encode(v))
    })
}

/// A replica's state in its envelope, as events and browsers carry it:
/// decoded and validated, it round-trips.
pub fn state<T: Crdt>(name: &str, values: &[T]) -> Target {
    let seeds = values.iter().map(codec::encode_state).collect();
    Target::new(name, seeds, |bytes| {
        round_trip(bytes, codec::decode_state::<T>, codec::encode_state)
    })
}

/// Text from bytes, as a JavaScript string or a URL would hold them.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
