//! HTTP resources end to end: nginx serving JSON fixtures and a small hyper
//! upstream behind Gate, curl as the client (HTTP/1.1, h2c, h2 over TLS):
//! identity (Basic, JWT, trusted proxies), policy blocks and rewrites,
//! filters and masks (nested, gzip'd, streamed), fail-closed refusals,
//! upstream failures, WebSocket upgrades, and audit.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod http_support;

use std::io::{Read, Write};

use common::*;
use gate_testkit::{Nginx, NginxOptions, SelfSignedCert};
use http_support::*;

const CUSTOMERS: &str = r#"[
  {"id": 1, "org": "acme", "name": "Alice", "email": "alice@example.com", "ssn": "123-45-6789"},
  {"id": 2, "org": "globex", "name": "Bob", "email": "bob@example.com", "ssn": "987-65-4321"},
  {"id": 3, "org": "acme", "name": "Carol", "email": "carol@example.com", "ssn": "555-12-3434"}
]"#;

const POLICY: &str = r#"package gate.http_test

import rego.v1

default session := {"action": "allow"}

default pre_request := {"action": "allow"}

pre_request := {"action": "block", "reason": "admin paths are not allowed"} if {
	startswith(input.http.path, "/admin")
}

pre_request := {"action": "block", "reason": "only admins may delete"} if {
	input.http.method == "DELETE"
	not "admins" in input.user.groups
}

pre_request := {"action": "rewrite", "query": "/customers.json"} if input.http.path == "/people"

pre_request := {"action": "rewrite", "query": "{\"redacted\": true}"} if input.http.path == "/rewrite-body"

pre_request := {"action": "block", "reason": "limit too high"} if {
	input.http.path == "/echo"
	to_number(input.http.query.limit[_]) > 100
}

pre_request := {"action": "block", "reason": "x-block says so"} if input.http.headers["x-block"] == "yes"

pre_request := {"action": "block", "reason": "no refunds over 1000"} if {
	input.http.body.amount > 1000
}

default post_request := {"action": "allow"}

post_request := {
	"action": "filter",
	"filters": [{"field": "org", "op": "eq", "value": "acme"}],
	"masks": [{"column": "email", "strategy": "email"}, {"column": "ssn", "strategy": "redact"}],
} if {
	input.http.path in {"/customers.json", "/nested.json", "/gz/customers.json"}
	not "admins" in input.user.groups
}

post_request := {"action": "mask", "masks": [{"column": "email", "strategy": "redact"}]} if {
	input.http.path in {"/page.html", "/bad.json", "/big.json", "/ndjson", "/sse", "/ws-masked"}
}
"#;

struct Setup {
    gate: GateOnly,
    nginx: Nginx,
    echo: u16,
    _dir: tempfile::TempDir,
}

