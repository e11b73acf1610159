//! SCRAM-SHA-256 (RFC 5802 / RFC 7677; SCRAM-SHA-1 server side for
//! MongoDB) without channel binding: the server side for clients logging in
//! to Gate, the client side for Gate logging in upstream. Pure: messages in,
//! messages out.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Iteration count of verifiers Gate derives.
pub const ITERATIONS: u32 = 4096;

/// The hash a SCRAM exchange runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SCRAM-SHA-256 (RFC 7677): PostgreSQL, MongoDB.
    Sha256,
    /// SCRAM-SHA-1 (RFC 5802): MongoDB's older drivers only.
    Sha1,
}

impl Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC accepts any key length.
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            Hash::Sha256 => run::<Hmac<Sha256>>(key, data),
            Hash::Sha1 => run::<Hmac<Sha1>>(key, data),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha1 => Sha1::digest(data).to_vec(),
        }
    }

    /// PBKDF2-HMAC with one block of the hash's output length (SCRAM's `Hi`).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut block = salt.to_vec();
        block.extend_from_slice(&1u32.to_be_bytes());
        let mut u = self.hmac(password, &block);
        let mut out = u.clone();
        for _ in 1..iterations {
            u = self.hmac(password, &u);
            for (o, x) in out.iter_mut().zip(u.iter()) {
                *o ^= x;
            }
        }
        out
    }
}

/// PBKDF2-HMAC-SHA256 (SCRAM-SHA-256's `Hi`).
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    Hash::Sha256.salted_password(password.as_bytes(), salt, iterations)
}

/// What a server stores for one password.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub hash: Hash,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Verifier {
    /// Derive the SCRAM-SHA-256 verifier for `password` with `salt`.
    pub fn new(password: &str, salt: Vec<u8>) -> Self {
        Self::derive(Hash::Sha256, password.as_bytes(), salt)
    }

    /// Derive the verifier of `hash` for the (already prepared) `password`.
    pub fn derive(hash: Hash, password: &[u8], salt: Vec<u8>) -> Self {
        let salted = hash.salted_password(password, &salt, ITERATIONS);
        Self {
            hash,
            stored_key: hash.digest(&hash.hmac(&salted, b"Client Key")),
            server_key: hash.hmac(&salted, b"Server Key"),
            salt,
            iterations: ITERATIONS,
        }
    }
}

/// A SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("the nonce does not match")]
    Nonce,
    #[error("the proof is wrong")]
    BadProof,
    #[error("the server signature is wrong")]
    BadServerSignature,
}

fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('='))
            .then(|| part.get(2..).unwrap_or_default())
    })
}

/// Server side, after the client's first message.
#[derive(Debug)]
pub struct ServerExchange {
    client_first_bare: String,
    server_first: String,
    nonce: String,
    gs2_header: String,
}

impl ServerExchange {
    /// Handle `client-first-message`; returns the exchange and `server-first-message`.
    pub fn start(
        client_first: &str,
        verifier: &Verifier,
        server_nonce: &str,
    ) -> Result<(Self, String), ScramError> {
        let (gs2_header, bare) = split_gs2(client_first)?;
        let client_nonce =
            attribute(bare, 'r').ok_or(ScramError::Malformed("client-first without nonce"))?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        let exchange = Self {
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
            gs2_header: gs2_header.to_owned(),
        };
        Ok((exchange, server_first))
    }

    /// Check `client-final-message`; returns `server-final-message` when the proof is right.
    pub fn finish(&self, client_final: &str, verifier: &Verifier) -> Result<String, ScramError> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("client-final without proof"))?;
        let binding = attribute(without_proof, 'c')
            .ok_or(ScramError::Malformed("client-final without binding"))?;
        if B64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(ScramError::ChannelBinding);
        }
        if attribute(without_proof, 'r') != Some(self.nonce.as_str()) {
            return Err(ScramError::Nonce);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let hash = verifier.hash;
        let signature = hash.hmac(&verifier.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::BadProof);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(signature.iter())
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(&hash.digest(&client_key), &verifier.stored_key) {
            return Err(ScramError::BadProof);
        }
        Ok(format!(
            "v={}",
            B64.encode(hash.hmac(&verifier.server_key, auth_message.as_bytes()))
        ))
    }
}

