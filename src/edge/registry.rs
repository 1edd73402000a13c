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
        let next = storage.get::<u32>("next").await?.unwrap_or(0).max(floor);
        storage.put("next", next + 1).await?;
        postcard(&next)
    }
}
