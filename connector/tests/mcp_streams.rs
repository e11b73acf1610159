//! What the server sends on its own through Gate, and what Gate records: the official Python SDK
//! as upstream sends a customer record as a log notification on the GET stream and on a call's
//! SSE stream; both arrive masked exactly like a tool result. With `record: true`, every exchange
//! is a JSON-lines recording in `recording.dir` holding what the client sent and saw, masked.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod http_support;
mod mcp_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_support::*;
use mcp_support::*;
use serde_json::{Value, json};

const VERSION: &str = "MCP-Protocol-Version: 2025-06-18";

fn post(s: &Setup, session: Option<&str>, body: &Value) -> Curl {
    let header = session.map(|id| format!("Mcp-Session-Id: {id}"));
    let mut args = vec![
        "-u",
        "agent:agent-pw",
        "-H",
        "Content-Type: application/json",
        "-H",
        "Accept: application/json, text/event-stream",
        "-H",
        VERSION,
    ];
    if let Some(header) = &header {
        args.extend(["-H", header.as_str()]);
    }
    let body = body.to_string();
    args.extend(["--data", body.as_str()]);
    curl(&args, &format!("http://127.0.0.1:{}/mcp", s.port))
}

/// Poll `path` until it holds `what` (10 s at most); its text.
fn file_when(path: &Path, what: &str) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(what) || started.elapsed() > Duration::from_secs(10) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The finished recordings in `dir`: (metadata, events).
fn recordings(dir: &Path) -> Vec<(Value, Vec<Value>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "json") {
            let meta: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if meta["finished"] != true {
                continue;
            }
            let events = std::fs::read_to_string(path.with_extension("cast"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            out.push((meta, events));
        }
    }
    out
}

