//! The browser replica in a real headless browser:
//! `wasm-pack test --headless --chrome --features browser --test web`.
#![cfg(all(target_arch = "wasm32", feature = "browser"))]

use edge_crdt::browser::CounterReplica;
use edge_crdt::codec;
use edge_crdt::crdt::{Crdt, GCounter, PnCounter};
use edge_crdt::NodeId;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A state with `by` added at each `(node, by)`.
fn state(adds: &[(u32, i64)]) -> PnCounter {
    let mut c = PnCounter::default();
    for &(node, by) in adds {
        let delta = c.add(NodeId(node), by).unwrap();
        c.merge(&delta);
    }
    c
}

fn b64(adds: &[(u32, i64)]) -> String {
    codec::state_to_base64(&state(adds))
}

fn storage() -> web_sys::Storage {
    web_sys::window().unwrap().local_storage().unwrap().unwrap()
}

fn key(name: &str) -> String {
    format!("edge-crdt:counter:{name}")
}

fn get(obj: &JsValue, prop: &str) -> JsValue {
    js_sys::Reflect::get(obj, &JsValue::from_str(prop)).unwrap()
}

/// Runs `f` with `console.warn` replaced by a recorder; returns the warnings.
fn capture_warnings<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let console = get(&js_sys::global(), "console");
    let original = get(&console, "warn");
    let seen = js_sys::Array::new();
    let slot = JsValue::from_str("__edgeCrdtWarnings");
    js_sys::Reflect::set(&js_sys::global(), &slot, &seen).unwrap();
    let recorder = js_sys::Function::new_with_args(
        "...args",
        "globalThis.__edgeCrdtWarnings.push(args.map(String).join(' '))",
    );
    js_sys::Reflect::set(&console, &"warn".into(), &recorder).unwrap();
    let out = f();
    js_sys::Reflect::set(&console, &"warn".into(), &original).unwrap();
    js_sys::Reflect::delete_property(&js_sys::global(), &slot).unwrap();
    let warnings = seen.iter().filter_map(|w| w.as_string()).collect();
    (out, warnings)
}

fn error_message(e: JsValue) -> String {
    String::from(e.dyn_into::<js_sys::Error>().unwrap().message())
}

#[wasm_bindgen_test]
fn events_from_two_nodes_add_up() {
    let mut replica = CounterReplica::new("sum".into());
    assert_eq!(replica.value(), 0.0);
    assert!(replica.merge_event(&b64(&[(0, 3)])).unwrap());
    assert!(replica.merge_event(&b64(&[(1, 4), (1, -1)])).unwrap());
    assert_eq!(replica.value(), 6.0);
    // The same event again changes nothing.
    assert!(!replica.merge_event(&b64(&[(1, 4), (1, -1)])).unwrap());
    assert_eq!(replica.value(), 6.0);

    let contributions = replica.contributions().unwrap();
    assert!(!contributions.is_instance_of::<js_sys::Map>());
    assert_eq!(get(&contributions, "node-0").as_f64(), Some(3.0));
    assert_eq!(get(&contributions, "node-1").as_f64(), Some(3.0));
    assert_eq!(
        js_sys::Object::keys(contributions.unchecked_ref::<js_sys::Object>()).length(),
        2
    );
    let retired = replica.retired().unwrap();
    assert_eq!(
        js_sys::Object::keys(retired.unchecked_ref::<js_sys::Object>()).length(),
        0
    );

    assert_eq!(
        codec::state_from_base64::<PnCounter>(&replica.state()),
        Ok(state(&[(0, 3), (1, 4), (1, -1)]))
    );
}

