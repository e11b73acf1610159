//! The `Mcp-Session-Id`s Gate gives clients: what the session carries (the
//! connector: the upstream's session id; the control plane: the negotiated
//! protocol revision), the client's declared `clientInfo` from its
//! `initialize`, and an HMAC binding both to the caller, so a client can never
//! use another's session nor change what its session says it is, and any
//! replica sharing the key can serve the next request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "g2.";

/// Longest `clientInfo` name or version carried (longer ones are cut).
const MAX_DECLARED: usize = 128;

pub use crate::message::Declared;

/// The key session ids are signed with.
#[derive(Clone)]
pub struct SessionKey(Vec<u8>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// From a secret every replica shares.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self([b"gate-mcp-session\0".as_slice(), secret].concat())
    }

    /// From random bytes: ids then hold only in this process.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(bytes.to_vec())
    }

    fn tag(&self, identity: &str, upstream: &str, client: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [identity, upstream] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac.update(client.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..18])
    }

    /// The id to give `identity` for a session carrying `upstream` (the
    /// upstream's session id, or what the control plane keeps), opened by a
    /// client that declared `client`.
    pub fn wrap(&self, identity: &str, upstream: &str, client: Option<&Declared>) -> String {
        let client = client.map_or_else(String::new, |(name, version)| {
            let cut = |s: &str| s.chars().take(MAX_DECLARED).collect::<String>();
            URL_SAFE_NO_PAD.encode(serde_json::json!([cut(name), cut(version)]).to_string())
        });
        format!(
            "{PREFIX}{}.{client}.{}",
            URL_SAFE_NO_PAD.encode(upstream.as_bytes()),
            self.tag(identity, upstream, &client)
        )
    }

    /// What `presented` carries and the client that opened it, when it was
    /// given to `identity`.
    pub fn unwrap(&self, identity: &str, presented: &str) -> Option<(String, Option<Declared>)> {
        let mut parts = presented.strip_prefix(PREFIX)?.split('.');
        let (encoded, client, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let upstream = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
        let expected = self.tag(identity, &upstream, client);
        let same = expected.len() == tag.len()
            && expected
                .bytes()
                .zip(tag.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return None;
        }
        let declared = if client.is_empty() {
            None
        } else {
            let raw = URL_SAFE_NO_PAD.decode(client).ok()?;
            Some(serde_json::from_slice::<Declared>(&raw).ok()?)
        };
        Some((upstream, declared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_hold_for_their_caller_only() {
        let key = SessionKey::from_secret(b"k");
        let declared = ("claude-code".to_owned(), "2.1".to_owned());
        let id = key.wrap("alice", "up-123", Some(&declared));
        assert_eq!(
            key.unwrap("alice", &id),
            Some(("up-123".to_owned(), Some(declared.clone())))
        );
        assert_eq!(key.unwrap("bob", &id), None, "another caller");
        assert_eq!(SessionKey::from_secret(b"other").unwrap("alice", &id), None);
        assert_eq!(
            SessionKey::from_secret(b"k").unwrap("alice", &id),
            Some(("up-123".to_owned(), Some(declared))),
            "another replica"
        );
        let anonymous = key.wrap("alice", "up-9", None);
        assert_eq!(key.unwrap("alice", &anonymous), Some(("up-9".into(), None)));
        assert_eq!(
            key.unwrap("alice", "up-123"),
            None,
            "raw upstream ids are refused"
        );
        let tampered = id.replace("g2.", "g2.x");
        assert_eq!(key.unwrap("alice", &tampered), None);
        // Another clientInfo cannot be spliced into a valid id.
        let other = key.wrap("alice", "up-123", Some(&("evil".into(), "1".into())));
        let (head, _) = id.rsplit_once('.').unwrap();
        let (_, other_tag) = other.rsplit_once('.').unwrap();
        let forged = format!("{}.{other_tag}", head);
        assert_eq!(key.unwrap("alice", &forged), None);
        let mut parts: Vec<&str> = id.split('.').collect();
        let evil_client = other.split('.').nth(2).unwrap();
        parts[2] = evil_client;
        assert_eq!(key.unwrap("alice", &parts.join(".")), None);
    }
}
