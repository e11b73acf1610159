//! MCP servers (`protocol: mcp`) over Streamable HTTP, on the HTTP
//! machinery (`protocols::http`): every JSON-RPC request decided by Rego with
//! its tool, resource or prompt and arguments (`input.mcp`), calls outside an
//! access grant's scopes refused, lists narrowed to the grant, results
//! masked, session ids bound to their caller, tool definitions pinned
//! (`pin_tools`), everything audited.
//! The message flow is in `README.md`.

mod enforce;
mod exchange;
mod grant_end;
/// JSON-RPC parsing and routing-header checks, shared with the control plane's MCP endpoint.
pub use gate_mcp::message;
pub(crate) mod metadata;
pub mod pins;
mod recorded;
mod respond;
pub mod results;
/// Signed session ids, shared with the control plane's MCP endpoint.
pub use gate_mcp::sessions;

use std::sync::OnceLock;

pub(crate) use exchange::run;
use sessions::SessionKey;

use crate::server::Gate;

/// What MCP exchanges share: the key that signs session ids, and the tool pins.
#[derive(Debug, Default)]
pub struct Shared {
    key: OnceLock<SessionKey>,
    pub pins: pins::PinBook,
}

impl Shared {
    /// The session-id key (from `masking.hash_key`, so replicas agree; else random).
    fn key(&self, gate: &Gate) -> &SessionKey {
        self.key
            .get_or_init(|| match gate.config.masking.hash_key.as_deref() {
                Some(secret) if !secret.is_empty() => SessionKey::from_secret(secret.as_bytes()),
                _ => SessionKey::from_random(crate::random::bytes::<32>()),
            })
    }
}
