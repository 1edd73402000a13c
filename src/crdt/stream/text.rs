//! Content ids as text: multibase base32 (`b`, RFC 4648 lower case, no
//! padding), the CIDv1 default. The `cid` crate's `Display` and `FromStr`
//! go through `multibase`, which links every base it knows (about 60 KiB
//! of the Worker); this is the one base the API speaks, tested against it.

use cid::Cid;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A content id as text, and back.
pub trait IdText: Sized {
    /// `b` and the base32 of the id's bytes.
    fn text(&self) -> String;
    /// The id a text names, if it is one in base32.
    fn from_text(text: &str) -> Option<Self>;
}

impl IdText for Cid {
    fn text(&self) -> String {
        let bytes = self.to_bytes();
        let mut out = String::with_capacity(1 + bytes.len() * 8 / 5 + 1);
        out.push('b');
        let (mut acc, mut bits) = (0u32, 0u32);
        for b in bytes {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
        }
        out
    }

    fn from_text(text: &str) -> Option<Cid> {
        let body = text.strip_prefix('b')?;
        let mut bytes = Vec::with_capacity(body.len() * 5 / 8);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in body.bytes() {
            let v = ALPHABET.iter().position(|a| *a == c)? as u32;
            acc = (acc << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((acc >> bits) as u8);
            }
        }
        if acc & ((1 << bits) - 1) != 0 {
            return None;
        }
        let cid = Cid::try_from(bytes.as_slice()).ok()?;
        (cid.text() == text).then_some(cid)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod test {
    use super::*;
    use crate::crdt::stream::Event;

    #[test]
    fn the_text_is_the_multibase_base32_of_the_cid_crate() {
        for i in 0..50u64 {
            let id = Event::new("t", i, vec![i as u8; i as usize], vec![]).id();
            assert_eq!(id.text(), id.to_string());
            assert_eq!(Cid::from_text(&id.to_string()), Some(id));
        }
        let id = Event::new("t", 1, vec![], vec![]).id().text();
        assert_eq!(Cid::from_text(&id.to_uppercase()), None);
        assert_eq!(Cid::from_text(&id[1..]), None);
        assert_eq!(Cid::from_text(&format!("{id}a")), None);
        assert_eq!(Cid::from_text("b"), None);
    }
}
