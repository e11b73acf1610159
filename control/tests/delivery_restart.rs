//! The real `gate-control` binary killed with SIGKILL after an access request committed but
//! before its webhook delivery finished: the delivery survives in the outbox and is delivered
//! once the control plane runs again.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::receiver::{Mode, Receiver};
use common::{ROOT_KEY, http};
use serde_json::{Value, json};

fn spawn(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gate-control"))
        .arg("--config")
        .arg(config)
        .env_remove("GATE_API_KEY")
        .env_remove("GATE_INSECURE")
        .spawn()
        .unwrap()
}

async fn wait_healthy(addr: SocketAddr) {
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok()
            && http(addr, "GET", "/health", None, None, None).await.0 == 200
        {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "not healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = body.to_string();
    let (status, text) = http(addr, method, path, Some(ROOT_KEY), None, Some(&body)).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_commit_and_delivery_then_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = gate_testkit::free_port().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = dir.path().join("control.yaml");
    std::fs::write(
        &config,
        format!(
            "listen_addr: 127.0.0.1:{port}\napi_key: {ROOT_KEY}\ndatabase:\n  sqlite_path: {}/gate.db\n\
             delivery:\n  timeout: 2s\n  poll_interval: 50ms\n  initial_backoff: 50ms\n\
             logging:\n  level: warn\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let receiver = Receiver::start("127.0.0.1:0").await;
    receiver.set_mode(Mode::Hang);

    let mut first = spawn(&config);
    wait_healthy(addr).await;
    let (status, resource) = call(
        addr,
        "POST",
        "/api/v1/resources",
        json!({"name": "db", "protocol": "postgres", "host": "h", "port": 5432}),
    )
    .await;
    assert_eq!(status, 201, "{resource}");
    let (status, hook) = call(
        addr,
        "POST",
        "/api/v1/webhooks",
        json!({"url": receiver.url(), "events": ["access.requested"]}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    receiver.set_secret(hook["secret"].as_str().unwrap());
    let (status, request) = call(
        addr,
        "POST",
        "/api/v1/access-requests",
        json!({"subject": "alice", "resource_id": resource["id"], "duration_seconds": 60}),
    )
    .await;
    assert_eq!(status, 201, "{request}");

    // The delivery is in flight (the receiver holds it): kill -9 now.
    let start = Instant::now();
    while receiver.received().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no attempt seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        receiver.accepted().is_empty(),
        "nothing was acknowledged before the kill"
    );
    receiver.set_mode(Mode::Ok);

    let mut second = spawn(&config);
    wait_healthy(addr).await;
    let start = Instant::now();
    while receiver.accepted().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not delivered after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert!(accepted[0].signature_ok);
    assert_eq!(
        accepted[0].body["data"]["access_request"]["id"],
        request["id"]
    );
    // The same delivery (same id header) as the attempt cut off by the kill.
    assert_eq!(accepted[0].delivery, receiver.received()[0].delivery);
    // The receiver answered; the worker records the outcome right after.
    let start = Instant::now();
    loop {
        let (_, list) = call(addr, "GET", "/api/v1/deliveries?state=delivered", json!({})).await;
        let delivered = list["deliveries"].as_array().map_or(0, Vec::len);
        if delivered == 1 {
            break;
        }
        assert!(
            delivered == 0 && start.elapsed() < Duration::from_secs(10),
            "{list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
}
