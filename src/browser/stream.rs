//! A stream topic's replica in the page: its events checked one by one
//! (the id recomputed from the bytes, the topic, the limits, the links)
//! in a [`Dag`], listed in the Dag's one total order, and saved in
//! `localStorage` as raw blocks that a reload checks again. The page
//! moves `/log` pages and `/live` events and hands their JSON here.
//!
//! ```js
//! import init, { StreamReplica } from "@edge-crdt/browser/stream";
//! await init();
//! const stream = StreamReplica.load("chat");
//! live.onmessage = (e) => {
//!   const { added, refused } = stream.receive(e.data);
//!   if (added) stream.save();
//!   render(stream.events(), refused);
//! };
//! ```

use super::{describe, local_storage, to_js, warn};
use crate::codec;
use crate::crdt::stream::{BadEvent, Cid, Dag, Event, IdText};
use crate::kinds::stream::LIMITS;
use js_sys::{Array, Reflect, JSON};
use serde::Serialize;
use wasm_bindgen::prelude::*;

const KEY_PREFIX: &str = "edge-crdt/stream/";

/// The largest block taken: a message at the limit, every link, the topic.
const MAX_BLOCK: usize = 64 << 10;

/// The largest saved replica read back (localStorage holds about 5 MB).
const MAX_SAVED: usize = 16 << 20;

/// Where the page follows a node's log: the last `seq` taken from `node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Cursor {
    node: String,
    seq: u64,
}

/// An event as carried by `/live`, `/log` and storage.
#[derive(Serialize)]
struct Block {
    cid: String,
    block: String,
}

/// What `localStorage` holds for a topic, as JSON.
#[derive(Serialize)]
struct Saved {
    topic: String,
    cursor: Option<Cursor>,
    events: Vec<Block>,
}

/// What `receive` did: the valid events (new or held), how many of them
/// were new, and each refused one as `"<cid>: <why>"`.
#[derive(Default, Serialize)]
struct Received {
    accepted: u32,
    added: u32,
    refused: Vec<String>,
}

/// An event as the page shows it.
#[derive(Serialize)]
struct EventJson {
    cid: String,
    /// decimal text: nanoseconds exceed 2^53
    timestamp_ns: String,
    message: String,
    links: Vec<String>,
}

// The TypeScript types of the objects the replica hands out: the
// serialized `Received`, `EventJson` and `Cursor`.
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** What `receive` did: how many events were valid, how many of those were new, and why each refused one was. */
export interface StreamReceived {
    accepted: number;
    added: number;
    refused: string[];
}

/** An event as listed by `events()`: `timestamp_ns` decimal text, `message` UTF-8 text. */
export interface StreamEvent {
    cid: string;
    timestamp_ns: string;
    message: string;
    links: string[];
}

/** Where the page follows a node's log: the last `seq` taken from `node`. */
export interface StreamCursor {
    node: string;
    seq: number;
}
"#;

/// The replica of one topic in a page.
#[wasm_bindgen]
pub struct StreamReplica {
    topic: String,
    dag: Dag,
    cursor: Option<Cursor>,
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&format!("edge-crdt: {e}"))
}

/// JSON text parsed by the page's own `JSON`: the module carries no
/// JSON parser.
fn parse(text: &str) -> Result<JsValue, String> {
    JSON::parse(text).map_err(|e| describe(&e))
}

