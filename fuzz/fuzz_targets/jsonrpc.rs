//! Fuzz target `jsonrpc`: the oracle is [`bulkhead_fuzz::jsonrpc::check`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bulkhead_fuzz::jsonrpc::check(data));
