//! Login: route the handshake to a resource, authenticate the client
//! (`caching_sha2_password`, fast path or full authentication
//! ([`super::full_auth`]), or `mysql_native_password` for static
//! identities, the same work and the same ERR 1045 for unknown users; a JWT
//! through `mysql_clear_password` for everyone else, TLS required off
//! loopback), admit it through the session layer, lease an upstream
//! connection and tell the client OK.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use gate_config::connector::{Protocol, ResourceConfig};
use gate_policy::{ConnectionInfo, UserInfo};
use tokio::io::AsyncWriteExt;

use super::codec::put_packet;
use super::connection::{Greeted, LOGIN_TIMEOUT};
use super::error::MyError;
use super::full_auth;
use super::handshake::{AuthSwitch, caps};
use super::packets::{OK, OkPacket};
use super::pool::{Lease, Pool};
use super::scramble::{self, CACHING_SHA2, CLEAR, FAST_AUTH_OK, FULL_AUTH, NATIVE};
use super::upstream::LoginParams;
use super::wire::expect_packet;
use crate::auth::scram::constant_time_eq;
use crate::server::Gate;
use crate::session::{self, Admission, Session};
use crate::stream::ClientStream;

/// A logged-in session with its upstream connection, ready to relay.
pub(super) struct Established<'g> {
    pub(super) session: Session<'g>,
    pub(super) lease: Lease,
    pub(super) pool: Arc<Pool>,
    /// The capabilities the client and Gate agreed on.
    pub(super) capabilities: u32,
    /// The MariaDB extended capabilities they agreed on.
    pub(super) mariadb: u32,
}

/// Route, authenticate, admit, connect upstream and tell the client OK.
/// `seq` is the sequence id of Gate's next packet (for an ERR on failure).
pub(super) async fn establish<'g>(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    peer: SocketAddr,
    gate: &'g Gate,
    dedicated: Option<&str>,
    greeted: Greeted,
    seq: &mut u8,
) -> Result<Established<'g>, MyError> {
    let Greeted {
        response,
        scramble,
        capabilities,
        mariadb,
        ..
    } = greeted;
    let resource = route(
        &gate.config.resources,
        dedicated,
        response.database.as_deref(),
    )?;
    let who = tokio::time::timeout(
        LOGIN_TIMEOUT,
        authenticate(client, buf, gate, &response, &scramble, peer, seq),
    )
    .await
    .map_err(|_| MyError::Timeout("password"))??;
    let session = session::admit(
        gate,
        Admission {
            protocol: Protocol::Mysql,
            resource,
            user: who,
            peer,
            connection: ConnectionInfo {
                tls: client.is_tls(),
                application_name: response
                    .attributes
                    .iter()
                    .find(|(k, _)| k == "program_name")
                    .map(|(_, v)| v.clone()),
                database: response.database.clone(),
                db_user: Some(response.user.clone()),
                ..Default::default()
            },
            traceparent: None,
            single_request: false,
        },
    )?;
    // The schema: the one the client names, unless it names the resource itself.
    let database = match response.database.as_deref() {
        None | Some("") => resource.database.clone(),
        Some(name) if name == resource.name => resource.database.clone(),
        Some(name) => Some(name.to_owned()),
    };
    let params = LoginParams {
        user: resource
            .username
            .clone()
            .unwrap_or_else(|| response.user.clone()),
        database,
        shaping: capabilities & caps::SHAPING,
        charset: response.charset,
        mariadb,
    };
    let pool = gate.protocols.mysql.pools.get(resource, &gate.metrics);
    let lease = pool.acquire(params).await?;
    gate.protocols.mysql.remember(
        &resource.name,
        &super::UpstreamHello {
            version: lease.conn.server_version.clone(),
            mariadb_caps: lease.conn.mariadb_caps,
        },
    );
    let mut payload = BytesMut::new();
    ok_payload(&mut payload, lease.conn.status, capabilities);
    let mut out = BytesMut::new();
    put_packet(&mut out, *seq, &payload);
    if let Err(e) = client.write_all(&out).await {
        pool.release(lease, false).await;
        return Err(e.into());
    }
    session.established();
    Ok(Established {
        session,
        lease,
        pool,
        capabilities,
        mariadb,
    })
}

/// An OK packet with `status` (and an empty info string under SESSION_TRACK).
pub(super) fn ok_payload(out: &mut BytesMut, status: u16, capabilities: u32) {
    OkPacket {
        affected_rows: 0,
        status,
        warnings: 0,
    }
    .encode(OK, out);
    if capabilities & caps::SESSION_TRACK != 0 {
        out.put_u8(0);
    }
}

