//! MongoDB: Gate answers the handshake and the SASL login itself, admits
//! the client through the session layer (`crate::session`), relays its
//! commands over a pooled upstream connection logged in as the resource's
//! user, decides each command by `pre_request`, and masks the documents of
//! replies under `post_request`. See README.md for the message flow.
//!
//! ```text
//! connection ─▶ hello / saslStart / saslContinue (Gate) ─▶ admit ─▶ pool lease
//!            ─▶ relay: command ─▶ session.request ─▶ forwarded, rewritten, or {ok: 0, code: 13}
//!                      reply   ─▶ post_request masks ─▶ cursor batches masked, re-encoded
//! ```

mod auth;
pub mod codec;
pub mod command;
pub mod compression;
mod connection;
mod depth;
mod error;
pub mod guard;
pub mod hello;
pub mod masking;
mod monitor;
mod pool;
mod relay;
pub mod request;
mod upstream;
mod wire;

use std::collections::HashMap;
use std::sync::Mutex;

pub use connection::handle_client;
pub use error::MongoError;
pub use pool::{Pool, Pools};

use crate::server::Gate;
use gate_config::connector::Protocol;

/// What MongoDB sessions of one connector share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Upstream connection pools, per resource.
    pub pools: Pools,
    /// Each resource's upstream `maxWireVersion`, as last seen.
    wires: Mutex<HashMap<String, i32>>,
}

impl Shared {
    /// The upstream `maxWireVersion` to cap Gate's `hello` with, before a
    /// client is logged in: the last one seen for the client's resource
    /// (its own port, or the only MongoDB resource), else asked of the
    /// upstream once; `None` when it cannot be told.
    pub(crate) async fn upstream_wire(&self, gate: &Gate, dedicated: Option<&str>) -> Option<i32> {
        let mut mongo = gate
            .config
            .resources
            .iter()
            .filter(|r| r.protocol == Protocol::Mongodb);
        let resource = match dedicated {
            Some(name) => mongo.find(|r| r.name == name)?,
            None => match (mongo.next(), mongo.next()) {
                (Some(only), None) => only,
                _ => return None,
            },
        };
        if let Some(wire) = self.wires.lock().ok()?.get(&resource.name).copied() {
            return Some(wire);
        }
        let wire = upstream::probe_wire(resource).await?;
        self.remember_wire(&resource.name, wire);
        Some(wire)
    }

    pub(crate) fn remember_wire(&self, resource: &str, wire: i32) {
        if let Ok(mut wires) = self.wires.lock() {
            wires.insert(resource.to_owned(), wire);
        }
    }
}
