//! The event stream's browser replica in a real headless browser, with
//! real `localStorage`:
//! `wasm-pack test --headless --chrome --features browser-stream --test web_stream`.
#![cfg(all(target_arch = "wasm32", feature = "browser-stream"))]

use cid::multibase::Base;
use edge_crdt::browser::StreamReplica;
use edge_crdt::codec::to_base64;
use edge_crdt::crdt::stream::{Cid, Dag, Event};
use edge_crdt::Rng;
use multihash::Multihash;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// 2^53 + 1 ns after the epoch: exact only as text.
const T0: u64 = 1_700_000_000_123_456_789;

fn storage() -> web_sys::Storage {
    web_sys::window().unwrap().local_storage().unwrap().unwrap()
}

fn get(obj: &JsValue, prop: &str) -> JsValue {
    js_sys::Reflect::get(obj, &JsValue::from_str(prop)).unwrap()
}

fn strings(list: &JsValue) -> Vec<String> {
    js_sys::Array::from(list)
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect()
}

/// An entry of `/live` data as JSON: `{cid, block}`.
fn entry(cid: &str, block: &[u8]) -> String {
    format!(r#"{{"cid":"{cid}","block":"{}"}}"#, to_base64(block))
}

fn live(events: &[&(Cid, Event)]) -> String {
    let list: Vec<String> = events
        .iter()
        .map(|(id, e)| entry(&id.to_string(), &e.encode()))
        .collect();
    format!("[{}]", list.join(","))
}

/// What `receive` said: (accepted, added, refused reasons).
fn receive(replica: &mut StreamReplica, data: &str) -> (u32, u32, Vec<String>) {
    let out = replica.receive(data).unwrap();
    let count = |k| get(&out, k).as_f64().unwrap() as u32;
    (
        count("accepted"),
        count("added"),
        strings(&get(&out, "refused")),
    )
}

/// The listed events' ids, in the replica's order.
fn listed(replica: &StreamReplica) -> Vec<String> {
    js_sys::Array::from(&replica.events().unwrap())
        .iter()
        .map(|e| get(&e, "cid").as_string().unwrap())
        .collect()
}

fn event(topic: &str, ts: u64, message: &str, links: Vec<Cid>) -> (Cid, Event) {
    let e = Event::new(topic, ts, message.as_bytes().to_vec(), links);
    (e.id(), e)
}

/// A history of `n` events of `topic`: each links one to three earlier
/// events, timestamps often tie.
fn history(topic: &str, n: usize, seed: u64) -> Vec<(Cid, Event)> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<(Cid, Event)> = Vec::new();
    for i in 0..n {
        let links = if out.is_empty() {
            Vec::new()
        } else {
            let k = rng.range(1, 4);
            (0..k)
                .map(|_| out[rng.below(out.len() as u64) as usize].0)
                .collect()
        };
        out.push(event(topic, T0 + rng.below(4), &format!("m{i}"), links));
    }
    out
}

fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut rng = Rng::new(seed);
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i as u64 + 1) as usize);
    }
    out
}

#[wasm_bindgen_test]
fn valid_events_are_accepted_and_listed_with_exact_timestamps() {
    let a = event("chat", T0, "hello", vec![]);
    let b = event("chat", T0 + 1, "héllo \u{1F600}", vec![a.0]);
    let mut replica = StreamReplica::new("chat".into());
    assert_eq!(receive(&mut replica, &live(&[&a, &b])), (2, 2, vec![]));
    assert_eq!(receive(&mut replica, &live(&[&b])), (1, 0, vec![]), "held");
    let list = js_sys::Array::from(&replica.events().unwrap());
    let second = list.get(1);
    assert_eq!(
        get(&second, "timestamp_ns").as_string().unwrap(),
        (T0 + 1).to_string()
    );
    assert_eq!(
        get(&second, "message").as_string().unwrap(),
        "héllo \u{1F600}"
    );
    assert_eq!(strings(&get(&second, "links")), [a.0.to_string()]);
    assert_eq!(listed(&replica), [a.0.to_string(), b.0.to_string()]);
    assert_eq!(replica.heads(), [b.0.to_string()]);
    assert!(replica.missing().is_empty());

    // A `/log` page, and a link not held yet: missing until it arrives.
    let c = event("chat", T0 + 2, "c", vec![b.0]);
    let d = event("chat", T0 + 3, "d", vec![c.0]);
    let page = format!(
        r#"{{"node":"node-0","entries":[{{"seq":4,"cid":"{}","block":"{}"}}],"more":false}}"#,
        d.0,
        to_base64(&d.1.encode())
    );
    assert_eq!(receive(&mut replica, &page), (1, 1, vec![]));
    assert_eq!(replica.missing(), [c.0.to_string()]);
    assert_eq!(receive(&mut replica, &live(&[&c])), (1, 1, vec![]));
    assert!(replica.missing().is_empty());
    assert_eq!(replica.heads(), [d.0.to_string()]);
    assert_eq!(replica.len(), 4);
    assert!(replica.has(&c.0.to_string()) && !replica.has("bafy"));
}

