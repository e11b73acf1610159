//! The `Mcp-Session-Id`s Gate gives clients: the upstream's session id and
//! an HMAC binding it to the caller, so a client can never use another's
//! session, and any connector sharing the key (`masking.hash_key`) can
//! serve the next request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "g1.";

/// The key session ids are signed with.
#[derive(Clone)]
pub struct SessionKey(Vec<u8>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// From the deployment's secret, or a random one (ids then hold only
    /// on this connector process).
    pub fn new(secret: Option<&str>) -> Self {
        match secret {
            Some(secret) if !secret.is_empty() => {
                Self([b"gate-mcp-session\0".as_slice(), secret.as_bytes()].concat())
            }
            _ => Self(crate::random::bytes::<32>().to_vec()),
        }
    }

    fn tag(&self, identity: &str, upstream: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(identity.as_bytes());
        mac.update(b"\0");
        mac.update(upstream.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..18])
    }

    /// The id to give `identity` for the upstream's session `upstream`.
    pub fn wrap(&self, identity: &str, upstream: &str) -> String {
        format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(upstream.as_bytes()),
            self.tag(identity, upstream)
        )
    }

    /// The upstream session behind `presented`, when it was given to `identity`.
    pub fn unwrap(&self, identity: &str, presented: &str) -> Option<String> {
        let (encoded, tag) = presented.strip_prefix(PREFIX)?.split_once('.')?;
        let upstream = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
        let expected = self.tag(identity, &upstream);
        let same = expected.len() == tag.len()
            && expected
                .bytes()
                .zip(tag.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same.then_some(upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_hold_for_their_caller_only() {
        let key = SessionKey::new(Some("k"));
        let id = key.wrap("alice", "up-123");
        assert_eq!(key.unwrap("alice", &id).as_deref(), Some("up-123"));
        assert_eq!(key.unwrap("bob", &id), None, "another caller");
        assert_eq!(SessionKey::new(Some("other")).unwrap("alice", &id), None);
        assert_eq!(
            SessionKey::new(Some("k")).unwrap("alice", &id).as_deref(),
            Some("up-123"),
            "another replica"
        );
        assert_eq!(
            key.unwrap("alice", "up-123"),
            None,
            "raw upstream ids are refused"
        );
        let tampered = id.replace("g1.", "g1.x");
        assert_eq!(key.unwrap("alice", &tampered), None);
    }
}
