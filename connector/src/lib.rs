//! The Gate data plane: listeners and protocol detection (`server`,
//! `detect`), one folder per protocol (`protocols`), the protocol-neutral
//! session layer they decide through (`session`: admission, policy stages,
//! verdict and plan reuse, audit), authentication (`auth`, `jwt`) and the
//! control-plane link (`control`). So far PostgreSQL is served.

pub mod audit;
pub mod auth;
pub mod control;
pub mod detect;
pub mod fasthash;
pub mod fuzzing;
pub mod grants;
pub mod health;
pub mod http_get;
pub mod jwt;
pub mod logging;
pub mod managed;
pub mod metrics;
pub mod pool;
pub mod protocols;
mod random;
pub mod recording;
pub mod server;
pub mod session;
pub mod sidecar;
pub mod sql;
pub mod startup;
pub mod stream;
pub mod telemetry;
pub mod tls;
