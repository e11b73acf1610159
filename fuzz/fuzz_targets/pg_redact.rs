//! cargo-fuzz target: `gate_connector::fuzzing::pg_redact`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gate_connector::fuzzing::pg_redact(data));
