//! Oracles of Bulkhead's fuzz targets: one module per target, each with a `check(data)` that
//! panics when the code under test breaks a property (libFuzzer reports a panic as a crash).
//!
//! A target's file in `fuzz_targets/` only hands libFuzzer's input to its module here. Inputs
//! are plain bytes with a small documented layout (no `arbitrary` encoding), so the committed
//! seeds in `seeds/<target>/` are readable frames, requests, headers and TOML. Adding a target
//! is: a module here, a three-line file in `fuzz_targets/`, a `[[bin]]` in `Cargo.toml`, a
//! seeds directory, and its name in `scripts/fuzz`.

pub mod bridge;
pub mod config;
pub mod frame;
pub mod handshake;
pub mod http_headers;
pub mod jsonrpc;
pub mod request;

mod input;
