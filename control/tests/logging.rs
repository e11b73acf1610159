//! The real `gate-control` binary's log lines: on stderr, in `logging.format`, filtered by `logging.level`; nothing on stdout.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Control {
    child: Child,
    port: u16,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Control {
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

/// Start insecure (no api_key: a warning at start-up and one per request) with `logging`.
fn start(level: &str, format: &str) -> Control {
    let dir = tempfile::tempdir().unwrap();
    let port = gate_testkit::free_port().unwrap();
    let config = dir.path().join("control.yaml");
    std::fs::write(
        &config,
        format!(
            "listen_addr: 127.0.0.1:{port}\ndatabase: {{sqlite_path: {}/gate.db}}\nlogging: {{level: {level}, format: {format}}}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gate-control"))
        .arg("--config")
        .arg(&config)
        .arg("--insecure")
        .env_remove("GATE_INSECURE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    let control = Control {
        child,
        port,
        stdout,
        stderr,
        _dir: dir,
    };
    let started = Instant::now();
    while curl(port, "/health") != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gate-control did not become healthy: {:?}",
            control.stderr.try_iter().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    control
}

fn curl(port: u16, path: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

impl Control {
    /// SIGTERM, then every line it wrote: (stdout, stderr).
    fn stop(mut self) -> (Vec<String>, Vec<String>) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        (self.stdout.iter().collect(), self.stderr.iter().collect())
    }
}

fn parse(stderr: &[String]) -> Vec<Value> {
    stderr
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

#[test]
fn json_lines_on_stderr_with_level_message_and_fields() {
    let control = start("info", "json");
    assert_eq!(curl(control.port, "/api/v1/resources"), 200);
    let port = control.port;
    let (stdout, stderr) = control.stop();
    assert!(stdout.is_empty(), "{stdout:?}");
    let logs = parse(&stderr);
    for (log, line) in logs.iter().zip(&stderr) {
        assert!(
            log["level"].is_string() && log["message"].is_string() && log["timestamp"].is_string(),
            "{line}"
        );
    }
    let listening = logs
        .iter()
        .find(|l| l["message"] == "gate-control listening (HTTP /api/v1, /mcp, gRPC, admin UI)")
        .unwrap_or_else(|| panic!("{stderr:#?}"));
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(listening["insecure"], true);
    assert!(
        logs.iter().any(|l| l["level"] == "WARN"
            && l["message"] == "unauthenticated request served (insecure mode)"
            && l["operation"] == "ListResources"),
        "{stderr:#?}"
    );
    assert!(
        logs.iter()
            .any(|l| l["message"] == "gate-control shutting down"),
        "{stderr:#?}"
    );
}

#[test]
fn text_lines_carry_the_level_and_the_message() {
    let control = start("info", "text");
    let (stdout, stderr) = control.stop();
    assert!(stdout.is_empty(), "{stdout:?}");
    let listening = stderr
        .iter()
        .find(|l| l.contains("gate-control listening"))
        .unwrap_or_else(|| panic!("{stderr:#?}"));
    assert!(listening.contains(" INFO "), "{listening}");
    assert!(listening.contains("insecure=true"), "{listening}");
    assert!(
        !listening.starts_with('{') && !listening.contains('\u{1b}'),
        "{listening:?}"
    );
}

#[test]
fn level_warn_hides_the_start_up_info_lines() {
    let control = start("warn", "json");
    let (_, stderr) = control.stop();
    let logs = parse(&stderr);
    assert!(
        logs.iter().any(|l| l["level"] == "WARN"
            && l["message"] == "no api_key: running insecure, every request is unauthenticated"),
        "{stderr:#?}"
    );
    assert!(logs.iter().all(|l| l["level"] != "INFO"), "{stderr:#?}");
}
