//! A stream topic's replica in the page: its events checked one by one
//! (the id recomputed from the bytes, the topic, the limits, the links)
//! in a [`Dag`], listed in the Dag's one total order, and saved in
//! `localStorage` as raw blocks that a reload checks again. The page
//! moves `/log` pages and `/live` events and hands their JSON here.
//!
//! ```js
//! import init, { StreamReplica } from "./pkg/edge_crdt_stream.js";
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
use crate::crdt::stream::{BadEvent, Cid, Dag, Event};
use crate::kinds::stream::LIMITS;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::prelude::*;

const KEY_PREFIX: &str = "edge-crdt/stream/";

/// The largest block taken: a message at the limit, every link, the topic.
const MAX_BLOCK: usize = 64 << 10;

/// The largest saved replica read back (localStorage holds about 5 MB).
const MAX_SAVED: usize = 16 << 20;

/// Where the page follows a node's log: the last `seq` taken from `node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    node: String,
    seq: u64,
}

/// An event as carried by `/live`, `/log` and storage.
#[derive(Serialize, Deserialize)]
struct Block {
    cid: String,
    block: String,
}

/// What `localStorage` holds for a topic.
#[derive(Serialize, Deserialize)]
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

/// The entries of `/live` data (an array) or of a `/log` page (an object
/// with `entries`).
fn entries_of(data: &str) -> Result<Vec<Value>, String> {
    match serde_json::from_str::<Value>(data).map_err(|e| e.to_string())? {
        Value::Array(list) => Ok(list),
        Value::Object(mut page) => match page.remove("entries") {
            Some(Value::Array(list)) => Ok(list),
            _ => Err("an object without an `entries` array".to_owned()),
        },
        _ => Err("neither an array of events nor a page of them".to_owned()),
    }
}

/// The `cid` and `block` texts of one entry.
fn fields(entry: &Value) -> Result<(&str, &str), String> {
    let text = |name: &str| entry.get(name).and_then(Value::as_str);
    match (text("cid"), text("block")) {
        (Some(cid), Some(block)) => Ok((cid, block)),
        (None, _) => Err("an entry without a `cid` text".to_owned()),
        (_, None) => Err("an entry without a `block` text".to_owned()),
    }
}

impl StreamReplica {
    /// Checks one event: the id parses (canonical text), the block is
    /// base64 of a canonical DAG-CBOR event whose recomputed id is the
    /// one claimed, of this topic, within the limits, linking event ids.
    fn verify(&self, cid: &str, block: &str) -> Result<(Cid, Event), String> {
        let id: Cid = cid.parse().map_err(|_| "not a content id".to_owned())?;
        if id.to_string() != cid {
            return Err("not a canonical content id".to_owned());
        }
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
    fn take<'a>(
        &mut self,
        entries: impl IntoIterator<Item = Result<(&'a str, &'a str), String>>,
    ) -> Received {
        let mut out = Received::default();
        for entry in entries {
            let checked = entry.and_then(|(cid, block)| {
                self.verify(cid, block)
                    .map_err(|why| format!("{}: {why}", crate::clip(cid)))
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
        let saved: Saved = match serde_json::from_str(text) {
            Ok(saved) => saved,
            Err(e) => return (replica, Some(e.to_string())),
        };
        if saved.topic != replica.topic {
            return (replica, Some(format!("it is topic `{}`", saved.topic)));
        }
        let entries = saved.events.iter().map(|b| Ok((&*b.cid, &*b.block)));
        let refused = replica.take(entries).refused;
        replica.cursor = saved.cursor;
        let why = (!refused.is_empty()).then(|| format!("dropped {}", refused.join("; ")));
        (replica, why)
    }

    fn saved_text(&self) -> String {
        let events = self
            .dag
            .order()
            .into_iter()
            .filter_map(|id| self.dag.get(&id).map(|e| (id, e)))
            .map(|(id, e)| Block {
                cid: id.to_string(),
                block: codec::to_base64(&e.encode()),
            })
            .collect();
        let saved = Saved {
            topic: self.topic.clone(),
            cursor: self.cursor.clone(),
            events,
        };
        serde_json::to_string(&saved).unwrap_or_default()
    }
}

fn texts<'a>(ids: impl IntoIterator<Item = &'a Cid>) -> Vec<String> {
    ids.into_iter().map(Cid::to_string).collect()
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
        let text = self.saved_text();
        let result =
            local_storage().and_then(|s| s.set_item(&key, &text).map_err(|e| describe(&e)));
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
    pub fn receive(&mut self, data: &str) -> Result<JsValue, JsError> {
        let entries = entries_of(data).map_err(js_error)?;
        to_js(&self.take(entries.iter().map(fields)))
    }

    /// The events in the one total order (each after what it links, ties
    /// by time then id), as `{cid, timestamp_ns, message, links}` with
    /// `timestamp_ns` decimal text and `message` UTF-8 text (lossy).
    pub fn events(&self) -> Result<JsValue, JsError> {
        let list: Vec<EventJson> = self
            .dag
            .order()
            .into_iter()
            .filter_map(|id| self.dag.get(&id).map(|e| (id, e)))
            .map(|(id, e)| EventJson {
                cid: id.to_string(),
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
        cid.parse::<Cid>()
            .is_ok_and(|id| self.dag.get(&id).is_some())
    }

    /// Records that `node`'s log was taken up to `seq`.
    #[wasm_bindgen(js_name = setCursor)]
    pub fn set_cursor(&mut self, node: String, seq: f64) -> Result<(), JsError> {
        if !(seq.is_finite() && seq >= 0.0 && seq.fract() == 0.0) {
            return Err(js_error(format!("seq {seq} is not a whole number")));
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
    pub fn cursor(&self) -> Result<JsValue, JsError> {
        match &self.cursor {
            Some(cursor) => to_js(cursor),
            None => Ok(JsValue::NULL),
        }
    }
}