/// A property of an object; `undefined` for anything else.
fn field(value: &JsValue, name: &str) -> JsValue {
    if !value.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(value, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// The entries of `/live` data (an array) or of a `/log` page (an object
/// with `entries`).
fn entries_of(value: JsValue) -> Result<Array, String> {
    if value.is_array() {
        return Ok(value.unchecked_into());
    }
    let entries = field(&value, "entries");
    match (value.is_object(), entries.is_array()) {
        (_, true) => Ok(entries.unchecked_into()),
        (true, false) => Err("an object without an `entries` array".to_owned()),
        _ => Err("neither an array of events nor a page of them".to_owned()),
    }
}

/// The `cid` and `block` texts of one entry.
fn fields(entry: &JsValue) -> Result<(String, String), String> {
    match (
        field(entry, "cid").as_string(),
        field(entry, "block").as_string(),
    ) {
        (Some(cid), Some(block)) => Ok((cid, block)),
        (None, _) => Err("an entry without a `cid` text".to_owned()),
        (_, None) => Err("an entry without a `block` text".to_owned()),
    }
}

/// The saved cursor, if it is one.
fn cursor_of(value: &JsValue) -> Option<Cursor> {
    let node = field(value, "node").as_string()?;
    let seq = field(value, "seq").as_f64().filter(|s| whole(*s))?;
    Some(Cursor {
        node,
        seq: seq as u64,
    })
}

fn whole(n: f64) -> bool {
    n.is_finite() && n >= 0.0 && n.fract() == 0.0
}

impl StreamReplica {
    /// Checks one event: the id parses (canonical text), the block is
    /// base64 of a canonical DAG-CBOR event whose recomputed id is the
    /// one claimed, of this topic, within the limits, linking event ids.
    fn verify(&self, cid: &str, block: &str) -> Result<(Cid, Event), String> {
        let id = Cid::from_text(cid).ok_or("not a content id in canonical text (`b`, base32)")?;
        let bytes = codec::from_base64(block, MAX_BLOCK).map_err(|e| format!("block: {e}"))?;
        // The server stamps events: the page does not judge its clock.
        let event =
            Event::from_block(&bytes, Some(&id), &LIMITS, u64::MAX).map_err(|e| e.to_string())?;
        if event.topic != self.topic {
            return Err(BadEvent::OtherTopic(event.topic).to_string());
        }
        Ok((id, event))
    }

    /// Checks and keeps each entry (its `cid` and `block`, or why it has
    /// none).
    fn take(&mut self, entries: &Array) -> Received {
        let mut out = Received::default();
        for entry in entries.iter() {
            let checked = fields(&entry).and_then(|(cid, block)| {
                self.verify(&cid, &block)
                    .map_err(|why| format!("{}: {why}", crate::clip(&cid)))
            });
            match checked {
                Ok((id, event)) => {
                    out.accepted += 1;
                    out.added += u32::from(self.dag.insert(id, event));
                }
                Err(why) => out.refused.push(why),
            }
        }
        out
    }

    /// The replica of `topic` read back from `text`, every event checked
    /// again; what was wrong with it, if anything.
    fn from_saved(topic: String, text: &str) -> (StreamReplica, Option<String>) {
        let mut replica = StreamReplica::new(topic);
        if text.len() > MAX_SAVED {
            return (replica, Some(format!("{} bytes", text.len())));
        }
        let saved = match parse(text) {
            Ok(saved) => saved,
            Err(why) => return (replica, Some(why)),
        };
        if field(&saved, "topic").as_string().as_ref() != Some(&replica.topic) {
            return (replica, Some("it is not of this topic".to_owned()));
        }
        let refused = match entries_of(field(&saved, "events")) {
            Ok(entries) => replica.take(&entries).refused,
            Err(why) => vec![why],
        };
        replica.cursor = cursor_of(&field(&saved, "cursor"));
        let why = (!refused.is_empty()).then(|| format!("dropped {}", refused.join("; ")));
        (replica, why)
    }

    /// The replica as JSON text: its events' blocks in order, its cursor.
    fn saved_text(&self) -> Result<String, String> {
        let events = self
            .dag
            .order()
            .into_iter()
            .filter_map(|id| self.dag.get(&id).map(|e| (id, e)))
            .map(|(id, e)| Block {
                cid: id.text(),
                block: codec::to_base64(&e.encode()),
            })
            .collect();
        let saved = Saved {
            topic: self.topic.clone(),
            cursor: self.cursor.clone(),
            events,
        };
        let value = to_js(&saved).map_err(|e| describe(&e.into()))?;
        JSON::stringify(&value)
            .map(String::from)
            .map_err(|e| describe(&e))
    }
}

fn texts<'a>(ids: impl IntoIterator<Item = &'a Cid>) -> Vec<String> {
    ids.into_iter().map(Cid::text).collect()
}

#[wasm_bindgen]
impl StreamReplica {
    /// An empty replica of `topic`; nothing is read from storage.
    #[wasm_bindgen(constructor)]
    pub fn new(topic: String) -> StreamReplica {
        StreamReplica {
            topic,
            dag: Dag::default(),
            cursor: None,
        }
    }

    /// The replica of `topic` saved in `localStorage` under
    /// `edge-crdt/stream/<topic>`, each saved event checked again, or an
    /// empty one. Never throws: what does not read back or check is
    /// dropped with a `console.warn`.
    pub fn load(topic: String) -> StreamReplica {
        let key = format!("{KEY_PREFIX}{topic}");
        let text = match local_storage().map(|s| s.get_item(&key)) {
            Ok(Ok(Some(text))) => text,
            Ok(Ok(None)) => return StreamReplica::new(topic),
            Ok(Err(e)) => {
                warn(&format!("edge-crdt: cannot read `{key}`: {}", describe(&e)));
                return StreamReplica::new(topic);
            }
            Err(why) => {
                warn(&format!("edge-crdt: cannot load `{key}`: {why}"));
                return StreamReplica::new(topic);
            }
        };
        let (replica, why) = StreamReplica::from_saved(topic, &text);
        if let Some(why) = why {
            warn(&format!("edge-crdt: in the saved stream `{key}`: {why}"));
        }
        replica
    }

    /// Writes the events (their blocks) and the cursor to `localStorage`;
    /// whether they were written (a `console.warn` says why not).
    pub fn save(&self) -> bool {
        let key = self.storage_key();
        let result = self.saved_text().and_then(|text| {
            local_storage().and_then(|s| s.set_item(&key, &text).map_err(|e| describe(&e)))
        });
        result
            .map_err(|why| warn(&format!("edge-crdt: cannot save `{key}`: {why}")))
            .is_ok()
    }

    /// The topic.
    #[wasm_bindgen(getter)]
    pub fn topic(&self) -> String {
        self.topic.clone()
    }

    /// The `localStorage` key.
    #[wasm_bindgen(getter, js_name = storageKey)]
    pub fn storage_key(&self) -> String {
        format!("{KEY_PREFIX}{}", self.topic)
    }

    /// Checks and keeps the events of `data`: the JSON of a `/live` event
    /// (`[{cid, block}, …]`), of a `/log` page (`{entries: […]}`) or of
    /// its entries. Returns `{accepted, added, refused}`: how many were
    /// valid, how many of those were new, and `"<cid>: <why>"` for each
    /// one refused (never kept). Throws when `data` is not such JSON.
    #[wasm_bindgen(unchecked_return_type = "StreamReceived")]
    pub fn receive(&mut self, data: &str) -> Result<JsValue, JsError> {
        let entries = parse(data).and_then(entries_of).map_err(js_error)?;
        to_js(&self.take(&entries))
    }

    /// The events in the one total order (each after what it links, ties
    /// by time then id), as `{cid, timestamp_ns, message, links}` with
    /// `timestamp_ns` decimal text and `message` UTF-8 text (lossy).
    #[wasm_bindgen(unchecked_return_type = "StreamEvent[]")]
    pub fn events(&self) -> Result<JsValue, JsError> {
        let list: Vec<EventJson> = self
            .dag
            .order()
            .into_iter()
            .filter_map(|id| self.dag.get(&id).map(|e| (id, e)))
            .map(|(id, e)| EventJson {
                cid: id.text(),
                timestamp_ns: e.timestamp_ns.to_string(),
                message: String::from_utf8_lossy(&e.message).into_owned(),
                links: texts(&e.links),
            })
            .collect();
        to_js(&list)
    }

    /// The events no held event links, in id order.
    pub fn heads(&self) -> Vec<String> {
        texts(self.dag.heads())
    }

    /// The ids held events link but the replica does not hold.
    pub fn missing(&self) -> Vec<String> {
        texts(self.dag.missing())
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.dag.len()
    }

    /// Whether it holds no event.
    #[wasm_bindgen(js_name = isEmpty)]
    pub fn is_empty(&self) -> bool {
        self.dag.is_empty()
    }

    /// Whether it holds the event `cid`.
    pub fn has(&self, cid: &str) -> bool {
        Cid::from_text(cid).is_some_and(|id| self.dag.get(&id).is_some())
    }

    /// Records that `node`'s log was taken up to `seq`.
    #[wasm_bindgen(js_name = setCursor)]
    pub fn set_cursor(&mut self, node: String, seq: f64) -> Result<(), JsError> {
        if !whole(seq) {
            // Not `{seq}`: formatting a float costs the module 15 KiB.
            return Err(js_error("a cursor's seq is a whole number, 0 or more"));
        }
        self.cursor = Some(Cursor {
            node,
            seq: seq as u64,
        });
        Ok(())
    }

    /// Forgets the cursor (to follow another node's log from its start).
    #[wasm_bindgen(js_name = clearCursor)]
    pub fn clear_cursor(&mut self) {
        self.cursor = None;
    }

    /// The cursor `{node, seq}`, or `null` when none was set.
    #[wasm_bindgen(unchecked_return_type = "StreamCursor | null")]
    pub fn cursor(&self) -> Result<JsValue, JsError> {
        match &self.cursor {
            Some(cursor) => to_js(cursor),
            None => Ok(JsValue::NULL),
        }
    }
}
