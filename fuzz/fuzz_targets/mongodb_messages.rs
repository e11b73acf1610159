//! cargo-fuzz target: `gate_connector::fuzzing::mongodb_messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gate_connector::fuzzing::mongodb_messages(data));
