//! PostgreSQL: the client side (startup, SCRAM login, statements) and the
//! upstream side (Gate's own login), deciding through the session layer
//! (`crate::session`). The files read in the order a statement travels; see
//! README.md in this folder for the message flow.
//!
//! ```text
//! connection ─▶ login ─▶ relay ─┬─ frontend: Query/Parse ─▶ session.request (pre_request)
//!                               │            └─ forwarded, rewritten, or a block marker
//!                               └─ backend:  RowDescription ─▶ results (post_request plan)
//!                                            DataRow masked, marker errors → 42501 refusals
//! ```
//! Blocking through the upstream keeps PostgreSQL's own ordering and
//! transaction semantics: a blocked statement behaves exactly like a
//! statement the server refused (pipelines skip to Sync, a transaction
//! block is aborted), and the connection stays usable.

mod backend;
mod cancel;
mod catalog;
pub mod codec;
mod connection;
mod error;
mod frontend;
mod guard;
mod login;
mod pool;
mod prepared;
pub mod redact;
mod relay;
mod results;
pub mod rows;
mod session_state;
mod state;
pub mod statements;
pub mod taint;
mod transaction;
mod upstream;
mod wire;

pub use cancel::CancelRegistry;
pub use catalog::Catalogs;
pub use connection::handle_client;
pub use error::PgError;
pub use pool::Pools;
pub use statements::StatementCache;

/// What PostgreSQL sessions of one connector share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Where CancelRequests go, by the key Gate gave each client.
    pub cancels: CancelRegistry,
    /// Column provenance caches, per resource and database.
    pub catalogs: Catalogs,
    /// Upstream connection pools, per resource.
    pub pools: Pools,
    /// Statement classifications by shape.
    pub statements: StatementCache,
}
