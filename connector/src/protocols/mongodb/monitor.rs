//! Awaitable `hello` for drivers' monitors (MongoDB's streaming SDAM
//! protocol): a `hello` carrying Gate's `topologyVersion` and
//! `maxAwaitTimeMS` is answered after that long, since a standalone Gate's
//! topology never changes; with `exhaustAllowed` the answer has
//! `moreToCome` and another follows every period (each addressed to the
//! previous one), until the client closes or speaks. The connection is
//! watched meanwhile, so a closing monitor ends it at once; nothing spins.

use std::time::Duration;

use bson::{DateTime, Document};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::codec::{self, OpMsg, flags};
use super::request::Request;
use super::wire::request_id;
use crate::stream::ClientStream;

/// How a held `hello` ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Held {
    /// Answered; the connection reads its next command.
    Answered,
    /// The client sent bytes during a stream (now in the buffer): streaming stopped.
    Interrupted,
    /// The client closed the connection.
    Closed,
}

/// Answer `request` with `reply` after `period`, and again every period
/// while the client allows exhaust replies.
pub(super) async fn hold(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    request: &Request,
    period: Duration,
    mut reply: Document,
) -> std::io::Result<Held> {
    let mut response_to = request.frame.header.request_id;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            read = client.read_buf(buf) => {
                return Ok(if read? == 0 { Held::Closed } else { Held::Interrupted });
            }
        }
        reply.insert("localTime", DateTime::now());
        let id = request_id();
        let msg = OpMsg {
            flags: if request.exhaust {
                flags::MORE_TO_COME
            } else {
                0
            },
            body: reply.clone(),
            sequences: Vec::new(),
        };
        let mut out = BytesMut::new();
        codec::encode_msg(&mut out, id, response_to, &msg);
        client.write_all(&out).await?;
        if !request.exhaust {
            return Ok(Held::Answered);
        }
        response_to = id;
    }
}
