//! The real `gate-connector` binary's output: log lines on stderr in `logging.format` at `logging.level`, audit events alone on stdout.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::{PSQL, upstream};
use gate_testkit::{PgAuth, free_port};
use serde_json::Value;

/// A running connector; its stdout and stderr lines arrive on two channels.
struct Connector {
    child: Child,
    port: u16,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Start the binary with `logging: {level, format}`, one PostgreSQL resource on `pg_port`, and a
/// JWT issuer whose JWKS URL answers nothing (a warning at start-up).
fn start(level: &str, format: &str, pg_port: u16) -> Connector {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let health = free_port().unwrap();
    let nowhere = free_port().unwrap();
    let config = dir.path().join("connector.yaml");
    std::fs::write(
        &config,
        format!(
            "listen_addr: 127.0.0.1:{port}\nhealth_addr: 127.0.0.1:{health}\ndefault_action: allow\n\
             identities:\n  - {{name: app, password: app}}\n\
             auth:\n  jwt:\n    issuers:\n      - {{issuer: idp, audience: gate, jwks_url: 'http://127.0.0.1:{nowhere}/jwks'}}\n\
             resources:\n  - {{name: primary-db, protocol: postgres, host: 127.0.0.1, port: {pg_port}, database: appdb, username: gate_app, password: gate-app-pw}}\n\
             logging: {{level: {level}, format: {format}}}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gate-connector"))
        .arg("--config")
        .arg(&config)
        .env("GATE_WORKER_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    // Ready: listening, and a SIGTERM from now on is a graceful stop.
    let started = Instant::now();
    while common::http_get(health, "/readyz").0 != "200" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gate-connector did not become ready: {:?}",
            stderr.try_iter().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Connector {
        child,
        port,
        stdout,
        stderr,
        _dir: dir,
    }
}

impl Connector {
    fn psql(&self, sql: &str) -> String {
        let out = Command::new(PSQL)
            .env("PGPASSWORD", "app")
            .env("PGCONNECT_TIMEOUT", "10")
            .args(["-X", "-A", "-t", "-w", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", "app", "-d", "appdb", "-c", sql])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// SIGTERM, then every line it wrote: (stdout, stderr).
    fn stop(mut self) -> (Vec<String>, Vec<String>) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        // The reader threads end at EOF, closing their channels.
        let stdout = self.stdout.iter().collect();
        let stderr = self.stderr.iter().collect();
        (stdout, stderr)
    }
}

/// Stop when `want` appears on stdout (the audit writer runs in the background), or after 10 s.
fn wait_for_stdout(connector: &Connector, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(line) = connector.stdout.recv_timeout(Duration::from_millis(100)) {
            let done = line.contains(want);
            seen.push(line);
            if done {
                break;
            }
        }
    }
    seen
}

#[test]
fn json_logs_go_to_stderr_and_only_audit_events_to_stdout() {
    let pg = upstream(PgAuth::Trust, false);
    let connector = start("info", "json", pg.port());
    assert_eq!(connector.psql("select 41 + 1"), "42");
    let mut stdout = wait_for_stdout(&connector, "select 41 + 1");
    let port = connector.port;
    let (rest, stderr) = connector.stop();
    stdout.extend(rest);

    // stdout: audit events only, the statement's among them.
    assert!(!stdout.is_empty());
    for line in &stdout {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            event["id"].is_string() && event["action"].is_string() && event["kind"].is_string(),
            "not an audit event: {line}"
        );
        assert!(event.get("level").is_none(), "a log line on stdout: {line}");
    }
    assert!(
        stdout
            .iter()
            .any(|l| l.contains(r#""statement":"select 41 + 1""#)),
        "{stdout:?}"
    );

    // stderr: one JSON object per line with timestamp, level and message.
    let logs: Vec<Value> = stderr
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    for (log, line) in logs.iter().zip(&stderr) {
        assert!(
            log["level"].is_string() && log["message"].is_string() && log["timestamp"].is_string(),
            "{line}"
        );
        assert!(
            log.get("action").is_none(),
            "an audit event on stderr: {line}"
        );
    }
    let find = |message: &str| {
        logs.iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in {stderr:#?}"))
    };
    let listening = find("listening");
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(listening["protocol"], "postgres");
    let jwks = find("JWKS not loaded: tokens of that issuer are refused until it answers");
    assert_eq!(jwks["level"], "WARN");
    assert!(
        jwks["problem"].as_str().unwrap().contains("JWKS of idp"),
        "{jwks}"
    );
    find("shutting down");
}

#[test]
fn text_logs_carry_the_level_and_the_message() {
    // No client connects: the resource's port is never dialled.
    let connector = start("info", "text", free_port().unwrap());
    let port = connector.port;
    let (stdout, stderr) = connector.stop();
    assert!(stdout.is_empty(), "{stdout:?}");
    let listening = stderr
        .iter()
        .find(|l| l.contains(": listening addr="))
        .unwrap_or_else(|| panic!("{stderr:#?}"));
    assert!(listening.contains(" INFO "), "{listening}");
    assert!(
        listening.contains(&format!("addr=127.0.0.1:{port}")),
        "{listening}"
    );
    assert!(
        !listening.starts_with('{') && !listening.contains('\u{1b}'),
        "plain text without colours: {listening:?}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.contains(" WARN ") && l.contains("JWKS not loaded")),
        "{stderr:#?}"
    );
}

#[test]
fn level_warn_hides_the_start_up_info_lines() {
    let connector = start("warn", "json", free_port().unwrap());
    let (_, stderr) = connector.stop();
    let logs: Vec<Value> = stderr
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    assert!(
        logs.iter()
            .any(|l| l["level"] == "WARN" && l["problem"].is_string()),
        "the JWKS warning is kept: {stderr:#?}"
    );
    assert!(
        logs.iter()
            .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"),
        "{stderr:#?}"
    );
    assert!(
        !stderr
            .iter()
            .any(|l| l.contains("listening") || l.contains("shutting down")),
        "{stderr:#?}"
    );
}
