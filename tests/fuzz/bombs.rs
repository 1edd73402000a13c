//! Inputs of 1 and 10 MB: nesting bombs (JSON arrays and objects,
//! DAG-CBOR arrays, indefinite maps and tags) and garbage (random bytes,
//! endless varints, a length of 2^64), fed to every decoder that could
//! recurse or allocate, some of which look at no size limit first. Each
//! runs on a thread with a Worker's stack, so an unbounded recursion
//! overflows it; each must refuse a bomb, and allocate no more than a few
//! times its input. The bound is the same for 1 and 10 MB: work in
//! proportion to the input, not to what it claims.

use crate::alloc::allocated_by;
use crate::seeds::NOW_MS;
use edge_crdt::api::contacts::{parse_cursor, PushBody};
use edge_crdt::api::http::{json_object, HttpRequest, Method, POSTCARD};
use edge_crdt::api::kv::parse_context;
use edge_crdt::api::set::ReplicaJson;
use edge_crdt::api::stream::QueryJson;
use edge_crdt::codec::{self, MAX_FRAME};
use edge_crdt::crdt::stream::{read_car, Cid, Event, IdText, Limits};
use edge_crdt::crdt::{LwwSet, MvRegister, PnCounter};
use edge_crdt::engine::{open_frame, open_replies};
use edge_crdt::kinds::contacts::Replica;
use edge_crdt::kinds::CATALOG;
use edge_crdt::Rng;

/// A Worker's stack (wasm32's default): no decoder may need more.
const STACK: usize = 1 << 20;

const MB: usize = 1 << 20;

/// Allocation allowed besides the per-byte part, which is [`TEXT`] for
/// text, JSON and DAG-CBOR, and [`LISTS`] for postcard.
const ALLOC_BASE: usize = 4 << 20;

/// Bytes a text decoder may allocate per input byte.
const TEXT: usize = 4;

/// Bytes a postcard decoder may allocate per input byte: a list of empty
/// messages (3 bytes each) decodes to 36 bytes a byte, of empty leaves
/// (2 bytes each) to 32. What a length claims is never allocated.
const LISTS: usize = 40;

type Decoder = fn(&[u8]) -> bool;

/// A request with `body`, at [`NOW_MS`].
fn request(method: Method, url: &str, body: &[u8]) -> HttpRequest {
    let mut req = HttpRequest::new(method, url);
    req.body = body.to_vec();
    req.now = NOW_MS;
    req
}

/// Every route with a body, as the router would parse it past its size
/// check (which the Worker makes before it reads the body).
fn routed(body: &[u8]) -> bool {
    let routes = [
        (Method::Post, "/api/counters/c/increment"),
        (Method::Put, "/api/sets/s"),
        (Method::Post, "/api/sets/s/insert"),
        (Method::Post, "/api/sets/s/update"),
        (Method::Put, "/api/kv/k"),
        (Method::Delete, "/api/kv/k"),
        (Method::Post, "/api/contacts/b/push"),
        (Method::Post, "/api/streams/t/events"),
        (Method::Post, "/api/streams/query"),
        (Method::Put, "/admin/partition"),
    ];
    let mut req = request(Method::Post, "/", body);
    let mut any = false;
    for (method, path) in routes {
        for content_type in [None, Some(POSTCARD.to_owned())] {
            (req.method, req.path, req.content_type) = (method.clone(), path.into(), content_type);
            any |= edge_crdt::api::route(&req, false).is_ok();
        }
    }
    any
}

/// The text of `bytes` if they are UTF-8, as a JavaScript string or a
/// URL is; else a text no decoder takes.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("\0")
}

/// The decoders, by name.
fn decoders() -> Vec<(&'static str, usize, Decoder)> {
    vec![
        ("api::route bodies", TEXT, routed),
        ("json_object<Value>", TEXT, |b| {
            json_object::<serde_json::Value>(b, "").is_ok()
        }),
        ("json_object<ReplicaJson>", TEXT, |b| {
            json_object::<ReplicaJson>(b, "").is_ok()
        }),
        ("json_object<PushBody>", TEXT, |b| {
            json_object::<PushBody>(b, "").is_ok()
        }),
        ("json_object<QueryJson>", TEXT, |b| {
            json_object::<QueryJson>(b, "").is_ok()
        }),
        ("decode_state<PnCounter>", LISTS, |b| {
            codec::decode_state::<PnCounter>(b).is_ok()
        }),
        ("decode_state<LwwSet>", LISTS, |b| {
            codec::decode_state::<LwwSet>(b).is_ok()
        }),
        ("decode_state<MvRegister>", LISTS, |b| {
            codec::decode_state::<MvRegister>(b).is_ok()
        }),
        ("decode<Replica>", LISTS, |b| {
            codec::decode::<Replica>(b, 16 * MB).is_ok()
        }),
        ("open_frame", LISTS, |b| {
            open_frame(b, CATALOG, NOW_MS, 30_000).is_ok()
        }),
        ("open_replies", LISTS, |b| open_replies(b, CATALOG).is_ok()),
        ("rows of every kind", LISTS, |b| {
            CATALOG.prefixes().iter().any(|p| {
                let kind = CATALOG.row_type(p).expect("a kind");
                kind.merge(None, b, u64::MAX).is_ok() | kind.check("", b).is_ok()
            })
        }),
        ("stream sync", LISTS, |b| {
            CATALOG.row_type("stream").unwrap().check_sync(b).is_ok()
        }),
        ("Event::from_block", TEXT, |b| {
            Event::from_block(b, None, &Limits::default(), u64::MAX).is_ok()
        }),
        ("read_car", TEXT, |b| read_car(b).is_ok()),
        ("Cid::from_text", TEXT, |b| {
            Cid::from_text(text(b)).is_some()
        }),
        ("from_base64", TEXT, |b| {
            codec::from_base64(text(b), MAX_FRAME).is_ok()
        }),
        ("parse_context", TEXT, |b| parse_context(text(b)).is_ok()),
        ("parse_cursor", TEXT, |b| {
            parse_cursor(Some(text(b))).is_ok()
        }),
    ]
}

