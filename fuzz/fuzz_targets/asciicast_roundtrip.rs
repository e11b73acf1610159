//! cargo-fuzz target: `gate_connector::fuzzing::asciicast_roundtrip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gate_connector::fuzzing::asciicast_roundtrip(data));
