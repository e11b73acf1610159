//! The Gate control plane: store (PostgreSQL or SQLite), admin API over HTTP `/api/v1` and gRPC
//! (`gate.v1.ControlPlaneService`, `gate.v1.ConnectorService`) sharing one implementation, auth,
//! identity tokens, audit ingest and connector sync.

pub mod auth;
pub mod error;
pub mod grpc;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod service;
pub mod store;
pub mod tokens;
pub mod util;
