//! One PostgreSQL client connection from its first byte: the startup phase
//! (SSLRequest → TLS, GSSENCRequest, CancelRequest), then login
//! ([`super::login`]), then the relay ([`super::relay`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gate_config::connector::{PoolMode, Protocol};
use tokio::io::AsyncWriteExt;

use super::Shared;
use super::codec::Startup;
use super::error::PgError;
use super::wire::read_startup;
use super::{login, relay, transaction};
use crate::server::Gate;
use crate::session::outcome;
use crate::stream::{ClientStream, MaybeTls, Prefixed};

/// How long a client has for its startup packet, and again for its password.
pub(super) const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve one client connection to completion. `client` is plain TCP, or TLS
/// the shared listener already terminated (a direct TLS connection); `first`
/// holds the bytes the listener read to detect the protocol (the start of
/// the startup packet).
pub async fn handle_client(
    client: ClientStream,
    peer: SocketAddr,
    gate: Arc<Gate>,
    first: BytesMut,
) {
    let shared = &gate.protocols.postgres;
    let mut buf = first;
    // Each phase's future is boxed so that a session holds only the one it is in
    // (an idle transaction-mode client then costs a few hundred bytes of future).
    let negotiated = tokio::time::timeout(
        STARTUP_TIMEOUT,
        Box::pin(negotiate(client, &mut buf, &gate, shared)),
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
    let established = Box::pin(login::establish(
        &mut client,
        &mut buf,
        peer,
        &gate,
        shared,
        params,
    ))
    .await;
    match established {
        Ok(established) if established.pool.config().mode == PoolMode::Transaction => {
            Box::pin(transaction::run(established, client, buf, shared)).await
        }
        Ok(established) => Box::pin(relay::run(established, client, buf, shared)).await,
        Err(error) => {
            if let Some(fatal) = error.fatal_message() {
                let _ = client.write_all(&fatal).await;
            }
            report(&gate, peer, &error);
        }
    }
}

/// Count and log a session that did not get going.
fn report(gate: &Gate, peer: SocketAddr, error: &PgError) {
    outcome::count(gate, Protocol::Postgres.as_str(), "-", error.outcome());
    // A client that connects and leaves without a word (a port probe) is not news.
    let probe = matches!(error, PgError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof);
    if !probe {
        tracing::info!(protocol = "postgres", %peer, %error, "session did not start");
    }
}

/// The startup phase before login: answer SSLRequest (`S` and a TLS
/// handshake when TLS is configured, else `N`) and GSSENCRequest (`N`),
/// route a CancelRequest, and return the StartupMessage's parameters.
async fn negotiate(
    mut client: ClientStream,
    buf: &mut BytesMut,
    gate: &Gate,
    shared: &Shared,
) -> Result<Option<(ClientStream, Vec<(String, String)>)>, PgError> {
    loop {
        let packet = match read_startup(&mut client, buf).await {
            Ok(packet) => packet,
            Err(error) => {
                if let Some(fatal) = error.fatal_message() {
                    let _ = client.write_all(&fatal).await;
                }
                return Err(error);
            }
        };
        match packet {
            Startup::Ssl => {
                let acceptor = match (&client, gate.tls.as_ref()) {
                    (MaybeTls::Plain(_), Some(files)) => match files.acceptor() {
                        Ok(acceptor) => Some(acceptor),
                        Err(error) => {
                            tracing::warn!(%error, "TLS unavailable, declining SSLRequest");
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
                let tcp = Prefixed::new(tcp, BytesMut::new());
                client = MaybeTls::Tls(Box::new(acceptor.accept(tcp).await?));
            }
            Startup::GssEnc => client.write_all(b"N").await?,
            Startup::Cancel { pid, secret } => {
                shared.cancels.cancel(pid, secret).await;
                return Ok(None);
            }
            Startup::Message { params } => return Ok(Some((client, params))),
        }
    }
}
