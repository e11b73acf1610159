//! The real `gate-control` binary with the shipped `config/control.yaml`: starts with no database
//! configured (SQLite created on first start), answers curl with the root key, refuses to start
//! without a key unless insecure, logs unauthenticated requests at warn, stops on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = "root-key-0123456789abcdef";

struct Control {
    child: Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Control {
    let port = gate_testkit::free_port().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/control.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gate-control"))
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(cwd)
        .env_remove("GATE_API_KEY")
        .env_remove("GATE_INSECURE")
        .env("GATE_CONTROL_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Control { child, port, lines }
}

/// `curl -s` with the JSON content type the API requires for bodies (`-d` alone sends a form type).
fn curl(port: u16, args: &[&str], path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
        ])
        .args(args)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap_or(0), body.to_owned())
}

fn wait_healthy(control: &Control) {
    let started = Instant::now();
    while curl(control.port, &[], "/health").0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gate-control did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}")
}

#[test]
fn starts_with_no_database_and_enforces_keys() {
    let cwd = tempfile::tempdir().unwrap();
    let control = start(cwd.path(), &[("GATE_API_KEY", ROOT)], &[]);
    wait_healthy(&control);
    assert!(
        cwd.path().join(".data/gate.db").exists(),
        "SQLite created at .data/gate.db"
    );

    let root = bearer(ROOT);
    let (code, body) = curl(
        control.port,
        &[
            "-H",
            &root,
            "-X",
            "POST",
            "-d",
            r#"{"name":"primary-db","protocol":"postgres","host":"localhost","port":5432}"#,
        ],
        "/api/v1/resources",
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = curl(control.port, &["-H", &root], "/api/v1/resources");
    assert_eq!(code, 200);
    assert!(body.contains(r#""name":"primary-db""#), "{body}");

    // An org readonly key: cannot create a policy (403), cannot see another org's resources (404).
    let (_, org) = curl(
        control.port,
        &["-H", &root, "-X", "POST", "-d", r#"{"name":"acme"}"#],
        "/api/v1/organizations",
    );
    let org: serde_json::Value = serde_json::from_str(&org).unwrap();
    let org_header = format!("X-Org-ID: {}", org["id"].as_str().unwrap());
    let (_, key) = curl(
        control.port,
        &[
            "-H",
            &root,
            "-H",
            &org_header,
            "-X",
            "POST",
            "-d",
            r#"{"name":"viewer","role":"readonly"}"#,
        ],
        "/api/v1/api-keys",
    );
    let key: serde_json::Value = serde_json::from_str(&key).unwrap();
    let readonly = bearer(key["secret"].as_str().unwrap());
    let policy = r#"{"name":"p","rego":"package p\n"}"#;
    let (code, body) = curl(
        control.port,
        &["-H", &readonly, "-X", "POST", "-d", policy],
        "/api/v1/policies",
    );
    assert_eq!(code, 403, "{body}");
    let (_, resources) = curl(control.port, &["-H", &root], "/api/v1/resources");
    let resources: serde_json::Value = serde_json::from_str(&resources).unwrap();
    let id = resources["resources"][0]["id"].as_str().unwrap();
    let (code, body) = curl(
        control.port,
        &["-H", &readonly],
        &format!("/api/v1/resources/{id}"),
    );
    assert_eq!(
        (code, body.as_str()),
        (
            404,
            r#"{"code":"not_found","field":null,"message":"resource not found"}"#
        )
    );
    let (code, _) = curl(control.port, &[], "/api/v1/resources");
    assert_eq!(code, 401);

    // SIGTERM stops it cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(control.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut control = control;
    let status = control.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn refuses_to_start_without_a_key_unless_insecure() {
    let cwd = tempfile::tempdir().unwrap();
    let mut refused = start(cwd.path(), &[], &[]);
    let status = refused.child.wait().unwrap();
    assert!(!status.success());
    // The reader thread ends at EOF, closing the channel; until then it may still be sending.
    let mut output: Vec<String> = Vec::new();
    while let Ok(line) = refused.lines.recv_timeout(Duration::from_secs(5)) {
        output.push(line);
    }
    assert!(
        output.join("\n").contains("GATE_INSECURE=true"),
        "{output:?}"
    );

    let insecure = start(cwd.path(), &[("GATE_INSECURE", "true")], &[]);
    wait_healthy(&insecure);
    let (code, body) = curl(insecure.port, &[], "/api/v1/resources");
    assert_eq!((code, body.as_str()), (200, r#"{"resources":[]}"#));
    let started = Instant::now();
    let warned = loop {
        match insecure.lines.recv_timeout(Duration::from_secs(5)) {
            Ok(line) if line.contains(r#""level":"WARN""#) && line.contains("ListResources") => {
                break line;
            }
            Ok(_) => assert!(started.elapsed() < Duration::from_secs(10)),
            Err(e) => panic!("no warn line for the unauthenticated request: {e}"),
        }
    };
    assert!(
        warned.contains("unauthenticated request served"),
        "{warned}"
    );
}

#[test]
fn check_reports_every_config_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("control.yaml");
    std::fs::write(
        &file,
        "listen_addr: nowhere\ndatabase: {dsn: 'mysql://x'}\nextra: 1\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gate-control"))
        .arg("--config")
        .arg(&file)
        .arg("--check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("extra"), "{err}");
    std::fs::write(
        &file,
        "listen_addr: nowhere\ndatabase: {dsn: 'mysql://x'}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gate-control"))
        .arg("--config")
        .arg(&file)
        .arg("--check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 problem(s)")
            && err.contains("listen_addr:")
            && err.contains("database.dsn:"),
        "{err}"
    );
}
