//! One folder per protocol: pure codec, session state machine, native errors.

pub mod postgres;
