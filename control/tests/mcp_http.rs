//! The `/mcp` endpoint over raw HTTP: the stateless 2026-07-28 revision (`server/discover`,
//! routing headers that must say what the body says, envelopes, unsupported revisions) and the
//! handshake era's sessions (signed ids bound to their key, revision headers, batches, 202s,
//! 405s), with the exact JSON-RPC and HTTP answers.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::mcp::{Answer, post_as, raw, seed};
use common::{Cp, Db, ROOT_KEY, start_cp};
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

fn envelope(id: u32, method: &str, params: Value) -> String {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

async fn modern(cp: &Cp, key: &str, extra: &[(&str, &str)], body: &str) -> Answer {
    let accept = [("Accept", "application/json, text/event-stream")];
    post_as(cp, key, &accept, extra, body).await
}

fn error_of(answer: &Answer) -> (i64, String) {
    let error = &answer.body["error"];
    (
        error["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{answer:?}")),
        error["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stateless_revision_checks_headers_against_the_body() {
    let cp = start_cp(Db::Sqlite).await;
    let s = seed(&cp).await;
    let key = s.readonly.as_str();
    let version = ("MCP-Protocol-Version", MODERN);
    // Discovery: the revision, the tools capability, cache hints, no session.
    let discover = modern(
        &cp,
        key,
        &[version, ("Mcp-Method", "server/discover")],
        &envelope(1, "server/discover", json!({})),
    )
    .await;
    assert_eq!(discover.status, 200, "{discover:?}");
    let result = &discover.body["result"];
    assert_eq!(result["supportedVersions"], json!([MODERN]));
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["cacheScope"], "private");
    assert!(result["capabilities"]["tools"].is_object());
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "gate-control"
    );
    assert!(discover.header("mcp-session-id").is_none());
    // A call whose headers agree with its body.
    let call = envelope(
        2,
        "tools/call",
        json!({"name": "list_resources", "arguments": {}}),
    );
    let ok = modern(
        &cp,
        key,
        &[
            version,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "list_resources"),
        ],
        &call,
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body["id"], 2);
    assert_eq!(ok.body["result"]["resultType"], "complete");
    assert_eq!(
        ok.body["result"]["structuredContent"]["resources"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The name may be base64-wrapped.
    let wrapped = "=?base64?bGlzdF9yZXNvdXJjZXM=?=";
    let ok = modern(
        &cp,
        key,
        &[version, ("Mcp-Method", "tools/call"), ("Mcp-Name", wrapped)],
        &call,
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    // Headers that disagree, are missing or are doubled: -32020 with HTTP 400, nothing run.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                version,
                ("Mcp-Method", "tools/list"),
                ("Mcp-Name", "list_resources"),
            ],
            r#"the Mcp-Method header says "tools/list" but the body's method is "tools/call""#,
        ),
        (
            vec![
                version,
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "query_audit"),
            ],
            r#"the Mcp-Name header says "query_audit" but the body names "list_resources""#,
        ),
        (
            vec![
                ("MCP-Protocol-Version", "2025-06-18"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "list_resources"),
            ],
            r#"the MCP-Protocol-Version header says "2025-06-18""#,
        ),
        (
            vec![version, ("Mcp-Name", "list_resources")],
            r#"a 2026-07-28 request needs the Mcp-Method header (the body's method is "tools/call")"#,
        ),
        (
            vec![version, ("Mcp-Method", "tools/call")],
            r#"a 2026-07-28 request needs the Mcp-Name header (the body names "list_resources")"#,
        ),
        (
            vec![("Mcp-Method", "tools/call"), ("Mcp-Name", "list_resources")],
            "a 2026-07-28 request needs the MCP-Protocol-Version header",
        ),
        (
            vec![
                version,
                ("Mcp-Method", "tools/call"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "list_resources"),
            ],
            "the mcp-method header appears more than once",
        ),
    ];
    for (headers, expected) in cases {
        let refused = modern(&cp, key, &headers, &call).await;
        assert_eq!(refused.status, 400, "{headers:?}: {refused:?}");
        let (code, message) = error_of(&refused);
        assert_eq!(code, -32020, "{headers:?}: {message}");
        assert!(message.starts_with(expected), "{headers:?}: {message}");
        assert_eq!(refused.body["id"], 2, "the refusal names the request");
    }
    // The envelope must carry the revision and the client's capabilities.
    let bare = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}}).to_string();
    let refused = modern(&cp, key, &[version, ("Mcp-Method", "tools/list")], &bare).await;
    let (code, message) = error_of(&refused);
    assert_eq!((refused.status, code), (400, -32602));
    assert!(
        message.ends_with("missing: io.modelcontextprotocol/clientCapabilities"),
        "{message}"
    );
    // A revision not served: -32022 with the ones that are.
    let future = envelope(4, "tools/list", json!({})).replace(MODERN, "2027-01-01");
    let refused = modern(
        &cp,
        key,
        &[
            ("MCP-Protocol-Version", "2027-01-01"),
            ("Mcp-Method", "tools/list"),
        ],
        &future,
    )
    .await;
    let (code, _) = error_of(&refused);
    assert_eq!((refused.status, code), (400, -32022));
    assert_eq!(refused.body["error"]["data"]["requested"], "2027-01-01");
    assert!(
        refused.body["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN))
    );
    // Unknown methods are 404 with -32601; a tool error is 400 with -32602 naming the field.
    let unknown = modern(
        &cp,
        key,
        &[version, ("Mcp-Method", "resources/list")],
        &envelope(5, "resources/list", json!({})),
    )
    .await;
    assert_eq!((unknown.status, error_of(&unknown).0), (404, -32601));
    let bad = envelope(
        6,
        "tools/call",
        json!({"name": "query_audit", "arguments": {"limit": 5000}}),
    );
    let refused = modern(
        &cp,
        key,
        &[
            version,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "query_audit"),
        ],
        &bad,
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        error_of(&refused),
        (-32602, "limit: must be at most 1000".to_owned())
    );
    assert_eq!(
        refused.body["error"]["data"],
        json!({"code": "invalid_argument", "field": "limit"})
    );
    // Notifications are acknowledged; batches and posted responses are not this revision's.
    let note =
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}})
            .to_string();
    assert_eq!(
        modern(
            &cp,
            key,
            &[version, ("Mcp-Method", "notifications/cancelled")],
            &note
        )
        .await
        .status,
        202
    );
    let batch = format!("[{}]", envelope(7, "ping", json!({})));
    let refused = modern(&cp, key, &[version], &batch).await;
    assert_eq!(
        error_of(&refused).1,
        "a 2026-07-28 POST carries one JSON-RPC message, not a batch"
    );
    // No key, no answer.
    let anonymous = raw(
        &cp,
        "POST",
        &[version, ("Mcp-Method", "server/discover")],
        &envelope(8, "server/discover", json!({})),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some(r#"Bearer realm="gate-control""#)
    );
    assert_eq!(
        error_of(&anonymous).1,
        "missing bearer token (authorization header)"
    );
}

