//! Scenarios for the engine, driven through `Engine<MemoryStore>` nodes
//! and encoded frames ([`harness`]), with the test kinds of [`kinds`].
#![cfg(not(target_arch = "wasm32"))]

mod harness;
mod kinds;
mod ported;
mod frames;
mod repair;
mod log;
mod sync;
