//! The verbs that make inputs: mutations of valid encodings (bit flips,
//! bytes inserted, deleted, duplicated, the input cut short, two spliced,
//! varints at their boundaries, tokens of the formats) and raw random
//! bytes, all drawn from the project's seeded generator so that a seed
//! replays a run.

use edge_crdt::Rng;

/// The largest input a mutation makes.
pub const MAX_INPUT: usize = 64 << 10;

/// One way to change an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    FlipBit,
    SetByte,
    InsertBytes,
    DeleteRange,
    DuplicateRange,
    Truncate,
    Varint,
    Token,
    Splice,
    CopyRange,
    AddToByte,
}

const VERBS: [Verb; 11] = [
    Verb::FlipBit,
    Verb::SetByte,
    Verb::InsertBytes,
    Verb::DeleteRange,
    Verb::DuplicateRange,
    Verb::Truncate,
    Verb::Varint,
    Verb::Token,
    Verb::Splice,
    Verb::CopyRange,
    Verb::AddToByte,
];

/// Bytes that sit at the edges of ranges.
const EDGE_BYTES: [u8; 9] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x22, 0x5c];

/// Values whose varints are at a boundary of their length or type.
const EDGE_VALUES: [u64; 15] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x3fff,
    0x4000,
    0xffff,
    0x1_0000,
    i32::MAX as u64,
    u32::MAX as u64,
    1 << 32,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];

/// Tokens of JSON, DAG-CBOR and postcard that no single byte flip makes.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-0",
    b"1e309",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"0.1e-400",
    "\u{10ffff}".as_bytes(),
    b"\xc0\x80",
    b"\x9f",
    b"\xbf",
    b"\xff",
    b"\xd8\x2a",
    b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x7b\x00\x00\x00\x01\x00\x00\x00\x00",
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
];

/// Makes inputs from seeds with the generator `rng`, using the target's
/// own tokens `dict` besides the common ones.
pub struct Mutator<'a> {
    pub rng: Rng,
    pub dict: &'a [&'a [u8]],
}

impl Mutator<'_> {
    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    /// A position in `input`, its end included.
    fn spot(&mut self, input: &[u8]) -> usize {
        self.below(input.len() + 1)
    }

    /// A range of `input` of at most `max` bytes.
    fn range(&mut self, input: &[u8], max: usize) -> (usize, usize) {
        let start = self.spot(input);
        let len = self.below((input.len() - start).min(max) + 1);
        (start, start + len)
    }

    fn token(&mut self) -> Vec<u8> {
        let own = self.dict.len();
        let i = self.below(own + TOKENS.len());
        match i.checked_sub(own) {
            None => self.dict[i].to_vec(),
            Some(j) => TOKENS[j].to_vec(),
        }
    }

    fn varint(&mut self) -> Vec<u8> {
        let mut v = EDGE_VALUES[self.below(EDGE_VALUES.len())];
        if self.rng.chance(300) {
            v = v.wrapping_add(self.rng.range(0, 2)).wrapping_sub(1);
        }
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        if self.rng.chance(100) {
            // the same value, not in its shortest form
            *out.last_mut().unwrap() |= 0x80;
            out.push(0);
        }
        out
    }

    /// Puts `bytes` at a random spot of `input`: over what is there, or
    /// between.
    fn place(&mut self, input: &mut Vec<u8>, bytes: &[u8]) {
        let at = self.spot(input);
        if self.rng.chance(500) {
            let end = (at + bytes.len()).min(input.len());
            input.splice(at..end, bytes.iter().copied());
        } else {
            input.splice(at..at, bytes.iter().copied());
        }
    }

    /// Applies `verb` to `input`; `other` is a second input to splice in.
    pub fn apply(&mut self, verb: Verb, input: &mut Vec<u8>, other: &[u8]) {
        match verb {
            Verb::FlipBit if !input.is_empty() => {
                let i = self.below(input.len());
                input[i] ^= 1 << self.below(8);
            }
            Verb::SetByte if !input.is_empty() => {
                let i = self.below(input.len());
                input[i] = EDGE_BYTES[self.below(EDGE_BYTES.len())];
            }
            Verb::AddToByte if !input.is_empty() => {
                let i = self.below(input.len());
                let step = (self.rng.range(1, 70) as u8).wrapping_sub(35);
                input[i] = input[i].wrapping_add(step);
            }
            Verb::InsertBytes => {
                let n = 1 + self.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                self.place(input, &bytes);
            }
            Verb::DeleteRange => {
                let (start, end) = self.range(input, 16);
                input.drain(start..end);
            }
            Verb::DuplicateRange => {
                let (start, end) = self.range(input, 64);
                let copy = input[start..end].to_vec();
                let most = if self.rng.chance(100) { 200 } else { 4 };
                let times = 1 + self.below(most);
                let at = self.spot(input);
                input.splice(at..at, copy.repeat(times));
            }
            Verb::CopyRange => {
                let (start, end) = self.range(input, 32);
                let copy = input[start..end].to_vec();
                self.place(input, &copy);
            }
            Verb::Truncate => input.truncate(self.below(input.len() + 1)),
            Verb::Varint => {
                let v = self.varint();
                self.place(input, &v);
            }
            Verb::Token => {
                let t = self.token();
                self.place(input, &t);
            }
            Verb::Splice => {
                let cut = self.spot(input);
                let from = self.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
        input.truncate(MAX_INPUT);
    }

    /// Applies one to four random verbs; their names, for the report.
    pub fn mutate(&mut self, input: &mut Vec<u8>, other: &[u8]) -> Vec<Verb> {
        let n = 1 + self.below(4);
        let verbs: Vec<Verb> = (0..n).map(|_| VERBS[self.below(VERBS.len())]).collect();
        for &verb in &verbs {
            self.apply(verb, input, other);
        }
        verbs
    }

    /// Random bytes, or (one time in three) random tokens.
    pub fn random(&mut self) -> Vec<u8> {
        let most = if self.rng.chance(100) { 4096 } else { 64 };
        let len = self.below(most);
        if self.rng.chance(333) {
            let mut out = Vec::new();
            while out.len() < len {
                let t = self.token();
                out.extend(t);
            }
            return out;
        }
        (0..len).map(|_| self.rng.next_u64() as u8).collect()
    }
}
