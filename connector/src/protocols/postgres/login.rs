//! Login: route the StartupMessage to a resource, authenticate the client
//! (SCRAM-SHA-256 for static identities, with a decoy exchange for unknown
//! users; a JWT in the password field for everyone else), admit it through
//! the session layer, lease an upstream connection and greet the client.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use gate_config::connector::{Protocol, ResourceConfig};
use gate_policy::{ConnectionInfo, UserInfo};
use tokio::io::AsyncWriteExt;

use super::Shared;
use super::codec::{self, Frame, Reader, Startup, auth, frontend};
use super::connection::STARTUP_TIMEOUT;
use super::error::PgError;
use super::pool::{Key, Lease, Pool};
use super::wire::read_frame;
use crate::auth::scram::ServerExchange;
use crate::random;
use crate::server::Gate;
use crate::session::{self, Admission, Session};
use crate::stream::ClientStream;

/// Startup parameters Gate does not pass upstream: it chooses the upstream
/// user and database itself, and replication sessions are not proxied. Every
/// other parameter is a setting the user could `SET` anyway (`TimeZone`,
/// `application_name`, `options`, …).
const WITHHELD_PARAMS: &[&str] = &["user", "database", "replication"];

/// A logged-in session with its upstream connection, ready to relay.
pub(super) struct Established<'g> {
    pub(super) session: Session<'g>,
    pub(super) lease: Lease,
    pub(super) pool: Arc<Pool>,
    /// The key Gate gave the client for CancelRequests.
    pub(super) cancel_key: (u32, u32),
    pub(super) upstream_user: String,
    pub(super) upstream_db: String,
    /// Which pooled connections can serve this session.
    pub(super) key: Key,
}

/// Route, authenticate, admit, connect upstream and greet the client.
pub(super) async fn establish<'g>(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    peer: SocketAddr,
    gate: &'g Gate,
    shared: &Shared,
    params: Vec<(String, String)>,
) -> Result<Established<'g>, PgError> {
    let user = Startup::param(&params, "user")
        .unwrap_or_default()
        .to_owned();
    let database = Startup::param(&params, "database")
        .unwrap_or(&user)
        .to_owned();
    let resource = route(&gate.config.resources, &database)
        .ok_or_else(|| PgError::UnknownDatabase(database.clone()))?;

    let who = tokio::time::timeout(
        STARTUP_TIMEOUT,
        authenticate(client, buf, gate, &user, peer),
    )
    .await
    .map_err(|_| PgError::Timeout("password"))??;
    let session = session::admit(
        gate,
        Admission {
            protocol: Protocol::Postgres,
            resource,
            user: who,
            peer,
            connection: ConnectionInfo {
                tls: client.is_tls(),
                application_name: Startup::param(&params, "application_name").map(str::to_owned),
                database: Some(database.clone()),
                db_user: Some(user.clone()),
                ..Default::default()
            },
            traceparent: None,
            single_request: false,
        },
    )?;

    let upstream_user = resource.username.clone().unwrap_or_else(|| user.clone());
    let upstream_db = resource
        .database
        .clone()
        .unwrap_or_else(|| database.clone());
    let forwarded: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| !WITHHELD_PARAMS.iter().any(|w| w.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let pool = shared.pools.get(resource, &gate.metrics);
    let key = Key::new(&upstream_user, &upstream_db, &forwarded);
    let lease = pool.acquire(&key).await?;
    let upstream = &lease.conn;

    let cancel_key = (random::u32() & 0x7fff_ffff, random::u32());
    shared.cancels.register(
        cancel_key,
        (upstream.addr.clone(), upstream.pid, upstream.secret),
    );
    let mut out = BytesMut::new();
    codec::put_auth(&mut out, auth::OK, &[]);
    for parameter in &upstream.parameters {
        out.extend_from_slice(&parameter.raw);
    }
    codec::put_backend_key(&mut out, cancel_key.0, cancel_key.1);
    codec::put_ready(&mut out, b'I');
    if let Err(e) = client.write_all(&out).await {
        shared.cancels.remove(cancel_key);
        pool.release(lease, false).await;
        return Err(e.into());
    }
    session.established();
    Ok(Established {
        session,
        lease,
        pool,
        cancel_key,
        upstream_user,
        upstream_db,
        key,
    })
}

/// The PostgreSQL resource for a startup `database`: by name, else by database.
fn route<'a>(resources: &'a [ResourceConfig], database: &str) -> Option<&'a ResourceConfig> {
    let postgres = || {
        resources
            .iter()
            .filter(|r| r.protocol == Protocol::Postgres)
    };
    postgres()
        .find(|r| r.name == database)
        .or_else(|| postgres().find(|r| r.database.as_deref() == Some(database)))
}

async fn expect_password_frame(
    client: &mut ClientStream,
    buf: &mut BytesMut,
) -> Result<Frame, PgError> {
    match read_frame(client, buf).await? {
        Some(frame) if frame.tag == frontend::PASSWORD => Ok(frame),
        Some(frame) => Err(PgError::ClientUnexpected(format!(
            "expected a password message, got {:?}",
            char::from(frame.tag)
        ))),
        None => Err(PgError::Io(std::io::ErrorKind::UnexpectedEof.into())),
    }
}

/// Who the client is: in sidecar mode a loopback client is the workload unless it logs in as
/// a static identity or as `token`; else a static identity over SCRAM-SHA-256, or, for any
/// other user name when JWT issuers are configured, a token in the password
/// field (cleartext request, so TLS is required unless the client is on loopback).
async fn authenticate(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    gate: &Gate,
    user: &str,
    peer: SocketAddr,
) -> Result<UserInfo, PgError> {
    if let Some(workload) = crate::auth::workload_user(gate, user, peer) {
        return Ok(workload);
    }
    if !crate::auth::uses_token(gate, user) {
        let name = scram_login(client, buf, gate, user).await?;
        return Ok(crate::auth::static_user(gate, &name));
    }
    if !client.is_tls() && !peer.ip().is_loopback() {
        return Err(PgError::TlsRequired);
    }
    let mut out = BytesMut::new();
    codec::put_auth(&mut out, auth::CLEARTEXT, &[]);
    client.write_all(&out).await?;
    let frame = expect_password_frame(client, buf).await?;
    let token = Reader::new(frame.body()).cstr()?;
    crate::auth::token_user(gate, token).map_err(|reason| {
        tracing::info!(protocol = "postgres", user, %reason, "token login refused");
        PgError::AuthFailed(user.to_owned())
    })
}

/// SCRAM-SHA-256 against the static identities; returns the identity name.
async fn scram_login(
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
        .map(|i| i.scram_sha256.clone())
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
