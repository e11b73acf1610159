//! MySQL / MariaDB: Gate greets the client as a server (HandshakeV10),
//! authenticates it, admits it through the session layer (`crate::session`),
//! logs in upstream with the resource's credentials (pooled), and relays
//! commands: COM_QUERY and prepared statements decided by `pre_request`,
//! result sets masked by `post_request`. See README.md for the message flow.
//!
//! ```text
//! connection ─▶ login ─▶ relay ─┬─ commands: COM_QUERY / STMT_PREPARE ─▶ session.request
//!                               │            └─ forwarded, rewritten, or ERR 1142
//!                               └─ results:  column definitions ─▶ post_request plan
//!                                            rows masked, streamed
//! ```

pub mod codec;
mod connection;
mod error;
mod full_auth;
pub mod handshake;
mod login;
mod metadata;
pub mod packets;
mod pool;
mod prepared;
mod relay;
mod results;
pub mod rows;
pub mod rsa_auth;
pub mod scramble;
mod statements;
mod upstream;
mod wire;

use std::collections::HashMap;
use std::sync::Mutex;

pub use connection::handle_client;
pub use error::MyError;
pub use pool::{Pool, Pools};

use crate::server::Gate;

/// The version Gate announces before it has seen the upstream's.
const FALLBACK_VERSION: &str = "8.0.0-gate";

/// What MySQL sessions of one connector share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Upstream connection pools, per resource.
    pub pools: Pools,
    /// Each resource's upstream server version, as last seen.
    versions: Mutex<HashMap<String, UpstreamHello>>,
    /// Identities that may log in by caching_sha2_password's fast path.
    fast_auth: full_auth::FastAuthCache,
    /// Gate's RSA key for caching_sha2_password without TLS.
    client_keys: full_auth::ClientKeys,
}

/// What Gate takes from an upstream's greeting to greet its clients with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamHello {
    pub(crate) version: String,
    /// The MariaDB extended capabilities it offers (0 for MySQL).
    pub(crate) mariadb_caps: u32,
}

impl UpstreamHello {
    fn fallback() -> Self {
        Self {
            version: FALLBACK_VERSION.to_owned(),
            mariadb_caps: 0,
        }
    }
}

impl Shared {
    /// The server version (and MariaDB capabilities) to greet clients of
    /// `resource` with: the upstream's (read from its greeting once), so
    /// clients know what they talk to; on the shared listener, or when it
    /// cannot be reached, the last one seen or [`FALLBACK_VERSION`].
    pub(crate) async fn upstream_hello(
        &self,
        gate: &Gate,
        resource: Option<&str>,
    ) -> UpstreamHello {
        let known = |name: &str| self.versions.lock().ok()?.get(name).cloned();
        let Some(name) = resource else {
            return UpstreamHello::fallback();
        };
        if let Some(hello) = known(name) {
            return hello;
        }
        let Some(config) = gate.config.resources.iter().find(|r| r.name == name) else {
            return UpstreamHello::fallback();
        };
        match upstream::greeting(config).await {
            Some(hello) => {
                self.remember(name, &hello);
                hello
            }
            None => UpstreamHello::fallback(),
        }
    }

    pub(crate) fn remember(&self, resource: &str, hello: &UpstreamHello) {
        if let Ok(mut versions) = self.versions.lock() {
            versions.insert(resource.to_owned(), hello.clone());
        }
    }
}
