//! The serde form of a [`GCounter`]: one canonical byte string (equal
//! states, equal bytes) that decodes without panics and allocates in
//! proportion to its length.
//!
//! ```
//! use edge_crdt::{crdt::{Crdt, GCounter}, NodeId};
//! let mut c = GCounter::default();
//! for id in 0..64 {
//!     c.merge(&c.increment(NodeId(id), 100_000 + u64::from(id)).unwrap());
//! }
//! let bytes = postcard::to_allocvec(&c).unwrap();
//! // 64 counts of 17 bits, 16 below the leading one: 128 bytes, plus 7.
//! assert_eq!(bytes.len(), 2 + 3 + 2 + 128 + 1);
//! assert_eq!(postcard::from_bytes::<GCounter>(&bytes).unwrap(), c);
//! ```
//!
//! # Format
//!
//! Unsigned LEB128 varints in their shortest form, unless said otherwise:
//! - the ids: the number of runs of consecutive ids, then each run as
//!   `gap << 1 | (len > 1)` and, if `len > 1`, `len - 2`, where `gap` is the
//!   number of ids skipped since the previous run, not counting the one
//!   that must separate two runs;
//! - if there are ids, the counts in id order, in one of three forms named
//!   by a first byte (see [`Form`]): varints; packed at the bit length of
//!   the largest count; or each count's bit length, less the least, in
//!   just enough bits, followed by its bits below the leading one. Bits go
//!   low bits first, padded with zeros to a byte. The form is the shortest
//!   that takes at least a byte per entry (ties to the first listed);
//! - the number of retirement records, then each: its retired id less the
//!   previous record's, and the index of its heir among the ids.
//!
//! Decoding accepts that form and no other: a decoded counter re-encodes
//! to the same bytes. It allocates an entry (16 bytes) per byte of input
//! at most, and a record (8 bytes) per two, and never more than
//! `MAX_NODES` of either; the checks of `validate` come after.

use super::{Entry, GCounter, Record, MAX_NODES};
use crate::NodeId;
use serde::{de, ser, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

impl Serialize for GCounter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.encode().map_err(ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for GCounter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// Reads a counter from a byte string, or from a sequence of bytes.
struct BytesVisitor;

impl<'de> de::Visitor<'de> for BytesVisitor {
    type Value = GCounter;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the bytes of a G-counter")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<GCounter, E> {
        GCounter::decode(bytes).map_err(E::custom)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<GCounter, A::Error> {
        let mut bytes = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            if bytes.len() == crate::codec::MAX_STATE {
                return Err(de::Error::custom("a G-counter over the size limit"));
            }
            bytes.push(b);
        }
        self.visit_bytes(&bytes)
    }
}

impl GCounter {
    /// The canonical bytes of this counter (see the module doc).
    fn encode(&self) -> Result<Vec<u8>, &'static str> {
        let mut out = Vec::with_capacity(8 + 3 * self.entries.len() + 2 * self.records.len());
        write_ids(&mut out, &self.entries)?;
        write_counts(&mut out, &self.entries);
        put(&mut out, self.records.len() as u64);
        let mut prev = 0;
        for r in &self.records {
            let heir = self
                .entries
                .binary_search_by_key(&r.heir, |e| e.node)
                .map_err(|_| "a record's heir has no entry")?;
            let retired = u64::from(r.retired.0);
            put(
                &mut out,
                retired.checked_sub(prev).ok_or("records out of order")?,
            );
            put(&mut out, heir as u64);
            prev = retired;
        }
        Ok(out)
    }

    /// Reads the canonical bytes of a counter.
    fn decode(bytes: &[u8]) -> Result<GCounter, &'static str> {
        let mut r = Reader(bytes);
        let mut entries = read_ids(&mut r)?;
        read_counts(&mut r, &mut entries)?;
        let records = read_records(&mut r, &entries)?;
        if !r.0.is_empty() {
            return Err("bytes after the counter");
        }
        Ok(GCounter { entries, records })
    }
}

