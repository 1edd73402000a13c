//! Address books: the opaque pull cursor, and the texts a push carries
//! (client stamps, contact ids).

use crate::driver::Target;
use crate::props::{round_trip, text};
use crate::seeds;
use edge_crdt::api::contacts::{cursor_token, parse_cursor};
use edge_crdt::crdt::contacts::{ContactId, HlcStamp};

pub fn targets() -> Vec<Target> {
    vec![cursor(), stamp(), contact_id()]
}

/// A cursor token: what parses gives a token that parses to the same.
fn cursor() -> Target {
    let seeds = seeds::cursors()
        .iter()
        .map(|c| cursor_token(c).into_bytes())
        .collect();
    Target::new("contacts/cursor", seeds, |bytes| {
        round_trip(
            bytes,
            |b| parse_cursor(Some(&text(b))),
            |c| cursor_token(c).into_bytes(),
        )
    })
    .dict(&[b"-", b"_", b"A", b"/", b"="])
}

/// A client's stamp, `<millis>-<counter>-<writer>`.
fn stamp() -> Target {
    let seeds = seeds::pushed(7)
        .iter()
        .map(|p| p.timestamp.to_string().into_bytes())
        .collect();
    Target::new("contacts/stamp", seeds, |bytes| {
        round_trip(
            bytes,
            |b| text(b).parse::<HlcStamp>(),
            |s| s.to_string().into_bytes(),
        )
    })
    .dict(&[
        b"-",
        b"0",
        b"f",
        b"18446744073709551615",
        b"ffffffffffffffff",
    ])
}

/// A contact's UUID, in any form the parser takes: its canonical text
/// parses to the same id.
fn contact_id() -> Target {
    let seeds = vec![
        seeds::contact_id(1).as_str().as_bytes().to_vec(),
        b"{123E4567-E89B-12D3-A456-426614174000}".to_vec(),
        b"urn:uuid:123e4567-e89b-12d3-a456-426614174000".to_vec(),
        b"123e4567e89b12d3a456426614174000".to_vec(),
    ];
    Target::new("contacts/contact_id", seeds, |bytes| {
        round_trip(
            bytes,
            |b| text(b).parse::<ContactId>(),
            |id| id.as_str().as_bytes().to_vec(),
        )
    })
    .dict(&[b"-", b"{", b"}", b"urn:uuid:"])
}
