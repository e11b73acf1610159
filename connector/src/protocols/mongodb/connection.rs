//! One MongoDB client connection: Gate answers the handshake (`hello`,
//! `isMaster`, also as OP_QUERY) and the login (`saslStart`,
//! `saslContinue`, `speculativeAuthenticate`) itself; everything else
//! before login is refused with code 13. Once the client is known it is
//! routed to a resource, admitted by the session layer, given a pooled
//! upstream connection, and its commands go to [`super::relay`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bson::doc;
use bytes::BytesMut;
use gate_config::connector::{Protocol, ResourceConfig};
use gate_policy::{ConnectionInfo, UserInfo};
use tokio::io::AsyncWriteExt;

use super::auth::Login;
use super::codec::{opcode, peek_request};
use super::error::{MongoError, code, error_doc};
use super::hello::{self, Await};
use super::monitor::{self, Held};
use super::pool::{Lease, Pool};
use super::relay::Relay;
use super::request::Request;
use super::wire::{ReadError, answer_to, read_frame, send_answer};
use crate::server::Gate;
use crate::session::{self, Admission, Session, outcome};
use crate::stream::ClientStream;

/// How long a connection that has not logged in may stay silent.
const UNAUTHENTICATED_IDLE: Duration = Duration::from_secs(300);

/// Connection ids Gate reports in `hello`.
static CONNECTION_IDS: AtomicI64 = AtomicI64::new(1);

/// A logged-in client with its upstream connection.
struct Established<'g> {
    session: Session<'g>,
    lease: Lease,
    pool: Arc<Pool>,
}

/// Serve one client connection to completion. `first` holds the bytes read
/// while detecting the protocol; `dedicated` names the resource whose own
/// port the client dialled (`None` on the shared listener).
pub async fn handle_client(
    mut client: ClientStream,
    peer: SocketAddr,
    gate: Arc<Gate>,
    first: BytesMut,
    dedicated: Option<String>,
) {
    let gate: &Gate = &gate;
    let mut buf = first;
    let connection_id = CONNECTION_IDS.fetch_add(1, Ordering::Relaxed);
    let mut login = Login::default();
    let mut established: Option<Established<'_>> = None;
    let result: Result<(), MongoError> = loop {
        let read = match &established {
            Some(e) => tokio::select! {
                read = read_frame(&mut client, &mut buf) => read,
                reason = e.session.grant_ended() => break Err(MongoError::GrantEnded(reason)),
            },
            // Unauthenticated connections (drivers' monitors) send `hello`
            // every few seconds; one silent this long is let go.
            None => {
                match tokio::time::timeout(UNAUTHENTICATED_IDLE, read_frame(&mut client, &mut buf))
                    .await
                {
                    Ok(read) => read,
                    Err(_) => {
                        break Err(MongoError::Timeout(
                            "next command of an unauthenticated client",
                        ));
                    }
                }
            }
        };
        let frame = match read {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ok(()),
            Err(ReadError::Io(e)) => break Err(e.into()),
            Err(ReadError::Codec(e)) => {
                let error = MongoError::ClientProtocol(e);
                if let (Some((id, op)), Some(doc)) = (peek_request(&buf), error.to_doc()) {
                    let mut out = BytesMut::new();
                    answer_to(&mut out, id, op == opcode::QUERY, doc);
                    let _ = client.write_all(&out).await;
                }
                break Err(error);
            }
        };
        let header = frame.header;
        let request = match Request::parse(frame.clone()) {
            Ok(request) => request,
            Err(e) => {
                let error = MongoError::ClientProtocol(e);
                if let Some(doc) = error.to_doc() {
                    let _ = send_answer(&mut client, &frame, doc).await;
                }
                tracing::debug!(protocol = "mongodb", %peer, request = header.request_id, "unreadable message");
                break Err(error);
            }
        };
        let started = Instant::now();
        let answer = if hello::is_hello(&request.name) {
            let upstream_wire = match &established {
                Some(e) => Some(e.lease.conn.max_wire),
                None => {
                    gate.protocols
                        .mongodb
                        .upstream_wire(gate, dedicated.as_deref())
                        .await
                }
            };
            let speculative = match (
                &established,
                request.body.get_document("speculativeAuthenticate"),
            ) {
                (None, Ok(start)) => {
                    let mut start = start.clone();
                    // Drivers name the auth database `db` in the speculative document.
                    let db = start
                        .get_str("db")
                        .or_else(|_| request.body.get_str("$db"))
                        .unwrap_or("admin")
                        .to_owned();
                    start.insert("$db", db);
                    login
                        .start(gate, &start, client.is_tls(), peer)
                        .ok()
                        .map(|(reply, _)| reply)
                }
                _ => None,
            };
            let reply = hello::reply(
                &request.body,
                &request.name,
                upstream_wire,
                connection_id,
                speculative,
            );
            match hello::await_time(&request.body) {
                Err(reason) => Some(error_doc(code::BAD_VALUE, reason)),
                // A monitor's awaitable hello (nothing pipelined behind it).
                Ok(Await::After(period))
                    if !request.legacy && !request.more_to_come && buf.is_empty() =>
                {
                    let hold = monitor::hold(&mut client, &mut buf, &request, period, reply);
                    let held = match &established {
                        // A grant that ends while a hello is held still ends the session.
                        Some(e) => tokio::select! {
                            held = hold => held,
                            reason = e.session.grant_ended() => break Err(MongoError::GrantEnded(reason)),
                        },
                        None => hold.await,
                    };
                    match held {
                        Ok(Held::Closed) => break Ok(()),
                        Ok(Held::Answered | Held::Interrupted) => None,
                        Err(e) => break Err(e.into()),
                    }
                }
                Ok(_) => Some(reply),
            }
        } else if request.legacy {
            Some(error_doc(
                code::PROTOCOL_ERROR,
                "OP_QUERY is only supported for hello/isMaster; use OP_MSG",
            ))
        } else if established.is_some() && is_login(&request.name) {
            // The upstream connection is Gate's, logged in as the resource's user.
            Some(error_doc(
                code::UNAUTHORIZED,
                format!(
                    "{} is not allowed once logged in through Gate; reconnect to log in as another user",
                    request.name
                ),
            ))
        } else if let Some(e) = established.as_mut() {
            let mut relay = Relay {
                session: &e.session,
                default_db: e.session.resource.database.clone(),
            };
            let done = relay
                .command(&request, &mut client, &mut e.lease.conn)
                .await;
            e.session.record_duration(started);
            e.session.flush();
            match done {
                Ok(()) => None,
                Err(error) => break Err(error),
            }
        } else {
            let step = match request.name.as_str() {
                "saslStart" => Some(login.start(gate, &request.body, client.is_tls(), peer)),
                "saslContinue" => Some(login.next(gate, &request.body)),
                "ping" => Some(Ok((doc! {"ok": 1.0}, None))),
                _ => None,
            };
            match step {
                None => Some(error_doc(
                    code::UNAUTHORIZED,
                    format!("command {} requires authentication", request.name),
                )),
                Some(Err(error)) => {
                    tracing::info!(protocol = "mongodb", %peer, %error, "login refused");
                    outcome::count(gate, Protocol::Mongodb.as_str(), "-", error.outcome());
                    error.to_doc()
                }
                Some(Ok((reply, None))) => Some(reply),
                Some(Ok((reply, Some(user)))) => {
                    match establish(gate, &client, peer, dedicated.as_deref(), &login, user).await {
                        Ok(e) => {
                            established = Some(e);
                            Some(reply)
                        }
                        Err(error) => {
                            if let Some(doc) = error.to_doc() {
                                let _ = send_answer(&mut client, &request.frame, doc).await;
                            }
                            break Err(error);
                        }
                    }
                }
            }
        };
        if let Some(doc) = answer
            && !request.more_to_come
            && let Err(e) = send_answer(&mut client, &request.frame, doc).await
        {
            break Err(e.into());
        }
    };
    finish(gate, peer, &mut client, established, result).await;
}

