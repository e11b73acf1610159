//! MCP resources end to end: the official Python SDK as upstream server
//! (stateful SSE and stateless JSON) and as client, through Gate:
//! argument-aware policies, refusals as JSON-RPC errors, masked tool results
//! and resource contents, session ids bound to their caller, malformed
//! JSON-RPC, routing headers that disagree with the body, agent provenance
//! (declared `clientInfo`, `User-Agent`) on policy input and audit.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod http_support;
mod mcp_support;

use common::*;
use http_support::*;
use mcp_support::*;

fn sdk_suite(mode: &str, state: &str) {
    let s = setup(mode, state);
    let out = client(
        &s,
        "agent:agent-pw",
        &[
            "tools",
            r#"call:customer_lookup:{"customer_id": 1}"#,
            r#"call:customer_lookup:{"customer_id": 13}"#,
            "call:delete_all:{}",
            r#"call:echo:{"text": "alice@example.com"}"#,
            "read:customers://1",
        ],
    );
    assert_eq!(
        out[0],
        serde_json::json!(["announce", "customer_lookup", "delete_all", "echo"])
    );
    let alice = text_of(&out[1]);
    assert_eq!(alice["email"], "a***@example.com", "{alice}");
    assert_eq!(alice["ssn"], "***");
    assert_eq!(alice["name"], "Alice");
    assert!(
        out[2]["error"]
            .as_str()
            .unwrap()
            .contains("customer 13 is off limits"),
        "{}",
        out[2]
    );
    assert!(
        out[3]["error"]
            .as_str()
            .unwrap()
            .contains("delete_all needs admins"),
        "{}",
        out[3]
    );
    assert_eq!(
        out[4]["content"][0]["text"], "alice@example.com",
        "no masks for echo"
    );
    let contents = &out[5]["contents"][0]["text"];
    let resource: serde_json::Value = serde_json::from_str(contents.as_str().unwrap()).unwrap();
    assert_eq!(resource["email"], "a***@example.com");
    // Admins may delete and see everything.
    let boss = client(
        &s,
        "boss:boss-pw",
        &[
            "call:delete_all:{}",
            r#"call:customer_lookup:{"customer_id": 1}"#,
        ],
    );
    assert_eq!(boss[0]["content"][0]["text"], "deleted everything");
    assert_eq!(text_of(&boss[1])["email"], "alice@example.com");
    let audit = s.gate.audit_when(|a| a.contains("\"identity\":\"boss\""));
    let blocked = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["statement"] == "tools/call delete_all" && e["identity"] == "agent")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(blocked["action"], "block");
    assert_eq!(blocked["protocol"], "mcp");
}

#[test]
fn the_sdk_through_gate_with_sse_sessions() {
    sdk_suite("sse", "stateful");
}

#[test]
fn the_sdk_through_gate_stateless_with_json() {
    sdk_suite("json", "stateless");
}

