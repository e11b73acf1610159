//! The Gate control plane: store (PostgreSQL or SQLite), admin API over HTTP `/api/v1` and gRPC
//! (`gate.v1.ControlPlaneService`, `gate.v1.ConnectorService`) sharing one implementation, auth,
//! identity tokens, audit ingest, connector sync, and the outbox that delivers webhooks and Slack
//! approvals.

pub mod auth;
pub mod delivery;
pub mod error;
pub mod grpc;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod service;
pub mod slack;
pub mod store;
pub mod tokens;
pub mod util;
