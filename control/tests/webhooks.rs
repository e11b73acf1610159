//! Webhooks end to end against a real HTTP receiver that checks signatures independently:
//! lifecycle events with their fields, the secret shown once, the SSRF guard, authz over HTTP and
//! gRPC, and receiver down → retries → dead letter (table and file) → replay → delivered once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::receiver::{Mode, Receiver};
use common::{Cp, Db, start_cp_yaml};
use serde_json::{Value, json};

const FAST: &str = "delivery:\n  max_attempts: 3\n  initial_backoff: 50ms\n  max_backoff: 200ms\n  timeout: 2s\n  poll_interval: 50ms\n";

async fn post(cp: &Cp, path: &str, body: Value) -> (u16, Value) {
    cp.root("POST", path, None, Some(&body.to_string())).await
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The deliveries listed as delivered, once there are `n` of them (the
/// worker records an outcome just after the receiver answers).
async fn delivered(cp: &Cp, n: usize) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (_, list) = cp
            .root("GET", "/api/v1/deliveries?state=delivered", None, None)
            .await;
        if list["deliveries"].as_array().map_or(0, Vec::len) >= n {
            return list;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A resource and a webhook for `events` pointing at `receiver`; returns the resource id.
async fn setup(cp: &Cp, receiver: &Receiver, events: &[&str]) -> String {
    let (status, resource) = post(
        cp,
        "/api/v1/resources",
        json!({"name": "db", "protocol": "postgres", "host": "h", "port": 5432}),
    )
    .await;
    assert_eq!(status, 201, "{resource}");
    let (status, created) = post(
        cp,
        "/api/v1/webhooks",
        json!({"url": receiver.url(), "events": events, "description": "test"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    receiver.set_secret(secret);
    // Shown once: neither get nor list carries it.
    let id = created["webhook"]["id"].as_str().unwrap();
    let (_, got) = cp
        .root("GET", &format!("/api/v1/webhooks/{id}"), None, None)
        .await;
    assert_eq!(got["url"], receiver.url());
    assert!(!got.to_string().contains(secret));
    let (_, list) = cp.root("GET", "/api/v1/webhooks", None, None).await;
    assert!(!list.to_string().contains(secret));
    resource["id"].as_str().unwrap().to_owned()
}

async fn request_access(cp: &Cp, resource: &str, subject: &str) -> String {
    let (status, r) = post(
        cp,
        "/api/v1/access-requests",
        json!({"subject": subject, "resource_id": resource, "reason": "incident 42",
               "duration_seconds": 600, "requested_by": format!("{subject}@example.com"),
               "scopes": [{"operation": "query", "target": "customers"}]}),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    r["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_arrive_signed_with_their_fields() {
    let cp = start_cp_yaml(Db::Sqlite, FAST).await;
    let receiver = Receiver::start("127.0.0.1:0").await;
    let events = [
        "access.requested",
        "access.approved",
        "access.denied",
        "access.revoked",
    ];
    let resource = setup(&cp, &receiver, &events).await;
    let first = request_access(&cp, &resource, "alice").await;
    let second = request_access(&cp, &resource, "bob").await;
    let (status, approved) = post(
        &cp,
        &format!("/api/v1/access-requests/{first}/approve"),
        json!({"approved_by": "carol"}),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    let (status, _) = post(
        &cp,
        &format!("/api/v1/access-requests/{second}/deny"),
        json!({"denied_by": "dave"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &cp,
        &format!("/api/v1/access-requests/{first}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    wait_for("five deliveries", || receiver.accepted().len() == 5).await;
    let got = receiver.received();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for r in &got {
        assert!(r.signature_ok, "bad signature on {r:?}");
        assert!((now - r.timestamp).abs() < 60, "{r:?}");
        assert_eq!(r.event, r.body["type"].as_str().unwrap());
        assert!(!r.delivery.is_empty());
        assert_eq!(r.body["org_id"], "default");
    }
    let by_type = |t: &str, id: &str| {
        got.iter()
            .find(|r| r.event == t && r.body["data"]["access_request"]["id"] == id)
            .unwrap_or_else(|| panic!("no {t} for {id}: {got:?}"))
            .body["data"]["access_request"]
            .clone()
    };
    let requested = by_type("access.requested", &first);
    assert_eq!(requested["status"], "pending");
    assert_eq!(requested["subject"], "alice");
    assert_eq!(requested["requested_by"], "alice@example.com");
    assert_eq!(requested["resource_id"], resource.as_str());
    assert_eq!(requested["reason"], "incident 42");
    assert_eq!(requested["duration_seconds"], 600);
    assert_eq!(
        requested["scopes"],
        json!([{"operation": "query", "target": "customers"}])
    );
    assert!(requested.get("approved_by").is_none());
    let approval = by_type("access.approved", &first);
    assert_eq!(approval["status"], "approved");
    assert_eq!(approval["approved_by"], "carol");
    assert_eq!(approval["expires_at"], approved["expires_at"]);
    let denial = by_type("access.denied", &second);
    assert_eq!(denial["denied_by"], "dave");
    assert_eq!(denial["status"], "denied");
    assert_eq!(by_type("access.revoked", &first)["status"], "revoked");

    let list = delivered(&cp, 5).await;
    assert_eq!(list["deliveries"].as_array().unwrap().len(), 5, "{list}");
    let (_, metrics) = common::http(cp.addr(), "GET", "/metrics", None, None, None).await;
    assert!(
        metrics.contains(
            r#"gate_control_delivery_attempts_total{target="webhook",result="success"} 5"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_dead_letter_then_replay_delivers_once() {
    let dead_dir = tempfile::tempdir().unwrap();
    let yaml = format!("{FAST}  dead_letter_dir: {}\n", dead_dir.path().display());
    let cp = start_cp_yaml(Db::Sqlite, &yaml).await;
    let receiver = Receiver::start("127.0.0.1:0").await;
    receiver.set_mode(Mode::Fail);
    let resource = setup(&cp, &receiver, &["access.requested"]).await;
    let request = request_access(&cp, &resource, "erin").await;

    wait_for("three failed attempts", || receiver.received().len() >= 3).await;
    let dead = loop {
        let (_, list) = cp
            .root("GET", "/api/v1/deliveries?state=dead", None, None)
            .await;
        if let Some(d) = list["deliveries"].as_array().unwrap().first() {
            break d.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["last_error"], "HTTP status 503");
    assert_eq!(dead["event_type"], "access.requested");
    let file = dead_dir
        .path()
        .join(format!("{}.json", dead["id"].as_str().unwrap()));
    // The file follows the row's change to `dead`.
    for _ in 0..250 {
        if file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["state"], "dead");
    let payload: Value = serde_json::from_str(written["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["access_request"]["id"], request.as_str());
    // No fourth attempt on its own: 3 was the last.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received().len(), 3);
    let (_, metrics) = common::http(cp.addr(), "GET", "/metrics", None, None, None).await;
    assert!(
        metrics.contains(r#"gate_control_dead_letters_total{target="webhook"} 1"#),
        "{metrics}"
    );

    // A pending delivery cannot be replayed; a dead one can, and is delivered once.
    receiver.set_mode(Mode::Ok);
    let id = dead["id"].as_str().unwrap();
    let (status, replayed) = post(&cp, &format!("/api/v1/deliveries/{id}/replay"), json!({})).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["attempts"], 0);
    wait_for("the replayed delivery", || receiver.accepted().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(
        accepted[0].delivery, id,
        "the id header stays the same across retries"
    );
    assert!(accepted[0].signature_ok);
    let after = delivered(&cp, 1).await;
    assert_eq!(after["deliveries"][0]["id"], id);
    let (status, again) = cp
        .root("POST", "/api/v1/deliveries/nope/replay", None, Some("{}"))
        .await;
    assert_eq!(status, 404, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_input_is_checked_and_scoped() {
    let cp = start_cp_yaml(Db::Sqlite, FAST).await;
    for (body, field) in [
        (
            json!({"url": "http://example.com/hook", "events": ["access.requested"]}),
            "url",
        ),
        (
            json!({"url": "https://169.254.169.254/latest", "events": ["access.requested"]}),
            "url",
        ),
        (
            json!({"url": "https://metadata.google.internal/x", "events": ["access.requested"]}),
            "url",
        ),
        (
            json!({"url": "ftp://x/y", "events": ["access.requested"]}),
            "url",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "events": ["access.nope"]}),
            "events[0]",
        ),
        (json!({"events": ["access.requested"]}), "url"),
    ] {
        let (status, error) = post(&cp, "/api/v1/webhooks", body.clone()).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (400, Some(field)),
            "{body} → {error}"
        );
    }
    let (status, bad) = cp
        .root("GET", "/api/v1/deliveries?state=lost", None, None)
        .await;
    assert_eq!((status, bad["field"].as_str()), (400, Some("state")));

    // Admin only; other organizations' webhooks do not exist for a key.
    let (status, created) = post(
        &cp,
        "/api/v1/webhooks",
        json!({"url": "https://hooks.example.com/x", "events": ["policy.activated"]}),
    )
    .await;
    assert_eq!(status, 201);
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();
    let editor = cp.key("default", "editor").await;
    let (status, _) = common::http(
        cp.addr(),
        "GET",
        "/api/v1/webhooks",
        Some(&editor),
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let other = cp.org("other").await;
    let admin = cp.key(&other, "admin").await;
    let path = format!("/api/v1/webhooks/{id}");
    let (status, _) = common::http(cp.addr(), "GET", &path, Some(&admin), None, None).await;
    assert_eq!(status, 404);

    // gRPC goes through the same functions: the editor is refused, the root key sees it.
    let mut grpc = cp.admin(Some(&editor), None).await;
    let refused = grpc
        .list_webhooks(gate_proto::v1::ListWebhooksRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let mut root = cp.admin(Some(common::ROOT_KEY), None).await;
    let replaced = root
        .update_webhook(gate_proto::v1::UpdateWebhookRequest {
            id: id.clone(),
            url: "https://hooks.example.com/y".into(),
            events: vec!["access.denied".into()],
            description: String::new(),
            enabled: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (replaced.url.as_str(), replaced.enabled),
        ("https://hooks.example.com/y", false)
    );
    let (status, _) = cp.root("DELETE", &path, None, None).await;
    assert_eq!(status, 200);
    let (status, _) = cp.root("GET", &path, None, None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_decides_their_own_request() {
    let cp = start_cp_yaml(Db::Sqlite, FAST).await;
    let receiver = Receiver::start("127.0.0.1:0").await;
    let resource = setup(&cp, &receiver, &["access.approved"]).await;
    let request = request_access(&cp, &resource, "frank").await;
    for by in ["frank@example.com", "frank"] {
        let (status, error) = post(
            &cp,
            &format!("/api/v1/access-requests/{request}/approve"),
            json!({"approved_by": by}),
        )
        .await;
        assert_eq!(
            (status, error["field"].as_str()),
            (403, Some("approved_by")),
            "{error}"
        );
    }
    let (_, list) = cp.root("GET", "/api/v1/deliveries", None, None).await;
    assert_eq!(
        list["deliveries"].as_array().unwrap().len(),
        0,
        "nothing queued for a refusal"
    );
    let (status, _) = cp
        .root(
            "GET",
            &format!("/api/v1/access-requests/{request}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_activation_and_connector_deregistration_are_announced() {
    let cp = start_cp_yaml(Db::Sqlite, FAST).await;
    let receiver = Receiver::start("127.0.0.1:0").await;
    let (status, created) = post(
        &cp,
        "/api/v1/webhooks",
        json!({"url": receiver.url(), "events": ["policy.activated", "connector.offline"]}),
    )
    .await;
    assert_eq!(status, 201);
    receiver.set_secret(created["secret"].as_str().unwrap());
    // Created as a draft: nothing; activated: one event; activated again: nothing new.
    let (status, policy) = post(
        &cp,
        "/api/v1/policies",
        json!({"name": "p", "rego": common::BLOCK_DROP, "state": "draft"}),
    )
    .await;
    assert_eq!(status, 201, "{policy}");
    let state = format!("/api/v1/policies/{}/state", policy["id"].as_str().unwrap());
    for _ in 0..2 {
        let (status, _) = post(&cp, &state, json!({"state": "active"})).await;
        assert_eq!(status, 200);
    }
    let key = cp.key("default", "connector").await;
    let body = json!({"name": "edge-1", "version": "1.2.3"}).to_string();
    let (status, registered) = common::http(
        cp.addr(),
        "POST",
        "/api/v1/connectors",
        Some(&key),
        None,
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let registered: Value = serde_json::from_str(&registered).unwrap();
    let path = format!(
        "/api/v1/connectors/{}",
        registered["connector"]["id"].as_str().unwrap()
    );
    for _ in 0..2 {
        let (status, _) = common::http(cp.addr(), "DELETE", &path, Some(&key), None, None).await;
        assert_eq!(status, 200);
    }
    wait_for("two events", || receiver.accepted().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = receiver.accepted();
    assert_eq!(got.len(), 2, "{got:?}");
    let activated = got.iter().find(|r| r.event == "policy.activated").unwrap();
    let p = &activated.body["data"]["policy"];
    assert_eq!(
        (p["name"].as_str(), p["state"].as_str()),
        (Some("p"), Some("active"))
    );
    assert_eq!(p["previous_state"], "draft");
    assert_eq!(p["activated_by"], "system");
    let offline = got.iter().find(|r| r.event == "connector.offline").unwrap();
    let c = &offline.body["data"]["connector"];
    assert_eq!(
        (c["name"].as_str(), c["reason"].as_str()),
        (Some("edge-1"), Some("deregistered"))
    );
    assert!(got.iter().all(|r| r.signature_ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_that_runs_out_is_announced_as_expired() {
    let cp = start_cp_yaml(Db::Sqlite, FAST).await;
    let receiver = Receiver::start("127.0.0.1:0").await;
    let resource = setup(&cp, &receiver, &["access.expired"]).await;
    let (status, r) = post(
        &cp,
        "/api/v1/access-requests",
        json!({"subject": "gina", "resource_id": resource, "duration_seconds": 1}),
    )
    .await;
    assert_eq!(status, 201);
    let id = r["id"].as_str().unwrap();
    let (status, _) = post(
        &cp,
        &format!("/api/v1/access-requests/{id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let start = Instant::now();
    while receiver.accepted().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no access.expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = receiver.accepted();
    assert_eq!(got.len(), 1, "{got:?}");
    let expired = &got[0].body["data"]["access_request"];
    assert_eq!(
        (expired["id"].as_str(), expired["status"].as_str()),
        (Some(id), Some("expired"))
    );
    assert!(got[0].signature_ok);
    let (_, now) = cp
        .root("GET", &format!("/api/v1/access-requests/{id}"), None, None)
        .await;
    assert_eq!(now["status"], "expired");
}
