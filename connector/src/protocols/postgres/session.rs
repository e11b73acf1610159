//! One PostgreSQL client session: startup, routing, SCRAM login, session
//! policy, upstream login, then the statement loop in both directions.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use gate_config::connector::{Protocol, ResourceConfig};
use gate_policy::{ConnectionInfo, PolicyInput, ResourceInfo, SessionInput, Stage, TimeInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::{self, Frame, Startup, auth};
use super::error::PgError;
use super::login::authenticate;
use super::pool::{Lease, Pool};
use super::relay::Context;
use super::upstream::Upstream;
use crate::audit::{AuditEvent, Parties};
use crate::random;
use crate::server::Gate;
use crate::stream::{ClientStream, MaybeTls};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Startup parameters Gate does not pass upstream: it chooses the upstream
/// user and database itself, and replication sessions are not proxied. Every
/// other parameter is a setting the user could `SET` anyway (`TimeZone`,
/// `application_name`, `options`, …).
const WITHHELD_PARAMS: &[&str] = &["user", "database", "replication"];

/// Serve one client connection to completion.
pub async fn handle_client(tcp: TcpStream, peer: SocketAddr, gate: Arc<Gate>, first: BytesMut) {
    let _ = tcp.set_nodelay(true);
    // What the listener read to detect the protocol is the start of the startup packet.
    let mut buf = first;
    let negotiated = tokio::time::timeout(
        STARTUP_TIMEOUT,
        negotiate(MaybeTls::Plain(tcp), &mut buf, &gate),
    )
    .await;
    let (mut client, params) = match negotiated {
        Ok(Ok(Some(started))) => started,
        Ok(Ok(None)) => return,
        Ok(Err(error)) => {
            report(&gate, peer, &error);
            return;
        }
        Err(_) => {
            report(&gate, peer, &PgError::Timeout("startup message"));
            return;
        }
    };
    match setup(&mut client, &mut buf, peer, &gate, params).await {
        Ok(Some((session, resource))) => {
            // The resource exists: setup just routed to it.
            if let Some(resource) = gate.config.resources.iter().find(|r| r.name == resource) {
                gate.metrics.add(
                    "gate_sessions_total",
                    &[
                        ("protocol", "postgres"),
                        ("resource", &resource.name),
                        ("outcome", "ok"),
                    ],
                    1.0,
                );
                session.run(client, buf, &gate, resource).await;
            }
        }
        Ok(None) => {}
        Err(error) => {
            if let Some(fields) = error.to_fatal() {
                let mut out = BytesMut::new();
                codec::put_error(&mut out, &fields);
                let _ = client.write_all(&out).await;
            }
            report(&gate, peer, &error);
        }
    }
}

/// Count and log a session that did not get going.
fn report(gate: &Gate, peer: SocketAddr, error: &PgError) {
    gate.metrics.add(
        "gate_sessions_total",
        &[
            ("protocol", "postgres"),
            ("resource", "-"),
            ("outcome", error.outcome()),
        ],
        1.0,
    );
    // A client that connects and leaves without a word (a port probe) is not news.
    let probe = matches!(error, PgError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof);
    if !probe {
        eprintln!("gate-connector: postgres session from {peer} ended: {error}");
    }
}

/// The startup phase before login: answer SSLRequest (`S` and a TLS
/// handshake when TLS is configured, else `N`) and GSSENCRequest (`N`),
/// route a CancelRequest, and return the StartupMessage's parameters.
async fn negotiate(
    mut client: ClientStream,
    buf: &mut BytesMut,
    gate: &Gate,
) -> Result<Option<(ClientStream, Vec<(String, String)>)>, PgError> {
    loop {
        let packet = match read_startup(&mut client, buf).await {
            Ok(packet) => packet,
            Err(error) => {
                if let Some(fields) = error.to_fatal() {
                    let mut out = BytesMut::new();
                    codec::put_error(&mut out, &fields);
                    let _ = client.write_all(&out).await;
                }
                return Err(error);
            }
        };
        match packet {
            Startup::Ssl => {
                let acceptor = match (&client, gate.tls.as_ref()) {
                    (MaybeTls::Plain(_), Some(files)) => match files.acceptor() {
                        Ok(acceptor) => Some(acceptor),
                        Err(e) => {
                            eprintln!("gate-connector: TLS unavailable, declining SSLRequest: {e}");
                            None
                        }
                    },
                    _ => None,
                };
                let Some(acceptor) = acceptor else {
                    client.write_all(b"N").await?;
                    continue;
                };
                // Bytes sent before the handshake would be read as if they came over TLS.
                if !buf.is_empty() {
                    return Err(PgError::ClientUnexpected(
                        "data sent after SSLRequest before the TLS handshake".into(),
                    ));
                }
                client.write_all(b"S").await?;
                let MaybeTls::Plain(tcp) = client else {
                    return Err(PgError::ClientUnexpected(
                        "SSLRequest on an encrypted connection".into(),
                    ));
                };
                client = MaybeTls::Tls(Box::new(acceptor.accept(tcp).await?));
            }
            Startup::GssEnc => client.write_all(b"N").await?,
            Startup::Cancel { pid, secret } => {
                gate.cancels.cancel(pid, secret).await;
                return Ok(None);
            }
            Startup::Message { params } => return Ok(Some((client, params))),
        }
    }
}

/// A logged-in session, ready to relay.
struct Session {
    lease: Lease,
    pool: Arc<Pool>,
    input: SessionInput,
    identity: String,
    client: String,
    parties: Parties,
    cancel_key: (u32, u32),
    upstream_user: String,
    upstream_db: String,
    /// The session holds an access grant and ends when it does.
    grant_bound: bool,
}

async fn read_startup<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
) -> Result<Startup, PgError> {
    loop {
        if let Some(startup) = codec::decode_startup(buf)? {
            return Ok(startup);
        }
        if client.read_buf(buf).await? == 0 {
            return Err(PgError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

pub(super) async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, PgError> {
    loop {
        if let Some(frame) = codec::decode_frame(buf)? {
            return Ok(Some(frame));
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn setup(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    peer: SocketAddr,
    gate: &Gate,
    params: Vec<(String, String)>,
) -> Result<Option<(Session, String)>, PgError> {
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
    let identity = who.name.clone().unwrap_or_default();
    let mut who = who;
    let managed = gate.live.managed();
    // Control-plane group membership adds to the token's groups.
    if let Some(groups) = managed.groups.get(&identity) {
        for group in groups {
            if !who.groups.contains(group) {
                who.groups.push(group.clone());
            }
        }
    }
    let mut labels = resource.labels.clone();
    if let Some(managed_resource) = managed.resources.get(&resource.name) {
        for (k, v) in &managed_resource.labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let grant = crate::grants::check(
        gate,
        &resource.name,
        resource.require_access_grant,
        &identity,
    )
    .map_err(PgError::GrantRequired)?;
    let application_name = Startup::param(&params, "application_name").map(str::to_owned);

    let session_input = SessionInput::new(&PolicyInput {
        resource: Some(ResourceInfo {
            name: resource.name.clone(),
            protocol: "postgres".into(),
            host: Some(resource.host.clone()),
            port: u16::try_from(resource.port).ok(),
            database: resource.database.clone(),
            labels,
        }),
        user: Some(who),
        grant: grant.as_ref().map(crate::grants::input),
        connection: Some(ConnectionInfo {
            client_ip: Some(peer.ip().to_string()),
            client_port: Some(peer.port()),
            tls: client.is_tls(),
            application_name,
            database: Some(database.clone()),
            db_user: Some(user.clone()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let client_addr = peer.to_string();
    let request = PolicyInput {
        time: Some(TimeInfo::now()),
        ..Default::default()
    };
    let verdict = Arc::new(gate.evaluate(
        "postgres",
        Stage::Session,
        &resource.name,
        &session_input.request(Stage::Session, &request),
    ));
    let parties = Parties {
        identity: identity.as_str().into(),
        resource: resource.name.as_str().into(),
        client: client_addr.as_str().into(),
    };
    gate.audit
        .emit(AuditEvent::new("session", &parties, None, verdict.clone()));
    if verdict.is_blocked() {
        return Err(PgError::SessionBlocked(
            verdict
                .reason
                .clone()
                .unwrap_or_else(|| "access denied by policy".into()),
        ));
    }

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
    let pool = gate.pools.get(resource, &gate.metrics);
    let lease = pool
        .acquire(&upstream_user, &upstream_db, &forwarded)
        .await?;
    let upstream = &lease.upstream;

    let cancel_key = (random::u32() & 0x7fff_ffff, random::u32());
    gate.cancels.register(
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
    client.write_all(&out).await?;
    let session = Session {
        lease,
        pool,
        input: session_input,
        identity,
        client: client_addr,
        parties,
        cancel_key,
        upstream_user,
        upstream_db,
        grant_bound: grant.is_some(),
    };
    Ok(Some((session, resource.name.clone())))
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

/// How the relay ended.
enum Ended {
    /// The client said goodbye (Terminate) or closed its socket.
    Client,
    /// The upstream closed its socket.
    Upstream,
}

impl Session {
    async fn run(
        self,
        mut client: ClientStream,
        client_buf: BytesMut,
        gate: &Arc<Gate>,
        resource: &ResourceConfig,
    ) {
        let Session {
            mut lease,
            pool,
            input,
            identity,
            client: client_addr,
            parties,
            cancel_key,
            upstream_user,
            upstream_db,
            grant_bound,
        } = self;
        let ctx = Context {
            gate,
            input: &input,
            resource,
            parties: &parties,
            catalog: gate.catalogs.get(&resource.name, &upstream_db),
            upstream_user: &upstream_user,
            upstream_db: &upstream_db,
            tracker: Mutex::default(),
            next_marker: AtomicU64::new(1),
            verdicts: Mutex::default(),
            deferred: Mutex::default(),
        };
        let result = {
            let (mut client_read, mut client_write) = client.split();
            let Upstream {
                stream, leftover, ..
            } = &mut lease.upstream;
            let (mut upstream_read, mut upstream_write) = stream.split();
            let to_upstream = async {
                let mut buf = client_buf;
                let mut out = BytesMut::with_capacity(8192);
                loop {
                    let Some(frame) = read_frame(&mut client_read, &mut buf).await? else {
                        break;
                    };
                    // Terminate ends the session here; the upstream connection stays open for the pool.
                    if frame.tag == b'X' {
                        break;
                    }
                    ctx.relay_client_frame(&frame, &mut out)?;
                    // Forward everything already buffered in one write.
                    let mut terminated = false;
                    while let Some(frame) = codec::decode_frame(&mut buf)? {
                        if frame.tag == b'X' {
                            terminated = true;
                            break;
                        }
                        ctx.relay_client_frame(&frame, &mut out)?;
                    }
                    upstream_write.write_all(&out).await?;
                    out.clear();
                    ctx.flush_deferred();
                    if terminated {
                        break;
                    }
                }
                Ok::<Ended, PgError>(Ended::Client)
            };
            let to_client = async {
                let mut out = BytesMut::with_capacity(8192);
                loop {
                    let Some(frame) = read_frame(&mut upstream_read, leftover).await? else {
                        break;
                    };
                    ctx.relay_upstream_frame(frame, &mut out).await?;
                    while let Some(frame) = codec::decode_frame(leftover)? {
                        ctx.relay_upstream_frame(frame, &mut out).await?;
                        // Rows stream: never hold more than ~64 KiB for the client.
                        if out.len() > 65_536 {
                            client_write.write_all(&out).await?;
                            out.clear();
                        }
                    }
                    client_write.write_all(&out).await?;
                    out.clear();
                    ctx.flush_deferred();
                }
                Ok::<Ended, PgError>(Ended::Upstream)
            };
            let grant_ended = async {
                if !grant_bound {
                    return std::future::pending().await;
                }
                let reason = crate::grants::ended(
                    gate,
                    &resource.name,
                    resource.require_access_grant,
                    &identity,
                )
                .await;
                Err::<Ended, PgError>(PgError::GrantEnded(reason))
            };
            tokio::select! {
                r = to_upstream => r,
                r = to_client => r,
                r = grant_ended => r,
            }
        };
        // Whatever ended the relay, no decision goes unaudited.
        ctx.flush_deferred();
        if let Err(ended @ PgError::GrantEnded(reason)) = &result {
            let mut verdict = gate_policy::Verdict::refusal();
            verdict.reason = Some(reason.clone());
            gate.audit.emit(AuditEvent::new(
                "session",
                &parties,
                None,
                Arc::new(verdict),
            ));
            if let Some(fields) = ended.to_fatal() {
                let mut out = BytesMut::new();
                codec::put_error(&mut out, &fields);
                let _ = client.write_all(&out).await;
            }
        }
        ctx.verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .count(gate, "postgres", &resource.name);
        gate.cancels.remove(cancel_key);
        // Reuse only a connection that is idle with nothing in flight.
        let reusable =
            matches!(result, Ok(Ended::Client)) && ctx.idle() && lease.upstream.leftover.is_empty();
        pool.release(lease, reusable).await;
        if let Err(e) = result {
            eprintln!(
                "gate-connector: postgres session {client_addr} ({identity} on {}) ended: {e}",
                resource.name
            );
        }
    }
}
