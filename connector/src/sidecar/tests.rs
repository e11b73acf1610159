//! Sidecar mode's environment, configuration and credential files.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use gate_proto::v1::Resource;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Result<SidecarEnv, Vec<String>> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    SidecarEnv::from_lookup(&|name| map.get(name).cloned())
}

const FULL: &[(&str, &str)] = &[
    ("GATE_CONTROL_URL", "http://gate-control.gate-system:8080"),
    ("GATE_CONTROL_TOKEN", "gk_secret$1"),
    ("POD_NAMESPACE", "shop"),
    ("POD_SERVICE_ACCOUNT", "orders"),
    ("GATE_SIDECAR_RESOURCES", "orders-db:15432, cache:15433"),
];

#[test]
fn the_environment_names_every_missing_variable() {
    let problems = env(&[]).unwrap_err();
    for name in [
        "GATE_CONTROL_URL",
        "GATE_CONTROL_TOKEN",
        "POD_NAMESPACE",
        "POD_SERVICE_ACCOUNT",
        "GATE_SIDECAR_RESOURCES",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(name)),
            "{name}: {problems:?}"
        );
    }
    let mut bad = FULL.to_vec();
    bad[4] = ("GATE_SIDECAR_RESOURCES", "orders-db:0");
    assert!(env(&bad).unwrap_err()[0].contains("1-65535"));
    bad[4] = ("GATE_SIDECAR_RESOURCES", "a:1,a:2");
    assert!(env(&bad).unwrap_err()[0].contains("repeats"));
    bad[4] = ("GATE_SIDECAR_RESOURCES", "orders-db");
    assert!(env(&bad).unwrap_err()[0].contains("name:port"));
}

#[test]
fn defaults_follow_the_injector() {
    let env = env(FULL).unwrap();
    assert_eq!(
        env.resources,
        [("orders-db".to_owned(), 15432), ("cache".to_owned(), 15433)]
    );
    assert_eq!(env.health_addr, "0.0.0.0:9090");
    assert_eq!(env.state_dir, "/var/lib/gate");
    assert_eq!(env.token_issuer, "http://gate-control.gate-system:8080");
    assert_eq!(
        env.jwks_url,
        "http://gate-control.gate-system:8080/.well-known/jwks.json"
    );
    let workload = env.workload();
    assert_eq!(
        workload.sub.as_deref(),
        Some("system:serviceaccount:shop:orders")
    );
    assert_eq!(workload.kind.as_deref(), Some("workload"));
    assert_eq!(
        workload.groups,
        ["system:serviceaccounts", "system:serviceaccounts:shop"]
    );
}

#[test]
fn resources_from_the_snapshot_bind_to_loopback_with_mounted_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("orders-db");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("username"), "orders_app\n").unwrap();
    std::fs::write(creds.join("password"), "pa$${word}").unwrap();
    let mut env = env(FULL).unwrap();
    env.credentials_dir = dir.path().display().to_string();
    env.state_dir = dir.path().join("state").display().to_string();
    let snapshot = [
        Resource {
            name: "orders-db".into(),
            protocol: "postgres".into(),
            host: "db.shop".into(),
            port: 5432,
            database: "orders".into(),
            ..Resource::default()
        },
        Resource {
            name: "unrelated".into(),
            protocol: "postgres".into(),
            host: "x".into(),
            port: 1,
            ..Resource::default()
        },
    ];
    let resolved = resolve(&env, &snapshot).unwrap();
    assert_eq!(resolved.len(), 1, "only the named resources");
    let config = env.config(resolved).unwrap();
    let orders = &config.resources[0];
    assert_eq!(orders.listen_port, Some(15432));
    assert_eq!(orders.username.as_deref(), Some("orders_app"));
    assert_eq!(
        orders.password.as_deref(),
        Some("pa$${word}"),
        "never expanded"
    );
    assert_eq!(orders.database.as_deref(), Some("orders"));
    let cp = config.control_plane.unwrap();
    assert_eq!(cp.token.as_deref(), Some("gk_secret$1"));
    assert!(cp.state_dir.ends_with("state/state"));
    assert!(
        config.auth.jwt.is_none(),
        "keys over plain http off loopback: no tokens"
    );
    assert_eq!(config.listen_addr, "127.0.0.1:0");
    env.jwks_url = "https://gate.example.com/.well-known/jwks.json".into();
    let config = env.config(Vec::new()).unwrap();
    let issuer = &config.auth.jwt.unwrap().issuers[0];
    assert_eq!(issuer.issuer, "http://gate-control.gate-system:8080");
    assert_eq!(issuer.audience, "gate");
}

#[test]
fn absent_credentials_are_none_and_unreadable_ones_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(credentials_for(dir.path(), "db").unwrap(), (None, None));
    std::fs::create_dir_all(dir.path().join("db").join("password")).unwrap();
    let error = credentials_for(dir.path(), "db").unwrap_err();
    assert!(error.contains("db/password"), "{error}");
}
