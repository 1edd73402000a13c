//! The address book's browser replica in a real headless browser, with
//! real `localStorage`:
//! `wasm-pack test --headless --chrome --features browser-contacts --test web_contacts`.
#![cfg(all(target_arch = "wasm32", feature = "browser-contacts"))]

use edge_crdt::browser::ContactsReplica;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const BOB: &str = "123e4567-e89b-12d3-a456-426614174000";

fn storage() -> web_sys::Storage {
    web_sys::window().unwrap().local_storage().unwrap().unwrap()
}

fn get(obj: &JsValue, prop: &str) -> JsValue {
    js_sys::Reflect::get(obj, &JsValue::from_str(prop)).unwrap()
}

fn names(book: &ContactsReplica) -> Vec<String> {
    let list = js_sys::Array::from(&book.contacts().unwrap());
    list.iter()
        .map(|c| get(&c, "name").as_string().unwrap_or_default())
        .collect()
}

#[wasm_bindgen_test]
fn a_reload_keeps_the_rows_and_the_pending_outbox() {
    storage().clear().unwrap();
    let mut book = ContactsReplica::load("reload".into());
    let client = book.client_id();
    book.edit(BOB, "name", "Bob".into(), 1_000.0).unwrap();
    book.edit(BOB, "phone", "555".into(), 1_001.0).unwrap();
    assert!(book.save());
    let again = ContactsReplica::load("reload".into());
    assert_eq!((again.client_id(), again.pending()), (client.clone(), 2));
    assert_eq!(names(&again), ["Bob"]);
    let body = again.push_body().unwrap();
    let deltas = js_sys::Array::from(&get(&body, "deltas"));
    assert_eq!(deltas.length(), 2);
    assert_eq!(
        get(&deltas.get(0), "timestamp").as_string().unwrap(),
        format!("1000-0000-{client}")
    );
}

#[wasm_bindgen_test]
fn acknowledged_deltas_leave_the_outbox_and_a_delete_hides_the_contact() {
    storage().clear().unwrap();
    let mut book = ContactsReplica::load("ack".into());
    book.edit(BOB, "name", "Bob".into(), 1_000.0).unwrap();
    book.edit(BOB, "tombstone", true.into(), 1_001.0).unwrap();
    assert!(names(&book).is_empty(), "deleted");
    let body = book.push_body().unwrap();
    let sent = get(&body, "cursor").as_string().unwrap();
    book.acknowledged(1.0, &sent, None).unwrap();
    assert_eq!(book.pending(), 1);
    book.acknowledged(2.0, &sent, None).unwrap();
    assert!(book.push_body().unwrap().is_null());
    assert!(book.edit(BOB, "tombstone", "yes".into(), 1_002.0).is_err());
    assert!(book.edit("bob", "name", "x".into(), 1_002.0).is_err());
    assert!(book.edit(BOB, "age", "x".into(), 1_002.0).is_err());
    assert_eq!(book.pending(), 0, "refused edits queue nothing");
}

#[wasm_bindgen_test]
fn changes_merge_by_column_and_the_clock_moves_past_them() {
    storage().clear().unwrap();
    let mut book = ContactsReplica::load("merge".into());
    book.edit(BOB, "name", "Mine".into(), 1_000.0).unwrap();
    let theirs = "5000-0000-0000000200000000";
    assert!(book
        .merge_change(BOB, "phone", "555".into(), theirs)
        .unwrap());
    assert!(book
        .merge_change(BOB, "name", "Theirs".into(), theirs)
        .unwrap());
    assert!(!book
        .merge_change(BOB, "name", "Theirs".into(), theirs)
        .unwrap());
    assert_eq!(names(&book), ["Theirs"]);
    book.edit(BOB, "name", "Later".into(), 1_001.0).unwrap();
    assert_eq!(
        names(&book),
        ["Later"],
        "a write after a merge wins over it"
    );
    assert!(book
        .merge_change(BOB, "name", "x".into(), "garbage")
        .is_err());
    assert!(book.set_cursor("!!").is_err());
    let cursor = book.cursor();
    book.set_cursor(&cursor).unwrap();
}

#[wasm_bindgen_test]
fn corrupt_storage_is_ignored() {
    storage().clear().unwrap();
    storage()
        .set_item("edge-crdt:contacts:bad", "not base64 at all")
        .unwrap();
    let book = ContactsReplica::load("bad".into());
    assert_eq!(book.pending(), 0);
    assert!(names(&book).is_empty());
    assert_eq!(book.client_id().len(), 16);
}
