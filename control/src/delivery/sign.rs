//! Webhook signatures: HMAC-SHA256 over `timestamp + "." + body` with the webhook's secret,
//! hex encoded, sent as `X-Gate-Signature: v1=<hex>` beside `X-Gate-Timestamp` (Unix seconds)
//! and `X-Gate-Delivery` (the delivery id, the same on every retry: receivers dedupe by it).
//! Slack's request signature (`v0=`, `v0:timestamp:body`) is checked here too.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::util::hex;

pub const TIMESTAMP_HEADER: &str = "x-gate-timestamp";
pub const SIGNATURE_HEADER: &str = "x-gate-signature";
pub const DELIVERY_HEADER: &str = "x-gate-delivery";
pub const EVENT_HEADER: &str = "x-gate-event";

/// How far a Slack request's timestamp may be from now.
pub const SLACK_TOLERANCE_SECONDS: i64 = 300;

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    // HMAC takes keys of any length; the error branch cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for part in parts {
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes())
}

/// The `X-Gate-Signature` value for `body` sent at `timestamp`.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    format!(
        "v1={}",
        hmac_hex(secret.as_bytes(), &[ts.as_bytes(), b".", body])
    )
}

/// Slack's `X-Slack-Signature` for `body` at `timestamp`: `v0=` HMAC of `v0:{timestamp}:{body}`.
pub fn slack_signature(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hmac_hex(
            signing_secret.as_bytes(),
            &[b"v0:", timestamp.as_bytes(), b":", body]
        )
    )
}

/// Why a Slack request's signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("x-slack-request-timestamp is not a Unix time")]
    BadTimestamp,
    #[error("x-slack-request-timestamp is more than 5 minutes from now")]
    Expired,
    #[error("x-slack-signature does not match")]
    Mismatch,
}

/// Check Slack's signature headers against `body` at `now` (Unix seconds).
pub fn verify_slack(
    signing_secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing("x-slack-request-timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("x-slack-signature"))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - ts).abs() > SLACK_TOLERANCE_SECONDS {
        return Err(SignatureError::Expired);
    }
    let expected = slack_signature(signing_secret, timestamp, body);
    if crate::auth::same_secret(&expected, signature.trim()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signature_is_hmac_of_timestamp_dot_body() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let sig = webhook_signature("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert!(sig.starts_with("v1=") && sig.len() == 67, "{sig}");
        assert_ne!(
            sig,
            webhook_signature("whsec_test", 1_700_000_001, br#"{"a":1}"#)
        );
    }

    #[test]
    fn slack_signatures_expire_and_must_match() {
        let body = b"payload=%7B%7D";
        let sig = slack_signature("s3cret", "1000", body);
        assert_eq!(
            verify_slack("s3cret", Some("1000"), Some(&sig), body, 1200),
            Ok(())
        );
        assert_eq!(
            verify_slack("s3cret", Some("1000"), Some(&sig), body, 1301),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify_slack("other", Some("1000"), Some(&sig), body, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_slack("s3cret", None, Some(&sig), body, 1000),
            Err(SignatureError::Missing("x-slack-request-timestamp"))
        );
    }
}
