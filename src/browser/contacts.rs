//! An address book's replica in the page: [`Replica`] (rows, the client's
//! own clock, the outbox, the pull cursor) saved in `localStorage`. The
//! page moves pushes and pulls over HTTP and hands the parsed JSON here.
//!
//! ```js
//! import init, { ContactsReplica } from "@edge-crdt/browser/contacts";
//! await init();
//! const book = ContactsReplica.load("family");
//! book.edit(crypto.randomUUID(), "name", "Bob", Date.now());
//! const push = book.pushBody();          // null when nothing waits
//! const reply = await (await fetch(`/api/contacts/family/push`, { method: "POST", body: JSON.stringify(push) })).json();
//! book.acknowledged(reply.acked, push.cursor, reply.cursor);
//! book.save();
//! ```

use super::{describe, local_storage, to_js, warn};
use crate::api::contacts::{
    cursor_token, parse_cursor, ClientId, ContactJson, DeltaJson, PushBody,
};
use crate::codec;
use crate::crdt::contacts::{ClockId, Column, ContactId, Value};
use crate::kinds::contacts::{Change, Replica, MAX_PUSH};
use wasm_bindgen::prelude::*;

const KEY_PREFIX: &str = "edge-crdt:contacts:";

/// The largest saved replica read back (localStorage holds about 5 MB).
const MAX_SAVED: usize = 8 << 20;

// The TypeScript types of the objects the replica hands out.
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A contact's column. */
export type ContactColumn = "name" | "phone" | "email" | "tombstone";

/** A contact not deleted, each column with its stamp (`undefined`: never written). */
export interface Contact {
    id: string;
    name: string | undefined;
    name_ts: string | undefined;
    phone: string | undefined;
    phone_ts: string | undefined;
    email: string | undefined;
    email_ts: string | undefined;
    tombstone: boolean;
    tombstone_ts: string | undefined;
}

/** One edit waiting for the server, numbered by `seq`. */
export interface ContactDelta {
    id: string;
    column: ContactColumn;
    value: string | boolean;
    timestamp: string;
    seq: number;
}

/** The body of a push, `POST /api/contacts/<book>/push`. */
export interface ContactsPush {
    client: string;
    deltas: ContactDelta[];
    cursor: string;
}
"#;

/// The replica of one address book in a page.
#[wasm_bindgen]
pub struct ContactsReplica {
    book: String,
    replica: Replica,
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&format!("edge-crdt: {e}"))
}

/// A column's value from JavaScript: a string, or a boolean.
fn value_of(value: &JsValue) -> Result<Value, JsError> {
    match (value.as_string(), value.as_bool()) {
        (Some(text), _) => Ok(Value::Text(text)),
        (_, Some(flag)) => Ok(Value::Flag(flag)),
        _ => Err(js_error(
            "a value is a string, or a boolean for `tombstone`",
        )),
    }
}

fn cursor_of(token: &str) -> Result<crate::kinds::contacts::Cursor, JsError> {
    parse_cursor(Some(token)).map_err(|e| js_error(e.message))
}

/// 64 random bits from the page's `crypto`.
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let crypto = web_sys::window().and_then(|w| w.crypto().ok());
    if let Some(c) = crypto {
        let _ = c.get_random_values_with_u8_array(&mut bytes);
    }
    u64::from_le_bytes(bytes)
}

#[wasm_bindgen]
impl ContactsReplica {
    /// The replica of `book` saved in `localStorage`, or a new one with a
    /// new client id. Never throws: corrupt storage is ignored with a
    /// `console.warn`.
    pub fn load(book: String) -> ContactsReplica {
        let key = format!("{KEY_PREFIX}{book}");
        let fresh = || Replica::new(ClockId::client(random_u64()));
        let text = match local_storage().map(|s| s.get_item(&key)) {
            Ok(Ok(Some(text))) => text,
            Ok(Ok(None)) => {
                return ContactsReplica {
                    book,
                    replica: fresh(),
                }
            }
            Ok(Err(e)) => {
                warn(&format!("edge-crdt: cannot read `{key}`: {}", describe(&e)));
                return ContactsReplica {
                    book,
                    replica: fresh(),
                };
            }
            Err(why) => {
                warn(&format!("edge-crdt: cannot load `{key}`: {why}"));
                return ContactsReplica {
                    book,
                    replica: fresh(),
                };
            }
        };
        let saved = codec::from_base64(&text, MAX_SAVED)
            .map_err(|e| e.to_string())
            .and_then(|b| codec::decode::<Replica>(&b, MAX_SAVED).map_err(|e| e.to_string()))
            .and_then(|r| r.check().map(|()| r));
        match saved {
            Ok(replica) => ContactsReplica { book, replica },
            Err(why) => {
                warn(&format!(
                    "edge-crdt: ignoring the saved address book `{key}`: {why}"
                ));
                ContactsReplica {
                    book,
                    replica: fresh(),
                }
            }
        }
    }

