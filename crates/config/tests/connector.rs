//! Connector configuration: the shipped file parses, and every kind of mistake
//! is reported with its field path, all at once.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::path::Path;
use std::time::Duration;

use gate_config::connector::{Protocol, TlsMode};
use gate_config::{ConfigErrors, ConnectorConfig, load_str};

fn env(name: &str) -> Option<String> {
    match name {
        "GATE_MASK_KEY" => Some("mask-key".into()),
        "APP_PASSWORD" => Some("app".into()),
        "PRIMARY_DB_PASSWORD" => Some("upstream-pw".into()),
        _ => None,
    }
}

fn load(yaml: &str) -> Result<ConnectorConfig, ConfigErrors> {
    load_str("connector.yaml", yaml, &env)
}

fn problems(yaml: &str) -> Vec<String> {
    load(yaml)
        .unwrap_err()
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_shipped_connector_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/connector.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listen_addr, ":6432");
    assert_eq!(config.health_addr, ":8081");
    assert_eq!(config.default_action, "block");
    assert_eq!(config.masking.hash_key.as_deref(), Some("mask-key"));
    let db = &config.resources[0];
    assert_eq!(
        (db.name.as_str(), db.protocol, db.port),
        ("primary-db", Protocol::Postgres, 5432)
    );
    assert_eq!(db.password.as_deref(), Some("upstream-pw"));
    assert_eq!(db.pool.max_connections, 20);
    assert_eq!(db.pool.idle_timeout, Duration::from_secs(300));
    assert_eq!(db.upstream_tls.mode(), TlsMode::Disable);
    assert_eq!(config.policies.len(), 5);
    assert_eq!(config.identities[0].name, "app");
    let api = &config.resources[2];
    assert_eq!(
        (api.name.as_str(), api.protocol, api.path_prefix.as_deref()),
        ("customers-api", Protocol::Http, Some("/v1"))
    );
    let mongo = &config.resources[3];
    assert_eq!(
        (mongo.name.as_str(), mongo.protocol, mongo.listen_port),
        ("events-mongo", Protocol::Mongodb, Some(27018))
    );
}

#[test]
fn defaults_fill_an_almost_empty_file() {
    let config = load("{}").unwrap();
    assert_eq!(config.listen_addr, ":6432");
    assert_eq!(config.logging.format, "json");
    assert!(config.resources.is_empty());
    let config = load("").unwrap();
    assert_eq!(config.default_action, "block");
}

