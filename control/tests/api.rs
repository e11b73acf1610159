//! Admin API behaviour: policy compile errors, states and simulation, identity tokens that a
//! connector verifies, the OpenAPI document, the UI page and the error shape.
#![allow(clippy::unwrap_used)]

mod common;

use common::{BLOCK_DROP, Db, ROOT_KEY, http, start_cp, start_cp_with};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_compile_on_save_and_simulate() {
    let cp = start_cp(Db::Sqlite).await;
    let broken = "package gate.test\n\npre_request := {\"action\": \"block\"} if {\n    input.query.type ==\n}\n";
    let (status, body) = cp
        .root(
            "POST",
            "/api/v1/policies",
            None,
            Some(&json!({"name": "broken", "rego": broken}).to_string()),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("rego")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("broken.rego:5:1") || message.contains("broken.rego:4:"),
        "want file:line:col: {message}"
    );

    let (status, body) = cp
        .root(
            "POST",
            "/api/v1/policies",
            None,
            Some(
                &json!({"name": "p", "rego": BLOCK_DROP, "stages": ["pre_request", "nope"]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("stages[1]")),
        "{body}"
    );

    let (status, policy) = cp
        .root(
            "POST",
            "/api/v1/policies",
            None,
            Some(&json!({"name": "no-drop", "rego": BLOCK_DROP, "targets": ["prod-*"], "stages": ["pre_request"]}).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{policy}");
    assert_eq!(
        (policy["state"].as_str(), policy["version"].as_u64()),
        (Some("draft"), Some(1))
    );
    let id = policy["id"].as_str().unwrap();

    // Simulate the saved policy and a text.
    let drop = json!({"policy_id": id, "stage": "pre_request", "input": {"query": {"type": "drop"}, "resource": {"name": "prod-db"}}});
    let (status, verdict) = cp
        .root(
            "POST",
            "/api/v1/policies/simulate",
            None,
            Some(&drop.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(
        (verdict["action"].as_str(), verdict["reason"].as_str()),
        (Some("block"), Some("drop is not allowed"))
    );
    let select =
        json!({"rego": BLOCK_DROP, "stage": "pre_request", "input": {"query": {"type": "select"}}});
    let (_, verdict) = cp
        .root(
            "POST",
            "/api/v1/policies/simulate",
            None,
            Some(&select.to_string()),
        )
        .await;
    assert_eq!(verdict["action"], "none", "no opinion: {verdict}");
    let (status, body) = cp
        .root(
            "POST",
            "/api/v1/policies/simulate",
            None,
            Some(r#"{"rego":"package x","stage":"later"}"#),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("stage")));

    // PATCH: new text is a new version; rollback through the state endpoint; history says who.
    let v2 = BLOCK_DROP.replace("drop is not allowed", "no drops here");
    let (status, updated) = cp
        .root(
            "PATCH",
            &format!("/api/v1/policies/{id}"),
            None,
            Some(&json!({"rego": v2, "targets": []}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["targets"], json!([]));
    assert_eq!(
        updated["stages"],
        json!(["pre_request"]),
        "absent fields are kept"
    );
    let (_, active) = cp
        .root(
            "POST",
            &format!("/api/v1/policies/{id}/state"),
            None,
            Some(r#"{"state":"active"}"#),
        )
        .await;
    assert_eq!(
        (active["state"].as_str(), active["version"].as_u64()),
        (Some("active"), Some(2))
    );
    let (_, rolled) = cp
        .root(
            "POST",
            &format!("/api/v1/policies/{id}/state"),
            None,
            Some(r#"{"state":"active","version":1}"#),
        )
        .await;
    assert_eq!(rolled["version"], 1);
    assert!(
        rolled["rego"]
            .as_str()
            .unwrap()
            .contains("drop is not allowed")
    );
    let (status, body) = cp
        .root(
            "POST",
            &format!("/api/v1/policies/{id}/state"),
            None,
            Some(r#"{"state":"active","version":7}"#),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("version")),
        "{body}"
    );
    let (_, history) = cp
        .root("GET", &format!("/api/v1/policies/{id}/history"), None, None)
        .await;
    assert_eq!(history["versions"].as_array().unwrap().len(), 2);
    let changes = history["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 4, "{history}");
    assert_eq!(changes[3]["changed_by"], "system");
    assert_eq!(
        (
            changes[3]["from_version"].as_u64(),
            changes[3]["to_version"].as_u64()
        ),
        (Some(2), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_verify_with_the_published_jwks() {
    let cp = start_cp(Db::Sqlite).await;
    let (_, alice) = cp
        .root(
            "POST",
            "/api/v1/identities",
            None,
            Some(r#"{"name":"alice","email":"alice@example.com"}"#),
        )
        .await;
    let (_, group) = cp
        .root(
            "POST",
            "/api/v1/groups",
            None,
            Some(r#"{"name":"engineering"}"#),
        )
        .await;
    let alice_id = alice["id"].as_str().unwrap();
    let (status, member) = cp
        .root(
            "PUT",
            &format!(
                "/api/v1/groups/{}/members/{alice_id}",
                group["id"].as_str().unwrap()
            ),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{member}");
    let (status, issued) = cp
        .root(
            "POST",
            &format!("/api/v1/identities/{alice_id}/tokens"),
            None,
            Some(r#"{"ttl_seconds":120}"#),
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().unwrap();

    // The connector's own verifier, configured like any OIDC issuer with the published JWKS.
    let (status, jwks) = http(cp.addr(), "GET", "/.well-known/jwks.json", None, None, None).await;
    assert_eq!(status, 200);
    let jwks_file = cp.dir.path().join("jwks.json");
    std::fs::write(&jwks_file, &jwks).unwrap();
    let auth: gate_config::connector::AuthConfig = serde_json::from_value(json!({
        "jwt": {"issuers": [{"issuer": "http://gate-control.test", "audience": "gate", "jwks_file": jwks_file}]}
    }))
    .unwrap();
    let verifier = gate_connector::jwt::JwtVerifier::load(&auth)
        .unwrap()
        .unwrap();
    let claims = verifier.verify(token).unwrap();
    assert_eq!(claims.sub.as_deref(), Some(alice_id));
    assert_eq!(claims.name.as_deref(), Some("alice"));
    assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
    assert_eq!(claims.groups, ["engineering"]);

    // A token for another audience, or tampered with, is refused.
    // (A character in the middle of the signature: the last one carries padding bits.)
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    assert!(verifier.verify(&tampered).is_err());
    let (status, body) = cp
        .root(
            "POST",
            &format!("/api/v1/identities/{alice_id}/tokens"),
            None,
            Some(r#"{"ttl_seconds":999999}"#),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("ttl_seconds")));
    // The signing key survives a restart: the same JWKS.
    let config_yaml = common::config_yaml(cp.dir.path(), None, Some(ROOT_KEY));
    let dir = cp.dir;
    cp.running.stop().await.unwrap();
    let config: gate_config::ControlConfig =
        gate_config::load_str("c.yaml", &config_yaml, &|_| None).unwrap();
    let again = gate_control::server::start(&config, false).await.unwrap();
    let (_, jwks_after) = http(
        again.addr,
        "GET",
        "/.well-known/jwks.json",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(jwks_after, jwks);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_every_route_is_served() {
    let cp = start_cp(Db::Sqlite).await;
    let (status, doc) = http(cp.addr(), "GET", "/api/v1/openapi.json", None, None, None).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = 0;
    for route in gate_control::http::routes::ROUTES {
        let op = &doc["paths"][route.path][route.verb.as_str()];
        assert_eq!(
            op["operationId"],
            route.operation,
            "{} {} missing from OpenAPI",
            route.verb.as_str(),
            route.path
        );
        documented += 1;
        // Served: an unauthenticated call reaches the handler (401), not a 404/405 from the router.
        let path = route
            .path
            .replace("{id}", "x")
            .replace("{identity_id}", "y");
        let (status, body) = http(
            cp.addr(),
            &route.verb.as_str().to_ascii_uppercase(),
            &path,
            None,
            None,
            None,
        )
        .await;
        assert_eq!(status, 401, "{} {path}: {body}", route.verb.as_str());
    }
    // Schemas spell out the fields the handlers accept.
    let resource = &doc["components"]["schemas"]["Resource"];
    assert_eq!(
        resource["properties"]["port"]["type"], "integer",
        "{resource}"
    );
    assert_eq!(resource["properties"]["labels"]["type"], "object");
    assert_eq!(resource["additionalProperties"], false);
    for route in gate_control::http::routes::ROUTES {
        for name in route.body.iter().chain([&route.response]) {
            if !matches!(*name, "JSON lines" | "asciicast") {
                let schema = &doc["components"]["schemas"][*name];
                assert!(
                    schema["properties"].is_object() || *name == "DeleteResponse",
                    "{name} has no properties: {schema}"
                );
            }
        }
    }
    let paths: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        paths, documented,
        "the document has operations the router does not serve"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_health_and_bad_requests() {
    let cp = start_cp(Db::Sqlite).await;
    cp.root(
        "POST",
        "/api/v1/resources",
        None,
        Some(r#"{"name":"<b>db</b>","protocol":"postgres","host":"h","port":1}"#),
    )
    .await;
    cp.root(
        "POST",
        "/api/v1/resources",
        None,
        Some(r#"{"name":"primary-db","protocol":"postgres","host":"h","port":1}"#),
    )
    .await;
    // The admin UI signs in with a session cookie, not a Bearer header (tests/ui_http.rs).
    let (status, _) = http(cp.addr(), "GET", "/", Some(ROOT_KEY), None, None).await;
    assert_eq!(status, 303);
    let (status, health) = http(cp.addr(), "GET", "/health", None, None, None).await;
    assert_eq!(
        (status, health.as_str()),
        (200, r#"{"database":"ok","status":"ok"}"#)
    );

    // Malformed JSON, wrong types, unknown query parameters: 400 naming the field.
    let (status, body) = cp
        .root("POST", "/api/v1/resources", None, Some("{not json"))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("body")),
        "{body}"
    );
    let (status, body) = cp
        .root(
            "POST",
            "/api/v1/resources",
            None,
            Some(r#"{"name":"x","port":"5432"}"#),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("port")),
        "{body}"
    );
    let (status, body) = cp
        .root("GET", "/api/v1/resources?verbose=1", None, None)
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("verbose")),
        "{body}"
    );
    let (status, body) = cp
        .root(
            "POST",
            "/api/v1/resources",
            None,
            Some(r#"{"name":"primary-db","protocol":"postgres","host":"h","port":1}"#),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_exists")),
        "{body}"
    );
    let (status, body) = cp.root("GET", "/api/v1/resources/nope", None, None).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code": "not_found", "message": "resource not found", "field": null})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_only_insecure_mode_starts() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = common::config_yaml(dir.path(), None, None);
    let config: gate_config::ControlConfig =
        gate_config::load_str("c.yaml", &yaml, &|_| None).unwrap();
    let err = gate_control::server::start(&config, false)
        .await
        .unwrap_err();
    assert!(err.contains("--insecure"), "{err}");

    let cp = start_cp_with(Db::Sqlite, None, true).await;
    let (status, body) = http(
        cp.addr(),
        "POST",
        "/api/v1/resources",
        None,
        None,
        Some(r#"{"name":"db","protocol":"postgres","host":"h","port":1}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // A wrong key is still refused in insecure mode.
    let (status, _) = http(
        cp.addr(),
        "GET",
        "/api/v1/resources",
        Some("gk_wrong"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 401);
}

/// `/metrics` after real traffic on both transports passes `promtool check metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool() {
    let cp = start_cp(Db::Sqlite).await;
    cp.root("GET", "/api/v1/resources", None, None).await;
    cp.root("GET", "/api/v1/resources/missing", None, None)
        .await;
    let mut admin = cp.admin(Some(ROOT_KEY), None).await;
    admin
        .list_policies(gate_proto::v1::ListPoliciesRequest {})
        .await
        .unwrap();
    let (status, metrics) = http(cp.addr(), "GET", "/metrics", None, None, None).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"gate_control_requests_total{transport="grpc",operation="list_policies",code="ok"} 1"#
        ),
        "{metrics}"
    );
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
