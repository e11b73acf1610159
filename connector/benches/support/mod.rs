//! What the benchmarks share: process CPU readings, a child killed on drop,
//! starting a server and waiting for its port, Gate's config pieces, and the
//! run length (`GATE_BENCH_SECONDS`).
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Seconds each measured run lasts (`GATE_BENCH_SECONDS`, default 8).
pub fn seconds() -> u32 {
    std::env::var("GATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

/// CPU-µs (user + system) of this process's waited-for children so far.
pub fn children_cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let us = |i: usize| fields[i].parse::<u64>().unwrap() * 1_000_000 / 100; // USER_HZ is 100 on Linux
    us(13) + us(14)
}

/// (utime, stime) of a process, in microseconds.
pub fn cpu_us(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let us = |i: usize| fields[i].parse::<u64>().unwrap() * 1_000_000 / 100; // USER_HZ is 100 on Linux
    (us(11), us(12))
}

/// CPU-µs per query of a process between two `cpu_us` readings: (user + system, user, system).
pub fn per_query(before: (u64, u64), after: (u64, u64), queries: u64) -> (f64, f64, f64) {
    let q = queries.max(1) as f64;
    let user = (after.0 - before.0) as f64 / q;
    let system = (after.1 - before.1) as f64 / q;
    (user + system, user, system)
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spawn `cmd` (output discarded) and wait until `port` accepts connections.
pub fn spawn_on(cmd: &mut Command, port: u16) -> Proc {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    Proc(child)
}

/// The release connector with `yaml` (written to `dir/gate.yaml`), once `port` is open.
pub fn spawn_gate(dir: &Path, yaml: &str, port: u16) -> Proc {
    let config = dir.join("gate.yaml");
    std::fs::write(&config, yaml).unwrap();
    spawn_on(
        Command::new(env!("CARGO_BIN_EXE_gate-connector"))
            .arg("--config")
            .arg(&config),
        port,
    )
}

/// The `policies:` block loading the policy file at `path` for all three stages.
pub fn all_stages(path: &Path) -> String {
    let p = path.display();
    format!(
        "policies:\n  - {{path: \"{p}\", stage: session}}\n  - {{path: \"{p}\", stage: pre_request}}\n  - {{path: \"{p}\", stage: post_request}}\n"
    )
}

/// The repository's example policy (destructive statements refused, emails and SSNs masked).
pub fn example_policy() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/example.rego"
    ))
}

/// The release connector on fresh `listen_addr`/`health_addr` ports with
/// `body` as the rest of its config; the shared listener's port once it is open.
pub fn spawn_connector(dir: &Path, body: &str) -> (Proc, u16) {
    let port = gate_testkit::free_port().unwrap();
    let health = gate_testkit::free_port().unwrap();
    let yaml =
        format!("listen_addr: \"127.0.0.1:{port}\"\nhealth_addr: \"127.0.0.1:{health}\"\n{body}");
    (spawn_gate(dir, &yaml, port), port)
}

/// The `policies:` config loading `policies/example.rego` for all three stages.
pub fn example_policies() -> String {
    all_stages(example_policy())
}
