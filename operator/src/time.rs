//! Time stamps as Kubernetes writes them: RFC 3339 UTC with seconds precision.

use k8s_openapi::jiff::Timestamp;

/// Now, as `2026-01-02T03:04:05Z`.
pub fn now() -> String {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Seconds until `rfc3339` from now (negative when past); `None` when it does not parse.
pub fn seconds_until(rfc3339: &str) -> Option<i64> {
    let at: Timestamp = rfc3339.parse().ok()?;
    Some(at.as_second() - Timestamp::now().as_second())
}
