//! The password proofs of MySQL's auth plugins, pure: what a client sends
//! for a password and a server's 20-byte scramble, so Gate can check a
//! client's proof (it knows a static identity's secret) and prove its own
//! upstream.
//!
//! ```text
//! mysql_native_password: SHA1(pw) XOR SHA1(scramble ‖ SHA1(SHA1(pw)))
//! caching_sha2_password: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ scramble)
//! mysql_clear_password:  pw ‖ 0x00 (only over TLS or loopback)
//! client_ed25519:        Ed25519 signature of the 32-byte scramble, key = SHA512(pw) (MariaDB)
//! ```

use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use crate::auth::scram::constant_time_eq;

pub const NATIVE: &str = "mysql_native_password";
pub const CACHING_SHA2: &str = "caching_sha2_password";
pub const CLEAR: &str = "mysql_clear_password";
pub const ED25519: &str = "client_ed25519";

/// caching_sha2_password's AuthMoreData codes.
pub const FAST_AUTH_OK: u8 = 3;
pub const FULL_AUTH: u8 = 4;
/// A client's request for the server's RSA public key.
pub const REQUEST_PUBLIC_KEY: u8 = 2;

/// The 20 scramble bytes a proof is computed over (servers append a NUL).
fn nonce(scramble: &[u8]) -> &[u8] {
    scramble.get(..20).unwrap_or(scramble)
}

fn xor<const N: usize>(a: [u8; N], b: [u8; N]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// The `mysql_native_password` proof; empty for an empty password.
pub fn native(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1: [u8; 20] = Sha1::digest(password).into();
    let stage2: [u8; 20] = Sha1::digest(stage1).into();
    let mut h = Sha1::new();
    h.update(nonce(scramble));
    h.update(stage2);
    xor(stage1, h.finalize().into())
}

/// The `caching_sha2_password` fast-path proof; empty for an empty password.
pub fn caching_sha2(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1: [u8; 32] = Sha256::digest(password).into();
    let stage2: [u8; 32] = Sha256::digest(stage1).into();
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(nonce(scramble));
    xor(stage1, h.finalize().into())
}

/// MariaDB's `client_ed25519` answer: the Ed25519 signature of the
/// server's 32-byte nonce under the expanded key SHA-512(password), as
/// MariaDB's ref10 `crypto_sign` computes it.
pub fn ed25519(password: &[u8], scramble: &[u8]) -> Option<Vec<u8>> {
    use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};
    use ed25519_dalek::{Digest as _, Sha512, VerifyingKey};
    let expanded: [u8; 64] = Sha512::digest(password).into();
    let key = ExpandedSecretKey::from_bytes(&expanded);
    let public = VerifyingKey::from(&key);
    let nonce = scramble.get(..32)?;
    Some(raw_sign::<Sha512>(&key, nonce, &public).to_bytes().to_vec())
}

/// Whether `proof`, sent with `plugin`, proves `password` for `scramble`.
/// Always does the same work, whatever the outcome.
pub fn verify(plugin: &str, password: &[u8], scramble: &[u8], proof: &[u8]) -> bool {
    let expected = match plugin {
        NATIVE => native(password, scramble),
        CACHING_SHA2 => caching_sha2(password, scramble),
        CLEAR => password.to_vec(),
        _ => return false,
    };
    let proof = if plugin == CLEAR {
        proof.strip_suffix(&[0]).unwrap_or(proof)
    } else {
        proof
    };
    !expected.is_empty() && constant_time_eq(&expected, proof)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors computed with MySQL's own definition (Python hashlib):
    /// password "secret", scramble bytes 1..=20.
    const SCRAMBLE: [u8; 20] = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn native_password_vector() {
        assert_eq!(
            hex(&native(b"secret", &SCRAMBLE)),
            "b32bb3a583e1340c0a1108d58b1be49781ad8c2f"
        );
    }

    #[test]
    fn caching_sha2_vector() {
        assert_eq!(
            hex(&caching_sha2(b"secret", &SCRAMBLE)),
            "746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_proof() {
        let proof = native(b"secret", &SCRAMBLE);
        assert!(verify(NATIVE, b"secret", &SCRAMBLE, &proof));
        assert!(!verify(NATIVE, b"wrong", &SCRAMBLE, &proof));
        assert!(!verify(CACHING_SHA2, b"secret", &SCRAMBLE, &proof));
        assert!(verify(CLEAR, b"secret", &SCRAMBLE, b"secret\0"));
        assert!(!verify("dialog", b"secret", &SCRAMBLE, b"secret"));
        // An empty password never matches (no empty-password logins through Gate).
        assert!(!verify(NATIVE, b"", &SCRAMBLE, b""));
        // A trailing NUL from the server's scramble is not part of the nonce.
        let mut with_nul = SCRAMBLE.to_vec();
        with_nul.push(0);
        assert_eq!(native(b"secret", &with_nul), proof);
    }
}
