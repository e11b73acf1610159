//! The control plane and a connector as real processes: registration, live policy sync, audit
//! shipping across a control-plane crash, access grants, and recordings a stopped connector left
//! behind shipped when it starts again, and `connector_selector` routing by the connector's labels.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ALLOW_ALL, NO_SELECT, ROOT, World, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_activated_through_the_api_is_enforced_within_a_second() {
    let mut world = World::new();
    world.start_connector(ALLOW_ALL);
    wait_for(Duration::from_secs(10), "the connector online", || {
        let (_, list) = world.api("GET", "/api/v1/connectors", None);
        list["connectors"][0]["status"] == "online" && list["connectors"][0]["name"] == "e2e-edge"
    });
    let (code, resource) = world.api(
        "POST",
        "/api/v1/resources",
        Some(json!({"name": "primary-db", "protocol": "postgres", "host": "127.0.0.1", "port": world.pg.port(), "labels": {"tier": "gold"}})),
    );
    assert_eq!(code, 201, "{resource}");
    let (code, policy) = world.api(
        "POST",
        "/api/v1/policies",
        Some(json!({"name": "pause-selects", "rego": NO_SELECT, "targets": ["primary-*"], "stages": ["pre_request"]})),
    );
    assert_eq!(code, 201, "{policy}");
    let id = policy["id"].as_str().unwrap();

    let client = world.client("app", "app-pw").await.unwrap();
    let rows = client
        .query("select count(*) from items", &[])
        .await
        .unwrap();
    assert_eq!(
        rows[0].get::<_, i64>(0),
        10,
        "a draft policy is not enforced"
    );

    let activated = Instant::now();
    let (code, body) = world.api(
        "POST",
        &format!("/api/v1/policies/{id}/state"),
        Some(json!({"state": "active"})),
    );
    assert_eq!(code, 200, "{body}");
    let error = loop {
        match client.query("select count(*) from items", &[]).await {
            Err(e) => break e,
            Ok(_) => assert!(
                activated.elapsed() < Duration::from_secs(1),
                "not enforced within a second"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = activated.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "enforced after {elapsed:?}"
    );
    let db = error.as_db_error().unwrap();
    assert_eq!(
        (db.code().code(), db.message()),
        ("42501", "selects are paused")
    );
    // Same session, other statements still work; rolling back to draft lifts it, again live.
    client.query("select 1", &[]).await.unwrap();
    world.api(
        "POST",
        &format!("/api/v1/policies/{id}/state"),
        Some(json!({"state": "draft"})),
    );
    let lifted = Instant::now();
    while client
        .query("select count(*) from items", &[])
        .await
        .is_err()
    {
        assert!(
            lifted.elapsed() < Duration::from_secs(1),
            "draft not applied within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Graceful stop deregisters: the control plane shows it offline.
    drop(client);
    world.stop_connector();
    let (_, list) = world.api("GET", "/api/v1/connectors", None);
    assert_eq!(list["connectors"][0]["status"], "offline", "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_crash_loses_no_audit_event_and_keeps_the_last_snapshot() {
    let mut world = World::new();
    world.api(
        "POST",
        "/api/v1/resources",
        Some(json!({"name": "primary-db", "protocol": "postgres", "host": "h", "port": 1})),
    );
    let (_, policy) = world.api(
        "POST",
        "/api/v1/policies",
        Some(json!({"name": "pause-selects", "rego": NO_SELECT, "state": "active"})),
    );
    assert!(policy["id"].is_string(), "{policy}");
    world.start_connector(ALLOW_ALL);
    let client = world.client("app", "app-pw").await.unwrap();
    wait_for_blocked(&client).await;

    // 1,000 statements, with the control plane killed a third of the way in and back at two thirds.
    for i in 0..1000 {
        if i == 333 {
            world.kill_control();
        }
        if i == 666 {
            world.start_control();
        }
        client.query(&format!("select {i}"), &[]).await.unwrap();
    }
    // The last snapshot is still enforced (and was all along the outage).
    assert!(
        client
            .query("select count(*) from items", &[])
            .await
            .is_err()
    );

    // Every statement event arrives, each exactly once.
    let started = Instant::now();
    loop {
        let events = world.statement_events("app");
        let numbered = events.iter().filter(|e| numbered_select(e)).count();
        if numbered == 1000 {
            break;
        }
        assert!(numbered < 1000, "duplicates: {numbered}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {numbered} of 1000 events arrived; first: {:?}; any: {}",
            events.first(),
            world.api("GET", "/api/v1/audit?limit=3", None).1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = world.statement_events("app");
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "an event id was stored twice");
    let numbered = events.iter().filter(|e| numbered_select(e)).count();
    assert_eq!(numbered, 1000);
    assert!(
        events
            .iter()
            .all(|e| e["connector"] == "e2e-edge" && e["resource"] == "primary-db")
    );
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "block" && e["reason"] == "selects are paused")
    );

    // The connector's metrics account for the outage: events spooled, then replayed.
    let metrics = Command::new("curl")
        .arg("-s")
        .arg(format!("http://127.0.0.1:{}/metrics", world.health_port))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let spooled = value("gate_audit_events_spooled_total");
    assert!(spooled > 0.0, "{metrics}");
    assert_eq!(
        value("gate_audit_events_replayed_total"),
        spooled,
        "{metrics}"
    );

    // A connector restarted while the control plane is down enforces the snapshot it saved.
    drop(client);
    world.kill_control();
    world.stop_connector();
    world.start_connector(ALLOW_ALL);
    let client = world.client("app", "app-pw").await.unwrap();
    let error = client
        .query("select count(*) from items", &[])
        .await
        .unwrap_err();
    assert_eq!(error.as_db_error().unwrap().message(), "selects are paused");
}

/// An event of one of the `select <n>` statements of the load.
fn numbered_select(event: &Value) -> bool {
    let statement = event["statement"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    statement
        .strip_prefix("select ")
        .is_some_and(|n| n.trim().parse::<u32>().is_ok())
}

async fn wait_for_blocked(client: &tokio_postgres::Client) {
    let started = Instant::now();
    while client
        .query("select count(*) from items", &[])
        .await
        .is_ok()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the managed policy never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_grants_admit_refuse_and_end_sessions() {
    let mut world = World::new();
    let (_, resource) = world.api(
        "POST",
        "/api/v1/resources",
        Some(json!({"name": "primary-db", "protocol": "postgres", "host": "h", "port": 1, "require_access_grant": true})),
    );
    let resource_id = resource["id"].as_str().unwrap().to_owned();
    world.start_connector(ALLOW_ALL);
    // Without a grant: refused at login with the reason.
    let started = Instant::now();
    let refused = loop {
        match world.client("alice", "alice-pw").await {
            Err(e) => break e,
            Ok(_) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "require_access_grant never arrived"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let db = refused.as_db_error().unwrap();
    assert_eq!(db.code().code(), "28000");
    assert!(
        db.message().contains("requires an approved access request"),
        "{}",
        db.message()
    );

    let (code, request) = world.api(
        "POST",
        "/api/v1/access-requests",
        Some(json!({"requested_by": "alice@example.com", "subject": "alice", "resource_id": resource_id, "reason": "incident 42", "duration_seconds": 600})),
    );
    assert_eq!(
        (code, request["status"].as_str()),
        (201, Some("pending")),
        "{request}"
    );
    let id = request["id"].as_str().unwrap().to_owned();
    let (code, approved) = world.api(
        "POST",
        &format!("/api/v1/access-requests/{id}/approve"),
        Some(json!({"approved_by": "bob"})),
    );
    assert_eq!(
        (
            code,
            approved["status"].as_str(),
            approved["approved_by"].as_str()
        ),
        (200, Some("approved"), Some("bob"))
    );
    assert!(!approved["expires_at"].as_str().unwrap().is_empty());
    let (code, again) = world.api(
        "POST",
        &format!("/api/v1/access-requests/{id}/approve"),
        None,
    );
    assert_eq!(
        (code, again["code"].as_str()),
        (409, Some("failed_precondition"))
    );

    let started = Instant::now();
    let client = loop {
        match world.client("alice", "alice-pw").await {
            Ok(client) => break client,
            Err(_) => assert!(
                started.elapsed() < Duration::from_secs(5),
                "the grant never arrived"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    client.query("select 1", &[]).await.unwrap();

    // Revoking ends the open session with a FATAL that says why.
    let (code, revoked) = world.api(
        "POST",
        &format!("/api/v1/access-requests/{id}/revoke"),
        Some(json!({"revoked_by": "carol"})),
    );
    assert_eq!(
        (code, revoked["status"].as_str()),
        (200, Some("revoked")),
        "{revoked}"
    );
    let started = Instant::now();
    let ended = loop {
        match client.query("select 1", &[]).await {
            Err(e) => break e,
            Ok(_) => assert!(
                started.elapsed() < Duration::from_secs(2),
                "the session outlived its grant"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = format!("{ended:?}");
    assert!(
        text.contains("57P01") || text.contains("grant") || client.is_closed(),
        "{text}"
    );
    assert!(
        world.client("alice", "alice-pw").await.is_err(),
        "no new sessions after revocation"
    );
    let (_, listed) = world.api("GET", "/api/v1/access-requests?status=revoked", None);
    assert_eq!(listed["access_requests"][0]["revoked_by"], "carol");

    // A grant that runs out ends the session by itself, on time.
    let (_, short) = world.api(
        "POST",
        "/api/v1/access-requests",
        Some(json!({"subject": "alice", "resource_id": resource_id, "reason": "quick look", "duration_seconds": 2})),
    );
    let id = short["id"].as_str().unwrap().to_owned();
    world.api(
        "POST",
        &format!("/api/v1/access-requests/{id}/approve"),
        None,
    );
    let started = Instant::now();
    let client = loop {
        match world.client("alice", "alice-pw").await {
            Ok(client) => break client,
            Err(_) => assert!(
                started.elapsed() < Duration::from_secs(2),
                "the short grant never arrived"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while client.query("select 1", &[]).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the session outlived its expired grant"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "ended before the grant expired"
    );
    let (_, expired) = world.api("GET", &format!("/api/v1/access-requests/{id}"), None);
    assert_eq!(expired["status"], "expired");
}

/// The control plane issues identity tokens; the connector fetches its JWKS by URL and admits a
/// client whose password is such a token, with its control-plane groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_from_the_control_plane_log_in_through_the_connector() {
    let mut world = World::new();
    let (_, carol) = world.api(
        "POST",
        "/api/v1/identities",
        Some(json!({"name": "carol", "email": "carol@example.com"})),
    );
    let carol_id = carol["id"].as_str().unwrap().to_owned();
    let (_, group) = world.api("POST", "/api/v1/groups", Some(json!({"name": "analysts"})));
    let group_id = group["id"].as_str().unwrap();
    world.api(
        "PUT",
        &format!("/api/v1/groups/{group_id}/members/{carol_id}"),
        None,
    );
    // Only analysts may run statements; everyone else is refused by a managed policy.
    let analysts_only = "package analysts\n\npre_request := {\"action\": \"block\", \"reason\": \"analysts only\"} if {\n    not \"analysts\" in input.user.groups\n}\n";
    let (code, body) = world.api(
        "POST",
        "/api/v1/policies",
        Some(json!({"name": "analysts-only", "rego": analysts_only, "state": "active"})),
    );
    assert_eq!(code, 201, "{body}");
    world.start_connector(ALLOW_ALL);

    let (code, issued) = world.api(
        "POST",
        &format!("/api/v1/identities/{carol_id}/tokens"),
        Some(json!({"ttl_seconds": 300})),
    );
    assert_eq!(code, 200, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let client = loop {
        match world.client("carol", &token).await {
            Ok(client) => break client,
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(5),
                "token login failed: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Once the managed policy is in force, app (a static identity, no analysts group) is
    // refused by it ...
    let app = world.client("app", "app-pw").await.unwrap();
    let started = Instant::now();
    let error = loop {
        match app.query("select 1", &[]).await {
            Err(e) => break e,
            Ok(_) => assert!(
                started.elapsed() < Duration::from_secs(5),
                "the policy never arrived"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(error.as_db_error().unwrap().message(), "analysts only");
    // ... while carol is an analyst through control-plane membership, so her statements run.
    let rows = client.query("select 1", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);

    // A tampered token is refused like a wrong password.
    // (A character in the middle of the signature: the last one carries padding bits.)
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    let refused = world.client("carol", &tampered).await.unwrap_err();
    assert_eq!(refused.as_db_error().unwrap().code().code(), "28P01");
}

/// A recording the connector was writing when it was killed: its file, and metadata that says
/// it never finished. The restarted connector closes it as interrupted and ships it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_left_by_a_killed_connector_is_shipped_when_it_starts_again() {
    let mut world = World::new();
    let spool = world.dir.path().join("connector-recordings");
    std::fs::create_dir_all(&spool).unwrap();
    let id = "0193a0f2-7c1e-7d3a-9b5e-2f4c6a8e0b1d";
    let cast = "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1764815400,\"env\":{\"TERM\":\"xterm\"}}\n[0.125000,\"o\",\"$ top\\r\\n\"]\n";
    std::fs::write(spool.join(format!("{id}.cast")), cast).unwrap();
    let sidecar = json!({
        "id": id, "session_id": "s-9", "resource": "primary-db", "identity": "alice",
        "protocol": "ssh", "format": "asciicast-v2", "started_at": "2026-12-04T02:10:00.000Z",
        "ended_at": null, "width": 80, "height": 24, "command": null, "exit_status": null,
        "finished": false, "interrupted": false
    });
    std::fs::write(spool.join(format!("{id}.json")), sidecar.to_string()).unwrap();
    world.start_connector(ALLOW_ALL);
    wait_for(Duration::from_secs(15), "the recording shipped", || {
        std::fs::read_dir(&spool).unwrap().next().is_none()
    });
    let (code, list) = world.api("GET", "/api/v1/recordings?resource=primary-db", None);
    assert_eq!(code, 200, "{list}");
    let recording = &list["recordings"][0];
    assert_eq!(recording["id"], id, "{list}");
    assert_eq!(recording["interrupted"], true);
    assert_eq!(recording["connector"], "e2e-edge");
    assert_eq!(recording["identity"], "alice");
    let out = Command::new("curl")
        .args(["-s", "-f", "-H"])
        .arg(format!("Authorization: Bearer {ROOT}"))
        .arg(format!(
            "http://127.0.0.1:{}/api/v1/recordings/{id}/cast",
            world.control_port
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), cast);
    world.stop_connector();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_receives_only_the_resources_its_labels_select() {
    let mut world = World::new();
    world.connector_labels = "{region: eu, gate.dev/tier: gold}".into();
    for (name, selector) in [
        ("eu-db", json!({"region": "eu"})),
        ("us-db", json!({"region": "us"})),
        ("any-db", json!({})),
    ] {
        let (code, body) = world.api(
            "POST",
            "/api/v1/resources",
            Some(
                json!({"name": name, "protocol": "postgres", "host": "127.0.0.1",
                        "port": world.pg.port(), "connector_selector": selector}),
            ),
        );
        assert_eq!(code, 201, "{body}");
    }
    world.start_connector(ALLOW_ALL);
    wait_for(
        Duration::from_secs(10),
        "registered with its labels",
        || {
            let (_, list) = world.api("GET", "/api/v1/connectors", None);
            list["connectors"][0]["labels"] == json!({"region": "eu", "gate.dev/tier": "gold"})
        },
    );
    // The snapshot it saved (what it enforces) holds the selected resources only.
    let saved = world.dir.path().join("connector-state/snapshot.json");
    let names = || -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(&saved) else {
            return Vec::new();
        };
        let Ok(snapshot) = serde_json::from_str::<Value>(&text) else {
            return Vec::new();
        };
        let mut names: Vec<String> = snapshot["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    wait_for(
        Duration::from_secs(10),
        "the selected resources synced",
        || names() == ["any-db", "eu-db"],
    );
    // Moving us-db to the EU reaches the running connector.
    let (_, listed) = world.api("GET", "/api/v1/resources", None);
    let mut us = listed["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "us-db")
        .unwrap()
        .clone();
    us["connector_selector"] = json!({"region": "eu"});
    let id = us["id"].as_str().unwrap().to_owned();
    let (code, body) = world.api("PUT", &format!("/api/v1/resources/{id}"), Some(us));
    assert_eq!(code, 200, "{body}");
    wait_for(Duration::from_secs(10), "the moved resource synced", || {
        names() == ["any-db", "eu-db", "us-db"]
    });
}
