//! The supervisor's modules as a library, for the fuzz targets (`fuzz/`) only: empty unless the
//! `fuzzing` feature is on.
//!
//! The supervisor is a binary; its modules are declared by `main.rs`. With `fuzzing`, this
//! root declares the same modules again (a test in `tests/tests/conventions.rs` keeps the two
//! lists equal) and adds [`fuzzing`], whose small public functions are the entry points the
//! fuzz targets call. Without the feature nothing here is compiled, so the workspace build and
//! the binary's dead-code checks are exactly what they were.
#![cfg(feature = "fuzzing")]
// Most of the supervisor is reachable only from `main.rs`, not from the fuzzing entry points.
#![allow(dead_code, unused_imports)]

mod capacity;
mod catalog;
mod config;
mod credentials;
mod drain;
mod http;
mod mcp;
mod metrics;
mod node;
mod pool;
mod principal;
mod release;
mod reload;
mod session;
mod signals;
mod spawn;
mod stdio;
mod systemd;
mod trading;
mod worker;
mod wrap;

#[doc(hidden)]
pub mod fuzzing;