#[wasm_bindgen_test]
fn an_older_state_never_lowers_the_value() {
    let old = state(&[(0, 2)]);
    let mut new = old.clone();
    new.merge(&new.add(NodeId(0), 5).unwrap());
    new.merge(&new.add(NodeId(1), 1).unwrap());

    let mut replica = CounterReplica::new("monotone".into());
    assert!(replica.merge_event(&codec::state_to_base64(&new)).unwrap());
    assert_eq!(replica.value(), 8.0);
    assert!(!replica.merge_event(&codec::state_to_base64(&old)).unwrap());
    assert!(!replica
        .merge_state(&codec::state_to_base64(&PnCounter::default()))
        .unwrap());
    assert_eq!(replica.value(), 8.0);
}

#[wasm_bindgen_test]
fn retired_nodes_are_reported() {
    let mut c = state(&[(0, 4), (1, 6)]);
    c.merge(&c.absorb(NodeId(1), NodeId(0)).unwrap());
    let mut replica = CounterReplica::new("retired".into());
    replica.merge_event(&codec::state_to_base64(&c)).unwrap();
    assert_eq!(replica.value(), 10.0);
    let retired = replica.retired().unwrap();
    assert_eq!(
        get(&retired, "node-1").as_string().as_deref(),
        Some("node-0")
    );
    let contributions = replica.contributions().unwrap();
    assert_eq!(get(&contributions, "node-0").as_f64(), Some(10.0));
    assert!(get(&contributions, "node-1").is_undefined());
}

#[wasm_bindgen_test]
fn save_then_load_round_trips_through_local_storage() {
    let name = "round trip/é";
    storage().remove_item(&key(name)).unwrap();
    let (empty, warnings) = capture_warnings(|| CounterReplica::load(name.into()));
    assert_eq!(empty.value(), 0.0);
    assert!(warnings.is_empty(), "{warnings:?}");

    let mut replica = CounterReplica::new(name.into());
    assert_eq!(replica.storage_key(), key(name));
    replica.merge_event(&b64(&[(0, 5), (2, 7)])).unwrap();
    assert!(replica.save());
    assert_eq!(
        storage().get_item(&key(name)).unwrap(),
        Some(replica.state())
    );

    let loaded = CounterReplica::load(name.into());
    assert_eq!(loaded.name(), name);
    assert_eq!(loaded.value(), 12.0);
    assert_eq!(loaded.state(), replica.state());
    // Another counter's key is not touched.
    assert_eq!(CounterReplica::load("round trip".into()).value(), 0.0);
    storage().remove_item(&key(name)).unwrap();
}

#[wasm_bindgen_test]
fn corrupt_storage_loads_empty_with_a_warning() {
    let name = "corrupt";
    let mut wrong_version = codec::encode_state(&state(&[(0, 1)]));
    wrong_version[0] = 9;
    let mut trailing = codec::encode_state(&state(&[(0, 1)]));
    trailing.push(0);
    let cases = [
        (
            "garbage",
            "%%% not base64 at all %%%".to_owned(),
            "not base64",
        ),
        ("junk", codec::to_base64(&[0xff; 40]), "version"),
        (
            "json",
            r#"{"inc":{"entries":{}},"dec":{}}"#.to_owned(),
            "not base64",
        ),
        ("empty", String::new(), "no bytes"),
        (
            "other version",
            codec::to_base64(&wrong_version),
            "version 9",
        ),
        ("trailing", codec::to_base64(&trailing), "after the value"),
        (
            "malformed",
            codec::to_base64(&[PnCounter::LAYOUT, 0xff, 0xff]),
            "malformed",
        ),
        (
            "too large",
            codec::to_base64(&vec![PnCounter::LAYOUT; codec::MAX_STATE + 10]),
            "over the limit",
        ),
    ];
    for (what, text, why) in cases {
        storage().set_item(&key(name), &text).unwrap();
        let (replica, warnings) = capture_warnings(|| CounterReplica::load(name.into()));
        assert_eq!(replica.value(), 0.0, "{what}");
        assert_eq!(replica.state(), b64(&[]), "{what}");
        assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
        assert!(warnings[0].contains(&key(name)), "{what}: {warnings:?}");
        assert!(warnings[0].contains(why), "{what}: {warnings:?}");
    }
    storage().remove_item(&key(name)).unwrap();
}

