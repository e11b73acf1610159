//! HTTP limits of the one listener: sizes and timeouts, and the middleware that refuses oversized or
//! malformed HTTP/1.1 requests in the API's JSON error shape before they reach a route.
//!
//! ```text
//! accept ─ first byte within header_timeout ─ hyper: head within header_timeout, head ≤ read_buffer
//!        ─ enforce(): URI ≤ max_uri, headers ≤ max_header_bytes, path/query UTF-8,
//!                     body ≤ max_body read within body_timeout ─ router (404/405/415/400 there)
//! ```
//!
//! gRPC (`content-type: application/grpc…`) passes through untouched: tonic has its own limits.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_stream::StreamExt;

use crate::error::{ApiError, ApiResult, Code};

/// Time for a client to send a complete request head, from the moment the connection waits for
/// one: right after accept, and again after each response on a keep-alive connection (so it is
/// also the HTTP/1.1 idle keep-alive timeout).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a client to send a whole request body, from when the head was read.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 connections are pinged this often when quiet…
pub const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(30);
/// …and closed when a ping is not answered within this.
pub const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body (the same 2 MiB axum allowed before).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Longest path plus query.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest sum of header names and values (plus `": "` and CRLF for each).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// hyper's read buffer: a request head larger than this is refused by hyper itself, with a bare
/// 431 and no body. Also the largest HTTP/2 header list.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The limits one listener enforces. `Default` is the constants above; tests shorten the timeouts.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub http2_ping_interval: Duration,
    pub http2_ping_timeout: Duration,
    pub max_body: usize,
    pub max_uri: usize,
    pub max_header_bytes: usize,
    pub read_buffer: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: HEADER_READ_TIMEOUT,
            body_timeout: BODY_READ_TIMEOUT,
            http2_ping_interval: HTTP2_PING_INTERVAL,
            http2_ping_timeout: HTTP2_PING_TIMEOUT,
            max_body: MAX_BODY_BYTES,
            max_uri: MAX_URI_BYTES,
            max_header_bytes: MAX_HEADER_BYTES,
            read_buffer: READ_BUFFER_BYTES,
        }
    }
}

/// Whether a request is gRPC (tonic answers it).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Middleware: refuse what breaks a limit, and hand the router a fully read body.
pub async fn enforce(State(limits): State<HttpLimits>, request: Request, next: Next) -> Response {
    if is_grpc(request.headers()) {
        return next.run(request).await;
    }
    match check(&limits, request).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn check(limits: &HttpLimits, request: Request) -> ApiResult<Request> {
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri {
        return Err(ApiError::new(
            Code::UriTooLong,
            format!(
                "the URI is {uri_len} bytes; at most {} are accepted",
                limits.max_uri
            ),
        ));
    }
    let header_bytes = header_bytes(request.headers());
    if header_bytes > limits.max_header_bytes {
        return Err(ApiError::new(
            Code::HeadersTooLarge,
            format!(
                "the headers are {header_bytes} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
        ));
    }
    utf8_after_decoding("path", request.uri().path())?;
    if let Some(query) = request.uri().query() {
        utf8_after_decoding("query", query)?;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(too_large(limits.max_body));
    }
    let (parts, body) = request.into_parts();
    let bytes =
        match tokio::time::timeout(limits.body_timeout, read_body(body, limits.max_body)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ApiError::new(
                    Code::RequestTimeout,
                    format!(
                        "the request body did not arrive within {} s",
                        limits.body_timeout.as_secs_f64()
                    ),
                ));
            }
        };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The bytes a request head's header lines take on the wire.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        format!("the request body is larger than {max} bytes"),
    )
}

/// Read a whole body, refusing it as soon as it passes `max` bytes.
pub async fn read_body(body: Body, max: usize) -> ApiResult<Bytes> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::invalid("body", format!("cannot read the request body: {e}")))?;
        if buf.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Percent-decode `text` and refuse it when the bytes are not UTF-8. Malformed escapes (`%zz`)
/// are left as they are, as the query and path decoders do.
pub fn utf8_after_decoding(field: &str, text: &str) -> ApiResult<()> {
    let raw = text.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&byte) = raw.get(i) {
        let escaped = match (byte, raw.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
            _ => None,
        };
        match escaped {
            Some(value) => {
                decoded.push(value);
                i += 3;
            }
            None => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    match std::str::from_utf8(&decoded) {
        Ok(_) => Ok(()),
        Err(e) => Err(ApiError::invalid(
            field,
            format!("not UTF-8 after percent-decoding: {e}"),
        )),
    }
}

/// A request body must be `application/json` (parameters such as `charset` allowed). An empty
/// (or all-whitespace) body needs no type.
pub fn require_json(headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let given = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = given.as_deref().is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if is_json {
        return Ok(());
    }
    Err(ApiError {
        field: Some("content-type".to_owned()),
        ..ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "expected Content-Type: application/json, got {}",
                given.as_deref().unwrap_or("none")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn typed(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn json_content_types() {
        assert!(require_json(&typed("application/json"), b"{}").is_ok());
        assert!(require_json(&typed("Application/JSON; charset=utf-8"), b"{}").is_ok());
        let refused = require_json(&typed("text/plain"), b"{}").unwrap_err();
        assert_eq!(refused.code, Code::UnsupportedMediaType);
        assert!(refused.message.contains("application/json"), "{refused:?}");
        assert!(require_json(&typed("application/jsonx"), b"{}").is_err());
        assert!(require_json(&HeaderMap::new(), b"{}").is_err());
        // Nothing to parse: no type needed.
        assert!(require_json(&HeaderMap::new(), b" \r\n").is_ok());
        assert!(require_json(&typed("text/plain"), b"").is_ok());
    }

    #[test]
    fn utf8_checks_decode_first() {
        assert!(utf8_after_decoding("query", "name=caf%C3%A9&x=%zz&y=%").is_ok());
        assert!(utf8_after_decoding("path", "/api/v1/resources/%E2%82%AC").is_ok());
        let bad = utf8_after_decoding("query", "name=%FF%FE").unwrap_err();
        assert_eq!(bad.field.as_deref(), Some("query"));
        assert!(utf8_after_decoding("path", "/api/v1/resources/%C3").is_err());
    }

    #[tokio::test]
    async fn bodies_stop_at_the_limit_without_a_length() {
        let body = Body::from_stream(tokio_stream::iter(
            (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 400]))),
        ));
        let refused = read_body(body, 1000).await.unwrap_err();
        assert_eq!(refused.code, Code::PayloadTooLarge);
        let fits = read_body(Body::from(vec![b'x'; 1000]), 1000).await.unwrap();
        assert_eq!(fits.len(), 1000);
    }
}
