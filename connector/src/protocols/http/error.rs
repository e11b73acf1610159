//! The one place an HTTP refusal or failure becomes a response: a status and
//! a JSON body `{error, reason, side}` saying what happened and which side
//! (client, policy, gate, upstream) it concerns.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::Body;

/// Why Gate answers a request itself instead of with the upstream's response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// No (valid) credentials.
    #[error("authentication required")]
    Unauthorized,
    /// A policy or the access-grant check refused the request.
    #[error("{0}")]
    Forbidden(String),
    /// No resource serves this host or path.
    #[error("{0}")]
    NotFound(String),
    /// The request body is over `max_body_bytes`.
    #[error("request body exceeds the {0}-byte limit")]
    PayloadTooLarge(u64),
    /// The request is malformed (a body that says it is JSON and is not, …).
    #[error("{0}")]
    BadRequest(String),
    /// The upstream could not be reached or broke the exchange.
    #[error("{0}")]
    UpstreamFailed(String),
    /// The upstream did not answer in time.
    #[error("{0}")]
    UpstreamTimeout(String),
    /// The response had to be inspected (masks, filters) and could not be:
    /// it is refused rather than passed on unmasked.
    #[error("{0}")]
    ResponseRefused(String),
    /// Gate itself failed (a policy error in a rewrite, a bad rewrite result).
    #[error("{0}")]
    Internal(String),
}

impl HttpError {
    /// The status code clients get.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::UpstreamFailed(_) | HttpError::ResponseRefused(_) => StatusCode::BAD_GATEWAY,
            HttpError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field: a stable, machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::Unauthorized => "unauthorized",
            HttpError::Forbidden(_) => "forbidden",
            HttpError::NotFound(_) => "not_found",
            HttpError::PayloadTooLarge(_) => "payload_too_large",
            HttpError::BadRequest(_) => "bad_request",
            HttpError::UpstreamFailed(_) => "upstream_unavailable",
            HttpError::UpstreamTimeout(_) => "upstream_timeout",
            HttpError::ResponseRefused(_) => "response_refused",
            HttpError::Internal(_) => "gate_error",
        }
    }

    /// Which side the problem is on.
    pub fn side(&self) -> &'static str {
        match self {
            HttpError::Unauthorized
            | HttpError::NotFound(_)
            | HttpError::PayloadTooLarge(_)
            | HttpError::BadRequest(_) => "client",
            HttpError::Forbidden(_) => "policy",
            HttpError::UpstreamFailed(_)
            | HttpError::UpstreamTimeout(_)
            | HttpError::ResponseRefused(_) => "upstream",
            HttpError::Internal(_) => "gate",
        }
    }

    /// The response the client gets.
    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({
            "error": self.code(),
            "reason": self.to_string(),
            "side": self.side(),
        })
        .to_string();
        let mut response = Response::new(full(Bytes::from(body)));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self == HttpError::Unauthorized {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gate\""),
            );
            headers.append(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"gate\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// A whole body from bytes.
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_are_json_with_their_side() {
        let response = HttpError::Forbidden("writes are not allowed".into()).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "forbidden");
        assert_eq!(json["reason"], "writes are not allowed");
        assert_eq!(json["side"], "policy");
        let timeout = HttpError::UpstreamTimeout("no response headers within 30s".into());
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(timeout.side(), "upstream");
    }

    #[test]
    fn unauthorized_names_both_schemes() {
        let response = HttpError::Unauthorized.into_response();
        let schemes: Vec<_> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().split(' ').next().unwrap().to_owned())
            .collect();
        assert_eq!(schemes, ["Bearer", "Basic"]);
    }
}
