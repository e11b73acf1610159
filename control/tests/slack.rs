//! Slack approvals against a local fake of Slack's Web API: Block Kit messages routed by
//! resource → org → default channel, requesters told through mapping / user id / lookupByEmail,
//! button callbacks signed by PyPI slack_sdk (forged and expired ones refused), approver groups
//! and self-approval enforced in Slack, the original message updated, and Slack failures retried
//! through the outbox.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::fake_slack::{FakeSlack, slack_sdk_signature};
use common::{Cp, Db, start_cp_yaml};
use serde_json::{Value, json};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

async fn post(cp: &Cp, org: Option<&str>, path: &str, body: Value) -> Value {
    let (status, reply) = cp.root("POST", path, org, Some(&body.to_string())).await;
    assert!(status == 200 || status == 201, "{path}: {status} {reply}");
    reply
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

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A click on `action_id` for `value` by Slack user `user`, as Slack sends it.
fn click_body(user: &str, action_id: &str, value: &str) -> String {
    let payload = json!({"type": "block_actions", "user": {"id": user},
        "actions": [{"action_id": action_id, "value": value, "type": "button"}]});
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

/// POST the callback with the given signature headers; returns (status, JSON).
async fn callback(cp: &Cp, body: &str, timestamp: &str, signature: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(cp.addr()).await.unwrap();
    let request = format!(
        "POST /integrations/slack/actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         X-Slack-Request-Timestamp: {timestamp}\r\nX-Slack-Signature: {signature}\r\n\r\n{body}",
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(rest).unwrap_or(Value::String(rest.to_owned())),
    )
}

/// A click signed by slack_sdk with the right secret, now.
async fn click(cp: &Cp, user: &str, action_id: &str, value: &str) -> Value {
    let body = click_body(user, action_id, value);
    let ts = now().to_string();
    let (status, reply) = callback(cp, &body, &ts, &slack_sdk_signature(SECRET, &ts, &body)).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_round_trip_through_slack() {
    let slack = FakeSlack::start(&[
        ("U0BOB00001", "bob@example.com"),
        ("U0DAVE0001", "dave@example.com"),
        ("U0MALLORY1", "mallory@example.com"),
    ])
    .await;
    let yaml = format!(
        "delivery:\n  max_attempts: 5\n  initial_backoff: 50ms\n  max_backoff: 100ms\n  poll_interval: 50ms\n\
         slack:\n  bot_token: xoxb-test\n  signing_secret: {SECRET}\n  default_approval_channel: C0DEFAULT\n\
         \x20 org_approval_channels: {{acme: C0ACME}}\n  resource_approval_channels: {{payments-db: C0PAYMENTS}}\n\
         \x20 requester_mappings: {{alice@example.com: U0ALICE001, carol@example.com: U0CAROL001}}\n\
         \x20 slack_base_url: {}\n",
        slack.base_url()
    );
    let cp = start_cp_yaml(Db::Sqlite, &yaml).await;
    let acme = cp.org("acme").await;
    let mut resources = Vec::new();
    for (org, name) in [
        (None, "payments-db"),
        (None, "other-db"),
        (Some(acme.as_str()), "acme-db"),
    ] {
        let r = post(
            &cp,
            org,
            "/api/v1/resources",
            json!({"name": name, "protocol": "postgres", "host": "h", "port": 5432}),
        )
        .await;
        resources.push(r["id"].as_str().unwrap().to_owned());
    }
    // Approvers: members of `admins` (slack.approver_groups' default).
    let group = post(&cp, None, "/api/v1/groups", json!({"name": "admins"})).await;
    let group = group["id"].as_str().unwrap();
    for name in ["alice", "carol", "dave", "mallory"] {
        let i = post(
            &cp,
            None,
            "/api/v1/identities",
            json!({"name": name, "email": format!("{name}@example.com")}),
        )
        .await;
        if name != "mallory" {
            let path = format!(
                "/api/v1/groups/{group}/members/{}",
                i["id"].as_str().unwrap()
            );
            assert_eq!(cp.root("PUT", &path, None, None).await.0, 200);
        }
    }
    let payments = post(&cp, None, "/api/v1/access-requests", json!({"subject": "alice",
        "resource_id": resources[0], "duration_seconds": 900, "reason": "deploy",
        "requested_by": "alice@example.com", "scopes": [{"operation": "query", "target": "orders"}]})).await;
    let other = post(
        &cp,
        None,
        "/api/v1/access-requests",
        json!({"subject": "erin",
        "resource_id": resources[1], "duration_seconds": 900, "requested_by": "U0DIRECT99"}),
    )
    .await;
    let in_acme = post(
        &cp,
        Some(&acme),
        "/api/v1/access-requests",
        json!({"subject": "bob",
        "resource_id": resources[2], "duration_seconds": 900, "requested_by": "bob@example.com"}),
    )
    .await;

    // Three approval messages, each in the channel precedence picks; three requester notices.
    wait_for("six posts", || slack.calls("chat.postMessage").len() == 6).await;
    let posts = slack.calls("chat.postMessage");
    assert!(posts.iter().all(|c| c.token == "Bearer xoxb-test"));
    let channel_of = |id: &Value| {
        posts
            .iter()
            .find(|c| c.body["blocks"].to_string().contains(id.as_str().unwrap()))
            .unwrap_or_else(|| panic!("no message for {id}"))
            .body["channel"]
            .clone()
    };
    assert_eq!(channel_of(&payments["id"]), "C0PAYMENTS");
    assert_eq!(channel_of(&other["id"]), "C0DEFAULT");
    assert_eq!(channel_of(&in_acme["id"]), "C0ACME");
    let dms: Vec<&str> = posts
        .iter()
        .filter_map(|c| c.body["channel"].as_str())
        .filter(|c| c.starts_with('U'))
        .collect();
    for user in ["U0ALICE001", "U0DIRECT99", "U0BOB00001"] {
        assert!(dms.contains(&user), "{user} not told: {dms:?}");
    }
    assert_eq!(
        slack.calls("users.lookupByEmail").len(),
        1,
        "only bob needed a lookup"
    );
    let message = posts
        .iter()
        .find(|c| c.body["channel"] == "C0PAYMENTS")
        .unwrap()
        .body
        .clone();
    let buttons = message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap()["elements"]
        .clone();
    assert_eq!(buttons[0]["action_id"], "gate_approve");
    assert_eq!(buttons[1]["action_id"], "gate_deny");
    let value = buttons[0]["value"].as_str().unwrap().to_owned();
    assert_eq!(
        value,
        format!("default:{}", payments["id"].as_str().unwrap())
    );
    assert!(
        message["blocks"].to_string().contains("query orders"),
        "{message}"
    );

    // Forged, expired and unsigned callbacks: 401, nothing changes.
    let body = click_body("U0CAROL001", "gate_approve", &value);
    let ts = now().to_string();
    let forged = slack_sdk_signature("not-the-secret", &ts, &body);
    assert_eq!(callback(&cp, &body, &ts, &forged).await.0, 401);
    let old = (now() - 600).to_string();
    let expired = slack_sdk_signature(SECRET, &old, &body);
    let (status, error) = callback(&cp, &body, &old, &expired).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (401, Some("x-slack-signature")),
        "{error}"
    );
    let tampered = slack_sdk_signature(SECRET, &ts, &body.replace("approve", "deny"));
    assert_eq!(callback(&cp, &body, &ts, &tampered).await.0, 401);

    // Not an approver; the requester themself: refused in Slack, still pending.
    let refused = click(&cp, "U0MALLORY1", "gate_approve", &value).await;
    assert_eq!(refused["response_type"], "ephemeral");
    assert!(
        refused["text"].as_str().unwrap().contains("may not"),
        "{refused}"
    );
    let own = click(&cp, "U0ALICE001", "gate_approve", &value).await;
    assert!(
        own["text"].as_str().unwrap().contains("someone else"),
        "{own}"
    );
    let path = format!(
        "/api/v1/access-requests/{}",
        payments["id"].as_str().unwrap()
    );
    assert_eq!(
        cp.root("GET", &path, None, None).await.1["status"],
        "pending"
    );

    // Carol (mapped) approves; Dave (found through users.info) denies the other one.
    let done = click(&cp, "U0CAROL001", "gate_approve", &value).await;
    assert!(
        done["text"].as_str().unwrap().contains("Approved by carol"),
        "{done}"
    );
    let (_, approved) = cp.root("GET", &path, None, None).await;
    assert_eq!(
        (
            approved["status"].as_str(),
            approved["approved_by"].as_str()
        ),
        (Some("approved"), Some("carol"))
    );
    let other_value = format!("default:{}", other["id"].as_str().unwrap());
    click(&cp, "U0DAVE0001", "gate_deny", &other_value).await;
    let (_, denied) = cp
        .root(
            "GET",
            &format!("/api/v1/access-requests/{}", other["id"].as_str().unwrap()),
            None,
            None,
        )
        .await;
    assert_eq!(denied["denied_by"], "dave");
    // A second click on a decided request changes nothing.
    let again = click(&cp, "U0DAVE0001", "gate_deny", &value).await;
    assert!(
        again["text"].as_str().unwrap().contains("approved"),
        "{again}"
    );

    // The original messages are updated with the outcome (no buttons left).
    wait_for("two updates", || slack.calls("chat.update").len() == 2).await;
    let updates = slack.calls("chat.update");
    let update = updates
        .iter()
        .find(|c| c.body["channel"] == "C0PAYMENTS")
        .unwrap();
    assert!(
        update.body["text"]
            .as_str()
            .unwrap()
            .starts_with("Approved by carol"),
        "{:?}",
        update.body
    );
    assert!(
        update.body["ts"]
            .as_str()
            .unwrap()
            .starts_with("1700000000.")
    );
    assert!(!update.body["blocks"].to_string().contains("gate_approve"));
    assert!(updates.iter().any(|c| c.body["text"] == "Denied by dave"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_failures_are_retried_through_the_outbox() {
    let slack = FakeSlack::start(&[]).await;
    slack.fail_posts(Some("ratelimited"));
    let yaml = format!(
        "delivery:\n  max_attempts: 20\n  initial_backoff: 50ms\n  max_backoff: 100ms\n  poll_interval: 50ms\n\
         slack:\n  bot_token: xoxb-test\n  signing_secret: {SECRET}\n  default_approval_channel: C0DEFAULT\n\
         \x20 slack_base_url: {}\n",
        slack.base_url()
    );
    let cp = start_cp_yaml(Db::Sqlite, &yaml).await;
    let r = post(
        &cp,
        None,
        "/api/v1/resources",
        json!({"name": "db", "protocol": "postgres", "host": "h", "port": 5432}),
    )
    .await;
    post(&cp, None, "/api/v1/access-requests",
        json!({"subject": "alice", "resource_id": r["id"], "duration_seconds": 60, "requested_by": "ghost@example.com"})).await;
    wait_for("three failed posts", || {
        slack.calls("chat.postMessage").len() >= 3
    })
    .await;
    let (_, list) = cp.root("GET", "/api/v1/deliveries", None, None).await;
    let d = &list["deliveries"][0];
    assert_eq!(d["target_kind"], "slack");
    assert_eq!(
        d["last_error"], "slack chat.postMessage: ratelimited",
        "{d}"
    );
    slack.fail_posts(None);
    let start = Instant::now();
    loop {
        let (_, list) = cp
            .root("GET", "/api/v1/deliveries?state=delivered", None, None)
            .await;
        if list["deliveries"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let posted = slack.calls("chat.postMessage");
    assert!(posted.len() >= 4);
    assert_eq!(posted.last().unwrap().body["channel"], "C0DEFAULT");
    // Every attempt went to the default channel; the unknown requester (users_not_found) gets
    // no DM and does not fail the delivery.
    assert_eq!(
        slack.calls("users.lookupByEmail").last().unwrap().body["email"],
        "ghost@example.com"
    );
    assert!(posted.iter().all(|c| c.body["channel"] == "C0DEFAULT"));
    let (_, list) = cp
        .root("GET", "/api/v1/deliveries?state=delivered", None, None)
        .await;
    assert_eq!(list["deliveries"][0]["last_error"], "");
}

/// Gate's Slack signing agrees with slack_sdk both ways: slack_sdk's signature is accepted by
/// Gate's verifier, and Gate's computation passes slack_sdk's `is_valid`.
#[test]
fn gates_slack_signatures_match_slack_sdk() {
    use gate_control::delivery::sign::{slack_signature, verify_slack};
    let ts = now().to_string();
    let body = click_body("U0CAROL001", "gate_approve", "default:x");
    let theirs = slack_sdk_signature(SECRET, &ts, &body);
    assert_eq!(theirs, slack_signature(SECRET, &ts, body.as_bytes()));
    let now = i64::try_from(now()).unwrap();
    assert_eq!(
        verify_slack(SECRET, Some(&ts), Some(&theirs), body.as_bytes(), now),
        Ok(())
    );
    let ours = slack_signature(SECRET, &ts, body.as_bytes());
    let out = std::process::Command::new(common::fake_slack::venv_python())
        .args([
            "-c",
            "import sys; from slack_sdk.signature import SignatureVerifier; \
             print(SignatureVerifier(sys.argv[1]).is_valid(body=sys.argv[2], timestamp=sys.argv[3], signature=sys.argv[4]))",
            SECRET,
            &body,
            &ts,
            &ours,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "True",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
