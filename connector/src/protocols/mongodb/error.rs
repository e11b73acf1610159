//! MongoDB session errors, each knowing its side, and the one place that
//! renders them, and any policy refusal, as MongoDB's error document
//! `{ok: 0, errmsg, code, codeName}`.

use bson::{Document, doc};

use super::codec::CodecError;
use crate::session::{Outcome, Refusal};

/// MongoDB error codes Gate answers with.
pub(super) mod code {
    pub(crate) const BAD_VALUE: i32 = 2;
    pub(crate) const HOST_UNREACHABLE: i32 = 6;
    pub(crate) const UNAUTHORIZED: i32 = 13;
    pub(crate) const PROTOCOL_ERROR: i32 = 17;
    pub(crate) const AUTHENTICATION_FAILED: i32 = 18;
    pub(crate) const EXCEEDED_TIME_LIMIT: i32 = 50;
    pub(crate) const INTERRUPTED: i32 = 11601;
    pub(crate) const MECHANISM_UNAVAILABLE: i32 = 334;
    pub(crate) const EXCEEDED_MEMORY_LIMIT: i32 = 146;
}

/// The `codeName` of each code Gate uses.
fn code_name(code: i32) -> &'static str {
    match code {
        code::BAD_VALUE => "BadValue",
        code::HOST_UNREACHABLE => "HostUnreachable",
        code::UNAUTHORIZED => "Unauthorized",
        code::PROTOCOL_ERROR => "ProtocolError",
        code::AUTHENTICATION_FAILED => "AuthenticationFailed",
        code::EXCEEDED_TIME_LIMIT => "MaxTimeMSExpired",
        code::INTERRUPTED => "Interrupted",
        code::MECHANISM_UNAVAILABLE => "MechanismUnavailable",
        code::EXCEEDED_MEMORY_LIMIT => "ExceededMemoryLimit",
        _ => "UnknownError",
    }
}

/// An error document `{ok: 0, errmsg, code, codeName}`.
pub(super) fn error_doc(code: i32, errmsg: impl Into<String>) -> Document {
    doc! {
        "ok": 0.0,
        "errmsg": errmsg.into(),
        "code": code,
        "codeName": code_name(code),
    }
}

/// The answer to a command a policy refused (the connection stays usable).
pub(super) fn refusal(reason: impl Into<String>) -> Document {
    error_doc(code::UNAUTHORIZED, reason)
}

/// Why a MongoDB session ended or a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    /// The client sent something malformed.
    #[error("client protocol error: {0}")]
    ClientProtocol(CodecError),
    /// The upstream sent something malformed.
    #[error("upstream protocol error: {0}")]
    UpstreamProtocol(CodecError),
    /// The client spoke out of turn or asked for what Gate does not do.
    #[error("{0}")]
    ClientUnexpected(String),
    /// No MongoDB resource for this client.
    #[error("no MongoDB resource matches {0:?}")]
    UnknownResource(String),
    /// Login failed (unknown user or wrong password; never says which).
    #[error("Authentication failed.")]
    AuthFailed,
    /// A mechanism Gate does not offer.
    #[error(
        "Received authentication for mechanism {0} which is not enabled (Gate offers SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN)"
    )]
    Mechanism(String),
    /// PLAIN over an unencrypted, non-loopback connection.
    #[error("PLAIN authentication requires TLS (connect with tls=true)")]
    TlsRequired,
    /// The session policy refused the connection.
    #[error("{0}")]
    SessionBlocked(String),
    /// The resource needs an access grant the identity does not hold.
    #[error("{0}")]
    GrantRequired(String),
    /// The grant an open session relied on expired or was revoked.
    #[error("session ended: {0}")]
    GrantEnded(String),
    /// The upstream could not be reached or refused Gate's login.
    #[error("upstream {resource}: {detail}")]
    Upstream { resource: String, detail: String },
    /// Every upstream connection stayed busy for `acquire_timeout`.
    #[error("no upstream connection to resource \"{0}\" became free in time")]
    PoolExhausted(String),
    /// Socket I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer took too long.
    #[error("timed out waiting for the {0}")]
    Timeout(&'static str),
}

impl From<Refusal> for MongoError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::GrantRequired(reason) => MongoError::GrantRequired(reason),
            Refusal::Blocked(reason) => MongoError::SessionBlocked(reason),
        }
    }
}

impl MongoError {
    /// How the session ended, for `gate_sessions_total{outcome}`.
    pub fn outcome(&self) -> Outcome {
        match self {
            MongoError::ClientProtocol(_) | MongoError::ClientUnexpected(_) => {
                Outcome::ProtocolError
            }
            MongoError::UnknownResource(_) => Outcome::UnknownResource,
            MongoError::AuthFailed | MongoError::Mechanism(_) | MongoError::TlsRequired => {
                Outcome::AuthFailed
            }
            MongoError::SessionBlocked(_) | MongoError::GrantRequired(_) => Outcome::Blocked,
            MongoError::GrantEnded(_) => Outcome::GrantEnded,
            MongoError::Upstream { .. } | MongoError::UpstreamProtocol(_) => Outcome::UpstreamError,
            MongoError::PoolExhausted(_) => Outcome::PoolExhausted,
            MongoError::Io(_) | MongoError::Timeout(_) => Outcome::Disconnected,
        }
    }

    /// Whether the connection can go on after the client is told.
    pub fn recoverable(&self) -> bool {
        matches!(
            self,
            MongoError::AuthFailed | MongoError::Mechanism(_) | MongoError::TlsRequired
        )
    }

    /// The error document the client sees, or `None` when the socket is gone.
    pub fn to_doc(&self) -> Option<Document> {
        let code = match self {
            MongoError::ClientProtocol(CodecError::TooLarge { .. }) => code::BAD_VALUE,
            MongoError::ClientProtocol(_) | MongoError::ClientUnexpected(_) => code::PROTOCOL_ERROR,
            MongoError::UnknownResource(_) => code::BAD_VALUE,
            MongoError::AuthFailed | MongoError::TlsRequired => code::AUTHENTICATION_FAILED,
            MongoError::Mechanism(_) => code::MECHANISM_UNAVAILABLE,
            MongoError::SessionBlocked(_) | MongoError::GrantRequired(_) => code::UNAUTHORIZED,
            MongoError::GrantEnded(_) => code::INTERRUPTED,
            // Upstream details (credentials, addresses) stay in Gate's log.
            MongoError::Upstream { resource, .. } => {
                return Some(error_doc(
                    code::HOST_UNREACHABLE,
                    format!("could not connect to resource \"{resource}\""),
                ));
            }
            MongoError::UpstreamProtocol(_) => {
                return Some(error_doc(
                    code::PROTOCOL_ERROR,
                    "the upstream sent a message Gate could not read",
                ));
            }
            MongoError::PoolExhausted(_) => code::EXCEEDED_TIME_LIMIT,
            MongoError::Timeout(_) => code::EXCEEDED_TIME_LIMIT,
            MongoError::Io(_) => return None,
        };
        Some(error_doc(code, self.to_string()))
    }
}