fn setup_with(extra_resource: &str, top: &str, tls: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let nested = format!(r#"{{"data": {{"items": {CUSTOMERS}}}, "total": 3}}"#);
    let big = format!("[{}]", vec![r#"{"email":"x@example.com"}"#; 4000].join(","));
    let mut binary = String::new();
    for i in 0..2000u32 {
        binary.push(char::from_u32(0x20 + (i * 7919 % 0x5e)).unwrap());
    }
    let nginx = Nginx::start(NginxOptions {
        files: vec![
            ("customers.json".into(), CUSTOMERS.into()),
            ("nested.json".into(), nested),
            ("gz/customers.json".into(), CUSTOMERS.into()),
            ("bad.json".into(), "{\"email\": \"a@b.c\", oops".into()),
            ("big.json".into(), big),
            ("page.html".into(), "<p>alice@example.com</p>".into()),
            ("file.txt".into(), binary),
        ],
        server_config: "    location /gz/ { gzip on; gzip_types application/json; gzip_min_length 1; }\n\
                        location = /ndjson { default_type application/x-ndjson; return 200 '{\"email\":\"a@b.c\"}\\n'; }\n\
                        location = /sse { default_type text/event-stream; return 200 'data: {\"email\":\"a@b.c\"}\\n\\n'; }\n"
            .into(),
        ..Default::default()
    })
    .unwrap();
    let policy = dir.path().join("http.rego");
    std::fs::write(&policy, POLICY).unwrap();
    let echo_runtime = tokio::runtime::Runtime::new().unwrap();
    let echo = echo_upstream(&echo_runtime);
    std::mem::forget(echo_runtime); // lives as long as the test process
    let certs = tls.then(|| SelfSignedCert::generate(dir.path(), "gate", "localhost").unwrap());
    let tls_yaml = certs.as_ref().map_or(String::new(), |c| {
        format!(
            "tls: {{enabled: true, cert_file: \"{}\", key_file: \"{}\"}}\n",
            c.cert.display(),
            c.key.display()
        )
    });
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw, groups: [engineering]}}\n  - {{name: boss, password: boss-pw, groups: [admins]}}\n\
         {top}{tls_yaml}resources:\n\
         \x20 - {{name: api, protocol: http, host: 127.0.0.1, port: {np}, host_names: [api.gate.test, localhost, 127.0.0.1]}}\n\
         \x20 - {{name: nested, protocol: http, host: 127.0.0.1, port: {np}, host_names: [nested.gate.test], filter_path: data.items, max_body_bytes: 50000}}\n\
         \x20 - {{name: echo, protocol: http, host: 127.0.0.1, port: {echo}, host_names: [echo.gate.test], upstream_headers: {{X-Api-Key: injected-secret}}, timeouts: {{header: 1s}}}}\n\
         \x20 - {{name: down, protocol: http, host: 127.0.0.1, port: 1, host_names: [down.gate.test]}}\n\
         {extra_resource}\
         policies:\n  - {{path: \"{p}\", stage: session}}\n  - {{path: \"{p}\", stage: pre_request}}\n  - {{path: \"{p}\", stage: post_request}}\n",
        np = nginx.port(),
        p = policy.display(),
    );
    let files = certs
        .as_ref()
        .map(|c| gate_connector::tls::TlsFiles::load(&c.cert, &c.key).unwrap());
    Setup {
        gate: start_yaml(&yaml, files),
        nginx,
        echo,
        _dir: dir,
    }
}

fn setup() -> Setup {
    setup_with("", "trusted_proxies: [127.0.0.2]\n", false)
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gate.port)
    }
    fn get(&self, host: &str, path: &str, extra: &[&str]) -> Curl {
        let mut args = vec!["-u", "app:app-pw", "-H"];
        let host_header = format!("Host: {host}");
        args.push(&host_header);
        args.extend_from_slice(extra);
        curl(&args, &self.url(path))
    }
}

#[test]
fn an_allow_all_exchange_is_byte_identical_to_direct() {
    let s = setup();
    for path in ["/file.txt", "/customers.json", "/missing.json"] {
        let direct = curl(&[], &format!("{}{path}", s.nginx.base_url()));
        let via = curl(&["-u", "boss:boss-pw"], &s.url(path));
        assert_eq!(via.status, direct.status, "{path}");
        assert_eq!(via.body, direct.body, "{path}: body bytes differ");
        for name in ["content-type", "content-length", "etag", "last-modified"] {
            assert_eq!(
                via.header(name),
                direct.header(name),
                "{path}: header {name}"
            );
        }
    }
    // h2c by prior knowledge gives the same bytes.
    let h2 = curl(
        &["--http2-prior-knowledge", "-u", "boss:boss-pw"],
        &s.url("/file.txt"),
    );
    assert_eq!(h2.status, 200);
    assert_eq!(
        h2.body,
        curl(&[], &format!("{}/file.txt", s.nginx.base_url())).body
    );
}

#[test]
fn json_arrays_are_filtered_then_masked() {
    let s = setup();
    let r = s.get("api.gate.test", "/customers.json", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 2, "only acme rows: {items:?}");
    assert_eq!(items[0]["email"], "a***@example.com");
    assert_eq!(items[0]["ssn"], "***");
    assert_eq!(items[1]["name"], "Carol");
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );
    assert!(!r.text().contains("alice@example.com") && !r.text().contains("globex"));
    // A policy-given rewrite of the path is filtered and masked too.
    let rewritten = s.get("api.gate.test", "/people", &[]);
    assert_eq!(rewritten.json(), r.json());
    // Admins see everything.
    let all = curl(
        &["-u", "boss:boss-pw", "-H", "Host: api.gate.test"],
        &s.url("/customers.json"),
    );
    assert_eq!(all.json().as_array().unwrap().len(), 3);
}

