//! Reading whole packets from a socket into the session's buffer (the
//! codec stays pure; this is the only place MySQL packets meet I/O).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::codec::{Packet, decode_packet};
use super::error::MyError;

/// The next packet, or `None` when the peer closed cleanly between packets.
pub(super) async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Option<Packet>, MyError> {
    loop {
        if let Some(packet) = decode_packet(buf)? {
            return Ok(Some(packet));
        }
        if stream.read_buf(buf).await? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(MyError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

/// The next packet; the peer closing is an error.
pub(super) async fn expect_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Packet, MyError> {
    read_packet(stream, buf)
        .await?
        .ok_or_else(|| MyError::Io(std::io::ErrorKind::UnexpectedEof.into()))
}