#[test]
fn hand_made_json_rpc_gets_clear_errors_and_sessions_stay_with_their_caller() {
    let s = setup("json", "stateful");
    let url = format!("http://127.0.0.1:{}/mcp", s.port);
    let post = |credentials: &str, extra: &[&str], body: &str| {
        let mut args = vec![
            "-u",
            credentials,
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json, text/event-stream",
            "-H",
            "MCP-Protocol-Version: 2025-06-18",
            "--data",
            body,
        ];
        args.extend_from_slice(extra);
        curl(&args, &url)
    };
    let bad = post("agent:agent-pw", &[], "{not json");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["code"], -32700);
    let no_version = post("agent:agent-pw", &[], r#"{"id": 1, "method": "ping"}"#);
    assert_eq!(no_version.json()["error"]["code"], -32600);
    let init = post(
        "agent:agent-pw",
        &[],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#,
    );
    assert_eq!(init.status, 200, "{}", init.text());
    let session = init.header("mcp-session-id").unwrap().to_owned();
    assert!(
        session.starts_with("g2."),
        "Gate issues its own session ids: {session}"
    );
    let header = format!("Mcp-Session-Id: {session}");
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"customer_lookup","arguments":{"customer_id":1}}}"#;
    let mine = post("agent:agent-pw", &["-H", &header], call);
    assert_eq!(mine.status, 200, "{}", mine.text());
    assert!(
        !mine.text().contains("alice@example.com"),
        "{}",
        mine.text()
    );
    // A routing header that disagrees with the body is refused before any
    // policy or upstream sees the request.
    let named = |name: &str| {
        let name = format!("Mcp-Name: {name}");
        let extra = ["-H", &header, "-H", "Mcp-Method: tools/call", "-H", &name];
        post("agent:agent-pw", &extra, call)
    };
    let lying = named("harmless_tool");
    assert_eq!(lying.status, 400, "{}", lying.text());
    assert_eq!(lying.json()["error"]["code"], -32020);
    assert!(lying.text().contains("Mcp-Name"), "{}", lying.text());
    let honest = named("customer_lookup");
    assert_eq!(honest.status, 200, "{}", honest.text());
    // The 2026-07-28 envelope's protocol version must be the header's.
    let enveloped = r#"{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let other_version = post("agent:agent-pw", &["-H", &header], enveloped);
    assert_eq!(other_version.status, 400, "{}", other_version.text());
    assert_eq!(other_version.json()["error"]["code"], -32020);
    let reason = other_version.json()["error"]["message"].to_string();
    assert!(
        reason.contains("2025-06-18") && reason.contains("2026-07-28"),
        "names both versions: {reason}"
    );
    // In a session, the client is what its initialize declared: a later
    // message claiming another clientInfo changes neither policy nor audit.
    let claiming = r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"_meta":{"io.modelcontextprotocol/clientInfo":{"name":"rogue-agent","version":"6"}}}}"#;
    let claimed = post("agent:agent-pw", &["-H", &header], claiming);
    assert_eq!(claimed.status, 200, "{}", claimed.text());
    assert!(claimed.json()["error"].is_null(), "{}", claimed.text());
    let rogue_init = post(
        "agent:agent-pw",
        &[],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"rogue-agent","version":"6"}}}"#,
    );
    let rogue = format!(
        "Mcp-Session-Id: {}",
        rogue_init.header("mcp-session-id").unwrap()
    );
    let refused = post("agent:agent-pw", &["-H", &rogue], call);
    assert_eq!(
        refused.json()["error"]["message"],
        "rogue-agent may not call tools",
        "the session carries its initialize's clientInfo: {}",
        refused.text()
    );
    let stolen = post("boss:boss-pw", &["-H", &header], call);
    assert_eq!(
        stolen.status,
        404,
        "another caller cannot use the session: {}",
        stolen.text()
    );
    let blocked = post(
        "agent:agent-pw",
        &["-H", &header],
        r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"delete_all","arguments":{}}}"#,
    );
    assert_eq!(blocked.status, 200);
    assert_eq!(blocked.json()["id"], "x");
    assert_eq!(blocked.json()["error"]["code"], -32001);
    assert_eq!(
        blocked.json()["error"]["message"],
        "delete_all needs admins"
    );
    let nobody = curl(
        &["-H", "Content-Type: application/json", "--data", call],
        &url,
    );
    assert_eq!(nobody.status, 401);
    let audit = s
        .gate
        .audit_when(|a| a.contains("rogue-agent may not call tools"));
    let events = audit_events(&audit);
    let echo = events
        .iter()
        .find(|e| e["statement"] == "tools/call echo")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(echo["mcp"]["client"]["name"], "curl", "{echo}");
    assert_eq!(echo["mcp"]["client"]["version"], "1");
    assert!(
        echo["mcp"]["client"]["user_agent"]
            .as_str()
            .unwrap()
            .starts_with("curl/"),
        "{echo}"
    );
}

