//! Fuzzing on stable Rust: every decoder that takes bytes from outside is
//! a target ([`driver::Target`]) fed the valid encodings of the real
//! encoders, mutations of them and random bytes. Every input must decode
//! or be refused without a panic, allocating in proportion to its size,
//! and what decodes must re-encode to the same value. A plain
//! `cargo test` runs [`driver::DEFAULT_INPUTS`] inputs per target;
//! `FUZZ_INPUTS`, `FUZZ_SECONDS`, `FUZZ_SEED` and `FUZZ_TARGET` steer a
//! run, and `scripts/fuzz.sh` runs every target longer. [`bombs`] feeds
//! 10 MB nesting bombs and garbage to the decoders that could recurse or
//! allocate, on a Worker-sized stack.
#![cfg(not(target_arch = "wasm32"))]

mod alloc;
mod api;
mod bombs;
mod browser;
mod codec;
mod contacts;
mod driver;
mod mutate;
mod peer;
mod props;
mod seeds;
mod stream;

#[test]
fn codec_envelopes() {
    driver::fuzz(codec::targets());
}

#[test]
fn api_requests() {
    driver::fuzz(api::targets());
}

#[test]
fn peer_frames() {
    driver::fuzz(peer::targets());
}

#[test]
fn streams_contacts_and_browser_storage() {
    let mut targets = stream::targets();
    targets.extend(contacts::targets());
    targets.extend(browser::targets());
    driver::fuzz(targets);
}
