//! Client authentication: SCRAM-SHA-256 for static identities (a decoy exchange for unknown
//! users), JWTs in the password field for everyone else.

use std::net::SocketAddr;

use bytes::BytesMut;
use gate_policy::UserInfo;
use tokio::io::AsyncWriteExt;

use super::codec::{self, Frame, Reader, auth};
use super::error::PgError;
use super::scram::ServerExchange;
use super::session::read_frame;
use crate::random;
use crate::server::Gate;
use crate::stream::ClientStream;

async fn expect_password_frame(
    client: &mut ClientStream,
    buf: &mut BytesMut,
) -> Result<Frame, PgError> {
    match read_frame(client, buf).await? {
        Some(frame) if frame.tag == b'p' => Ok(frame),
        Some(frame) => Err(PgError::ClientUnexpected(format!(
            "expected a password message, got {:?}",
            char::from(frame.tag)
        ))),
        None => Err(PgError::Io(std::io::ErrorKind::UnexpectedEof.into())),
    }
}

/// Who the client is: a static identity over SCRAM-SHA-256, or, for any
/// other user name when JWT issuers are configured, a token in the password
/// field (cleartext request, so TLS is required unless the client is on loopback).
pub(super) async fn authenticate(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    gate: &Gate,
    user: &str,
    peer: SocketAddr,
) -> Result<UserInfo, PgError> {
    let static_identity = gate.identities.get(user);
    let Some(jwt) = gate.jwt.as_ref().filter(|_| static_identity.is_none()) else {
        let name = login(client, buf, gate, user).await?;
        let groups = gate
            .identities
            .get(&name)
            .map(|i| i.groups.clone())
            .unwrap_or_default();
        return Ok(UserInfo {
            name: Some(name),
            groups,
            kind: Some("user".into()),
            ..Default::default()
        });
    };
    if !client.is_tls() && !peer.ip().is_loopback() {
        return Err(PgError::TlsRequired);
    }
    let mut out = BytesMut::new();
    codec::put_auth(&mut out, auth::CLEARTEXT, &[]);
    client.write_all(&out).await?;
    let frame = expect_password_frame(client, buf).await?;
    let token = Reader::new(frame.body()).cstr()?;
    let claims = jwt.verify(token).map_err(|reason| {
        eprintln!("gate-connector: JWT login as {user:?} refused: {reason}");
        PgError::AuthFailed(user.to_owned())
    })?;
    let name = claims
        .name
        .clone()
        .or_else(|| claims.sub.clone())
        .or_else(|| claims.email.clone());
    Ok(UserInfo {
        sub: claims.sub,
        name,
        email: claims.email,
        groups: claims.groups,
        kind: Some("user".into()),
        issuer: claims.iss,
    })
}

/// SCRAM-SHA-256 against the static identities; returns the identity name.
async fn login(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    gate: &Gate,
    user: &str,
) -> Result<String, PgError> {
    let failed = || PgError::AuthFailed(user.to_owned());
    let mut out = BytesMut::new();
    codec::put_auth(&mut out, auth::SASL, b"SCRAM-SHA-256\0\0");
    client.write_all(&out).await?;

    let initial = expect_password_frame(client, buf).await?;
    let mut r = Reader::new(initial.body());
    let mechanism = r.cstr()?;
    let len = r.i32()?;
    let data = r.bytes(usize::try_from(len).map_err(|_| failed())?)?;
    if mechanism != "SCRAM-SHA-256" {
        return Err(failed());
    }
    let identity = gate.identities.get(user);
    let verifier = identity
        .map(|i| i.verifier.clone())
        .unwrap_or_else(|| gate.identities.decoy(user));
    let client_first = std::str::from_utf8(data).map_err(|_| failed())?;
    let (exchange, server_first) =
        ServerExchange::start(client_first, &verifier, &random::nonce()).map_err(|_| failed())?;
    let mut out = BytesMut::new();
    codec::put_auth(&mut out, auth::SASL_CONTINUE, server_first.as_bytes());
    client.write_all(&out).await?;

    let response = expect_password_frame(client, buf).await?;
    let client_final = std::str::from_utf8(response.body()).map_err(|_| failed())?;
    let server_final = exchange
        .finish(client_final, &verifier)
        .map_err(|_| failed())?;
    let identity = identity.ok_or_else(failed)?;
    let mut out = BytesMut::new();
    codec::put_auth(&mut out, auth::SASL_FINAL, server_final.as_bytes());
    client.write_all(&out).await?;
    Ok(identity.name.clone())
}
