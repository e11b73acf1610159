//! The accept loop of the one listener: each connection is served by hyper (HTTP/1.1, or HTTP/2
//! for gRPC) with the header timeout, buffer sizes and HTTP/2 pings of [`HttpLimits`].
//!
//! ```text
//! accept ─ wait ≤ header_timeout for bytes that tell HTTP/1.1 from the HTTP/2 preface
//!        ─ hyper auto builder ─ router            (stop: finish in-flight requests, close)
//! ```

use std::io;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::limits::HttpLimits;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Http1,
    Http2,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which protocol starts with `prefix`; `None` while it could still be the HTTP/2 preface.
pub fn detect(prefix: &[u8]) -> Option<Detected> {
    let n = prefix.len().min(H2_PREFACE.len());
    if prefix.get(..n) != H2_PREFACE.get(..n) {
        Some(Detected::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Detected::Http2)
    } else {
        None
    }
}

/// Serve `app` on `listener` until `stop` resolves, then let open connections finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    stop: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.read_buffer);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_ping_interval)
        .keep_alive_timeout(limits.http2_ping_timeout)
        .max_header_list_size(u32::try_from(limits.read_buffer).unwrap_or(u32::MAX));
    let (closing, closing_seen) = watch::channel(false);
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: keep serving the open connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        let mut closing_seen = closing_seen.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            if !first_bytes(&stream, header_timeout).await {
                return;
            }
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            // A connection's end (a client gone, a timeout) is not worth a log line.
            let _ = tokio::select! {
                result = conn.as_mut() => result,
                _ = closing_seen.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
        });
    }
    drop(listener);
    drop(closing_seen);
    let _ = closing.send(true);
    // Every connection task holds a receiver; all dropped = all connections done.
    closing.closed().await;
    Ok(())
}

/// Wait until the client has sent enough to tell the protocol, at most `within`. A client that
/// connects and stays silent is dropped here (hyper's header timeout only starts after this).
async fn first_bytes(stream: &TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(n)) => {
                if detect(buf.get(..n).unwrap_or_default()).is_some() {
                    return true;
                }
            }
        }
        // A partial preface: `peek` would answer at once with the same bytes, so wait a little.
        if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(20)))
            .await
            .is_err()
        {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_needs_only_the_first_differing_byte() {
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"G"), Some(Detected::Http1));
        assert_eq!(detect(b"P"), None);
        assert_eq!(detect(b"POST /"), Some(Detected::Http1));
        for n in 1..H2_PREFACE.len() {
            assert_eq!(detect(&H2_PREFACE[..n]), None, "prefix of {n}");
        }
        assert_eq!(detect(H2_PREFACE), Some(Detected::Http2));
        assert_eq!(
            detect(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Some(Detected::Http2)
        );
    }
}
