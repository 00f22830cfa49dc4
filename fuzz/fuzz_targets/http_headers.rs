//! Fuzz target `http_headers`: the oracle is [`bulkhead_fuzz::http_headers::check`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bulkhead_fuzz::http_headers::check(data));