/// Appends `v` as an unsigned LEB128 varint.
fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The length of `v` as a varint.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Untrusted bytes, read front to back.
#[derive(Clone, Copy)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.0.len() {
            return Err("the bytes end early");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// A varint in its shortest form.
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.take(1)?[0];
            if i == 9 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return if b == 0 && i > 0 {
                    Err("a varint not in its shortest form")
                } else {
                    Ok(v)
                };
            }
        }
        Err("a varint over 64 bits")
    }
}

/// Whether `b` directly follows `a`, so that both are in one run.
fn consecutive(a: &Entry, b: &Entry) -> bool {
    a.node.0.checked_add(1) == Some(b.node.0)
}

fn write_ids(out: &mut Vec<u8>, entries: &[Entry]) -> Result<(), &'static str> {
    put(out, entries.chunk_by(consecutive).count() as u64);
    let mut next = 0; // the lowest id the next run may start at
    for run in entries.chunk_by(consecutive) {
        let (start, len) = (u64::from(run[0].node.0), run.len() as u64);
        let gap = start.checked_sub(next).ok_or("entries out of order")?;
        put(out, (gap << 1) | u64::from(len > 1));
        if len > 1 {
            put(out, len - 2);
        }
        next = start + len + 1;
    }
    Ok(())
}

/// Reads the runs of ids, calling `f(start, len)` on each; how many ids.
fn walk_runs(r: &mut Reader, mut f: impl FnMut(u32, u32)) -> Result<usize, &'static str> {
    let runs = r.varint()?;
    let (mut next, mut total) = (0u64, 0u64);
    for _ in 0..runs {
        let head = r.varint()?;
        let len = match head & 1 {
            0 => 1,
            _ => r.varint()?.saturating_add(2),
        };
        total = total.saturating_add(len);
        if total > MAX_NODES as u64 {
            return Err("more ids than a counter may have");
        }
        let start = next + (head >> 1);
        if start + len > 1 << 32 {
            return Err("an id over u32");
        }
        f(start as u32, len as u32);
        next = start + len + 1;
    }
    Ok(total as usize)
}

/// Reads the ids into entries of count 0, allocating once.
fn read_ids(r: &mut Reader) -> Result<Vec<Entry>, &'static str> {
    let mut probe = *r;
    let total = walk_runs(&mut probe, |_, _| {})?;
    // The counts take at least a byte per entry (see `Form::of`).
    if total > probe.0.len() {
        return Err("more ids than the bytes can hold");
    }
    let mut entries = Vec::with_capacity(total);
    walk_runs(r, |start, len| {
        let ids = (0..len).map(|k| NodeId(start + k));
        entries.extend(ids.map(|node| Entry { node, count: 0 }));
    })?;
    Ok(entries)
}

/// How the counts are written, said by the byte(s) before them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// A varint each: byte 0.
    Varints,
    /// `w` bits each, `w` from 1 to 64: byte `w`.
    Fixed(u32),
    /// Each count's bit length minus `min` in `k` bits, then its bits below
    /// its leading one: bytes `128 + k` and `min`.
    Lengths { k: u32, min: u32 },
}

impl Form {
    /// The shortest form of the counts of `entries` that takes at least a
    /// byte per entry (so decoding allocates in proportion to the bytes);
    /// on a tie, the one listed first.
    fn of(entries: &[Entry]) -> Form {
        let lens = entries.iter().map(|e| bit_len(e.count));
        let (min, max) = (
            lens.clone().min().unwrap_or(0),
            lens.clone().max().unwrap_or(0),
        );
        let k = bit_len(u64::from(max - min));
        let bits: usize = lens.map(|len| (k + len.saturating_sub(1)) as usize).sum();
        let varints = 1 + entries.iter().map(|e| varint_len(e.count)).sum::<usize>();
        let fixed = (max > 0).then(|| 1 + (entries.len() * max as usize).div_ceil(8));
        let lengths = 2 + bits.div_ceil(8);
        let mut best = (varints, Form::Varints);
        for (size, form) in [
            (fixed, Form::Fixed(max)),
            (Some(lengths), Form::Lengths { k, min }),
        ] {
            if let Some(size) = size.filter(|&s| s < best.0 && s >= entries.len()) {
                best = (size, form);
            }
        }
        best.1
    }
}

