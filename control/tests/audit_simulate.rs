//! Simulating a policy against the input an audit event recorded (`details.input`): through
//! `POST /api/v1/policies/simulate` with `audit_event_id`, and from the audit page in the UI;
//! events of another organization, events without an input and mixed inputs are refused.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod ui_support;

use common::{Cp, Db, ROOT_KEY, http, start_cp};
use serde_json::{Value, json};
use ui_support::{hidden, sign_in};

const POLICY: &str = "package gate.ipallow\n\nimport rego.v1\n\npre_request := {\"action\": \"block\", \"reason\": \"not from the office\"} if {\n  not startswith(input.client.addr, \"10.\")\n}\n";
const WITH_INPUT: &str = "0190a0a0-0000-7000-8000-000000000001";
const OFFICE_INPUT: &str = "0190a0a0-0000-7000-8000-000000000002";
const NO_INPUT: &str = "0190a0a0-0000-7000-8000-000000000003";

async fn call(cp: &Cp, key: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let (status, text) = http(cp.addr(), method, path, Some(key), None, Some(&body)).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn event(id: &str, details: Value) -> Value {
    json!({
        "id": id, "time": "2026-11-23T10:00:00.000Z", "identity": "alice",
        "resource": "primary-db", "protocol": "postgres", "stage": "pre_request",
        "action": "allow", "statement": "select 1", "details": details,
    })
}

/// Events in `default`: two with a recorded input (outside and inside the office), one without;
/// a policy; returns the policy's id.
async fn recorded(cp: &Cp) -> String {
    let connector = cp.key("default", "connector").await;
    let events = json!({"events": [
        event(WITH_INPUT, json!({"kind": "select", "input": {"client": {"addr": "203.0.113.9"}}})),
        event(OFFICE_INPUT, json!({"kind": "select", "input": {"client": {"addr": "10.1.2.3"}}})),
        event(NO_INPUT, json!({"kind": "select"})),
    ]});
    let (status, reply) = call(cp, &connector, "POST", "/api/v1/audit", &events).await;
    assert_eq!(
        (status, reply["accepted"].as_u64()),
        (200, Some(3)),
        "{reply}"
    );
    let policy = json!({"name": "ip-allowlist", "state": "draft", "stages": ["pre_request"], "rego": POLICY});
    let (status, created) = call(cp, ROOT_KEY, "POST", "/api/v1/policies", &policy).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_api_simulates_a_policy_against_an_events_recorded_input() {
    let cp = start_cp(Db::Sqlite).await;
    let policy = recorded(&cp).await;
    let reader = cp.key("default", "readonly").await;
    let simulate =
        |event: &str| json!({"policy_id": policy, "stage": "pre_request", "audit_event_id": event});
    // A readonly key may simulate; the recorded input decides.
    let (status, reply) = call(
        &cp,
        &reader,
        "POST",
        "/api/v1/policies/simulate",
        &simulate(WITH_INPUT),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["action"].as_str(), reply["reason"].as_str()),
        (Some("block"), Some("not from the office")),
        "{reply}"
    );
    let (_, reply) = call(
        &cp,
        &reader,
        "POST",
        "/api/v1/policies/simulate",
        &simulate(OFFICE_INPUT),
    )
    .await;
    assert_eq!(reply["action"], "none", "{reply}");

    // No input recorded, an unknown event, and both an input and an event are refused by field.
    let (status, reply) = call(
        &cp,
        &reader,
        "POST",
        "/api/v1/policies/simulate",
        &simulate(NO_INPUT),
    )
    .await;
    assert_eq!(
        (status, reply["field"].as_str()),
        (400, Some("audit_event_id")),
        "{reply}"
    );
    assert!(
        reply["message"].as_str().unwrap().contains("details.input"),
        "{reply}"
    );
    let unknown = "0190a0a0-0000-7000-8000-000000000099";
    let (status, reply) = call(
        &cp,
        &reader,
        "POST",
        "/api/v1/policies/simulate",
        &simulate(unknown),
    )
    .await;
    assert_eq!(status, 404, "{reply}");
    let mut both = simulate(WITH_INPUT);
    both["input"] = json!({"client": {"addr": "10.0.0.1"}});
    let (status, reply) = call(&cp, &reader, "POST", "/api/v1/policies/simulate", &both).await;
    assert_eq!(
        (status, reply["field"].as_str()),
        (400, Some("audit_event_id")),
        "{reply}"
    );

    // Another organization's key cannot reach the event (a policy text of its own, same event id).
    let acme = cp.org("acme").await;
    let outsider = cp.key(&acme, "admin").await;
    let foreign = json!({"rego": POLICY, "stage": "pre_request", "audit_event_id": WITH_INPUT});
    let (status, reply) = call(
        &cp,
        &outsider,
        "POST",
        "/api/v1/policies/simulate",
        &foreign,
    )
    .await;
    assert_eq!(status, 404, "{reply}");

    // The event is found by id through the audit API as well.
    let (status, page) = cp
        .root("GET", &format!("/api/v1/audit?id={WITH_INPUT}"), None, None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(
        page["events"][0]["details"]["input"]["client"]["addr"],
        "203.0.113.9"
    );
}

#[tokio::test]
async fn the_audit_page_links_recorded_inputs_to_a_simulation() {
    let cp = start_cp(Db::Sqlite).await;
    let policy = recorded(&cp).await;
    let reader = cp.key("default", "readonly").await;
    let browser = sign_in(cp.addr(), &reader).await;

    // Only the events with an input offer a simulation.
    let audit = browser.get("/ui/audit").await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert!(
        audit
            .body
            .contains(&format!("/ui/audit/{WITH_INPUT}/simulate")),
        "{}",
        audit.body
    );
    assert!(
        !audit
            .body
            .contains(&format!("/ui/audit/{NO_INPUT}/simulate")),
        "{}",
        audit.body
    );

    let page = browser
        .get(&format!("/ui/audit/{WITH_INPUT}/simulate"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("203.0.113.9"),
        "the recorded input is shown: {}",
        page.body
    );
    assert!(page.body.contains("ip-allowlist"), "{}", page.body);
    let csrf = hidden(&page.body, "csrf").unwrap();
    assert_eq!(csrf, browser.csrf);
    let result = browser
        .post(
            &format!("/ui/audit/{WITH_INPUT}/simulate"),
            &[("policy_id", &policy), ("stage", "pre_request")],
        )
        .await;
    assert_eq!(result.status, 200, "{}", result.body);
    assert!(result.body.contains("id=\"sim-result\""), "{}", result.body);
    assert!(
        result.body.contains("not from the office"),
        "{}",
        result.body
    );

    // An event without an input says so; the form is not offered.
    let none = browser.get(&format!("/ui/audit/{NO_INPUT}/simulate")).await;
    assert_eq!(none.status, 200, "{}", none.body);
    assert!(
        none.body.contains("carries no policy input"),
        "{}",
        none.body
    );
    assert!(!none.body.contains("id=\"simulate\""), "{}", none.body);
    // Without the CSRF token nothing is evaluated.
    let forged = ui_support::request(
        cp.addr(),
        "POST",
        &format!("/ui/audit/{WITH_INPUT}/simulate"),
        &[ui_support::FORM, ("Cookie", &browser.cookie)],
        &ui_support::form(&[("policy_id", &policy), ("stage", "pre_request")]),
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
}
