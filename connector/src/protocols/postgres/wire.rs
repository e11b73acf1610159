//! Reading whole PostgreSQL messages off a socket: the startup packet and
//! tagged frames, each read until the codec has a complete one.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::codec::{self, Frame, Startup};
use super::error::PgError;

/// The next startup-phase packet (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage).
pub(super) async fn read_startup<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Startup, PgError> {
    loop {
        if let Some(startup) = codec::decode_startup(buf)? {
            return Ok(startup);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(PgError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

/// The next frame, or `None` when the peer closed the socket between frames.
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
