//! A topic's blocks as a CARv1 file: varint(header length), the DAG-CBOR
//! header `{"roots": [links], "version": 1}`, then per block
//! varint(cid length + data length), the CID's bytes and the data.
//! Varints are unsigned LEB128.

use super::event::block_id;
use super::text::IdText;
use cid::Cid;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Header {
    roots: Vec<Cid>,
    version: u64,
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a varint at `*at`, moving `*at` past it.
fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or("truncated varint")?;
        *at += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(n);
        }
    }
    Err("varint too long".into())
}

/// A CARv1 file of `blocks` with header `roots`.
pub fn car(roots: &[Cid], blocks: impl IntoIterator<Item = (Cid, Vec<u8>)>) -> Vec<u8> {
    let header = Header {
        roots: roots.to_vec(),
        version: 1,
    };
    let header = serde_ipld_dagcbor::to_vec(&header).expect("a header always encodes");
    let mut out = Vec::new();
    put_varint(&mut out, header.len() as u64);
    out.extend_from_slice(&header);
    for (cid, data) in blocks {
        let cid = cid.to_bytes();
        put_varint(&mut out, (cid.len() + data.len()) as u64);
        out.extend_from_slice(&cid);
        out.extend_from_slice(&data);
    }
    out
}

/// The length-prefixed section at `*at`, moving `*at` past it.
fn section<'a>(bytes: &'a [u8], at: &mut usize) -> Result<&'a [u8], String> {
    let len = usize::try_from(varint(bytes, at)?).map_err(|e| e.to_string())?;
    let end = at.checked_add(len).filter(|&end| end <= bytes.len());
    let end = end.ok_or("truncated section")?;
    let section = &bytes[*at..end];
    *at = end;
    Ok(section)
}

/// The roots and blocks of a CARv1 file; each block's id must be
/// [`block_id`] of its data.
#[allow(clippy::type_complexity)]
pub fn read_car(bytes: &[u8]) -> Result<(Vec<Cid>, Vec<(Cid, Vec<u8>)>), String> {
    let mut at = 0;
    let header: Header = serde_ipld_dagcbor::from_slice(section(bytes, &mut at)?)
        .map_err(|e| format!("header: {e}"))?;
    if header.version != 1 {
        return Err(format!("CAR version {}", header.version));
    }
    let mut blocks = Vec::new();
    while at < bytes.len() {
        let block = section(bytes, &mut at)?;
        let cid = Cid::try_from(block).map_err(|e| format!("block id: {e}"))?;
        let data = &block[cid.encoded_len()..];
        let actual = block_id(data);
        if actual != cid {
            return Err(format!("block {} hashes to {}", cid.text(), actual.text()));
        }
        blocks.push((cid, data.to_vec()));
    }
    Ok((header.roots, blocks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::stream::Event;

    /// Three linked events, oldest first, as (id, block).
    fn chain() -> Vec<(Cid, Vec<u8>)> {
        let mut blocks: Vec<(Cid, Vec<u8>)> = Vec::new();
        for (i, word) in ["a", "b", "c"].iter().enumerate() {
            let links = blocks.last().map(|(id, _)| vec![*id]).unwrap_or_default();
            let block = Event::new("t", i as u64, word.as_bytes().to_vec(), links).encode();
            blocks.push((block_id(&block), block));
        }
        blocks
    }

    #[test]
    fn round_trip_keeps_roots_and_blocks() {
        let blocks = chain();
        let roots = [blocks[2].0, blocks[0].0];
        let file = car(&roots, blocks.clone());
        assert_eq!(read_car(&file), Ok((roots.to_vec(), blocks.clone())));
        if let Ok(path) = std::env::var("CAR_OUT") {
            std::fs::write(path, car(&[blocks[2].0], blocks)).unwrap();
        }
    }

    #[test]
    fn header_is_dag_cbor_roots_then_version() {
        // varint 17, map(2) {"roots": [], "version": 1}
        let expected = b"\x11\xa2\x65roots\x80\x67version\x01";
        assert_eq!(car(&[], []), expected.to_vec());
        assert_eq!(read_car(expected), Ok((vec![], vec![])));
    }

    #[test]
    fn truncated_or_altered_files_are_errors() {
        let file = car(&[chain()[0].0], chain());
        for cut in [1, 5, file.len() - 1] {
            assert!(read_car(&file[..cut]).is_err(), "cut at {cut}");
        }
        let mut altered = file.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(read_car(&altered).unwrap_err().contains("hashes to"));
    }
}