/// Commands that log in or out (never sent upstream: its login is Gate's).
fn is_login(name: &str) -> bool {
    matches!(
        name,
        "saslStart" | "saslContinue" | "authenticate" | "logout" | "copydbsaslstart"
    )
}

/// End the session: audit a grant that ended, return the upstream connection, log.
async fn finish(
    gate: &Gate,
    peer: SocketAddr,
    client: &mut ClientStream,
    established: Option<Established<'_>>,
    result: Result<(), MongoError>,
) {
    let Some(Established {
        session,
        lease,
        pool,
    }) = established
    else {
        if let Err(error) = &result {
            outcome::count(gate, Protocol::Mongodb.as_str(), "-", error.outcome());
            if !matches!(error, MongoError::Io(_)) {
                tracing::info!(protocol = "mongodb", %peer, %error, "session did not start");
            }
        }
        return;
    };
    if let Err(MongoError::GrantEnded(reason)) = &result {
        session.audit_grant_ended(reason);
        let _ = tokio::io::AsyncWriteExt::shutdown(client).await;
    }
    session.end();
    pool.release(lease, result.is_ok()).await;
    if let Err(error) = result {
        tracing::info!(
            protocol = "mongodb",
            client = %session.parties.client,
            identity = session.identity(),
            resource = %session.resource.name,
            %error,
            "session ended"
        );
    }
}

/// Route, admit and connect upstream for a client that just proved who it is.
async fn establish<'g>(
    gate: &'g Gate,
    client: &ClientStream,
    peer: SocketAddr,
    dedicated: Option<&str>,
    login: &Login,
    user: UserInfo,
) -> Result<Established<'g>, MongoError> {
    let resource = route(&gate.config.resources, dedicated, login.auth_db.as_deref())?;
    let db_user = user.name.clone();
    let session = session::admit(
        gate,
        Admission {
            protocol: Protocol::Mongodb,
            resource,
            user,
            peer,
            connection: ConnectionInfo {
                tls: client.is_tls(),
                database: login.auth_db.clone(),
                db_user,
                ..Default::default()
            },
            traceparent: None,
            single_request: false,
        },
    )?;
    let pool = gate.protocols.mongodb.pools.get(resource, &gate.metrics);
    let lease = pool.acquire().await?;
    gate.protocols
        .mongodb
        .remember_wire(&resource.name, lease.conn.max_wire);
    session.established();
    Ok(Established {
        session,
        lease,
        pool,
    })
}

/// The MongoDB resource for a client: the one whose port it dialled; on
/// the shared listener the one named by (or whose `database` is) the
/// database it authenticated against, else the only MongoDB resource.
fn route<'a>(
    resources: &'a [ResourceConfig],
    dedicated: Option<&str>,
    auth_db: Option<&str>,
) -> Result<&'a ResourceConfig, MongoError> {
    let mongo = || resources.iter().filter(|r| r.protocol == Protocol::Mongodb);
    let wanted = auth_db.unwrap_or_default();
    let found = match dedicated {
        Some(name) => mongo().find(|r| r.name == name),
        None => mongo()
            .find(|r| r.name == wanted)
            .or_else(|| mongo().find(|r| r.database.as_deref() == Some(wanted)))
            .or_else(|| {
                let mut all = mongo();
                match (all.next(), all.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }),
    };
    found.ok_or_else(|| MongoError::UnknownResource(wanted.to_owned()))
}