#[test]
fn an_unknown_field_is_named_with_its_path() {
    let errors =
        problems("resources:\n  - {name: db, protocol: postgres, host: h, port: 5432, hots: x}\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("resources[0]"), "{}", errors[0]);
    assert!(errors[0].contains("unknown field `hots`"), "{}", errors[0]);
    let errors = problems("lisen_addr: \":1\"\n");
    assert!(
        errors[0].contains("unknown field `lisen_addr`"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_wrong_type_or_value_is_named_with_its_path() {
    let errors = problems("resources:\n  - {name: db, protocol: oracle, host: h, port: 5432}\n");
    assert!(
        errors[0].starts_with("resources[0].protocol: unknown variant `oracle`"),
        "{}",
        errors[0]
    );
    let errors = problems(
        "resources:\n  - {name: db, protocol: postgres, host: h, port: 5432, pool: {idle_timeout: 5 minutes}}\n",
    );
    assert!(
        errors[0].starts_with("resources[0].pool.idle_timeout: expected a duration"),
        "{}",
        errors[0]
    );
}

#[test]
fn an_unset_environment_variable_is_named_with_its_path() {
    let errors = problems(
        "control_plane:\n  url: http://localhost:8080\n  token: \"${GATE_CONTROL_TOKEN}\"\nmasking: {hash_key: \"${NOPE}\"}\n",
    );
    assert_eq!(
        errors,
        vec![
            "control_plane.token: environment variable GATE_CONTROL_TOKEN is not set",
            "masking.hash_key: environment variable NOPE is not set",
        ]
    );
    let config = load("control_plane: {url: \"http://${CP_HOST:-localhost}:8080\"}\n").unwrap();
    assert_eq!(config.control_plane.unwrap().url, "http://localhost:8080");
}

#[test]
fn validation_reports_every_problem_at_once() {
    let yaml = r#"
listen_addr: "6432"
health_addr: ":6433"
default_action: maybe
identities:
  - {name: app, password: ""}
  - {name: app, password: x}
resources:
  - {name: db, protocol: postgres, host: localhost, port: 0, listen_port: 6433}
  - {name: db, protocol: mcp, host: mcp.internal, port: 8080, endpoint_path: mcp}
  - {name: pool, protocol: mysql, host: h, port: 3306, password: pw, pool: {max_connections: 0}}
policies:
  - {path: policies/example.rego, stage: presession}
tls: {enabled: true}
logging: {level: loud, format: xml}
"#;
    let errors = problems(yaml);
    let expected = [
        "listen_addr: expected host:port or :port, got \"6432\"",
        "default_action: expected allow or block, got \"maybe\"",
        "identities[0].password: must not be empty (or give ssh_keys for an SSH-only identity)",
        "identities[1].name: duplicate identity \"app\"",
        "resources[0].port: expected 1-65535, got 0",
        "resources[0].listen_port: port 6433 is already used by another listener",
        "resources[1].name: duplicate resource \"db\"",
        "resources[1].listen_port: required for MCP resources (they ride on their own HTTP listener)",
        "resources[1].endpoint_path: expected a path starting with /, got \"mcp\"",
        "resources[2].pool.max_connections: expected at least 1, got 0",
        "resources[2].username: required when password is set",
        "policies[0].stage: expected session, pre_request or post_request, got \"presession\"",
        "tls.cert_file: required when tls.enabled is true",
        "tls.key_file: required when tls.enabled is true",
        "logging.level: expected trace, debug, info, warn or error, got \"loud\"",
        "logging.format: expected json or text, got \"xml\"",
    ];
    assert_eq!(errors, expected);
}

#[test]
fn ports_may_come_from_the_environment() {
    let config = load(
        "resources:\n  - {name: a, protocol: postgres, host: h, port: \"${DB_PORT:-6543}\"}\n",
    )
    .unwrap();
    assert_eq!(config.resources[0].port, 6543);
    let errors =
        problems("resources:\n  - {name: a, protocol: postgres, host: h, port: \"fifty\"}\n");
    assert_eq!(
        errors,
        vec!["resources[0].port: expected a non-negative integer, got \"fifty\""]
    );
}

#[test]
fn upstream_tls_accepts_a_bool_or_a_mode() {
    let config = load(
        "resources:\n  - {name: a, protocol: mcp, host: h, port: 1, listen_port: 7443, upstream_tls: true}\n  - {name: b, protocol: postgres, host: h, port: 1, upstream_tls: {mode: verify-full, ca_file: ca.pem}}\n",
    )
    .unwrap();
    assert_eq!(config.resources[0].upstream_tls.mode(), TlsMode::VerifyFull);
    assert_eq!(config.resources[1].upstream_tls.mode(), TlsMode::VerifyFull);
}

#[test]
fn policy_data_is_a_mapping_and_pin_tools_needs_an_mcp_resource_and_a_control_plane() {
    let config = load("policy_data: {config: {ip_allowlist: {cidrs: [10.0.0.0/8]}}}\n").unwrap();
    assert_eq!(
        config.policy_data.unwrap()["config"]["ip_allowlist"]["cidrs"][0],
        "10.0.0.0/8"
    );
    let errors = problems("policy_data: [10.0.0.0/8]\n");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("policy_data") && e.contains("mapping")),
        "{errors:?}"
    );
    let errors = problems(
        "resources:\n  - {name: tools, protocol: mcp, host: h, port: 80, listen_port: 7443, pin_tools: true}\n  - {name: db, protocol: postgres, host: h, port: 5432, pin_tools: true}\n",
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("resources[0].pin_tools") && e.contains("control_plane")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("resources[1].pin_tools") && e.contains("only for mcp")),
        "{errors:?}"
    );
}
