//! MCP recordings and grants end to end: a real gate-control, a gate-connector and the official
//! Python SDK as upstream server and client. Recorded exchanges are shipped, listed, read and
//! replayed through the recording API with masked values never stored; a revoked access grant
//! closes the client's open GET stream, ends its session and refuses its next request.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gate_testkit::free_port;
use serde_json::{Value, json};
use support::*;

const MASKING: &str = r#"package gate.e2e_mcp

import rego.v1

default post_request := {"action": "allow"}

post_request := {"action": "mask", "masks": [{"column": "email", "strategy": "email"}, {"column": "ssn", "strategy": "redact"}]}
"#;

fn peers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../connector/tests/mcp_peers")
}

/// The SDK's server (`connector/tests/mcp_peers/server.py`) in SSE, stateful mode.
fn sdk_server() -> (Proc, u16) {
    let port = free_port().unwrap();
    let child = Command::new(gate_testkit::venv_python().unwrap())
        .arg(peers().join("server.py"))
        .args([&port.to_string(), "sse", "stateful"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the MCP server listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (Proc(child), port)
}

fn start(world: &mut World, upstream: u16, listen: u16, resource: &str) {
    let policy = world.dir.path().join("mcp-masking.rego");
    std::fs::write(&policy, MASKING).unwrap();
    let extra = format!(
        "identities:\n  - {{name: alice, password: alice-pw}}\nrecording:\n  dir: {dir}/connector-recordings\npolicies:\n  - {{path: {policy}, stage: post_request}}\n",
        dir = world.dir.path().display(),
        policy = policy.display(),
    );
    world.start_mcp_connector(upstream, listen, resource, &extra);
}

/// A POST of `body` as alice: (status, `Mcp-Session-Id` answered, body text).
fn post(port: u16, session: Option<&str>, body: &Value) -> (u16, Option<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let mut curl = Command::new("curl");
    curl.args(["-s", "-m", "10", "-u", "alice:alice-pw", "-D"])
        .arg(&headers)
        .args([
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-H", "Accept: application/json, text/event-stream"])
        .args(["-H", "MCP-Protocol-Version: 2025-06-18"]);
    if let Some(session) = session {
        curl.arg("-H").arg(format!("Mcp-Session-Id: {session}"));
    }
    let out = curl
        .args(["--data", &body.to_string()])
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let session = std::fs::read_to_string(&headers)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("mcp-session-id:")
                .then(|| l.split_once(':').unwrap().1.trim().to_owned())
        });
    (code.trim().parse().unwrap_or(0), session, body.to_owned())
}

/// `initialize` and `notifications/initialized`: the session id.
fn handshake(port: u16) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}});
    let (status, session, body) = post(port, None, &init);
    assert_eq!(status, 200, "{body}");
    let session = session.unwrap();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(port, Some(&session), &initialized).0, 202);
    session
}

fn lookup(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "customer_lookup", "arguments": {"customer_id": 1}}})
}