/// At least `want` finished recordings in `dir` (or what there is after 10 s).
fn recordings_when(dir: &Path, want: usize) -> Vec<(Value, Vec<Value>)> {
    let started = Instant::now();
    loop {
        let found = recordings(dir);
        if found.len() >= want || started.elapsed() > Duration::from_secs(10) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Gate in front of the SDK server, the resource recorded into the returned spool.
fn recorded(mode: &str, state: &str) -> (tempfile::TempDir, Setup) {
    let spool = tempfile::tempdir().unwrap();
    let recording = format!("recording: {{dir: '{}'}}\n", spool.path().display());
    let s = setup_with(mode, state, ", record: true", &recording);
    (spool, s)
}

#[test]
fn server_messages_on_streams_are_masked_and_exchanges_are_recorded_masked() {
    let (spool, s) = recorded("sse", "stateful");
    let init = post(
        &s,
        None,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}}),
    );
    assert_eq!(init.status, 200, "{}", init.text());
    let session = init.header("mcp-session-id").unwrap().to_owned();
    let initialized = post(
        &s,
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(initialized.status, 202, "{}", initialized.text());

    // The server-to-client stream, held open by curl.
    let streamed = spool.path().join("get-stream.txt");
    let mut stream = Command::new("curl")
        .args(["-sN", "-m", "30", "-u", "agent:agent-pw", "-H", VERSION])
        .args(["-H", "Accept: text/event-stream", "-H"])
        .arg(format!("Mcp-Session-Id: {session}"))
        .arg(format!("http://127.0.0.1:{}/mcp", s.port))
        .stdout(Stdio::from(std::fs::File::create(&streamed).unwrap()))
        .spawn()
        .unwrap();
    s.gate.audit_when(|a| a.contains("stream/open"));
    std::thread::sleep(Duration::from_millis(500));

    let call = post(
        &s,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "announce", "arguments": {"customer_id": 1}}}),
    );
    assert_eq!(call.status, 200, "{}", call.text());
    let answer = call.text();
    assert!(answer.contains("notifications/message"), "{answer}");
    assert!(answer.contains("a***@example.com"), "{answer}");
    assert!(answer.contains("announced"), "{answer}");
    let on_stream = file_when(&streamed, "notifications/message");
    let _ = stream.kill();
    let _ = stream.wait();
    assert!(
        on_stream.contains("notifications/message") && on_stream.contains("a***@example.com"),
        "the GET stream carried the masked notification: {on_stream:?}"
    );
    for (seen, what) in [
        (&answer, "the call's stream"),
        (&on_stream, "the GET stream"),
    ] {
        assert!(!seen.contains("alice@example.com"), "{what}: {seen}");
        assert!(!seen.contains("123-45-6789"), "{what}: {seen}");
    }

    // Recordings: one per exchange, finished once its stream ended, never holding a masked value.
    let found = recordings_when(spool.path(), 4);
    let everything = serde_json::to_string(&found).unwrap();
    assert!(!everything.contains("alice@example.com"), "{everything}");
    assert!(!everything.contains("123-45-6789"), "{everything}");
    for (meta, events) in &found {
        assert_eq!(
            (
                meta["protocol"].as_str(),
                meta["format"].as_str(),
                meta["identity"].as_str()
            ),
            (Some("mcp"), Some("jsonl"), Some("agent")),
            "{meta}"
        );
        // The initialize opens the session: only later exchanges carry its id.
        let in_session = meta["command"] != "POST initialize";
        let id = meta["session_id"].as_str().unwrap();
        assert_eq!(id.starts_with("mcp-"), in_session, "{meta}");
        assert_eq!(events.first().unwrap()["kind"], "exchange", "{events:?}");
        assert_eq!(events.last().unwrap()["kind"], "end", "{events:?}");
        assert!(
            events
                .iter()
                .all(|e| e["t_ms"].is_number() && e["time"].is_string())
        );
    }
    let of = |command: &str| {
        found
            .iter()
            .find(|(meta, _)| meta["command"] == command)
            .unwrap_or_else(|| panic!("no recording of {command}: {everything}"))
    };
    let sessions: std::collections::BTreeSet<&str> = found
        .iter()
        .filter(|(meta, _)| meta["command"] != "POST initialize")
        .map(|(meta, _)| meta["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        sessions.len(),
        1,
        "a session's exchanges share its id: {sessions:?}"
    );
    let (_, called) = of("POST tools/call announce");
    let kinds: Vec<&str> = called.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"exchange"));
    assert!(
        kinds.contains(&"request") && kinds.contains(&"reply"),
        "{kinds:?}"
    );
    let request = called.iter().find(|e| e["kind"] == "request").unwrap();
    assert_eq!(request["decision"], "forward");
    assert_eq!(request["params"]["arguments"]["customer_id"], 1);
    let events: Vec<&Value> = called.iter().filter(|e| e["kind"] == "event").collect();
    assert!(
        events
            .iter()
            .any(|e| e["message"]["method"] == "notifications/message"
                && e["message"]["params"]["data"]["customer"]["email"] == "a***@example.com"),
        "{called:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["message"]["result"]["content"][0]["text"] == r#"{"announced":1}"#),
        "{called:?}"
    );
    let reply = called.iter().find(|e| e["kind"] == "reply").unwrap();
    assert_eq!(reply["status"], 200);
    assert!(called.last().unwrap()["duration_ms"].as_f64().unwrap() >= 0.0);
    let (_, get) = of("GET stream/open");
    assert!(
        get.iter().any(|e| e["kind"] == "event"
            && e["message"]["params"]["data"]["customer"]["email"] == "a***@example.com"),
        "{get:?}"
    );
}

#[test]
fn refused_calls_are_recorded_with_their_reason() {
    let (spool, s) = recorded("json", "stateless");
    let refused = post(
        &s,
        None,
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "customer_lookup", "arguments": {"customer_id": 13}}}),
    );
    assert_eq!(
        refused.json()["error"]["message"],
        "customer 13 is off limits"
    );
    let found = recordings_when(spool.path(), 1);
    assert_eq!(found.len(), 1, "{found:?}");
    let (meta, events) = &found[0];
    assert_eq!(meta["command"], "POST tools/call customer_lookup");
    assert_eq!(meta["session_id"], "", "no MCP session: {meta}");
    let request = events.iter().find(|e| e["kind"] == "request").unwrap();
    assert_eq!(request["decision"], "block");
    assert_eq!(request["reason"], "customer 13 is off limits");
    let response = events.iter().find(|e| e["kind"] == "response").unwrap();
    assert_eq!(
        response["message"][0]["error"]["code"], -32001,
        "{response}"
    );
    let reply = events.iter().find(|e| e["kind"] == "reply").unwrap();
    assert_eq!(reply["status"], 200);
}