#[test]
fn nested_arrays_and_gzip_bodies_are_enforced() {
    let s = setup();
    let nested = s.get("nested.gate.test", "/nested.json", &[]);
    assert_eq!(nested.status, 200, "{}", nested.text());
    let doc = nested.json();
    assert_eq!(doc["total"], 3);
    let items = doc["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["email"], "c***@example.com");
    // nginx gzips this one; Gate decodes, masks and sends identity.
    let direct = curl(
        &["-H", "Accept-Encoding: gzip"],
        &format!("{}/gz/customers.json", s.nginx.base_url()),
    );
    assert_eq!(
        direct.header("content-encoding"),
        Some("gzip"),
        "the fixture is gzip'd"
    );
    let gz = s.get(
        "api.gate.test",
        "/gz/customers.json",
        &["-H", "Accept-Encoding: gzip, zstd"],
    );
    assert_eq!(gz.status, 200, "{}", gz.text());
    assert_eq!(gz.header("content-encoding"), None);
    assert_eq!(gz.json().as_array().unwrap().len(), 2);
    assert!(!gz.text().contains("alice@example.com"));
}

#[test]
fn responses_that_cannot_be_inspected_are_refused() {
    let s = setup();
    for (path, expect) in [("/page.html", "not JSON"), ("/bad.json", "not valid JSON")] {
        let r = s.get("api.gate.test", path, &[]);
        assert_eq!(r.status, 502, "{path}");
        let json = r.json();
        assert_eq!(json["error"], "response_refused");
        assert!(json["reason"].as_str().unwrap().contains(expect), "{json}");
        assert!(!r.text().contains("alice@example.com") && !r.text().contains("a@b.c"));
    }
    let big = s.get("nested.gate.test", "/big.json", &[]);
    assert_eq!(big.status, 502);
    assert!(
        big.json()["reason"]
            .as_str()
            .unwrap()
            .contains("inspection limit")
    );
    // Streams are masked record by record.
    let nd = s.get("api.gate.test", "/ndjson", &[]);
    assert_eq!(nd.text(), "{\"email\":\"***\"}\n");
    let sse = s.get("api.gate.test", "/sse", &[]);
    assert_eq!(sse.text(), "data: {\"email\":\"***\"}\n\n");
}

#[test]
fn policies_block_with_403_json_and_see_query_and_body() {
    let s = setup();
    let r = s.get("api.gate.test", "/admin/users", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["reason"], "admin paths are not allowed");
    assert_eq!(r.json()["error"], "forbidden");
    let del = s.get("echo.gate.test", "/orders/1", &["-X", "DELETE"]);
    assert_eq!(del.status, 403);
    let boss = curl(
        &[
            "-u",
            "boss:boss-pw",
            "-H",
            "Host: echo.gate.test",
            "-X",
            "DELETE",
        ],
        &s.url("/orders/1"),
    );
    assert_eq!(boss.status, 200);
    assert_eq!(boss.json()["method"], "DELETE");
    let many = s.get("echo.gate.test", "/echo?limit=5&limit=500", &[]);
    assert_eq!(
        many.status, 403,
        "any value of a multi-valued parameter counts"
    );
    let ok = s.get("echo.gate.test", "/echo?limit=5", &[]);
    assert_eq!(ok.status, 200);
    let refund = |amount: u32| {
        s.get(
            "echo.gate.test",
            "/refunds",
            &[
                "-H",
                "Content-Type: application/json",
                "--data",
                &format!("{{\"amount\": {amount}}}"),
            ],
        )
    };
    assert_eq!(refund(5000).status, 403);
    let small = refund(10);
    assert_eq!(small.status, 200);
    assert_eq!(
        small.json()["body"],
        "{\"amount\": 10}",
        "the body reaches the upstream unchanged"
    );
    let audit = s.gate.audit_when(|a| a.contains("/refunds"));
    let blocked: serde_json::Value = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["statement"] == "GET /admin/users")
        .unwrap();
    assert_eq!(blocked["action"], "block");
    assert_eq!(blocked["status"], 403);
    assert_eq!(blocked["protocol"], "http");
    assert_eq!(blocked["identity"], "app");
    assert!(
        audit.contains("\"statement\":\"GET /echo?limit&limit\""),
        "query values stay out of the audit"
    );
}