/// The number of bits of `v` up to its leading one.
fn bit_len(v: u64) -> u32 {
    u64::BITS - v.leading_zeros()
}

/// The bits of `v` below its leading one.
fn below_leading_one(v: u64) -> u64 {
    v & (u64::MAX.checked_shr(v.leading_zeros()).unwrap_or(0) >> 1)
}

/// Bits appended low bits first, then padded with zeros to a byte.
#[derive(Default)]
struct BitWriter {
    acc: u128,
    n: u32,
}

impl BitWriter {
    /// Appends `v`, which has no bits set above the lowest `width`.
    fn write(&mut self, out: &mut Vec<u8>, v: u64, width: u32) {
        self.acc |= u128::from(v) << self.n;
        self.n += width;
        while self.n >= 8 {
            out.push(self.acc as u8);
            (self.acc, self.n) = (self.acc >> 8, self.n - 8);
        }
    }

    fn flush(self, out: &mut Vec<u8>) {
        if self.n > 0 {
            out.push(self.acc as u8);
        }
    }
}

/// Bits read low bits first from the front of a [`Reader`].
#[derive(Default)]
struct BitReader {
    acc: u128,
    n: u32,
}

impl BitReader {
    /// The next `width` (at most 64) bits.
    fn read(&mut self, r: &mut Reader, width: u32) -> Result<u64, &'static str> {
        while self.n < width {
            self.acc |= u128::from(r.take(1)?[0]) << self.n;
            self.n += 8;
        }
        let v = self.acc & ((1 << width) - 1);
        (self.acc, self.n) = (self.acc >> width, self.n - width);
        Ok(v as u64)
    }

    /// Checks that the padding bits are zero.
    fn finish(self) -> Result<(), &'static str> {
        match self.acc {
            0 => Ok(()),
            _ => Err("packed counts with padding bits set"),
        }
    }
}

fn write_counts(out: &mut Vec<u8>, entries: &[Entry]) {
    if entries.is_empty() {
        return;
    }
    let mut bits = BitWriter::default();
    match Form::of(entries) {
        Form::Varints => {
            out.push(0);
            entries.iter().for_each(|e| put(out, e.count));
        }
        Form::Fixed(w) => {
            out.push(w as u8);
            entries.iter().for_each(|e| bits.write(out, e.count, w));
        }
        Form::Lengths { k, min } => {
            out.extend([128 + k as u8, min as u8]);
            for e in entries {
                let len = bit_len(e.count);
                bits.write(out, u64::from(len - min), k);
                bits.write(out, below_leading_one(e.count), len.saturating_sub(1));
            }
        }
    }
    bits.flush(out);
}

fn read_counts(r: &mut Reader, entries: &mut [Entry]) -> Result<(), &'static str> {
    if entries.is_empty() {
        return Ok(());
    }
    let form = match r.take(1)?[0] {
        0 => Form::Varints,
        w @ 1..=64 => Form::Fixed(u32::from(w)),
        k @ 128..=135 => Form::Lengths {
            k: u32::from(k - 128),
            min: u32::from(r.take(1)?[0]),
        },
        _ => return Err("an unknown form of counts"),
    };
    let mut bits = BitReader::default();
    for e in entries.iter_mut() {
        e.count = match form {
            Form::Varints => r.varint()?,
            Form::Fixed(w) => bits.read(r, w)?,
            Form::Lengths { k, min } => {
                let len = min + bits.read(r, k)? as u32;
                if len > 64 {
                    return Err("a count over 64 bits");
                }
                let below = bits.read(r, len.saturating_sub(1))?;
                below | (1u128 << len >> 1) as u64
            }
        };
    }
    bits.finish()?;
    if Form::of(entries) != form {
        return Err("counts not in their shortest form");
    }
    Ok(())
}

