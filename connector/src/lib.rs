//! The Gate data plane: listeners, protocol codecs, policy stages, upstream
//! connections and audit. So far PostgreSQL: SCRAM login, session and
//! `pre_request` policies, pass-through of everything else.

pub mod audit;
pub mod control;
pub mod detect;
pub mod fasthash;
pub mod fuzzing;
pub mod grants;
pub mod health;
pub mod http_get;
pub mod identity;
pub mod jwt;
pub mod logging;
pub mod managed;
pub mod metrics;
pub mod protocols;
mod random;
pub mod server;
pub mod startup;
pub mod stream;
pub mod tls;
pub mod verdicts;
