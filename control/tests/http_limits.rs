//! The HTTP listener's own errors (404, 405, 413, 414, 415, 431, 400, 408) are in the JSON error
//! shape, slow clients are cut off by the timeouts, and gRPC on the same listener is unaffected.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Cp, Db, ROOT_KEY, start_cp_limits};
use gate_control::http::limits::HttpLimits;
use gate_proto::v1::ListResourcesRequest;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply read off the wire: status, header lines (lower-cased names) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON error body; fails the test unless it is `{"code", "message", "field"}` JSON.
    fn error(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "status {}: {}",
            self.status,
            self.body
        );
        let value: Value = serde_json::from_str(&self.body).unwrap();
        assert!(value["code"].is_string(), "{value}");
        assert!(value["message"].is_string(), "{value}");
        assert!(value.get("field").is_some(), "{value}");
        value
    }
}

async fn start(limits: HttpLimits) -> Cp {
    start_cp_limits(Db::Sqlite, Some(ROOT_KEY), false, limits).await
}

/// Send `request` as it is and read the answer until the server closes.
async fn raw(cp: &Cp, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(cp.addr()).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes))
        .await
        .expect("the server neither answered nor closed")
        .unwrap();
    parse(&String::from_utf8_lossy(&bytes))
}

fn parse(text: &str) -> Reply {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A request with the root key and `Connection: close`.
fn request(method: &str, path: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: gate\r\nConnection: close\r\nAuthorization: Bearer {ROOT_KEY}\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const JSON: &str = "Content-Type: application/json\r\n";
const RESOURCE: &str =
    r#"{"name":"db","protocol":"postgres","host":"localhost","port":5432,"database":"app"}"#;

async fn resource_count(cp: &Cp) -> usize {
    let (status, list) = cp.root("GET", "/api/v1/resources", None, None).await;
    assert_eq!(status, 200, "{list}");
    list["resources"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn unknown_paths_are_json_404_and_wrong_methods_json_405() {
    let cp = start(HttpLimits::default()).await;
    for path in ["/nope", "/api/v1/nothing", "/api/v2/resources"] {
        let reply = raw(&cp, &request("GET", path, "", "")).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert_eq!(reply.error()["code"], "not_found", "{path}");
    }
    // Before this change an unknown path answered 200 with an empty gRPC body.
    let reply = raw(&cp, &request("POST", "/gate.v1.Nothing/Call", JSON, "{}")).await;
    assert_eq!(reply.status, 404, "{}", reply.body);

    let reply = raw(&cp, &request("PATCH", "/api/v1/resources", JSON, "{}")).await;
    assert_eq!(reply.status, 405, "{}", reply.body);
    assert_eq!(reply.error()["code"], "method_not_allowed");
    let allow = reply.header("allow").unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert!(!allow.contains("PATCH"), "{allow}");

    let reply = raw(&cp, &request("DELETE", "/health", "", "")).await;
    assert_eq!(reply.status, 405, "{}", reply.body);
    assert!(reply.header("allow").unwrap_or_default().contains("GET"));
    reply.error();
}

#[tokio::test]
async fn bodies_must_be_declared_json() {
    let cp = start(HttpLimits::default()).await;
    let plain = "Content-Type: text/plain\r\n";
    let reply = raw(&cp, &request("POST", "/api/v1/resources", plain, RESOURCE)).await;
    assert_eq!(reply.status, 415, "{}", reply.body);
    let error = reply.error();
    assert_eq!(error["code"], "unsupported_media_type");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{error}"
    );
    // No Content-Type at all (curl -d sends a form type; a bare client sends none).
    let reply = raw(&cp, &request("PUT", "/api/v1/resources/x", "", RESOURCE)).await;
    assert_eq!(reply.status, 415, "{}", reply.body);
    assert_eq!(resource_count(&cp).await, 0);

    let charset = "Content-Type: application/json; charset=utf-8\r\n";
    let reply = raw(
        &cp,
        &request("POST", "/api/v1/resources", charset, RESOURCE),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(resource_count(&cp).await, 1);

    // An empty body needs no type: the operation itself answers (here: the name is missing).
    let reply = raw(&cp, &request("POST", "/api/v1/organizations", plain, "")).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.error()["code"], "invalid_argument");
}

#[tokio::test]
async fn trailing_data_after_the_json_value_is_refused() {
    let cp = start(HttpLimits::default()).await;
    for body in [
        format!("{RESOURCE} x"),
        format!("{RESOURCE}{RESOURCE}"),
        format!("{RESOURCE},"),
    ] {
        let reply = raw(&cp, &request("POST", "/api/v1/resources", JSON, &body)).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        let error = reply.error();
        assert_eq!(error["field"], "body", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("after the JSON value"),
            "{error}"
        );
    }
    assert_eq!(resource_count(&cp).await, 0);
    let body = format!("{RESOURCE} \r\n\t");
    let reply = raw(&cp, &request("POST", "/api/v1/resources", JSON, &body)).await;
    assert_eq!(
        reply.status, 201,
        "trailing whitespace is fine: {}",
        reply.body
    );
}

/// A body must be a JSON object: serde alone would read `[]` as `{}`.
#[tokio::test]
async fn bodies_that_are_not_json_objects_are_refused() {
    let cp = start(HttpLimits::default()).await;
    for body in ["[]", "[\"x\"]", "\"x\"", "7", "null"] {
        let reply = raw(&cp, &request("POST", "/api/v1/organizations", JSON, body)).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        let error = reply.error();
        assert_eq!(
            (error["field"].as_str(), error["message"].as_str()),
            (Some("body"), Some("expected a JSON object")),
            "{body}: {error}"
        );
    }
}

#[tokio::test]
async fn oversized_bodies_uris_and_headers_are_refused() {
    let limits = HttpLimits {
        max_body: 1024,
        ..HttpLimits::default()
    };
    let cp = start(limits).await;
    // Declared too large: refused before a byte of the body is read.
    let head = format!(
        "POST /api/v1/resources HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n{JSON}Content-Length: 2048\r\n\r\n"
    );
    let reply = raw(&cp, head.as_bytes()).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.error()["code"], "payload_too_large");
    // Chunked, no length: refused once the bytes pass the limit.
    let chunk = "x".repeat(600);
    let chunked = format!(
        "POST /api/v1/resources HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n{JSON}Transfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let reply = raw(&cp, chunked.as_bytes()).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    reply.error();
    // Just under the limit: the body is read and judged (not JSON: 400).
    let reply = raw(
        &cp,
        &request("POST", "/api/v1/resources", JSON, &"x".repeat(1000)),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    let long = format!("/api/v1/resources?x={}", "a".repeat(9000));
    let reply = raw(&cp, &request("GET", &long, "", "")).await;
    assert_eq!(reply.status, 414, "{}", reply.body);
    assert_eq!(reply.error()["code"], "uri_too_long");

    let filler = format!("X-Filler: {}\r\n", "f".repeat(20_000));
    let reply = raw(&cp, &request("GET", "/api/v1/resources", &filler, "")).await;
    assert_eq!(reply.status, 431, "{}", reply.body);
    assert_eq!(reply.error()["code"], "headers_too_large");
    // Past hyper's read buffer the HTTP layer refuses the head itself (a bare 431).
    let filler = format!("X-Filler: {}\r\n", "f".repeat(100_000));
    let reply = raw(&cp, &request("GET", "/api/v1/resources", &filler, "")).await;
    assert_eq!(reply.status, 431);
}

#[tokio::test]
async fn bad_utf8_in_path_query_and_body_is_a_json_400() {
    let cp = start(HttpLimits::default()).await;
    let reply = raw(
        &cp,
        &request("GET", "/api/v1/audit?identity=%FF%FE", "", ""),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.error()["field"], "query");
    let reply = raw(&cp, &request("GET", "/api/v1/resources/%C3", "", "")).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.error()["field"], "path");

    // Raw (not percent-encoded) non-ASCII bytes never reach the router: hyper refuses the URI.
    let mut bytes = b"GET /api/v1/resources/caf".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(b" HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n");
    let reply = raw(&cp, &bytes).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.is_empty(), "{}", reply.body);

    let mut body = br#"{"name":"caf"#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#"","protocol":"postgres","host":"h","port":1}"#);
    let mut bytes = format!(
        "POST /api/v1/resources HTTP/1.1\r\nHost: gate\r\nConnection: close\r\nAuthorization: Bearer {ROOT_KEY}\r\n{JSON}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    let reply = raw(&cp, &bytes).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.error()["code"], "invalid_argument");
    assert_eq!(resource_count(&cp).await, 0);
}

/// How long until the server closes `stream` (reading and discarding whatever it sends).
async fn closed_after(mut stream: TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "still open after 5 s");
    started.elapsed()
}

#[tokio::test]
async fn slow_clients_are_disconnected_after_the_header_timeout() {
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(1),
        ..HttpLimits::default()
    };
    let cp = start(limits).await;
    // Slowloris: half a request line, then silence.
    let mut stream = TcpStream::connect(cp.addr()).await.unwrap();
    stream.write_all(b"GET /api/v1/reso").await.unwrap();
    let waited = closed_after(stream).await;
    assert!(
        waited >= Duration::from_millis(800),
        "closed too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // A connection that never sends a byte.
    let stream = TcpStream::connect(cp.addr()).await.unwrap();
    let waited = closed_after(stream).await;
    assert!(
        waited >= Duration::from_millis(800),
        "closed too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // An idle keep-alive connection after a complete request.
    let mut stream = TcpStream::connect(cp.addr()).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: gate\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let waited = closed_after(stream).await;
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_a_json_408() {
    let limits = HttpLimits {
        body_timeout: Duration::from_secs(1),
        ..HttpLimits::default()
    };
    let cp = start(limits).await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(cp.addr()).await.unwrap();
    let head = format!(
        "POST /api/v1/resources HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n{JSON}Content-Length: 40\r\n\r\n{{\"name\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes))
        .await
        .expect("no answer within 5 s")
        .unwrap();
    let waited = started.elapsed();
    let reply = parse(&String::from_utf8_lossy(&bytes));
    assert_eq!(reply.status, 408, "{}", reply.body);
    assert_eq!(reply.error()["code"], "request_timeout");
    assert!(waited >= Duration::from_millis(800), "{waited:?}");
}

#[tokio::test]
async fn grpc_is_unaffected_by_the_http1_timeouts() {
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        ..HttpLimits::default()
    };
    let cp = start(limits).await;
    let mut admin = cp.admin(Some(ROOT_KEY), None).await;
    admin.list_resources(ListResourcesRequest {}).await.unwrap();
    // Longer than both HTTP/1.1 timeouts: the HTTP/2 connection stays usable.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listed = admin.list_resources(ListResourcesRequest {}).await.unwrap();
    assert!(listed.into_inner().resources.is_empty());
}