async fn initialize(cp: &Cp, key: &str, version: &str) -> (String, Answer) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "1"}}});
    let auth = format!("Bearer {key}");
    let answer = raw(cp, "POST", &[("Authorization", &auth)], &body.to_string()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    (answer.header("mcp-session-id").unwrap().to_owned(), answer)
}

async fn in_session(
    cp: &Cp,
    key: &str,
    session: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Answer {
    post_as(cp, key, &[("Mcp-Session-Id", session)], extra, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_sessions_belong_to_their_key_and_revision() {
    let cp = start_cp(Db::Sqlite).await;
    let s = seed(&cp).await;
    let key = s.readonly.as_str();
    // Every handshake revision is served as asked; an unknown one gets the newest.
    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let (_, answer) = initialize(&cp, key, version).await;
        assert_eq!(answer.body["result"]["protocolVersion"], version);
        assert_eq!(answer.body["result"]["serverInfo"]["name"], "gate-control");
    }
    let (_, answer) = initialize(&cp, key, "2023-01-01").await;
    assert_eq!(answer.body["result"]["protocolVersion"], "2025-11-25");
    let (session, _) = initialize(&cp, key, "2025-06-18").await;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        in_session(&cp, key, &session, &[], initialized)
            .await
            .status,
        202
    );
    let listed = in_session(
        &cp,
        key,
        &session,
        &[("MCP-Protocol-Version", "2025-06-18")],
        list,
    )
    .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body["result"]["tools"].as_array().unwrap().len(), 7);
    assert!(
        listed.body["result"].get("resultType").is_none(),
        "handshake-era results are plain"
    );
    // The session holds for the key that opened it, with its own revision.
    let other = in_session(&cp, &s.other_readonly, &session, &[], list).await;
    assert_eq!(other.status, 404, "another key's session: {other:?}");
    let root = in_session(&cp, ROOT_KEY, &session, &[], list).await;
    assert_eq!(root.status, 404, "even the root key's");
    let forged = in_session(&cp, key, &format!("{session}x"), &[], list).await;
    assert_eq!(forged.status, 404);
    assert!(
        error_of(&forged)
            .1
            .starts_with("no such session for this key")
    );
    let mismatch = in_session(
        &cp,
        key,
        &session,
        &[("MCP-Protocol-Version", "2025-11-25")],
        list,
    )
    .await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        error_of(&mismatch).1,
        r#"the MCP-Protocol-Version header says "2025-11-25" but this session negotiated "2025-06-18""#
    );
    // Without a session (and not 2026-07-28) there is nothing to answer in.
    let auth = format!("Bearer {key}");
    let lost = raw(&cp, "POST", &[("Authorization", &auth)], list).await;
    assert_eq!(lost.status, 400);
    assert!(
        error_of(&lost)
            .1
            .starts_with("missing Mcp-Session-Id: send initialize first")
    );
    // Batches: 2025-03-26 yes, 2025-06-18 no.
    let batch = r#"[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"list_connectors"}}]"#;
    let refused = in_session(&cp, key, &session, &[], batch).await;
    assert_eq!(
        error_of(&refused).1,
        "revision 2025-06-18 takes one JSON-RPC message per POST; batches were removed after 2025-03-26"
    );
    let (old, _) = initialize(&cp, key, "2025-03-26").await;
    let answered = in_session(&cp, key, &old, &[], batch).await;
    assert_eq!(answered.status, 200, "{answered:?}");
    let replies = answered.body.as_array().unwrap();
    assert_eq!(
        replies.len(),
        2,
        "one reply per request, none for the notification"
    );
    assert_eq!(
        replies[0],
        json!({"jsonrpc": "2.0", "id": "a", "result": {}})
    );
    assert_eq!(
        replies[1]["result"]["structuredContent"]["connectors"][0]["name"],
        "edge-1"
    );
    // Errors inside a session are JSON-RPC errors on a 200.
    let unknown = in_session(
        &cp,
        key,
        &session,
        &[],
        r#"{"jsonrpc":"2.0","id":3,"method":"prompts/list"}"#,
    )
    .await;
    assert_eq!((unknown.status, error_of(&unknown).0), (200, -32601));
    let again = in_session(&cp, key, &session, &[], r#"{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#).await;
    assert!(
        error_of(&again)
            .1
            .starts_with("this session is already initialized (revision 2025-06-18)"),
        "{again:?}"
    );
    // Malformed bodies and media types.
    let broken = in_session(&cp, key, &session, &[], "{nope").await;
    assert_eq!((broken.status, error_of(&broken).0), (400, -32700));
    let text = in_session(&cp, key, &session, &[("Content-Type", "text/plain")], list).await;
    assert_eq!(text.status, 415);
    let accept = in_session(&cp, key, &session, &[("Accept", "text/html")], list).await;
    assert_eq!(accept.status, 406);
    // No server-initiated stream, nothing to delete.
    for method in ["GET", "DELETE"] {
        let refused = raw(
            &cp,
            method,
            &[("Authorization", &auth), ("Mcp-Session-Id", &session)],
            "",
        )
        .await;
        assert_eq!(refused.status, 405, "{method}");
        assert_eq!(refused.header("allow"), Some("POST"));
    }
}
