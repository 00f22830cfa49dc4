//! Black-box end-to-end tests of the bulkhead binaries.
