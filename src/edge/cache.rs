//! The Worker's read cache (the Cache API): one entry per object, holding
//! the typed outcome of its last read (and the node that gave it), for
//! `KV_CACHE_MS`. Every reply format and view is made from that one entry,
//! so a write purges the object with one delete.

use super::{now_ms, Settings};
use crate::engine::ObjectId;
use crate::NodeId;
use worker::{Cache, Headers, Response};

/// Response header: what the cache did (`hit`, `miss`, `bypass`).
pub(crate) const HEADER: &str = "x-edge-crdt-cache";

/// When an entry stops being served, in ms since the epoch: the Cache
/// API's own `max-age` counts whole seconds.
const CACHED_UNTIL: &str = "x-edge-crdt-cached-until";

/// The node that answered the cached read.
const CACHED_NODE: &str = "x-edge-crdt-cached-node";

pub(crate) struct ReadCache {
    url: String,
    ttl_ms: u64,
}

impl ReadCache {
    /// The cache of `object`; `None` when `KV_CACHE_MS` is 0.
    pub fn new(settings: &Settings, origin: &str, object: &ObjectId) -> Option<Self> {
        if settings.kv_cache_ms == 0 {
            return None;
        }
        let encoded: String = object
            .as_str()
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        Some(ReadCache {
            url: format!("{origin}/edge-crdt-cache/{encoded}"),
            ttl_ms: settings.kv_cache_ms,
        })
    }

    /// The cached outcome and the node that gave it, unless expired.
    pub async fn get(&self) -> Option<(NodeId, Vec<u8>)> {
        let res = match Cache::default().get(self.url.as_str(), false).await {
            Ok(res) => res?,
            Err(e) => {
                worker::console_warn!("cache get: {e}");
                return None;
            }
        };
        let until: u64 = res.headers().get(CACHED_UNTIL).ok()??.parse().ok()?;
        let node: u32 = res.headers().get(CACHED_NODE).ok()??.parse().ok()?;
        if now_ms() >= until {
            return None;
        }
        Some((NodeId(node), super::response_body(res).await.ok()?))
    }

    /// Keeps `outcome` from `node` for the cache's time.
    pub async fn put(&self, node: NodeId, outcome: &[u8]) {
        let stored = async {
            let headers = Headers::new();
            headers.set(
                "cache-control",
                &format!("public, max-age={}", self.ttl_ms.div_ceil(1000)),
            )?;
            headers.set(CACHED_UNTIL, &(now_ms() + self.ttl_ms).to_string())?;
            headers.set(CACHED_NODE, &node.0.to_string())?;
            let copy = Response::from_bytes(outcome.to_vec())?.with_headers(headers);
            Cache::default().put(self.url.as_str(), copy).await
        };
        if let Err(e) = stored.await {
            worker::console_warn!("cache put: {e}");
        }
    }

    /// Drops the entry, after a write.
    pub async fn purge(&self) {
        if let Err(e) = Cache::default().delete(self.url.as_str(), false).await {
            worker::console_warn!("cache delete: {e}");
        }
    }
}
