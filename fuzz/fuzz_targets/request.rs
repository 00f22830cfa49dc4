//! Fuzz target `request`: the oracle is [`bulkhead_fuzz::request::check`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bulkhead_fuzz::request::check(data));