    /// Writes the replica, outbox included, to `localStorage`; whether it
    /// was written (a `console.warn` says why not).
    pub fn save(&self) -> bool {
        let key = self.storage_key();
        let text = codec::to_base64(&codec::encode(&self.replica));
        let result =
            local_storage().and_then(|s| s.set_item(&key, &text).map_err(|e| describe(&e)));
        result
            .map_err(|why| warn(&format!("edge-crdt: cannot save `{key}`: {why}")))
            .is_ok()
    }

    /// The `localStorage` key.
    #[wasm_bindgen(getter, js_name = storageKey)]
    pub fn storage_key(&self) -> String {
        format!("{KEY_PREFIX}{}", self.book)
    }

    /// The client's id, 16 hex digits.
    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> String {
        self.replica.client().to_string()
    }

    /// Writes `column` (`name`, `phone`, `email`: a string; `tombstone`:
    /// a boolean) of contact `id` at `now_ms`. Throws when the id, column
    /// or value is wrong; nothing changes then.
    pub fn edit(
        &mut self,
        id: &str,
        #[wasm_bindgen(unchecked_param_type = "ContactColumn")] column: &str,
        #[wasm_bindgen(unchecked_param_type = "string | boolean")] value: JsValue,
        now_ms: f64,
    ) -> Result<(), JsError> {
        let id: ContactId = id.parse().map_err(js_error)?;
        let column: Column = column.parse().map_err(js_error)?;
        self.replica
            .edit(&id, column, value_of(&value)?, now_ms as u64)
            .map_err(js_error)
    }

    /// The body of the next push (an object to send as JSON), or `null`
    /// when nothing waits.
    #[wasm_bindgen(js_name = pushBody, unchecked_return_type = "ContactsPush | null")]
    pub fn push_body(&self) -> Result<JsValue, JsError> {
        let Some(batch) = self.replica.push(MAX_PUSH) else {
            return Ok(JsValue::NULL);
        };
        to_js(&PushBody {
            client: ClientId(batch.client),
            deltas: batch.deltas.iter().map(DeltaJson::of).collect(),
            cursor: Some(cursor_token(&batch.cursor)),
        })
    }

    /// A push's reply: the deltas numbered up to `acked` leave the outbox;
    /// `cursor` (the reply's, if any) replaces the replica's if that is
    /// still `sent` (the body's).
    pub fn acknowledged(
        &mut self,
        acked: f64,
        sent: &str,
        cursor: Option<String>,
    ) -> Result<(), JsError> {
        let sent = cursor_of(sent)?;
        let cursor = cursor.as_deref().map(cursor_of).transpose()?;
        self.replica.acknowledged(acked as u64, &sent, cursor);
        Ok(())
    }

    /// The `cursor` parameter of the next pull.
    pub fn cursor(&self) -> String {
        cursor_token(self.replica.cursor())
    }

    /// Merges one change `{id, column, value, timestamp}` (from a pull or
    /// an event); whether it changed the replica. Throws on a malformed one.
    #[wasm_bindgen(js_name = mergeChange)]
    pub fn merge_change(
        &mut self,
        id: &str,
        #[wasm_bindgen(unchecked_param_type = "ContactColumn")] column: &str,
        #[wasm_bindgen(unchecked_param_type = "string | boolean")] value: JsValue,
        timestamp: &str,
    ) -> Result<bool, JsError> {
        let change = Change {
            id: id.parse().map_err(js_error)?,
            column: column.parse().map_err(js_error)?,
            value: value_of(&value)?,
            timestamp: timestamp.parse().map_err(js_error)?,
        };
        Ok(self.replica.merge(vec![change]))
    }

    /// Moves the cursor after a pull's changes were merged.
    #[wasm_bindgen(js_name = setCursor)]
    pub fn set_cursor(&mut self, token: &str) -> Result<(), JsError> {
        self.replica.set_cursor(cursor_of(token)?);
        Ok(())
    }

    /// How many edits wait for the server.
    pub fn pending(&self) -> usize {
        self.replica.pending()
    }

    /// The contacts not deleted, as `{id, name, phone, email, …}` objects
    /// sorted by id.
    #[wasm_bindgen(unchecked_return_type = "Contact[]")]
    pub fn contacts(&self) -> Result<JsValue, JsError> {
        let list: Vec<ContactJson> = self
            .replica
            .live()
            .map(|(id, row)| ContactJson::of(id, row))
            .collect();
        to_js(&list)
    }
}
