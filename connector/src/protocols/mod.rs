//! One folder per protocol: pure codec, handshake, relay, native errors; the
//! decisions come from the protocol-neutral session layer (`crate::session`).

pub mod http;
pub mod mcp;
pub mod mongodb;
pub mod mysql;
pub mod postgres;
pub mod ssh;

/// What each protocol's sessions share (pools, caches), kept by the
/// protocol's own module; the connector holds one of these.
#[derive(Debug, Default)]
pub struct Shared {
    pub postgres: postgres::Shared,
    pub http: http::Shared,
    pub mcp: mcp::Shared,
    pub mysql: mysql::Shared,
    pub mongodb: mongodb::Shared,
    pub ssh: ssh::Shared,
}

use gate_config::ConnectorConfig;
use gate_config::connector::Protocol;

/// The protocols this connector build serves; a resource of any other is a
/// configuration error until its protocol lands.
pub const SERVED: &[Protocol] = &[
    Protocol::Postgres,
    Protocol::Mysql,
    Protocol::Mongodb,
    Protocol::Http,
    Protocol::Mcp,
    Protocol::Ssh,
];

/// One message per resource whose protocol is not served, naming the field.
pub fn unserved_resources(config: &ConnectorConfig) -> Vec<String> {
    config
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| !SERVED.contains(&r.protocol))
        .map(|(i, r)| {
            format!(
                "resources[{i}].protocol: {} is not served by this connector yet (served: {})",
                r.protocol.as_str(),
                SERVED
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect()
}