fn read_records(r: &mut Reader, entries: &[Entry]) -> Result<Vec<Record>, &'static str> {
    let n = r.varint()?;
    // Each record takes at least two bytes.
    if n > MAX_NODES as u64 || n > (r.0.len() / 2) as u64 {
        return Err("more records than a counter may have or the bytes hold");
    }
    let mut records: Vec<Record> = Vec::with_capacity(n as usize);
    let mut retired = 0u64;
    for _ in 0..n {
        retired = retired
            .checked_add(r.varint()?)
            .filter(|&id| id <= u64::from(u32::MAX))
            .ok_or("an id over u32")?;
        let heir = usize::try_from(r.varint()?)
            .ok()
            .and_then(|i| entries.get(i))
            .ok_or("a record's heir is not an entry")?;
        let record = Record {
            retired: NodeId(retired as u32),
            heir: heir.node,
        };
        if records.last().is_some_and(|last| *last >= record) {
            return Err("records out of order");
        }
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::crdt::Crdt;

    const B: NodeId = NodeId(1);
    const C: NodeId = NodeId(2);

    /// A counter with `(id, count)` entries, written by their nodes.
    fn counter(entries: &[(u32, u64)]) -> GCounter {
        let mut c = GCounter::default();
        for &(id, by) in entries {
            c.merge(&c.increment(NodeId(id), by).unwrap());
        }
        c
    }

    fn bytes(c: &GCounter) -> Vec<u8> {
        c.encode().unwrap()
    }

    #[test]
    fn ids_are_runs_and_counts_the_shortest_form() {
        // 3, 5..=7, 10: runs (gap 3), (gap 0, len 3), (gap 1); varints,
        // since packed counts would take less than a byte each.
        let ids = [3, 5, 6, 7, 10];
        let c = counter(&ids.map(|i| (i, u64::from(i) / 2)));
        assert_eq!(bytes(&c), [3, 6, 1, 1, 2, 0, 1, 2, 3, 3, 5, 0]);
        // 0..64, one run; counts of 10 bits: 9 bits each below the leading
        // one, lengths all 10 (k = 0): 72 bytes.
        let c = counter(&(0..64).map(|i| (i, 1000)).collect::<Vec<_>>());
        let b = bytes(&c);
        assert_eq!(b[..5], [1, 1, 62, 128, 10]);
        assert_eq!(b.len(), 5 + 72 + 1);
        // Most counts of 20 bits and one small: 20 bits each.
        let c = counter(
            &(0..64)
                .map(|i| (i, if i == 0 { 1 } else { 1 << 19 }))
                .collect::<Vec<_>>(),
        );
        let b = bytes(&c);
        assert_eq!(b[..4], [1, 1, 62, 20]);
        assert_eq!(b.len(), 4 + 160 + 1);
        // A skewed count: varints (8 bytes; 12 packed, 7 bytes of lengths).
        let c = counter(&ids.map(|i| (i, if i == 10 { 100_000 } else { 1 })));
        let counts = [0, 1, 1, 1, 1, 0xa0, 0x8d, 0x06];
        assert_eq!(bytes(&c), [&[3, 6, 1, 1, 2], &counts[..], &[0]].concat());
        assert_eq!(bytes(&counter(&[(0, 5)])), [1, 0, 0, 5, 0]);
        assert_eq!(bytes(&GCounter::default()), [0, 0]);
    }

    #[test]
    fn encoding_round_trips_and_is_canonical() {
        let mut c = counter(&[(0, 0), (1, u64::MAX), (9, 1 << 40), (u32::MAX, 7)]);
        let fold = c.absorb(NodeId(9), NodeId(0)).unwrap();
        c.merge(&fold);
        let mut same = fold.clone();
        same.merge(&counter(&[(1, u64::MAX), (u32::MAX, 7)]));
        same.merge(&counter(&[(0, 3), (9, 1)]));
        assert_eq!(same, c);
        assert_eq!(bytes(&same), bytes(&c));
        // 8 counts of 64 bits: packed at 64 (lengths, 63 bits each and one
        // more byte, tie); 16 of them: lengths (k = 0, min = 64).
        let wide = |n: u32| {
            counter(
                &(0..n)
                    .map(|i| (i, u64::MAX - u64::from(i)))
                    .collect::<Vec<_>>(),
            )
        };
        let (w8, w16) = (wide(8), wide(16));
        assert_eq!(bytes(&w8)[3], 64);
        assert_eq!(bytes(&w16)[3..5], [128, 64]);
        let zeros = counter(&[(0, 0), (1, 0)]);
        for s in [&c, &fold, &w8, &w16, &zeros, &GCounter::default()] {
            let b = postcard::to_allocvec(s).unwrap();
            assert_eq!(&postcard::from_bytes::<GCounter>(&b).unwrap(), s);
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(&serde_json::from_str::<GCounter>(&json).unwrap(), s);
        }
    }

    #[test]
    fn decoding_rejects_other_forms() {
        let mut c = counter(&[(0, 1000), (1, 2000), (2, 3000)]);
        c.merge(&c.absorb(C, B).unwrap());
        // ids 0..=1; counts 1000, 5000 as varints (packed is no shorter);
        // one record: id 2 into the entry at index 1.
        let valid = [1, 1, 0, 0, 232, 7, 136, 39, 1, 2, 1];
        assert_eq!(bytes(&c), valid);
        assert_eq!(GCounter::decode(&valid), Ok(c));
        let with = |records: &[u8]| [&valid[..8], records].concat();
        let nine = [0x80; 9];
        // 10 counts of 1000 packed at 10 bits: 4 padding bits at the end.
        let mut padded = bytes(&counter(&(0..10).map(|i| (i, 1000)).collect::<Vec<_>>()));
        assert_eq!(padded[3], 10);
        assert!(GCounter::decode(&padded).is_ok());
        let at = padded.len() - 2;
        padded[at] |= 0x80;
        let cases: &[(&[u8], &str)] = &[
            (&[], "end early"),
            (&[0, 0, 0], "bytes after"),
            (&[0x80, 0], "shortest form"),
            (
                &[[1, 0, 0].as_slice(), &nine, &[2, 0]].concat(),
                "over 64 bits",
            ),
            (&[1, 1, 0xff, 0x07, 0], "more ids than a counter"),
            (&[1, 1, 0xfe, 0x07, 0], "more ids than the bytes"),
            (&[3, 0, 0, 0, 0], "more ids than the bytes"),
            (&[1, 0x80, 0x80, 0x80, 0x80, 0x20, 0, 1, 0], "over u32"),
            (&[1, 0, 65, 0, 0, 0, 0, 0, 0, 0, 0, 0], "unknown form"),
            (&[1, 0, 136, 0, 0, 0], "unknown form"),
            (&[1, 0, 128, 65, 0, 0], "over 64 bits"),
            (&[1, 0, 3, 5, 0], "shortest form"),
            (&[1, 0, 0, 200, 1, 0], "shortest form"),
            (&[1, 1, 0, 0, 1, 2, 0], "shortest form"),
            (&[1, 1, 1, 3, 209, 0, 0], "shortest form"),
            (&[1, 1, 1, 130, 0, 0b11001001, 0], "shortest form"),
            (&padded, "padding"),
            (&with(&[1, 2, 2]), "heir is not an entry"),
            (&with(&[9, 2, 1]), "more records"),
            (&with(&[2, 2, 1, 0, 0]), "out of order"),
            (&with(&[2, 2, 1, 0, 1]), "out of order"),
            (&with(&[1, 0x80, 0x80, 0x80, 0x80, 0x10, 0]), "over u32"),
        ];
        // 1, 2, 3 as lengths from 1 in 1 bit, and from 0 in 2 bits.
        assert!(GCounter::decode(&[1, 1, 1, 129, 1, 0b11010, 0]).is_ok());
        for (b, why) in cases {
            let err = GCounter::decode(b).unwrap_err();
            assert!(err.contains(why), "{b:?}: {err}");
        }
    }
}