#[test]
fn recorded_mcp_exchanges_are_shipped_masked_and_replayable() {
    let mut world = World::new();
    let (_upstream, upstream) = sdk_server();
    let listen = free_port().unwrap();
    start(&mut world, upstream, listen, ", record: true");
    // The official SDK client: a session, a list and a masked call.
    let out = Command::new(gate_testkit::venv_python().unwrap())
        .env("MCP_MODE", "legacy")
        .arg(peers().join("client.py"))
        .arg(format!("http://127.0.0.1:{listen}/mcp"))
        .arg("alice:alice-pw")
        .args(["tools", r#"call:customer_lookup:{"customer_id": 1}"#])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("a***@example.com"), "{printed}");

    let mut listed = Value::Null;
    wait_for(
        Duration::from_secs(20),
        "the MCP recordings shipped",
        || {
            let (code, list) = world.api("GET", "/api/v1/recordings?protocol=mcp", None);
            listed = list;
            code == 200
                && listed["recordings"].as_array().is_some_and(|r| {
                    r.iter()
                        .any(|r| r["command"] == "POST tools/call customer_lookup")
                })
        },
    );
    let recordings = listed["recordings"].as_array().unwrap();
    assert!(recordings.len() >= 3, "initialize, list, call: {listed}");
    let call = recordings
        .iter()
        .find(|r| r["command"] == "POST tools/call customer_lookup")
        .unwrap();
    let id = call["id"].as_str().unwrap();
    let (code, one) = world.api("GET", &format!("/api/v1/recordings/{id}"), None);
    assert_eq!(code, 200, "{one}");
    assert_eq!(
        (
            one["format"].as_str(),
            one["protocol"].as_str(),
            one["identity"].as_str()
        ),
        (Some("jsonl"), Some("mcp"), Some("alice")),
        "{one}"
    );
    assert_eq!(one["connector"], "e2e-mcp");
    assert!(one["size_bytes"].as_u64().unwrap() > 0, "{one}");

    let events = Command::new("curl")
        .args(["-sS", "-f", "-w", "\n%{content_type}", "-H"])
        .arg(format!("Authorization: Bearer {ROOT}"))
        .arg(format!(
            "http://127.0.0.1:{}/api/v1/recordings/{id}/events",
            world.control_port
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&events.stdout).into_owned();
    let (lines, content_type) = text.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(content_type, "application/x-ndjson", "{text}");
    let events: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"exchange"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
    let request = events.iter().find(|e| e["kind"] == "request").unwrap();
    assert_eq!(request["params"]["name"], "customer_lookup", "{request}");
    assert!(
        lines.contains("a***@example.com"),
        "the answer as sent: {lines}"
    );
    // Nothing masked is stored: not in this recording, nor in any other.
    let stored = std::fs::read_dir(world.dir.path().join("control-recordings"))
        .unwrap()
        .flatten()
        .flat_map(|org| std::fs::read_dir(org.path()).unwrap().flatten())
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        stored.contains("customer_lookup"),
        "the store holds the recordings"
    );
    assert!(!stored.contains("alice@example.com"), "{stored}");
    assert!(!stored.contains("123-45-6789"), "{stored}");
}

/// curl holding the GET stream of `session` open, its output into `file`.
fn get_stream(port: u16, session: &str, file: &Path) -> Child {
    Command::new("curl")
        .args(["-sN", "-m", "60", "-u", "alice:alice-pw"])
        .args([
            "-H",
            "MCP-Protocol-Version: 2025-06-18",
            "-H",
            "Accept: text/event-stream",
        ])
        .arg("-H")
        .arg(format!("Mcp-Session-Id: {session}"))
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .stdout(Stdio::from(std::fs::File::create(file).unwrap()))
        .spawn()
        .unwrap()
}

fn grant(world: &World, resource_id: &str) -> String {
    let (code, request) = world.api(
        "POST",
        "/api/v1/access-requests",
        Some(json!({"requested_by": "alice@example.com", "subject": "alice", "resource_id": resource_id, "reason": "incident 7", "duration_seconds": 600})),
    );
    assert_eq!(code, 201, "{request}");
    let id = request["id"].as_str().unwrap().to_owned();
    let (code, approved) = world.api(
        "POST",
        &format!("/api/v1/access-requests/{id}/approve"),
        Some(json!({"approved_by": "bob"})),
    );
    assert_eq!(code, 200, "{approved}");
    id
}

#[test]
fn an_ended_grant_closes_the_stream_ends_the_session_and_refuses_the_next_request() {
    let mut world = World::new();
    let (_upstream, upstream) = sdk_server();
    let listen = free_port().unwrap();
    let (code, resource) = world.api(
        "POST",
        "/api/v1/resources",
        Some(json!({"name": "agent-tools", "protocol": "mcp", "host": "127.0.0.1", "port": upstream, "require_access_grant": true})),
    );
    assert_eq!(code, 201, "{resource}");
    let resource_id = resource["id"].as_str().unwrap().to_owned();
    start(&mut world, upstream, listen, ", require_access_grant: true");
    let (status, _, refused) = post(listen, None, &lookup(1));
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused.contains("requires an approved access request"),
        "{refused}"
    );

    let first = grant(&world, &resource_id);
    // (Without a session the stateful upstream answers 400: admitted, no longer 403.)
    wait_for(
        Duration::from_secs(10),
        "the grant at the connector",
        || post(listen, None, &lookup(1)).0 != 403,
    );
    let session = handshake(listen);
    let (status, _, answer) = post(listen, Some(&session), &lookup(2));
    assert_eq!(status, 200, "{answer}");
    let streamed = world.dir.path().join("get-stream.txt");
    let mut stream = get_stream(listen, &session, &streamed);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        stream.try_wait().unwrap().is_none(),
        "the GET stream is open"
    );

    let (code, revoked) = world.api(
        "POST",
        &format!("/api/v1/access-requests/{first}/revoke"),
        Some(json!({"revoked_by": "carol"})),
    );
    assert_eq!(code, 200, "{revoked}");
    let started = Instant::now();
    let closed = loop {
        if let Some(status) = stream.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the GET stream stayed open after the grant was revoked"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(closed.success(), "Gate ended the stream cleanly: {closed}");
    // The next request, in the session or not, is refused with the reason.
    let (status, _, body) = post(listen, Some(&session), &lookup(3));
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("requires an approved access request"),
        "{body}"
    );
    assert_eq!(post(listen, None, &lookup(4)).0, 403);

    // A new grant admits alice again, but not into the session the old one held.
    grant(&world, &resource_id);
    wait_for(
        Duration::from_secs(10),
        "the new grant at the connector",
        || post(listen, None, &lookup(5)).0 != 403,
    );
    let (status, _, body) = post(listen, Some(&session), &lookup(6));
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("access grant it was opened under ended"),
        "{body}"
    );
    let fresh = handshake(listen);
    assert_eq!(post(listen, Some(&fresh), &lookup(7)).0, 200);
}
