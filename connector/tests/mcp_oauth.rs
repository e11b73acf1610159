//! MCP resources as OAuth 2.1 resource servers: protected-resource metadata
//! (RFC 9728) naming the configured issuers, the 401 challenge pointing at
//! it, audience-bound tokens, and the client's token never reaching the
//! upstream (which gets the resource's own `upstream_headers`).
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod http_support;

use common::jwt::{ISSUER, claims, now, token, trusted_issuer};
use common::*;
use http_support::*;

const POLICY: &str = r#"package gate.mcp_oauth

import rego.v1

default session := {"action": "allow"}

default pre_request := {"action": "allow"}

default post_request := {"action": "allow"}
"#;

struct Setup {
    gate: GateOnly,
    port: u16,
    pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (pem, auth) = trusted_issuer(dir.path());
    let policy = dir.path().join("mcp.rego");
    std::fs::write(&policy, POLICY).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let echo = echo_upstream(&runtime);
    std::mem::forget(runtime); // lives as long as the test process
    let port = gate_testkit::free_port().unwrap();
    let yaml = format!(
        "{auth}resources:\n  - {{name: tools, protocol: mcp, host: 127.0.0.1, port: {echo}, listen_port: {port}, endpoint_path: /agents/mcp, \
         upstream_headers: {{Authorization: 'Bearer upstream-own-secret'}}}}\n\
         policies:\n  - {{path: '{p}', stage: session}}\n  - {{path: '{p}', stage: pre_request}}\n  - {{path: '{p}', stage: post_request}}\n",
        p = policy.display()
    );
    Setup {
        gate: start_yaml(&yaml, None),
        port,
        pem,
        _dir: dir,
    }
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

fn post(s: &Setup, bearer: Option<&str>) -> Curl {
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec![
        "-H",
        "Content-Type: application/json",
        "-H",
        "Accept: application/json, text/event-stream",
        "--data",
        LIST,
    ];
    if let Some(auth) = &auth {
        args.extend(["-H", auth.as_str()]);
    }
    curl(&args, &format!("http://127.0.0.1:{}/agents/mcp", s.port))
}

#[test]
fn protected_resource_metadata_names_the_issuers() {
    let s = setup();
    let origin = format!("http://127.0.0.1:{}", s.port);
    for path in [
        "/.well-known/oauth-protected-resource/agents/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let doc = curl(&[], &format!("{origin}{path}"));
        assert_eq!(doc.status, 200, "{path}: {}", doc.text());
        assert_eq!(doc.header("content-type"), Some("application/json"));
        let doc = doc.json();
        assert_eq!(doc["resource"], format!("{origin}/agents/mcp"), "{doc}");
        assert_eq!(doc["authorization_servers"], serde_json::json!([ISSUER]));
        assert_eq!(
            doc["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
        assert_eq!(doc["resource_name"], "tools");
    }
    let other = curl(
        &[],
        &format!("{origin}/.well-known/oauth-protected-resource/elsewhere"),
    );
    assert_eq!(other.status, 401, "only this resource's metadata is public");
    // A 401 points the client at the metadata.
    let anonymous = post(&s, None);
    assert_eq!(anonymous.status, 401);
    let challenges: Vec<&str> = anonymous
        .headers
        .iter()
        .filter(|(n, _)| n == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect();
    let bearer = challenges
        .iter()
        .find(|c| c.starts_with("Bearer "))
        .unwrap_or_else(|| panic!("{challenges:?}"));
    assert!(
        !bearer.contains("invalid_token"),
        "no token was presented: {bearer}"
    );
    assert!(
        bearer.contains(&format!(
            "resource_metadata=\"{origin}/.well-known/oauth-protected-resource/agents/mcp\""
        )),
        "{bearer}"
    );
}

#[test]
fn tokens_are_audience_bound_and_never_reach_the_upstream() {
    let s = setup();
    let exp = now() + 300;
    let elsewhere = token(
        &s.pem,
        "k1",
        claims("ada", &["eng"], "another-service", exp),
    );
    let refused = post(&s, Some(&elsewhere));
    assert_eq!(
        refused.status,
        401,
        "a token for another audience: {}",
        refused.text()
    );
    assert!(
        refused.headers.iter().any(|(n, v)| n == "www-authenticate"
            && v.contains("error=\"invalid_token\"")
            && v.contains("resource_metadata=")),
        "{:?}",
        refused.headers
    );
    let ours = token(&s.pem, "k1", claims("ada", &["eng"], "gate", exp));
    let reply = post(&s, Some(&ours));
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The echo upstream answers with the request it got.
    let echoed = reply.json();
    assert_eq!(
        echoed["headers"]["authorization"], "Bearer upstream-own-secret",
        "{echoed}"
    );
    assert!(
        !reply.text().contains(&ours),
        "the client's token was forwarded: {echoed}"
    );
    let audit = s.gate.audit_when(|a| a.contains("tools/list"));
    assert!(audit.contains("\"identity\":\"ada\""), "{audit}");
}

#[test]
fn mcp_resources_refuse_pass_authorization() {
    let yaml = "resources:\n  - {name: t, protocol: mcp, host: 127.0.0.1, port: 1, listen_port: 7999, pass_authorization: true, upstream_headers: {X-Key: k}}\n";
    let problems =
        gate_config::load_str::<gate_config::ConnectorConfig>("test.yaml", yaml, &|_| None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
    assert!(
        problems.contains("pass_authorization") && problems.contains("never forward"),
        "{problems}"
    );
    assert!(
        !problems.contains("resources[0].upstream_headers"),
        "MCP resources may set upstream_headers: {problems}"
    );
}
