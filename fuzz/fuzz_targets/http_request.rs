//! cargo-fuzz target: `gate_connector::fuzzing::http_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gate_connector::fuzzing::http_request(data));
