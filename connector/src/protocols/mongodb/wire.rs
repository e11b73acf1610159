//! Socket side of the codec: read whole messages into a session's buffer,
//! and write Gate's own answers in the format of the request they answer
//! (OP_MSG for OP_MSG, OP_REPLY for OP_QUERY).

use std::sync::atomic::{AtomicI32, Ordering};

use bson::Document;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codec::{self, CodecError, Frame, OpMsg, OpReply, opcode};

/// Request ids of the messages Gate writes itself.
static NEXT_ID: AtomicI32 = AtomicI32::new(1);

/// A fresh request id.
pub(super) fn request_id() -> i32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff
}

/// Reading a message failed: the socket, or the bytes.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Codec(#[from] CodecError),
}

/// The next whole message, or `None` when the peer closed between messages.
pub(super) async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, ReadError> {
    loop {
        if let Some(frame) = codec::decode_frame(buf, codec::MAX_MESSAGE)? {
            return Ok(Some(frame));
        }
        if stream.read_buf(buf).await? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
}

/// Encode `doc` as the answer to `request` (OP_REPLY for an OP_QUERY, else OP_MSG).
pub(super) fn answer(out: &mut BytesMut, request: &Frame, doc: Document) {
    answer_to(
        out,
        request.header.request_id,
        request.header.opcode == opcode::QUERY,
        doc,
    );
}

/// Encode `doc` as the answer to the request `response_to` (OP_REPLY when `legacy`).
pub(super) fn answer_to(out: &mut BytesMut, response_to: i32, legacy: bool, doc: Document) {
    if legacy {
        let reply = OpReply {
            flags: 8, // AwaitCapable, as servers set it
            cursor_id: 0,
            starting_from: 0,
            documents: vec![doc],
        };
        codec::encode_reply(out, request_id(), response_to, &reply);
    } else {
        let msg = OpMsg {
            flags: 0,
            body: doc,
            sequences: Vec::new(),
        };
        codec::encode_msg(out, request_id(), response_to, &msg);
    }
}

/// Write `doc` as the answer to `request`.
pub(super) async fn send_answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    request: &Frame,
    doc: Document,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    answer(&mut out, request, doc);
    stream.write_all(&out).await
}
