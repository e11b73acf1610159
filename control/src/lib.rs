//! The Gate control plane: store (PostgreSQL or SQLite), admin API over HTTP `/api/v1` and gRPC
//! (`gate.v1.ControlPlaneService`, `gate.v1.ConnectorService`) sharing one implementation, auth,
//! identity tokens, audit ingest, connector sync, the outbox that delivers webhooks and Slack
//! approvals, and a read-only MCP endpoint.

pub mod auth;
pub mod delivery;
pub mod error;
pub mod grpc;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod oidc;
pub mod server;
pub mod service;
pub mod slack;
pub mod store;
pub mod tokens;
pub mod util;
