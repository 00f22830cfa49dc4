//! Fuzz target `frame`: the oracle is [`bulkhead_fuzz::frame::check`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bulkhead_fuzz::frame::check(data));
