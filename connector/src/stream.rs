//! A connection that is plain TCP or TLS over TCP: clients (`ClientStream`,
//! server-side TLS) and upstreams (`UpstreamStream`, client-side TLS).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Plain TCP, or TCP wrapped in the TLS stream `T`.
#[derive(Debug)]
pub enum MaybeTls<T> {
    Plain(TcpStream),
    Tls(Box<T>),
}

/// The client side of a session (its TLS runs over [`Prefixed`]: on the shared
/// listener Gate has read the ClientHello before it knew it was TLS).
pub type ClientStream = MaybeTls<tokio_rustls::server::TlsStream<Prefixed>>;
/// Gate's connection to an upstream server.
pub type UpstreamStream = MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;

impl<T> MaybeTls<T> {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

impl<T: AsyncRead + Unpin> MaybeTls<T> {
    /// Read what the peer sends next into `buf` (0: it closed), reserving
    /// `reserve` bytes only once plain TCP has something to read: an idle
    /// client holds its socket, not a read buffer. (TLS reads as usual: its
    /// own buffers outweigh ours.)
    pub async fn read_when_ready(
        &mut self,
        buf: &mut bytes::BytesMut,
        reserve: usize,
    ) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        match self {
            MaybeTls::Plain(tcp) => loop {
                tcp.readable().await?;
                buf.reserve(reserve);
                match tcp.try_read_buf(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    read => return read,
                }
            },
            MaybeTls::Tls(tls) => {
                buf.reserve(reserve);
                tls.read_buf(buf).await
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for MaybeTls<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for MaybeTls<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A stream (TCP by default) whose first bytes were already read: they are
/// read again first, then the stream.
#[derive(Debug)]
pub struct Prefixed<T = TcpStream> {
    prefix: bytes::BytesMut,
    inner: T,
}

impl<T> Prefixed<T> {
    /// `inner`, read from `prefix` first.
    pub fn new(inner: T, prefix: bytes::BytesMut) -> Self {
        Self { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The read half of a split [`MaybeTls`].
pub enum ReadHalf<'a, T> {
    /// A borrowed half of the socket: no lock between the halves.
    Plain(tokio::net::tcp::ReadHalf<'a>),
    /// Reads and writes share the TLS state, so these halves take turns on it.
    Tls(tokio::io::ReadHalf<&'a mut T>),
}

/// The write half of a split [`MaybeTls`].
pub enum WriteHalf<'a, T> {
    Plain(tokio::net::tcp::WriteHalf<'a>),
    Tls(tokio::io::WriteHalf<&'a mut T>),
}

impl<T: AsyncRead + AsyncWrite + Unpin> MaybeTls<T> {
    /// Read and write halves usable at the same time from one task.
    pub fn split(&mut self) -> (ReadHalf<'_, T>, WriteHalf<'_, T>) {
        match self {
            MaybeTls::Plain(s) => {
                let (r, w) = s.split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            MaybeTls::Tls(s) => {
                let (r, w) = tokio::io::split(s.as_mut());
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadHalf<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ReadHalf::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteHalf<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(s) => Pin::new(s).poll_write(cx, buf),
            WriteHalf::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(s) => Pin::new(s).poll_flush(cx),
            WriteHalf::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(s) => Pin::new(s).poll_shutdown(cx),
            WriteHalf::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
