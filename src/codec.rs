//! The wire and storage format: postcard in a versioned envelope.
//!
//! An envelope is one version byte followed by the postcard encoding of the
//! value. Decoding untrusted bytes never panics: the length is checked
//! against a caller-given limit before anything is parsed, so allocation is
//! bounded by the input, and the encoded types are not recursive, so nesting
//! depth is bounded by the type itself.
//!
//! ```
//! use edge_crdt::codec;
//! let bytes = codec::encode(&(7u32, "seven"));
//! let back: (u32, String) = codec::decode(&bytes, 64).unwrap();
//! assert_eq!(back, (7, "seven".to_string()));
//! assert!(codec::decode::<(u32, String)>(&bytes, 3).is_err());
//! ```

use crate::crdt::{Crdt, InvalidState};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// The envelope version of requests, replies and frames. A replica's
/// state (server-sent events, the `state` of replies, browser storage)
/// carries its type's own version, [`Crdt::LAYOUT`].
pub const VERSION: u8 = 1;

/// The largest peer message a node accepts.
pub const MAX_FRAME: usize = 4 << 20;

/// The largest single CRDT state accepted from a client or from storage.
pub const MAX_STATE: usize = 64 << 10;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes than the limit for this use.
    TooLarge {
        /// bytes given
        len: usize,
        /// the limit
        max: usize,
    },
    /// No bytes at all.
    Empty,
    /// An envelope of another version.
    Version(u8),
    /// Bytes that are not a postcard encoding of the expected type.
    Malformed(String),
    /// A valid value followed by extra bytes.
    Trailing(usize),
    /// Text that is not base64.
    Base64,
    /// A well-formed state that breaks an invariant of its type.
    Invalid(InvalidState),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { len, max } => {
                write!(f, "{len} bytes is over the limit of {max}")
            }
            DecodeError::Empty => write!(f, "no bytes"),
            DecodeError::Version(v) => write!(f, "envelope version {v} is not this one's"),
            DecodeError::Malformed(why) => write!(f, "malformed postcard: {why}"),
            DecodeError::Trailing(n) => write!(f, "{n} bytes after the value"),
            DecodeError::Base64 => write!(f, "not base64"),
            DecodeError::Invalid(why) => why.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes `value` in an envelope.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    envelope(VERSION, postcard::to_allocvec(value))
}

// The generic functions here are instantiated for every type that crosses
// the wire or storage: what does not depend on the type is done once, out
// of line, which takes kilobytes off the Worker.

/// The envelope `version` of an encoding.
#[inline(never)]
fn envelope(version: u8, encoded: postcard::Result<Vec<u8>>) -> Vec<u8> {
    let mut out = vec![version];
    // Serializing into a Vec cannot fail for the types of this crate.
    out.extend(encoded.expect("postcard serialization into a Vec"));
    out
}

/// Decodes an envelope of at most `max` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    decode_version(bytes, max, VERSION)
}

fn decode_version<T: DeserializeOwned>(
    bytes: &[u8],
    max: usize,
    expected: u8,
) -> Result<T, DecodeError> {
    let mut postcard = postcard::Deserializer::from_bytes(opened(bytes, max, expected)?);
    let value = T::deserialize(&mut postcard).map_err(malformed)?;
    ended(postcard.finalize())?;
    Ok(value)
}

/// The postcard in an envelope of at most `max` bytes and version `expected`.
#[inline(never)]
fn opened(bytes: &[u8], max: usize, expected: u8) -> Result<&[u8], DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != expected {
        return Err(DecodeError::Version(version));
    }
    Ok(body)
}

#[inline(never)]
fn malformed(e: postcard::Error) -> DecodeError {
    DecodeError::Malformed(e.to_string())
}

/// Whether a decoding used every byte.
#[inline(never)]
fn ended(rest: postcard::Result<&[u8]>) -> Result<(), DecodeError> {
    match rest.map_err(malformed)? {
        [] => Ok(()),
        rest => Err(DecodeError::Trailing(rest.len())),
    }
}

/// Encodes a replica's state in its envelope.
pub fn encode_state<T: Crdt>(state: &T) -> Vec<u8> {
    envelope(T::LAYOUT, postcard::to_allocvec(state))
}

/// Decodes and validates a replica's state from an untrusted source.
pub fn decode_state<T: Crdt>(bytes: &[u8]) -> Result<T, DecodeError> {
    let state: T = decode_version(bytes, MAX_STATE, T::LAYOUT)?;
    state.validate().map_err(DecodeError::Invalid)?;
    Ok(state)
}

/// The standard base64 text of `bytes`.
pub fn to_base64(bytes: &[u8]) -> String {
    base64_encode(bytes, Base64::Standard)
}

