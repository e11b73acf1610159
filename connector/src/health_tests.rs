//! The health port over raw sockets: statuses, bodies and content types per path and method, and the header read timeout.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Health, router, serve_with};
use crate::metrics::Metrics;

/// A health port with a short header timeout; its address and the shared state.
async fn start(timeout: Duration) -> (std::net::SocketAddr, Arc<Health>, Arc<Metrics>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (health, metrics) = (Arc::new(Health::default()), Arc::new(Metrics::default()));
    tokio::spawn(serve_with(
        listener,
        router(health.clone(), metrics.clone()),
        timeout,
    ));
    (addr, health, metrics)
}

/// Send `method path` and read the whole answer: (status, lower-cased head, body).
async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn paths_answer_with_their_status_and_body() {
    let (addr, health, metrics) = start(Duration::from_secs(10)).await;
    let (status, head, body) = request(addr, "GET", "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert_eq!(request(addr, "GET", "/healthz?probe=1").await.0, 200);

    let (status, _, body) = request(addr, "GET", "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "not ready\n"));
    health.set_ready();
    let (status, _, body) = request(addr, "GET", "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    metrics.add(
        "gate_connpool_exhausted_total",
        &[("resource", "db"), ("upstream", "h:1")],
        3.0,
    );
    let (status, head, body) = request(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(
        body.contains("gate_connpool_exhausted_total{resource=\"db\",upstream=\"h:1\"} 3"),
        "{body}"
    );
    assert_eq!(body, metrics.render());

    let (status, _, body) = request(addr, "GET", "/nope").await;
    assert_eq!((status, body.as_str()), (404, "not found\n"));
}

#[tokio::test]
async fn only_get_and_head_are_answered() {
    let (addr, _, _) = start(Duration::from_secs(10)).await;
    for (method, path) in [
        ("POST", "/metrics"),
        ("DELETE", "/healthz"),
        ("PUT", "/nope"),
    ] {
        let (status, head, body) = request(addr, method, path).await;
        assert_eq!(
            (status, body.as_str()),
            (405, "only GET\n"),
            "{method} {path}"
        );
        assert!(
            head.contains("allow: get, head\r\n"),
            "{method} {path}: {head}"
        );
    }
    let (status, head, body) = request(addr, "HEAD", "/healthz").await;
    assert_eq!((status, body.as_str()), (200, ""), "{head}");
}

#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_cut_off() {
    let (addr, _, _) = start(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "the connection was not closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // Whatever hyper says on the way out, it is no answer to the request.
    assert!(!String::from_utf8_lossy(&raw).contains("200 OK"));

    // The next client is served as usual.
    assert_eq!(request(addr, "GET", "/healthz").await.0, 200);
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let (addr, _, _) = start(Duration::from_secs(10)).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    // The server may close before it has read everything.
    let _ = stream.write_all(req.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}
