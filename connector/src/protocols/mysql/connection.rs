//! One MySQL client connection from Gate's greeting: HandshakeV10 (Gate's
//! own scramble and capabilities, never LOCAL_FILES), the SSLRequest → TLS,
//! the HandshakeResponse, then login ([`super::login`]) and the relay
//! ([`super::relay`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gate_config::connector::Protocol;
use tokio::io::AsyncWriteExt;

use super::codec::put_packet;
use super::error::MyError;
use super::handshake::{HandshakeResponse, HandshakeV10, SERVER_STATUS_AUTOCOMMIT, caps};
use super::packets::UTF8MB4;
use super::scramble::CACHING_SHA2;
use super::wire::expect_packet;
use super::{UpstreamHello, login, relay};
use crate::server::Gate;
use crate::session::outcome;
use crate::stream::{ClientStream, MaybeTls, Prefixed};

/// How long a client has for its handshake response, and again for each auth step.
pub(super) const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client said in its handshake, and where the conversation is.
#[derive(Debug)]
pub(super) struct Greeted {
    pub(super) response: HandshakeResponse,
    /// The scramble Gate sent.
    pub(super) scramble: Vec<u8>,
    /// The next sequence id Gate sends with.
    pub(super) seq: u8,
    /// The capabilities both sides use.
    pub(super) capabilities: u32,
    /// The MariaDB extended capabilities both sides use.
    pub(super) mariadb: u32,
}

/// Serve one client connection to completion. `resource` is the resource
/// whose own port the client connected to, or `None` on the shared listener
/// (routed by the database the client names).
pub async fn handle_client(
    client: ClientStream,
    peer: SocketAddr,
    gate: Arc<Gate>,
    resource: Option<String>,
) {
    let shared = &gate.protocols.mysql;
    if !shared.client_keys.ready() {
        // Made once, in the background, before a client may need it for caching_sha2 without TLS.
        let gate = gate.clone();
        tokio::spawn(async move { gate.protocols.mysql.client_keys.get().await.map(|_| ()) });
    }
    let mut buf = BytesMut::with_capacity(8192);
    let upstream = shared.upstream_hello(&gate, resource.as_deref()).await;
    let greeted =
        tokio::time::timeout(LOGIN_TIMEOUT, greet(client, &mut buf, &gate, &upstream)).await;
    let (mut client, greeted) = match greeted {
        Ok(Ok(greeted)) => greeted,
        Ok(Err((client, seq, error))) => {
            if let (Some(mut client), Some(err)) = (client, error.err_message(seq)) {
                let _ = client.write_all(&err).await;
            }
            report(&gate, peer, &error);
            return;
        }
        Err(_) => {
            report(&gate, peer, &MyError::Timeout("handshake response"));
            return;
        }
    };
    let mut seq = greeted.seq;
    match login::establish(
        &mut client,
        &mut buf,
        peer,
        &gate,
        resource.as_deref(),
        greeted,
        &mut seq,
    )
    .await
    {
        Ok(established) => relay::run(established, client, buf).await,
        Err(error) => {
            if let Some(err) = error.err_message(seq) {
                let _ = client.write_all(&err).await;
            }
            report(&gate, peer, &error);
        }
    }
}

/// Count and log a session that did not get going.
fn report(gate: &Gate, peer: SocketAddr, error: &MyError) {
    outcome::count(gate, Protocol::Mysql.as_str(), "-", error.outcome());
    // A client that connects and leaves without a word (a port probe) is not news.
    let probe = matches!(error, MyError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof);
    if !probe {
        tracing::info!(protocol = "mysql", %peer, %error, "session did not start");
    }
}

/// A scramble of 20 printable bytes (as MySQL servers make them: no NUL, no `$`).
fn scramble() -> Vec<u8> {
    crate::random::bytes::<20>()
        .iter()
        .map(|b| 0x30 + (b % 0x4A))
        .collect()
}

/// A greeting that failed: the client (unless the socket is gone), the sequence id to answer with, why.
type Failed = (Option<ClientStream>, u8, MyError);

/// Greet, upgrade to TLS on an SSLRequest, and read the HandshakeResponse.
async fn greet(
    mut client: ClientStream,
    buf: &mut BytesMut,
    gate: &Gate,
    upstream: &UpstreamHello,
) -> Result<(ClientStream, Greeted), Failed> {
    let acceptor = match (&client, gate.tls.as_ref()) {
        (MaybeTls::Plain(_), Some(files)) => match files.acceptor() {
            Ok(acceptor) => Some(acceptor),
            Err(error) => {
                tracing::warn!(%error, "TLS unavailable; not offering it to MySQL clients");
                None
            }
        },
        _ => None,
    };
    let mut offered = caps::GATE | if acceptor.is_some() { caps::SSL } else { 0 };
    // Greeting as the MariaDB upstream does (no CLIENT_MYSQL) offers metadata caching, when it has it.
    let mariadb_offered = upstream.mariadb_caps & caps::MARIADB_CACHE_METADATA;
    if mariadb_offered != 0 {
        offered &= !caps::CLIENT_MYSQL;
    }
    let scramble = scramble();
    let hello = HandshakeV10 {
        server_version: upstream.version.clone(),
        connection_id: crate::random::u32() & 0x7fff_ffff,
        scramble: scramble.clone(),
        capabilities: offered,
        charset: UTF8MB4 as u8,
        status: SERVER_STATUS_AUTOCOMMIT,
        auth_plugin: CACHING_SHA2.to_owned(),
        mariadb_caps: mariadb_offered,
    };
    let mut payload = BytesMut::new();
    hello.encode(&mut payload);
    let mut out = BytesMut::new();
    put_packet(&mut out, 0, &payload);
    if let Err(e) = client.write_all(&out).await {
        return Err((Some(client), 1, e.into()));
    }
    let mut packet = match expect_packet(&mut client, buf).await {
        Ok(p) => p,
        Err(e) => return Err((Some(client), 2, e)),
    };
    if HandshakeResponse::is_ssl_request(&packet.payload) {
        let next = packet.seq.wrapping_add(1);
        let Some(acceptor) = acceptor else {
            let error = MyError::ClientUnexpected("SSL requested but not offered".into());
            return Err((Some(client), next, error));
        };
        let MaybeTls::Plain(tcp) = client else {
            let error = MyError::ClientUnexpected("SSLRequest on an encrypted connection".into());
            return Err((Some(client), next, error));
        };
        // No answer comes between SSLRequest and ClientHello: what follows the
        // request in the buffer is the start of the TLS handshake.
        let hello = buf.split();
        let tls = match acceptor.accept(Prefixed::new(tcp, hello)).await {
            Ok(tls) => tls,
            Err(e) => {
                // The socket went with the failed handshake: nothing to answer on.
                tracing::info!(error = %e, "MySQL client TLS handshake failed");
                return Err((None, next, e.into()));
            }
        };
        client = MaybeTls::Tls(Box::new(tls));
        packet = match expect_packet(&mut client, buf).await {
            Ok(p) => p,
            Err(e) => return Err((Some(client), next, e)),
        };
    }
    let seq = packet.last_seq.wrapping_add(1);
    let response = match HandshakeResponse::decode(&packet.payload) {
        Ok(r) => r,
        Err(e) => return Err((Some(client), seq, e.into())),
    };
    let capabilities = response.capabilities & offered;
    let mariadb = if response.capabilities & caps::CLIENT_MYSQL == 0 {
        response.mariadb_caps & mariadb_offered
    } else {
        0
    };
    Ok((
        client,
        Greeted {
            response,
            scramble,
            seq,
            capabilities,
            mariadb,
        },
    ))
}
