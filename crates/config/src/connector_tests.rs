//! Tests of the connector configuration's validation (`connector.rs`).
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
use crate::{ConnectorConfig, load_str};

fn problems(issuer: &str) -> Vec<String> {
    let yaml = format!("auth:\n  jwt:\n    issuers:\n      - {issuer}\n");
    match load_str::<ConnectorConfig>("c.yaml", &yaml, &|_| None) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

fn telemetry_problems(telemetry: &str) -> Result<ConnectorConfig, Vec<String>> {
    let yaml = format!("telemetry: {telemetry}\n");
    load_str::<ConnectorConfig>("c.yaml", &yaml, &|_| None)
        .map_err(|e| e.errors.iter().map(ToString::to_string).collect())
}

#[test]
fn telemetry_is_off_by_default_and_names_its_service() {
    let config = load_str::<ConnectorConfig>("c.yaml", "{}\n", &|_| None).unwrap();
    assert!(config.telemetry.is_none());
    let config = telemetry_problems("{otlp_endpoint: 'http://collector:4317'}").unwrap();
    let telemetry = config.telemetry.unwrap();
    assert_eq!(telemetry.otlp_endpoint, "http://collector:4317");
    assert_eq!(telemetry.service_name, "gate-connector");
    let config =
        telemetry_problems("{otlp_endpoint: 'https://otel.example', service_name: edge-1}")
            .unwrap();
    assert_eq!(config.telemetry.unwrap().service_name, "edge-1");
}

#[test]
fn telemetry_endpoint_must_be_an_http_url() {
    for (bad, want) in [
        (
            "{otlp_endpoint: 'collector:4317'}",
            "telemetry.otlp_endpoint: expected an http:// or https:// URL, got \"collector:4317\"",
        ),
        (
            "{otlp_endpoint: 'grpc://collector:4317'}",
            "telemetry.otlp_endpoint: expected an http:// or https:// URL",
        ),
        (
            "{otlp_endpoint: 'http://:4317'}",
            "telemetry.otlp_endpoint: expected a host after the scheme",
        ),
        (
            "{otlp_endpoint: 'http://c:4317', service_name: ''}",
            "telemetry.service_name: must not be empty",
        ),
    ] {
        let found = telemetry_problems(bad).err().unwrap_or_default();
        assert!(found.iter().any(|p| p.contains(want)), "{bad}: {found:?}");
    }
    let unknown = telemetry_problems("{otlp_endpoint: 'http://c:4317', sampler: x}")
        .err()
        .unwrap_or_default();
    assert!(unknown.iter().any(|p| p.contains("sampler")), "{unknown:?}");
}

#[test]
fn jwks_urls_must_be_https_or_loopback() {
    for ok in [
        "{issuer: a, audience: g, jwks_url: 'https://idp.example/jwks'}",
        "{issuer: a, audience: g, jwks_url: 'http://127.0.0.1:8080/.well-known/jwks.json'}",
        "{issuer: a, audience: g, jwks_url: 'http://localhost/jwks'}",
    ] {
        assert!(problems(ok).is_empty(), "{ok}: {:?}", problems(ok));
    }
    for bad in [
        "{issuer: a, audience: g, jwks_url: 'http://idp.example/jwks'}",
        "{issuer: a, audience: g, jwks_url: 'http://localhost.evil.example/jwks'}",
    ] {
        let found = problems(bad);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("auth.jwt.issuers[0].jwks_url: expected an https://")),
            "{bad}: {found:?}"
        );
    }
    let both = problems("{issuer: a, audience: g, jwks_url: 'https://x/j', jwks_file: j.json}");
    assert!(
        both.iter()
            .any(|p| p.contains("exactly one of jwks_file or jwks_url")),
        "{both:?}"
    );
}

fn resource_problems(resource: &str) -> Result<ConnectorConfig, Vec<String>> {
    let yaml = format!("resources:\n  - {resource}\n");
    load_str::<ConnectorConfig>("c.yaml", &yaml, &|_| None)
        .map_err(|e| e.errors.iter().map(ToString::to_string).collect())
}

#[test]
fn a_mongodb_resource_takes_the_issue_fields_and_auth_source_is_checked() {
    let config = resource_problems(
        "{name: events-mongo, protocol: mongodb, host: 127.0.0.1, port: 27017, database: app, \
         username: gate_app, password: pw, auth_source: admin, listen_port: 27018, \
         upstream_tls: {mode: verify-full, ca_file: ca.pem}, \
         pool: {max_connections: 20, idle_timeout: 5m, acquire_timeout: 5s}}",
    )
    .unwrap();
    let r = &config.resources[0];
    assert_eq!(r.auth_source.as_deref(), Some("admin"));
    assert_eq!(r.listen_port, Some(27018));
    assert_eq!(r.pool.max_connections, 20);
    for (bad, want) in [
        (
            "{name: pg, protocol: postgres, host: h, port: 5432, username: u, auth_source: admin}",
            "resources[0].auth_source: only for mongodb resources (this one is postgres)",
        ),
        (
            "{name: m, protocol: mongodb, host: h, port: 27017, username: u, auth_source: ''}",
            "resources[0].auth_source: must not be empty (omit it for admin)",
        ),
        (
            "{name: m, protocol: mongodb, host: h, port: 27017, auth_source: admin}",
            "resources[0].username: required when auth_source is set",
        ),
    ] {
        let problems = resource_problems(bad).unwrap_err();
        assert_eq!(problems, vec![want.to_owned()], "{bad}");
    }
}

#[test]
fn pool_mode_defaults_to_session_and_transaction_is_postgres_only() {
    let config = resource_problems("{name: pg, protocol: postgres, host: h, port: 5432}").unwrap();
    let pool = &config.resources[0].pool;
    assert_eq!(pool.mode, crate::connector::PoolMode::Session);
    assert!(pool.pin_on_session_state);
    assert_eq!(pool.max_prepared_statements, 200);
    let config = resource_problems(
        "{name: pg, protocol: postgres, host: h, port: 5432, \
         pool: {mode: transaction, pin_on_session_state: false, max_prepared_statements: 50}}",
    )
    .unwrap();
    let pool = &config.resources[0].pool;
    assert_eq!(pool.mode, crate::connector::PoolMode::Transaction);
    assert!(!pool.pin_on_session_state);
    assert_eq!(pool.max_prepared_statements, 50);
    let problems = resource_problems(
        "{name: m, protocol: mysql, host: h, port: 3306, pool: {mode: transaction}}",
    )
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "resources[0].pool.mode: transaction pooling is only for postgres resources (this one is mysql)"
        ]
    );
    let problems = resource_problems(
        "{name: pg, protocol: postgres, host: h, port: 5432, pool: {mode: statement}}",
    )
    .unwrap_err();
    assert!(
        problems[0].contains("pool.mode") && problems[0].contains("`session`"),
        "{problems:?}"
    );
}
