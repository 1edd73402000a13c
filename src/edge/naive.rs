//! The benchmark baseline: one Durable Object counter that writes storage
//! on every request. Routed only when `BENCH_BASELINE = "on"`.

use std::cell::Cell;
use worker::{durable_object, wasm_bindgen, DurableObject, Env, Request, Response, State};

/// A single-object counter, the naive baseline for the throughput benchmark.
#[durable_object(fetch)]
pub struct NaiveCounter {
    state: State,
    count: Cell<Option<u64>>,
}

impl DurableObject for NaiveCounter {
    fn new(state: State, _env: Env) -> Self {
        NaiveCounter {
            state,
            count: Cell::new(None),
        }
    }

    async fn fetch(&self, _req: Request) -> worker::Result<Response> {
        let storage = self.state.storage();
        let count = match self.count.get() {
            Some(c) => c,
            None => storage.get::<u64>("count").await?.unwrap_or(0),
        } + 1;
        self.count.set(Some(count));
        storage.put("count", count).await?;
        let body = format!("{{\"value\":{count}}}");
        let reply = crate::api::http::Reply::ok(crate::api::http::Format::Json, body.into_bytes());
        super::respond(&reply, &[])
    }
}
