//! MySQL session errors, each knowing its side, and the one place that
//! renders them, and any policy refusal, as the protocol's ERR packet.

use bytes::BytesMut;

use super::codec::{CodecError, put_packet};
use super::packets::ErrPacket;
use crate::session::{Outcome, Refusal};

/// ER_TABLEACCESS_DENIED_ERROR: every refused statement or result.
const REFUSED: (u16, &str) = (1142, "42000");

/// Why a MySQL session ended or a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum MyError {
    /// The client sent something malformed.
    #[error("client protocol error: {0}")]
    ClientProtocol(#[from] CodecError),
    /// The client spoke out of turn or asked for what Gate does not do.
    #[error("client protocol error: {0}")]
    ClientUnexpected(String),
    /// The requested database matches no resource.
    #[error("Unknown database '{0}'")]
    UnknownDatabase(String),
    /// Login failed (unknown user or wrong password; never says which).
    #[error("Access denied for user '{user}'@'{host}' (using password: {using})")]
    AuthFailed {
        user: String,
        host: String,
        using: &'static str,
    },
    /// A token login over an unencrypted, non-loopback connection.
    #[error("token logins require TLS (connect with --ssl)")]
    TlsRequired,
    /// The session policy refused the connection.
    #[error("{0}")]
    SessionBlocked(String),
    /// The resource needs an access grant the identity does not hold.
    #[error("{0}")]
    GrantRequired(String),
    /// The grant an open session relied on expired or was revoked.
    #[error("Connection was killed: {0}")]
    GrantEnded(String),
    /// The upstream could not be reached or refused Gate's login.
    #[error("upstream {resource}: {detail}")]
    Upstream { resource: String, detail: String },
    /// The upstream refused Gate's login with this error (e.g. an unknown database).
    #[error("upstream refused the login: {0:?}")]
    UpstreamRefused(ErrPacket),
    /// Every upstream connection stayed busy for `acquire_timeout`.
    #[error("no upstream connection to resource \"{0}\" became free in time")]
    PoolExhausted(String),
    /// Socket I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer took too long.
    #[error("timed out waiting for the {0}")]
    Timeout(&'static str),
    /// Gate itself failed (not the client, not the upstream).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Refusal> for MyError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::GrantRequired(reason) => MyError::GrantRequired(reason),
            Refusal::Blocked(reason) => MyError::SessionBlocked(reason),
        }
    }
}

/// The ERR packet that refuses one statement or result (the connection stays usable).
pub(super) fn refusal(reason: impl Into<String>) -> ErrPacket {
    ErrPacket::new(REFUSED.0, REFUSED.1, reason)
}

/// Append `err` as a packet with sequence id `seq`.
pub(super) fn put_err(out: &mut BytesMut, seq: u8, err: &ErrPacket) -> u8 {
    let mut payload = BytesMut::new();
    err.encode(&mut payload);
    put_packet(out, seq, &payload)
}

impl MyError {
    /// How the session ended, for `gate_sessions_total{outcome}`.
    pub fn outcome(&self) -> Outcome {
        match self {
            MyError::ClientProtocol(_) | MyError::ClientUnexpected(_) => Outcome::ProtocolError,
            MyError::UnknownDatabase(_) => Outcome::UnknownResource,
            MyError::AuthFailed { .. } | MyError::TlsRequired => Outcome::AuthFailed,
            MyError::SessionBlocked(_) | MyError::GrantRequired(_) => Outcome::Blocked,
            MyError::GrantEnded(_) => Outcome::GrantEnded,
            MyError::Upstream { .. } | MyError::UpstreamRefused(_) => Outcome::UpstreamError,
            MyError::PoolExhausted(_) => Outcome::PoolExhausted,
            MyError::Io(_) | MyError::Timeout(_) => Outcome::Disconnected,
            MyError::Internal(_) => Outcome::ProtocolError,
        }
    }

    /// The ERR packet a client sees before Gate closes, or `None` when the socket is gone.
    pub fn to_err(&self) -> Option<ErrPacket> {
        let (code, state, message) = match self {
            MyError::ClientProtocol(e) => (1043, "08S01", format!("Bad handshake or packet: {e}")),
            MyError::ClientUnexpected(m) => (1047, "08S01", m.clone()),
            MyError::UnknownDatabase(_) => (1049, "42000", self.to_string()),
            MyError::AuthFailed { .. } => (1045, "28000", self.to_string()),
            MyError::TlsRequired => (3159, "HY000", self.to_string()),
            MyError::SessionBlocked(reason) | MyError::GrantRequired(reason) => {
                (1044, "42000", reason.clone())
            }
            MyError::GrantEnded(_) => (1927, "70100", self.to_string()),
            // Upstream details (credentials, addresses) stay in Gate's log.
            MyError::Upstream { resource, .. } => (
                2013,
                "HY000",
                format!("could not connect to resource \"{resource}\""),
            ),
            // An unknown database is the client's to know; anything else stays in the log.
            MyError::UpstreamRefused(err) if err.code == 1049 || err.code == 1044 => {
                return Some(err.clone());
            }
            MyError::UpstreamRefused(_) => (
                2013,
                "HY000",
                "the upstream refused Gate's login".to_owned(),
            ),
            MyError::PoolExhausted(_) => (1040, "08004", self.to_string()),
            MyError::Timeout(what) => (1159, "08S01", format!("timed out waiting for the {what}")),
            MyError::Internal(_) => (1105, "HY000", self.to_string()),
            MyError::Io(_) => return None,
        };
        Some(ErrPacket::new(code, state, message))
    }

    /// The ERR packet as bytes (sequence id `seq`) to send before closing, if any.
    pub(super) fn err_message(&self, seq: u8) -> Option<BytesMut> {
        let err = self.to_err()?;
        let mut out = BytesMut::new();
        put_err(&mut out, seq, &err);
        Some(out)
    }
}
