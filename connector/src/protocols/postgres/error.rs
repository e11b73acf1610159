//! PostgreSQL session errors, each knowing its side, and the one place that
//! renders them, and any policy refusal, as the protocol's ErrorResponse.

use bytes::BytesMut;

use super::codec::{self, CodecError, ErrorFields};
use crate::session::{Outcome, Refusal};

/// SQLSTATE of every policy refusal (`insufficient_privilege`).
pub(super) const REFUSED: &str = "42501";
/// SQLSTATE of a statement transaction pooling cannot run (`feature_not_supported`).
pub(super) const UNSUPPORTED: &str = "0A000";

/// Why a PostgreSQL session ended or a message was refused.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The client sent something malformed.
    #[error("client protocol error: {0}")]
    ClientProtocol(#[from] CodecError),
    /// The client spoke out of turn.
    #[error("client protocol error: {0}")]
    ClientUnexpected(String),
    /// The requested database matches no resource.
    #[error("database \"{0}\" does not exist")]
    UnknownDatabase(String),
    /// Login failed (unknown user or wrong password; never says which).
    #[error("password authentication failed for user \"{0}\"")]
    AuthFailed(String),
    /// A token login over an unencrypted, non-loopback connection.
    #[error("token logins require TLS (connect with sslmode=require)")]
    TlsRequired,
    /// The session policy refused the connection.
    #[error("{0}")]
    SessionBlocked(String),
    /// The upstream could not be reached or refused Gate's login.
    #[error("upstream {resource}: {detail}")]
    Upstream { resource: String, detail: String },
    /// The resource needs an access grant the identity does not hold.
    #[error("{0}")]
    GrantRequired(String),
    /// The grant an open session relied on expired or was revoked.
    #[error("terminating connection: {0}")]
    GrantEnded(String),
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

impl From<Refusal> for PgError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::GrantRequired(reason) => PgError::GrantRequired(reason),
            Refusal::Blocked(reason) => PgError::SessionBlocked(reason),
        }
    }
}

/// Append the ErrorResponse that refuses one statement or result (the
/// session stays usable).
pub(super) fn put_refusal(out: &mut BytesMut, reason: String) {
    codec::put_error(out, &refusal("ERROR", reason));
}

/// Append an ErrorResponse with SQLSTATE `code` (the session stays usable).
pub(super) fn put_error_code(out: &mut BytesMut, code: &'static str, message: String) {
    codec::put_error(
        out,
        &ErrorFields {
            severity: "ERROR",
            code,
            message,
        },
    );
}

fn refusal(severity: &'static str, message: String) -> ErrorFields {
    ErrorFields {
        severity,
        code: REFUSED,
        message,
    }
}

impl PgError {
    /// How the session ended, for `gate_sessions_total{outcome}`.
    pub fn outcome(&self) -> Outcome {
        match self {
            PgError::ClientProtocol(_) | PgError::ClientUnexpected(_) => Outcome::ProtocolError,
            PgError::UnknownDatabase(_) => Outcome::UnknownResource,
            PgError::AuthFailed(_) | PgError::TlsRequired => Outcome::AuthFailed,
            PgError::SessionBlocked(_) | PgError::GrantRequired(_) => Outcome::Blocked,
            PgError::GrantEnded(_) => Outcome::GrantEnded,
            PgError::Upstream { .. } => Outcome::UpstreamError,
            PgError::PoolExhausted(_) => Outcome::PoolExhausted,
            PgError::Io(_) | PgError::Timeout(_) => Outcome::Disconnected,
        }
    }

    /// The FATAL ErrorResponse a client sees, or `None` when the socket is gone.
    pub fn to_fatal(&self) -> Option<ErrorFields> {
        let (code, message) = match self {
            PgError::ClientProtocol(e) => ("08P01", format!("invalid startup or message: {e}")),
            PgError::ClientUnexpected(m) => ("08P01", m.clone()),
            PgError::UnknownDatabase(_) => ("3D000", self.to_string()),
            PgError::AuthFailed(_) => ("28P01", self.to_string()),
            PgError::TlsRequired => ("28000", self.to_string()),
            PgError::SessionBlocked(reason) => return Some(refusal("FATAL", reason.clone())),
            PgError::GrantRequired(reason) => ("28000", reason.clone()),
            PgError::GrantEnded(_) => ("57P01", self.to_string()),
            // Upstream details (credentials, addresses) stay in Gate's log.
            PgError::Upstream { resource, .. } => (
                "08001",
                format!("could not connect to resource \"{resource}\""),
            ),
            PgError::Timeout(what) => ("08006", format!("timed out waiting for the {what}")),
            PgError::PoolExhausted(_) => ("53300", self.to_string()),
            PgError::Io(_) => return None,
        };
        Some(ErrorFields {
            severity: "FATAL",
            code,
            message,
        })
    }
}

impl PgError {
    /// The FATAL ErrorResponse as bytes to send before closing, if any.
    pub(super) fn fatal_message(&self) -> Option<BytesMut> {
        let fields = self.to_fatal()?;
        let mut out = BytesMut::new();
        codec::put_error(&mut out, &fields);
        Some(out)
    }
}