#[wasm_bindgen_test]
fn a_state_that_fails_validation_is_ignored() {
    // A node that claims to have absorbed itself: a valid counter whose
    // one retirement record (node-1 into node-0) is edited in its bytes.
    let inc = GCounter::from_parts([(NodeId(0), 5)], [(NodeId(1), NodeId(0))]).unwrap();
    let valid = codec::encode_state(&PnCounter::from_halves(inc, GCounter::default()));
    let (mut inc, dec): (Vec<u8>, Vec<u8>) = postcard::from_bytes(&valid[1..]).unwrap();
    // The records close the increments: one record, retired id +1, heir index 0.
    let at = inc.len() - 3;
    assert_eq!(inc[at..], [1, 1, 0]);
    inc[at + 1] = 0;
    let mut bad = vec![valid[0]];
    bad.extend(postcard::to_allocvec(&(inc, dec)).unwrap());
    let text = codec::to_base64(&bad);
    assert!(matches!(
        codec::state_from_base64::<PnCounter>(&text),
        Err(codec::DecodeError::Invalid(_))
    ));

    let name = "invalid";
    storage().set_item(&key(name), &text).unwrap();
    let (replica, warnings) = capture_warnings(|| CounterReplica::load(name.into()));
    assert_eq!(replica.value(), 0.0);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("absorbed itself"), "{warnings:?}");
    storage().remove_item(&key(name)).unwrap();

    let mut replica = CounterReplica::new(name.into());
    let err = replica.merge_event(&text).unwrap_err();
    assert!(error_message(err.into()).contains("absorbed itself"));
    assert_eq!(replica.value(), 0.0);
}

#[wasm_bindgen_test]
fn bad_event_data_throws_and_changes_nothing() {
    let mut replica = CounterReplica::new("bad events".into());
    replica.merge_event(&b64(&[(0, 2)])).unwrap();
    let before = replica.state();
    for (data, why) in [
        ("", "no bytes"),
        ("hello", "not base64"),
        ("{\"value\": 99}", "not base64"),
        ("AAAA", "version 0"),
    ] {
        let err = replica.merge_event(data).unwrap_err();
        let message = error_message(err.into());
        assert!(message.contains("invalid counter state"), "{message}");
        assert!(message.contains(why), "{data:?}: {message}");
        assert!(replica.merge_state(data).is_err());
        assert_eq!(replica.state(), before);
        assert_eq!(replica.value(), 2.0);
    }
}

#[wasm_bindgen_test]
fn missing_local_storage_only_warns() {
    // Privacy modes make the `localStorage` getter throw a SecurityError.
    let window = js_sys::global();
    let original = js_sys::Object::get_own_property_descriptor(&window, &"localStorage".into());
    let descriptor = js_sys::Object::new();
    let thrower = js_sys::Function::new_no_args(
        "throw new DOMException('access is denied for this document', 'SecurityError')",
    );
    js_sys::Reflect::set(&descriptor, &"get".into(), &thrower).unwrap();
    js_sys::Reflect::set(&descriptor, &"configurable".into(), &true.into()).unwrap();
    js_sys::Object::define_property(&window, &"localStorage".into(), &descriptor);

    let mut replica = CounterReplica::new("private".into());
    replica.merge_event(&b64(&[(0, 1)])).unwrap();
    let ((loaded, saved), warnings) =
        capture_warnings(|| (CounterReplica::load("private".into()), replica.save()));

    if original.is_undefined() {
        js_sys::Reflect::delete_property(&window, &"localStorage".into()).unwrap();
    } else {
        js_sys::Object::define_property(&window, &"localStorage".into(), original.unchecked_ref());
    }
    assert!(web_sys::window().unwrap().local_storage().is_ok());

    assert_eq!(loaded.value(), 0.0);
    assert!(!saved);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings.iter().all(|w| w.contains("SecurityError")),
        "{warnings:?}"
    );
}
