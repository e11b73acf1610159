//! cargo-fuzz target: `gate_connector::fuzzing::mysql_packets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gate_connector::fuzzing::mysql_packets(data));