#[test]
fn identity_comes_from_credentials_or_a_trusted_proxy_only() {
    let s = setup();
    let none = curl(&["-H", "Host: echo.gate.test"], &s.url("/echo"));
    assert_eq!(none.status, 401);
    assert!(none.header("www-authenticate").is_some());
    let wrong = curl(
        &["-u", "app:nope", "-H", "Host: echo.gate.test"],
        &s.url("/echo"),
    );
    let unknown = curl(
        &["-u", "ghost:nope", "-H", "Host: echo.gate.test"],
        &s.url("/echo"),
    );
    assert_eq!(
        (wrong.status, wrong.body.clone()),
        (unknown.status, unknown.body)
    );
    assert_eq!(wrong.status, 401);
    // From an untrusted peer the forwarded identity is ignored and stripped.
    let forged = curl(
        &[
            "-H",
            "Host: echo.gate.test",
            "-H",
            "X-Forwarded-User: boss",
            "-H",
            "X-Forwarded-Groups: admins",
        ],
        &s.url("/echo"),
    );
    assert_eq!(forged.status, 401);
    let forged = s.get(
        "echo.gate.test",
        "/echo",
        &[
            "-H",
            "X-Forwarded-User: boss",
            "-H",
            "X-Forwarded-For: 6.6.6.6",
        ],
    );
    let headers = &forged.json()["headers"];
    assert!(headers.get("x-forwarded-user").is_none(), "{headers}");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert!(
        headers.get("authorization").is_none(),
        "client credentials are not forwarded"
    );
    assert_eq!(headers["x-api-key"], "injected-secret");
    assert_eq!(headers["host"], format!("127.0.0.1:{}", s.echo));
    assert_eq!(headers["x-forwarded-host"], "echo.gate.test");
    assert_eq!(
        headers["forwarded"],
        "for=127.0.0.1;proto=http;host=\"echo.gate.test\""
    );
    // From the trusted proxy (127.0.0.2) the forwarded identity and groups count.
    let trusted = curl(
        &[
            "--interface",
            "127.0.0.2",
            "-H",
            "Host: echo.gate.test",
            "-X",
            "DELETE",
            "-H",
            "X-Forwarded-User: carol",
            "-H",
            "X-Forwarded-Groups: sre, admins",
            "-H",
            "X-Forwarded-For: 10.9.8.7",
        ],
        &s.url("/orders/9"),
    );
    assert_eq!(trusted.status, 200, "{}", trusted.text());
    assert_eq!(
        trusted.json()["headers"]["x-forwarded-for"],
        "10.9.8.7, 127.0.0.2"
    );
    let audit = s.gate.audit_when(|a| a.contains("\"identity\":\"carol\""));
    assert!(audit.contains("\"identity\":\"carol\""));
}

/// One kept-alive connection whose requests change credentials and headers:
/// each is authenticated and judged as its own (remembered admissions and
/// reused verdicts never carry over to a request they do not fit).
#[test]
fn one_connection_is_judged_request_by_request() {
    let s = setup();
    let url = s.url("/orders/1");
    let mut args: Vec<String> = Vec::new();
    let steps: [&[&str]; 7] = [
        &["-u", "app:app-pw", "-X", "DELETE"],
        &["-u", "boss:boss-pw", "-X", "DELETE"],
        &["-u", "boss:wrong", "-X", "DELETE"],
        &["-u", "app:app-pw", "-X", "DELETE"],
        &["-u", "app:app-pw"],
        &["-u", "app:app-pw", "-H", "X-Block: yes"],
        &["-u", "app:app-pw"],
    ];
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            args.push("--next".into());
        }
        args.extend(
            [
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{num_connects}\\n",
                "-H",
                "Host: echo.gate.test",
            ]
            .map(String::from),
        );
        args.extend(step.iter().map(|a| (*a).to_owned()));
        args.push(url.clone());
    }
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let statuses: Vec<&str> = lines.iter().map(|l| &l[..3]).collect();
    assert_eq!(
        statuses,
        ["403", "200", "401", "403", "200", "403", "200"],
        "{text}"
    );
    let connects: usize = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    assert!(connects <= 2, "the requests share a connection: {text}");
}

#[test]
fn upstream_failures_say_which_side_failed() {
    let s = setup();
    let down = s.get("down.gate.test", "/", &[]);
    assert_eq!(down.status, 502);
    assert_eq!(down.json()["side"], "upstream");
    assert!(
        down.json()["reason"]
            .as_str()
            .unwrap()
            .contains("cannot connect")
    );
    let slow = s.get("echo.gate.test", "/slow", &[]);
    assert_eq!(slow.status, 504);
    assert_eq!(slow.json()["error"], "upstream_timeout");
    let unknown = s.get("nobody.gate.test", "/", &[]);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["side"], "client");
}