fn audit_events(audit: &str) -> Vec<serde_json::Value> {
    audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// The SDK client's declared clientInfo and User-Agent reach policies and
/// every MCP audit event, in the handshake era and in 2026-07-28.
fn provenance_suite(mode: &str) {
    let s = setup("sse", "stateful");
    let lookup = r#"call:customer_lookup:{"customer_id": 1}"#;
    let rogue = client_as(
        &s,
        &[("MCP_CLIENT_NAME", "rogue-agent"), ("MCP_MODE", mode)],
        "agent:agent-pw",
        &["tools", lookup],
    );
    assert_eq!(rogue[0].as_array().unwrap().len(), 4, "lists are not tools");
    assert!(
        rogue[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("rogue-agent may not call tools")),
        "{}",
        rogue[1]
    );
    let env = [
        ("MCP_CLIENT_NAME", "good-agent"),
        ("MCP_CLIENT_VERSION", "1.2"),
        ("MCP_USER_AGENT", "good-agent-ua/1.2"),
        ("MCP_MODE", mode),
    ];
    let good = client_as(&s, &env, "agent:agent-pw", &[lookup]);
    assert_eq!(text_of(&good[0])["name"], "Alice", "{}", good[0]);
    let audit = s.gate.audit_when(|a| a.contains("good-agent-ua/1.2"));
    let events = audit_events(&audit);
    let mcp: Vec<_> = events
        .iter()
        .filter(|e| e["protocol"] == "mcp" && e["kind"] != "session")
        .collect();
    assert!(mcp.len() >= 4, "{audit}");
    let modern = mcp
        .iter()
        .any(|e| e["statement"] == "server/discover" && e["status"] == 200);
    let handshake = mcp.iter().any(|e| e["statement"] == "initialize");
    assert_eq!(
        (modern, handshake),
        (mode == "auto", mode == "legacy"),
        "the SDK spoke the revision under test: {audit}"
    );
    for event in &mcp {
        let name = &event["mcp"]["client"]["name"];
        assert!(
            name == "rogue-agent" || name == "good-agent",
            "every MCP event names its client: {event}"
        );
    }
    let call = mcp
        .iter()
        .find(|e| {
            e["mcp"]["client"]["name"] == "good-agent"
                && e["statement"] == "tools/call customer_lookup"
        })
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(call["mcp"]["client"]["version"], "1.2");
    assert_eq!(call["mcp"]["client"]["user_agent"], "good-agent-ua/1.2");
    assert_eq!(call["mcp"]["operation"], "tool");
    assert_eq!(call["mcp"]["target"], "customer_lookup");
    let masked = mcp
        .iter()
        .find(|e| e["kind"] == "result" && e["mcp"]["client"]["name"] == "good-agent")
        .unwrap_or_else(|| panic!("the masked result's event: {audit}"));
    assert_eq!(masked["action"], "mask");
    let blocked = mcp
        .iter()
        .find(|e| e["mcp"]["client"]["name"] == "rogue-agent" && e["action"] == "block")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(blocked["statement"], "tools/call customer_lookup");
}

/// `docs/mcp-gateway-quickstart.md` as documented: its config and policy,
/// the SDK server and client, the outcomes it shows.
#[test]
fn the_quickstart_works_as_documented() {
    let (server, upstream) = mcp_server("json", "stateful");
    let port = gate_testkit::free_port().unwrap();
    let examples = repo().join("docs/examples/mcp");
    let yaml = std::fs::read_to_string(examples.join("gate.yaml"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("listen_addr") && !l.starts_with("health_addr"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("docs/examples/mcp/", &format!("{}/", examples.display()))
        .replace("port: 8931", &format!("port: {upstream}"))
        .replace("listen_port: 7443", &format!("listen_port: {port}"));
    assert!(yaml.contains(&format!("port: {upstream}")), "{yaml}");
    let s = Setup {
        gate: start_yaml(&yaml, None),
        port,
        _server: server,
        _dir: tempfile::tempdir().unwrap(),
    };
    let agent = client(
        &s,
        "agent:agent-pw",
        &[
            r#"call:customer_lookup:{"customer_id": 1}"#,
            r#"call:customer_lookup:{"customer_id": 13}"#,
            "call:delete_all:{}",
        ],
    );
    assert_eq!(text_of(&agent[0])["email"], "a***@example.com");
    assert_eq!(agent[1]["error"], "customer 13 is off limits");
    assert_eq!(agent[2]["error"], "delete_all needs admins");
    let boss = client(
        &s,
        "boss:boss-pw",
        &[r#"call:customer_lookup:{"customer_id": 1}"#],
    );
    assert_eq!(text_of(&boss[0])["email"], "alice@example.com");
    let rogue = client_as(
        &s,
        &[("MCP_CLIENT_NAME", "rogue-agent")],
        "agent:agent-pw",
        &[r#"call:echo:{"text": "hi"}"#],
    );
    assert_eq!(
        rogue[0]["error"],
        "MCP client rogue-agent may not call tools"
    );
    let audit = s.gate.audit_when(|a| a.contains("rogue-agent"));
    let events = audit_events(&audit);
    let masked = events
        .iter()
        .find(|e| e["kind"] == "result" && e["action"] == "mask")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(masked["statement"], "tools/call customer_lookup");
    assert_eq!(
        masked["mcp"]["client"]["name"], "mcp",
        "the SDK's default clientInfo"
    );
}

#[test]
fn provenance_in_the_handshake_era() {
    provenance_suite("legacy");
}

#[test]
fn provenance_in_the_stateless_revision() {
    provenance_suite("auto");
}
