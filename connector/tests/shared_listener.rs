//! The shared listener detects each client's protocol from its first bytes:
//! PostgreSQL openings split across packets still reach the PostgreSQL
//! session, and an SSH client with no SSH resource configured is closed and
//! counted (SSH served there: `ssh.rs`).
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use gate_testkit::PgAuth;

#[test]
fn an_ssl_request_split_across_packets_is_answered() {
    let stack = start(PgAuth::Trust, &example_policy());
    let mut tcp = TcpStream::connect(("127.0.0.1", stack.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.set_nodelay(true).unwrap();
    // SSLRequest: length 8, code 80877103, sent in two pieces.
    let request = [0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    tcp.write_all(&request[..3]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    tcp.write_all(&request[3..]).unwrap();
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).unwrap();
    // This stack has no TLS: PostgreSQL's "N" (not supported).
    assert_eq!(&answer, b"N");
}

#[test]
fn an_ssh_client_without_an_ssh_resource_is_closed_and_counted() {
    let stack = start(PgAuth::Trust, &example_policy());
    // HTTP is served: with no HTTP resource for the host, a JSON 404.
    let (code, body) = http_get(stack.port, "/");
    assert_eq!(code, "404", "{body}");
    assert!(body.contains("no HTTP resource serves host"), "{body}");
    let mut tcp = TcpStream::connect(("127.0.0.1", stack.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
    let mut rest = Vec::new();
    let read = tcp.read_to_end(&mut rest).unwrap();
    assert_eq!(read, 0, "closed without an answer: {rest:?}");
    let (_, metrics) = http_get(stack.health_port, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gate_sessions_total{")
                && l.contains("protocol=\"ssh\"")
                && l.contains("outcome=\"protocol_error\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    // PostgreSQL clients are served as before.
    let out = psql(&stack, "app", "app", "appdb", &["select 1"]);
    assert_eq!(text(&out.stdout).trim(), "1", "{}", text(&out.stderr));
}
