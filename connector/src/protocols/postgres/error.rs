//! PostgreSQL session errors, each knowing its side, and the one place that
//! renders them as the protocol's ErrorResponse.

use super::codec::{CodecError, ErrorFields};

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

impl PgError {
    /// The `outcome` label of `gate_sessions_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            PgError::ClientProtocol(_) | PgError::ClientUnexpected(_) => "protocol_error",
            PgError::UnknownDatabase(_) => "unknown_database",
            PgError::AuthFailed(_) | PgError::TlsRequired => "auth_failed",
            PgError::SessionBlocked(_) | PgError::GrantRequired(_) => "blocked",
            PgError::GrantEnded(_) => "grant_ended",
            PgError::Upstream { .. } => "upstream_error",
            PgError::PoolExhausted(_) => "pool_exhausted",
            PgError::Io(_) | PgError::Timeout(_) => "disconnected",
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
            PgError::SessionBlocked(reason) => ("42501", reason.clone()),
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
