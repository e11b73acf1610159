//! Who a client is, for every protocol: static identities (a protocol-neutral
//! secret from which each protocol derives its verifier, SCRAM for PostgreSQL
//! and MongoDB) and bearer tokens (JWTs from trusted issuers).

pub mod identity;
pub mod scram;

use gate_policy::UserInfo;

use crate::server::Gate;

/// The user behind a static identity that has proven its secret.
pub fn static_user(gate: &Gate, name: &str) -> UserInfo {
    let groups = gate
        .identities
        .get(name)
        .map(|i| i.groups.clone())
        .unwrap_or_default();
    UserInfo {
        name: Some(name.to_owned()),
        groups,
        kind: Some("user".into()),
        ..Default::default()
    }
}

/// Sidecar mode: the workload, when a loopback client logs in as neither a static identity nor
/// [`crate::sidecar::TOKEN_USER`] (which presents a token in the password field instead).
pub fn workload_user(gate: &Gate, user: &str, peer: std::net::SocketAddr) -> Option<UserInfo> {
    let workload = gate.workload.as_ref()?;
    let presents_credentials =
        user == crate::sidecar::TOKEN_USER || gate.identities.get(user).is_some();
    (peer.ip().is_loopback() && !presents_credentials).then(|| workload.clone())
}

/// Whether a login as `user` is by token: JWT issuers are configured and no
/// static identity has that name.
pub fn uses_token(gate: &Gate, user: &str) -> bool {
    gate.jwt.is_some() && gate.identities.get(user).is_none()
}

/// The user a verified token names (`name`, else `sub`, else `email`), or
/// why the token was refused (for Gate's log; clients are told only that the
/// login failed).
pub fn token_user(gate: &Gate, token: &str) -> Result<UserInfo, String> {
    token_user_expiring(gate, token).map(|(user, _)| user)
}

/// [`token_user`], with the token's expiry (seconds since the epoch).
pub fn token_user_expiring(gate: &Gate, token: &str) -> Result<(UserInfo, Option<u64>), String> {
    let jwt = gate
        .jwt
        .as_ref()
        .ok_or_else(|| "no token issuers are configured (auth.jwt)".to_owned())?;
    let claims = jwt.verify(token)?;
    let name = claims
        .name
        .clone()
        .or_else(|| claims.sub.clone())
        .or_else(|| claims.email.clone());
    let user = UserInfo {
        sub: claims.sub,
        name,
        email: claims.email,
        groups: claims.groups,
        kind: Some("user".into()),
        issuer: claims.iss,
    };
    Ok((user, claims.exp))
}
