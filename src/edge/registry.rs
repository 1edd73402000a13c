//! The one allocator of node ids. A Durable Object runs one request at a
//! time against its storage, so two concurrent additions never get the same
//! id, whatever each node's view of the membership.

use super::{postcard, Settings};
use worker::{durable_object, wasm_bindgen, DurableObject, Env, Request, Response, State};

/// Hands out node ids above the initial `node-0 … node-{NODES-1}`, never twice.
#[durable_object(fetch)]
pub struct Registry {
    state: State,
    env: Env,
}

impl DurableObject for Registry {
    fn new(state: State, env: Env) -> Self {
        Registry { state, env }
    }

    async fn fetch(&self, _req: Request) -> worker::Result<Response> {
        let storage = self.state.storage();
        let floor = Settings::from_env(&self.env).nodes;
        let next = super::stored_number(&storage, "next", u32::MAX.into())
            .await?
            .unwrap_or(0)
            .max(floor.into()) as u32;
        super::store_number(&storage, "next", (next + 1).into()).await?;
        postcard(&next)
    }
}
