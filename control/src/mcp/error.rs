//! The `/mcp` endpoint's one error: a JSON-RPC error object and, when it ends the whole POST, the
//! HTTP status it is sent with. API errors from the service functions become these here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gate_mcp::message::{self, codes};
use serde_json::{Value, json};

use crate::error::{ApiError, Code};

/// The caller may not do this (a key's role, another organization). Gate's own code, in the
/// JSON-RPC server-error range.
pub(crate) const FORBIDDEN: i64 = -32003;
/// No usable credentials (`Authorization: Bearer <key>`). Gate's own code.
pub(crate) const UNAUTHENTICATED: i64 = -32001;

/// A JSON-RPC error, with the HTTP status to use when it is the POST's whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct McpError {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl McpError {
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            data: None,
        }
    }

    /// A malformed request (HTTP 400).
    pub fn bad_request(code: i64, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Wrong tool arguments or params (`-32602`), naming the field.
    pub fn invalid_params(field: &str, message: impl std::fmt::Display) -> Self {
        Self {
            data: Some(json!({"field": field, "code": Code::InvalidArgument.as_str()})),
            ..Self::bad_request(codes::INVALID_PARAMS, format!("{field}: {message}"))
        }
    }

    pub fn with_data(self, data: Value) -> Self {
        Self {
            data: Some(data),
            ..self
        }
    }

    /// The JSON-RPC error response for request `id`.
    pub fn to_json(&self, id: Option<&Value>) -> Value {
        match &self.data {
            Some(data) => message::error_with_data(id, self.code, &self.message, data.clone()),
            None => message::error(id, self.code, &self.message),
        }
    }

    /// An API error from a service function: the field at fault leads the message and is in
    /// `data`, with the API's error code.
    pub fn from_api(e: ApiError) -> Self {
        let (status, code) = match e.code {
            Code::InvalidArgument | Code::NotFound => {
                (StatusCode::BAD_REQUEST, codes::INVALID_PARAMS)
            }
            Code::PermissionDenied => (StatusCode::FORBIDDEN, FORBIDDEN),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, UNAUTHENTICATED),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL_ERROR),
        };
        let field = e
            .field
            .as_deref()
            .map(|f| if f == "body" { "arguments" } else { f });
        let message = match field {
            Some(field) => format!("{field}: {}", e.message),
            None => e.message.clone(),
        };
        Self {
            status,
            code,
            message,
            data: Some(json!({"code": e.code.as_str(), "field": field})),
        }
    }
}

impl McpError {
    /// The HTTP answer to a POST this error ends, for the request `id` when one was read.
    pub fn into_response_for(self, id: Option<&Value>) -> Response {
        let mut response = (self.status, axum::Json(self.to_json(id))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="gate-control""#),
            );
        }
        response
    }
}

impl IntoResponse for McpError {
    fn into_response(self) -> Response {
        self.into_response_for(None)
    }
}
