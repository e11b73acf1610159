//! Support for the `/mcp` suites: an organization's worth of data made through `/api/v1`, the
//! official Python MCP client (`tests/mcp_peers/client.py`), and raw HTTP/1.1 POSTs with any
//! headers that return the response's headers too.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)] // in tests a panic is the failure report

use serde_json::{Value, json};

use super::{Cp, ROOT_KEY};

/// What [`seed`] made.
pub struct Seeded {
    pub acme: String,
    pub other: String,
    /// A readonly key of `acme`.
    pub readonly: String,
    /// A readonly key of `other`.
    pub other_readonly: String,
    pub policy_id: String,
    pub resource_id: String,
}

pub const ALLOWLIST: &str = r#"package gate.ip_allowlist

import rego.v1

default session := {"action": "allow"}

session := {"action": "block", "reason": "client address is outside the allowlist"} if {
	not net.cidr_contains("10.0.0.0/8", input.connection.client_ip)
}
"#;

async fn created(cp: &Cp, path: &str, org: &str, body: Value) -> Value {
    let (status, reply) = cp
        .root("POST", path, Some(org), Some(&body.to_string()))
        .await;
    assert!(status == 200 || status == 201, "{path}: {status} {reply}");
    reply
}

/// Two organizations: `acme` with resources, an active policy, access requests, a connector
/// and audit events; `other` with one resource of its own.
pub async fn seed(cp: &Cp) -> Seeded {
    let acme = cp.org("acme").await;
    let other = cp.org("other").await;
    let readonly = cp.key(&acme, "readonly").await;
    let other_readonly = cp.key(&other, "readonly").await;
    let resource = |name: &str, protocol: &str, port: u16| json!({"name": name, "protocol": protocol, "host": "10.0.0.5", "port": port});
    let orders = created(
        cp,
        "/api/v1/resources",
        &acme,
        resource("orders-db", "postgres", 5432),
    )
    .await;
    created(
        cp,
        "/api/v1/resources",
        &acme,
        resource("agent-tools", "mcp", 8080),
    )
    .await;
    created(
        cp,
        "/api/v1/resources",
        &other,
        resource("other-db", "mysql", 3306),
    )
    .await;
    let policy = created(
        cp,
        "/api/v1/policies",
        &acme,
        json!({"name": "ip-allowlist", "rego": ALLOWLIST, "stages": ["session"], "targets": ["orders-*"], "state": "active"}),
    )
    .await;
    let resource_id = orders["id"].as_str().unwrap().to_owned();
    for (subject, reason) in [("alice", "incident 42"), ("bob", "month-end report")] {
        created(
            cp,
            "/api/v1/access-requests",
            &acme,
            json!({"subject": subject, "resource_id": resource_id, "reason": reason, "duration_seconds": 3600}),
        )
        .await;
    }
    let (_, listed) = cp
        .root("GET", "/api/v1/access-requests", Some(&acme), None)
        .await;
    let bob = listed["access_requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == "bob")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    created(
        cp,
        &format!("/api/v1/access-requests/{bob}/approve"),
        &acme,
        json!({"approved_by": "carol"}),
    )
    .await;
    let connector = cp.key(&acme, "connector").await;
    let (status, reply) = super::http(
        cp.addr(),
        "POST",
        "/api/v1/connectors",
        Some(&connector),
        None,
        Some(r#"{"name":"edge-1","version":"1","resources":["orders-db"]}"#),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let events: Vec<Value> = (1..=5)
        .map(|n| {
            json!({
                "id": format!("0190a0a0-0000-7000-8000-{n:012}"),
                "time": format!("2026-11-23T10:00:0{n}.000Z"),
                "identity": if n % 2 == 0 { "alice" } else { "bob" },
                "resource": "orders-db",
                "protocol": "postgres",
                "stage": "pre_request",
                "action": if n == 5 { "block" } else { "allow" },
                "statement": format!("select {n}"),
            })
        })
        .collect();
    created(cp, "/api/v1/audit", &acme, json!({"events": events})).await;
    Seeded {
        acme,
        other,
        readonly,
        other_readonly,
        policy_id: policy["id"].as_str().unwrap().to_owned(),
        resource_id,
    }
}

/// One SDK client: its HTTP headers, its mode (`auto`: 2026-07-28 with fallback, `legacy`: the
/// handshake) and its steps (`version`, `tools`, `call:NAME:JSON`).
pub type Session<'a> = (Value, &'a str, &'a [&'a str]);

/// Run the Python SDK client against `/mcp` for each session in turn (one Python process);
/// one JSON value per step, per session.
pub async fn sdk(cp: &Cp, sessions: &[Session<'_>]) -> Vec<Vec<Value>> {
    let url = format!("http://{}/mcp", cp.addr());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_peers/client.py");
    let python = gate_testkit::venv_python().unwrap();
    let mut args = Vec::new();
    for (headers, mode, steps) in sessions {
        args.push(format!(
            "connect:{}",
            json!({"headers": headers, "mode": mode})
        ));
        args.extend(steps.iter().map(|s| (*s).to_owned()));
    }
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(url)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.py failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut results = vec![Vec::new(); sessions.len()];
    for line in stdout.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        let n = usize::try_from(line["client"].as_u64().unwrap()).unwrap();
        results[n].push(line["out"].clone());
    }
    for (result, (_, _, steps)) in results.iter().zip(sessions) {
        assert_eq!(result.len(), steps.len(), "{stdout}");
    }
    results
}

/// Bearer headers for the SDK client.
pub fn bearer(key: &str, org: Option<&str>) -> Value {
    let mut headers = json!({"Authorization": format!("Bearer {key}")});
    if let Some(org) = org {
        headers["X-Org-ID"] = json!(org);
    }
    headers
}

/// The root key's headers.
pub fn root(org: Option<&str>) -> Value {
    bearer(ROOT_KEY, org)
}

/// An HTTP response: status, headers (lower-case names) and the body as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One raw request to `/mcp` (`Content-Type: application/json` unless `headers` sets one).
pub async fn raw(cp: &Cp, method: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(cp.addr()).await.unwrap();
    let mut request = format!(
        "{method} /mcp HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        cp.addr(),
        body.len()
    );
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        request += "Content-Type: application/json\r\n";
    }
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "\r\n";
    request += body;
    let (head, rest) = super::round_trip(&mut stream, &request).await;
    let (status, headers) = super::parse_head(&head);
    let body = if rest.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&rest).unwrap_or_else(|e| panic!("{e}: {rest}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A POST to `/mcp` with `key` as Bearer, then `fixed` and `extra` headers.
pub async fn post_as(
    cp: &Cp,
    key: &str,
    fixed: &[(&str, &str)],
    extra: &[(&str, &str)],
    body: &str,
) -> Answer {
    let auth = format!("Bearer {key}");
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(fixed);
    headers.extend_from_slice(extra);
    raw(cp, "POST", &headers, body).await
}
