//! The browser replicas: thin wasm-bindgen layers over the core's CRDTs,
//! one per kind that has one ([`counter`], [`contacts`], [`stream`]). A
//! web page is a passive replica: it merges the whole states it receives
//! (server-sent events, HTTP replies) and keeps its state in
//! `localStorage`, so the value it shows never goes down, across reloads
//! too. All CRDT logic is in the core; this
//! module only moves text between JavaScript, [`codec`](crate::codec) and
//! `localStorage`.
//!
//! Nothing here panics on bad input: event data that does not decode or
//! validate is a thrown JS `Error`, and storage that does not is only a
//! `console.warn`.

#[cfg(feature = "browser-contacts")]
pub mod contacts;
pub mod counter;
#[cfg(feature = "browser-stream")]
pub mod stream;

#[cfg(feature = "browser-contacts")]
pub use contacts::ContactsReplica;
pub use counter::CounterReplica;
#[cfg(feature = "browser-stream")]
pub use stream::StreamReplica;

use serde::Serialize;
use wasm_bindgen::prelude::*;

/// A map as a plain JS object.
pub(crate) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true))
        .map_err(|e| JsError::new(&e.to_string()))
}

/// The page's `localStorage`, or why there is none.
pub(crate) fn local_storage() -> Result<web_sys::Storage, String> {
    let window = web_sys::window().ok_or("there is no window (not a page)")?;
    match window.local_storage() {
        Ok(Some(storage)) => Ok(storage),
        Ok(None) => Err("localStorage is not available".to_owned()),
        Err(e) => Err(format!("localStorage is not available: {}", describe(&e))),
    }
}

/// The message of a thrown JS value.
pub(crate) fn describe(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return format!(
            "{}: {}",
            String::from(err.name()),
            String::from(err.message())
        );
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

pub(crate) fn warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(message));
}
