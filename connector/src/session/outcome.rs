//! How a session ended or why it never started, as one kind per outcome:
//! every protocol's error maps to one, and `gate_sessions_total{outcome}`
//! takes its label from here.

use crate::server::Gate;

/// The `outcome` label of `gate_sessions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Admitted.
    Ok,
    /// The client sent something malformed or out of turn.
    ProtocolError,
    /// What the client asked for (a database, a host name) is no resource.
    UnknownResource,
    /// Login failed.
    AuthFailed,
    /// Refused by the `session` policy or for want of an access grant.
    Blocked,
    /// The access grant an open session relied on ended.
    GrantEnded,
    /// The identity token a session logged in with expired (SSH keyboard-interactive).
    TokenExpired,
    /// The upstream could not be reached or refused Gate's login.
    UpstreamError,
    /// No upstream connection became free in time.
    PoolExhausted,
    /// The client went away or took too long.
    Disconnected,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ProtocolError => "protocol_error",
            // Named for PostgreSQL's database routing, where it first appeared.
            Outcome::UnknownResource => "unknown_database",
            Outcome::AuthFailed => "auth_failed",
            Outcome::Blocked => "blocked",
            Outcome::GrantEnded => "grant_ended",
            Outcome::TokenExpired => "token_expired",
            Outcome::UpstreamError => "upstream_error",
            Outcome::PoolExhausted => "pool_exhausted",
            Outcome::Disconnected => "disconnected",
        }
    }
}

/// Count one session in `gate_sessions_total`; `resource` is `-` when the
/// session ended before it was routed to one. `protocol` is a configured
/// protocol's name, or what detection saw on the shared listener.
pub fn count(gate: &Gate, protocol: &str, resource: &str, outcome: Outcome) {
    gate.metrics.add(
        "gate_sessions_total",
        &[
            ("protocol", protocol),
            ("resource", resource),
            ("outcome", outcome.as_str()),
        ],
        1.0,
    );
}
