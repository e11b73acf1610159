//! Masking strategies as pure functions over text, counted in characters (not bytes).
//!
//! | strategy | `alice@example.com`  | `123-45-6789` |
//! |----------|----------------------|---------------|
//! | redact   | `***`                | `***`         |
//! | partial  | `*************.com`  | `*******6789` |
//! | email    | `a***@example.com`   | `***`         |
//! | hash     | hex HMAC-SHA256      | hex HMAC-SHA256 |
//! | null     | NULL                 | NULL          |

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::decision::Strategy;

/// The deployment's secret for the `hash` strategy.
#[derive(Clone)]
pub struct MaskingKey(Vec<u8>);

impl MaskingKey {
    /// Wrap key bytes; an empty key is refused.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (!bytes.is_empty()).then_some(Self(bytes))
    }
}

impl fmt::Debug for MaskingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskingKey(..)")
    }
}

/// A `hash` mask was requested but no masking key is configured; the caller must block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the hash masking strategy needs masking.hash_key to be configured")]
pub struct MissingHashKey;

/// What to put in place of `value` under `strategy`; `None` means NULL.
pub fn mask_text(
    strategy: Strategy,
    value: &str,
    key: Option<&MaskingKey>,
) -> Result<Option<String>, MissingHashKey> {
    Ok(Some(match strategy {
        Strategy::Redact => "***".to_owned(),
        Strategy::Partial => partial(value),
        Strategy::Email => email(value),
        Strategy::Hash => hash(value.as_bytes(), key.ok_or(MissingHashKey)?),
        Strategy::Null => return Ok(None),
    }))
}

/// Keep the last 4 characters and replace the rest with `*`; 4 or fewer → all `*`.
pub fn partial(value: &str) -> String {
    let count = value.chars().count();
    if count <= 4 {
        return "*".repeat(count);
    }
    let mut out = "*".repeat(count - 4);
    out.extend(value.chars().skip(count - 4));
    out
}

/// First character of the local part, `***`, then `@domain`; not an email → `***`.
pub fn email(value: &str) -> String {
    match value.rsplit_once('@') {
        Some((local, domain)) if !domain.is_empty() && !domain.contains(char::is_whitespace) => {
            match local.chars().next() {
                Some(first) => {
                    let mut out = String::with_capacity(first.len_utf8() + 4 + domain.len());
                    out.push(first);
                    out.push_str("***@");
                    out.push_str(domain);
                    out
                }
                None => "***".to_owned(),
            }
        }
        _ => "***".to_owned(),
    }
}

/// Lower-case hex HMAC-SHA256 of `value` under `key`.
pub fn hash(value: &[u8], key: &MaskingKey) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
        return "***".to_owned();
    };
    mac.update(value);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MaskingKey {
        MaskingKey::new("k3y").unwrap()
    }

    #[test]
    fn redact_hides_everything() {
        assert_eq!(
            mask_text(Strategy::Redact, "123-45-6789", None)
                .unwrap()
                .unwrap(),
            "***"
        );
        assert_eq!(
            mask_text(Strategy::Redact, "", None).unwrap().unwrap(),
            "***"
        );
    }

    #[test]
    fn partial_keeps_the_last_four_characters() {
        assert_eq!(partial("123-45-6789"), "*******6789");
        assert_eq!(partial("alice@example.com"), "*************.com");
        assert_eq!(partial("12345"), "*2345");
        assert_eq!(partial("1234"), "****");
        assert_eq!(partial("abc"), "***");
        assert_eq!(partial(""), "");
    }

    #[test]
    fn partial_counts_characters_not_bytes() {
        assert_eq!(partial("Zoë Åström"), "******tröm");
        assert_eq!(partial("日本語テキスト"), "***テキスト");
        assert_eq!(partial("éé"), "**");
        assert_eq!(partial("👩‍💻abcd"), "***abcd");
    }

    #[test]
    fn email_keeps_first_letter_and_domain() {
        assert_eq!(email("alice@example.com"), "a***@example.com");
        assert_eq!(email("Ünal@beispiel.de"), "Ü***@beispiel.de");
        assert_eq!(email("a@b.c"), "a***@b.c");
        assert_eq!(email("x@y@example.org"), "x***@example.org");
        assert_eq!(email("not an email"), "***");
        assert_eq!(email("@example.com"), "***");
        assert_eq!(email("alice@"), "***");
        assert_eq!(email(""), "***");
    }

    #[test]
    fn hash_is_keyed_hmac_sha256_in_lower_hex() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let jefe = MaskingKey::new("Jefe").unwrap();
        assert_eq!(
            hash(b"what do ya want for nothing?", &jefe),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let a = mask_text(Strategy::Hash, "123-45-6789", Some(&key()))
            .unwrap()
            .unwrap();
        let b = mask_text(Strategy::Hash, "123-45-6789", Some(&key()))
            .unwrap()
            .unwrap();
        assert_eq!(a, b, "deterministic, so joins and GROUP BY still work");
        let other = MaskingKey::new("other").unwrap();
        assert_ne!(a, hash(b"123-45-6789", &other), "depends on the key");
    }

    #[test]
    fn hash_without_a_key_is_an_error_not_a_plain_digest() {
        assert_eq!(mask_text(Strategy::Hash, "x", None), Err(MissingHashKey));
        assert!(MaskingKey::new("").is_none());
    }

    #[test]
    fn null_yields_none() {
        assert_eq!(mask_text(Strategy::Null, "anything", None).unwrap(), None);
    }
}
