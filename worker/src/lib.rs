//! The worker's broker engine as a library: the `bulkhead-worker` binary builds on it, and the
//! test suite's Alpaca stand-in (`bulkhead-tests`) serves the `paper` engine over Alpaca's API
//! with it, so the same scenarios can run against `paper` and `alpaca-paper` and must agree.

pub mod broker;
