//! Fuzz target `bridge`: the oracle is [`bulkhead_fuzz::bridge::check`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bulkhead_fuzz::bridge::check(data));
