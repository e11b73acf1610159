//! cargo-fuzz target: `gate_connector::fuzzing::scram_server`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gate_connector::fuzzing::scram_server(data));