/// Receives one entry alone and checks it was refused for `why`.
fn refused(replica: &mut StreamReplica, data: &str, cid: &str, why: &str) {
    let (accepted, _, reasons) = receive(replica, data);
    assert_eq!((accepted, reasons.len()), (0, 1), "{data}: {reasons:?}");
    assert!(reasons[0].starts_with(&format!("{}: ", &cid[..cid.len().min(64)])));
    assert!(reasons[0].contains(why), "{}: not `{why}`", reasons[0]);
}

#[wasm_bindgen_test]
fn tampered_blocks_and_other_topics_are_refused_and_never_listed() {
    let mut replica = StreamReplica::new("chat".into());
    let (id, e) = event("chat", T0, "hello", vec![]);
    let (other, _) = event("chat", T0, "other", vec![]);
    let block = e.encode();
    let cid = id.to_string();
    // Every byte flipped in turn: the block no longer hashes to its id,
    // or no longer decodes.
    for i in 0..block.len() {
        let mut bad = block.clone();
        bad[i] ^= 0x01;
        let (accepted, _, reasons) = receive(&mut replica, &format!("[{}]", entry(&cid, &bad)));
        assert_eq!((accepted, reasons.len()), (0, 1), "byte {i}");
    }
    let mut message = block.clone();
    let at = message.windows(5).position(|w| w == b"hello").unwrap();
    message[at] = b'j';
    refused(
        &mut replica,
        &format!("[{}]", entry(&cid, &message)),
        &cid,
        "hash to",
    );
    // A valid block under another event's id.
    let under = other.to_string();
    refused(
        &mut replica,
        &format!("[{}]", entry(&under, &block)),
        &under,
        "hash to",
    );
    // A valid event of another topic, under its own id.
    let (tid, te) = event("news", T0, "hello", vec![]);
    let data = live(&[&(tid, te)]);
    refused(&mut replica, &data, &tid.to_string(), "topic `news`");
    assert_eq!(replica.len(), 0);
    assert!(listed(&replica).is_empty());
    assert!(!replica.has(&cid) && !replica.has(&under) && !replica.has(&tid.to_string()));
    assert_eq!(receive(&mut replica, &live(&[&(id, e)])), (1, 1, vec![]));
    assert_eq!(listed(&replica), [cid]);
}