/// The two base64 forms in use, as the `base64` crate's engines of the
/// same names write and read them (this one is a tenth of its size in the
/// Worker): standard with `=` padding, and URL-safe without padding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Base64 {
    /// `+` and `/`, padded with `=` (`STANDARD`)
    Standard,
    /// `-` and `_`, no padding (`URL_SAFE_NO_PAD`)
    UrlSafeNoPad,
}

/// `bytes` in base64 of the given form.
pub fn base64_encode(bytes: &[u8], form: Base64) -> String {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pad = form == Base64::Standard;
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                let c = STANDARD[(n >> (18 - 6 * i) & 63) as usize];
                out.push(match (c, form) {
                    (b'+', Base64::UrlSafeNoPad) => '-',
                    (b'/', Base64::UrlSafeNoPad) => '_',
                    _ => c as char,
                });
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64 of the given form, as strictly as the `base64` crate's
/// engine of that form: its alphabet only, canonical `=` padding (standard)
/// or none (URL-safe), and no bits set past the last byte.
pub fn base64_decode(text: &str, form: Base64) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    let body = match form {
        Base64::Standard => {
            if !text.len().is_multiple_of(4) {
                return None;
            }
            let pad = text.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 {
                return None;
            }
            &text[..text.len() - pad]
        }
        Base64::UrlSafeNoPad => text,
    };
    if body.len() % 4 == 1 {
        return None;
    }
    let url = form == Base64::UrlSafeNoPad;
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in body {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' if !url => 62,
            b'/' if !url => 63,
            b'-' if url => 62,
            b'_' if url => 63,
            _ => return None,
        };
        acc = (acc << 6 | u32::from(v)) & 0xfff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (acc & ((1 << bits) - 1) == 0).then_some(out)
}

/// Decodes standard base64 text that encodes at most `max` bytes.
pub fn from_base64(text: &str, max: usize) -> Result<Vec<u8>, DecodeError> {
    let text = text.trim();
    if text.len() / 4 * 3 > max + 3 {
        return Err(DecodeError::TooLarge {
            len: text.len() / 4 * 3,
            max,
        });
    }
    base64_decode(text, Base64::Standard).ok_or(DecodeError::Base64)
}

/// Decodes a validated state from base64 text, as carried by SSE events and
/// browser storage.
pub fn state_from_base64<T: Crdt>(text: &str) -> Result<T, DecodeError> {
    decode_state(&from_base64(text, MAX_STATE)?)
}

/// The base64 text of a state's envelope.
pub fn state_to_base64<T: Crdt>(state: &T) -> String {
    to_base64(&encode_state(state))
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::PnCounter;
    use crate::NodeId;

    #[test]
    fn rejects_wrong_version_trailing_and_oversize() {
        let mut bytes = encode(&5u64);
        bytes.push(0);
        assert_eq!(decode::<u64>(&bytes, 100), Err(DecodeError::Trailing(1)));
        bytes[0] = 9;
        assert_eq!(decode::<u64>(&bytes, 100), Err(DecodeError::Version(9)));
        assert_eq!(decode::<u64>(&[], 100), Err(DecodeError::Empty));
        assert!(matches!(
            decode::<u64>(&[1; 200], 100),
            Err(DecodeError::TooLarge { len: 200, max: 100 })
        ));
    }

    #[test]
    fn state_round_trips_through_base64() {
        let mut c = PnCounter::default();
        c.merge(&c.add(NodeId(3), 12).unwrap());
        let text = state_to_base64(&c);
        assert_eq!(state_from_base64::<PnCounter>(&text), Ok(c));
        assert_eq!(
            state_from_base64::<PnCounter>("%%%"),
            Err(DecodeError::Base64)
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn base64_is_the_base64_crates(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            text in "[AQBgw9+/_=-]{0,12}",
        ) {
            use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
            use base64::Engine as _;
            for (form, engine) in [(Base64::Standard, STANDARD), (Base64::UrlSafeNoPad, URL_SAFE_NO_PAD)] {
                let encoded = base64_encode(&bytes, form);
                proptest::prop_assert_eq!(&encoded, &engine.encode(&bytes));
                proptest::prop_assert_eq!(base64_decode(&encoded, form), Some(bytes.clone()));
                proptest::prop_assert_eq!(base64_decode(&text, form), engine.decode(&text).ok(), "{:?} {}", form, text);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_state::<PnCounter>(&bytes);
            let mut enveloped = vec![VERSION];
            enveloped.extend(&bytes);
            let _ = decode_state::<PnCounter>(&enveloped);
        }
    }
}
