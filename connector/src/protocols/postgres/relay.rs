//! The relay of an established session: client frames through
//! [`super::frontend`] to the upstream, upstream frames through
//! [`super::backend`] to the client, each direction writing everything it
//! has buffered in one write; the session ends with either side, or when
//! its access grant does (FATAL 57P01).

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::Shared;
use super::codec::{self, frontend};
use super::error::PgError;
use super::login::Established;
use super::state::Context;
use super::upstream::Upstream;
use super::wire::read_frame;
use crate::stream::ClientStream;

/// Rows stream: never hold more than this for the client.
const CLIENT_WRITE_CHUNK: usize = 65_536;

/// How the relay ended.
enum Ended {
    /// The client said goodbye (Terminate) or closed its socket.
    Client,
    /// The upstream closed its socket.
    Upstream,
}

/// Relay until either side ends, then return the upstream connection to its
/// pool when it is idle and clean.
pub(super) async fn run(
    established: Established<'_>,
    mut client: ClientStream,
    client_buf: BytesMut,
    shared: &Shared,
) {
    let Established {
        session,
        mut lease,
        pool,
        cancel_key,
        upstream_user,
        upstream_db,
        ..
    } = established;
    let ctx = Context::new(session, shared, &upstream_user, &upstream_db, None);
    let result = {
        let (mut client_read, mut client_write) = client.split();
        let Upstream {
            stream, leftover, ..
        } = &mut lease.conn;
        let (mut upstream_read, mut upstream_write) = stream.split();
        let to_upstream = async {
            let mut buf = client_buf;
            let mut out = BytesMut::with_capacity(8192);
            loop {
                let Some(frame) = read_frame(&mut client_read, &mut buf).await? else {
                    break;
                };
                // Terminate ends the session here; the upstream connection stays open for the pool.
                if frame.tag == frontend::TERMINATE {
                    break;
                }
                ctx.relay_client_frame(&frame, &mut out).await?;
                // Forward everything already buffered in one write.
                let mut terminated = false;
                while let Some(frame) = codec::decode_frame(&mut buf)? {
                    if frame.tag == frontend::TERMINATE {
                        terminated = true;
                        break;
                    }
                    ctx.relay_client_frame(&frame, &mut out).await?;
                }
                upstream_write.write_all(&out).await?;
                out.clear();
                ctx.session.flush();
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
                    if out.len() > CLIENT_WRITE_CHUNK {
                        client_write.write_all(&out).await?;
                        out.clear();
                    }
                }
                client_write.write_all(&out).await?;
                out.clear();
                ctx.session.flush();
            }
            Ok::<Ended, PgError>(Ended::Upstream)
        };
        let grant_ended =
            async { Err::<Ended, PgError>(PgError::GrantEnded(ctx.session.grant_ended().await)) };
        tokio::select! {
            r = to_upstream => r,
            r = to_client => r,
            r = grant_ended => r,
        }
    };
    if let Err(ended @ PgError::GrantEnded(reason)) = &result {
        ctx.session.audit_grant_ended(reason);
        if let Some(fatal) = ended.fatal_message() {
            let _ = client.write_all(&fatal).await;
        }
    }
    // Whatever ended the relay, no decision goes unaudited.
    ctx.session.end();
    shared.cancels.remove(cancel_key);
    // Reuse only a connection that is idle with nothing in flight.
    let reusable =
        matches!(result, Ok(Ended::Client)) && ctx.idle() && lease.conn.leftover.is_empty();
    pool.release(lease, reusable).await;
    if let Err(error) = result {
        log_end(&ctx, &error);
    }
}

/// Log a session that ended with `error`.
pub(super) fn log_end(ctx: &Context<'_>, error: &PgError) {
    tracing::info!(
        protocol = "postgres",
        client = %ctx.session.parties.client,
        identity = ctx.session.identity(),
        resource = %ctx.session.resource.name,
        %error,
        "session ended"
    );
}