/// The MySQL resource for a client: the one whose port it dialled, else by
/// the database it names (resource name, then database).
fn route<'a>(
    resources: &'a [ResourceConfig],
    dedicated: Option<&str>,
    database: Option<&str>,
) -> Result<&'a ResourceConfig, MyError> {
    let mysql = || resources.iter().filter(|r| r.protocol == Protocol::Mysql);
    let database = database.unwrap_or_default();
    let found = match dedicated {
        Some(name) => mysql().find(|r| r.name == name),
        None => mysql()
            .find(|r| r.name == database)
            .or_else(|| mysql().find(|r| r.database.as_deref() == Some(database))),
    };
    found.ok_or_else(|| MyError::UnknownDatabase(database.to_owned()))
}

/// Send one auth packet and read the client's answer; advances `seq`.
pub(super) async fn exchange(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    seq: &mut u8,
    payload: &[u8],
) -> Result<Vec<u8>, MyError> {
    let mut out = BytesMut::new();
    put_packet(&mut out, *seq, payload);
    client.write_all(&out).await?;
    let answer = expect_packet(client, buf).await?;
    *seq = answer.last_seq.wrapping_add(1);
    Ok(answer.payload.to_vec())
}

/// Who the client is: a static identity proving its password with the
/// plugin it chose (switched to `mysql_native_password` for any other), or,
/// for any other user name when JWT issuers are configured, a token sent
/// through `mysql_clear_password` (TLS required unless on loopback).
async fn authenticate(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    gate: &Gate,
    response: &super::handshake::HandshakeResponse,
    scramble: &[u8],
    peer: SocketAddr,
    seq: &mut u8,
) -> Result<UserInfo, MyError> {
    let user = response.user.as_str();
    let failed = |proof: &[u8]| MyError::AuthFailed {
        user: user.to_owned(),
        host: peer.ip().to_string(),
        using: if proof.is_empty() { "NO" } else { "YES" },
    };
    let plugin = response.auth_plugin.as_deref().unwrap_or(NATIVE);
    if crate::auth::uses_token(gate, user) {
        if !client.is_tls() && !peer.ip().is_loopback() {
            return Err(MyError::TlsRequired);
        }
        let token = if plugin == CLEAR {
            response.auth_response.clone()
        } else if plugin == CACHING_SHA2 && client.is_tls() {
            // Full authentication over TLS: the client sends the token as its password
            // (MySQL 8 clients do, without enabling the cleartext plugin).
            exchange(client, buf, seq, &[0x01, FULL_AUTH]).await?
        } else {
            let mut switch = BytesMut::new();
            AuthSwitch {
                plugin: CLEAR.to_owned(),
                data: Vec::new(),
            }
            .encode(&mut switch);
            exchange(client, buf, seq, &switch).await?
        };
        let token = token.strip_suffix(&[0]).unwrap_or(&token);
        let token = std::str::from_utf8(token).map_err(|_| failed(token))?;
        return crate::auth::token_user(gate, token).map_err(|reason| {
            tracing::info!(protocol = "mysql", user, %reason, "token login refused");
            failed(token.as_bytes())
        });
    }
    let (plugin, proof) = match plugin {
        // (An empty proof with a known plugin asks to be switched, as clients
        // that chose another default plugin do.)
        NATIVE | CACHING_SHA2 if !response.auth_response.is_empty() => {
            (plugin, response.auth_response.clone())
        }
        _ => {
            let mut switch = BytesMut::new();
            AuthSwitch {
                plugin: NATIVE.to_owned(),
                data: scramble.to_vec(),
            }
            .encode(&mut switch);
            (NATIVE, exchange(client, buf, seq, &switch).await?)
        }
    };
    // Unknown users are checked against a secret no password matches: the same work.
    let identity = gate.identities.get(user);
    let decoy = crate::random::bytes::<16>();
    let secret = identity.map_or(&decoy[..], |i| i.secret.expose().as_bytes());
    let mut proven = scramble::verify(plugin, secret, scramble, &proof);
    if plugin == CACHING_SHA2 {
        let shared = &gate.protocols.mysql;
        if proven && shared.fast_auth.contains(user, secret) {
            let mut out = BytesMut::new();
            *seq = put_packet(&mut out, *seq, &[0x01, FAST_AUTH_OK]);
            client.write_all(&out).await?;
        } else {
            // Not cached (or a proof that does not verify): full authentication, as MySQL 8 does.
            let password =
                full_auth::password(client, buf, seq, &shared.client_keys, scramble, peer).await?;
            proven = !password.is_empty() && constant_time_eq(&password, secret);
            if proven && identity.is_some() {
                shared.fast_auth.insert(user, secret);
            }
        }
    }
    match identity {
        Some(identity) if proven => Ok(crate::auth::static_user(gate, &identity.name)),
        _ => Err(failed(&proof)),
    }
}
