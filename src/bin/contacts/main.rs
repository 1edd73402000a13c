//! The address books' command-line client, the seed's client on our
//! cluster: a local SQLite database with the flattened contacts and a
//! durable outbox; a generator that creates, edits and deletes contacts at
//! random with offline periods, syncing in between; and a check of its
//! database against every node's, exiting non-zero on any difference.
//! Killed at any point (`kill -9`) and restarted on the same database, it
//! loses nothing.

#[cfg(not(target_arch = "wasm32"))]
mod db;
#[cfg(not(target_arch = "wasm32"))]
mod generate;
#[cfg(not(target_arch = "wasm32"))]
mod net;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    std::process::exit(generate::main(std::env::args().skip(1).collect()));
}

#[cfg(target_arch = "wasm32")]
fn main() {}