#[wasm_bindgen_test]
fn bad_links_limits_ids_and_entries_are_refused() {
    let mut replica = StreamReplica::new("chat".into());
    let raw = Cid::new_v1(0x55, Multihash::wrap(0x12, &[7; 32]).unwrap());
    let bad_link = event("chat", T0, "x", vec![raw]);
    refused(
        &mut replica,
        &live(&[&bad_link]),
        &bad_link.0.to_string(),
        "link",
    );
    let big = event("chat", T0, &"x".repeat(16 * 1024 + 1), vec![]);
    refused(
        &mut replica,
        &live(&[&big]),
        &big.0.to_string(),
        "larger than allowed",
    );
    let (id, e) = event("chat", T0, "ok", vec![]);
    let block = e.encode();
    let upper = id.to_string_of_base(Base::Base32Upper).unwrap();
    let data = format!("[{}]", entry(&upper, &block));
    refused(
        &mut replica,
        &data,
        &upper,
        "not a content id in canonical text",
    );
    let short = format!("[{}]", entry("bafyzzz", &block));
    refused(&mut replica, &short, "bafyzzz", "not a content id");
    let padded = format!("{id}=");
    let data = format!("[{}]", entry(&padded, &block));
    refused(&mut replica, &data, &padded, "not a content id");
    let data = format!(r#"[{{"cid":"{id}","block":"!!"}}]"#);
    refused(&mut replica, &data, &id.to_string(), "block");
    let (_, _, reasons) = receive(&mut replica, r#"[{"cid":"x"}, 7, {"block":"AA=="}]"#);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(replica.receive("not json").is_err());
    assert!(replica.receive(r#"{"entries":3}"#).is_err());
    assert!(replica.receive("42").is_err());
    assert_eq!(replica.len(), 0);
}

#[wasm_bindgen_test]
fn any_delivery_order_lists_the_dags_order() {
    let events = history("chat", 40, 7);
    let mut dag = Dag::default();
    for (id, e) in &events {
        dag.insert(*id, e.clone());
    }
    let want: Vec<String> = dag.order().iter().map(Cid::to_string).collect();
    let mut one = StreamReplica::new("chat".into());
    for e in shuffled(&events, 1) {
        assert_eq!(receive(&mut one, &live(&[&e])), (1, 1, vec![]));
    }
    let mut batched = StreamReplica::new("chat".into());
    let second = shuffled(&events, 2);
    assert_ne!(
        shuffled(&events, 1),
        second,
        "two different delivery orders"
    );
    for chunk in second.chunks(6) {
        let refs: Vec<&(Cid, Event)> = chunk.iter().collect();
        let (accepted, _, _) = receive(&mut batched, &live(&refs));
        assert_eq!(accepted as usize, chunk.len());
    }
    assert_eq!(listed(&one), want);
    assert_eq!(listed(&batched), want);
    let heads: Vec<String> = dag.heads().iter().map(Cid::to_string).collect();
    assert_eq!((one.heads(), batched.heads()), (heads.clone(), heads));
}

#[wasm_bindgen_test]
fn save_and_load_keep_the_events_their_order_and_the_cursor() {
    storage().clear().unwrap();
    let events = history("saved", 12, 3);
    let mut replica = StreamReplica::load("saved".into());
    assert!(replica.cursor().unwrap().is_null());
    let refs: Vec<&(Cid, Event)> = events.iter().collect();
    receive(&mut replica, &live(&refs));
    replica.set_cursor("node-3".into(), 17.0).unwrap();
    assert!(replica.set_cursor("node-3".into(), 1.5).is_err());
    assert!(replica.save());
    assert!(storage()
        .get_item("edge-crdt/stream/saved")
        .unwrap()
        .is_some());
    let again = StreamReplica::load("saved".into());
    assert_eq!(listed(&again), listed(&replica));
    assert_eq!(again.len(), 12);
    assert_eq!(again.heads(), replica.heads());
    let cursor = again.cursor().unwrap();
    assert_eq!(get(&cursor, "node").as_string().unwrap(), "node-3");
    assert_eq!(get(&cursor, "seq").as_f64().unwrap(), 17.0);
    assert_eq!(StreamReplica::load("other".into()).len(), 0, "per topic");
}

#[wasm_bindgen_test]
fn bad_storage_only_warns_and_a_tampered_saved_block_is_dropped() {
    storage().clear().unwrap();
    storage()
        .set_item("edge-crdt/stream/bad", "not json")
        .unwrap();
    assert_eq!(StreamReplica::load("bad".into()).len(), 0);
    let a = event("kept", T0, "a", vec![]);
    let b = event("kept", T0 + 1, "b", vec![a.0]);
    let mut replica = StreamReplica::new("kept".into());
    receive(&mut replica, &live(&[&a, &b]));
    assert!(replica.save());
    let key = "edge-crdt/stream/kept";
    let text = storage().get_item(key).unwrap().unwrap();
    let good = to_base64(&b.1.encode());
    let mut bad = b.1.encode();
    *bad.last_mut().unwrap() ^= 1;
    let text = text.replace(&good, &to_base64(&bad));
    storage().set_item(key, &text).unwrap();
    let again = StreamReplica::load("kept".into());
    assert_eq!(
        listed(&again),
        [a.0.to_string()],
        "the tampered one dropped"
    );
    assert_eq!(again.missing(), Vec::<String>::new());
}
