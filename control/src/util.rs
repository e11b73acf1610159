//! Small pure helpers: random secrets and their hashes; ids and timestamps come from
//! [`gate_proto::wire`].

use sha2::{Digest, Sha256};

pub use gate_proto::wire::{new_id, now_ms, parse_rfc3339, rfc3339, rfc3339_opt};

/// Random bytes from the OS; a failing OS generator is unrecoverable for a security service.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of `text`, hex encoded: how API keys are stored.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}
