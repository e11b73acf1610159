//! Random bytes and tokens from the operating system.

/// `N` random bytes. The OS generator only fails when the system is broken;
/// then we stop rather than continue with predictable secrets.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if let Err(e) = getrandom::fill(&mut buf) {
        tracing::error!(error = %e, "the OS random number generator failed; aborting");
        std::process::abort();
    }
    buf
}

/// A random printable nonce for SCRAM (base64 alphabet without `,`).
pub(crate) fn nonce() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes::<18>())
}

/// A random `u32`.
pub(crate) fn u32() -> u32 {
    u32::from_be_bytes(bytes::<4>())
}
