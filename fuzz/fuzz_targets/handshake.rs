//! Fuzz target `handshake`: the oracle is [`bulkhead_fuzz::handshake::check`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bulkhead_fuzz::handshake::check(data));
