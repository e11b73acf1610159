//! caching_sha2_password's RSA key exchange, pure: without TLS a client
//! sends its password as RSA-OAEP(SHA-1) of `password ‖ 0x00` XOR the
//! server's scramble (repeated), under the server's public key (PEM, sent on
//! request). Gate decrypts what clients send it and encrypts what it sends
//! its upstream.
//!
//! ```text
//! client                                  server
//! ◀── AuthMoreData 0x04 (perform full authentication)
//! 0x02 (request public key) ──▶
//! ◀── AuthMoreData "-----BEGIN PUBLIC KEY-----…"
//! RSA-OAEP(pw ‖ 0 XOR scramble) ──▶       decrypt, XOR, compare
//! ```

use rsa::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::rand_core::OsRng;
use rsa::signature::digest::DynDigest;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha1::{Digest as _, Sha1};

/// The size of the key Gate makes for its clients (as MySQL's default).
const BITS: usize = 2048;

/// SHA-1 for the `rsa` crate's OAEP (which names its digests through an
/// older `digest` trait than the workspace's `sha1`).
#[derive(Clone, Default)]
struct OaepSha1(Sha1);

impl DynDigest for OaepSha1 {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finalize_into(
        mut self,
        buf: &mut [u8],
    ) -> Result<(), rsa::signature::digest::InvalidBufferSize> {
        self.finalize_into_reset(buf)
    }

    fn finalize_into_reset(
        &mut self,
        out: &mut [u8],
    ) -> Result<(), rsa::signature::digest::InvalidBufferSize> {
        if out.len() != 20 {
            return Err(rsa::signature::digest::InvalidBufferSize);
        }
        out.copy_from_slice(&self.0.finalize_reset());
        Ok(())
    }

    fn reset(&mut self) {
        self.0 = Sha1::new();
    }

    fn output_size(&self) -> usize {
        20
    }

    fn box_clone(&self) -> Box<dyn DynDigest> {
        Box::new(self.clone())
    }
}

/// RSA_PKCS1_OAEP_PADDING as MySQL uses it: SHA-1, MGF1-SHA-1, no label.
fn oaep() -> Oaep {
    Oaep {
        digest: Box::new(OaepSha1::default()),
        mgf_digest: Box::new(OaepSha1::default()),
        label: None,
    }
}

/// `data` XOR the scramble's 20 bytes, repeated.
fn xor_scramble(data: &[u8], scramble: &[u8]) -> Vec<u8> {
    let nonce = scramble.get(..20).unwrap_or(scramble);
    if nonce.is_empty() {
        return data.to_vec();
    }
    data.iter()
        .zip(nonce.iter().cycle())
        .map(|(d, s)| d ^ s)
        .collect()
}

/// Gate's RSA key pair for clients, and its public half as PEM.
pub struct RsaKeys {
    private: RsaPrivateKey,
    public_pem: String,
}

impl std::fmt::Debug for RsaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaKeys(…)")
    }
}

impl RsaKeys {
    /// A fresh 2048-bit key pair (tens of milliseconds: call off the runtime).
    pub fn generate() -> Result<Self, String> {
        let private = RsaPrivateKey::new(&mut OsRng, BITS).map_err(|e| e.to_string())?;
        let public_pem = RsaPublicKey::from(&private)
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            private,
            public_pem,
        })
    }

    /// The public key as MySQL servers send it (SubjectPublicKeyInfo PEM).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The password a client encrypted for `scramble`, without its NUL;
    /// `None` when it does not decrypt.
    pub fn decrypt_password(&self, ciphertext: &[u8], scramble: &[u8]) -> Option<Vec<u8>> {
        let plain = self
            .private
            .decrypt_blinded(&mut OsRng, oaep(), ciphertext)
            .ok()?;
        let mut password = xor_scramble(&plain, scramble);
        if password.last() == Some(&0) {
            password.pop();
        }
        Some(password)
    }
}

/// What a client sends a server whose public key is `pem`: the encrypted
/// `password ‖ 0x00` XOR `scramble`.
pub fn encrypt_password(pem: &[u8], password: &[u8], scramble: &[u8]) -> Result<Vec<u8>, String> {
    let pem = std::str::from_utf8(pem).map_err(|_| "the server's public key is not PEM text")?;
    let key = RsaPublicKey::from_public_key_pem(pem.trim_end_matches('\0').trim())
        .or_else(|_| {
            use rsa::pkcs1::DecodeRsaPublicKey;
            RsaPublicKey::from_pkcs1_pem(pem.trim_end_matches('\0').trim())
        })
        .map_err(|e| format!("the server's public key does not parse: {e}"))?;
    let mut plain = password.to_vec();
    plain.push(0);
    key.encrypt(&mut OsRng, oaep(), &xor_scramble(&plain, scramble))
        .map_err(|e| format!("RSA encryption failed (password too long for the key?): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_encrypted_for_the_public_key_decrypts_with_the_scramble() {
        let keys = RsaKeys::generate().unwrap();
        assert!(keys.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        let scramble: Vec<u8> = (1..=20).collect();
        let long = "p".repeat(30); // longer than the scramble: it repeats
        for password in ["secret", long.as_str()] {
            let sealed =
                encrypt_password(keys.public_pem().as_bytes(), password.as_bytes(), &scramble)
                    .unwrap();
            assert_eq!(sealed.len(), BITS / 8);
            assert_eq!(
                keys.decrypt_password(&sealed, &scramble).as_deref(),
                Some(password.as_bytes())
            );
            // Another connection's scramble gives another password.
            let other: Vec<u8> = (21..=40).collect();
            assert_ne!(
                keys.decrypt_password(&sealed, &other).as_deref(),
                Some(password.as_bytes())
            );
        }
        assert_eq!(keys.decrypt_password(b"not a ciphertext", &scramble), None);
        assert!(encrypt_password(b"garbage", b"pw", &scramble).is_err());
    }
}
