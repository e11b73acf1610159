//! gRPC deadlines: a call's `grpc-timeout` (capped at [`MAX_GRPC_DEADLINE`],
//! which also applies when the client sends none) bounds the time until its
//! response starts; past it the call ends with `DEADLINE_EXCEEDED`. Streams
//! already started (snapshot watches) are not cut. A recording upload answers
//! only once the whole file arrived, so it has [`MAX_UPLOAD_DEADLINE`] instead.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The longest a unary call may take before its response starts.
pub(crate) const MAX_GRPC_DEADLINE: Duration = Duration::from_secs(30);
/// The longest a recording upload (a client stream of up to 1 GiB) may take.
pub(crate) const MAX_UPLOAD_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// The cap for a call to `path`.
fn cap(path: &str) -> Duration {
    if path == "/gate.v1.ConnectorService/UploadRecording" {
        MAX_UPLOAD_DEADLINE
    } else {
        MAX_GRPC_DEADLINE
    }
}

/// Parse a `grpc-timeout` value: up to 8 digits and a unit (`H`, `M`, `S`,
/// `m`, `u`, `n`). `None` when absent or malformed.
fn parse_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// A gRPC error response carrying only a status, as tonic writes one.
fn status_only(code: u16, message: &str) -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(message) = HeaderValue::from_str(message) {
        headers.insert("grpc-message", message);
    }
    response
}

pub(crate) async fn enforce(request: Request, next: Next) -> Response {
    if !is_grpc(request.headers()) {
        return next.run(request).await;
    }
    let cap = cap(request.uri().path());
    let deadline = match request.headers().get("grpc-timeout") {
        None => cap,
        Some(value) => match value.to_str().ok().and_then(parse_timeout) {
            Some(asked) => asked.min(cap),
            None => {
                // Read the request before answering: a stream answered while
                // the client still sends is reset, and clients report that
                // instead of the status.
                let limit = crate::grpc::MAX_GRPC_REQUEST;
                let _ = axum::body::to_bytes(request.into_body(), limit).await;
                // INVALID_ARGUMENT, as the header cannot be read.
                return status_only(
                    3,
                    "grpc-timeout: expected digits and a unit (H, M, S, m, u, n)",
                );
            }
        },
    };
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        // DEADLINE_EXCEEDED.
        Err(_) => status_only(4, "deadline exceeded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_by_unit_and_malformed_ones_do_not() {
        assert_eq!(parse_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "m", "123456789m", "10x", "-1S", "1.5S"] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_recording_uploads_get_the_long_deadline() {
        assert_eq!(
            cap("/gate.v1.ConnectorService/UploadRecording"),
            MAX_UPLOAD_DEADLINE
        );
        assert_eq!(
            cap("/gate.v1.ConnectorService/IngestAudit"),
            MAX_GRPC_DEADLINE
        );
        assert_eq!(
            cap("/gate.v1.ControlPlaneService/GetRecordingData"),
            MAX_GRPC_DEADLINE
        );
    }
}
