//! Two control-plane replicas on one real PostgreSQL, both running outbox workers: every event
//! reaches the receiver exactly once between them (rows claimed with FOR UPDATE SKIP LOCKED).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::{Cp, ROOT_KEY, config_yaml, postgres_store};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once() {
    let (pg, dsn) = postgres_store();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let yaml = config_yaml(dir.path(), Some(&dsn), Some(ROOT_KEY))
            + "delivery:\n  poll_interval: 20ms\n  initial_backoff: 50ms\n";
        let config: gate_config::ControlConfig =
            gate_config::load_str("c.yaml", &yaml, &|_| None).unwrap();
        let running = gate_control::server::start(&config, false).await.unwrap();
        replicas.push(Cp {
            running,
            dir,
            pg: None,
        });
    }
    let receiver = Receiver::start("127.0.0.1:0").await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let (status, resource) = a
        .root(
            "POST",
            "/api/v1/resources",
            None,
            Some(r#"{"name":"db","protocol":"postgres","host":"h","port":5432}"#),
        )
        .await;
    assert_eq!(status, 201);
    let hook = json!({"url": receiver.url(), "events": ["access.requested"]}).to_string();
    let (status, created) = a.root("POST", "/api/v1/webhooks", None, Some(&hook)).await;
    assert_eq!(status, 201);
    receiver.set_secret(created["secret"].as_str().unwrap());

    // 40 requests, alternating replicas; both workers poll the same outbox.
    const N: usize = 40;
    for i in 0..N {
        let replica = if i % 2 == 0 { a } else { b };
        let body = json!({"subject": format!("user{i}"), "resource_id": resource["id"],
                          "duration_seconds": 60})
        .to_string();
        let (status, r) = replica
            .root("POST", "/api/v1/access-requests", None, Some(&body))
            .await;
        assert_eq!(status, 201, "{r}");
    }
    let start = Instant::now();
    while receiver.accepted().len() < N {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "only {} delivered",
            receiver.accepted().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a duplicate every chance to show up.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = receiver.received();
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in &got {
        assert!(r.signature_ok);
        *per_event
            .entry(r.body["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(got.len(), N, "each event once: {per_event:?}");
    assert_eq!(per_event.len(), N);
    assert!(per_event.values().all(|n| *n == 1));
    // Both replicas' workers took part (each reports its attempts in its own metrics).
    let mut successes = Vec::new();
    for replica in [a, b] {
        let (_, metrics) = common::http(replica.addr(), "GET", "/metrics", None, None, None).await;
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(
                    r#"gate_control_delivery_attempts_total{target="webhook",result="success"}"#,
                )
            })
            .unwrap()
            .to_owned();
        successes.push(line.rsplit(' ').next().unwrap().parse::<usize>().unwrap());
    }
    assert_eq!(successes.iter().sum::<usize>(), N, "{successes:?}");
    drop(pg);
}

/// A connector whose heartbeats stopped is announced once, whichever replica's worker sweeps
/// first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connector_is_announced_offline_once() {
    let (pg, dsn) = postgres_store();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let yaml = config_yaml(dir.path(), Some(&dsn), Some(ROOT_KEY))
            + "delivery:\n  poll_interval: 20ms\n";
        let config: gate_config::ControlConfig =
            gate_config::load_str("c.yaml", &yaml, &|_| None).unwrap();
        let running = gate_control::server::start(&config, false).await.unwrap();
        replicas.push(Cp {
            running,
            dir,
            pg: None,
        });
    }
    let receiver = Receiver::start("127.0.0.1:0").await;
    let a = &replicas[0];
    let hook = json!({"url": receiver.url(), "events": ["connector.offline"]}).to_string();
    let (_, created) = a.root("POST", "/api/v1/webhooks", None, Some(&hook)).await;
    receiver.set_secret(created["secret"].as_str().unwrap());
    let key = a.key("default", "connector").await;
    let body = r#"{"name":"edge-silent","version":"1"}"#;
    let (status, _) = common::http(
        a.addr(),
        "POST",
        "/api/v1/connectors",
        Some(&key),
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, 200);
    // Its last heartbeat was long ago (as if it had stopped 10 minutes back).
    pg.psql(
        "gate",
        "UPDATE connectors SET last_heartbeat_at = last_heartbeat_at - 600000",
    )
    .unwrap();
    let start = Instant::now();
    while receiver.accepted().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "not announced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both replicas sweep every 5 s: wait for another round of both.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let got = receiver.accepted();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].body["data"]["connector"]["reason"],
        "heartbeats_stopped"
    );
    assert_eq!(got[0].body["data"]["connector"]["name"], "edge-silent");
    drop(replicas);
}
