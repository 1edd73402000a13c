//! Scenarios for the engine, driven through `Engine<MemoryStore>` nodes
//! and encoded frames ([`harness`]), with the test kinds of [`kinds`].
#![cfg(not(target_arch = "wasm32"))]

mod chaos;
mod contacts;
mod frames;
mod harness;
mod kinds;
mod locals;
mod log;
mod partition;
mod ported;
mod repair;
mod streams;
mod sync;
