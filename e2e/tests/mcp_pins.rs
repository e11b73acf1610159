//! MCP tool pinning end to end: a real gate-control, a gate-connector with `pin_tools`, and the
//! official Python SDK as the upstream server. A tool's definition is pinned when first listed;
//! when the upstream changes it (a "rug pull") the tool disappears from lists and calls to it are
//! refused, the change is audited and shown in the API as pending, and an admin's approval of
//! exactly that definition brings the tool back.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use gate_testkit::free_port;
use serde_json::{Value, json};
use support::*;

fn rug_pull_server() -> (Proc, u16) {
    let port = free_port().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/rug_pull_server.py");
    let child = Command::new(gate_testkit::venv_python().unwrap())
        .arg(script)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the MCP server listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (Proc(child), port)
}

/// One JSON-RPC request over curl (stateless 2025-06-18 style: no session).
fn rpc(port: u16, credentials: Option<&str>, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut curl = Command::new("curl");
    curl.args(["-s", "-m", "10", "-H", "Content-Type: application/json"])
        .args(["-H", "Accept: application/json, text/event-stream"])
        .args(["-H", "MCP-Protocol-Version: 2025-06-18"]);
    if let Some(credentials) = credentials {
        curl.args(["-u", credentials]);
    }
    let out = curl
        .args(["--data", &body.to_string()])
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON from {method}: {text:?}"))
}

fn tool_names(listed: &Value) -> Vec<String> {
    listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn pins(world: &World) -> Vec<Value> {
    let (code, body) = world.api("GET", "/api/v1/tool-pins?resource=agent-tools", None);
    assert_eq!(code, 200, "{body}");
    body["pins"].as_array().unwrap().clone()
}

fn pin<'a>(pins: &'a [Value], tool: &str) -> &'a Value {
    pins.iter()
        .find(|p| p["tool"] == tool)
        .unwrap_or_else(|| panic!("no pin of {tool} in {pins:?}"))
}

#[test]
fn a_changed_tool_is_hidden_and_refused_until_an_admin_approves_it() {
    let mut world = World::new();
    let (_upstream, upstream_port) = rug_pull_server();
    let listen = free_port().unwrap();
    world.start_mcp_connector(
        upstream_port,
        listen,
        ", pin_tools: true",
        "identities:\n  - {name: agent, password: agent-pw}\n",
    );
    let agent = Some("agent:agent-pw");

    // First list: everything is pinned as served, and the pins reach the control plane.
    let listed = rpc(listen, agent, "tools/list", json!({}));
    assert!(
        tool_names(&listed).contains(&"transfer".to_owned()),
        "{listed}"
    );
    wait_for(
        Duration::from_secs(10),
        "the pins in the control plane",
        || pins(&world).len() == 3,
    );
    let first = pins(&world);
    let original = pin(&first, "transfer");
    assert_eq!(original["pending_digest"], "", "{original}");
    assert!(
        original["pinned_definition"]
            .as_str()
            .unwrap()
            .contains("between your own accounts"),
        "{original}"
    );
    let moved = rpc(
        listen,
        agent,
        "tools/call",
        json!({"name": "transfer", "arguments": {"amount": 5}}),
    );
    assert!(moved["error"].is_null(), "{moved}");

    // The upstream changes transfer's description behind everyone's back.
    let pulled = rpc(
        upstream_port,
        None,
        "tools/call",
        json!({"name": "rug_pull", "arguments": {}}),
    );
    assert!(pulled["error"].is_null(), "{pulled}");
    let listed = rpc(listen, agent, "tools/list", json!({}));
    let names = tool_names(&listed);
    assert!(
        !names.contains(&"transfer".to_owned()),
        "the changed tool is hidden: {listed}"
    );
    assert!(
        names.contains(&"echo".to_owned()),
        "unchanged tools stay: {listed}"
    );
    let refused = rpc(
        listen,
        agent,
        "tools/call",
        json!({"name": "transfer", "arguments": {"amount": 5}}),
    );
    let reason = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(reason.contains("changed since it was pinned"), "{refused}");
    let echoed = rpc(
        listen,
        agent,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    assert!(echoed["error"].is_null(), "{echoed}");

    // The control plane holds the new definition for review, and the change is audited.
    wait_for(Duration::from_secs(10), "the pending definition", || {
        pin(&pins(&world), "transfer")["pending_digest"] != ""
    });
    let reviewed = pins(&world);
    let changed = pin(&reviewed, "transfer").clone();
    assert!(
        changed["pending_definition"]
            .as_str()
            .unwrap()
            .contains("~/.ssh"),
        "{changed}"
    );
    assert_eq!(changed["pinned_digest"], original["pinned_digest"]);
    wait_for(Duration::from_secs(10), "the audited change", || {
        let (_, body) = world.api(
            "GET",
            "/api/v1/audit?operation=tool&target=transfer&action=block",
            None,
        );
        body["events"].as_array().is_some_and(|events| {
            events.iter().any(|e| {
                e["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("changed since it was pinned")
                    && e["resource"] == "agent-tools"
            })
        })
    });

    // An approval must name the digest the admin reviewed.
    let (code, body) = world.api(
        "POST",
        "/api/v1/tool-pins/agent-tools/transfer/approve",
        Some(json!({"digest": original["pinned_digest"]})),
    );
    assert_eq!(
        code, 409,
        "a digest that is not the pending one is refused: {body}"
    );
    assert!(body.to_string().contains("digest"), "{body}");
    let (code, body) = world.api(
        "POST",
        "/api/v1/tool-pins/agent-tools/echo/approve",
        Some(json!({"digest": changed["pending_digest"]})),
    );
    assert_eq!(code, 409, "nothing waits for echo: {body}");
    let (code, approved) = world.api(
        "POST",
        "/api/v1/tool-pins/agent-tools/transfer/approve",
        Some(json!({"digest": changed["pending_digest"]})),
    );
    assert_eq!(code, 200, "{approved}");
    assert_eq!(approved["pinned_digest"], changed["pending_digest"]);
    assert_eq!(approved["pending_digest"], "");
    assert_eq!(
        approved["approved_by"], "system",
        "the root key approved it: {approved}"
    );

    // Connectors learn of the approval through the snapshot: the tool is back.
    wait_for(
        Duration::from_secs(15),
        "the approved tool listed again",
        || {
            tool_names(&rpc(listen, agent, "tools/list", json!({})))
                .contains(&"transfer".to_owned())
        },
    );
    let moved = rpc(
        listen,
        agent,
        "tools/call",
        json!({"name": "transfer", "arguments": {"amount": 7}}),
    );
    assert!(moved["error"].is_null(), "{moved}");
}