#[test]
fn streamed_records_are_masked_as_they_arrive() {
    let s = setup();
    // The echo upstream splits every record across two writes 20 ms apart.
    let nd = s.get("echo.gate.test", "/ndjson", &["-N"]);
    assert_eq!(nd.status, 200);
    assert_eq!(nd.header("content-type"), Some("application/x-ndjson"));
    // Masked records keep the upstream's key order.
    let expected: String = (0..3)
        .map(|i| format!("{{\"n\":{i},\"email\":\"***\"}}\n"))
        .collect();
    assert_eq!(nd.text(), expected);
    let sse = s.get("echo.gate.test", "/sse", &["-N"]);
    let expected: String = (0..3)
        .map(|i| format!("id: {i}\ndata: {{\"n\":{i},\"email\":\"***\"}}\n\n"))
        .collect();
    assert_eq!(sse.text(), expected);
}

#[test]
fn websocket_upgrades_pass_after_the_decision() {
    let s = setup();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.gate.port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let auth = "YXBwOmFwcC1wdw=="; // app:app-pw
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nHost: echo.gate.test\r\nAuthorization: Basic {auth}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"));
    stream.write_all(b"ping through gate").unwrap();
    let mut echoed = [0u8; 17];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping through gate");
    // A blocked upgrade request never reaches the upstream.
    let r = s.get(
        "echo.gate.test",
        "/admin/ws",
        &["-H", "Connection: Upgrade", "-H", "Upgrade: websocket"],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn h2_over_tls_is_negotiated_by_alpn() {
    let s = setup_with("", "", true);
    let r = curl(
        &[
            "-k",
            "--http2",
            "-u",
            "app:app-pw",
            "--resolve",
            &format!("api.gate.test:{}:127.0.0.1", s.gate.port),
        ],
        &format!("https://api.gate.test:{}/customers.json", s.gate.port),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    let version = std::process::Command::new("curl")
        .args([
            "-sk",
            "--http2",
            "-u",
            "app:app-pw",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "--resolve",
        ])
        .arg(format!("api.gate.test:{}:127.0.0.1", s.gate.port))
        .arg(format!("https://api.gate.test:{}/file.txt", s.gate.port))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout), "2");
}

#[test]
fn a_hyper_client_round_trips_bodies_and_sees_body_rewrites() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let s = setup();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let port = s.gate.port;
    let (posted, rewritten) = runtime.block_on(async move {
        let client: Client<_, Full<bytes::Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let send = |path: &'static str, body: &'static str| {
            let request = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
                .header("host", "echo.gate.test")
                .header("authorization", "Basic YXBwOmFwcC1wdw==")
                .header("content-type", "application/json")
                .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
                .unwrap();
            let client = client.clone();
            async move {
                let response = client.request(request).await.unwrap();
                assert_eq!(response.status(), 200);
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
            }
        };
        (
            send("/orders", "{\"item\": \"book\", \"qty\": 2}").await,
            send("/rewrite-body", "{\"secret\": 1}").await,
        )
    });
    assert_eq!(posted["body"], "{\"item\": \"book\", \"qty\": 2}");
    assert_eq!(posted["method"], "POST");
    assert_eq!(rewritten["body"], "{\"redacted\": true}");
    assert_eq!(rewritten["headers"]["content-length"], "18");
}

#[test]
fn what_the_policy_judges_is_what_the_upstream_gets() {
    let s = setup();
    for path in [
        "//admin/users",
        "/x/../admin/users",
        "/%61dmin/users",
        "/./admin/users",
    ] {
        let r = s.get("echo.gate.test", path, &["--path-as-is"]);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    let climb = s.get("echo.gate.test", "/../../etc/passwd", &["--path-as-is"]);
    assert_eq!(climb.status, 400);
    let normal = s.get("echo.gate.test", "/a/./b//c/../d%7e", &["--path-as-is"]);
    assert_eq!(
        normal.json()["path"],
        "/a/b/d~",
        "the upstream gets the normalized path"
    );
    // A JSON body is judged whatever content type it claims.
    let sneaky = s.get(
        "echo.gate.test",
        "/refunds",
        &[
            "-H",
            "Content-Type: text/plain",
            "--data",
            "{\"amount\": 5000}",
        ],
    );
    assert_eq!(sneaky.status, 403, "{}", sneaky.text());
    let untyped = s.get(
        "echo.gate.test",
        "/refunds",
        &["-H", "Content-Type:", "--data-binary", "{\"amount\": 5000}"],
    );
    assert_eq!(untyped.status, 403, "{}", untyped.text());
    // An upgraded stream cannot be masked: refused, not tunnelled.
    let ws = s.get(
        "echo.gate.test",
        "/ws-masked",
        &["-H", "Connection: Upgrade", "-H", "Upgrade: websocket"],
    );
    assert_eq!(ws.status, 502, "{}", ws.text());
    assert_eq!(ws.json()["error"], "response_refused");
}