/// `unit` repeated to `len` bytes, after `head`.
fn repeat(head: &[u8], unit: &[u8], len: usize) -> Vec<u8> {
    let times = len.saturating_sub(head.len()).div_ceil(unit.len());
    [head, &unit.repeat(times)].concat()
}

/// Nesting bombs of `len` bytes: no decoder may take one.
fn bombs(len: usize) -> Vec<(&'static str, Vec<u8>)> {
    // a CAR file whose header is `{"x": [[[[…]]]]}`, a key it skips
    let header = repeat(b"\xa1\x61x", b"\x81", len - 16);
    let mut car = Vec::new();
    let mut n = header.len() as u64;
    while n >= 0x80 {
        car.push(n as u8 | 0x80);
        n >>= 7;
    }
    car.push(n as u8);
    car.extend(header);
    vec![
        ("JSON arrays", repeat(b"", b"[", len)),
        ("JSON objects", repeat(b"", b"{\"a\":", len)),
        ("JSON in a set replica", repeat(b"{\"adds\":[", b"[", len)),
        ("JSON in a push", repeat(b"{\"client\":", b"[", len)),
        ("DAG-CBOR arrays", repeat(b"", b"\x81", len)),
        ("DAG-CBOR indefinite arrays", repeat(b"", b"\x9f", len)),
        ("DAG-CBOR indefinite maps", repeat(b"", b"\xbf\x61a", len)),
        ("DAG-CBOR tags", repeat(b"", b"\xd8\x2a", len)),
        (
            "DAG-CBOR in an event",
            repeat(b"\xa1\x65topic", b"\x81", len),
        ),
        ("DAG-CBOR in a CAR header", car),
    ]
}

/// Garbage of `len` bytes: decoders may take none of it, quickly.
fn garbage(len: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = Rng::new(len as u64);
    let random = (0..len / 8)
        .flat_map(|_| rng.next_u64().to_le_bytes())
        .collect();
    vec![
        ("random bytes", random),
        ("endless varints", repeat(&[1], b"\xff", len)),
        (
            "a length of 2^64",
            repeat(
                &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
                b"\x00",
                len,
            ),
        ),
        (
            "a frame of empty leaves",
            repeat(&[1, 0, 0, 4, 0xff, 0xff, 0xff, 0xff, 0x0f], b"\x00", len),
        ),
        (
            "a frame of empty rows",
            repeat(
                &[1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f],
                b"\x03a:b\x00",
                len,
            ),
        ),
        ("base64 text", repeat(b"", b"AAAA", len)),
        ("a content id's text", repeat(b"b", b"a", len)),
    ]
}

/// Runs `decode` on `input` on a Worker-sized stack: whether it took the
/// input, and what it allocated.
fn on_small_stack(name: &str, decode: Decoder, input: &[u8]) -> (bool, usize) {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(format!("bomb {name}"))
            .stack_size(STACK)
            .spawn_scoped(s, || allocated_by(|| decode(input)))
            .expect("a thread")
            .join()
            .unwrap_or_else(|_| panic!("{name} panicked"))
    })
}

/// Feeds each input to each decoder; what went wrong, if anything.
fn feed(inputs: &[(&str, Vec<u8>)], must_refuse: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    for (decoder, per_byte, decode) in decoders() {
        for (what, input) in inputs {
            let (took, bytes) = on_small_stack(decoder, decode, input);
            let limit = ALLOC_BASE + per_byte * input.len();
            let mb = input.len() / MB;
            if must_refuse && took {
                wrong.push(format!("{decoder} took {mb} MB of {what}"));
            }
            if bytes > limit {
                wrong.push(format!(
                    "{decoder} allocated {bytes} bytes for {mb} MB of {what}"
                ));
            }
        }
    }
    wrong
}

#[test]
fn nesting_bombs_of_1_and_10_mb_are_refused_on_a_workers_stack() {
    for len in [MB, 10 * MB] {
        let wrong = feed(&bombs(len), true);
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}

#[test]
fn garbage_of_1_and_10_mb_allocates_in_proportion() {
    for len in [MB, 10 * MB] {
        let wrong = feed(&garbage(len), false);
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
