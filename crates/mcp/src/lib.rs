//! MCP's JSON-RPC messages as Gate reads them, shared by the connector (which proxies MCP servers)
//! and the control plane (which serves its own read-only MCP endpoint). Pure: no I/O.

pub mod message;
pub mod sessions;

/// Revisions negotiated by `initialize` and carried on by an `Mcp-Session-Id`, oldest first.
pub const HANDSHAKE_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Stateless revisions: every request carries its version in `params._meta` and the
/// `MCP-Protocol-Version` header; `server/discover` instead of `initialize`; no session.
pub const STATELESS_VERSIONS: &[&str] = &["2026-07-28"];

/// Methods whose target a 2026-07-28 request repeats in the `Mcp-Name` header, with the
/// `params` field holding it.
pub const NAME_BEARING_METHODS: &[(&str, &str)] = &[
    ("tools/call", "name"),
    ("prompts/get", "name"),
    ("resources/read", "uri"),
];
