//! Fuzz target `config`: the oracle is [`bulkhead_fuzz::config::check`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bulkhead_fuzz::config::check(data));
