//! caching_sha2_password on Gate's client side, as a MySQL 8 server does it:
//! the fast path (a scramble proof) only for identities that completed a
//! full authentication since Gate started (the cache), otherwise
//! `perform_full_authentication`: over TLS the client sends its password,
//! without TLS it asks for Gate's RSA public key and sends the password
//! encrypted ([`super::rsa_auth`]). A password in clear without TLS is
//! accepted from loopback only (as Gate's token logins are).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::BytesMut;
use sha2::{Digest as _, Sha256};

use super::error::MyError;
use super::login::exchange;
use super::rsa_auth::RsaKeys;
use super::scramble::{FULL_AUTH, REQUEST_PUBLIC_KEY};
use crate::stream::ClientStream;

/// Identities that may use the fast path: name → a digest of the secret
/// they proved (so a changed password needs a full authentication again).
#[derive(Debug, Default)]
pub(super) struct FastAuthCache(Mutex<HashMap<String, [u8; 32]>>);

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(secret)).into()
}

impl FastAuthCache {
    /// Whether `user` completed a full authentication with `secret`.
    pub(super) fn contains(&self, user: &str, secret: &[u8]) -> bool {
        let Ok(cache) = self.0.lock() else {
            return false;
        };
        cache.get(user) == Some(&digest(secret))
    }

    /// Remember that `user` proved `secret` in full.
    pub(super) fn insert(&self, user: &str, secret: &[u8]) {
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(user.to_owned(), digest(secret));
        }
    }
}

/// Gate's RSA key for clients, made on first use (off the runtime).
#[derive(Debug, Default)]
pub(super) struct ClientKeys(tokio::sync::OnceCell<RsaKeys>);

impl ClientKeys {
    /// Whether the key exists yet.
    pub(super) fn ready(&self) -> bool {
        self.0.initialized()
    }

    pub(super) async fn get(&self) -> Result<&RsaKeys, MyError> {
        self.0
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(RsaKeys::generate)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|made| made)
                    .map_err(|e| MyError::Internal(format!("RSA key generation failed: {e}")))
            })
            .await
    }
}

/// Ask for full authentication and return the password the client sends
/// (empty when it sends nothing Gate may accept, which no secret matches).
pub(super) async fn password(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    seq: &mut u8,
    keys: &ClientKeys,
    scramble: &[u8],
    peer: SocketAddr,
) -> Result<Vec<u8>, MyError> {
    let answer = exchange(client, buf, seq, &[0x01, FULL_AUTH]).await?;
    let clear = |mut answer: Vec<u8>| {
        if answer.last() == Some(&0) {
            answer.pop();
        }
        answer
    };
    if client.is_tls() {
        return Ok(clear(answer));
    }
    if answer == [REQUEST_PUBLIC_KEY] {
        let keys = keys.get().await?;
        let mut payload = Vec::with_capacity(keys.public_pem().len() + 1);
        payload.push(0x01);
        payload.extend_from_slice(keys.public_pem().as_bytes());
        let sealed = exchange(client, buf, seq, &payload).await?;
        return Ok(keys.decrypt_password(&sealed, scramble).unwrap_or_default());
    }
    // A client that already holds Gate's key (from an earlier connection) sends the ciphertext at once.
    if let Some(password) = keys
        .0
        .get()
        .and_then(|k| k.decrypt_password(&answer, scramble))
    {
        return Ok(password);
    }
    if peer.ip().is_loopback() {
        return Ok(clear(answer));
    }
    tracing::info!(protocol = "mysql", %peer, "password sent in clear without TLS refused");
    Ok(Vec::new())
}
