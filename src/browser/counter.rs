//! The visit counter's replica: a [`PnCounter`] a page merges and saves.
//!
//! ```js
//! import init, { CounterReplica } from "@edge-crdt/browser";
//! await init();
//! const replica = CounterReplica.load("home");
//! source.onmessage = (e) => {
//!   if (replica.mergeEvent(e.data)) replica.save();
//!   render(replica.value());
//! };
//! ```

use super::{describe, local_storage, to_js, warn};
use crate::codec;
use crate::crdt::{Crdt, PnCounter};
use std::collections::BTreeMap;
use wasm_bindgen::prelude::*;

/// The `localStorage` key prefix; the full key is the prefix and the name.
const KEY_PREFIX: &str = "edge-crdt:counter:";

/// A browser replica of one named PN-counter.
#[wasm_bindgen]
#[derive(Clone, Debug, Default)]
pub struct CounterReplica {
    name: String,
    state: PnCounter,
}

#[wasm_bindgen]
impl CounterReplica {
    /// An empty replica of the counter `name`; nothing is read from storage.
    #[wasm_bindgen(constructor)]
    pub fn new(name: String) -> CounterReplica {
        CounterReplica {
            name,
            state: PnCounter::default(),
        }
    }

    /// The replica of `name` saved in `localStorage` under
    /// `edge-crdt:counter:<name>`, or an empty one when there is none.
    ///
    /// Never throws: stored text that is not a valid state (corrupt, from
    /// another format, failing validation) and a missing or forbidden
    /// `localStorage` are reported with `console.warn` and ignored.
    pub fn load(name: String) -> CounterReplica {
        let mut replica = CounterReplica::new(name);
        let key = replica.storage_key();
        let storage = match local_storage() {
            Ok(storage) => storage,
            Err(why) => {
                warn(&format!("edge-crdt: cannot load `{key}`: {why}"));
                return replica;
            }
        };
        let text = match storage.get_item(&key) {
            Ok(Some(text)) => text,
            Ok(None) => return replica,
            Err(e) => {
                warn(&format!(
                    "edge-crdt: cannot read `{key}` from localStorage: {}",
                    describe(&e)
                ));
                return replica;
            }
        };
        match codec::state_from_base64::<PnCounter>(&text) {
            Ok(state) => replica.state = state,
            Err(why) => warn(&format!(
                "edge-crdt: ignoring the saved state in localStorage `{key}`: {why}"
            )),
        }
        replica
    }

    /// The counter's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The `localStorage` key this replica is saved under.
    #[wasm_bindgen(getter, js_name = storageKey)]
    pub fn storage_key(&self) -> String {
        format!("{KEY_PREFIX}{}", self.name)
    }

    /// Merges the `data` of one server-sent event: the base64 text of a
    /// state envelope. Returns whether the replica changed.
    ///
    /// Throws an `Error` saying why when `data` is not a valid state; the
    /// replica is then unchanged.
    #[wasm_bindgen(js_name = mergeEvent)]
    pub fn merge_event(&mut self, data: &str) -> Result<bool, JsError> {
        let other = codec::state_from_base64::<PnCounter>(data)
            .map_err(|why| JsError::new(&format!("edge-crdt: invalid counter state: {why}")))?;
        Ok(self.state.merge(&other))
    }

    /// Merges a base64 state from any source, such as the `state` field of
    /// an HTTP reply. The same as `mergeEvent`.
    #[wasm_bindgen(js_name = mergeState)]
    pub fn merge_state(&mut self, state: &str) -> Result<bool, JsError> {
        self.merge_event(state)
    }

    /// The counter's value: increments minus decrements. Exact up to 2^53.
    pub fn value(&self) -> f64 {
        self.state.value() as f64
    }

    /// Writes the state to `localStorage`. Returns whether it was written;
    /// when it was not (no `localStorage`, quota exceeded) it says why with
    /// `console.warn` and does not throw.
    pub fn save(&self) -> bool {
        let key = self.storage_key();
        let result = local_storage().and_then(|storage| {
            storage
                .set_item(&key, &codec::state_to_base64(&self.state))
                .map_err(|e| describe(&e))
        });
        match result {
            Ok(()) => true,
            Err(why) => {
                warn(&format!("edge-crdt: cannot save `{key}`: {why}"));
                false
            }
        }
    }

    /// Each live node's net contribution, as a plain object such as
    /// `{ "node-0": 3, "node-1": 2 }`.
    #[wasm_bindgen(unchecked_return_type = "Record<string, number>")]
    pub fn contributions(&self) -> Result<JsValue, JsError> {
        let map: BTreeMap<String, f64> = self
            .state
            .contributions()
            .into_iter()
            .map(|(id, v)| (id.to_string(), v as f64))
            .collect();
        to_js(&map)
    }

    /// The retired nodes and the node each was folded into, as a plain
    /// object such as `{ "node-2": "node-0" }`.
    #[wasm_bindgen(unchecked_return_type = "Record<string, string>")]
    pub fn retired(&self) -> Result<JsValue, JsError> {
        let map: BTreeMap<String, String> = self
            .state
            .retired()
            .into_iter()
            .map(|(gone, heir)| (gone.to_string(), heir.to_string()))
            .collect();
        to_js(&map)
    }

    /// The whole state as base64 text, the format of events and storage.
    pub fn state(&self) -> String {
        codec::state_to_base64(&self.state)
    }
}
