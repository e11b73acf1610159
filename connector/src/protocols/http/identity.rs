//! Who an HTTP request is from: `X-Forwarded-User/Email/Groups` from a
//! trusted proxy, else `Authorization: Bearer <JWT>` from a configured
//! issuer, else `Authorization: Basic` for a static identity. Unknown users
//! and wrong passwords get the same 401.

use std::net::IpAddr;

use base64::Engine;
use gate_config::http::Cidr;
use gate_policy::UserInfo;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use super::error::HttpError;
use crate::server::Gate;

/// The forwarded identity headers, honoured only from trusted proxies.
pub const FORWARDED_USER: &str = "x-forwarded-user";
pub const FORWARDED_EMAIL: &str = "x-forwarded-email";
pub const FORWARDED_GROUPS: &str = "x-forwarded-groups";

/// Whether `peer` is one of `trusted_proxies`.
pub fn is_trusted(proxies: &[Cidr], peer: IpAddr) -> bool {
    proxies.iter().any(|range| range.contains(peer))
}

/// The user behind a request from `peer` and, for a bearer token, its
/// expiry (seconds since the epoch); or 401.
pub fn authenticate(
    gate: &Gate,
    proxies: &[Cidr],
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<(UserInfo, Option<u64>), HttpError> {
    if is_trusted(proxies, peer)
        && let Some(user) = forwarded_user(headers)
    {
        return Ok((user, None));
    }
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(HttpError::Unauthorized);
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return crate::auth::token_user_expiring(gate, credentials).map_err(|reason| {
            tracing::info!(%peer, %reason, "HTTP bearer token refused");
            HttpError::Unauthorized
        });
    }
    if scheme.eq_ignore_ascii_case("basic") {
        return basic_user(gate, credentials)
            .map(|user| (user, None))
            .ok_or_else(|| {
                tracing::info!(%peer, "HTTP basic login refused");
                HttpError::Unauthorized
            });
    }
    Err(HttpError::Unauthorized)
}

/// A static identity that proved its password with HTTP Basic.
fn basic_user(gate: &Gate, credentials: &str) -> Option<UserInfo> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    // Compare digests, so the time taken says nothing about the secret; an
    // unknown user is compared against a decoy and fails the same way.
    let expected = gate
        .identities
        .get(name)
        .map(|identity| identity.secret.expose().to_owned());
    let known = expected.is_some();
    let expected = Sha256::digest(expected.unwrap_or_default().as_bytes());
    let given = Sha256::digest(password.as_bytes());
    let same = expected
        .iter()
        .zip(given.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0;
    (known && same).then(|| crate::auth::static_user(gate, name))
}

/// The user a trusted proxy vouches for, when it names one.
fn forwarded_user(headers: &HeaderMap) -> Option<UserInfo> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let user = text(FORWARDED_USER);
    let email = text(FORWARDED_EMAIL);
    if user.is_none() && email.is_none() {
        return None;
    }
    let groups = headers
        .get_all(FORWARDED_GROUPS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    Some(UserInfo {
        sub: user.clone(),
        name: user.or_else(|| email.clone()),
        email,
        groups,
        kind: Some("user".into()),
        issuer: Some("trusted-proxy".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_groups_are_split_and_trimmed() {
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED_USER, "alice".parse().unwrap());
        headers.insert(FORWARDED_GROUPS, "sre, admins".parse().unwrap());
        headers.append(FORWARDED_GROUPS, "oncall".parse().unwrap());
        let user = forwarded_user(&headers).unwrap();
        assert_eq!(user.name.as_deref(), Some("alice"));
        assert_eq!(user.groups, ["sre", "admins", "oncall"]);
        assert!(forwarded_user(&HeaderMap::new()).is_none());
    }

    #[test]
    fn trust_is_by_range() {
        let proxies = [Cidr::parse("10.0.0.0/8").unwrap()];
        assert!(is_trusted(&proxies, "10.1.2.3".parse().unwrap()));
        assert!(!is_trusted(&proxies, "127.0.0.1".parse().unwrap()));
        assert!(!is_trusted(&[], "10.1.2.3".parse().unwrap()));
    }
}
