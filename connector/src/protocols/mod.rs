//! One folder per protocol: pure codec, session state machine, native errors.

pub mod postgres;

use gate_config::ConnectorConfig;
use gate_config::connector::Protocol;

/// The protocols this connector build serves; a resource of any other is a
/// configuration error until its protocol lands.
pub const SERVED: &[Protocol] = &[Protocol::Postgres];

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
