//! The benchmark baselines: one Durable Object that writes storage on
//! every request, as a counter (`/increment`) or as the seed's relay that
//! appends every pushed delta to one log (`/push`). Routed only when
//! `BENCH_BASELINE = "on"`.

use std::cell::Cell;

/// The largest whole number a JavaScript number holds exactly.
const MAX_SAFE: u64 = (1 << 53) - 1;
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

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        if req.path() == "/push" {
            return self.push(super::whole_body(req.inner().array_buffer()).await?);
        }
        let storage = self.state.storage();
        let count = match self.count.get() {
            Some(c) => c,
            None => super::stored_number(&storage, "count", MAX_SAFE)
                .await?
                .unwrap_or(0),
        } + 1;
        self.count.set(Some(count));
        super::store_number(&storage, "count", count).await?;
        let body = format!("{{\"value\":{count}}}");
        let reply = crate::api::http::Reply::ok(crate::api::http::Format::Json, body.into_bytes());
        super::respond(&reply, &[])
    }
}

impl NaiveCounter {
    /// Appends each delta of a push body to the one log, in one SQL
    /// statement per delta, and answers the last log number.
    fn push(&self, body: Vec<u8>) -> worker::Result<Response> {
        let sql = self.state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, delta TEXT NOT NULL)",
            None,
        )?;
        let push: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| worker::Error::RustError(format!("not JSON: {e}")))?;
        let deltas = push["deltas"].as_array().cloned().unwrap_or_default();
        for delta in &deltas {
            sql.exec(
                "INSERT INTO log (delta) VALUES (?)",
                vec![delta.to_string().into()],
            )?;
        }
        let body = format!("{{\"appended\":{}}}", deltas.len());
        let reply = crate::api::http::Reply::ok(crate::api::http::Format::Json, body.into_bytes());
        super::respond(&reply, &[])
    }
}
