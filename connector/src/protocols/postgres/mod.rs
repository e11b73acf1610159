//! PostgreSQL: the client side (startup, SCRAM login, statements) and the
//! upstream side (Gate's own login), with policy stages in between.
//!
//! ```text
//! client ──startup──▶ route by database ──SCRAM──▶ session policy ──▶ upstream login
//!        ◀─AuthOk, ParameterStatus…, BackendKeyData (Gate's), ReadyForQuery─┘
//! then per message:
//!   Query/Parse ──classify──▶ pre_request ──allow──▶ forwarded as the original bytes
//!                                        └─block──▶ a marker statement that fails upstream;
//!                                                   its error is rewritten to 42501 + reason
//!   everything else passes through unchanged, both ways
//! ```
//! Blocking through the upstream keeps PostgreSQL's own ordering and
//! transaction semantics: a blocked statement behaves exactly like a
//! statement the server refused (pipelines skip to Sync, a transaction
//! block is aborted), and the connection stays usable.

mod cancel;
mod catalog;
pub mod codec;
mod deferred;
mod error;
mod login;
mod pool;
mod relay;
mod results;
pub mod rows;
pub mod scram;
mod session;
pub mod sql;
pub mod statements;
mod upstream;

pub use cancel::CancelRegistry;
pub use catalog::Catalogs;
pub use error::PgError;
pub use pool::Pools;
pub use session::handle_client;
pub use statements::StatementCache;