fn split_gs2(client_first: &str) -> Result<(&str, &str), ScramError> {
    let mut parts = client_first.splitn(3, ',');
    let flag = parts.next().ok_or(ScramError::Malformed("client-first"))?;
    let authzid = parts.next().ok_or(ScramError::Malformed("client-first"))?;
    let bare = parts.next().ok_or(ScramError::Malformed("client-first"))?;
    match flag {
        "n" | "y" => {}
        _ => return Err(ScramError::ChannelBinding),
    }
    let header_len = flag.len() + authzid.len() + 2;
    Ok((
        client_first
            .get(..header_len)
            .ok_or(ScramError::Malformed("client-first"))?,
        bare,
    ))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Client side (Gate logging in upstream).
#[derive(Debug)]
pub struct ClientExchange {
    client_nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ClientExchange {
    /// Start with a fresh nonce; returns the exchange and `client-first-message`.
    pub fn start(client_nonce: &str) -> (Self, String) {
        Self::start_as("", client_nonce)
    }

    /// Like [`ClientExchange::start`], naming `user` in the message (MongoDB
    /// reads the user from it; PostgreSQL sends it in the startup packet).
    pub fn start_as(user: &str, client_nonce: &str) -> (Self, String) {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        let bare = format!("n={user},r={client_nonce}");
        let first = format!("n,,{bare}");
        (
            Self {
                client_nonce: client_nonce.to_owned(),
                client_first_bare: bare,
                server_signature: None,
            },
            first,
        )
    }

    /// Handle `server-first-message`; returns `client-final-message`.
    pub fn respond(&mut self, server_first: &str, password: &str) -> Result<String, ScramError> {
        let nonce = attribute(server_first, 'r')
            .ok_or(ScramError::Malformed("server-first without nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = attribute(server_first, 's')
            .and_then(|s| B64.decode(s).ok())
            .ok_or(ScramError::Malformed("server-first salt"))?;
        let iterations: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|i| (1..=1_000_000).contains(i))
            .ok_or(ScramError::Malformed("server-first iteration count"))?;
        let hash = Hash::Sha256;
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        let stored_key = hash.digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature.iter())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hash.hmac(&salted, b"Server Key");
        self.server_signature = Some(hash.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Check `server-final-message`.
    pub fn verify(&self, server_final: &str) -> Result<(), ScramError> {
        let given = attribute(server_final, 'v')
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramError::Malformed("server-final"))?;
        match &self.server_signature {
            Some(expected) if constant_time_eq(expected, &given) => Ok(()),
            _ => Err(ScramError::BadServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1, 64) — first 32 bytes.
        let out = salted_password("passwd", b"salt", 1);
        assert_eq!(
            out.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn rfc7677_example_exchange() {
        // RFC 7677 §3: user "user", password "pencil".
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = Verifier::new("pencil", salt);
        let (server, server_first) = ServerExchange::start(
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            &verifier,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            server.finish(client_final, &verifier).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn client_and_server_agree_and_a_wrong_password_fails() {
        let verifier = Verifier::new("s3cret", b"0123456789abcdef".to_vec());
        for (password, ok) in [("s3cret", true), ("wrong", false)] {
            let (mut client, first) = ClientExchange::start("clientnonce");
            let (server, server_first) =
                ServerExchange::start(&first, &verifier, "servernonce").unwrap();
            let client_final = client.respond(&server_first, password).unwrap();
            match server.finish(&client_final, &verifier) {
                Ok(server_final) => {
                    assert!(ok);
                    client.verify(&server_final).unwrap();
                }
                Err(e) => {
                    assert!(!ok);
                    assert_eq!(e, ScramError::BadProof);
                }
            }
        }
    }

    #[test]
    fn tampering_is_detected() {
        let verifier = Verifier::new("pw", b"salt".to_vec());
        let (server, _) = ServerExchange::start("n,,n=,r=abc", &verifier, "def").unwrap();
        assert_eq!(
            server.finish("c=biws,r=abcXXX,p=AAAA", &verifier),
            Err(ScramError::Nonce)
        );
        assert_eq!(
            server.finish("c=eSws,r=abcdef,p=AAAA", &verifier),
            Err(ScramError::ChannelBinding)
        );
        assert!(ServerExchange::start("p=tls-server-end-point,,n=,r=x", &verifier, "y").is_err());
        let (client, _) = ClientExchange::start("abc");
        assert_eq!(client.verify("v=AAAA"), Err(ScramError::BadServerSignature));
        let (mut client, _) = ClientExchange::start("abc");
        assert_eq!(
            client.respond("r=xyz,s=c2FsdA==,i=4096", "pw"),
            Err(ScramError::Nonce)
        );
    }
}
